//! The settings of `s3gate serve`, each declared once (see [`super::declare`]), and
//! [`resolve`], which merges flags > environment > file > default and reads nothing.

use std::path::PathBuf;

use clap::Args;
use serde::Deserialize;

use super::declare::{settings, Env, Seconds};
use super::dns::{self, DnsArgs, DnsFile, DnsResolved};
use super::forward::{self, ForwardArgs, ForwardFile, ForwardResolved};
use super::sts::{self, OidcProviderFile, RoleFile, StsArgs, StsFile, StsResolved};
use super::transparent::{self, TransparentArgs, TransparentFile, TransparentResolved};
use super::{ConfigError, UpstreamAddressing};

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8099";
pub const DEFAULT_REGION: &str = "us-east-1";

settings! {
    keys {
        /// Address the S3 endpoint listens on [default: 127.0.0.1:8099].
        #[arg(value_name = "ADDR")]
        listen: Option<String> = DEFAULT_LISTEN.to_owned(),
        /// Upstream S3 endpoint URL [default: https://s3.<region>.amazonaws.com].
        #[arg(value_name = "URL")]
        upstream: Option<String>,
        /// The upstream's signing region [default: us-east-1].
        #[arg(value_name = "NAME")]
        region: Option<String> = DEFAULT_REGION.to_owned(),
        /// Extra PEM CA certificate(s) to trust for a private upstream.
        #[arg(value_name = "FILE")]
        upstream_ca: Option<PathBuf>,
        /// Upstream credentials `AKID:SECRET`; without it, the AWS default credential chain.
        #[arg(value_name = "AKID:SECRET")]
        upstream_credentials: Option<String>,
        /// `path` (https://host/bucket/key) or `virtual` (https://bucket.host/key) [default: path].
        #[arg(value_enum)]
        upstream_addressing: Option<UpstreamAddressing> = UpstreamAddressing::Path,
        /// A client credential `AKID:SECRET` s3gate accepts (repeatable).
        #[arg(value_name = "AKID:SECRET")]
        credentials: Vec<String>,
        /// File of client credentials, one `AKID:SECRET` per line; must not be readable by others.
        #[arg(value_name = "FILE")]
        credentials_file: Option<PathBuf>,
        /// Domain for virtual-hosted-style requests: `BUCKET.NAME[:port]` (repeatable).
        #[arg(value_name = "NAME")]
        domain: Vec<String>,
        /// PEM certificate chain for HTTPS to clients.
        #[arg(value_name = "FILE", requires = "tls_key")]
        tls_cert: Option<PathBuf>,
        /// PEM private key for HTTPS to clients.
        #[arg(value_name = "FILE", requires = "tls_cert")]
        tls_key: Option<PathBuf>,
        /// Largest accepted difference between a request's date and now, in seconds [default: 900].
        #[arg(value_name = "SECONDS")]
        max_clock_skew: Option<u64> = 900,
        /// Check a signed body's SHA-256 in s3gate too, not only upstream: for S3-compatible
        /// stores that ignore `x-amz-content-sha256` [default: false; AWS S3 checks it].
        #[arg(value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
        verify_body_hash: Option<bool> = false,
        /// Upstream TCP+TLS connect timeout in seconds [default: 5].
        #[arg(value_name = "SECONDS")]
        upstream_connect_timeout: Option<u64> = 5,
        /// Serve only clients from these networks (repeatable; IPv4 or IPv6 CIDR) [default: all].
        #[arg(value_name = "CIDR")]
        allowed_source_subnet: Vec<String>,
        /// Host values the endpoint answers to (repeatable); others get 403 [default: any].
        #[arg(value_name = "HOST[:PORT]")]
        allowed_endpoint: Vec<String>,
        /// Load balancers whose PROXY protocol header and X-Forwarded-For s3gate believes (repeatable).
        #[arg(value_name = "CIDR")]
        trusted_proxy: Vec<String>,
        /// Storage class forced on PutObject, CopyObject and CreateMultipartUpload.
        #[arg(value_name = "CLASS")]
        storage_class: Option<String>,
        /// Address of the Prometheus listener (`/metrics`, `/health`) [default: off].
        #[arg(value_name = "ADDR")]
        metrics_listen: Option<String>,
        /// JSON audit log, one line per request: a file path, or `-` for stdout; reopened on SIGHUP.
        #[arg(value_name = "FILE|-")]
        audit_log: Option<String>,
        /// Longest silence tolerated, in seconds: from the upstream once a request body is sent,
        /// inside an upstream response body, and inside a client's request body [default: 120].
        #[arg(value_name = "SECONDS")]
        upstream_timeout: Option<u64> = 120,
        /// Seconds to let requests in flight finish on shutdown [default: 30].
        #[arg(value_name = "SECONDS")]
        shutdown_grace: Option<u64> = 30,
        /// Seconds between SIGTERM and closing the listeners, while health checks answer 503 and
        /// every request is still served: long enough for a load balancer to take this replica
        /// out (a few of its health-check intervals) [default: 5].
        #[arg(value_name = "SECONDS")]
        drain_delay: Option<Seconds> = Seconds(5.0),
        /// Connections each listener (endpoint, forward proxy) serves at once; past it a new one is
        /// answered 503 SlowDown and closed [default: 1024 per core, at most 65536].
        #[arg(value_name = "N")]
        max_connections: Option<u64>,
        /// Threads that serve connections, each with its own event loop and upstream connection
        /// pool; a connection stays on one for its life [default: one per core].
        #[arg(value_name = "N")]
        serving_threads: Option<u64>,
        /// Base URL of minted presigned URLs (`https://s3.intranet.example.com`); virtual-hosted
        /// when its host is a --domain [default: the caller's Host, or the listen address].
        #[arg(value_name = "URL")]
        public_url: Option<String>,
    }

    /// `s3gate serve` flags. Every one is optional here so that the environment and the file can
    /// fill what the command line leaves out.
    #[derive(Debug, Clone, Default, Args)]
    pub struct ServeArgs {
        /// TOML config file (see examples/s3gate.toml for every key).
        #[arg(long, value_name = "FILE")]
        pub config: Option<PathBuf>,
        ..
        /// The forward-proxy listener and its options (`--forward-*`).
        #[command(flatten)]
        pub forward: ForwardArgs,
        /// The transparent (SNI passthrough) listener and its options (`--transparent-*`).
        #[command(flatten)]
        pub transparent: TransparentArgs,
        /// The DNS responder and its options (`--dns-*`).
        #[command(flatten)]
        pub dns: DnsArgs,
        /// s3gate's own STS (`--sts-*`).
        #[command(flatten)]
        pub sts: StsArgs,
    }

    /// The TOML file. Keys are the flag names with `_` for `-`.
    #[derive(Debug, Default, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct FileConfig {
        /// `[[client]]` tables: a credential with its policy.
        pub client: Option<Vec<ClientFile>>,
        /// `[[route]]` tables: where buckets matching a pattern go.
        pub route: Option<Vec<RouteFile>>,
        /// The `[forward]` table: the forward proxy.
        pub forward: Option<ForwardFile>,
        /// The `[transparent]` table: the SNI passthrough listener.
        pub transparent: Option<TransparentFile>,
        /// The `[dns]` table: the DNS responder.
        pub dns: Option<DnsFile>,
        /// The `[sts]` table: s3gate's own STS.
        pub sts: Option<StsFile>,
        /// `[[oidc_provider]]` tables: identity providers whose tokens the STS accepts.
        pub oidc_provider: Option<Vec<OidcProviderFile>>,
        /// `[[role]]` tables: roles clients assume through the STS.
        pub role: Option<Vec<RoleFile>>,
    }

    /// Settings merged from the three sources, before any file they name is read.
    #[derive(Debug, Clone, Default)]
    pub struct Resolved {
        pub clients: Vec<ClientFile>,
        pub routes: Vec<RouteFile>,
        pub forward: ForwardResolved,
        pub transparent: TransparentResolved,
        pub dns: DnsResolved,
        pub sts: StsResolved,
        pub oidc_providers: Vec<OidcProviderFile>,
        pub roles: Vec<RoleFile>,
    }
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
    /// An IAM role s3gate assumes upstream for this credential, so that CloudTrail and the
    /// bucket policy see it rather than s3gate.
    pub upstream_role_arn: Option<String>,
    pub upstream_external_id: Option<String>,
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
    /// An IAM role s3gate assumes upstream, per client, for the requests this route sends,
    /// unless the client's own upstream role is in the same account.
    pub upstream_role_arn: Option<String>,
    pub upstream_external_id: Option<String>,
}

/// Merges CLI > env > file > default. `env` is the environment as a map; `file` the text of
/// the `--config` file, if any. Reads nothing.
pub fn resolve(args: &ServeArgs, env: &Env, file: Option<&str>) -> Result<Resolved, ConfigError> {
    let mut file: FileConfig = match file {
        Some(text) => parse_file(text)
            .map_err(|message| ConfigError::File { path: args.config.clone().unwrap_or_default(), message })?,
        None => FileConfig::default(),
    };
    let (mut resolved, _) = Resolved::merge(args, env, &mut file)?;
    resolved.clients = file.client.unwrap_or_default();
    resolved.routes = file.route.unwrap_or_default();
    resolved.forward = forward::resolve(&args.forward, env, file.forward)?;
    resolved.transparent = transparent::resolve(&args.transparent, env, file.transparent)?;
    resolved.dns = dns::resolve(&args.dns, env, file.dns)?;
    resolved.sts = sts::resolve(&args.sts, env, file.sts)?;
    resolved.oidc_providers = file.oidc_provider.unwrap_or_default();
    resolved.roles = file.role.unwrap_or_default();
    Ok(resolved)
}

/// The `--config` file's text as its tables; the error is the parser's message.
pub fn parse_file(text: &str) -> Result<FileConfig, String> {
    toml::from_str(text).map_err(|e| e.to_string())
}
