//! A stand-in for AWS S3 behind the forward proxy: the s3s-fs store answering to the AWS S3
//! names (virtual-hosted and path style), over TLS with a certificate for those names from a
//! throwaway CA, and over plain HTTP. Clients sign with the store's own keys: in forward mode
//! they hold real credentials, and s3gate only carries bytes.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use s3s::auth::SimpleAuth;
use s3s::host::MultiDomain;
use s3s::service::{S3Service, S3ServiceBuilder};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::support::{STORE_AKID, STORE_SECRET};

/// The names the certificate holds, and the store's virtual-hosted domains.
pub const S3_DOMAINS: &[&str] = &["s3.amazonaws.com", "s3.us-east-1.amazonaws.com"];

pub struct Origin {
    pub tls_addr: SocketAddr,
    pub plain_addr: SocketAddr,
    /// The throwaway CA, as a PEM file clients trust (`AWS_CA_BUNDLE`).
    pub ca_file: PathBuf,
    data: tempfile::TempDir,
    _ca_dir: tempfile::TempDir,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Origin {
    pub async fn start() -> Origin {
        let data = tempfile::tempdir().expect("tempdir");
        let fs = s3s_fs::FileSystem::new(data.path()).expect("s3s-fs");
        // With S3's listing behaviour (`delimiter=` means none, as rclone sends it; ETags listed).
        let mut b = S3ServiceBuilder::new(s3gate::store::listing::Fs(fs));
        b.set_auth(SimpleAuth::from_single(STORE_AKID, STORE_SECRET));
        b.set_host(MultiDomain::new(S3_DOMAINS).expect("domains"));
        let service = b.build();

        let (ca_pem, acceptor) = tls();
        let ca_dir = tempfile::tempdir().expect("tempdir");
        let ca_file = ca_dir.path().join("ca.pem");
        std::fs::write(&ca_file, &ca_pem).expect("write CA");

        let tls_listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let plain_listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let tls_addr = tls_listener.local_addr().expect("addr");
        let plain_addr = plain_listener.local_addr().expect("addr");
        let tasks = vec![
            tokio::spawn(serve(tls_listener, Some(acceptor), service.clone())),
            tokio::spawn(serve(plain_listener, None, service)),
        ];
        Origin { tls_addr, plain_addr, ca_file, data, _ca_dir: ca_dir, tasks }
    }

    /// What the store holds for `bucket/key`, read from its data folder.
    pub fn object(&self, bucket: &str, key: &str) -> Option<Vec<u8>> {
        std::fs::read(self.data.path().join(bucket).join(key)).ok()
    }

    /// Whether the store has a bucket of that name.
    pub fn has_bucket(&self, bucket: &str) -> bool {
        self.data.path().join(bucket).is_dir()
    }

    /// The object keys in `bucket`, sorted; the store's own bookkeeping files left out.
    pub fn keys(&self, bucket: &str) -> Vec<String> {
        fn walk(root: &std::path::Path, dir: &std::path::Path, out: &mut Vec<String>) {
            for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                let p = e.path();
                if p.is_dir() {
                    walk(root, &p, out);
                } else if let Ok(rel) = p.strip_prefix(root) {
                    out.push(rel.to_string_lossy().into_owned());
                }
            }
        }
        let root = self.data.path().join(bucket);
        let mut out = Vec::new();
        walk(&root, &root, &mut out);
        out.retain(|k| !k.starts_with(".") && !k.contains("/."));
        out.sort();
        out
    }
}

impl Drop for Origin {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

async fn serve(listener: TcpListener, tls: Option<TlsAcceptor>, service: S3Service) {
    loop {
        let Ok((socket, _)) = listener.accept().await else { continue };
        let _ = socket.set_nodelay(true);
        let service = service.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            let http = ConnBuilder::new(TokioExecutor::new());
            match tls {
                Some(acceptor) => {
                    let Ok(stream) = acceptor.accept(socket).await else { return };
                    let _ = http.serve_connection(TokioIo::new(stream), service).await;
                }
                None => {
                    let _ = http.serve_connection(TokioIo::new(socket), service).await;
                }
            }
        });
    }
}

/// A CA, and a server certificate it signed for the S3 names and their buckets.
fn tls() -> (String, TlsAcceptor) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    let ca_key = KeyPair::generate().expect("ca key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(rcgen::DnType::CommonName, "s3gate forward test CA");
    let ca = ca_params.self_signed(&ca_key).expect("ca cert");
    let names: Vec<String> = S3_DOMAINS.iter().flat_map(|d| [d.to_string(), format!("*.{d}")]).collect();
    let key = KeyPair::generate().expect("key");
    let cert = CertificateParams::new(names).expect("params").signed_by(&key, &ca, &ca_key).expect("cert");

    let key_der = rustls::pki_types::PrivateKeyDer::try_from(key.serialize_der()).expect("key der");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocols")
        .with_no_client_auth()
        .with_single_cert(vec![cert.der().clone()], key_der)
        .expect("server config");
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    (ca.pem(), TlsAcceptor::from(Arc::new(config)))
}
