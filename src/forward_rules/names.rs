//! Which TLS server names (and DNS names) transparent mode serves, and which buckets they may
//! name: what the passthrough listener checks on a ClientHello's SNI and the DNS responder on a
//! question. The names are allow-list patterns ([`super::allow`]): `*` is one label.
//!
//! The bucket of a virtual-hosted name is its first label when the second is S3's own
//! (`BUCKET.s3.REGION.amazonaws.com`, `BUCKET.s3-fips.REGION...`, `BUCKET.s3.dualstack...`).
//! A name with no bucket (`s3.REGION.amazonaws.com`, path style) hides its bucket inside the
//! TLS, so with a bucket allow list it is refused: otherwise path style would walk around it.

use super::allow::{Host, HostPattern};
use crate::glob::{glob, Tok};

/// The served names and the buckets they may carry.
#[derive(Debug, Clone)]
pub struct S3Names {
    pub patterns: Vec<HostPattern>,
    /// Lower-case bucket patterns (`*`, `?`); empty: every bucket.
    pub buckets: Vec<String>,
}

/// Why a name is not served.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameRefusal {
    #[error("{0} is not a DNS name")]
    NotAName(String),
    #[error("{0} is not in the allow list")]
    Unknown(String),
    #[error("bucket {0} is not in the bucket allow list")]
    Bucket(String),
    #[error("{0} names no bucket, and only listed buckets are allowed")]
    NoBucket(String),
}

impl S3Names {
    /// Whether `name` is one of the served names, buckets aside (what DNS answers for).
    pub fn serves(&self, name: &str) -> Option<Host> {
        match Host::parse(name) {
            Ok(host @ Host::Name(_)) if self.patterns.iter().any(|p| p.matches(&host)) => Some(host),
            _ => None,
        }
    }

    /// The normalised name and its bucket, if `name` may be passed through.
    pub fn check(&self, name: &str) -> Result<(Host, Option<String>), NameRefusal> {
        let host = match Host::parse(name) {
            Ok(host @ Host::Name(_)) => host,
            _ => return Err(NameRefusal::NotAName(name.chars().take(64).collect())),
        };
        if !self.patterns.iter().any(|p| p.matches(&host)) {
            return Err(NameRefusal::Unknown(host.as_str().to_owned()));
        }
        let bucket = bucket_of(host.as_str()).map(str::to_owned);
        if self.buckets.is_empty() {
            return Ok((host, bucket));
        }
        match bucket {
            Some(b) if self.bucket_allowed(&b) => Ok((host, Some(b))),
            Some(b) => Err(NameRefusal::Bucket(b)),
            None => Err(NameRefusal::NoBucket(host.as_str().to_owned())),
        }
    }

    /// Whether `bucket` is in the bucket allow list (every bucket when it is empty).
    pub fn bucket_allowed(&self, bucket: &str) -> bool {
        self.buckets.is_empty() || self.buckets.iter().any(|p| bucket_glob(p, &bucket.to_ascii_lowercase()))
    }
}

/// The bucket a virtual-hosted S3 name carries: its first label, when the second is `s3` or
/// `s3-...`.
pub fn bucket_of(name: &str) -> Option<&str> {
    let mut labels = name.split('.');
    let first = labels.next()?;
    let second = labels.next()?;
    (second == "s3" || second.starts_with("s3-")).then_some(first)
}

fn bucket_glob(pattern: &str, bucket: &str) -> bool {
    let toks: Vec<Tok<u8>> = pattern
        .bytes()
        .map(|c| match c {
            b'*' => Tok::Any,
            b'?' => Tok::One,
            c => Tok::Lit(c),
        })
        .collect();
    glob(&toks, bucket.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::forward_rules::allow::AllowList;

    fn names(buckets: &[&str]) -> S3Names {
        S3Names {
            patterns: AllowList::parse_patterns(&["@aws-s3".to_owned()]).expect("defaults"),
            buckets: buckets.iter().map(|b| b.to_string()).collect(),
        }
    }

    #[test]
    fn virtual_hosted_names_carry_their_bucket_and_endpoint_names_none() {
        assert_eq!(bucket_of("photos.s3.us-east-1.amazonaws.com"), Some("photos"));
        assert_eq!(bucket_of("photos.s3-fips.us-east-1.amazonaws.com"), Some("photos"));
        assert_eq!(bucket_of("photos.s3.dualstack.eu-west-1.amazonaws.com"), Some("photos"));
        assert_eq!(bucket_of("s3.us-east-1.amazonaws.com"), None);
        assert_eq!(bucket_of("s3.dualstack.us-east-1.amazonaws.com"), None);
        assert_eq!(bucket_of("s3-fips.us-east-1.amazonaws.com"), None);
    }

    #[test]
    fn every_bucket_passes_without_a_bucket_list() {
        let n = names(&[]);
        let (host, bucket) = n.check("Photos.S3.us-east-1.amazonaws.com.").expect("allowed");
        assert_eq!((host.as_str(), bucket.as_deref()), ("photos.s3.us-east-1.amazonaws.com", Some("photos")));
        assert_eq!(n.check("s3.us-east-1.amazonaws.com").expect("path style").1, None);
    }

    #[test]
    fn a_bucket_list_refuses_other_buckets_and_names_without_one() {
        let n = names(&["team-*", "logs"]);
        assert!(n.check("team-a.s3.us-east-1.amazonaws.com").is_ok());
        assert!(n.check("logs.s3.amazonaws.com").is_ok());
        assert_eq!(n.check("other.s3.us-east-1.amazonaws.com").unwrap_err(), NameRefusal::Bucket("other".into()));
        assert!(matches!(n.check("s3.us-east-1.amazonaws.com"), Err(NameRefusal::NoBucket(_))));
    }

    #[test]
    fn names_outside_the_allow_list_addresses_and_junk_are_refused() {
        let n = names(&[]);
        for bad in [
            "example.com",
            "a.b.s3.us-east-1.amazonaws.com",
            "s3.us-east-1.amazonaws.com.evil.example",
            "sts.amazonaws.com",
        ] {
            assert!(matches!(n.check(bad), Err(NameRefusal::Unknown(_))), "{bad}");
        }
        for bad in ["127.0.0.1", "2130706433", "", "a..b", "bad name.s3.amazonaws.com"] {
            assert!(n.check(bad).is_err(), "{bad}");
        }
        assert!(n.serves("s3.us-east-1.amazonaws.com").is_some());
        assert!(n.serves("example.com").is_none());
    }
}
