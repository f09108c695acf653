//! Properties that tie the policy's view of a request to what reaches S3: for any key and any
//! query value, however the client encoded them, the key and parameters the classifier hands to
//! the policy are exactly the ones the signed upstream request names, as S3 decodes it.

use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use http::{HeaderMap, Method, Request};
use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, CONTROLS, NON_ALPHANUMERIC};
use proptest::prelude::*;

use super::outgoing::upstream_query;
use crate::config::{UpstreamAddressing, UpstreamConfig, UpstreamCredentials};
use crate::credentials::Credential;
use crate::s3_request::{classify, encode_key, S3Request};
use crate::sigv4::{canonical_uri, sign_upstream};
use crate::upstream::Upstream;

/// What a lax client escapes in a path: only what a URI cannot carry raw. `+`, `=`, `&`, `$`,
/// `'`, `(`, `)`, `*`, `,`, `;`, `:`, `@`, `!` and `~` stay as they are.
const LAX_PATH: &AsciiSet = &CONTROLS.add(b' ').add(b'"').add(b'#').add(b'%').add(b'<').add(b'>').add(b'?');
const LAX_PATH_BYTES: &AsciiSet = &LAX_PATH.add(b'[').add(b']').add(b'\\').add(b'^').add(b'`').add(b'{');
const LAX_PATH_ALL: &AsciiSet = &LAX_PATH_BYTES.add(b'|').add(b'}');
/// A lax client's query value: `&`, `=` and `#` must be escaped, `+` and `/` may stay raw.
const LAX_QUERY: &AsciiSet = &LAX_PATH_ALL.add(b'&').add(b'=');
/// A strict client's query value: everything but the unreserved characters.
const STRICT_QUERY: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

fn upstream(addressing: UpstreamAddressing) -> Upstream {
    let cfg = UpstreamConfig {
        url: "http://127.0.0.1:9000".parse().expect("url"),
        region: "us-east-1".into(),
        addressing,
        ca_file: None,
        credentials: UpstreamCredentials::Static(Credential::new("UPSTREAMKEY", "upstream-secret")),
        connect_timeout: Duration::from_secs(1),
        idle_timeout: Duration::from_secs(1),
    };
    Upstream::new(&cfg).expect("upstream")
}

fn classify_get(raw_path: &str, raw_query: Option<&str>) -> Result<S3Request, crate::s3_request::ClassifyError> {
    classify(&Method::GET, "gw.test", raw_path, raw_query, &HeaderMap::new(), &["gw.test".to_owned()])
}

/// The request as it leaves s3gate: built by the upstream URI builder, then signed.
fn signed_upstream_uri(s3: &S3Request, raw_query: Option<&str>, addressing: UpstreamAddressing) -> http::Uri {
    let up = upstream(addressing);
    let uri = up.uri_for(s3.bucket.as_deref(), s3.key.as_deref(), &upstream_query(raw_query, false)).expect("uri");
    let (mut parts, ()) = Request::get(uri).body(()).expect("request").into_parts();
    let creds = Credentials::new("UPSTREAMKEY", "upstream-secret", None, None, "test");
    sign_upstream(&mut parts, &creds, "us-east-1", crate::sigv4::UNSIGNED_PAYLOAD, SystemTime::now()).expect("signed");
    parts.uri
}

/// How S3 reads a key from a path: decoded once, nothing normalized.
fn s3_key(path: &str, bucket: &str, addressing: UpstreamAddressing) -> String {
    let rest = match addressing {
        UpstreamAddressing::Path => path.strip_prefix(&format!("/{bucket}/")).expect("bucket in path"),
        UpstreamAddressing::Virtual => path.strip_prefix('/').expect("leading slash"),
    };
    percent_decode_str(rest).decode_utf8().expect("utf-8").into_owned()
}

/// How S3 reads a query: `%XX` decoded, a `+` (which a signed request never carries raw) kept.
fn s3_query(query: &str) -> Vec<(String, String)> {
    let decode = |s: &str| percent_decode_str(s).decode_utf8().expect("utf-8").into_owned();
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| p.split_once('=').unwrap_or((p, "")))
        .map(|(k, v)| (decode(k), decode(v)))
        .collect()
}

fn key_strategy() -> impl Strategy<Value = String> {
    // Dot segments, empty segments, every character S3 keys carry that URLs treat specially.
    proptest::string::string_regex("[a-z0-9./+ %&=?#;:@!$'()*,~ü日-]{1,40}")
        .expect("regex")
        .prop_filter("S3 addresses an object by a non-empty key", |k| !k.is_empty())
}

fn value_strategy() -> impl Strategy<Value = String> {
    proptest::string::string_regex("[a-z0-9./+ %&=?#;:@!$'()*,~ü-]{0,30}").expect("regex")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// classify -> canonical URI -> classify gives the same key, whichever way it was encoded.
    #[test]
    fn the_canonical_uri_names_the_classified_key(key in key_strategy(), lax in any::<bool>()) {
        let encoded = if lax { utf8_percent_encode(&key, LAX_PATH_ALL).to_string() } else { encode_key(&key) };
        let raw_path = format!("/bkt/{encoded}");
        let first = classify_get(&raw_path, None).expect("classifies");
        prop_assert_eq!(first.key.as_deref(), Some(key.as_str()));
        let again = classify_get(&canonical_uri(&raw_path), None).expect("canonical form classifies");
        prop_assert_eq!(again.key, first.key);
        prop_assert_eq!(again.bucket, first.bucket);
    }

    /// The key and the query values the policy sees are the ones S3 reads off the signed
    /// upstream request, in path and virtual-hosted addressing.
    #[test]
    fn the_policy_sees_what_the_upstream_is_sent(
        key in key_strategy(),
        prefix in value_strategy(),
        marker in value_strategy(),
        lax in any::<bool>(),
        virtual_hosted in any::<bool>(),
    ) {
        let set = if lax { LAX_QUERY } else { STRICT_QUERY };
        let raw_query = format!(
            "list-type=2&prefix={}&start-after={}",
            utf8_percent_encode(&prefix, set),
            utf8_percent_encode(&marker, set),
        );
        let path_set = if lax { LAX_PATH_ALL } else { STRICT_QUERY };
        let raw_path = format!("/bkt/{}", utf8_percent_encode(&key, path_set));
        let s3 = classify_get(&raw_path, Some(&raw_query)).expect("classifies");
        prop_assert_eq!(s3.key.as_deref(), Some(key.as_str()));
        prop_assert_eq!(s3.query_value("prefix"), Some(prefix.as_str()));
        prop_assert_eq!(s3.query_value("start-after"), Some(marker.as_str()));

        let addressing = if virtual_hosted { UpstreamAddressing::Virtual } else { UpstreamAddressing::Path };
        let uri = signed_upstream_uri(&s3, Some(&raw_query), addressing);
        prop_assert_eq!(s3_key(uri.path(), "bkt", addressing), key);
        prop_assert_eq!(s3_query(uri.query().unwrap_or("")), s3.query.clone());
    }
}
