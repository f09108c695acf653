//! Classify a request once into { action, bucket, key }.
//!
//! The proxy (upstream URL), the policy check, metrics and the audit log all need to know what a
//! request does. Deciding it once, here, means they cannot disagree about it: a request that the
//! policy saw as `s3:GetObject` on `b/k` is the request that is forwarded to `b/k`.
//!
//! Anything ambiguous is refused rather than guessed: an unknown query parameter could be an S3
//! subresource this code does not know, and authorizing it as the plain operation would let a
//! credential do more than its policy says.

use http::{HeaderMap, Method};
use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

mod operation;
pub use operation::Operation;
#[cfg(test)]
mod tests;

/// How the client addressed the bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Addressing {
    Path,
    VirtualHost,
}

/// What a request does, decided once from its method, host, path, query and headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Request {
    /// IAM action name, e.g. "s3:GetObject", "s3:ListBucket", "s3:ListAllMyBuckets".
    pub action: &'static str,
    pub bucket: Option<String>,
    /// Percent-decoded object key (may contain '/', "//", unicode, spaces, '+').
    pub key: Option<String>,
    pub addressing: Addressing,
    /// Decoded query parameters in request order (value "" for value-less ones).
    pub query: Vec<(String, String)>,
    /// Further IAM actions S3 requires for this request because of what its headers (or a
    /// presigned URL's hoisted `x-amz-*` parameters) ask for: `x-amz-acl` on a PutObject also
    /// needs `s3:PutObjectAcl`, and so on (see `operation::extra_actions`). Checked on the same
    /// resource as `action`.
    pub also_requires: Vec<&'static str>,
    /// Private so that only `classify` builds a request: the action and the operation are then
    /// always decided together.
    op: Operation,
}

impl S3Request {
    /// The S3 API operation name (GetObject, ListObjectsV2, CopyObject, UploadPart, ...) for
    /// metrics and logs; several operations share one IAM action, so the action is not enough.
    pub fn operation(&self) -> &'static str {
        self.op.as_str()
    }

    /// The operation, for code that acts on it (match on this, never on the name).
    pub fn op(&self) -> Operation {
        self.op
    }

    /// The first value of a query parameter, if present.
    pub fn query_value(&self, name: &str) -> Option<&str> {
        self.query.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// The resource a policy statement is matched against. Bucket-less requests
    /// (ListAllMyBuckets) use `arn:aws:s3:::*`, which matches both `"Resource": "*"` and the
    /// `arn:aws:s3:::*` that AWS examples use for that action.
    pub fn resource_arn(&self) -> String {
        match (&self.bucket, &self.key) {
            (Some(bucket), Some(key)) => format!("arn:aws:s3:::{bucket}/{key}"),
            (Some(bucket), None) => format!("arn:aws:s3:::{bucket}"),
            (None, _) => "arn:aws:s3:::*".to_owned(),
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ClassifyError {
    #[error("invalid bucket name")]
    InvalidBucketName(String),
    #[error("invalid URI")]
    InvalidUri(String),
    /// A parameter or header given twice, or one s3gate does not let through: S3's
    /// `InvalidArgument`.
    #[error("invalid argument")]
    InvalidArgument(String),
}

/// `host` is the Host header value (may include :port). `domains` are the gateway's own domain
/// names (no port): `BUCKET.DOMAIN[:port]` is virtual-hosted style (bucket = the labels before
/// DOMAIN, which may contain dots), anything else (including exactly DOMAIN, or an IP) is path
/// style, where the first path segment is the bucket and the rest (after the single '/'
/// separator) the key. `raw_path`/`raw_query` are exactly as on the request line
/// (percent-encoded). A key is decoded once (a `+` in the path stays `+`). `/bucket` and
/// `/bucket/` both mean the bucket with no key.
pub fn classify(
    method: &Method,
    host: &str,
    raw_path: &str,
    raw_query: Option<&str>,
    headers: &HeaderMap,
    domains: &[String],
) -> Result<S3Request, ClassifyError> {
    let rest = raw_path
        .strip_prefix('/')
        .ok_or_else(|| ClassifyError::InvalidUri(format!("path must start with '/': {raw_path}")))?;
    let (addressing, bucket, raw_key) = match virtual_host_bucket(host, domains) {
        Some(bucket) => (Addressing::VirtualHost, Some(bucket), rest),
        None if rest.is_empty() => (Addressing::Path, None, ""),
        None => {
            let (raw_bucket, raw_key) = rest.split_once('/').unwrap_or((rest, ""));
            (Addressing::Path, Some(decode(raw_bucket)?), raw_key)
        }
    };
    if let Some(bucket) = &bucket {
        validate_bucket(bucket)?;
    }
    let key = match raw_key {
        "" => None,
        raw => Some(decode_key(raw)?),
    };
    let query = parse_query(raw_query.unwrap_or(""))?;
    refuse_duplicates(&query, headers)?;
    let target = match (&bucket, &key) {
        (None, _) => operation::Target::Service,
        (Some(_), None) => operation::Target::Bucket,
        (Some(_), Some(_)) => operation::Target::Object,
    };
    let route = operation::route(method, target, &query, headers)?;
    let also_requires = operation::extra_actions(route.operation, &query, headers);
    Ok(S3Request { action: route.action, bucket, key, addressing, query, also_requires, op: route.operation })
}

/// Everything but the unreserved characters and '/', as the AWS SDKs encode a key in a path.
const KEY_ENCODE: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~').remove(b'/');

/// Percent-encode a decoded key for a URL path the way S3 SDKs do: every byte except unreserved
/// `A-Za-z0-9-._~` and `/` becomes %XX (uppercase).
pub fn encode_key(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    push_encoded_key(&mut out, key);
    out
}

/// [`encode_key`], appended to `out` (the upstream path being built).
pub fn push_encoded_key(out: &mut String, key: &str) {
    // Most keys have nothing to escape: one copy instead of a walk chunk by chunk.
    if key.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~/".contains(&b)) {
        out.push_str(key);
        return;
    }
    out.extend(utf8_percent_encode(key, KEY_ENCODE));
}

/// The object a CopyObject or UploadPartCopy reads, from `x-amz-copy-source`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopySource {
    pub bucket: String,
    pub key: String,
    pub version_id: Option<String>,
}

/// Made once: every request is checked for it, and a lookup by string parses the name again.
pub const X_AMZ_COPY_SOURCE: http::HeaderName = http::HeaderName::from_static("x-amz-copy-source");

/// Parse `x-amz-copy-source` (`[/]bucket/key[?versionId=v]`, key percent-encoded). A copy reads
/// the source, so the proxy must authorize `s3:GetObject` on it too; without this check a
/// credential could copy out of a bucket it cannot read.
pub fn copy_source(headers: &HeaderMap) -> Result<Option<CopySource>, ClassifyError> {
    let Some(value) = headers.get(&X_AMZ_COPY_SOURCE) else {
        return Ok(None);
    };
    let invalid = || ClassifyError::InvalidUri("invalid x-amz-copy-source".to_owned());
    let value = value.to_str().map_err(|_| invalid())?;
    let (path, query) = value.split_once('?').unwrap_or((value, ""));
    let path = path.strip_prefix('/').unwrap_or(path);
    // Access point and Outposts ARNs name no bucket we could authorize: refuse them.
    let (raw_bucket, raw_key) = path.split_once('/').ok_or_else(invalid)?;
    let bucket = decode(raw_bucket)?;
    validate_bucket(&bucket)?;
    let key = decode_key(raw_key)?;
    if key.is_empty() {
        return Err(invalid());
    }
    let mut version_id = None;
    for (name, value) in parse_query(query)? {
        match name.as_str() {
            "versionId" => version_id = Some(value),
            _ => return Err(invalid()),
        }
    }
    Ok(Some(CopySource { bucket, key, version_id }))
}

/// The bucket named by a virtual-hosted-style Host header, or None for path style.
fn virtual_host_bucket(host: &str, domains: &[String]) -> Option<String> {
    let host = host.trim();
    // An IPv6 literal is never one of our domain names.
    if host.starts_with('[') {
        return None;
    }
    let name = match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    };
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    let domains: Vec<String> = domains.iter().map(|d| d.trim_end_matches('.').to_ascii_lowercase()).collect();
    if domains.contains(&name) {
        return None;
    }
    // With nested domains (example.com and s3.example.com) the longest one is the gateway's,
    // so `b.s3.example.com` is bucket `b`, not `b.s3`.
    domains
        .iter()
        .filter_map(|d| name.strip_suffix(d.as_str())?.strip_suffix('.'))
        .filter(|bucket| !bucket.is_empty())
        .min_by_key(|bucket| bucket.len())
        .map(str::to_owned)
}

/// Bucket names follow the legacy us-east-1 rules, a superset of today's, so that no bucket the
/// upstream accepts is refused. What matters here is that no character that changes the
/// meaning of a URL or of a policy ARN (`/`, `*`, `?`, `%`, ...) gets through.
fn validate_bucket(bucket: &str) -> Result<(), ClassifyError> {
    let bytes = bucket.as_bytes();
    let ok = (3..=255).contains(&bytes.len())
        && bytes.iter().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
        && bytes.first().is_some_and(u8::is_ascii_alphanumeric)
        && bytes.last().is_some_and(u8::is_ascii_alphanumeric)
        && !bucket.contains("..");
    if ok {
        Ok(())
    } else {
        Err(ClassifyError::InvalidBucketName(bucket.to_owned()))
    }
}

/// Decode a key. Keys are literal, as in S3: `a//b/./c/../d` is one valid key, stored as
/// written, and `public/../secret/x` is a key under `public/`, not under `secret/`. Nothing on
/// the way normalizes a path (not this module, the upstream URI builder, the canonical request,
/// nor hyper), so the key the policy sees is the key S3 acts on.
fn decode_key(raw: &str) -> Result<String, ClassifyError> {
    decode(raw)
}

/// Percent-decode once. A malformed escape (`%zz`) or invalid UTF-8 is an error rather than
/// passed through, so the key we authorize is the key the upstream will decode.
fn decode(raw: &str) -> Result<String, ClassifyError> {
    let bytes = raw.as_bytes();
    if !bytes.contains(&b'%') {
        // Nothing to decode, and `raw` is UTF-8 already.
        return Ok(raw.to_owned());
    }
    for (i, _) in raw.match_indices('%') {
        let hex = bytes.get(i + 1..i + 3);
        if !hex.is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)) {
            // The raw text is not echoed: it may be a presigned URL's credential.
            return Err(ClassifyError::InvalidUri("malformed percent-escape".to_owned()));
        }
    }
    percent_decode_str(raw)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| ClassifyError::InvalidUri("percent-decoded path or query is not UTF-8".into()))
}

/// Split and decode a query string, `%XX` only: a `+` stays a literal plus. That is how the
/// signature covers it (SigV4 encodes it `%2B`) and how s3gate sends it upstream, so an
/// `s3:prefix` condition sees exactly the prefix S3 will list.
fn parse_query(raw: &str) -> Result<Vec<(String, String)>, ClassifyError> {
    raw.split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            Ok((decode(name)?, decode(value)?))
        })
        .collect()
}

/// Headers read as one value, by the policy or by S3, besides every `x-amz-*` header.
const SINGLE_VALUED: &[&str] = &["host", "content-length", "content-md5", "content-type", "range"];

/// Refuses a query parameter given twice (`prefix=a&prefix=b`) and a single-valued header given
/// twice (`x-amz-copy-source`, `x-amz-acl`, ...): the policy reads one value, and S3 or a
/// server on the way might act on the other. S3 answers such requests `InvalidArgument` too.
fn refuse_duplicates(query: &[(String, String)], headers: &HeaderMap) -> Result<(), ClassifyError> {
    // A set, not a scan of the names before each one: a request head of 64 KiB can carry
    // thousands of distinct names, and this runs before any signature is checked.
    let mut seen = std::collections::HashSet::with_capacity(query.len());
    for (name, _) in query {
        if !seen.insert(name.as_str()) {
            return Err(ClassifyError::InvalidArgument(format!("query parameter {name:?} given more than once")));
        }
    }
    if headers.keys_len() == headers.len() {
        // No name has a second value: nothing to look up.
        return Ok(());
    }
    for name in headers.keys() {
        let n = name.as_str();
        if (n.starts_with("x-amz-") || SINGLE_VALUED.contains(&n)) && headers.get_all(name).iter().nth(1).is_some() {
            return Err(ClassifyError::InvalidArgument(format!("header {n} given more than once")));
        }
    }
    Ok(())
}
