//! The transparent listener's options (`--transparent-*`, `S3GATE_TRANSPARENT_*`, the TOML
//! `[transparent]` table): clients that only had their S3 names resolved to s3gate (by its DNS
//! responder, [`super::dns`], or the site's), whose TLS s3gate passes through by its SNI.
//!
//! Kept apart from the endpoint's settings, as the forward proxy's are; `settings.rs` calls
//! [`resolve`] and `validate.rs` [`TransparentResolved::validate`].

use std::net::SocketAddr;
use std::time::Duration;

use clap::Args;
use serde::Deserialize;

use super::declare::{settings, Env};
use super::{invalid, ConfigError};
use crate::forward_rules::allow::{AllowList, AWS_S3_TOKEN};
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

/// The validated transparent-listener configuration.
#[derive(Debug, Clone)]
pub struct TransparentConfig {
    pub listen: SocketAddr,
    pub names: S3Names,
    pub connect_to: Vec<ConnectTo>,
    pub idle_timeout: Duration,
    pub connect_timeout: Duration,
    /// `--max-connections`, counted on this listener alone.
    pub max_connections: usize,
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
            listen,
            names: self.names()?,
            connect_to,
            idle_timeout: Duration::from_secs(self.idle_timeout.max(1)),
            connect_timeout: Duration::from_secs(self.connect_timeout.max(1)),
            max_connections: crate::listener::limits::default_max_connections(),
        }))
    }
}
