use std::time::Duration;

use http::{HeaderMap, Method};

use super::*;
use crate::sigv4::tests::{at, authorize, header_map, keys, DOCS_AKID, DOCS_SECRET, SKEW};
use crate::sigv4::{canonical_request, EMPTY_SHA256};

const NOW: &str = "20130524T000000Z";
/// The S3 documentation's GET Object example, published signature included.
const GET_OBJECT_AUTH: &str = "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,SignedHeaders=host;range;x-amz-content-sha256;x-amz-date,Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41";

fn get_object(authorization: &str) -> HeaderMap {
    header_map(&[
        ("host", "examplebucket.s3.amazonaws.com"),
        ("range", "bytes=0-9"),
        ("x-amz-content-sha256", EMPTY_SHA256),
        ("x-amz-date", NOW),
        ("authorization", authorization),
    ])
}

fn verify_at(headers: &HeaderMap, secret: &str, now: time::OffsetDateTime) -> Result<Verified, SigV4Error> {
    let lookup = keys(&[(DOCS_AKID, secret)]);
    verify_header_auth(&Method::GET, "/test.txt", None, headers, &lookup, now, SKEW)
}

fn verify(headers: &HeaderMap) -> Result<Verified, SigV4Error> {
    verify_at(headers, DOCS_SECRET, at(NOW))
}

fn is_malformed(result: Result<Verified, SigV4Error>) -> bool {
    matches!(result, Err(SigV4Error::AuthorizationHeaderMalformed(_)))
}

#[test]
fn the_documented_request_verifies_with_or_without_spaces_after_commas() {
    let verified = verify(&get_object(GET_OBJECT_AUTH)).unwrap();
    assert_eq!(verified.access_key_id, DOCS_AKID);
    assert_eq!(verified.amz_date, NOW);
    assert_eq!(verified.scope.to_string_scope(), "20130524/us-east-1/s3/aws4_request");
    assert_eq!(verified.payload, PayloadMode::Sha256(parse_hex32(EMPTY_SHA256).unwrap()));
    assert!(!verified.presigned);
    let spaced = GET_OBJECT_AUTH.replace(",S", ", S");
    assert!(verify(&get_object(&spaced)).is_ok());
    // Field order is free.
    let (head, fields) = GET_OBJECT_AUTH.split_once(' ').unwrap();
    let reordered: Vec<&str> = fields.split(',').rev().collect();
    assert!(verify(&get_object(&format!("{head} {}", reordered.join(",")))).is_ok());
}

#[test]
fn a_wrong_secret_or_any_changed_byte_fails_the_signature() {
    let headers = get_object(GET_OBJECT_AUTH);
    assert_eq!(verify_at(&headers, "not-the-secret", at(NOW)).unwrap_err(), SigV4Error::SignatureDoesNotMatch);
    let mut changed = headers.clone();
    changed.insert("range", "bytes=0-10".parse().unwrap());
    assert_eq!(verify(&changed).unwrap_err(), SigV4Error::SignatureDoesNotMatch);
    let lookup = keys(&[(DOCS_AKID, DOCS_SECRET)]);
    let other_path = verify_header_auth(&Method::GET, "/test.txt2", None, &headers, &lookup, at(NOW), SKEW);
    assert_eq!(other_path.unwrap_err(), SigV4Error::SignatureDoesNotMatch);
    let head = verify_header_auth(&Method::HEAD, "/test.txt", None, &headers, &lookup, at(NOW), SKEW);
    assert_eq!(head.unwrap_err(), SigV4Error::SignatureDoesNotMatch);
}

#[test]
fn an_unknown_access_key_is_reported_as_such() {
    let headers = get_object(&GET_OBJECT_AUTH.replace(DOCS_AKID, "AKIDUNKNOWN"));
    assert_eq!(verify(&headers).unwrap_err(), SigV4Error::InvalidAccessKeyId);
}

#[test]
fn clock_skew_is_bounded_both_ways() {
    let headers = get_object(GET_OBJECT_AUTH);
    for (offset, ok) in [(14 * 60, true), (15 * 60, true), (15 * 60 + 1, false)] {
        for now in [at(NOW) + Duration::from_secs(offset), at(NOW) - Duration::from_secs(offset)] {
            let result = verify_at(&headers, DOCS_SECRET, now);
            if ok {
                assert!(result.is_ok(), "{offset}");
            } else {
                assert_eq!(result.unwrap_err(), SigV4Error::RequestTimeTooSkewed, "{offset}");
            }
        }
    }
}

#[test]
fn required_headers_must_be_present() {
    for (name, what) in
        [("x-amz-content-sha256", "x-amz-content-sha256"), ("host", "host"), ("x-amz-date", "x-amz-date or Date")]
    {
        let mut headers = get_object(GET_OBJECT_AUTH);
        headers.remove(name);
        assert_eq!(verify(&headers).unwrap_err(), SigV4Error::MissingSecurityHeader(what.to_owned()), "{name}");
    }
    let mut headers = get_object(GET_OBJECT_AUTH);
    headers.remove("authorization");
    assert!(matches!(verify(&headers), Err(SigV4Error::MissingSecurityHeader(_))));
    let mut headers = get_object(GET_OBJECT_AUTH);
    headers.insert("x-amz-date", "2013-05-24T00:00:00Z".parse().unwrap());
    assert!(matches!(verify(&headers), Err(SigV4Error::MissingSecurityHeader(_))));
}

#[test]
fn malformed_authorization_headers_are_refused() {
    let sig = "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41";
    let cred = "AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request";
    let signed = "host;range;x-amz-content-sha256;x-amz-date";
    let cases = [
        format!("AWS4-HMAC-SHA1 Credential={cred},SignedHeaders={signed},Signature={sig}"),
        format!("AWS4-HMAC-SHA256Credential={cred},SignedHeaders={signed},Signature={sig}"),
        format!("AWS4-HMAC-SHA256 Credential={cred},SignedHeaders={signed}"),
        format!("AWS4-HMAC-SHA256 Credential={cred},Signature={sig}"),
        format!("AWS4-HMAC-SHA256 SignedHeaders={signed},Signature={sig}"),
        format!("AWS4-HMAC-SHA256 Credential={cred},SignedHeaders={signed},Signature={}", &sig[1..]),
        format!("AWS4-HMAC-SHA256 Credential={cred},SignedHeaders={signed},Signature={}", sig.replace('f', "g")),
        format!("AWS4-HMAC-SHA256 Credential={cred},SignedHeaders={signed},Signature={sig},Signature={sig}"),
        format!("AWS4-HMAC-SHA256 Credential={cred},SignedHeaders={signed},Signature={sig},Extra=1"),
        format!("AWS4-HMAC-SHA256 Credential={cred},SignedHeaders={signed},Signature"),
        format!("AWS4-HMAC-SHA256 Credential={cred},SignedHeaders=range;x-amz-date,Signature={sig}"),
        format!("AWS4-HMAC-SHA256 Credential={cred},SignedHeaders=host;;range,Signature={sig}"),
        format!("AWS4-HMAC-SHA256 Credential={},SignedHeaders={signed},Signature={sig}", cred.replace("/s3/", "/ec2/")),
        format!(
            "AWS4-HMAC-SHA256 Credential={},SignedHeaders={signed},Signature={sig}",
            cred.replace("aws4_request", "aws4_reqest")
        ),
        format!(
            "AWS4-HMAC-SHA256 Credential={},SignedHeaders={signed},Signature={sig}",
            cred.replace("20130524", "2013-05-24")
        ),
        format!(
            "AWS4-HMAC-SHA256 Credential={},SignedHeaders={signed},Signature={sig}",
            cred.replace("20130524", "20130525")
        ),
        format!(
            "AWS4-HMAC-SHA256 Credential={},SignedHeaders={signed},Signature={sig}",
            cred.replace("/us-east-1", "")
        ),
        format!(
            "AWS4-HMAC-SHA256 Credential=/20130524/us-east-1/s3/aws4_request,SignedHeaders={signed},Signature={sig}"
        ),
    ];
    for value in &cases {
        assert!(is_malformed(verify(&get_object(value))), "{value}");
    }
    let mut twice = get_object(GET_OBJECT_AUTH);
    twice.append("authorization", GET_OBJECT_AUTH.parse().unwrap());
    assert!(is_malformed(verify(&twice)));
}

#[test]
fn checks_run_in_s3_order() {
    // Malformed wins over missing headers; a missing header over an unknown key; an unknown
    // key over skew; skew over a bad signature.
    let mut headers = get_object("AWS4-HMAC-SHA256 nonsense");
    headers.remove("x-amz-content-sha256");
    assert!(is_malformed(verify(&headers)));
    let mut headers = get_object(&GET_OBJECT_AUTH.replace(DOCS_AKID, "AKIDUNKNOWN"));
    headers.remove("x-amz-content-sha256");
    assert!(matches!(verify(&headers), Err(SigV4Error::MissingSecurityHeader(_))));
    let headers = get_object(&GET_OBJECT_AUTH.replace(DOCS_AKID, "AKIDUNKNOWN"));
    let late = at(NOW) + Duration::from_secs(3600);
    assert_eq!(verify_at(&headers, DOCS_SECRET, late).unwrap_err(), SigV4Error::InvalidAccessKeyId);
    let headers = get_object(GET_OBJECT_AUTH);
    assert_eq!(verify_at(&headers, "wrong", late).unwrap_err(), SigV4Error::RequestTimeTooSkewed);
    let mut bad_mode = get_object(GET_OBJECT_AUTH);
    bad_mode.insert("x-amz-content-sha256", "abc".parse().unwrap());
    assert_eq!(verify(&bad_mode).unwrap_err(), SigV4Error::InvalidContentSha256("abc".to_owned()));
}

#[test]
fn repeated_headers_are_joined_in_request_order() {
    let mut headers = header_map(&[
        ("host", "bucket.example.com:9000"),
        ("x-amz-content-sha256", EMPTY_SHA256),
        ("x-amz-date", NOW),
        ("x-amz-meta-a", "1"),
        ("x-amz-meta-a", "  two   words "),
    ]);
    let signed = ["host", "x-amz-content-sha256", "x-amz-date", "x-amz-meta-a"];
    authorize("GET", "/k", None, &mut headers, &signed, DOCS_AKID, DOCS_SECRET);
    let creq =
        canonical_request("GET", "/k", None, &headers, &SignedHeaders::of(&signed), EMPTY_SHA256, false).unwrap();
    assert!(creq.contains("\nhost:bucket.example.com:9000\n"), "{creq}");
    assert!(creq.contains("\nx-amz-meta-a:1,two words\n"), "{creq}");
    let lookup = keys(&[(DOCS_AKID, DOCS_SECRET)]);
    assert!(verify_header_auth(&Method::GET, "/k", None, &headers, &lookup, at(NOW), SKEW).is_ok());

    let mut swapped = headers.clone();
    swapped.remove("x-amz-meta-a");
    swapped.append("x-amz-meta-a", "two words".parse().unwrap());
    swapped.append("x-amz-meta-a", "1".parse().unwrap());
    let result = verify_header_auth(&Method::GET, "/k", None, &swapped, &lookup, at(NOW), SKEW);
    assert_eq!(result.unwrap_err(), SigV4Error::SignatureDoesNotMatch);
}

#[test]
fn the_date_header_stands_in_for_x_amz_date() {
    let mut headers = header_map(&[
        ("host", "examplebucket.s3.amazonaws.com"),
        ("date", "Fri, 24 May 2013 00:00:00 GMT"),
        ("x-amz-content-sha256", EMPTY_SHA256),
    ]);
    authorize("GET", "/test.txt", None, &mut headers, &["date", "host"], DOCS_AKID, DOCS_SECRET);
    let verified = verify(&headers).unwrap();
    assert_eq!(verified.amz_date, NOW);
}

#[test]
fn unsigned_extra_headers_and_the_query_are_handled() {
    let mut headers = header_map(&[
        ("host", "examplebucket.s3.amazonaws.com"),
        ("x-amz-content-sha256", crate::sigv4::UNSIGNED_PAYLOAD),
        ("x-amz-date", NOW),
    ]);
    let query = Some("prefix=a+b&list-type=2&&delimiter=%2F");
    authorize("GET", "/", query, &mut headers, &["host", "x-amz-content-sha256", "x-amz-date"], DOCS_AKID, DOCS_SECRET);
    headers.insert("user-agent", "not signed".parse().unwrap());
    let lookup = keys(&[(DOCS_AKID, DOCS_SECRET)]);
    let verified = verify_header_auth(&Method::GET, "/", query, &headers, &lookup, at(NOW), SKEW).unwrap();
    assert_eq!(verified.payload, PayloadMode::Unsigned);
    // `+` is a literal plus, not a space: a client that meant a space signed something else.
    let spaced = Some("prefix=a%20b&list-type=2&&delimiter=%2F");
    let result = verify_header_auth(&Method::GET, "/", spaced, &headers, &lookup, at(NOW), SKEW);
    assert_eq!(result.unwrap_err(), SigV4Error::SignatureDoesNotMatch);
}

#[test]
fn every_x_amz_header_must_be_signed() {
    let mut headers = header_map(&[
        ("host", "examplebucket.s3.amazonaws.com"),
        ("x-amz-content-sha256", crate::sigv4::UNSIGNED_PAYLOAD),
        ("x-amz-date", NOW),
    ]);
    authorize("PUT", "/k", None, &mut headers, &["host", "x-amz-content-sha256", "x-amz-date"], DOCS_AKID, DOCS_SECRET);
    let lookup = keys(&[(DOCS_AKID, DOCS_SECRET)]);
    let put = |h: &HeaderMap| verify_header_auth(&Method::PUT, "/k", None, h, &lookup, at(NOW), SKEW);
    let verified = put(&headers).unwrap();
    assert_eq!(verified.signed_headers.iter().collect::<Vec<_>>(), ["host", "x-amz-content-sha256", "x-amz-date"]);
    // Added after signing: a captured request replayed with a copy source, an ACL, a tag.
    for (name, value) in [
        ("x-amz-copy-source", "/other-bucket/secret"),
        ("x-amz-acl", "public-read"),
        ("x-amz-tagging", "a=b"),
        ("X-Amz-Meta-Note", "x"),
    ] {
        let mut added = headers.clone();
        added.insert(http::HeaderName::from_bytes(name.as_bytes()).unwrap(), value.parse().unwrap());
        let err = put(&added).unwrap_err();
        assert_eq!(err, SigV4Error::HeadersNotSigned(vec![name.to_ascii_lowercase()]), "{name}");
    }
    // The payload hash and the date are bound by the signature whether listed or not: the
    // canonical request ends with the one, the string to sign carries the other.
    let mut bound = headers.clone();
    authorize("PUT", "/k", None, &mut bound, &["host"], DOCS_AKID, DOCS_SECRET);
    assert!(put(&bound).is_ok());
    bound.insert("x-amz-content-sha256", crate::sigv4::EMPTY_SHA256.parse().unwrap());
    assert_eq!(put(&bound).unwrap_err(), SigV4Error::SignatureDoesNotMatch);
    // Standard headers S3 accepts unsigned pass verification (what is forwarded is decided later).
    let mut standard = headers.clone();
    standard.insert("content-type", "text/plain".parse().unwrap());
    standard.insert("user-agent", "ua".parse().unwrap());
    assert!(put(&standard).is_ok());
}

#[test]
fn signature_version_2_is_named_as_unsupported() {
    let headers = header_map(&[
        ("host", "examplebucket.s3.amazonaws.com"),
        ("date", "Fri, 24 May 2013 00:00:00 GMT"),
        ("authorization", "AWS AKIAIOSFODNN7EXAMPLE:frJIUN8DYpKDtOLCwo//yllqDzg="),
    ]);
    assert_eq!(verify(&headers).unwrap_err(), SigV4Error::UnsupportedSigV2);
    let headers = get_object(&format!("AWS {DOCS_AKID}:c2lnbmF0dXJl"));
    assert_eq!(verify(&headers).unwrap_err(), SigV4Error::UnsupportedSigV2);
}

/// A forged request's credential scope (its region any text the sender likes) is not kept in
/// the signing-key cache; a verified one is.
#[test]
fn only_a_verified_scope_is_kept_for_reuse() {
    let secret = "a-secret-only-this-test-uses";
    let region = format!("forged-{}", "r".repeat(4096));
    let forged = GET_OBJECT_AUTH.replace("us-east-1", &region);
    assert_eq!(verify_at(&get_object(&forged), secret, at(NOW)).unwrap_err(), SigV4Error::SignatureDoesNotMatch);
    let scope = Scope::new("20130524", &region, "s3");
    assert!(!crate::sigv4::key_cache::global().holds(secret, &scope), "a forged scope was kept");

    let verified = verify(&get_object(GET_OBJECT_AUTH)).unwrap();
    assert!(crate::sigv4::key_cache::global().holds(DOCS_SECRET, &verified.scope));
}

proptest::proptest! {
    #[test]
    fn signed_header_names_are_what_split_gives(list in "[a-z;-]{0,24}|;*|\\PC{0,12}") {
        let signed = SignedHeaders::of(&[list.as_str()]);
        let by_hand: Vec<&str> = signed.iter().collect();
        let by_split: Vec<&str> = list.split(';').collect();
        proptest::prop_assert_eq!(by_hand, by_split);
    }
}
