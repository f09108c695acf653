//! Configuration: clap flags, `S3GATE_*` environment variables and a TOML file, merged into one
//! validated [`Config`].
//!
//! Three steps, and only the middle one reads anything:
//! 1. [`Config::resolve`]: flags > environment > file > default, a pure function of (arguments,
//!    environment map, file text), so tests pass a map instead of touching the process
//!    environment. Each key is declared once, in `settings.rs` (`forward.rs` for the forward
//!    proxy), which makes its flag, variable and TOML key.
//! 2. [`Files::read`] (`load.rs`): the files the settings name (credentials, secrets, policies,
//!    proxy users, CA bundles), with the permission checks of those that hold secrets.
//!    `load.rs` also reads the `--config` file itself.
//! 3. [`Config::validate_with`] (`validate.rs`): a pure function of the resolved settings and
//!    the files' contents that parses and checks every value.
//!
//! [`Config::load`] runs all three (`serve`, `check-config`, and `presign`, which reads the
//! serve configuration), [`Config::validate`] the last two.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use clap::ValueEnum;
use serde::Deserialize;

use crate::credentials::{Credential, KeyStore};

mod declare;
pub mod dns;
pub mod forward;
mod load;
mod routes;
mod settings;
pub mod sts;
pub mod transparent;
mod validate;

pub use declare::{Env, Key, Seconds};
pub use dns::{DnsArgs, DnsConfig};
pub use forward::{ForwardArgs, ForwardConfig, ForwardFile, ForwardResolved};
pub use load::read_config_file;
pub use routes::{AccessConfig, RouteConfig};
pub use settings::{ClientFile, FileConfig, Resolved, RouteFile, ServeArgs, DEFAULT_LISTEN, DEFAULT_REGION};
pub use sts::{OidcProvider, Role, StsArgs, StsConfig, Trust, UpstreamRole};
pub use transparent::{InspectConfig, S3Names, TransparentArgs, TransparentConfig};

/// How the upstream is addressed: `https://host/bucket/key` or `https://bucket.host/key`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum UpstreamAddressing {
    #[default]
    Path,
    Virtual,
}

impl declare::FromEnv for UpstreamAddressing {
    fn from_env(var: &str, text: &str) -> Result<Self, ConfigError> {
        match text {
            "path" => Ok(UpstreamAddressing::Path),
            "virtual" => Ok(UpstreamAddressing::Virtual),
            other => Err(invalid(format!("{var}: expected path or virtual, got {other:?}"))),
        }
    }
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum ConfigError {
    #[error("{0}")]
    Invalid(String),
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: Arc<std::io::Error> },
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
    /// How long health checks answer 503 before the listeners close, on SIGTERM.
    pub drain_delay: Duration,
    /// Connections each listener serves at once (`--max-connections`).
    pub max_connections: usize,
    /// `--serving-threads`: `None` is one per core (see `listener::workers`).
    pub serving_threads: Option<usize>,
    /// Base URL of minted presigned URLs; `None`: the caller's Host (API) or listen address (CLI).
    pub public_url: Option<http::Uri>,
    /// Forced on PutObject, CopyObject and CreateMultipartUpload unless a route sets its own.
    pub storage_class: Option<String>,
    /// `[[route]]` entries, first match wins; unmatched buckets use `upstream`.
    pub routes: Vec<RouteConfig>,
    pub access: AccessConfig,
    pub metrics_listen: Option<SocketAddr>,
    pub audit_log: Option<String>,
    /// False with `listen = "none"`: only the other listeners run, and `listen` is unused.
    pub endpoint: bool,
    /// The forward proxy, when `forward-listen` is set.
    pub forward: Option<ForwardConfig>,
    /// The SNI passthrough listener, when `transparent-listen` is set.
    pub transparent: Option<TransparentConfig>,
    /// The DNS responder, when `dns-listen` is set.
    pub dns: Option<DnsConfig>,
    /// `--dns-upstream`: where the transparent listener resolves the real S3 names (the
    /// system resolver may be s3gate's own responder); empty: the system resolver.
    pub resolvers: Vec<SocketAddr>,
    /// s3gate's own STS, and the keys that open its session tokens.
    pub sts: StsConfig,
}

impl Config {
    /// Merges CLI > env > file > default. `env` is the environment as a map; `file` the text of
    /// the `--config` file, if any. Reads nothing.
    pub fn resolve(args: &ServeArgs, env: &Env, file: Option<&str>) -> Result<Resolved, ConfigError> {
        settings::resolve(args, env, file)
    }

    /// Reads the config file and the files it names, then validates everything.
    pub fn load(args: &ServeArgs, env: &Env) -> Result<Config, ConfigError> {
        let text = args.config.as_deref().map(read_config_file).transpose()?;
        Self::validate(Self::resolve(args, env, text.as_deref())?)
    }

    /// Reads the files `r` names ([`Files::read`]), then validates ([`Config::validate_with`]).
    pub fn validate(r: Resolved) -> Result<Config, ConfigError> {
        let files = Files::read(&r);
        Self::validate_with(r, &files)
    }

    /// Turns resolved settings into a runnable config, with `files` holding the contents of
    /// the files they name. Reads nothing.
    pub fn validate_with(r: Resolved, files: &Files) -> Result<Config, ConfigError> {
        validate::config(r, files)
    }
}

/// Every declared key: the endpoint's, then the forward proxy's (`[forward]`), the
/// transparent listener's (`[transparent]`) and the DNS responder's (`[dns]`).
pub fn keys() -> impl Iterator<Item = &'static Key> {
    settings::KEYS.iter().chain(forward::KEYS).chain(transparent::KEYS).chain(dns::KEYS).chain(sts::KEYS)
}

/// How a file the settings name is used, which decides how it is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FileUse {
    /// Holds secrets (credentials, a client's secret, proxy users): refused when others may
    /// read it.
    Secret,
    /// A document (a policy), read as it is.
    Text,
    /// Read by its user when it starts (the upstream's CA bundle): only checked to exist.
    Present,
}

/// The contents of the files a configuration names, as [`Files::read`] found them: the input
/// of validation besides the settings. A file that could not be read keeps its error, which
/// validation reports when it reaches the setting, so errors come in the settings' order.
#[derive(Debug, Clone, Default)]
pub struct Files {
    contents: HashMap<(PathBuf, FileUse), Result<String, ConfigError>>,
}

impl Files {
    /// Records `text` as the contents of `path`, without reading it.
    pub fn insert(&mut self, path: impl Into<PathBuf>, how: FileUse, text: impl Into<String>) {
        self.contents.insert((path.into(), how), Ok(text.into()));
    }

    /// The contents of `path`, or why it could not be read.
    pub fn get(&self, path: &Path, how: FileUse) -> Result<&str, ConfigError> {
        match self.contents.get(&(path.to_owned(), how)) {
            Some(Ok(text)) => Ok(text),
            Some(Err(e)) => Err(e.clone()),
            None => Err(invalid(format!("{}: not read", path.display()))),
        }
    }

    /// The credentials in `path`, one `AKID:SECRET` per line (client credentials, proxy users).
    pub fn credentials(&self, path: &Path) -> Result<Vec<Credential>, ConfigError> {
        load::parse_credentials(path, self.get(path, FileUse::Secret)?)
    }
}

/// The process environment as a map, read once at start-up by `main`.
pub fn process_env() -> Env {
    std::env::vars().filter(|(k, _)| k.starts_with("S3GATE_")).collect()
}
