//! Test fixtures: an in-process S3 store, a gateway in front of it, and clients for both.
#![allow(dead_code)]

pub mod raw;
pub mod recorder;

use std::path::PathBuf;
use std::time::Duration;

use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use s3gate::config::{Config, ServeArgs};
use s3gate::credentials::Credential;
use s3gate::store::Store;

pub const CLIENT_AKID: &str = "GATECLIENTKEY0000001";
pub const CLIENT_SECRET: &str = "client/secret+with/odd=chars0123456789ab";
pub const STORE_AKID: &str = "STOREKEY000000000001";
pub const STORE_SECRET: &str = "store-secret-never-seen-by-clients-01234";

/// The real S3 server (s3s-fs) the gateway forwards to. It checks SigV4 itself, with keys the
/// clients never hold, so every successful call proves s3gate re-signed it correctly.
pub struct Upstream {
    pub store: Store,
    pub dir: tempfile::TempDir,
}

impl Upstream {
    pub async fn start() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let store =
            Store::start("127.0.0.1:0".parse().expect("addr"), dir.path(), &Credential::new(STORE_AKID, STORE_SECRET))
                .await
                .expect("store starts");
        Self { store, dir }
    }

    /// A client that talks to the store directly, with the store's own keys: used to check
    /// what really got stored.
    pub fn direct_client(&self) -> aws_sdk_s3::Client {
        sdk_client(&self.store.url(), STORE_AKID, STORE_SECRET, None)
    }

    /// Files under the store's data folder whose path contains `needle`.
    pub fn stored_paths(&self, needle: &str) -> Vec<PathBuf> {
        fn walk(dir: &std::path::Path, out: &mut Vec<PathBuf>) {
            if let Ok(rd) = std::fs::read_dir(dir) {
                for e in rd.flatten() {
                    let p = e.path();
                    if p.is_dir() {
                        walk(&p, out);
                    } else {
                        out.push(p);
                    }
                }
            }
        }
        let mut all = Vec::new();
        walk(self.dir.path(), &mut all);
        all.into_iter().filter(|p| p.to_string_lossy().contains(needle)).collect()
    }
}

/// s3gate in front of an [`Upstream`].
pub struct Gateway {
    pub running: Option<s3gate::Running>,
    /// What it was started with, to reload it with.
    pub args: ServeArgs,
    pub url: String,
    pub upstream: Upstream,
    pub ca_pem: Option<String>,
    _tls_dir: Option<tempfile::TempDir>,
}

impl Gateway {
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(tweak: impl FnOnce(&mut ServeArgs)) -> Self {
        Self::start_with_toml("", tweak).await
    }

    /// With a config file holding `toml` (for `[[client]]` and `[[route]]` tables), plus flags.
    pub async fn start_with_toml(toml: &str, tweak: impl FnOnce(&mut ServeArgs)) -> Self {
        let upstream = Upstream::start().await;
        let mut args = base_args(&upstream.store.url());
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("s3gate.toml");
        std::fs::write(&path, toml.replace("{STORE}", &upstream.store.url())).expect("write config");
        private(&path);
        args.config = Some(path);
        tweak(&mut args);
        let config = Config::load(&args, &Default::default()).expect("config");
        let running = s3gate::start(config).await.expect("gateway starts");
        let url = format!("http://{}", running.addr);
        Self { running: Some(running), args, url, upstream, ca_pem: None, _tls_dir: Some(dir) }
    }

    /// The same over HTTPS with a throwaway CA; `ca_pem` is what clients trust.
    pub async fn start_tls() -> Self {
        let upstream = Upstream::start().await;
        let (dir, ca_pem, cert, key) = throwaway_tls("localhost");
        let mut args = base_args(&upstream.store.url());
        args.tls_cert = Some(cert);
        args.tls_key = Some(key);
        let config = Config::load(&args, &Default::default()).expect("config");
        let running = s3gate::start(config).await.expect("gateway starts");
        let url = format!("https://localhost:{}", running.addr.port());
        Self { running: Some(running), args, url, upstream, ca_pem: Some(ca_pem), _tls_dir: Some(dir) }
    }

    pub fn client(&self) -> aws_sdk_s3::Client {
        sdk_client(&self.url, CLIENT_AKID, CLIENT_SECRET, self.ca_pem.as_deref())
    }

    pub fn client_with(&self, akid: &str, secret: &str) -> aws_sdk_s3::Client {
        sdk_client(&self.url, akid, secret, self.ca_pem.as_deref())
    }

    pub fn addr(&self) -> std::net::SocketAddr {
        self.running.as_ref().expect("running").addr
    }

    pub async fn stop(mut self) {
        if let Some(r) = self.running.take() {
            r.stop().await;
        }
    }
}

pub fn base_args(upstream_url: &str) -> ServeArgs {
    ServeArgs {
        listen: Some("127.0.0.1:0".into()),
        upstream: Some(upstream_url.to_owned()),
        upstream_credentials: Some(format!("{STORE_AKID}:{STORE_SECRET}")),
        credentials: vec![format!("{CLIENT_AKID}:{CLIENT_SECRET}")],
        shutdown_grace: Some(1),
        upstream_connect_timeout: Some(2),
        ..ServeArgs::default()
    }
}

pub fn sdk_client(endpoint: &str, akid: &str, secret: &str, ca_pem: Option<&str>) -> aws_sdk_s3::Client {
    aws_sdk_s3::Client::from_conf(sdk_config(endpoint, akid, secret, ca_pem).build())
}

pub fn sdk_config(endpoint: &str, akid: &str, secret: &str, ca_pem: Option<&str>) -> aws_sdk_s3::config::Builder {
    let mut b = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .force_path_style(true)
        .credentials_provider(Credentials::new(akid, secret, None, None, "test"))
        .retry_config(aws_sdk_s3::config::retry::RetryConfig::disabled())
        .timeout_config(
            aws_sdk_s3::config::timeout::TimeoutConfig::builder().operation_timeout(Duration::from_secs(120)).build(),
        );
    if let Some(pem) = ca_pem {
        use aws_smithy_http_client::tls;
        let ctx = tls::TlsContext::builder()
            .with_trust_store(tls::TrustStore::empty().with_pem_certificate(pem.as_bytes().to_vec()))
            .build()
            .expect("tls context");
        let http = aws_smithy_http_client::Builder::new()
            .tls_provider(tls::Provider::Rustls(tls::rustls_provider::CryptoMode::AwsLc))
            .tls_context(ctx)
            .build_https();
        b = b.http_client(http);
    }
    b
}

/// A CA and a server certificate for `name` (and 127.0.0.1), written as PEM files.
pub fn throwaway_tls(name: &str) -> (tempfile::TempDir, String, PathBuf, PathBuf) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    let ca_key = KeyPair::generate().expect("ca key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(rcgen::DnType::CommonName, "s3gate test CA");
    let ca = ca_params.self_signed(&ca_key).expect("ca cert");
    let key = KeyPair::generate().expect("key");
    let params = CertificateParams::new(vec![name.to_owned(), "127.0.0.1".to_owned()]).expect("params");
    let cert = params.signed_by(&key, &ca, &ca_key).expect("cert");
    let dir = tempfile::tempdir().expect("tempdir");
    let cert_path = dir.path().join("cert.pem");
    let key_path = dir.path().join("key.pem");
    std::fs::write(&cert_path, cert.pem()).expect("write cert");
    std::fs::write(&key_path, key.serialize_pem()).expect("write key");
    (dir, ca.pem(), cert_path, key_path)
}

/// chmod 600: a config file that holds secrets is refused when others may read it.
pub fn private(path: &std::path::Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).expect("chmod 600");
    }
}

/// A copy of a file only its owner may read (a checkout leaves `examples/` world-readable).
pub fn private_copy(path: &std::path::Path) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("dir");
    let copy = dir.path().join(path.file_name().expect("a file name"));
    std::fs::copy(path, &copy).expect("copy");
    private(&copy);
    (dir, copy)
}

/// Deterministic bytes that differ at every offset, so a misplaced range shows.
pub fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| ((i * 31 + (i >> 8) * 7) as u8).wrapping_add(seed)).collect()
}

pub async fn create_bucket(client: &aws_sdk_s3::Client, bucket: &str) {
    client.create_bucket().bucket(bucket).send().await.expect("create bucket");
}

pub async fn get_bytes(client: &aws_sdk_s3::Client, bucket: &str, key: &str) -> Vec<u8> {
    let out = client.get_object().bucket(bucket).key(key).send().await.expect("get object");
    out.body.collect().await.expect("read body").into_bytes().to_vec()
}

pub async fn exists(client: &aws_sdk_s3::Client, bucket: &str, key: &str) -> bool {
    client.head_object().bucket(bucket).key(key).send().await.is_ok()
}

/// The S3 error code of a failed SDK call.
pub fn code_of<E, R>(err: &aws_sdk_s3::error::SdkError<E, R>) -> String
where
    E: aws_sdk_s3::error::ProvideErrorMetadata + std::fmt::Debug,
    R: std::fmt::Debug,
{
    err.as_service_error().and_then(|e| e.code()).map(str::to_owned).unwrap_or_else(|| format!("{err:?}"))
}
