//! The DNS responder's options (`--dns-*`, `S3GATE_DNS_*`, the TOML `[dns]` table): which
//! addresses it gives for the S3 names, where it sends every other question, and whom it
//! answers.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use clap::Args;
use serde::Deserialize;

use super::declare::{settings, Env};
use super::transparent::S3Names;
use super::{invalid, ConfigError};
use crate::net::{Cidr, CidrSet};

pub const DEFAULT_TTL: u64 = 60;
pub const DEFAULT_UPSTREAM_TIMEOUT: u64 = 3;

settings! {
    keys in "dns" {
        /// Address of the DNS responder, UDP and TCP, e.g. 0.0.0.0:53 [default: off].
        #[arg(value_name = "ADDR")]
        dns_listen as listen: Option<String>,
        /// Address given for the S3 names: s3gate's own, where its transparent listener is
        /// reached (repeatable, IPv4 for A and IPv6 for AAAA; several for HA).
        #[arg(value_name = "IP")]
        dns_answer as answer: Vec<String>,
        /// Resolver every other question is forwarded to (repeatable; port 53 unless given).
        /// Without one, other names are refused.
        #[arg(value_name = "IP[:PORT]")]
        dns_upstream as upstream: Vec<String>,
        /// Answer only clients from these networks (repeatable; IPv4 or IPv6 CIDR); others get
        /// REFUSED, so the responder is never an open resolver [default: loopback only].
        #[arg(value_name = "CIDR")]
        dns_allowed_source_subnet as allowed_source_subnet: Vec<String>,
        /// TTL of the answers for the S3 names, in seconds [default: 60].
        #[arg(value_name = "SECONDS")]
        dns_ttl as ttl: Option<u64> = DEFAULT_TTL,
        /// How long an upstream resolver has to answer, in seconds [default: 3].
        #[arg(value_name = "SECONDS")]
        dns_upstream_timeout as upstream_timeout: Option<u64> = DEFAULT_UPSTREAM_TIMEOUT,
    }

    /// `s3gate serve --dns-*` flags.
    #[derive(Debug, Clone, Default, Args)]
    pub struct DnsArgs {
        ..
    }

    /// The `[dns]` table of the TOML file: the flag names without `dns-`.
    #[derive(Debug, Default, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct DnsFile {}

    /// DNS settings merged from the three sources.
    #[derive(Debug, Clone, Default)]
    pub struct DnsResolved {
        pub stray: Option<String>,
    }
}

/// The validated DNS responder configuration.
#[derive(Debug, Clone)]
pub struct DnsConfig {
    pub listen: SocketAddr,
    pub names: S3Names,
    pub answers: Vec<IpAddr>,
    pub upstreams: Vec<SocketAddr>,
    pub sources: CidrSet,
    pub ttl: u32,
    pub upstream_timeout: Duration,
}

pub fn resolve(args: &DnsArgs, env: &Env, file: Option<DnsFile>) -> Result<DnsResolved, ConfigError> {
    let (mut resolved, given) = DnsResolved::merge(args, env, &mut file.unwrap_or_default())?;
    // The upstreams also resolve the transparent listener's destinations.
    resolved.stray = given.iter().find(|key| !matches!(key.toml, "listen" | "upstream")).map(|key| key.name());
    Ok(resolved)
}

impl DnsResolved {
    /// The upstream resolvers, which the transparent listener also uses without the responder.
    pub fn upstreams(&self) -> Result<Vec<SocketAddr>, ConfigError> {
        self.upstream.iter().map(|u| upstream(u)).collect()
    }

    /// `None` when no responder is configured.
    pub fn validate(&self, names: S3Names) -> Result<Option<DnsConfig>, ConfigError> {
        let Some(listen) = &self.listen else {
            return match &self.stray {
                Some(name) => Err(invalid(format!("{name} is set but dns-listen is not"))),
                None => Ok(None),
            };
        };
        let listen: SocketAddr =
            listen.parse().map_err(|_| invalid(format!("dns-listen: not an address (IP:PORT): {listen:?}")))?;
        let answers = (self.answer.iter())
            .map(|a| a.trim().parse::<IpAddr>().map_err(|_| invalid(format!("dns-answer: not an IP address: {a:?}"))))
            .collect::<Result<Vec<_>, _>>()?;
        if answers.is_empty() {
            return Err(invalid("dns-listen is set but dns-answer is not: the S3 names need an address"));
        }
        let subnets = if self.allowed_source_subnet.is_empty() {
            vec!["127.0.0.0/8".to_owned(), "::1/128".to_owned()]
        } else {
            self.allowed_source_subnet.clone()
        };
        let sources = (subnets.iter())
            .map(|s| s.parse::<Cidr>().map_err(|e| invalid(format!("dns-allowed-source-subnet: {e}"))))
            .collect::<Result<CidrSet, _>>()?;
        Ok(Some(DnsConfig {
            listen,
            names,
            answers,
            upstreams: self.upstreams()?,
            sources,
            ttl: self.ttl.min(u64::from(u32::MAX)) as u32,
            upstream_timeout: Duration::from_secs(self.upstream_timeout.max(1)),
        }))
    }
}

/// `IP` or `IP:PORT` (`[v6]:PORT`); port 53 by default.
fn upstream(text: &str) -> Result<SocketAddr, ConfigError> {
    let t = text.trim();
    if let Ok(ip) = t.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, 53));
    }
    t.parse().map_err(|_| invalid(format!("dns-upstream: not an address (IP[:PORT]): {text:?}")))
}
