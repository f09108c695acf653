//! Presigned URLs: query auth (`sigv4::verify_presigned`), and minting (`presign_query`).
//!
//! Input, read twice:
//! 1. as the raw query of `GET /test.txt` on the S3 documentation's presigned example host,
//!    checked the day the example was signed (its published query, in the seed corpus,
//!    verifies);
//! 2. as the description (method, key, extra parameters, signed headers, lifetime) of a URL to
//!    mint with `presign_query`.
//!
//! Checks: a query that verifies is one `is_presigned` recognises, for the documented key; a
//! URL s3gate mints verifies, used as minted, until it expires and not a second later.

use std::time::Duration;

use arbitrary::{Arbitrary, Unstructured};
use http::{HeaderMap, HeaderName, HeaderValue, Method};
use s3gate::credentials::SecretKey;
use s3gate::s3_request::encode_key;
use s3gate::sigv4::{is_presigned, presign_query, verify_presigned, SigV4Error, MAX_PRESIGN_EXPIRES};
use time::macros::datetime;
use time::OffsetDateTime;

const AKID: &str = "AKIAIOSFODNN7EXAMPLE";
const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
const HOST: &str = "examplebucket.s3.amazonaws.com";
const NOW: OffsetDateTime = datetime!(2013-05-24 00:00:00 UTC);
const SKEW: Duration = Duration::from_secs(900);
/// The query parameters that carry the signature; a URL cannot carry them twice.
const AUTH_PARAMS: [&str; 6] =
    ["X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Date", "X-Amz-Expires", "X-Amz-SignedHeaders", "X-Amz-Signature"];

fn lookup(akid: &str) -> Option<SecretKey> {
    (akid == AKID).then(|| SecretKey::new(SECRET))
}

fn verify(
    method: &Method,
    path: &str,
    query: &str,
    headers: &HeaderMap,
    now: OffsetDateTime,
) -> Result<(), SigV4Error> {
    verify_presigned(method, path, query, headers, &lookup, now, SKEW, MAX_PRESIGN_EXPIRES).map(|v| {
        assert!(v.presigned);
        assert_eq!(v.access_key_id, AKID);
    })
}

/// A URL to mint.
#[derive(Debug, Arbitrary)]
struct Mint {
    method: u8,
    key: String,
    extra_query: Vec<(String, String)>,
    signed_headers: Vec<(String, String)>,
    expires: u32,
}

fn mint_and_verify(mint: Mint) {
    let method = [Method::GET, Method::PUT, Method::HEAD, Method::DELETE][usize::from(mint.method % 4)].clone();
    let path = format!("/{}", encode_key(&mint.key));
    // A name-less, value-less parameter cannot be written in a URL at all.
    let extra: Vec<(String, String)> = mint
        .extra_query
        .into_iter()
        .filter(|(name, value)| !(AUTH_PARAMS.contains(&name.as_str()) || name.is_empty() && value.is_empty()))
        .collect();
    // The headers the URL's user must send: valid ones, not those that play a part of their
    // own in query auth.
    let mut headers = HeaderMap::new();
    headers.insert("host", HeaderValue::from_static(HOST));
    let mut signed = Vec::new();
    for (name, value) in mint.signed_headers {
        let lower = name.trim().to_ascii_lowercase();
        let (Ok(header), Ok(header_value)) = (HeaderName::from_bytes(lower.as_bytes()), HeaderValue::from_str(&value))
        else {
            continue;
        };
        if matches!(lower.as_str(), "host" | "x-amz-content-sha256") {
            continue;
        }
        headers.append(header, header_value);
        signed.push((name, value));
    }
    let expires = Duration::from_secs(u64::from(mint.expires) % MAX_PRESIGN_EXPIRES.as_secs() + 1);
    let query = presign_query(method.as_str(), HOST, &path, &extra, AKID, SECRET, "us-east-1", NOW, expires, &signed);
    assert!(is_presigned(Some(&query)));
    let result = verify(&method, &path, &query, &headers, NOW);
    assert_eq!(result, Ok(()), "minted {method} {path}?{query} does not verify; headers {headers:?}");
    assert_eq!(verify(&method, &path, &query, &headers, NOW + expires), Ok(()));
    assert_eq!(
        verify(&method, &path, &query, &headers, NOW + expires + Duration::from_secs(1)),
        Err(SigV4Error::RequestExpired)
    );
}

/// One input, checked as described above; panics on a failed check.
pub fn run(input: &[u8]) {
    if let Ok(query) = std::str::from_utf8(input) {
        let mut headers = HeaderMap::new();
        headers.insert("host", HeaderValue::from_static(HOST));
        if verify(&Method::GET, "/test.txt", query, &headers, NOW).is_ok() {
            assert!(is_presigned(Some(query)));
        }
    }
    if let Ok(mint) = Mint::arbitrary_take_rest(Unstructured::new(input)) {
        mint_and_verify(mint);
    }
}
