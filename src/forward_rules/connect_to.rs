//! `--forward-connect-to` rules: destinations that are dialled at a fixed address instead of the
//! one DNS gives.

use std::fmt;

use super::allow::{Destination, HostPattern};

/// `PATTERN[:PORT]=HOST[:PORT]`: destinations whose host matches (and whose port is PORT, when
/// given) go to HOST instead of what DNS says: an interface endpoint's private IPs, a test
/// server. Without a port on the right the destination's own port is kept, so one rule serves
/// both CONNECT to 443 and plain HTTP to 80. PATTERN is an allow-list pattern: `*` is one label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectTo {
    pub pattern: HostPattern,
    pub only_port: Option<u16>,
    pub host: String,
    pub port: Option<u16>,
}

impl ConnectTo {
    pub fn parse(rule: &str) -> Result<ConnectTo, String> {
        let expected = || format!("expected PATTERN[:PORT]=HOST[:PORT], got {rule:?}");
        let (from, to) = rule.trim().split_once('=').ok_or_else(expected)?;
        let (pattern, only_port) = split_port(from).ok_or_else(expected)?;
        let (host, port) = split_port(to).ok_or_else(expected)?;
        if host.is_empty() || pattern.is_empty() {
            return Err(expected());
        }
        Ok(ConnectTo { pattern: HostPattern::parse(pattern)?, only_port, host: host.to_owned(), port })
    }

    /// Whether `dest` is dialled at this rule's address.
    pub fn applies_to(&self, dest: &Destination) -> bool {
        self.only_port.is_none_or(|p| p == dest.port) && self.pattern.matches(&dest.host)
    }
}

/// `name`, `name:port`, `[v6]`, `[v6]:port` or a bare IPv6 address; `None` for a bad port.
fn split_port(s: &str) -> Option<(&str, Option<u16>)> {
    let port = |p: &str| p.parse::<u16>().ok().filter(|&p| p > 0);
    if let Some(rest) = s.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        return match after.strip_prefix(':') {
            Some(p) => Some((host, Some(port(p)?))),
            None if after.is_empty() => Some((host, None)),
            None => None,
        };
    }
    match s.split_once(':') {
        Some((host, p)) if !p.contains(':') => Some((host, Some(port(p)?))),
        Some(_) => Some((s, None)),
        None => Some((s, None)),
    }
}

impl fmt::Display for ConnectTo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.pattern)?;
        if let Some(p) = self.only_port {
            write!(f, ":{p}")?;
        }
        write!(f, "={}", self.host)?;
        if let Some(p) = self.port {
            write!(f, ":{p}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dest(host: &str, port: u16) -> Destination {
        crate::forward_rules::allow::parse_destination(host, port).expect("destination")
    }

    #[test]
    fn rules_parse_with_names_addresses_ports_and_brackets() {
        let r = ConnectTo::parse("*.amazonaws.com=10.0.1.5:443").expect("rule");
        assert_eq!((r.host.as_str(), r.port, r.only_port), ("10.0.1.5", Some(443), None));
        assert_eq!(r.to_string(), "*.amazonaws.com=10.0.1.5:443");
        let r = ConnectTo::parse("s3.amazonaws.com:443=[::1]:8443").expect("rule");
        assert_eq!((r.host.as_str(), r.port, r.only_port), ("::1", Some(8443), Some(443)));
        let r = ConnectTo::parse("s3.amazonaws.com=vpce.example").expect("rule");
        assert_eq!((r.host.as_str(), r.port), ("vpce.example", None));
        let r = ConnectTo::parse("s3.amazonaws.com=::1").expect("bare IPv6");
        assert_eq!((r.host.as_str(), r.port), ("::1", None));
        for bad in ["nothing", "x=y:z", "x=:443", "=y:443", "x=y:0", "x:http=y", "x=[::1"] {
            assert!(ConnectTo::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_rule_applies_by_name_and_optional_port() {
        let any = ConnectTo::parse("*.amazonaws.com=10.0.1.5").expect("rule");
        let https = ConnectTo::parse("*.amazonaws.com:443=127.0.0.1:8443").expect("rule");
        assert!(any.applies_to(&dest("s3.amazonaws.com", 80)));
        assert!(https.applies_to(&dest("s3.amazonaws.com", 443)));
        assert!(!https.applies_to(&dest("s3.amazonaws.com", 80)));
        assert!(!any.applies_to(&dest("example.com", 443)));
        assert!(!any.applies_to(&dest("bucket.s3.amazonaws.com", 443)), "`*` is one label, as in the allow list");
    }
}
