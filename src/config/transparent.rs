//! The transparent listener's options (`--transparent-*`, `S3GATE_TRANSPARENT_*`, the TOML
//! `[transparent]` table): clients that only had their S3 names resolved to s3gate (by its DNS
//! responder, [`super::dns`], or the site's), whose TLS s3gate passes through by its SNI.
//!
//! Kept apart from the endpoint's settings, as the forward proxy's are; `settings.rs` calls
//! [`resolve`] and `validate.rs` [`TransparentResolved::validate`].

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use serde::Deserialize;

use super::declare::{settings, Env};
use super::{invalid, ConfigError};
use crate::forward_rules::allow::{AllowList, HostPattern, AWS_S3_TOKEN};
use crate::forward_rules::connect_to::ConnectTo;
pub use crate::forward_rules::names::S3Names;

pub const DEFAULT_IDLE_TIMEOUT: u64 = 300;
pub const DEFAULT_CONNECT_TIMEOUT: u64 = 10;

settings! {
    keys in "transparent" {
        /// Address of the transparent (SNI passthrough) listener, e.g. 0.0.0.0:443 [default: off].
        #[arg(value_name = "ADDR")]
        transparent_listen as listen: Option<String>,
        /// TLS server name the transparent listener passes through, and the DNS responder
        /// answers with its own addresses (repeatable; the forward proxy's grammar: `*` is one
        /// label, `{region}` a region, `@aws-s3` the AWS S3 endpoint names) [default: @aws-s3].
        #[arg(value_name = "PATTERN")]
        transparent_allow as allow: Vec<String> = vec![AWS_S3_TOKEN.to_owned()],
        /// Bucket a virtual-hosted name (`BUCKET.s3.REGION.amazonaws.com`) may name (repeatable;
        /// `*` and `?` wildcards). With any, names that carry no bucket (path style) are
        /// refused, since their bucket is inside the TLS [default: every bucket].
        #[arg(value_name = "PATTERN")]
        transparent_allow_bucket as allow_bucket: Vec<String>,
        /// Send names matching PATTERN to HOST instead of resolving them (an interface
        /// endpoint's addresses); without a port on the right, 443 is kept (repeatable).
        #[arg(value_name = "PATTERN=HOST[:PORT]")]
        transparent_connect_to as connect_to: Vec<String>,
        /// Close a connection after this many seconds with no byte either way [default: 300].
        #[arg(value_name = "SECONDS")]
        transparent_idle_timeout as idle_timeout: Option<u64> = DEFAULT_IDLE_TIMEOUT,
        /// Connect timeout to the real endpoint, in seconds [default: 10].
        #[arg(value_name = "SECONDS")]
        transparent_connect_timeout as connect_timeout: Option<u64> = DEFAULT_CONNECT_TIMEOUT,
        /// Server name whose TLS is terminated and whose requests are read, checked and audited
        /// (repeatable; allow-list grammar); needs --inspect-ca-cert [default: none].
        #[arg(value_name = "PATTERN")]
        transparent_inspect as inspect: Vec<String>,
        /// IAM action an inspected request may be (repeatable; `*` and `?`, e.g. `s3:Get*`)
        /// [default: every action].
        #[arg(value_name = "ACTION")]
        transparent_allow_action as allow_action: Vec<String>,
        /// PEM CA certificate that issues inspect mode's certificates; clients must trust it.
        #[arg(value_name = "FILE", requires = "inspect_ca_key")]
        inspect_ca_cert as inspect_ca_cert: Option<PathBuf>,
        /// PEM private key of --inspect-ca-cert; must not be readable by others.
        #[arg(value_name = "FILE", requires = "inspect_ca_cert")]
        inspect_ca_key as inspect_ca_key: Option<PathBuf>,
        /// Extra PEM CA certificate(s) trusted for the real endpoint behind inspected names.
        #[arg(value_name = "FILE")]
        transparent_upstream_ca as upstream_ca: Option<PathBuf>,
    }

    /// `s3gate serve --transparent-*` flags.
    #[derive(Debug, Clone, Default, Args)]
    pub struct TransparentArgs {
        ..
    }

    /// The `[transparent]` table of the TOML file: the flag names without `transparent-`.
    #[derive(Debug, Default, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct TransparentFile {}

    /// Transparent-mode settings merged from the three sources.
    #[derive(Debug, Clone, Default)]
    pub struct TransparentResolved {
        /// The first option that only the listener uses, given while `listen` is not.
        pub stray: Option<String>,
    }
}

/// Inspect mode: which names, which actions, and the CA that issues their certificates.
#[derive(Debug, Clone)]
pub struct InspectConfig {
    pub names: Vec<HostPattern>,
    /// IAM action patterns (`*`, `?`); empty: every action.
    pub actions: Vec<String>,
    pub ca_cert: PathBuf,
    pub ca_key: PathBuf,
    pub upstream_ca: Option<PathBuf>,
}

/// The validated transparent-listener configuration.
#[derive(Debug, Clone)]
pub struct TransparentConfig {
    /// Names whose TLS is terminated instead of passed through; `None`: every name passes.
    pub inspect: Option<InspectConfig>,
    pub listen: SocketAddr,
    pub names: S3Names,
    pub connect_to: Vec<ConnectTo>,
    pub idle_timeout: Duration,
    pub connect_timeout: Duration,
    /// `--max-connections`, counted on this listener alone.
    pub max_connections: usize,
}

impl TransparentResolved {
    fn inspect(&self) -> Result<Option<InspectConfig>, ConfigError> {
        if self.inspect.is_empty() {
            if self.inspect_ca_cert.is_some() || !self.allow_action.is_empty() {
                return Err(invalid(
                    "inspect-ca-cert or transparent-allow-action is set but transparent-inspect is not",
                ));
            }
            return Ok(None);
        }
        let (Some(ca_cert), Some(ca_key)) = (&self.inspect_ca_cert, &self.inspect_ca_key) else {
            return Err(invalid("transparent-inspect needs inspect-ca-cert and inspect-ca-key"));
        };
        let names =
            AllowList::parse_patterns(&self.inspect).map_err(|e| invalid(format!("transparent-inspect: {e}")))?;
        for a in &self.allow_action {
            if !a.starts_with("s3:") {
                return Err(invalid(format!("transparent-allow-action: not an S3 action: {a:?}")));
            }
        }
        Ok(Some(InspectConfig {
            names,
            actions: self.allow_action.clone(),
            ca_cert: ca_cert.clone(),
            ca_key: ca_key.clone(),
            upstream_ca: self.upstream_ca.clone(),
        }))
    }
}

/// Merges CLI > env > file > default for the transparent options. Reads nothing.
pub fn resolve(
    args: &TransparentArgs,
    env: &Env,
    file: Option<TransparentFile>,
) -> Result<TransparentResolved, ConfigError> {
    let (mut resolved, given) = TransparentResolved::merge(args, env, &mut file.unwrap_or_default())?;
    // The allow list is the DNS responder's too, so it may be set without the listener.
    resolved.stray = given.iter().find(|key| !matches!(key.toml, "listen" | "allow")).map(|key| key.name());
    Ok(resolved)
}

impl TransparentResolved {
    /// The allow lists, which the DNS responder needs even without the listener.
    pub fn names(&self) -> Result<S3Names, ConfigError> {
        let patterns =
            AllowList::parse_patterns(&self.allow).map_err(|e| invalid(format!("transparent-allow: {e}")))?;
        for b in &self.allow_bucket {
            let ok = !b.is_empty() && b.bytes().all(|c| c.is_ascii_alphanumeric() || b"-.*?_".contains(&c));
            if !ok {
                return Err(invalid(format!("transparent-allow-bucket: not a bucket pattern: {b:?}")));
            }
        }
        Ok(S3Names { patterns, buckets: self.allow_bucket.iter().map(|b| b.to_ascii_lowercase()).collect() })
    }

    /// `None` when no transparent listener is configured.
    pub fn validate(&self) -> Result<Option<TransparentConfig>, ConfigError> {
        let Some(listen) = &self.listen else {
            return match &self.stray {
                Some(name) => Err(invalid(format!("{name} is set but transparent-listen is not"))),
                None => Ok(None),
            };
        };
        let listen: SocketAddr =
            listen.parse().map_err(|_| invalid(format!("transparent-listen: not an address (IP:PORT): {listen:?}")))?;
        let connect_to = self
            .connect_to
            .iter()
            .map(|r| ConnectTo::parse(r).map_err(|e| invalid(format!("transparent-connect-to: {e}"))))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Some(TransparentConfig {
            inspect: self.inspect()?,
            listen,
            names: self.names()?,
            connect_to,
            idle_timeout: Duration::from_secs(self.idle_timeout.max(1)),
            connect_timeout: Duration::from_secs(self.connect_timeout.max(1)),
            max_connections: crate::listener::limits::default_max_connections(),
        }))
    }
}
