//! Which destinations the forward proxy may reach: host patterns, the default list of AWS S3
//! endpoint names, and the parsing of a client's `host:port` into something safe to match.
//!
//! The proxy is never open: a destination must match a pattern, and its port must be listed.
//! Matching is done on a normalised name (lower case, no trailing dot), and anything that a
//! resolver might read as an address (`127.1`, `2130706433`, `0x7f.0.0.1`) is treated as an IP
//! literal, which only a pattern naming that exact address allows. Otherwise a wildcard for
//! names could be used to reach internal addresses.
//!
//! A pattern is matched label by label, and has as many labels as the names it matches: `*`
//! stands for one or more characters within one label, never a dot, so `*.s3.amazonaws.com`
//! matches `bucket.s3.amazonaws.com` but not `a.b.s3.amazonaws.com`, and `s3-*.amazonaws.com`
//! cannot reach `s3-x-123.us-east-1.elb.amazonaws.com`, a load balancer anyone can name.
//! `{region}` stands for an AWS region name (`us-east-1`, `us-gov-west-1`, `cn-north-1`) within
//! a label.
//!
//! The default list names S3's own endpoint grammar only: nothing like `*.vpce.amazonaws.com`,
//! which would reach every PrivateLink service (STS, Secrets Manager, other accounts' services),
//! or `*.amazonaws.com`. Virtual-hosted names of buckets with dots in their names
//! (`my.bucket.s3.amazonaws.com`) have more labels than `*.s3...` covers and are refused; AWS
//! itself recommends path style for those buckets, whose names its wildcard certificates do
//! not cover either.

use std::fmt;
use std::net::IpAddr;

/// The token that stands for [`aws_s3_patterns`] in an allow list, so a site can add its own
/// names to the defaults instead of copying them.
pub const AWS_S3_TOKEN: &str = "@aws-s3";

/// S3's endpoint names, before the partition's domain: `*` is one label, `{region}` a region.
const S3_NAMES: &[&str] = &[
    // Global and legacy (`s3-us-west-2`) names, path and virtual-hosted style.
    "s3",
    "*.s3",
    "s3-{region}",
    "*.s3-{region}",
    // Regional and dual-stack names.
    "s3.{region}",
    "*.s3.{region}",
    "s3.dualstack.{region}",
    "*.s3.dualstack.{region}",
    // Access points (NAME-ACCOUNT.), Object Lambda access points and Outposts.
    "*.s3-accesspoint.{region}",
    "*.s3-accesspoint.dualstack.{region}",
    "*.s3-object-lambda.{region}",
    "s3-outposts.{region}",
    "*.op-*.s3-outposts.{region}",
    // S3 Control, the account-level API (ACCOUNT.s3-control...): access points, Batch
    // Operations, Block Public Access. It is S3's own API and clients of S3 call it.
    "s3-control.{region}",
    "*.s3-control.{region}",
    "s3-control.dualstack.{region}",
    "*.s3-control.dualstack.{region}",
    // Static website endpoints (plain HTTP).
    "*.s3-website-{region}",
    "*.s3-website.{region}",
    // Interface (PrivateLink) endpoints of S3 only: bucket., accesspoint. and control. before
    // the endpoint id (vpce-1a2b3c4d-5e6f, or its zonal vpce-1a2b3c4d-5e6f-us-east-1a).
    "*.vpce-*.s3.{region}.vpce",
];

/// Names that exist in the `aws` partition only: FIPS, `s3-external-1`, Multi-Region Access
/// Points.
const S3_NAMES_AWS_ONLY: &[&str] = &[
    "s3-external-1",
    "*.s3-external-1",
    "s3-fips-{region}",
    "*.s3-fips-{region}",
    "s3-fips.{region}",
    "*.s3-fips.{region}",
    "s3-fips.dualstack.{region}",
    "*.s3-fips.dualstack.{region}",
    "*.s3-accesspoint-fips.{region}",
    "*.s3-accesspoint-fips.dualstack.{region}",
    "s3-control-fips.{region}",
    "*.s3-control-fips.{region}",
    "s3-control-fips.dualstack.{region}",
    "*.s3-control-fips.dualstack.{region}",
    "*.mrap.accesspoint.s3-global",
];

/// AWS S3 endpoint names in every region of the `aws` (incl. GovCloud) and `aws-cn`
/// partitions: what [`AWS_S3_TOKEN`] stands for.
pub fn aws_s3_patterns() -> Vec<String> {
    let aws = S3_NAMES.iter().chain(S3_NAMES_AWS_ONLY).map(|n| format!("{n}.amazonaws.com"));
    let cn = S3_NAMES.iter().map(|n| format!("{n}.amazonaws.com.cn"));
    aws.chain(cn).collect()
}

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

/// A host pattern: a name whose labels may hold `*` (one or more characters of one label) and
/// `{region}` (an AWS region name), matching names of as many labels; or an exact IP address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostPattern {
    Name(String),
    Ip(String),
}

/// The placeholder for an AWS region name in a pattern's label.
const REGION: &[u8] = b"{region}";

impl HostPattern {
    pub fn parse(pattern: &str) -> Result<HostPattern, String> {
        let p = pattern.trim();
        if p.is_empty() {
            return Err("an empty host pattern".into());
        }
        if p.contains('*') || p.contains("{region}") {
            // Checked with a real region in place of `{region}`: a pattern whose labels could
            // only match names longer than DNS allows is a mistake, not a pattern.
            let sample = p.replace("{region}", "us-east-1").replace('*', "x");
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
            (HostPattern::Name(p), Host::Name(n)) => {
                let (mut p, mut n) = (p.split('.'), n.split('.'));
                loop {
                    match (p.next(), n.next()) {
                        (None, None) => return true,
                        (Some(pl), Some(nl)) if label_matches(pl.as_bytes(), nl.as_bytes()) => {}
                        _ => return false,
                    }
                }
            }
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

/// One label against one pattern label: `*` matches a non-empty run, `{region}` a region name.
/// Labels are at most 63 bytes and patterns hold few placeholders, so trying each split is fine.
fn label_matches(p: &[u8], s: &[u8]) -> bool {
    let Some(at) = p.windows(REGION.len()).position(|w| w == REGION) else { return label_glob(p, s) };
    let (before, after) = (&p[..at], &p[at + REGION.len()..]);
    (0..=s.len()).any(|a| {
        label_glob(before, &s[..a]) && (a + 1..=s.len()).any(|b| is_region(&s[a..b]) && label_matches(after, &s[b..]))
    })
}

/// The wildcard part of a label, through the shared matcher: inside a label `*` is never
/// empty (`s3-*` does not match `s3-`), so it is one character and then any run.
fn label_glob(p: &[u8], s: &[u8]) -> bool {
    use crate::glob::{glob, Tok};
    let toks: Vec<Tok<u8>> =
        p.iter().flat_map(|&c| if c == b'*' { vec![Tok::One, Tok::Any] } else { vec![Tok::Lit(c)] }).collect();
    glob(&toks, s)
}

/// An AWS region name's shape: two letters, one or more words, a number (`us-east-1`,
/// `us-gov-west-1`, `us-isob-east-1`, `cn-northwest-1`, `ap-southeast-7`).
fn is_region(s: &[u8]) -> bool {
    let parts: Vec<&[u8]> = s.split(|&b| b == b'-').collect();
    let [first, words @ .., number] = parts.as_slice() else { return false };
    first.len() == 2
        && first.iter().all(u8::is_ascii_lowercase)
        && !words.is_empty()
        && words.iter().all(|w| !w.is_empty() && w.iter().all(u8::is_ascii_lowercase))
        && (1..=2).contains(&number.len())
        && number.iter().all(u8::is_ascii_digit)
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
                out.extend(aws_s3_patterns().into_iter().map(HostPattern::Name));
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
