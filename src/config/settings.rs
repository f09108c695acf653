//! The settings of `s3gate serve`: its flags, the TOML file, and [`resolve`], which merges
//! flags > environment > file > default and reads nothing.

use std::collections::HashMap;
use std::path::PathBuf;

use clap::Args;
use serde::Deserialize;

use super::forward::{self, ForwardArgs, ForwardFile};
use super::{invalid, ConfigError, UpstreamAddressing};

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8099";
pub const DEFAULT_REGION: &str = "us-east-1";

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

/// Merges CLI > env > file > default. `env` is the environment as a map; `file` the text of
/// the `--config` file, if any. Reads nothing.
pub fn resolve(args: &ServeArgs, env: &HashMap<String, String>, file: Option<&str>) -> Result<Resolved, ConfigError> {
    let file_path = args.config.clone().unwrap_or_default();
    let f: FileConfig = match file {
        Some(text) => parse_file(text).map_err(|message| ConfigError::File { path: file_path.clone(), message })?,
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
        upstream_addressing: args.upstream_addressing.or(addressing_env).or(f.upstream_addressing).unwrap_or_default(),
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
        trusted_proxy: non_empty(&args.trusted_proxy).or(list("TRUSTED_PROXY")).or(f.trusted_proxy).unwrap_or_default(),
        storage_class: args.storage_class.clone().or(e("STORAGE_CLASS")).or(f.storage_class),
        metrics_listen: args.metrics_listen.clone().or(e("METRICS_LISTEN")).or(f.metrics_listen),
        audit_log: args.audit_log.clone().or(e("AUDIT_LOG")).or(f.audit_log),
        clients: f.client.unwrap_or_default(),
        routes: f.route.unwrap_or_default(),
        forward: forward::resolve(&args.forward, env, f.forward)?,
    })
}

/// The `--config` file's text as its tables; the error is the parser's message.
pub fn parse_file(text: &str) -> Result<FileConfig, String> {
    toml::from_str(text).map_err(|e| e.to_string())
}
