//! Address blocks (`--allowed-source-subnet` and `--trusted-proxy` lists) and the gateway's
//! public base URL (`--public-url`).
//!
//! Parsed by hand (no CIDR crate in the dependency tree). An IPv4 client reaching a dual-stack
//! listener shows up as `::ffff:a.b.c.d`; both the addresses checked and the blocks written as
//! `::ffff:a.b.c.d/N` (N >= 96) are treated as IPv4, so an operator's `10.0.0.0/8` matches such a
//! client and there is only one way for a block to cover an IPv4 address.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// One address block, e.g. `10.0.0.0/8` or `2001:db8::/32`. A bare address is a single host
/// (`/32` or `/128`). Host bits after the prefix are ignored (`10.1.2.3/8` is `10.0.0.0/8`), as
/// in most routers' configurations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cidr {
    /// The network address, host bits cleared, IPv4-mapped addresses folded to IPv4.
    network: IpAddr,
    prefix: u8,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid CIDR {text:?}: {reason}")]
pub struct CidrError {
    text: String,
    reason: CidrErrorReason,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CidrErrorReason {
    #[error("not an IPv4 or IPv6 address (expected e.g. 203.0.113.0/24 or 2001:db8::/32)")]
    Address,
    #[error("the prefix length after '/' is not a number")]
    Prefix,
    #[error("prefix longer than {0}")]
    PrefixTooLong(u8),
}

impl Cidr {
    /// The block `network/prefix`; `None` if the prefix is longer than the address.
    pub fn new(network: IpAddr, prefix: u8) -> Option<Cidr> {
        let (network, prefix) = match network {
            IpAddr::V4(v4) if prefix <= 32 => (IpAddr::V4(v4), prefix),
            IpAddr::V6(v6) if prefix <= 128 => match v6.to_ipv4_mapped() {
                Some(v4) if prefix >= 96 => (IpAddr::V4(v4), prefix - 96),
                _ => (IpAddr::V6(v6), prefix),
            },
            _ => return None,
        };
        let network = match network {
            IpAddr::V4(v4) => IpAddr::V4(Ipv4Addr::from(u32::from(v4) & mask32(prefix))),
            IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & mask128(prefix))),
        };
        Some(Cidr { network, prefix })
    }

    pub fn network(&self) -> IpAddr {
        self.network
    }

    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// Whether `ip` is in the block; `::ffff:a.b.c.d` is checked as `a.b.c.d`.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.network, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => u32::from(ip) & mask32(self.prefix) == u32::from(net),
            (IpAddr::V6(net), IpAddr::V6(ip)) => u128::from(ip) & mask128(self.prefix) == u128::from(net),
            _ => false,
        }
    }
}

fn mask32(prefix: u8) -> u32 {
    u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0)
}

fn mask128(prefix: u8) -> u128 {
    u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0)
}

impl FromStr for Cidr {
    type Err = CidrError;

    fn from_str(text: &str) -> Result<Cidr, CidrError> {
        let err = |reason| CidrError { text: text.to_owned(), reason };
        let (addr, prefix) = match text.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (text, None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| err(CidrErrorReason::Address))?;
        let max: u8 = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            // Digits only (`u8::from_str` would also take "+8"), so failing to parse is overflow.
            Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => p.parse().unwrap_or(u8::MAX),
            Some(_) => return Err(err(CidrErrorReason::Prefix)),
        };
        Cidr::new(addr, prefix).ok_or_else(|| err(CidrErrorReason::PrefixTooLong(max)))
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

/// Config files write blocks as strings; they go through the same parser as the command line.
impl<'de> serde::Deserialize<'de> for Cidr {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Cidr, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// A list of blocks; an address is in the set if any block contains it. Callers decide what an
/// empty set means (for `--allowed-source-subnet`, "no restriction").
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CidrSet(Vec<Cidr>);

impl CidrSet {
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|cidr| cidr.contains(ip))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> std::slice::Iter<'_, Cidr> {
        self.0.iter()
    }
}

impl FromIterator<Cidr> for CidrSet {
    fn from_iter<I: IntoIterator<Item = Cidr>>(iter: I) -> CidrSet {
        CidrSet(iter.into_iter().collect())
    }
}

impl From<Vec<Cidr>> for CidrSet {
    fn from(cidrs: Vec<Cidr>) -> CidrSet {
        CidrSet(cidrs)
    }
}

/// Parses and checks a `--public-url`: http or https, a host, no path, query or user info
/// (the gateway serves buckets at the root, and a URL with a password would leak it). The
/// error says what is wrong and quotes `text`.
pub fn parse_public_url(text: &str) -> Result<http::Uri, String> {
    let bad = |why: &str| format!("{why}: {text:?}");
    let uri: http::Uri = text.trim().parse().map_err(|_| bad("not a URL"))?;
    if !matches!(uri.scheme_str(), Some("http" | "https")) {
        return Err(bad("must start with http:// or https://"));
    }
    let authority = uri.authority().ok_or_else(|| bad("no host"))?;
    if authority.as_str().contains('@') {
        return Err(bad("must not contain user info"));
    }
    if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
        return Err(bad("must not have a path or query (the gateway serves buckets at the root)"));
    }
    Ok(uri)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cidr(text: &str) -> Cidr {
        text.parse().unwrap()
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    #[test]
    fn parses_v4_and_v6_blocks() {
        assert_eq!(cidr("10.0.0.0/8").to_string(), "10.0.0.0/8");
        assert_eq!(cidr("2001:db8::/32").to_string(), "2001:db8::/32");
        assert_eq!(cidr("0.0.0.0/0").to_string(), "0.0.0.0/0");
        assert_eq!(cidr("::/0").to_string(), "::/0");
        assert_eq!(cidr("10.0.0.0/08").prefix(), 8);
    }

    #[test]
    fn bare_address_is_a_single_host() {
        assert_eq!(cidr("192.0.2.7").to_string(), "192.0.2.7/32");
        assert_eq!(cidr("2001:db8::1").to_string(), "2001:db8::1/128");
    }

    #[test]
    fn host_bits_are_cleared() {
        assert_eq!(cidr("10.1.2.3/8").to_string(), "10.0.0.0/8");
        assert_eq!(cidr("2001:db8:ffff::1/32").to_string(), "2001:db8::/32");
        assert_eq!(cidr("10.1.2.3/8"), cidr("10.0.0.0/8"));
    }

    #[test]
    fn mapped_v6_blocks_become_v4() {
        assert_eq!(cidr("::ffff:10.0.0.0/104"), cidr("10.0.0.0/8"));
        assert_eq!(cidr("::ffff:192.0.2.1"), cidr("192.0.2.1/32"));
        // Shorter than the mapped prefix: a genuine IPv6 block.
        assert_eq!(cidr("::ffff:0:0/95").to_string(), "::fffe:0:0/95");
    }

    #[test]
    fn errors_name_the_input_and_the_reason() {
        let err = |text: &str| text.parse::<Cidr>().map(|c| c.to_string()).unwrap_err().to_string();
        assert_eq!(err("10.0.0.0/33"), r#"invalid CIDR "10.0.0.0/33": prefix longer than 32"#);
        assert_eq!(err("2001:db8::/129"), r#"invalid CIDR "2001:db8::/129": prefix longer than 128"#);
        assert_eq!(
            err("10.0.0.0/99999999999999999999"),
            r#"invalid CIDR "10.0.0.0/99999999999999999999": prefix longer than 32"#
        );
        assert!(err("10.0.0/8").contains("not an IPv4 or IPv6 address"));
        assert!(err("").contains("not an IPv4 or IPv6 address"));
        assert!(err("example.com/8").contains("not an IPv4 or IPv6 address"));
        assert!(err(" 10.0.0.0/8").contains("not an IPv4 or IPv6 address"));
        for bad in ["10.0.0.0/", "10.0.0.0/+8", "10.0.0.0/-1", "10.0.0.0/8/8", "10.0.0.0/ 8", "10.0.0.0/x"] {
            assert!(err(bad).contains("prefix length after '/' is not a number"), "{bad}: {}", err(bad));
        }
    }

    #[test]
    fn contains_v4() {
        let block = cidr("10.0.0.0/8");
        assert!(block.contains(ip("10.0.0.0")));
        assert!(block.contains(ip("10.255.255.255")));
        assert!(!block.contains(ip("11.0.0.0")));
        assert!(!block.contains(ip("9.255.255.255")));
        assert!(cidr("0.0.0.0/0").contains(ip("203.0.113.9")));
        assert!(cidr("192.0.2.7/32").contains(ip("192.0.2.7")));
        assert!(!cidr("192.0.2.7/32").contains(ip("192.0.2.8")));
        assert!(!block.contains(ip("::a00:1")), "IPv4-compatible (not mapped) is IPv6");
    }

    #[test]
    fn contains_v6() {
        let block = cidr("2001:db8::/32");
        assert!(block.contains(ip("2001:db8::1")));
        assert!(block.contains(ip("2001:db8:ffff:ffff:ffff:ffff:ffff:ffff")));
        assert!(!block.contains(ip("2001:db9::")));
        assert!(!block.contains(ip("10.0.0.1")));
        assert!(cidr("::/0").contains(ip("fe80::1")));
        assert!(cidr("::1").contains(ip("::1")));
    }

    #[test]
    fn mapped_addresses_are_checked_as_v4() {
        assert!(cidr("10.0.0.0/8").contains(ip("::ffff:10.1.2.3")));
        assert!(!cidr("10.0.0.0/8").contains(ip("::ffff:11.1.2.3")));
        assert!(cidr("::ffff:10.0.0.0/104").contains(ip("10.1.2.3")));
        assert!(!cidr("::/0").contains(ip("::ffff:10.1.2.3")), "a mapped address is IPv4, not IPv6");
    }

    #[test]
    fn set_matches_any_block() {
        let set: CidrSet = ["10.0.0.0/8", "2001:db8::/32"].into_iter().map(cidr).collect();
        assert!(!set.is_empty());
        assert!(set.contains(ip("10.9.9.9")));
        assert!(set.contains(ip("::ffff:10.9.9.9")));
        assert!(set.contains(ip("2001:db8::5")));
        assert!(!set.contains(ip("192.168.0.1")));
        assert!(!set.contains(ip("2001:db9::5")));
        assert_eq!(set.iter().count(), 2);

        let empty = CidrSet::default();
        assert!(empty.is_empty());
        assert!(!empty.contains(ip("10.0.0.1")));
    }

    #[test]
    fn deserializes_from_a_string() {
        #[derive(serde::Deserialize)]
        struct File {
            subnets: Vec<Cidr>,
        }
        let file: File = toml::from_str(r#"subnets = ["10.0.0.0/8", "2001:db8::/32"]"#).unwrap();
        assert_eq!(file.subnets, vec![cidr("10.0.0.0/8"), cidr("2001:db8::/32")]);
        let bad =
            toml::from_str::<File>(r#"subnets = ["10.0.0.0/33"]"#).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(bad.contains("prefix longer than 32"), "{bad}");
    }
}
