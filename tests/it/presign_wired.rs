//! The minting API and browser form uploads through the running gateway. These need the proxy
//! to route `GET /_s3gate/presign` and `POST /BUCKET` (form upload) to `s3gate::presign`; the
//! handlers themselves are tested in `presign.rs` and next to their code.
//!
//! To enable: add `mod presign_wired;` to `tests/it/main.rs`.

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::HeaderValue;

use crate::presign::{boto3, curl, temp_file, utf8};
use crate::support::raw::{self, RawResponse};
use crate::support::{create_bucket, exists, get_bytes, Gateway, CLIENT_AKID, CLIENT_SECRET};

const READER: &str = "PRESIGNREADER0000001";
const READER_SECRET: &str = "reader-secret-0123456789abcdefghijklmnop";

/// A credential that may read `shared/public/*` and nothing else.
fn reader_toml() -> String {
    format!(
        r#"
[[client]]
access_key_id = "{READER}"
secret_access_key = "{READER_SECRET}"
policy = '''
{{ "Version": "2012-10-17",
   "Statement": [{{ "Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::shared/public/*" }}] }}
'''
"#
    )
}

/// `GET /_s3gate/presign?QUERY`, SigV4-signed in the header form as awscurl signs it.
async fn api(gw: &Gateway, akid: &str, secret: &str, query: &str) -> RawResponse {
    api_via(gw, &gw.addr().to_string(), akid, secret, query).await
}

/// The same, addressed to `host`.
async fn api_via(gw: &Gateway, host: &str, akid: &str, secret: &str, query: &str) -> RawResponse {
    use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
    let mut req = raw::request("GET", gw.addr(), &format!("/_s3gate/presign?{query}"));
    req.headers_mut().insert("host", HeaderValue::from_str(host).expect("host"));
    let identity = aws_credential_types::Credentials::new(akid, secret, None, None, "api").into();
    let mut settings = SigningSettings::default();
    settings.payload_checksum_kind = aws_sigv4::http_request::PayloadChecksumKind::XAmzSha256;
    let params = aws_sigv4::sign::v4::SigningParams::builder()
        .identity(&identity)
        .region("us-east-1")
        .name("s3")
        .time(SystemTime::now())
        .settings(settings)
        .build()
        .expect("params")
        .into();
    let headers: Vec<(String, String)> =
        req.headers().iter().map(|(k, v)| (k.as_str().to_owned(), v.to_str().expect("ascii").to_owned())).collect();
    let uri = req.uri().to_string();
    let signable = SignableRequest::new(
        "GET",
        &uri,
        headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        SignableBody::Bytes(b""),
    )
    .expect("signable");
    let (instructions, _) = sign(signable, &params).expect("sign").into_parts();
    instructions.apply_to_request_http1x(&mut req);
    raw::send(req, Bytes::new()).await
}

fn json(resp: &RawResponse) -> serde_json::Value {
    assert_eq!(resp.status, 200, "{}", resp.body);
    assert_eq!(resp.headers.get("content-type"), Some(&HeaderValue::from_static("application/json")));
    serde_json::from_str(&resp.body).expect("JSON")
}

#[tokio::test]
async fn the_api_mints_urls_that_curl_can_use() {
    let gw = Gateway::start().await;
    create_bucket(&gw.client(), "shared").await;
    gw.client()
        .put_object()
        .bucket("shared")
        .key("a b.txt")
        .body(b"from the api".to_vec().into())
        .send()
        .await
        .expect("put");

    let got = json(&api(&gw, CLIENT_AKID, CLIENT_SECRET, "bucket=shared&key=a%20b.txt&method=GET&expires=60").await);
    assert_eq!(got["method"], "GET");
    let url = got["url"].as_str().expect("url");
    assert!(url.starts_with(&format!("{}/shared/a%20b.txt?", gw.url)), "{url}");
    let expires_at = time::OffsetDateTime::parse(
        got["expires_at"].as_str().expect("expires_at"),
        &time::format_description::well_known::Rfc3339,
    );
    let left = expires_at.expect("RFC 3339") - time::OffsetDateTime::now_utc();
    assert!(left > time::Duration::seconds(50) && left <= time::Duration::seconds(60), "{left}");
    assert_eq!(curl(&[url]).await, (200, b"from the api".to_vec()));

    let put = json(
        &api(&gw, CLIENT_AKID, CLIENT_SECRET, "bucket=shared&key=up.csv&method=PUT&content-type=text%2Fcsv").await,
    );
    assert_eq!(put["headers"]["content-type"], "text/csv");
    let file = temp_file("up.csv", b"x,y\n");
    let (status, _) =
        curl(&["-T", utf8(&file.path), "-H", "Content-Type: text/csv", put["url"].as_str().expect("url")]).await;
    assert_eq!(status, 200);
    assert_eq!(get_bytes(&gw.upstream.direct_client(), "shared", "up.csv").await, b"x,y\n");
}

#[tokio::test]
async fn the_api_answers_only_on_allowed_endpoints() {
    let gw = Gateway::start_with(|a| a.allowed_endpoint = vec!["s3.intranet.test".into()]).await;
    let query = "bucket=shared&key=k&method=GET&expires=60";
    let resp = api(&gw, CLIENT_AKID, CLIENT_SECRET, query).await;
    assert_eq!(resp.status, 403, "{}", resp.body);
    assert_eq!(resp.code(), "AccessDenied");
    let allowed = format!("s3.intranet.test:{}", gw.addr().port());
    let got = json(&api_via(&gw, &allowed, CLIENT_AKID, CLIENT_SECRET, query).await);
    assert!(got["url"].as_str().expect("url").starts_with(&format!("http://{allowed}/shared/k?")), "{got}");
}

#[tokio::test]
async fn the_api_uses_the_public_url() {
    let gw = Gateway::start_with(|a| {
        a.public_url = Some("https://s3.intranet.example.com".into());
        a.domain = vec!["s3.intranet.example.com".into()];
    })
    .await;
    let got = json(&api(&gw, CLIENT_AKID, CLIENT_SECRET, "bucket=reports&key=q1.pdf").await);
    let url = got["url"].as_str().expect("url");
    assert!(url.starts_with("https://reports.s3.intranet.example.com/q1.pdf?"), "{url}");
    assert!(url.contains("X-Amz-Expires=3600&"), "{url}");
}

#[tokio::test]
async fn a_caller_can_only_mint_what_it_may_do_itself() {
    let gw = Gateway::start_with_toml(&reader_toml(), |_| {}).await;
    create_bucket(&gw.client(), "shared").await;
    gw.client()
        .put_object()
        .bucket("shared")
        .key("public/r.txt")
        .body(b"readable".to_vec().into())
        .send()
        .await
        .expect("put");

    let ok = json(&api(&gw, READER, READER_SECRET, "bucket=shared&key=public/r.txt").await);
    let url = ok["url"].as_str().expect("url");
    assert!(url.contains(&format!("X-Amz-Credential={READER}%2F")), "signed with the caller's own credential: {url}");
    assert_eq!(curl(&[url]).await, (200, b"readable".to_vec()));
    for query in ["bucket=shared&key=public/new.txt&method=PUT", "bucket=shared&key=private/x.txt"] {
        let resp = api(&gw, READER, READER_SECRET, query).await;
        assert_eq!((resp.status.as_u16(), resp.code()), (403, "AccessDenied"), "{query}: {}", resp.body);
    }
    let anonymous =
        raw::send(raw::request("GET", gw.addr(), "/_s3gate/presign?bucket=shared&key=public/r.txt"), Bytes::new())
            .await;
    assert_eq!((anonymous.status.as_u16(), anonymous.code()), (403, "AccessDenied"));
    let forged = api(&gw, READER, "not-the-secret", "bucket=shared&key=public/r.txt").await;
    assert_eq!(forged.code(), "SignatureDoesNotMatch");
    let bad = api(&gw, READER, READER_SECRET, "bucket=shared&key=public/r.txt&expires=604801").await;
    assert_eq!((bad.status.as_u16(), bad.code()), (400, "InvalidArgument"));
}

/// Form fields for a policy with `conditions`, signed now by the client credential.
fn signed_form(conditions: serde_json::Value, fields: &[(&str, &str)]) -> Vec<(String, String)> {
    signed_form_as(CLIENT_AKID, CLIENT_SECRET, conditions, fields)
}

/// [`signed_form`] for any credential.
pub(crate) fn signed_form_as(
    akid: &str,
    secret: &str,
    conditions: serde_json::Value,
    fields: &[(&str, &str)],
) -> Vec<(String, String)> {
    use base64::Engine;
    use hmac::{Hmac, Mac};
    let hmac = |key: &[u8], msg: &[u8]| {
        let mut m = Hmac::<sha2::Sha256>::new_from_slice(key).expect("key");
        m.update(msg);
        m.finalize().into_bytes().to_vec()
    };
    let amz_date = raw::amz_date(SystemTime::now());
    let date = &amz_date[..8];
    let credential = format!("{akid}/{date}/us-east-1/s3/aws4_request");
    let mut all = conditions.as_array().expect("list").clone();
    all.extend([
        serde_json::json!({"x-amz-algorithm": "AWS4-HMAC-SHA256"}),
        serde_json::json!({"x-amz-credential": credential}),
        serde_json::json!({"x-amz-date": amz_date}),
    ]);
    let expiration = (time::OffsetDateTime::now_utc() + Duration::from_secs(600))
        .format(&time::format_description::well_known::Rfc3339)
        .expect("format");
    let policy = serde_json::json!({"expiration": expiration, "conditions": all}).to_string();
    let policy = base64::engine::general_purpose::STANDARD.encode(policy);
    let signature = hex::encode(hmac(&raw::signing_key(secret, date), policy.as_bytes()));
    let mut out: Vec<(String, String)> = fields.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect();
    for (n, v) in [("x-amz-algorithm", "AWS4-HMAC-SHA256".to_owned()), ("x-amz-credential", credential)] {
        out.push((n.to_owned(), v));
    }
    out.extend([
        ("x-amz-date".to_owned(), amz_date),
        ("policy".to_owned(), policy),
        ("x-amz-signature".to_owned(), signature),
    ]);
    out
}

pub(crate) async fn curl_form(url: &str, fields: &[(String, String)], file: &std::path::Path) -> (u16, String) {
    let mut args: Vec<String> = Vec::new();
    for (name, value) in fields {
        args.extend(["--form-string".to_owned(), format!("{name}={value}")]);
    }
    args.extend(["-F".to_owned(), format!("file=@{}", utf8(file))]);
    args.push(url.to_owned());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (status, body) = curl(&args).await;
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test]
async fn a_browser_form_uploads_through_the_gateway() {
    let gw = Gateway::start().await;
    create_bucket(&gw.client(), "drop").await;
    let conditions = serde_json::json!([
        {"bucket": "drop"},
        ["starts-with", "$key", "inbox/"],
        ["eq", "$Content-Type", "text/plain"],
        ["content-length-range", 1, 1_000_000],
        {"success_action_status": "201"},
    ]);
    let fields = signed_form(
        conditions,
        &[("key", "inbox/${filename}"), ("Content-Type", "text/plain"), ("success_action_status", "201")],
    );
    let file = temp_file("hello.txt", b"hello from a form");
    let (status, body) = curl_form(&format!("{}/drop", gw.url), &fields, &file.path).await;
    assert_eq!(status, 201, "{body}");
    assert!(body.contains("<Key>inbox/hello.txt</Key>"), "{body}");
    let store = gw.upstream.direct_client();
    assert_eq!(get_bytes(&store, "drop", "inbox/hello.txt").await, b"hello from a form");
    let head = store.head_object().bucket("drop").key("inbox/hello.txt").send().await.expect("head");
    assert_eq!(head.content_type(), Some("text/plain"));

    let out = boto3(&gw.url, &["post", "drop", "inbox/boto3.txt", utf8(&file.path), "1000"]).await;
    assert!(out.starts_with("STATUS=201"), "{out}");
    assert!(exists(&store, "drop", "inbox/boto3.txt").await);
}

#[tokio::test]
async fn a_form_that_breaks_its_policy_stores_nothing() {
    let gw = Gateway::start().await;
    create_bucket(&gw.client(), "drop").await;
    let conditions = serde_json::json!([{"key": "small.bin"}, ["content-length-range", 1, 1000]]);
    let fields = signed_form(conditions, &[("key", "small.bin")]);
    let big = temp_file("big.bin", &[b'b'; 5000]);
    let (status, body) = curl_form(&format!("{}/drop", gw.url), &fields, &big.path).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("<Code>EntityTooLarge</Code>"), "{body}");
    assert!(!exists(&gw.upstream.direct_client(), "drop", "small.bin").await);

    // Another bucket than the policy's, and a field the policy does not name.
    let fields =
        signed_form(serde_json::json!([{"bucket": "drop"}, {"key": "k"}]), &[("key", "k"), ("acl", "public-read")]);
    let small = temp_file("s.txt", b"s");
    let (status, body) = curl_form(&format!("{}/drop", gw.url), &fields, &small.path).await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("Extra input fields: acl"), "{body}");
    let elsewhere = signed_form(serde_json::json!([{"bucket": "drop"}, {"key": "k"}]), &[("key", "k")]);
    create_bucket(&gw.client(), "other").await;
    let (status, body) = curl_form(&format!("{}/other", gw.url), &elsewhere, &small.path).await;
    assert_eq!(status, 403, "{body}");
    assert!(!exists(&gw.upstream.direct_client(), "other", "k").await);
}

#[tokio::test]
async fn a_large_form_upload_goes_up_in_parts_and_a_failed_one_leaves_nothing() {
    let gw = Gateway::start().await;
    create_bucket(&gw.client(), "parts").await;
    let direct = gw.upstream.direct_client();
    // 20 MiB + 3: three upstream parts (8 + 8 + 4 MiB), completed into one object.
    let data = crate::support::pattern(20 * 1024 * 1024 + 3, 21);
    let conditions = serde_json::json!([{"key": "large.bin"}, ["content-length-range", 1, 64 * 1024 * 1024]]);
    let fields = signed_form(conditions, &[("key", "large.bin")]);
    let file = temp_file("large.bin", &data);
    let (status, body) = curl_form(&format!("{}/parts", gw.url), &fields, &file.path).await;
    assert_eq!(status, 204, "{body}");
    assert_eq!(crate::support::get_bytes(&direct, "parts", "large.bin").await, data);

    // Over the policy's maximum after the first part went up: the multipart upload is aborted.
    let conditions = serde_json::json!([{"key": "toolarge.bin"}, ["content-length-range", 1, 12 * 1024 * 1024]]);
    let fields = signed_form(conditions, &[("key", "toolarge.bin")]);
    let (status, body) = curl_form(&format!("{}/parts", gw.url), &fields, &file.path).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("<Code>EntityTooLarge</Code>"), "{body}");
    assert!(!exists(&direct, "parts", "toolarge.bin").await);
    // No multipart upload is left behind. (The store has no ListMultipartUploads; it keeps an
    // upload's parts and state as `.upload*` files until it is completed or aborted.)
    let leftovers = gw.upstream.stored_paths(".upload");
    assert!(leftovers.is_empty(), "an aborted upload left {leftovers:?}");
}

const UPLOADER: &str = "FORMUPLOADER00000001";
const UPLOADER_SECRET: &str = "uploader-secret-0123456789abcdefghijklm";

#[tokio::test]
async fn a_form_field_that_sets_an_acl_needs_the_acl_permission() {
    let toml = format!(
        r#"
[[client]]
access_key_id = "{UPLOADER}"
secret_access_key = "{UPLOADER_SECRET}"
policy = '{{ "Version": "2012-10-17", "Statement": [{{ "Effect": "Allow", "Action": "s3:PutObject", "Resource": "arn:aws:s3:::drop/*" }}] }}'
"#
    );
    let gw = Gateway::start_with_toml(&toml, |_| {}).await;
    create_bucket(&gw.client(), "drop").await;
    let small = temp_file("s.txt", b"s");
    let conditions = serde_json::json!([{"bucket": "drop"}, {"key": "public.txt"}, {"acl": "public-read"}]);
    let fields =
        signed_form_as(UPLOADER, UPLOADER_SECRET, conditions, &[("key", "public.txt"), ("acl", "public-read")]);
    let (status, body) = curl_form(&format!("{}/drop", gw.url), &fields, &small.path).await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("<Code>AccessDenied</Code>"), "{body}");
    assert!(!exists(&gw.upstream.direct_client(), "drop", "public.txt").await);
    let conditions = serde_json::json!([{"bucket": "drop"}, {"key": "private.txt"}]);
    let fields = signed_form_as(UPLOADER, UPLOADER_SECRET, conditions, &[("key", "private.txt")]);
    let (status, body) = curl_form(&format!("{}/drop", gw.url), &fields, &small.path).await;
    assert_eq!(status, 204, "{body}");
    assert!(exists(&gw.upstream.direct_client(), "drop", "private.txt").await);
}

/// Sends a form upload's head and `body`, then stalls; returns what the gateway answered and
/// how long it took.
async fn stalled_form(gw: &Gateway, boundary: &str, body: &str) -> (String, Duration) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let head = format!(
        "POST /drop HTTP/1.1\r\nHost: {}\r\nContent-Type: multipart/form-data; boundary={boundary}\r\n\
         Content-Length: 1000000\r\n\r\n",
        gw.addr()
    );
    let mut sock = tokio::net::TcpStream::connect(gw.addr()).await.expect("connect");
    sock.write_all(head.as_bytes()).await.expect("head");
    sock.write_all(body.as_bytes()).await.expect("the form's start");
    let started = std::time::Instant::now();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), sock.read_to_end(&mut answer)).await;
    assert!(read.is_ok(), "a stalled form must be answered and closed, not left hanging");
    (String::from_utf8_lossy(&answer).into_owned(), started.elapsed())
}

fn form_part(boundary: &str, name: &str, value: &str) -> String {
    format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n")
}

#[tokio::test]
async fn a_form_that_stalls_before_or_inside_its_file_gets_request_timeout_and_nothing_goes_upstream() {
    let upstream = crate::support::recorder::Recorder::ok().await;
    let gw = Gateway::start_with(|a| {
        a.upstream = Some(upstream.url());
        a.upstream_timeout = Some(1);
    })
    .await;
    let boundary = "s3gate-stalled-form";

    // One field, then nothing: the fields come before any signature can be checked.
    let (answer, took) = stalled_form(&gw, boundary, &form_part(boundary, "key", "inbox/x.txt")).await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("<Code>RequestTimeout</Code>"), "{answer}");
    assert!(took < Duration::from_secs(5), "answered after {took:?}");

    // A signed form whose file stops after its first bytes.
    let fields = signed_form(serde_json::json!([{"bucket": "drop"}, {"key": "k"}]), &[("key", "k")]);
    let mut body: String = fields.iter().map(|(n, v)| form_part(boundary, n, v)).collect();
    body.push_str(&format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"f.txt\"\r\n\r\nthe first bytes"
    ));
    let (answer, took) = stalled_form(&gw, boundary, &body).await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("<Code>RequestTimeout</Code>"), "{answer}");
    assert!(took < Duration::from_secs(5), "answered after {took:?}");

    assert!(upstream.requests().is_empty(), "a stalled form reached the upstream: {:?}", upstream.requests());
    gw.stop().await;
}
