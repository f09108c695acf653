//! SigV4 header auth: the `Authorization` header parser, then the whole check.
//!
//! Input: the header value. It is parsed on its own (`fuzzing::authorization_header`) and then
//! verified as the `Authorization` of the S3 documentation's GET Object example, whose
//! published header is in the seed corpus and verifies.
//!
//! Checks: a parsed header, written back out in canonical form, parses to the same fields;
//! `SignedHeaders` always names `host`; the full check accepts a header only if it parses, and
//! then only the documented credential and signature.

use http::{HeaderMap, HeaderValue, Method};
use s3gate::credentials::SecretKey;
use s3gate::fuzzing::{authorization_header, AuthorizationFields};
use s3gate::sigv4::{verify_header_auth, EMPTY_SHA256};
use time::macros::datetime;

const AKID: &str = "AKIAIOSFODNN7EXAMPLE";
const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
const SIGNATURE: &str = "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41";

fn write(fields: &AuthorizationFields) -> String {
    format!(
        "AWS4-HMAC-SHA256 Credential={}/{},SignedHeaders={},Signature={}",
        fields.access_key_id,
        fields.scope.to_string_scope(),
        fields.signed_headers.join(";"),
        hex(&fields.signature),
    )
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// One input, checked as described above; panics on a failed check.
pub fn run(input: &[u8]) {
    let Ok(value) = std::str::from_utf8(input) else {
        return;
    };
    let parsed = authorization_header(value);
    if let Ok(fields) = &parsed {
        assert!(fields.signed_headers.iter().any(|h| h.eq_ignore_ascii_case("host")));
        assert_eq!(fields.scope.service(), "s3");
        let again = authorization_header(&write(fields));
        assert_eq!(again.as_ref(), Ok(fields), "re-written as {:?}", write(fields));
    }

    // Header values are bytes without CR, LF or NUL; anything else never reaches the verifier.
    let Ok(authorization) = HeaderValue::from_str(value) else {
        return;
    };
    let mut headers = HeaderMap::new();
    headers.insert("host", HeaderValue::from_static("examplebucket.s3.amazonaws.com"));
    headers.insert("range", HeaderValue::from_static("bytes=0-9"));
    headers.insert("x-amz-content-sha256", HeaderValue::from_static(EMPTY_SHA256));
    headers.insert("x-amz-date", HeaderValue::from_static("20130524T000000Z"));
    headers.insert("authorization", authorization);
    let lookup = |akid: &str| (akid == AKID).then(|| SecretKey::new(SECRET));
    let now = datetime!(2013-05-24 00:00:00 UTC);
    let skew = std::time::Duration::from_secs(900);
    if let Ok(verified) = verify_header_auth(&Method::GET, "/test.txt", None, &headers, &lookup, now, skew) {
        let fields = parsed.expect("a header that verifies parses");
        assert_eq!(verified.access_key_id, AKID);
        assert_eq!(hex(&fields.signature), SIGNATURE);
    }
}
