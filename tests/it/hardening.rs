//! Requests that try to get around s3gate's checks, each answered with a refusal that reaches
//! nothing upstream: headers added after signing, headers that ask for more than the base
//! action, query strings the policy and S3 would read differently, literal keys with dot
//! segments, expired and Signature Version 2 requests.

use std::time::{Duration, SystemTime};

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::ObjectCannedAcl;
use http::{HeaderValue, Request};

use crate::presign::{send, sigv4_url};
use crate::support::raw::{self, sha256_hex};
use crate::support::recorder::Recorder;
use crate::support::{code_of, create_bucket, exists, Gateway, CLIENT_AKID, CLIENT_SECRET};

const WRITER: &str = "WRITERKEY00000000001";
const WRITER_SECRET: &str = "writer-secret-0123456789abcdefghijklmno";

/// A credential that may read, write and list, but not set ACLs, tags or Object Lock, list
/// only under `home/a b/`, and never touch `lit/secret/`.
fn writer_toml() -> String {
    format!(
        r#"
[[client]]
access_key_id = "{WRITER}"
secret_access_key = "{WRITER_SECRET}"
policy = '''
{{
  "Version": "2012-10-17",
  "Statement": [
    {{ "Effect": "Allow", "Action": ["s3:GetObject", "s3:PutObject"], "Resource": ["arn:aws:s3:::inbox/*", "arn:aws:s3:::lit/public/*", "arn:aws:s3:::lit/secret/*"] }},
    {{ "Effect": "Allow", "Action": "s3:ListBucket", "Resource": "arn:aws:s3:::inbox",
       "Condition": {{ "StringLike": {{ "s3:prefix": "home/a b/*" }} }} }},
    {{ "Effect": "Deny", "Action": "s3:*", "Resource": "arn:aws:s3:::lit/secret/*" }}
  ]
}}
'''
"#
    )
}

fn now() -> SystemTime {
    SystemTime::now()
}

/// A raw request signed for `akid` over every header it has now; headers inserted afterwards
/// are unsigned.
fn signed(method: &str, gw: &Gateway, path_and_query: &str, akid: &str, secret: &str, body: &[u8]) -> Request<()> {
    let mut req = raw::request(method, gw.addr(), path_and_query);
    raw::sign_as(&mut req, &sha256_hex(body), now(), akid, secret);
    req
}

#[tokio::test]
async fn headers_added_to_a_presigned_put_are_refused_and_nothing_is_stored() {
    let gw = Gateway::start().await;
    let s3 = gw.client();
    for bucket in ["inbox", "other"] {
        create_bucket(&s3, bucket).await;
    }
    s3.put_object().bucket("other").key("secret").body(ByteStream::from_static(b"secret data")).send().await.unwrap();
    let url = sigv4_url("PUT", &format!("{}/inbox/k", gw.url), CLIENT_SECRET, now(), Duration::from_secs(600));
    let direct = gw.upstream.direct_client();
    for (name, value) in [
        ("x-amz-copy-source", "/other/secret"),
        ("x-amz-acl", "public-read"),
        ("x-amz-tagging", "owner=attacker"),
        ("x-amz-server-side-encryption", "AES256"),
        ("x-amz-object-lock-mode", "COMPLIANCE"),
        ("x-amz-meta-injected", "1"),
    ] {
        let mut req = Request::builder().method("PUT").uri(&url).body(()).unwrap();
        req.headers_mut().insert(name, HeaderValue::from_static(value));
        let resp = raw::send(req, "x").await;
        assert_eq!((resp.status.as_u16(), resp.code()), (403, "AccessDenied"), "{name}: {}", resp.body);
        assert!(resp.body.contains("There were headers present in the request which were not signed"), "{}", resp.body);
        assert!(resp.body.contains(&format!("<HeadersNotSigned>{name}</HeadersNotSigned>")), "{}", resp.body);
        assert!(!exists(&direct, "inbox", "k").await, "{name}: the upload reached the store");
    }
    // What a browser adds to a presigned upload is fine, and the content type is kept.
    let mut req = Request::builder().method("PUT").uri(&url).body(()).unwrap();
    req.headers_mut().insert("content-type", HeaderValue::from_static("text/plain"));
    req.headers_mut().insert("origin", HeaderValue::from_static("https://app.example"));
    let resp = raw::send(req, "from a browser").await;
    assert_eq!(resp.status.as_u16(), 200, "{}", resp.body);
    let head = direct.head_object().bucket("inbox").key("k").send().await.expect("stored");
    assert_eq!(head.content_type(), Some("text/plain"));
}

#[tokio::test]
async fn a_captured_request_replayed_with_more_headers_is_refused() {
    let gw = Gateway::start().await;
    create_bucket(&gw.client(), "inbox").await;
    let mut req = signed("PUT", &gw, "/inbox/replayed", CLIENT_AKID, CLIENT_SECRET, b"body");
    req.headers_mut().insert("x-amz-tagging", HeaderValue::from_static("a=b"));
    let resp = raw::send(req, "body").await;
    assert_eq!((resp.status.as_u16(), resp.code()), (403, "AccessDenied"), "{}", resp.body);
    assert!(!exists(&gw.upstream.direct_client(), "inbox", "replayed").await);
}

#[tokio::test]
async fn only_signed_headers_and_the_documented_unsigned_ones_go_upstream() {
    let upstream = Recorder::ok().await;
    let gw = Gateway::start_with(|a| a.upstream = Some(upstream.url())).await;
    let mut req = signed("PUT", &gw, "/inbox/k", CLIENT_AKID, CLIENT_SECRET, b"body");
    for (name, value) in [
        ("x-custom-routing", "internal"),
        ("x-forwarded-host", "evil.example"),
        ("cache-control", "no-cache"),
        ("content-disposition", "attachment"),
    ] {
        req.headers_mut().insert(name, HeaderValue::from_static(value));
    }
    let resp = raw::send(req, "body").await;
    assert_eq!(resp.status.as_u16(), 200, "{}", resp.body);
    let seen = upstream.requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].header("cache-control"), Some("no-cache"));
    assert_eq!(seen[0].header("content-disposition"), Some("attachment"));
    assert_eq!(seen[0].header("x-custom-routing"), None);
    assert_eq!(seen[0].header("x-forwarded-host"), None);
}

#[tokio::test]
async fn setting_acls_tags_or_locks_needs_its_own_permission() {
    let gw = Gateway::start_with_toml(&writer_toml(), |_| {}).await;
    let admin = gw.client();
    create_bucket(&admin, "inbox").await;
    admin.put_object().bucket("inbox").key("src").body(ByteStream::from_static(b"s")).send().await.unwrap();
    let writer = gw.client_with(WRITER, WRITER_SECRET);
    let direct = gw.upstream.direct_client();

    let body = || ByteStream::from_static(b"data");
    let acl = writer.put_object().bucket("inbox").key("acl").acl(ObjectCannedAcl::PublicRead).body(body()).send().await;
    assert_eq!(code_of(&acl.expect_err("needs s3:PutObjectAcl")), "AccessDenied");
    let tags = writer.put_object().bucket("inbox").key("tags").tagging("a=b").body(body()).send().await;
    assert_eq!(code_of(&tags.expect_err("needs s3:PutObjectTagging")), "AccessDenied");
    let hold = writer
        .put_object()
        .bucket("inbox")
        .key("hold")
        .object_lock_legal_hold_status(aws_sdk_s3::types::ObjectLockLegalHoldStatus::On)
        .body(body())
        .send()
        .await;
    assert_eq!(code_of(&hold.expect_err("needs s3:PutObjectLegalHold")), "AccessDenied");
    let copy = writer.copy_object().bucket("inbox").key("copy").copy_source("inbox/src").tagging("a=b").send().await;
    assert_eq!(code_of(&copy.expect_err("a copy that tags needs s3:PutObjectTagging")), "AccessDenied");
    let mpu = writer.create_multipart_upload().bucket("inbox").key("mpu").acl(ObjectCannedAcl::PublicRead).send().await;
    assert_eq!(code_of(&mpu.expect_err("a multipart upload with an ACL needs s3:PutObjectAcl")), "AccessDenied");
    for key in ["acl", "tags", "hold", "copy"] {
        assert!(!exists(&direct, "inbox", key).await, "{key} reached the store");
    }
    // Without the extra headers the same credential uploads and copies.
    writer.put_object().bucket("inbox").key("plain").body(body()).send().await.expect("plain put");
    writer.copy_object().bucket("inbox").key("copy").copy_source("inbox/src").send().await.expect("plain copy");
}

#[tokio::test]
async fn the_policy_sees_the_query_exactly_as_s3_will() {
    let gw = Gateway::start_with_toml(&writer_toml(), |_| {}).await;
    create_bucket(&gw.client(), "inbox").await;
    // `+` is a literal plus upstream (`%2B`), so `home/a+b/` is not `home/a b/`.
    let list = |query: &str| signed("GET", &gw, &format!("/inbox?list-type=2&{query}"), WRITER, WRITER_SECRET, b"");
    let resp = raw::send(list("prefix=home/a%20b/"), "").await;
    assert_eq!(resp.status.as_u16(), 200, "{}", resp.body);
    // Signed as `%2B` (how SigV4 canonicalizes a raw `+`), sent with the raw `+`: the same
    // signature, and a policy that read `+` as a space would have allowed it.
    let mut plus = list("prefix=home/a%2Bb/");
    let raw_plus = plus.uri().to_string().replace("%2B", "+");
    *plus.uri_mut() = raw_plus.parse().unwrap();
    let resp = raw::send(plus, "").await;
    assert_eq!((resp.status.as_u16(), resp.code()), (403, "AccessDenied"), "{}", resp.body);
    // Two prefixes: the policy could read one and S3 the other.
    let resp = raw::send(list("prefix=home/a%20b/&prefix=secret/"), "").await;
    assert_eq!((resp.status.as_u16(), resp.code()), (400, "InvalidArgument"), "{}", resp.body);
}

#[tokio::test]
async fn duplicated_headers_and_x_amz_query_parameters_are_refused_before_the_upstream() {
    let upstream = Recorder::ok().await;
    let gw = Gateway::start_with(|a| a.upstream = Some(upstream.url())).await;
    let mut req = raw::request("PUT", gw.addr(), "/inbox/copy");
    req.headers_mut().append("x-amz-copy-source", HeaderValue::from_static("/inbox/a"));
    req.headers_mut().append("x-amz-copy-source", HeaderValue::from_static("/secret/b"));
    raw::sign(&mut req, &sha256_hex(b""), now(), CLIENT_SECRET);
    let resp = raw::send(req, "").await;
    assert_eq!((resp.status.as_u16(), resp.code()), (400, "InvalidArgument"), "{}", resp.body);
    // Under header auth, an `x-amz-*` query parameter is a header S3 would act on unsigned.
    let resp =
        raw::send(signed("PUT", &gw, "/inbox/k?x-amz-acl=public-read", CLIENT_AKID, CLIENT_SECRET, b"x"), "x").await;
    assert_eq!((resp.status.as_u16(), resp.code()), (400, "InvalidArgument"), "{}", resp.body);
    assert!(upstream.requests().is_empty(), "a refused request reached the upstream");
}

#[tokio::test]
async fn keys_are_literal_for_the_policy_and_the_upstream() {
    let upstream = Recorder::ok().await;
    let gw = Gateway::start_with_toml(&writer_toml(), |a| a.upstream = Some(upstream.url())).await;
    let writer = gw.client_with(WRITER, WRITER_SECRET);
    // `public/../secret/x` is a key under `public/`: the Deny on `secret/*` does not apply.
    for key in ["public/../secret/x", "public/double//slash/./dot/../x"] {
        writer.put_object().bucket("lit").key(key).body(ByteStream::from_static(b"d")).send().await.expect(key);
        let seen = upstream.requests();
        let path = seen.last().map(|r| r.target.split('?').next().unwrap_or_default().to_owned());
        assert_eq!(path, Some(format!("/lit/{key}")));
    }
    // `secret/../public/x` is a key under `secret/`: denied, whatever it would normalize to.
    upstream.clear();
    let err = writer.put_object().bucket("lit").key("secret/../public/x").body(ByteStream::from_static(b"d")).send();
    assert_eq!(code_of(&err.await.expect_err("denied")), "AccessDenied");
    assert!(upstream.requests().is_empty());
}

#[tokio::test]
async fn a_presigned_url_that_expires_at_once_is_expired() {
    let gw = Gateway::start().await;
    create_bucket(&gw.client(), "inbox").await;
    let url = sigv4_url("PUT", &format!("{}/inbox/zero", gw.url), CLIENT_SECRET, now(), Duration::from_secs(0));
    assert!(url.contains("X-Amz-Expires=0"), "{url}");
    let resp = send("PUT", &url, "x").await;
    assert_eq!((resp.status.as_u16(), resp.code()), (403, "AccessDenied"), "{}", resp.body);
    assert!(resp.body.contains("Request has expired"), "{}", resp.body);
    assert!(!exists(&gw.upstream.direct_client(), "inbox", "zero").await);
}

#[tokio::test]
async fn signature_version_2_gets_one_clear_error_in_every_form() {
    let upstream = Recorder::ok().await;
    let gw = Gateway::start_with(|a| a.upstream = Some(upstream.url())).await;
    let expect_v2 = |resp: &raw::RawResponse| {
        assert_eq!((resp.status.as_u16(), resp.code()), (400, "InvalidRequest"), "{}", resp.body);
        assert!(resp.body.contains("Please use AWS4-HMAC-SHA256"), "{}", resp.body);
    };
    let mut header = raw::request("GET", gw.addr(), "/inbox/k");
    header.headers_mut().insert("date", HeaderValue::from_static("Wed, 02 Dec 2026 00:00:00 GMT"));
    header.headers_mut().insert("authorization", HeaderValue::from_static("AWS GATECLIENTKEY0000001:c2lnbmF0dXJl"));
    expect_v2(&raw::send(header, "").await);
    let query = "/inbox/k?AWSAccessKeyId=GATECLIENTKEY0000001&Expires=1893456000&Signature=c2lnbmF0dXJl";
    expect_v2(&raw::send(raw::request("GET", gw.addr(), query), "").await);
    let boundary = "s3gateboundary";
    let form = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"key\"\r\n\r\nk\r\n\
         --{boundary}\r\nContent-Disposition: form-data; name=\"AWSAccessKeyId\"\r\n\r\nGATECLIENTKEY0000001\r\n\
         --{boundary}\r\nContent-Disposition: form-data; name=\"policy\"\r\n\r\ne30=\r\n\
         --{boundary}\r\nContent-Disposition: form-data; name=\"signature\"\r\n\r\nc2ln\r\n\
         --{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"f\"\r\n\r\ndata\r\n--{boundary}--\r\n"
    );
    let mut post = raw::request("POST", gw.addr(), "/inbox");
    let content_type = format!("multipart/form-data; boundary={boundary}");
    post.headers_mut().insert("content-type", HeaderValue::from_str(&content_type).unwrap());
    expect_v2(&raw::send(post, form).await);
    assert!(upstream.requests().is_empty(), "a SigV2 request reached the upstream");
}
