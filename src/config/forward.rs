//! The forward-proxy options (`--forward-*`, `S3GATE_FORWARD_*`, the TOML `[forward]` table),
//! merged with the same precedence as the rest of the config: CLI > environment > file > default.
//!
//! Kept apart from the endpoint's settings because the proxy's options are many and
//! independent of them; `settings.rs` calls [`resolve`] and `validate.rs`
//! [`ForwardResolved::validate`].

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use serde::Deserialize;

use super::declare::{settings, Env, Ports};
use super::{invalid, ConfigError, Files};
use crate::credentials::Credential;
use crate::forward_rules::allow::{AllowList, AWS_S3_TOKEN};
use crate::forward_rules::auth::ProxyUsers;
use crate::forward_rules::connect_to::ConnectTo;

pub const DEFAULT_IDLE_TIMEOUT: u64 = 300;
pub const DEFAULT_CONNECT_TIMEOUT: u64 = 10;
pub const DEFAULT_MAX_TUNNELS: u64 = 1024;
pub const DEFAULT_TUNNEL_PORT: u16 = 443;
pub const DEFAULT_HTTP_PORT: u16 = 80;

settings! {
    keys in "forward" {
        /// Address of the forward (HTTPS_PROXY) listener, e.g. 0.0.0.0:3128 [default: off].
        #[arg(value_name = "ADDR")]
        forward_listen as listen: Option<String>,
        /// Host pattern the proxy may reach (repeatable; `*` matches within exactly one label,
        /// `{region}` an AWS region name, `@aws-s3` is the default list of AWS S3 endpoint names)
        /// [default: @aws-s3].
        #[arg(value_name = "PATTERN")]
        forward_allow as allow: Vec<String> = vec![AWS_S3_TOKEN.to_owned()],
        /// Port a CONNECT tunnel may reach (repeatable; `none` for no tunnels) [default: 443].
        #[arg(value_name = "PORT")]
        #[toml(Ports)]
        forward_allow_port as allow_port: Vec<String> = vec![DEFAULT_TUNNEL_PORT.to_string()],
        /// Port a plain-HTTP (absolute-form) request may reach (repeatable; `none` to refuse plain
        /// HTTP) [default: 80].
        #[arg(value_name = "PORT")]
        #[toml(Ports)]
        forward_allow_http_port as allow_http_port: Vec<String> = vec![DEFAULT_HTTP_PORT.to_string()],
        /// Send destinations matching PATTERN (and PORT, if given) to HOST instead of resolving
        /// them; without a port on the right, the destination's port is kept (repeatable).
        #[arg(value_name = "PATTERN[:PORT]=HOST[:PORT]")]
        forward_connect_to as connect_to: Vec<String>,
        /// A proxy user `NAME:PASSWORD` (repeatable); with any, clients must authenticate (Basic).
        #[arg(value_name = "NAME:PASSWORD")]
        forward_user as user: Vec<String>,
        /// File of proxy users, one `NAME:PASSWORD` per line; must not be readable by others.
        #[arg(value_name = "FILE")]
        forward_users_file as users_file: Option<PathBuf>,
        /// Close a tunnel or request after this many seconds with no byte either way [default: 300].
        #[arg(value_name = "SECONDS")]
        forward_idle_timeout as idle_timeout: Option<u64> = DEFAULT_IDLE_TIMEOUT,
        /// Connect timeout to a destination, in seconds [default: 10].
        #[arg(value_name = "SECONDS")]
        forward_connect_timeout as connect_timeout: Option<u64> = DEFAULT_CONNECT_TIMEOUT,
        /// Most tunnels and plain-HTTP requests at once; more get 503 [default: 1024].
        #[arg(value_name = "N")]
        forward_max_tunnels as max_tunnels: Option<u64> = DEFAULT_MAX_TUNNELS,
    }

    /// `s3gate serve --forward-*` flags.
    #[derive(Debug, Clone, Default, Args)]
    pub struct ForwardArgs {
        ..
    }

    /// The `[forward]` table of the TOML file: the flag names without `forward-`, `_` for `-`.
    #[derive(Debug, Default, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct ForwardFile {}

    /// Forward-proxy settings merged from the three sources, before any file they name is read.
    #[derive(Debug, Clone, Default)]
    pub struct ForwardResolved {
        /// The first forward option given while `listen` is not: refused, rather than ignored.
        pub stray: Option<String>,
    }
}

/// The validated forward-proxy configuration.
#[derive(Debug, Clone)]
pub struct ForwardConfig {
    pub listen: SocketAddr,
    pub allow: AllowList,
    pub connect_to: Vec<ConnectTo>,
    pub users: ProxyUsers,
    pub idle_timeout: Duration,
    pub connect_timeout: Duration,
    pub max_tunnels: usize,
    /// `--max-connections`, which the endpoint's listener has too (each counts its own).
    pub max_connections: usize,
}

/// Merges CLI > env > file > default for the forward options. Reads nothing.
pub fn resolve(args: &ForwardArgs, env: &Env, file: Option<ForwardFile>) -> Result<ForwardResolved, ConfigError> {
    let (mut resolved, given) = ForwardResolved::merge(args, env, &mut file.unwrap_or_default())?;
    resolved.stray = given.iter().find(|key| key.toml != "listen").map(|key| key.name());
    Ok(resolved)
}

impl ForwardResolved {
    /// `None` when no forward listener is configured. The users file comes from `files`.
    pub fn validate(self, files: &Files) -> Result<Option<ForwardConfig>, ConfigError> {
        let Some(listen) = &self.listen else {
            return match self.stray {
                Some(name) => Err(invalid(format!("{name} is set but forward-listen is not"))),
                None => Ok(None),
            };
        };
        let listen: SocketAddr =
            listen.parse().map_err(|_| invalid(format!("forward-listen: not an address (IP:PORT): {listen:?}")))?;
        let patterns = AllowList::parse_patterns(&self.allow).map_err(|e| invalid(format!("forward-allow: {e}")))?;
        let allow = AllowList {
            patterns,
            tunnel_ports: parse_ports("forward-allow-port", &self.allow_port)?,
            http_ports: parse_ports("forward-allow-http-port", &self.allow_http_port)?,
        };
        let connect_to = self
            .connect_to
            .iter()
            .map(|r| ConnectTo::parse(r).map_err(|e| invalid(format!("forward-connect-to: {e}"))))
            .collect::<Result<Vec<_>, _>>()?;
        let mut users = Vec::new();
        for (i, pair) in self.user.iter().enumerate() {
            let user = Credential::parse(pair)
                .ok_or_else(|| invalid(format!("forward-user #{}: expected NAME:PASSWORD", i + 1)))?;
            users.push(user);
        }
        if let Some(path) = &self.users_file {
            users.extend(files.credentials(path)?);
        }
        if self.max_tunnels == 0 || self.max_tunnels > tokio::sync::Semaphore::MAX_PERMITS as u64 {
            return Err(invalid(format!("forward-max-tunnels: out of range: {}", self.max_tunnels)));
        }
        Ok(Some(ForwardConfig {
            listen,
            allow,
            connect_to,
            users: ProxyUsers::new(users),
            idle_timeout: Duration::from_secs(self.idle_timeout.max(1)),
            connect_timeout: Duration::from_secs(self.connect_timeout.max(1)),
            max_tunnels: self.max_tunnels as usize,
            max_connections: crate::listener::limits::default_max_connections(),
        }))
    }
}

/// Port numbers, or `none` for an empty list (the only way to say "none" on a command line).
fn parse_ports(what: &str, values: &[String]) -> Result<Vec<u16>, ConfigError> {
    let mut out = Vec::new();
    for v in values {
        if v.eq_ignore_ascii_case("none") {
            continue;
        }
        match v.trim().parse::<u16>() {
            Ok(p) if p > 0 => out.push(p),
            _ => return Err(invalid(format!("{what}: not a port number: {v:?}"))),
        }
    }
    Ok(out)
}
