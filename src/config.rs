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
    /// Upstream TCP+TLS connect timeout in seconds [default: 5].
    #[arg(long, value_name = "SECONDS")]
    pub upstream_connect_timeout: Option<u64>,
    /// Longest silence tolerated, in seconds: from the upstream once a request body is sent,
    /// inside an upstream response body, and inside a client's request body [default: 120].
    #[arg(long, value_name = "SECONDS")]
    pub upstream_timeout: Option<u64>,
    /// Seconds to let requests in flight finish on shutdown [default: 30].
    #[arg(long, value_name = "SECONDS")]
    pub shutdown_grace: Option<u64>,
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
    pub upstream_connect_timeout: Option<u64>,
    pub upstream_timeout: Option<u64>,
    pub shutdown_grace: Option<u64>,
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

fn invalid(msg: impl Into<String>) -> ConfigError {
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
    pub shutdown_grace: Duration,
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
    pub upstream_connect_timeout: u64,
    pub upstream_timeout: u64,
    pub shutdown_grace: u64,
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
            upstream_connect_timeout: args
                .upstream_connect_timeout
                .or(num("UPSTREAM_CONNECT_TIMEOUT")?)
                .or(f.upstream_connect_timeout)
                .unwrap_or(5),
            upstream_timeout: args.upstream_timeout.or(num("UPSTREAM_TIMEOUT")?).or(f.upstream_timeout).unwrap_or(120),
            shutdown_grace: args.shutdown_grace.or(num("SHUTDOWN_GRACE")?).or(f.shutdown_grace).unwrap_or(30),
        })
    }

    /// Reads the config file and the files it names, then validates everything.
    pub fn load(args: &ServeArgs, env: &HashMap<String, String>) -> Result<Config, ConfigError> {
        let text = match &args.config {
            Some(path) => Some(read_text(path)?),
            None => None,
        };
        let resolved = Self::resolve(args, env, text.as_deref())?;
        Self::validate(resolved)
    }

    /// Turns resolved settings into a runnable config, reading the credentials file.
    pub fn validate(r: Resolved) -> Result<Config, ConfigError> {
        let listen: SocketAddr =
            r.listen.parse().map_err(|_| invalid(format!("listen: not an address (IP:PORT): {:?}", r.listen)))?;
        let upstream_url = r.upstream.clone().unwrap_or_else(|| format!("https://s3.{}.amazonaws.com", r.region));
        let url: http::Uri =
            upstream_url.parse().map_err(|_| invalid(format!("upstream: not a URL: {upstream_url:?}")))?;
        match url.scheme_str() {
            Some("http") | Some("https") => {}
            _ => return Err(invalid(format!("upstream: must be an http:// or https:// URL: {upstream_url:?}"))),
        }
        if url.host().is_none() {
            return Err(invalid(format!("upstream: no host in {upstream_url:?}")));
        }
        if !matches!(url.path(), "" | "/") {
            return Err(invalid(format!("upstream: a path prefix is not supported: {upstream_url:?}")));
        }
        if r.region.is_empty() || !r.region.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            return Err(invalid(format!("region: not a region name: {:?}", r.region)));
        }
        let upstream_credentials = match &r.upstream_credentials {
            Some(pair) => UpstreamCredentials::Static(
                Credential::parse(pair).ok_or_else(|| invalid("upstream-credentials: expected AKID:SECRET"))?,
            ),
            None => UpstreamCredentials::DefaultChain,
        };
        if let Some(ca) = &r.upstream_ca {
            std::fs::metadata(ca).map_err(|source| ConfigError::Read { path: ca.clone(), source })?;
        }

        let mut creds = Vec::new();
        for (i, pair) in r.credentials.iter().enumerate() {
            creds.push(
                Credential::parse(pair)
                    .ok_or_else(|| invalid(format!("credentials #{}: expected AKID:SECRET", i + 1)))?,
            );
        }
        if let Some(path) = &r.credentials_file {
            creds.extend(read_credentials_file(path)?);
        }
        if creds.is_empty() {
            return Err(invalid("no client credentials: give --credentials AKID:SECRET or --credentials-file FILE"));
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

        Ok(Config {
            listen,
            upstream: UpstreamConfig {
                url,
                region: r.region,
                addressing: r.upstream_addressing,
                ca_file: r.upstream_ca,
                credentials: upstream_credentials,
                connect_timeout: Duration::from_secs(r.upstream_connect_timeout.max(1)),
                idle_timeout: Duration::from_secs(r.upstream_timeout.max(1)),
            },
            keys: KeyStore::new(creds),
            domains: r.domain.iter().map(|d| d.to_ascii_lowercase()).collect(),
            tls,
            max_clock_skew: Duration::from_secs(r.max_clock_skew),
            shutdown_grace: Duration::from_secs(r.shutdown_grace),
        })
    }
}

fn read_text(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_owned(), source })
}

/// One `AKID:SECRET` per line; blank lines and `#` comments are skipped. A file that group or
/// others may read is refused: it holds secrets.
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
fn refuse_if_readable_by_others(path: &Path) -> Result<(), ConfigError> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
    let mode = meta.permissions().mode();
    if mode & 0o044 != 0 {
        return Err(invalid(format!(
            "{} holds secrets but is readable by group or others (mode {:o}); chmod 600 it",
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
