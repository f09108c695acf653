use std::time::Duration;

use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, CONTROLS};

use super::*;
use crate::sigv4::tests::{at, keys, SKEW};
use crate::sigv4::{verify_header_auth, SigV4Error, Verified, EMPTY_SHA256, UNSIGNED_PAYLOAD};

const AKID: &str = "AKIDUPSTREAM";
const SECRET: &str = "upstream/secret+key";
const NOW: &str = "20130524T000000Z";

/// Object keys that trip up S3 signers.
const KEYS: [&str; 12] = [
    "plain.txt",
    "with space.txt",
    "unicode-€-ü-日本.txt",
    "a+b",
    "100%",
    "~tilde-._",
    "k=v:w@x!y$z&'()*,;",
    "dir//double//slash/",
    "./dot/../dotdot",
    "all + % ~ = : @ ! $ & ' ( ) * , ; //x",
    "%41-looks-encoded",
    "q?mark#hash",
];

/// Only what a URI cannot hold raw: what a lax client sends (sub-delims and `+` stay raw).
const MINIMAL: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'%')
    .add(b'?')
    .add(b'#')
    .add(b'"')
    .add(b'<')
    .add(b'>')
    .add(b'\\')
    .add(b'^')
    .add(b'`')
    .add(b'{')
    .add(b'|')
    .add(b'}');
/// Everything but unreserved and `/`: what the AWS SDKs send.
const STRICT: &AsciiSet =
    &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~').remove(b'/');

fn time() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_369_353_600)
}

fn creds(token: Option<&str>) -> Credentials {
    Credentials::new(AKID, SECRET, token.map(str::to_owned), None, "test")
}

fn parts(method: &str, uri: &str) -> http::request::Parts {
    http::Request::builder().method(method).uri(uri).body(()).unwrap().into_parts().0
}

fn verify(parts: &http::request::Parts) -> Result<Verified, SigV4Error> {
    let lookup = keys(&[(AKID, SECRET)]);
    let (path, query) = (parts.uri.path(), parts.uri.query());
    verify_header_auth(&parts.method, path, query, &parts.headers, &lookup, at(NOW), SKEW)
}

#[test]
fn signed_requests_verify_for_awkward_keys_in_any_client_encoding() {
    for key in KEYS {
        let strict = utf8_percent_encode(key, STRICT).to_string();
        let minimal = utf8_percent_encode(key, MINIMAL).to_string();
        let lowercase_hex = strict.replace("%E2%82%AC", "%e2%82%ac");
        for raw in [strict, minimal, lowercase_hex] {
            let uri = format!("https://bucket.s3.eu-west-1.amazonaws.com/{raw}?x-id=PutObject");
            let mut p = parts("PUT", &uri);
            p.headers.insert("content-length", "0".parse().unwrap());
            sign_upstream(&mut p, &creds(None), "eu-west-1", EMPTY_SHA256, time()).unwrap();
            assert!(verify(&p).is_ok(), "{key:?} sent as {raw:?} -> {}", p.uri);
            let decoded = percent_decode_str(p.uri.path()).collect::<Vec<u8>>();
            assert_eq!(decoded, format!("/{key}").into_bytes(), "the key is unchanged: {}", p.uri);
            assert_eq!(p.headers["host"], "bucket.s3.eu-west-1.amazonaws.com");
        }
    }
}

#[test]
fn queries_keep_their_meaning_and_verify() {
    let cases = [
        (
            "prefix=a+b&delimiter=/&list-type=2&&marker=%E2%82%AC",
            "prefix=a%2Bb&delimiter=%2F&list-type=2&marker=%E2%82%AC",
        ),
        ("uploads", "uploads"),
        ("tagging&versionId=3/L4kqtJl+40", "tagging&versionId=3%2FL4kqtJl%2B40"),
        ("lifecycle=", "lifecycle="),
    ];
    for (query, sent) in cases {
        let mut p = parts("GET", &format!("/bucket/key?{query}"));
        p.headers.insert("host", "minio.internal:9000".parse().unwrap());
        sign_upstream(&mut p, &creds(None), "us-east-1", UNSIGNED_PAYLOAD, time()).unwrap();
        assert_eq!(p.uri.query(), Some(sent));
        assert!(verify(&p).is_ok(), "{query}");
    }
}

#[test]
fn sets_the_auth_headers_and_replaces_stale_ones() {
    let mut p = parts("PUT", "http://127.0.0.1:9000/bucket/key");
    for (name, value) in [
        ("authorization", "AWS4-HMAC-SHA256 stale"),
        ("x-amz-date", "19990101T000000Z"),
        ("x-amz-content-sha256", "stale"),
        ("x-amz-security-token", "stale"),
        ("user-agent", "client/1.0"),
        ("x-amz-meta-a", "1"),
    ] {
        p.headers.append(name, value.parse().unwrap());
    }
    sign_upstream(&mut p, &creds(Some("session-token")), "us-east-1", STREAMING_TRAILER, time()).unwrap();
    for name in ["authorization", "x-amz-date", "x-amz-content-sha256", "x-amz-security-token"] {
        assert_eq!(p.headers.get_all(name).iter().count(), 1, "{name}");
    }
    assert_eq!(p.headers["host"], "127.0.0.1:9000");
    assert_eq!(p.headers["x-amz-date"], NOW);
    assert_eq!(p.headers["x-amz-security-token"], "session-token");
    assert_eq!(p.headers["x-amz-content-sha256"], STREAMING_TRAILER);
    let authorization = p.headers["authorization"].to_str().unwrap();
    assert!(
        authorization.contains("SignedHeaders=host;x-amz-content-sha256;x-amz-date;x-amz-meta-a;x-amz-security-token,"),
        "{authorization}"
    );
    assert!(p.headers["authorization"].is_sensitive());
    let verified = verify(&p).unwrap();
    assert_eq!(verified.payload, crate::sigv4::PayloadMode::StreamingUnsignedTrailer);
}

const STREAMING_TRAILER: &str = "STREAMING-UNSIGNED-PAYLOAD-TRAILER";

#[test]
fn default_ports_are_left_out_of_the_host() {
    for (uri, host) in [
        ("https://s3.amazonaws.com:443/b/k", "s3.amazonaws.com"),
        ("http://[::1]:80/b/k", "[::1]"),
        ("https://[::1]:8443/b/k", "[::1]:8443"),
    ] {
        let mut p = parts("GET", uri);
        sign_upstream(&mut p, &creds(None), "us-east-1", EMPTY_SHA256, time()).unwrap();
        assert_eq!(p.headers["host"], host);
        assert!(verify(&p).is_ok(), "{uri}");
    }
}

#[test]
fn refuses_what_it_cannot_sign() {
    let mut no_host = parts("GET", "/bucket/key");
    assert!(matches!(
        sign_upstream(&mut no_host, &creds(None), "us-east-1", EMPTY_SHA256, time()),
        Err(SignError::NoHost)
    ));
    let mut bad_hash = parts("GET", "https://h/b/k");
    assert!(matches!(
        sign_upstream(&mut bad_hash, &creds(None), "us-east-1", "abc", time()),
        Err(SignError::PayloadHash(_))
    ));
    let mut latin1 = parts("GET", "https://h/b/k?name=%FF");
    assert!(matches!(
        sign_upstream(&mut latin1, &creds(None), "us-east-1", EMPTY_SHA256, time()),
        Err(SignError::NonUtf8Query)
    ));
    let mut binary = parts("GET", "https://h/b/k");
    binary.headers.insert("x-amz-meta-bin", http::HeaderValue::from_bytes(b"\xff").unwrap());
    assert!(matches!(
        sign_upstream(&mut binary, &creds(None), "us-east-1", EMPTY_SHA256, time()),
        Err(SignError::HeaderValue(_))
    ));
}
