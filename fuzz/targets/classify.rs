//! Request classification (`s3_request::classify`) and `x-amz-copy-source` parsing.
//!
//! Input: a request head as text. The first line is `METHOD TARGET` (the target's query starts
//! at its first `?`), the second the Host header, the rest `name: value` headers. The gateway's
//! domains are those of the unit tests, `s3.gw.test` and `gw.test`.
//!
//! Checks: an accepted request names a valid bucket (or none) and a non-empty key (literal:
//! `.`, `..` and empty segments are part of it, as in S3); written back as the SDKs write it
//! (key encoded once by `encode_key`), it classifies to the same request, so the bucket and key
//! that were authorized are the ones forwarded. A parsed copy source names a valid bucket and a
//! non-empty key.

use http::{HeaderMap, HeaderName, HeaderValue, Method};
use s3gate::s3_request::{classify, copy_source, encode_key, Addressing};

/// The bucket rule, written out again: what matters is that nothing that changes the meaning of
/// a URL or an ARN (`/`, `*`, `?`, `%`, ...) is ever accepted.
fn valid_bucket(bucket: &str) -> bool {
    let b = bucket.as_bytes();
    (3..=255).contains(&b.len())
        && b.iter().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'-' | b'_'))
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && !bucket.contains("..")
}

/// Keys are literal, as in S3: any non-empty text, dot segments and empty segments included.
fn valid_key(key: &str) -> bool {
    !key.is_empty()
}

/// One input, checked as described above; panics on a failed check.
pub fn run(input: &[u8]) {
    let Ok(text) = std::str::from_utf8(input) else {
        return;
    };
    let mut lines = text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    let (Some(request_line), Some(host)) = (lines.next(), lines.next()) else {
        return;
    };
    let Some((method, target)) = request_line.split_once(' ') else {
        return;
    };
    let Ok(method) = Method::from_bytes(method.as_bytes()) else {
        return;
    };
    let (path, query) = match target.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (target, None),
    };
    let mut headers = HeaderMap::new();
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        if let (Ok(name), Ok(value)) =
            (HeaderName::from_bytes(name.trim().as_bytes()), HeaderValue::from_str(value.trim()))
        {
            headers.append(name, value);
        }
    }
    let domains = vec!["s3.gw.test".to_owned(), "gw.test".to_owned()];

    if let Ok(req) = classify(&method, host, path, query, &headers, &domains) {
        assert!(req.action.starts_with("s3:") && !req.operation().is_empty());
        if let Some(bucket) = &req.bucket {
            assert!(valid_bucket(bucket), "accepted bucket {bucket:?}");
        }
        if let Some(key) = &req.key {
            assert!(valid_key(key), "accepted key {key:?}");
            assert!(req.bucket.is_some(), "a key without a bucket");
        }
        let key_path = req.key.as_deref().map(|k| format!("/{}", encode_key(k))).unwrap_or_default();
        let canonical = match (req.addressing, &req.bucket) {
            (Addressing::VirtualHost, _) => match key_path.as_str() {
                "" => "/".to_owned(),
                _ => key_path,
            },
            (Addressing::Path, Some(bucket)) => format!("/{bucket}{key_path}"),
            (Addressing::Path, None) => "/".to_owned(),
        };
        let again = classify(&method, host, &canonical, query, &headers, &domains);
        assert_eq!(again.as_ref(), Ok(&req), "{path:?} re-written as {canonical:?}");
    }

    if let Ok(Some(source)) = copy_source(&headers) {
        assert!(valid_bucket(&source.bucket), "copy source bucket {:?}", source.bucket);
        assert!(valid_key(&source.key), "copy source key {:?}", source.key);
    }
}
