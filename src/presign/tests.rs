//! Minting: every URL is read back through the gateway's own verifier, so a test passes only if
//! the URL would really be accepted.

use std::time::Duration;

use http::{HeaderMap, HeaderValue, Method};

use super::api::{api_request, api_response};
use super::*;
use crate::error::S3ErrorCode;
use crate::sigv4::{self, SigV4Error};

const AKID: &str = "MINTKEY0000000000001";
const SECRET: &str = "mint/secret+0123456789abcdefghijklmnopqr";

fn credential() -> Credential {
    Credential::new(AKID, SECRET)
}

fn now() -> OffsetDateTime {
    time::macros::datetime!(2024-05-01 12:00:00.750 UTC)
}

fn request(method: Method, bucket: &str, key: &str) -> MintRequest {
    MintRequest {
        bucket: bucket.into(),
        key: key.into(),
        method,
        expires: Duration::from_secs(900),
        content_type: None,
    }
}

fn url(text: &str) -> Uri {
    parse_public_url(text).unwrap()
}

/// Splits a minted URL into (host, path, query) and runs the gateway's verifier on it.
fn verify(minted: &Minted, method: &Method, extra: &[(&str, &str)], at: OffsetDateTime) -> Result<(), SigV4Error> {
    let rest = minted.url.split_once("://").unwrap().1;
    let (authority, path_query) = rest.split_at(rest.find('/').unwrap());
    let (path, query) = path_query.split_once('?').unwrap();
    let mut headers = HeaderMap::new();
    headers.insert("host", HeaderValue::from_str(authority).unwrap());
    for (n, v) in extra {
        headers.insert(http::HeaderName::from_bytes(n.as_bytes()).unwrap(), HeaderValue::from_str(v).unwrap());
    }
    let lookup = |akid: &str| (akid == AKID).then(|| crate::credentials::SecretKey::new(SECRET));
    let week = sigv4::MAX_PRESIGN_EXPIRES;
    sigv4::verify_presigned(method, path, query, &headers, &lookup, at, Duration::from_secs(900), week).map(|_| ())
}

#[test]
fn path_style_url_verifies_and_expires_on_time() {
    let req = request(Method::GET, "photos", "2024/a b+c€.jpg");
    let minted = mint(&req, &credential(), &url("http://127.0.0.1:8099"), &[], "eu-west-1", now()).unwrap();
    assert!(
        minted.url.starts_with("http://127.0.0.1:8099/photos/2024/a%20b%2Bc%E2%82%AC.jpg?X-Amz-Algorithm="),
        "{}",
        minted.url
    );
    assert!(minted.url.contains("X-Amz-Credential=MINTKEY0000000000001%2F20240501%2Feu-west-1%2Fs3%2Faws4_request"));
    assert_eq!(minted.expires_at, "2024-05-01T12:15:00Z");
    assert!(minted.headers.is_empty());
    let start = time::macros::datetime!(2024-05-01 12:00:00 UTC);
    assert_eq!(verify(&minted, &Method::GET, &[], start + Duration::from_secs(900)), Ok(()));
    assert_eq!(verify(&minted, &Method::GET, &[], start + Duration::from_secs(901)), Err(SigV4Error::RequestExpired));
    assert_eq!(verify(&minted, &Method::PUT, &[], start), Err(SigV4Error::SignatureDoesNotMatch));
}

#[test]
fn a_public_domain_gives_virtual_hosted_urls() {
    let domains = vec!["s3.intranet.example.com".to_owned()];
    let public = url("https://S3.intranet.example.com");
    let minted = mint(&request(Method::GET, "reports", "q1.pdf"), &credential(), &public, &domains, "us-east-1", now());
    let minted = minted.unwrap();
    assert!(minted.url.starts_with("https://reports.s3.intranet.example.com/q1.pdf?"), "{}", minted.url);
    assert_eq!(verify(&minted, &Method::GET, &[], now()), Ok(()));
    // A dotted bucket over https would not match a wildcard certificate: path style instead.
    let dotted = mint(&request(Method::GET, "a.b", "k"), &credential(), &public, &domains, "us-east-1", now());
    assert!(dotted.unwrap().url.starts_with("https://s3.intranet.example.com/a.b/k?"));
    // So would a bucket whose name is no DNS label.
    let upper = mint(&request(Method::GET, "Legacy_Bucket", "k"), &credential(), &public, &domains, "us-east-1", now());
    assert!(upper.unwrap().url.starts_with("https://s3.intranet.example.com/Legacy_Bucket/k?"));
    // Over plain http a dotted bucket stays virtual-hosted, with the port kept.
    let http = mint(
        &request(Method::GET, "a.b", "k"),
        &credential(),
        &url("http://s3.intranet.example.com:8080"),
        &domains,
        "us-east-1",
        now(),
    );
    let http = http.unwrap();
    assert!(http.url.starts_with("http://a.b.s3.intranet.example.com:8080/k?"), "{}", http.url);
    assert_eq!(verify(&http, &Method::GET, &[], now()), Ok(()));
}

#[test]
fn the_default_port_is_left_out_of_the_signed_host() {
    let minted = mint(
        &request(Method::HEAD, "b1b", "k"),
        &credential(),
        &url("https://gw.example:443/"),
        &[],
        "us-east-1",
        now(),
    );
    let minted = minted.unwrap();
    assert!(minted.url.starts_with("https://gw.example/b1b/k?"), "{}", minted.url);
    assert_eq!(verify(&minted, &Method::HEAD, &[], now()), Ok(()));
}

#[test]
fn a_put_url_can_require_a_content_type() {
    let mut req = request(Method::PUT, "uploads", "in/report.csv");
    req.content_type = Some("text/csv".into());
    let minted = mint(&req, &credential(), &url("http://gw:9000"), &[], "us-east-1", now()).unwrap();
    assert_eq!(minted.headers, [("content-type".to_owned(), "text/csv".to_owned())]);
    assert!(minted.url.contains("X-Amz-SignedHeaders=content-type%3Bhost"));
    assert_eq!(verify(&minted, &Method::PUT, &[("content-type", "text/csv")], now()), Ok(()));
    assert_eq!(
        verify(&minted, &Method::PUT, &[("content-type", "text/html")], now()),
        Err(SigV4Error::SignatureDoesNotMatch)
    );
    req.method = Method::GET;
    assert!(matches!(
        mint(&req, &credential(), &url("http://gw"), &[], "us-east-1", now()),
        Err(PresignError::ContentType(_))
    ));
}

#[test]
fn bad_requests_are_refused_before_signing() {
    let public = url("http://gw:9000");
    let mint_one = |req: &MintRequest| mint(req, &credential(), &public, &[], "us-east-1", now());
    let mut req = request(Method::POST, "bucket", "k");
    assert_eq!(mint_one(&req), Err(PresignError::Method("POST".into())));
    req.method = Method::GET;
    req.expires = Duration::from_secs(604_801);
    assert_eq!(mint_one(&req), Err(PresignError::Expires));
    req.expires = Duration::ZERO;
    assert_eq!(mint_one(&req), Err(PresignError::Expires));
    req.expires = Duration::from_secs(604_800);
    assert!(mint_one(&req).is_ok());
    assert!(matches!(
        mint_one(&request(Method::GET, "no/slash", "k")),
        Err(PresignError::Bucket(_) | PresignError::Key(_))
    ));
    assert!(matches!(mint_one(&request(Method::GET, "ab", "k")), Err(PresignError::Bucket(_))));
    assert!(matches!(mint_one(&request(Method::GET, "bucket", "")), Err(PresignError::Key(_))));
    // Keys are literal, dot segments included, as in S3.
    assert!(mint_one(&request(Method::GET, "bucket", "a/../b")).is_ok());
    let s3: S3Error = PresignError::Bucket("ab".into()).into();
    assert_eq!(s3.code, S3ErrorCode::InvalidBucketName);
}

#[test]
fn public_urls_are_checked() {
    assert!(parse_public_url("https://s3.example.com").is_ok());
    assert!(parse_public_url("http://[::1]:8099/").is_ok());
    for bad in [
        "s3.example.com",
        "ftp://s3.example.com",
        "https://s3.example.com/prefix",
        "https://u:p@s3.example.com",
        "https://s3.example.com/?x=1",
    ] {
        assert!(parse_public_url(bad).is_err(), "{bad}");
    }
    assert_eq!(public_url_from_host("gw.local:8443", true).unwrap().to_string(), "https://gw.local:8443/");
}

#[test]
fn durations_read_like_the_cli_writes_them() {
    assert_eq!(parse_duration("3600"), Ok(Duration::from_secs(3600)));
    assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
    assert_eq!(parse_duration("15m"), Ok(Duration::from_secs(900)));
    assert_eq!(parse_duration("12h"), Ok(Duration::from_secs(43_200)));
    assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(604_800)));
    for bad in ["8d", "0", "", "1w", "h", "-1", "99999999999999999999d"] {
        assert_eq!(parse_duration(bad), Err(PresignError::Expires), "{bad}");
    }
}

#[test]
fn the_api_query_is_parsed_strictly() {
    let req =
        api_request(Some("bucket=b1b&key=dir%2Fa+b.txt&method=put&expires=60&content-type=text%2Fplain")).unwrap();
    assert_eq!(req.bucket, "b1b");
    assert_eq!(req.key, "dir/a b.txt");
    assert_eq!(req.method, Method::PUT);
    assert_eq!(req.expires, Duration::from_secs(60));
    assert_eq!(req.content_type.as_deref(), Some("text/plain"));
    assert_eq!(req.action(), "s3:PutObject");
    assert_eq!(req.resource_arn(), "arn:aws:s3:::b1b/dir/a b.txt");
    let s3 = req.as_s3_request().unwrap();
    assert_eq!((s3.action, s3.operation(), s3.resource_arn()), ("s3:PutObject", "PutObject", req.resource_arn()));

    let defaults = api_request(Some("bucket=b1b&key=k&X-Amz-Date=20240501T000000Z")).unwrap();
    assert_eq!((&defaults.method, defaults.expires), (&Method::GET, api::DEFAULT_EXPIRES));
    assert_eq!(defaults.action(), "s3:GetObject");

    for bad in [
        None,
        Some("key=k"),
        Some("bucket=b1b"),
        Some("bucket=b1b&key=k&expire=60"),
        Some("bucket=b1b&key=k&expires=604801"),
        Some("bucket=b1b&key=k&expires=0"),
        Some("bucket=b1b&key=k&expires=soon"),
        Some("bucket=b1b&key=k&method=POST"),
        Some("bucket=b1b&key=k&key=other"),
        Some("bucket=b1b&key=%FF"),
    ] {
        let err = api_request(bad).unwrap_err();
        assert_eq!(err.code, S3ErrorCode::InvalidArgument, "{bad:?}");
    }
}

#[tokio::test]
async fn the_api_answers_json_that_no_cache_keeps() {
    use http_body_util::BodyExt;
    let minted = Minted {
        url: "https://gw/b/k?X-Amz-Signature=00".into(),
        method: Method::PUT,
        expires_at: "2024-05-01T13:00:00Z".into(),
        headers: vec![("content-type".into(), "text/csv".into())],
    };
    let resp = api_response(&minted);
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/json");
    assert_eq!(resp.headers()["cache-control"], "no-store");
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(json["url"], "https://gw/b/k?X-Amz-Signature=00");
    assert_eq!(json["method"], "PUT");
    assert_eq!(json["expires_at"], "2024-05-01T13:00:00Z");
    assert_eq!(json["headers"]["content-type"], "text/csv");
}
