//! Configuration: clap flags, `S3GATE_*` environment variables and a TOML file, merged into one
//! validated [`Config`].
//!
//! Precedence is CLI > environment > file > default. [`Config::resolve`] is a pure function of
//! (arguments, environment, file text) so tests pass a map instead of touching the process
//! environment; only [`Config::load`] reads files.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, ValueEnum};
use serde::Deserialize;

use crate::credentials::{Credential, KeyStore};

mod routes;
pub use routes::{AccessConfig, RouteConfig};

pub mod forward;
pub use forward::{ForwardArgs, ForwardConfig, ForwardFile};

/// How the upstream is addressed: `https://host/bucket/key` or `https://bucket.host/key`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum UpstreamAddressing {
    #[default]
    Path,
    Virtual,
}

/// `s3gate serve` flags. Every one is optional here so that the environment and the file can
/// fill what the command line leaves out.
#[derive(Debug, Clone, Default, Args)]
pub struct ServeArgs {
    /// TOML config file (see examples/s3gate.toml for every key).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Address the S3 endpoint listens on [default: 127.0.0.1:8099].
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
    /// Upstream S3 endpoint URL [default: https://s3.<region>.amazonaws.com].
    #[arg(long, value_name = "URL")]
    pub upstream: Option<String>,
    /// The upstream's signing region [default: us-east-1].
    #[arg(long, value_name = "NAME")]
    pub region: Option<String>,
    /// Extra PEM CA certificate(s) to trust for a private upstream.
    #[arg(long, value_name = "FILE")]
    pub upstream_ca: Option<PathBuf>,
    /// Upstream credentials `AKID:SECRET`; without it, the AWS default credential chain.
    #[arg(long, value_name = "AKID:SECRET")]
    pub upstream_credentials: Option<String>,
    /// `path` (https://host/bucket/key) or `virtual` (https://bucket.host/key) [default: path].
    #[arg(long, value_enum)]
    pub upstream_addressing: Option<UpstreamAddressing>,
    /// A client credential `AKID:SECRET` s3gate accepts (repeatable).
    #[arg(long = "credentials", value_name = "AKID:SECRET")]
    pub credentials: Vec<String>,
    /// File of client credentials, one `AKID:SECRET` per line; must not be readable by others.
    #[arg(long, value_name = "FILE")]
    pub credentials_file: Option<PathBuf>,
    /// Domain for virtual-hosted-style requests: `BUCKET.NAME[:port]` (repeatable).
    #[arg(long = "domain", value_name = "NAME")]
    pub domain: Vec<String>,
    /// PEM certificate chain for HTTPS to clients.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for HTTPS to clients.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Largest accepted difference between a request's date and now, in seconds [default: 900].
    #[arg(long, value_name = "SECONDS")]
    pub max_clock_skew: Option<u64>,
    /// Check a signed body's SHA-256 in s3gate too, not only upstream: for S3-compatible
    /// stores that ignore `x-amz-content-sha256` [default: false; AWS S3 checks it].
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub verify_body_hash: Option<bool>,
    /// Upstream TCP+TLS connect timeout in seconds [default: 5].
    #[arg(long, value_name = "SECONDS")]
    pub upstream_connect_timeout: Option<u64>,
    /// Serve only clients from these networks (repeatable; IPv4 or IPv6 CIDR) [default: all].
    #[arg(long = "allowed-source-subnet", value_name = "CIDR")]
    pub allowed_source_subnet: Vec<String>,
    /// Host values the endpoint answers to (repeatable); others get 403 [default: any].
    #[arg(long = "allowed-endpoint", value_name = "HOST[:PORT]")]
    pub allowed_endpoint: Vec<String>,
    /// Load balancers whose PROXY protocol header and X-Forwarded-For s3gate believes (repeatable).
    #[arg(long = "trusted-proxy", value_name = "CIDR")]
    pub trusted_proxy: Vec<String>,
    /// Storage class forced on PutObject, CopyObject and CreateMultipartUpload.
    #[arg(long, value_name = "CLASS")]
    pub storage_class: Option<String>,
    /// Address of the Prometheus listener (`/metrics`, `/health`) [default: off].
    #[arg(long, value_name = "ADDR")]
    pub metrics_listen: Option<String>,
    /// JSON audit log, one line per request: a file path, or `-` for stdout; reopened on SIGHUP.
    #[arg(long, value_name = "FILE|-")]
    pub audit_log: Option<String>,
    /// Longest silence tolerated, in seconds: from the upstream once a request body is sent,
    /// inside an upstream response body, and inside a client's request body [default: 120].
    #[arg(long, value_name = "SECONDS")]
    pub upstream_timeout: Option<u64>,
    /// Seconds to let requests in flight finish on shutdown [default: 30].
    #[arg(long, value_name = "SECONDS")]
    pub shutdown_grace: Option<u64>,
    /// Connections each listener (endpoint, forward proxy) serves at once; past it a new one is
    /// answered 503 SlowDown and closed [default: 1024 per core, at most 65536].
    #[arg(long, value_name = "N")]
    pub max_connections: Option<u64>,
    /// Base URL of minted presigned URLs (`https://s3.intranet.example.com`); virtual-hosted
    /// when its host is a --domain [default: the caller's Host, or the listen address].
    #[arg(long, value_name = "URL")]
    pub public_url: Option<String>,
    /// The forward-proxy listener and its options (`--forward-*`).
    #[command(flatten)]
    pub forward: ForwardArgs,
}

/// The TOML file. Keys are the flag names with `_` for `-`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub listen: Option<String>,
    pub upstream: Option<String>,
    pub region: Option<String>,
    pub upstream_ca: Option<PathBuf>,
    pub upstream_credentials: Option<String>,
    pub upstream_addressing: Option<UpstreamAddressing>,
    pub credentials: Option<Vec<String>>,
    pub credentials_file: Option<PathBuf>,
    pub domain: Option<Vec<String>>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub max_clock_skew: Option<u64>,
    pub verify_body_hash: Option<bool>,
    pub upstream_connect_timeout: Option<u64>,
    pub upstream_timeout: Option<u64>,
    pub shutdown_grace: Option<u64>,
    pub max_connections: Option<u64>,
    pub public_url: Option<String>,
    pub allowed_source_subnet: Option<Vec<String>>,
    pub allowed_endpoint: Option<Vec<String>>,
    pub trusted_proxy: Option<Vec<String>>,
    pub storage_class: Option<String>,
    pub metrics_listen: Option<String>,
    pub audit_log: Option<String>,
    /// `[[client]]` tables: a credential with its policy.
    pub client: Option<Vec<ClientFile>>,
    /// `[[route]]` tables: where buckets matching a pattern go.
    pub route: Option<Vec<RouteFile>>,
    /// The `[forward]` table: the forward proxy.
    pub forward: Option<ForwardFile>,
}

/// A client credential in the file, optionally with an IAM policy (inline JSON or a file).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientFile {
    pub access_key_id: String,
    pub secret_access_key: Option<String>,
    /// A file holding the secret (chmod 600), instead of `secret_access_key`.
    pub secret_file: Option<PathBuf>,
    /// The policy document as JSON text.
    pub policy: Option<String>,
    pub policy_file: Option<PathBuf>,
}

/// Buckets matching `bucket` (`*` and `?` wildcards) go to this upstream.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteFile {
    pub bucket: String,
    /// A name for logs and metrics [default: the pattern].
    pub name: Option<String>,
    /// [default: https://s3.<region>.amazonaws.com when `region` is set, else the default upstream]
    pub upstream: Option<String>,
    pub region: Option<String>,
    pub upstream_credentials: Option<String>,
    pub upstream_addressing: Option<UpstreamAddressing>,
    pub upstream_ca: Option<PathBuf>,
    /// The upstream's name for the bucket, when clients use another one.
    pub alias: Option<String>,
    pub storage_class: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{0}")]
    Invalid(String),
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("config file {path}: {message}")]
    File { path: PathBuf, message: String },
}

pub(crate) fn invalid(msg: impl Into<String>) -> ConfigError {
    ConfigError::Invalid(msg.into())
}

/// Where upstream requests are signed from.
#[derive(Debug, Clone)]
pub enum UpstreamCredentials {
    Static(Credential),
    /// env, profile, web identity, ECS, EC2 instance role: resolved and refreshed at run time.
    DefaultChain,
}

#[derive(Debug, Clone)]
pub struct UpstreamConfig {
    pub url: http::Uri,
    pub region: String,
    pub addressing: UpstreamAddressing,
    pub ca_file: Option<PathBuf>,
    pub credentials: UpstreamCredentials,
    pub connect_timeout: Duration,
    pub idle_timeout: Duration,
}

#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// The validated configuration `serve` runs with.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub upstream: UpstreamConfig,
    pub keys: KeyStore,
    pub domains: Vec<String>,
    pub tls: Option<TlsFiles>,
    pub max_clock_skew: Duration,
    /// Verify hex `x-amz-content-sha256` bodies in s3gate as well as upstream.
    pub verify_body_hash: bool,
    pub shutdown_grace: Duration,
    /// Connections each listener serves at once (`--max-connections`).
    pub max_connections: usize,
    /// Base URL of minted presigned URLs; `None`: the caller's Host (API) or listen address (CLI).
    pub public_url: Option<http::Uri>,
    /// Forced on PutObject, CopyObject and CreateMultipartUpload unless a route sets its own.
    pub storage_class: Option<String>,
    /// `[[route]]` entries, first match wins; unmatched buckets use `upstream`.
    pub routes: Vec<RouteConfig>,
    pub access: AccessConfig,
    pub metrics_listen: Option<SocketAddr>,
    pub audit_log: Option<String>,
    /// False with `listen = "none"`: only the forward proxy runs, and `listen` is unused.
    pub endpoint: bool,
    /// The forward proxy, when `forward-listen` is set.
    pub forward: Option<ForwardConfig>,
}

/// Settings merged from the three sources, before any file they name is read.
#[derive(Debug, Clone, Default)]
pub struct Resolved {
    pub listen: String,
    pub upstream: Option<String>,
    pub region: String,
    pub upstream_ca: Option<PathBuf>,
    pub upstream_credentials: Option<String>,
    pub upstream_addressing: UpstreamAddressing,
    pub credentials: Vec<String>,
    pub credentials_file: Option<PathBuf>,
    pub domain: Vec<String>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub max_clock_skew: u64,
    pub verify_body_hash: bool,
    pub upstream_connect_timeout: u64,
    pub upstream_timeout: u64,
    pub shutdown_grace: u64,
    pub max_connections: Option<u64>,
    pub public_url: Option<String>,
    pub allowed_source_subnet: Vec<String>,
    pub allowed_endpoint: Vec<String>,
    pub trusted_proxy: Vec<String>,
    pub storage_class: Option<String>,
    pub metrics_listen: Option<String>,
    pub audit_log: Option<String>,
    pub clients: Vec<ClientFile>,
    pub routes: Vec<RouteFile>,
    pub forward: forward::ForwardResolved,
}

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8099";
pub const DEFAULT_REGION: &str = "us-east-1";

impl Config {
    /// Merges CLI > env > file > default. `env` is the environment as a map; `file` the text of
    /// the `--config` file, if any. Reads nothing.
    pub fn resolve(
        args: &ServeArgs,
        env: &HashMap<String, String>,
        file: Option<&str>,
    ) -> Result<Resolved, ConfigError> {
        let file_path = args.config.clone().unwrap_or_default();
        let f: FileConfig = match file {
            Some(text) => toml::from_str(text)
                .map_err(|e| ConfigError::File { path: file_path.clone(), message: e.to_string() })?,
            None => FileConfig::default(),
        };
        let e = |name: &str| env.get(&format!("S3GATE_{name}")).filter(|v| !v.is_empty()).cloned();
        let list = |name: &str| -> Option<Vec<String>> {
            e(name).map(|v| v.split(',').map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()).collect())
        };
        let num = |name: &str| -> Result<Option<u64>, ConfigError> {
            e(name)
                .map(|v| v.parse::<u64>().map_err(|_| invalid(format!("S3GATE_{name}: not a number: {v:?}"))))
                .transpose()
        };
        let addressing_env = e("UPSTREAM_ADDRESSING")
            .map(|v| match v.as_str() {
                "path" => Ok(UpstreamAddressing::Path),
                "virtual" => Ok(UpstreamAddressing::Virtual),
                other => Err(invalid(format!("S3GATE_UPSTREAM_ADDRESSING: expected path or virtual, got {other:?}"))),
            })
            .transpose()?;
        let non_empty = |v: &Vec<String>| if v.is_empty() { None } else { Some(v.clone()) };

        Ok(Resolved {
            listen: args.listen.clone().or(e("LISTEN")).or(f.listen).unwrap_or_else(|| DEFAULT_LISTEN.into()),
            upstream: args.upstream.clone().or(e("UPSTREAM")).or(f.upstream),
            region: args.region.clone().or(e("REGION")).or(f.region).unwrap_or_else(|| DEFAULT_REGION.into()),
            upstream_ca: args.upstream_ca.clone().or(e("UPSTREAM_CA").map(PathBuf::from)).or(f.upstream_ca),
            upstream_credentials: args
                .upstream_credentials
                .clone()
                .or(e("UPSTREAM_CREDENTIALS"))
                .or(f.upstream_credentials),
            upstream_addressing: args
                .upstream_addressing
                .or(addressing_env)
                .or(f.upstream_addressing)
                .unwrap_or_default(),
            credentials: non_empty(&args.credentials).or(list("CREDENTIALS")).or(f.credentials).unwrap_or_default(),
            credentials_file: args
                .credentials_file
                .clone()
                .or(e("CREDENTIALS_FILE").map(PathBuf::from))
                .or(f.credentials_file),
            domain: non_empty(&args.domain).or(list("DOMAIN")).or(f.domain).unwrap_or_default(),
            tls_cert: args.tls_cert.clone().or(e("TLS_CERT").map(PathBuf::from)).or(f.tls_cert),
            tls_key: args.tls_key.clone().or(e("TLS_KEY").map(PathBuf::from)).or(f.tls_key),
            max_clock_skew: args.max_clock_skew.or(num("MAX_CLOCK_SKEW")?).or(f.max_clock_skew).unwrap_or(900),
            verify_body_hash: match args.verify_body_hash {
                Some(v) => v,
                None => match e("VERIFY_BODY_HASH").as_deref() {
                    Some("true" | "1") => true,
                    Some("false" | "0") => false,
                    Some(other) => {
                        return Err(invalid(format!("S3GATE_VERIFY_BODY_HASH: expected true or false, got {other:?}")))
                    }
                    None => f.verify_body_hash.unwrap_or(false),
                },
            },
            upstream_connect_timeout: args
                .upstream_connect_timeout
                .or(num("UPSTREAM_CONNECT_TIMEOUT")?)
                .or(f.upstream_connect_timeout)
                .unwrap_or(5),
            upstream_timeout: args.upstream_timeout.or(num("UPSTREAM_TIMEOUT")?).or(f.upstream_timeout).unwrap_or(120),
            shutdown_grace: args.shutdown_grace.or(num("SHUTDOWN_GRACE")?).or(f.shutdown_grace).unwrap_or(30),
            max_connections: args.max_connections.or(num("MAX_CONNECTIONS")?).or(f.max_connections),
            public_url: args.public_url.clone().or(e("PUBLIC_URL")).or(f.public_url),
            allowed_source_subnet: non_empty(&args.allowed_source_subnet)
                .or(list("ALLOWED_SOURCE_SUBNET"))
                .or(f.allowed_source_subnet)
                .unwrap_or_default(),
            allowed_endpoint: non_empty(&args.allowed_endpoint)
                .or(list("ALLOWED_ENDPOINT"))
                .or(f.allowed_endpoint)
                .unwrap_or_default(),
            trusted_proxy: non_empty(&args.trusted_proxy)
                .or(list("TRUSTED_PROXY"))
                .or(f.trusted_proxy)
                .unwrap_or_default(),
            storage_class: args.storage_class.clone().or(e("STORAGE_CLASS")).or(f.storage_class),
            metrics_listen: args.metrics_listen.clone().or(e("METRICS_LISTEN")).or(f.metrics_listen),
            audit_log: args.audit_log.clone().or(e("AUDIT_LOG")).or(f.audit_log),
            clients: f.client.unwrap_or_default(),
            routes: f.route.unwrap_or_default(),
            forward: forward::resolve(&args.forward, env, f.forward)?,
        })
    }

    /// Reads the config file and the files it names, then validates everything.
    pub fn load(args: &ServeArgs, env: &HashMap<String, String>) -> Result<Config, ConfigError> {
        let text = match &args.config {
            Some(path) => Some(read_config_file(path)?),
            None => None,
        };
        let resolved = Self::resolve(args, env, text.as_deref())?;
        Self::validate(resolved)
    }

    /// Turns resolved settings into a runnable config, reading the credentials file.
    pub fn validate(r: Resolved) -> Result<Config, ConfigError> {
        // `none` turns the endpoint off, so the forward proxy can run alone.
        let endpoint = !r.listen.eq_ignore_ascii_case("none");
        let listen: SocketAddr = if endpoint { r.listen.as_str() } else { DEFAULT_LISTEN }
            .parse()
            .map_err(|_| invalid(format!("listen: not an address (IP:PORT) or none: {:?}", r.listen)))?;
        let max_connections = match r.max_connections {
            None => crate::server::limits::default_max_connections(),
            Some(n) if n == 0 || n > tokio::sync::Semaphore::MAX_PERMITS as u64 => {
                return Err(invalid(format!("max-connections: out of range: {n}")))
            }
            Some(n) => n as usize,
        };
        // The forward listener has the same cap as the endpoint, counted on its own.
        let forward = r.forward.clone().validate()?.map(|f| ForwardConfig { max_connections, ..f });
        if !endpoint && forward.is_none() {
            return Err(invalid("listen is none and forward-listen is not set: nothing to serve"));
        }
        let timeouts =
            (Duration::from_secs(r.upstream_connect_timeout.max(1)), Duration::from_secs(r.upstream_timeout.max(1)));
        let upstream = upstream_config(
            "upstream",
            r.upstream.as_deref(),
            &r.region,
            r.upstream_credentials.as_deref(),
            r.upstream_addressing,
            r.upstream_ca.clone(),
            timeouts,
        )?;

        let mut keys = KeyStore::default();
        for (i, pair) in r.credentials.iter().enumerate() {
            let c = Credential::parse(pair)
                .ok_or_else(|| invalid(format!("credentials #{}: expected AKID:SECRET", i + 1)))?;
            keys.insert(c, None);
        }
        if let Some(path) = &r.credentials_file {
            for c in read_credentials_file(path)? {
                keys.insert(c, None);
            }
        }
        for client in &r.clients {
            let (c, policy) = routes::client(client)?;
            keys.insert(c, policy);
        }
        if keys.is_empty() && endpoint {
            return Err(invalid(
                "no client credentials: give --credentials AKID:SECRET or --credentials-file FILE \
                 (or --listen none to run only the forward proxy)",
            ));
        }

        for d in &r.domain {
            if d.is_empty() || d.contains('/') || d.contains(':') {
                return Err(invalid(format!("domain: expected a DNS name without port or scheme: {d:?}")));
            }
        }
        let tls = match (&r.tls_cert, &r.tls_key) {
            (Some(cert), Some(key)) => Some(TlsFiles { cert: cert.clone(), key: key.clone() }),
            (None, None) => None,
            _ => return Err(invalid("tls-cert and tls-key must be given together")),
        };
        let public_url = r
            .public_url
            .as_deref()
            .map(crate::net::parse_public_url)
            .transpose()
            .map_err(|e| invalid(format!("public URL: {e}")))?;
        let storage_class = r.storage_class.as_deref().map(routes::storage_class).transpose()?;
        let mut route_list = Vec::new();
        for (i, route) in r.routes.iter().enumerate() {
            route_list.push(routes::route(i, route, &upstream, &r.region, timeouts)?);
        }
        let metrics_listen = r
            .metrics_listen
            .as_deref()
            .map(|a| a.parse::<SocketAddr>().map_err(|_| invalid(format!("metrics-listen: not an address: {a:?}"))))
            .transpose()?;

        Ok(Config {
            listen,
            upstream,
            keys,
            domains: r.domain.iter().map(|d| d.to_ascii_lowercase()).collect(),
            tls,
            max_clock_skew: Duration::from_secs(r.max_clock_skew),
            verify_body_hash: r.verify_body_hash,
            shutdown_grace: Duration::from_secs(r.shutdown_grace),
            max_connections,
            public_url,
            storage_class,
            routes: route_list,
            access: routes::access(&r.allowed_source_subnet, &r.allowed_endpoint, &r.trusted_proxy)?,
            metrics_listen,
            audit_log: r.audit_log.clone(),
            endpoint,
            forward,
        })
    }
}

/// One upstream: URL (default from the region), region, credentials, addressing, CA.
pub(crate) fn upstream_config(
    what: &str,
    url: Option<&str>,
    region: &str,
    credentials: Option<&str>,
    addressing: UpstreamAddressing,
    ca_file: Option<PathBuf>,
    (connect_timeout, idle_timeout): (Duration, Duration),
) -> Result<UpstreamConfig, ConfigError> {
    if region.is_empty() || !region.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        return Err(invalid(format!("{what}: region: not a region name: {region:?}")));
    }
    let text = url.map(str::to_owned).unwrap_or_else(|| format!("https://s3.{region}.amazonaws.com"));
    let url: http::Uri = text.parse().map_err(|_| invalid(format!("{what}: not a URL: {text:?}")))?;
    match url.scheme_str() {
        Some("http") | Some("https") => {}
        _ => return Err(invalid(format!("{what}: must be an http:// or https:// URL: {text:?}"))),
    }
    if url.host().is_none() {
        return Err(invalid(format!("{what}: no host in {text:?}")));
    }
    if !matches!(url.path(), "" | "/") {
        return Err(invalid(format!("{what}: a path prefix is not supported: {text:?}")));
    }
    let credentials = match credentials {
        Some(pair) => UpstreamCredentials::Static(
            Credential::parse(pair)
                .ok_or_else(|| invalid(format!("{what}: upstream-credentials: expected AKID:SECRET")))?,
        ),
        None => UpstreamCredentials::DefaultChain,
    };
    if let Some(ca) = &ca_file {
        std::fs::metadata(ca).map_err(|source| ConfigError::Read { path: ca.clone(), source })?;
    }
    Ok(UpstreamConfig {
        url,
        region: region.to_owned(),
        addressing,
        ca_file,
        credentials,
        connect_timeout,
        idle_timeout,
    })
}

/// The `--config` file's text. A file that holds secrets (credentials, a client's inline
/// secret, proxy passwords) is refused when others may read it, as a credentials file is; one
/// that only names secret files (a Kubernetes ConfigMap) may be world-readable.
pub fn read_config_file(path: &Path) -> Result<String, ConfigError> {
    let text = read_text(path)?;
    // A file that does not parse is reported by `resolve`, with the parser's message.
    if toml::from_str::<FileConfig>(&text).is_ok_and(|f| holds_secrets(&f)) {
        refuse_if_readable_by_others(path)?;
    }
    Ok(text)
}

fn holds_secrets(f: &FileConfig) -> bool {
    f.credentials.as_ref().is_some_and(|c| !c.is_empty())
        || f.upstream_credentials.is_some()
        || f.client.iter().flatten().any(|c| c.secret_access_key.is_some())
        || f.route.iter().flatten().any(|r| r.upstream_credentials.is_some())
        || f.forward.as_ref().and_then(|fw| fw.user.as_ref()).is_some_and(|u| !u.is_empty())
}

pub(crate) fn read_text(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_owned(), source })
}

/// One `AKID:SECRET` per line; blank lines and `#` comments are skipped. A file that others
/// (not owner, not group) may read is refused: it holds secrets. Group read stays allowed so a
/// Kubernetes secret mounted 0440 with an fsGroup works.
pub fn read_credentials_file(path: &Path) -> Result<Vec<Credential>, ConfigError> {
    refuse_if_readable_by_others(path)?;
    let text = read_text(path)?;
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        out.push(
            Credential::parse(line)
                .ok_or_else(|| invalid(format!("{}:{}: expected AKID:SECRET", path.display(), n + 1)))?,
        );
    }
    Ok(out)
}

#[cfg(unix)]
pub(crate) fn refuse_if_readable_by_others(path: &Path) -> Result<(), ConfigError> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
    let mode = meta.permissions().mode();
    if mode & 0o004 != 0 {
        return Err(invalid(format!(
            "{} holds secrets but is readable by others (mode {:o}); chmod 600 (or 640) it",
            path.display(),
            mode & 0o777
        )));
    }
    Ok(())
}

#[cfg(not(unix))]
fn refuse_if_readable_by_others(_path: &Path) -> Result<(), ConfigError> {
    Ok(())
}

/// The process environment as a map, read once at start-up by `main`.
pub fn process_env() -> HashMap<String, String> {
    std::env::vars().filter(|(k, _)| k.starts_with("S3GATE_")).collect()
}
