use std::time::Duration;

use http::{HeaderMap, Method};

use super::*;
use crate::sigv4::tests::{at, header_map, keys, DOCS_AKID, DOCS_SECRET, SKEW, WEEK};

const NOW: &str = "20130524T000000Z";
const HOST: &str = "gateway.internal:8443";
const PATH: &str = "/bucket/dir/a%20b+c~%E2%82%AC.txt";

fn mint(expires: Duration) -> String {
    let extra = [("versionId".to_owned(), "3/L4kqtJl+40".to_owned()), ("uploads".to_owned(), String::new())];
    let signed = [("X-Amz-Meta-Tag".to_owned(), "  a   b ".to_owned())];
    presign_query("PUT", HOST, PATH, &extra, DOCS_AKID, DOCS_SECRET, "eu-west-1", at(NOW), expires, &signed)
}

fn request_headers() -> HeaderMap {
    header_map(&[("host", HOST), ("x-amz-meta-tag", "a b")])
}

fn check(
    method: &Method,
    path: &str,
    query: &str,
    headers: &HeaderMap,
    now: time::OffsetDateTime,
) -> Result<Verified, SigV4Error> {
    let lookup = keys(&[(DOCS_AKID, DOCS_SECRET)]);
    verify_presigned(method, path, query, headers, &lookup, now, SKEW, WEEK)
}

fn later(seconds: u64) -> time::OffsetDateTime {
    at(NOW) + Duration::from_secs(seconds)
}

#[test]
fn minted_urls_round_trip() {
    let query = mint(Duration::from_secs(3600));
    assert!(query.starts_with("versionId=3%2FL4kqtJl%2B40&uploads&X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Feu-west-1%2Fs3%2Faws4_request&X-Amz-Date=20130524T000000Z&X-Amz-Expires=3600&X-Amz-SignedHeaders=host%3Bx-amz-meta-tag&X-Amz-Signature="), "{query}");
    assert!(is_presigned(Some(&query)));
    let verified = check(&Method::PUT, PATH, &query, &request_headers(), later(60)).unwrap();
    assert!(verified.presigned);
    assert_eq!(verified.payload, PayloadMode::Unsigned);
    assert_eq!(verified.access_key_id, DOCS_AKID);
    assert_eq!(verified.scope.region(), "eu-west-1");
    assert_eq!(hex::encode(verified.seed_signature), query.rsplit_once('=').unwrap().1);
}

#[test]
fn expiry_is_enforced_to_the_second() {
    let query = mint(Duration::from_secs(3600));
    assert!(check(&Method::PUT, PATH, &query, &request_headers(), later(3600)).is_ok());
    let expired = check(&Method::PUT, PATH, &query, &request_headers(), later(3601));
    assert_eq!(expired.unwrap_err(), SigV4Error::RequestExpired);
}

#[test]
fn a_date_in_the_future_beyond_the_skew_is_refused() {
    let query = mint(Duration::from_secs(3600));
    let early = at(NOW) - Duration::from_secs(16 * 60);
    assert_eq!(
        check(&Method::PUT, PATH, &query, &request_headers(), early).unwrap_err(),
        SigV4Error::RequestTimeTooSkewed
    );
    let slightly_early = at(NOW) - Duration::from_secs(14 * 60);
    assert!(check(&Method::PUT, PATH, &query, &request_headers(), slightly_early).is_ok());
}

#[test]
fn expires_must_be_between_one_second_and_seven_days() {
    // Zero is a well-formed URL that is already expired, as S3 answers it.
    let zero = mint(Duration::from_secs(0));
    assert_eq!(check(&Method::PUT, PATH, &zero, &request_headers(), at(NOW)).unwrap_err(), SigV4Error::RequestExpired);
    for expires in [604_801, 10_000_000] {
        let query = mint(Duration::from_secs(expires));
        let result = check(&Method::PUT, PATH, &query, &request_headers(), later(1));
        assert!(matches!(result, Err(SigV4Error::AuthorizationQueryParametersError(_))), "{expires}");
    }
    let week = mint(Duration::from_secs(604_800));
    assert!(check(&Method::PUT, PATH, &week, &request_headers(), later(604_800)).is_ok());
    // A configured maximum below seven days is honoured; one above it is capped.
    let lookup = keys(&[(DOCS_AKID, DOCS_SECRET)]);
    let hour = Duration::from_secs(3600);
    let r = verify_presigned(&Method::PUT, PATH, &week, &request_headers(), &lookup, later(1), SKEW, hour);
    assert!(matches!(r, Err(SigV4Error::AuthorizationQueryParametersError(_))));
    let too_long = mint(Duration::from_secs(604_801));
    let r = verify_presigned(&Method::PUT, PATH, &too_long, &request_headers(), &lookup, later(1), SKEW, WEEK * 2);
    assert!(matches!(r, Err(SigV4Error::AuthorizationQueryParametersError(_))));
}

#[test]
fn tampering_with_method_path_query_or_signed_header_fails() {
    let query = mint(Duration::from_secs(3600));
    let headers = request_headers();
    let now = later(1);
    let tampered = [
        check(&Method::GET, PATH, &query, &headers, now),
        check(&Method::PUT, "/bucket/dir/other.txt", &query, &headers, now),
        check(&Method::PUT, PATH, &query.replace("versionId=3", "versionId=4"), &headers, now),
        check(&Method::PUT, PATH, &format!("{query}&acl"), &headers, now),
        check(&Method::PUT, PATH, &query.replace("&uploads", ""), &headers, now),
        check(&Method::PUT, PATH, &query, &header_map(&[("host", HOST), ("x-amz-meta-tag", "c")]), now),
        check(&Method::PUT, PATH, &query, &header_map(&[("host", "other:8443"), ("x-amz-meta-tag", "a b")]), now),
    ];
    for (i, result) in tampered.into_iter().enumerate() {
        assert_eq!(result.unwrap_err(), SigV4Error::SignatureDoesNotMatch, "case {i}");
    }
    // Dropping or changing the signature itself.
    let (unsigned, signature) = query.rsplit_once("&X-Amz-Signature=").unwrap();
    let r = check(&Method::PUT, PATH, unsigned, &headers, now);
    assert!(matches!(r, Err(SigV4Error::AuthorizationQueryParametersError(_))));
    let flipped = if signature.starts_with('0') { "1" } else { "0" };
    let forged = format!("{unsigned}&X-Amz-Signature={flipped}{}", &signature[1..]);
    assert_eq!(check(&Method::PUT, PATH, &forged, &headers, now).unwrap_err(), SigV4Error::SignatureDoesNotMatch);
}

#[test]
fn malformed_parameters_are_refused() {
    let query = mint(Duration::from_secs(3600));
    let headers = request_headers();
    let variants = [
        query.replace("AWS4-HMAC-SHA256", "AWS4-HMAC-SHA1"),
        query.replace("%2Fs3%2F", "%2Fec2%2F"),
        query.replace("X-Amz-Date=20130524T000000Z", "X-Amz-Date=20130525T000000Z"),
        query.replace("X-Amz-Date=20130524T000000Z", "X-Amz-Date=2013-05-24"),
        query.replace("X-Amz-Expires=3600", "X-Amz-Expires=soon"),
        query.replace("host%3Bx-amz-meta-tag", "x-amz-meta-tag"),
        format!("{query}&X-Amz-Expires=3600"),
        query.replace("&X-Amz-Credential=", "&X-Amz-Credentials="),
    ];
    for variant in variants {
        let r = check(&Method::PUT, PATH, &variant, &headers, later(1));
        assert!(matches!(r, Err(SigV4Error::AuthorizationQueryParametersError(_))), "{variant}");
    }
    let unknown = query.replace(DOCS_AKID, "AKIDUNKNOWN");
    assert_eq!(check(&Method::PUT, PATH, &unknown, &headers, later(1)).unwrap_err(), SigV4Error::InvalidAccessKeyId);
    let no_host = header_map(&[("x-amz-meta-tag", "a b")]);
    assert!(matches!(check(&Method::PUT, PATH, &query, &no_host, later(1)), Err(SigV4Error::MissingSecurityHeader(_))));
}

#[test]
fn a_content_sha256_header_replaces_unsigned_payload() {
    let query = mint(Duration::from_secs(3600));
    let mut headers = request_headers();
    headers.insert("x-amz-content-sha256", crate::sigv4::EMPTY_SHA256.parse().unwrap());
    // The URL was signed for UNSIGNED-PAYLOAD, so a client claiming a hash changes the request.
    let r = check(&Method::PUT, PATH, &query, &headers, later(1));
    assert_eq!(r.unwrap_err(), SigV4Error::SignatureDoesNotMatch);
    headers.insert("x-amz-content-sha256", "UNSIGNED-PAYLOAD".parse().unwrap());
    assert!(check(&Method::PUT, PATH, &query, &headers, later(1)).is_ok());
    headers.insert("x-amz-content-sha256", "junk".parse().unwrap());
    let r = check(&Method::PUT, PATH, &query, &headers, later(1));
    assert!(matches!(r, Err(SigV4Error::InvalidContentSha256(_))));
}

#[test]
fn presigned_detection_looks_for_x_amz_algorithm() {
    assert!(is_presigned(Some("a=1&X-Amz-Algorithm=AWS4-HMAC-SHA256")));
    assert!(is_presigned(Some("X-Amz-Algorithm")));
    assert!(!is_presigned(Some("x-amz-algorithm=AWS4-HMAC-SHA256")));
    assert!(!is_presigned(Some("X-Amz-Credential=a")));
    assert!(!is_presigned(Some("")));
    assert!(!is_presigned(None));
}

#[test]
fn headers_added_to_a_presigned_request_must_have_been_signed() {
    let query = mint(Duration::from_secs(3600));
    assert!(check(&Method::PUT, PATH, &query, &request_headers(), later(1)).is_ok());
    for (name, value) in [("x-amz-copy-source", "/other-bucket/secret"), ("x-amz-acl", "public-read")] {
        let mut headers = request_headers();
        headers.insert(http::HeaderName::from_static(name), value.parse().unwrap());
        let err = check(&Method::PUT, PATH, &query, &headers, later(1)).unwrap_err();
        assert_eq!(err, SigV4Error::HeadersNotSigned(vec![name.to_owned()]));
    }
    let mut browser = request_headers();
    browser.insert("content-type", "image/png".parse().unwrap());
    browser.insert("origin", "https://app.example".parse().unwrap());
    assert!(check(&Method::PUT, PATH, &query, &browser, later(1)).is_ok());
}

#[test]
fn signature_version_2_queries_are_recognized() {
    assert!(is_sigv2_query(Some("AWSAccessKeyId=AKID&Expires=1&Signature=abc")));
    assert!(!is_sigv2_query(Some("X-Amz-Algorithm=AWS4-HMAC-SHA256")));
    assert!(!is_sigv2_query(None));
}
