//! Access control, routing and what s3gate records: subnets (with and without a load balancer
//! in front), allowed endpoints, per-credential policies, routes, forced storage class, metrics
//! and the audit log.

use std::time::SystemTime;

use aws_sdk_s3::primitives::ByteStream;
use http::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::raw::{self, sha256_hex};
use crate::support::recorder::Recorder;
use crate::support::{code_of, create_bucket, exists, get_bytes, sdk_client, Gateway, CLIENT_SECRET};

const READER: &str = "READONLYKEY000000001";
const READER_SECRET: &str = "reader-secret-0123456789abcdefghijklmno";

fn read_only_client_toml() -> String {
    format!(
        r#"
[[client]]
access_key_id = "{READER}"
secret_access_key = "{READER_SECRET}"
policy = '''
{{
  "Version": "2012-10-17",
  "Statement": [
    {{ "Effect": "Allow", "Action": ["s3:GetObject", "s3:ListBucket"], "Resource": ["arn:aws:s3:::shared", "arn:aws:s3:::shared/*"] }},
    {{ "Effect": "Allow", "Action": "s3:PutObject", "Resource": "arn:aws:s3:::shared/inbox/*" }},
    {{ "Effect": "Deny", "Action": "s3:*", "Resource": "arn:aws:s3:::shared/secret/*" }}
  ]
}}
'''
"#
    )
}

#[tokio::test]
async fn a_read_only_credential_can_get_but_not_put_or_delete() {
    let gw = Gateway::start_with_toml(&read_only_client_toml(), |_| {}).await;
    let admin = gw.client();
    create_bucket(&admin, "shared").await;
    for key in ["doc.txt", "secret/plans.txt"] {
        admin.put_object().bucket("shared").key(key).body(ByteStream::from_static(b"data")).send().await.expect("put");
    }
    let reader = gw.client_with(READER, READER_SECRET);
    assert_eq!(get_bytes(&reader, "shared", "doc.txt").await, b"data");
    reader.list_objects_v2().bucket("shared").send().await.expect("list allowed");

    let err = reader.put_object().bucket("shared").key("new.txt").body(ByteStream::from_static(b"x")).send().await;
    assert_eq!(code_of(&err.expect_err("denied")), "AccessDenied");
    let err = reader.delete_object().bucket("shared").key("doc.txt").send().await.expect_err("denied");
    assert_eq!(code_of(&err), "AccessDenied");
    assert!(exists(&admin, "shared", "doc.txt").await);
    // Explicit Deny beats the Allow on shared/*.
    let err = reader.get_object().bucket("shared").key("secret/plans.txt").send().await.expect_err("denied");
    assert_eq!(code_of(&err), "AccessDenied");
    // A narrower Allow.
    reader
        .put_object()
        .bucket("shared")
        .key("inbox/report.txt")
        .body(ByteStream::from_static(b"r"))
        .send()
        .await
        .expect("inbox put");
    // Copying out of a bucket it cannot read is refused even into a place it may write.
    create_bucket(&admin, "private").await;
    admin.put_object().bucket("private").key("p").body(ByteStream::from_static(b"p")).send().await.expect("put");
    let err = reader.copy_object().bucket("shared").key("inbox/stolen").copy_source("private/p").send().await;
    assert_eq!(code_of(&err.expect_err("denied")), "AccessDenied");
    // DeleteObjects is checked key by key.
    let delete = aws_sdk_s3::types::Delete::builder()
        .objects(aws_sdk_s3::types::ObjectIdentifier::builder().key("inbox/report.txt").build().expect("id"))
        .build()
        .expect("delete");
    let err = reader.delete_objects().bucket("shared").delete(delete).send().await.expect_err("denied");
    assert_eq!(code_of(&err), "AccessDenied");
    assert!(exists(&admin, "shared", "inbox/report.txt").await);
}

#[tokio::test]
async fn a_denied_put_never_reaches_the_upstream() {
    let recorder = Recorder::ok().await;
    let gw = Gateway::start_with_toml(&read_only_client_toml(), |a| a.upstream = Some(recorder.url())).await;
    let reader = gw.client_with(READER, READER_SECRET);
    let err = reader
        .put_object()
        .bucket("shared")
        .key("nope.bin")
        .body(ByteStream::from(vec![7u8; 1_000_000]))
        .send()
        .await
        .expect_err("denied");
    assert_eq!(code_of(&err), "AccessDenied");
    assert!(recorder.requests().is_empty(), "the upstream saw {:?}", recorder.requests());
    reader.get_object().bucket("shared").key("doc").send().await.expect("allowed GET is forwarded");
    assert_eq!(recorder.requests().len(), 1);
}

#[tokio::test]
async fn source_subnets_allow_and_deny_ipv4() {
    let denied = Gateway::start_with(|a| a.allowed_source_subnet = vec!["10.0.0.0/8".into()]).await;
    let err = denied.client().list_buckets().send().await.expect_err("denied");
    assert_eq!(code_of(&err), "AccessDenied");
    let allowed =
        Gateway::start_with(|a| a.allowed_source_subnet = vec!["10.0.0.0/8".into(), "127.0.0.0/8".into()]).await;
    allowed.client().list_buckets().send().await.expect("allowed");
}

#[tokio::test]
async fn source_subnets_allow_and_deny_ipv6() {
    let denied = Gateway::start_with(|a| {
        a.listen = Some("[::1]:0".into());
        a.allowed_source_subnet = vec!["fd00::/8".into()];
    })
    .await;
    let url = format!("http://[::1]:{}", denied.addr().port());
    let err = sdk_client(&url, crate::support::CLIENT_AKID, CLIENT_SECRET, None).list_buckets().send().await;
    assert_eq!(code_of(&err.expect_err("denied")), "AccessDenied");
    let allowed = Gateway::start_with(|a| {
        a.listen = Some("[::1]:0".into());
        a.allowed_source_subnet = vec!["::1/128".into()];
    })
    .await;
    let url = format!("http://[::1]:{}", allowed.addr().port());
    sdk_client(&url, crate::support::CLIENT_AKID, CLIENT_SECRET, None).list_buckets().send().await.expect("allowed");
}

/// A signed `GET /` (ListBuckets) sent on a raw connection after `preamble`.
async fn raw_list_buckets(gw: &Gateway, preamble: &[u8], extra_header: Option<(&str, &str)>) -> String {
    let mut req = raw::request("GET", gw.addr(), "/");
    if let Some((k, v)) = extra_header {
        req.headers_mut().insert(http::HeaderName::from_bytes(k.as_bytes()).expect("name"), v.parse().expect("value"));
    }
    raw::sign(&mut req, &sha256_hex(b""), SystemTime::now(), CLIENT_SECRET);
    let mut text = String::from("GET / HTTP/1.1\r\nconnection: close\r\n");
    for (k, v) in req.headers() {
        text.push_str(&format!("{k}: {}\r\n", v.to_str().expect("ascii")));
    }
    text.push_str("\r\n");
    let mut sock = tokio::net::TcpStream::connect(gw.addr()).await.expect("connect");
    sock.write_all(preamble).await.expect("preamble");
    sock.write_all(text.as_bytes()).await.expect("request");
    let mut out = Vec::new();
    let _ = tokio::time::timeout(std::time::Duration::from_secs(10), sock.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

fn proxy_v2_ipv6(src: std::net::Ipv6Addr) -> Vec<u8> {
    let mut h = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    h.push(0x21); // v2, PROXY
    h.push(0x21); // AF_INET6, STREAM
    h.extend_from_slice(&36u16.to_be_bytes());
    h.extend_from_slice(&src.octets());
    h.extend_from_slice(&std::net::Ipv6Addr::LOCALHOST.octets());
    h.extend_from_slice(&40000u16.to_be_bytes());
    h.extend_from_slice(&8099u16.to_be_bytes());
    h
}

#[tokio::test]
async fn the_proxy_protocol_from_a_trusted_load_balancer_decides_the_client_address() {
    let gw = Gateway::start_with(|a| {
        a.trusted_proxy = vec!["127.0.0.1/32".into()];
        a.allowed_source_subnet = vec!["10.1.0.0/16".into(), "2001:db8::/32".into()];
    })
    .await;
    let inside = raw_list_buckets(&gw, b"PROXY TCP4 10.1.2.3 10.0.0.1 5555 8099\r\n", None).await;
    assert!(inside.starts_with("HTTP/1.1 200"), "{inside}");
    let outside = raw_list_buckets(&gw, b"PROXY TCP4 192.168.7.7 10.0.0.1 5555 8099\r\n", None).await;
    assert!(outside.starts_with("HTTP/1.1 403"), "{outside}");
    assert!(outside.contains("AccessDenied"));
    let v6_inside = raw_list_buckets(&gw, &proxy_v2_ipv6("2001:db8::5".parse().expect("ip")), None).await;
    assert!(v6_inside.starts_with("HTTP/1.1 200"), "{v6_inside}");
    let v6_outside = raw_list_buckets(&gw, &proxy_v2_ipv6("2001:db9::5".parse().expect("ip")), None).await;
    assert!(v6_outside.starts_with("HTTP/1.1 403"), "{v6_outside}");
}

#[tokio::test]
async fn forwarded_for_is_believed_only_from_trusted_proxies() {
    let trusted = Gateway::start_with(|a| {
        a.trusted_proxy = vec!["127.0.0.1/32".into()];
        a.allowed_source_subnet = vec!["10.1.0.0/16".into()];
    })
    .await;
    // A trusted peer without a PROXY header is refused (an NLB with PROXY enabled always sends one).
    let resp = raw_list_buckets(&trusted, b"", Some(("x-forwarded-for", "10.1.2.3"))).await;
    assert!(!resp.starts_with("HTTP/1.1 200"), "{resp}");

    let untrusted = Gateway::start_with(|a| a.allowed_source_subnet = vec!["10.1.0.0/16".into()]).await;
    let resp = raw_list_buckets(&untrusted, b"", Some(("x-forwarded-for", "10.1.2.3"))).await;
    assert!(resp.starts_with("HTTP/1.1 403"), "a client cannot claim an address: {resp}");
    // And a PROXY header from an untrusted peer is not read as one.
    let resp = raw_list_buckets(&untrusted, b"PROXY TCP4 10.1.2.3 10.0.0.1 5555 8099\r\n", None).await;
    assert!(!resp.starts_with("HTTP/1.1 200"), "{resp}");
}

#[tokio::test]
async fn only_allowed_endpoints_are_answered() {
    let gw = Gateway::start_with(|a| a.allowed_endpoint = vec!["s3.intranet.test".into()]).await;
    let err = gw.client().list_buckets().send().await.expect_err("127.0.0.1 is not an allowed endpoint");
    assert_eq!(code_of(&err), "AccessDenied");
    let resp = raw_list_buckets(&gw, b"", None).await;
    assert!(resp.starts_with("HTTP/1.1 403"), "{resp}");
    let mut req = raw::request("GET", gw.addr(), "/");
    req.headers_mut().insert("host", format!("s3.intranet.test:{}", gw.addr().port()).parse().expect("host"));
    raw::sign(&mut req, &sha256_hex(b""), SystemTime::now(), CLIENT_SECRET);
    let resp = raw::send(req, "").await;
    assert_eq!(resp.status, StatusCode::OK, "{}", resp.body);
}

#[tokio::test]
async fn routes_send_buckets_to_different_upstreams_with_aliases() {
    let second = crate::support::Upstream::start().await;
    let toml = format!(
        r#"
[[route]]
bucket = "eu-*"
name = "europe"
upstream = "{}"
region = "eu-west-1"
upstream_credentials = "{}:{}"

[[route]]
bucket = "nice-name"
alias = "ugly-upstream-name-123"
"#,
        second.store.url(),
        crate::support::STORE_AKID,
        crate::support::STORE_SECRET
    );
    let gw = Gateway::start_with_toml(&toml, |_| {}).await;
    let s3 = gw.client();
    create_bucket(&s3, "eu-data").await;
    create_bucket(&s3, "us-data").await;
    s3.put_object().bucket("eu-data").key("k").body(ByteStream::from_static(b"eu")).send().await.expect("put eu");
    s3.put_object().bucket("us-data").key("k").body(ByteStream::from_static(b"us")).send().await.expect("put us");
    assert_eq!(get_bytes(&second.direct_client(), "eu-data", "k").await, b"eu");
    assert!(!exists(&gw.upstream.direct_client(), "eu-data", "k").await);
    assert_eq!(get_bytes(&gw.upstream.direct_client(), "us-data", "k").await, b"us");

    create_bucket(&gw.upstream.direct_client(), "ugly-upstream-name-123").await;
    s3.put_object().bucket("nice-name").key("k").body(ByteStream::from_static(b"alias")).send().await.expect("put");
    assert_eq!(get_bytes(&gw.upstream.direct_client(), "ugly-upstream-name-123", "k").await, b"alias");
    assert_eq!(get_bytes(&s3, "nice-name", "k").await, b"alias");
}

#[tokio::test]
async fn forced_storage_class_is_set_upstream_on_writes_only() {
    let recorder = Recorder::ok().await;
    let gw = Gateway::start_with(|a| {
        a.upstream = Some(recorder.url());
        a.storage_class = Some("glacier_ir".into());
    })
    .await;
    let s3 = gw.client();
    s3.put_object()
        .bucket("cold")
        .key("k")
        .storage_class("STANDARD".into())
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .expect("put");
    let _ = s3.create_multipart_upload().bucket("cold").key("m").send().await;
    let _ = s3.copy_object().bucket("cold").key("c").copy_source("cold/k").send().await;
    let _ = s3.get_object().bucket("cold").key("k").send().await;
    let seen = recorder.requests();
    assert_eq!(seen.len(), 4, "{seen:?}");
    for r in &seen[..3] {
        assert_eq!(r.header("x-amz-storage-class"), Some("GLACIER_IR"), "{} {}", r.method, r.target);
    }
    assert_eq!(seen[3].header("x-amz-storage-class"), None);
}

#[tokio::test]
async fn a_bucket_in_another_region_is_learned_and_retried() {
    // The scripted upstream says the bucket lives in eu-west-1 unless signed for it.
    let recorder = Recorder::start(|r| match r.signed_region().as_deref() {
        Some("eu-west-1") => (StatusCode::OK, vec![("content-type", "application/xml".into())], "<ok/>".into()),
        _ => (
            StatusCode::MOVED_PERMANENTLY,
            vec![("x-amz-bucket-region", "eu-west-1".into()), ("content-type", "application/xml".into())],
            "<Error><Code>PermanentRedirect</Code></Error>".into(),
        ),
    })
    .await;
    let gw = Gateway::start_with(|a| a.upstream = Some(recorder.url())).await;
    let s3 = gw.client();
    s3.head_object().bucket("far-away").key("k").send().await.expect("retried in the right region");
    let seen = recorder.requests();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].signed_region().as_deref(), Some("us-east-1"));
    assert_eq!(seen[1].signed_region().as_deref(), Some("eu-west-1"));
    recorder.clear();
    s3.head_object().bucket("far-away").key("k2").send().await.expect("goes straight there now");
    assert_eq!(recorder.requests().len(), 1);
    // A request with a body is not retried: the redirect reaches the client.
    recorder.clear();
    let err = s3.put_object().bucket("other").key("k").body(ByteStream::from_static(b"x")).send().await;
    assert!(err.is_err());
    assert_eq!(recorder.requests().len(), 1);
}
