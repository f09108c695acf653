//! Which destinations the forward proxy may reach: host patterns, the default list of AWS S3
//! endpoint names, and the parsing of a client's `host:port` into something safe to match.
//!
//! The proxy is never open: a destination must match a pattern, and its port must be listed.
//! Matching is done on a normalised name (lower case, no trailing dot), and anything that a
//! resolver might read as an address (`127.1`, `2130706433`, `0x7f.0.0.1`) is treated as an IP
//! literal, which only a pattern naming that exact address allows. Otherwise a wildcard for
//! names could be used to reach internal addresses.

use std::fmt;
use std::net::IpAddr;

/// The token that stands for [`AWS_S3_PATTERNS`] in an allow list, so a site can add its own
/// names to the defaults instead of copying them.
pub const AWS_S3_TOKEN: &str = "@aws-s3";

/// AWS S3 endpoint names in every region of the `aws` (incl. GovCloud) and `aws-cn` partitions:
/// global and regional, path and virtual-hosted style, legacy `s3-REGION`, dual-stack, FIPS,
/// access points and interface (PrivateLink) endpoints.
pub const AWS_S3_PATTERNS: &[&str] = &[
    "s3.amazonaws.com",
    "*.s3.amazonaws.com",
    "s3.*.amazonaws.com",
    "*.s3.*.amazonaws.com",
    "s3-*.amazonaws.com",
    "*.s3-*.amazonaws.com",
    "s3.dualstack.*.amazonaws.com",
    "*.s3.dualstack.*.amazonaws.com",
    "s3-fips.*.amazonaws.com",
    "*.s3-fips.*.amazonaws.com",
    "*.vpce.amazonaws.com",
    "s3.amazonaws.com.cn",
    "*.s3.amazonaws.com.cn",
    "s3.*.amazonaws.com.cn",
    "*.s3.*.amazonaws.com.cn",
    "s3-*.amazonaws.com.cn",
    "*.s3-*.amazonaws.com.cn",
    "s3.dualstack.*.amazonaws.com.cn",
    "*.s3.dualstack.*.amazonaws.com.cn",
    "*.vpce.amazonaws.com.cn",
];

/// A destination host as a client names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    /// A DNS name, lower case, without a trailing dot.
    Name(String),
    /// An IP address, or a name a resolver would read as one.
    Ip(String),
}

impl Host {
    /// Parses the host part of a CONNECT target or URI (`[::1]` brackets included).
    pub fn parse(host: &str) -> Result<Host, String> {
        if let Some(inner) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
            return inner.parse::<std::net::Ipv6Addr>().map(|ip| Host::Ip(ip.to_string())).map_err(|_| bad(host));
        }
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Ok(Host::Ip(ip.to_string()));
        }
        let name = host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase();
        if name.is_empty() || name.len() > 253 {
            return Err(bad(host));
        }
        for label in name.split('.') {
            let ok_chars = label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
            if label.is_empty() || label.len() > 63 || !ok_chars {
                return Err(bad(host));
            }
        }
        // No top-level domain is numeric, but resolvers accept `127.1` or `0x7f000001`.
        let last = name.rsplit('.').next().unwrap_or_default();
        if last.bytes().all(|b| b.is_ascii_digit()) || last.starts_with("0x") {
            return Ok(Host::Ip(name));
        }
        Ok(Host::Name(name))
    }

    /// The host as it is dialled and logged (IPv6 without brackets).
    pub fn as_str(&self) -> &str {
        match self {
            Host::Name(s) | Host::Ip(s) => s,
        }
    }
}

fn bad(host: &str) -> String {
    format!("not a host name or address: {host:?}")
}

/// A host and port a client asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    pub host: Host,
    pub port: u16,
}

impl fmt::Display for Destination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.host {
            Host::Ip(ip) if ip.contains(':') => write!(f, "[{ip}]:{}", self.port),
            h => write!(f, "{}:{}", h.as_str(), self.port),
        }
    }
}

/// A host pattern: a name where `*` stands for one or more characters of a name that neither
/// start nor end with a dot, so it covers one or more labels' worth (`*.s3.amazonaws.com`
/// matches `a.b.s3.amazonaws.com`, `s3-*.amazonaws.com` matches `s3-fips.us-east-1...`), or an
/// exact IP address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostPattern {
    Name(String),
    Ip(String),
}

impl HostPattern {
    pub fn parse(pattern: &str) -> Result<HostPattern, String> {
        let p = pattern.trim();
        if p.is_empty() {
            return Err("an empty host pattern".into());
        }
        if p.contains('*') {
            let sample = p.replace('*', "x");
            match Host::parse(&sample) {
                Ok(Host::Name(_)) => Ok(HostPattern::Name(p.strip_suffix('.').unwrap_or(p).to_ascii_lowercase())),
                _ => Err(format!("not a host pattern: {pattern:?}")),
            }
        } else {
            match Host::parse(p).map_err(|_| format!("not a host name, address or pattern: {pattern:?}"))? {
                Host::Name(n) => Ok(HostPattern::Name(n)),
                Host::Ip(ip) => Ok(HostPattern::Ip(ip)),
            }
        }
    }

    pub fn matches(&self, host: &Host) -> bool {
        match (self, host) {
            (HostPattern::Name(p), Host::Name(n)) => glob(p.as_bytes(), n.as_bytes()),
            (HostPattern::Ip(p), Host::Ip(ip)) => p == ip,
            _ => false,
        }
    }
}

impl fmt::Display for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostPattern::Name(s) | HostPattern::Ip(s) => f.write_str(s),
        }
    }
}

/// `*` matches a non-empty run that does not start or end with `.`. Patterns are short and hold
/// few stars, so plain backtracking is fine.
fn glob(p: &[u8], s: &[u8]) -> bool {
    match p.split_first() {
        None => s.is_empty(),
        Some((b'*', rest)) => {
            s.first().is_some_and(|&c| c != b'.') && (1..=s.len()).any(|n| s[n - 1] != b'.' && glob(rest, &s[n..]))
        }
        Some((c, rest)) => s.first() == Some(c) && glob(rest, &s[1..]),
    }
}

/// Parses `host:port` (a CONNECT target, or a URI authority with its default port).
pub fn parse_destination(host: &str, port: u16) -> Result<Destination, String> {
    Ok(Destination { host: Host::parse(host)?, port })
}

/// The hosts and ports the proxy may reach.
#[derive(Debug, Clone)]
pub struct AllowList {
    pub patterns: Vec<HostPattern>,
    /// Ports a CONNECT tunnel may reach.
    pub tunnel_ports: Vec<u16>,
    /// Ports a plain-HTTP (absolute-form) request may reach.
    pub http_ports: Vec<u16>,
}

/// Which kind of traffic asks: decides which port list applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    Tunnel,
    PlainHttp,
}

impl AllowList {
    /// Expands [`AWS_S3_TOKEN`] and parses every pattern.
    pub fn parse_patterns(patterns: &[String]) -> Result<Vec<HostPattern>, String> {
        let mut out = Vec::new();
        for p in patterns {
            if p.trim() == AWS_S3_TOKEN {
                out.extend(AWS_S3_PATTERNS.iter().map(|d| HostPattern::Name((*d).to_owned())));
            } else {
                out.push(HostPattern::parse(p)?);
            }
        }
        Ok(out)
    }

    /// `Ok` when allowed; otherwise the short reason sent to the client and logged.
    pub fn check(&self, dest: &Destination, via: Via) -> Result<(), String> {
        let ports = match via {
            Via::Tunnel => &self.tunnel_ports,
            Via::PlainHttp => &self.http_ports,
        };
        if !ports.contains(&dest.port) {
            let kind = if via == Via::Tunnel { "CONNECT" } else { "plain HTTP" };
            return Err(format!("port {} is not allowed for {kind}", dest.port));
        }
        if self.patterns.iter().any(|p| p.matches(&dest.host)) {
            return Ok(());
        }
        Err(match dest.host {
            Host::Ip(_) => format!("{} is an IP address, and no allow pattern names it", dest.host.as_str()),
            Host::Name(_) => format!("{} is not in the allow list", dest.host.as_str()),
        })
    }
}

#[cfg(test)]
mod tests;
