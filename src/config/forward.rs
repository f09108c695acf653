//! The forward-proxy options (`--forward-*`, `S3GATE_FORWARD_*`, the TOML `[forward]` table),
//! merged with the same precedence as the rest of the config: CLI > environment > file > default.
//!
//! Kept apart from the endpoint's settings because the proxy's options are many and
//! independent of them; `settings.rs` calls [`resolve`] and `validate.rs`
//! [`ForwardResolved::validate`].

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use serde::Deserialize;

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

/// `s3gate serve --forward-*` flags.
#[derive(Debug, Clone, Default, Args)]
pub struct ForwardArgs {
    /// Address of the forward (HTTPS_PROXY) listener, e.g. 0.0.0.0:3128 [default: off].
    #[arg(long, value_name = "ADDR")]
    pub forward_listen: Option<String>,
    /// Host pattern the proxy may reach (repeatable; `*` matches within exactly one label,
    /// `{region}` an AWS region name, `@aws-s3` is the default list of AWS S3 endpoint names)
    /// [default: @aws-s3].
    #[arg(long, value_name = "PATTERN")]
    pub forward_allow: Vec<String>,
    /// Port a CONNECT tunnel may reach (repeatable; `none` for no tunnels) [default: 443].
    #[arg(long, value_name = "PORT")]
    pub forward_allow_port: Vec<String>,
    /// Port a plain-HTTP (absolute-form) request may reach (repeatable; `none` to refuse plain
    /// HTTP) [default: 80].
    #[arg(long, value_name = "PORT")]
    pub forward_allow_http_port: Vec<String>,
    /// Send destinations matching PATTERN (and PORT, if given) to HOST instead of resolving
    /// them; without a port on the right, the destination's port is kept (repeatable).
    #[arg(long, value_name = "PATTERN[:PORT]=HOST[:PORT]")]
    pub forward_connect_to: Vec<String>,
    /// A proxy user `NAME:PASSWORD` (repeatable); with any, clients must authenticate (Basic).
    #[arg(long, value_name = "NAME:PASSWORD")]
    pub forward_user: Vec<String>,
    /// File of proxy users, one `NAME:PASSWORD` per line; must not be readable by others.
    #[arg(long, value_name = "FILE")]
    pub forward_users_file: Option<PathBuf>,
    /// Close a tunnel or request after this many seconds with no byte either way [default: 300].
    #[arg(long, value_name = "SECONDS")]
    pub forward_idle_timeout: Option<u64>,
    /// Connect timeout to a destination, in seconds [default: 10].
    #[arg(long, value_name = "SECONDS")]
    pub forward_connect_timeout: Option<u64>,
    /// Most tunnels and plain-HTTP requests at once; more get 503 [default: 1024].
    #[arg(long, value_name = "N")]
    pub forward_max_tunnels: Option<u64>,
}

/// The `[forward]` table of the TOML file: the flag names without `forward-`, `_` for `-`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForwardFile {
    pub listen: Option<String>,
    pub allow: Option<Vec<String>>,
    pub allow_port: Option<Vec<u16>>,
    pub allow_http_port: Option<Vec<u16>>,
    pub connect_to: Option<Vec<String>>,
    pub user: Option<Vec<String>>,
    pub users_file: Option<PathBuf>,
    pub idle_timeout: Option<u64>,
    pub connect_timeout: Option<u64>,
    pub max_tunnels: Option<u64>,
}

/// Forward-proxy settings merged from the three sources, before any file they name is read.
#[derive(Debug, Clone, Default)]
pub struct ForwardResolved {
    pub listen: Option<String>,
    pub allow: Vec<String>,
    pub allow_port: Vec<String>,
    pub allow_http_port: Vec<String>,
    pub connect_to: Vec<String>,
    pub user: Vec<String>,
    pub users_file: Option<PathBuf>,
    pub idle_timeout: u64,
    pub connect_timeout: u64,
    pub max_tunnels: u64,
    /// The first forward option given while `listen` is not: refused, rather than ignored.
    pub stray: Option<&'static str>,
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
pub fn resolve(
    args: &ForwardArgs,
    env: &HashMap<String, String>,
    file: Option<ForwardFile>,
) -> Result<ForwardResolved, ConfigError> {
    let f = file.unwrap_or_default();
    let e = |name: &str| env.get(&format!("S3GATE_FORWARD_{name}")).filter(|v| !v.is_empty()).cloned();
    let list = |name: &str| -> Option<Vec<String>> {
        e(name).map(|v| v.split(',').map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()).collect())
    };
    let num = |name: &str| -> Result<Option<u64>, ConfigError> {
        e(name)
            .map(|v| v.parse::<u64>().map_err(|_| invalid(format!("S3GATE_FORWARD_{name}: not a number: {v:?}"))))
            .transpose()
    };
    let cli = |v: &Vec<String>| if v.is_empty() { None } else { Some(v.clone()) };
    let ports = |v: Option<Vec<u16>>| v.map(|ps| ps.iter().map(u16::to_string).collect::<Vec<_>>());

    let allow = cli(&args.forward_allow).or(list("ALLOW")).or(f.allow);
    let allow_port = cli(&args.forward_allow_port).or(list("ALLOW_PORT")).or(ports(f.allow_port));
    let allow_http_port = cli(&args.forward_allow_http_port).or(list("ALLOW_HTTP_PORT")).or(ports(f.allow_http_port));
    let connect_to = cli(&args.forward_connect_to).or(list("CONNECT_TO")).or(f.connect_to);
    let user = cli(&args.forward_user).or(list("USER")).or(f.user);
    let users_file = args.forward_users_file.clone().or(e("USERS_FILE").map(PathBuf::from)).or(f.users_file);
    let idle_timeout = args.forward_idle_timeout.or(num("IDLE_TIMEOUT")?).or(f.idle_timeout);
    let connect_timeout = args.forward_connect_timeout.or(num("CONNECT_TIMEOUT")?).or(f.connect_timeout);
    let max_tunnels = args.forward_max_tunnels.or(num("MAX_TUNNELS")?).or(f.max_tunnels);

    let given: [(&'static str, bool); 9] = [
        ("forward-allow", allow.is_some()),
        ("forward-allow-port", allow_port.is_some()),
        ("forward-allow-http-port", allow_http_port.is_some()),
        ("forward-connect-to", connect_to.is_some()),
        ("forward-user", user.is_some()),
        ("forward-users-file", users_file.is_some()),
        ("forward-idle-timeout", idle_timeout.is_some()),
        ("forward-connect-timeout", connect_timeout.is_some()),
        ("forward-max-tunnels", max_tunnels.is_some()),
    ];
    Ok(ForwardResolved {
        listen: args.forward_listen.clone().or(e("LISTEN")).or(f.listen),
        allow: allow.unwrap_or_else(|| vec![AWS_S3_TOKEN.to_owned()]),
        allow_port: allow_port.unwrap_or_else(|| vec![DEFAULT_TUNNEL_PORT.to_string()]),
        allow_http_port: allow_http_port.unwrap_or_else(|| vec![DEFAULT_HTTP_PORT.to_string()]),
        connect_to: connect_to.unwrap_or_default(),
        user: user.unwrap_or_default(),
        users_file,
        idle_timeout: idle_timeout.unwrap_or(DEFAULT_IDLE_TIMEOUT),
        connect_timeout: connect_timeout.unwrap_or(DEFAULT_CONNECT_TIMEOUT),
        max_tunnels: max_tunnels.unwrap_or(DEFAULT_MAX_TUNNELS),
        stray: given.iter().find(|(_, set)| *set).map(|(name, _)| *name),
    })
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
            max_connections: crate::server::limits::default_max_connections(),
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
