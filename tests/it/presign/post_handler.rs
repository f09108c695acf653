//! Browser form uploads (S3 POST Object) through `s3gate::presign::post` itself, in a small
//! server that does what the proxy will: verify the form, send the file part to the real
//! store as a PUT, and answer as S3. Forms come from curl `-F` (the
//! multipart/form-data a browser sends) and from boto3's `generate_presigned_post`, with
//! policies signed by boto3 or by hand here. Through the gateway itself: `presign_wired.rs`.

use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use base64::Engine;
use hmac::{Hmac, Mac};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use s3gate::body::Body;
use s3gate::credentials::{Credential, KeyStore};
use s3gate::error::S3Error;
use s3gate::presign::post::{post_object, post_object_response};
use sha2::Sha256;

use super::{boto3, curl, temp_file, utf8};
use crate::support::{create_bucket, exists, get_bytes, pattern, Upstream};
use crate::support::{CLIENT_AKID, CLIENT_SECRET, STORE_AKID, STORE_SECRET};

/// The mini proxy: POST /BUCKET -> verified form -> PUT to the store.
async fn start(store_url: String) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            let store_url = store_url.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req| {
                    let store_url = store_url.clone();
                    async move { Ok::<_, std::convert::Infallible>(handle(req, &store_url, addr).await) }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(sock), svc)
                    .await;
            });
        }
    });
    addr
}

async fn handle(req: Request<Incoming>, store_url: &str, me: SocketAddr) -> Response<Body> {
    match upload(req, store_url, me).await {
        Ok(resp) => resp,
        Err(e) => e.into_response("POSTHARNESS", false),
    }
}

async fn upload(req: Request<Incoming>, store_url: &str, me: SocketAddr) -> Result<Response<Body>, S3Error> {
    let bucket = req.uri().path().trim_matches('/').to_owned();
    let keys = KeyStore::new([Credential::new(CLIENT_AKID, CLIENT_SECRET)]);
    let now = time::OffsetDateTime::now_utc();
    let upload = post_object(req, &bucket, &keys, now, Duration::from_secs(900)).await?;
    // S3, and the store here, refuse a PUT of unknown length (411), so the proxy needs the
    // length first (or a multipart upload). The harness reads the verified stream to its end
    // (test files are small): a stream that breaks the policy fails, and nothing is sent.
    let data = match upload.body.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => return Err(upload.failure.take().expect("the body records why it failed")),
    };
    let target = &upload.target;
    let uri = format!("{store_url}/{bucket}/{}", s3gate::s3_request::encode_key(&target.key));
    let mut put = Request::builder().method("PUT").uri(uri).body(Full::new(data.clone())).expect("put");
    put.headers_mut().extend(target.headers.clone());
    put.headers_mut().insert(http::header::CONTENT_LENGTH, data.len().into());
    let (mut parts, body) = put.into_parts();
    let store = aws_credential_types::Credentials::new(STORE_AKID, STORE_SECRET, None, None, "store");
    s3gate::sigv4::sign_upstream(&mut parts, &store, "us-east-1", "UNSIGNED-PAYLOAD", SystemTime::now()).expect("sign");
    let client = Client::builder(TokioExecutor::new()).build_http();
    let resp = client.request(Request::from_parts(parts, body)).await.expect("the store answers");
    assert!(resp.status().is_success(), "the store answered {}", resp.status());
    let public = s3gate::presign::parse_public_url(&format!("http://{me}")).expect("url");
    Ok(post_object_response(target, resp.headers().get("etag"), &public, &[]))
}

fn hmac(key: &[u8], msg: &[u8]) -> Vec<u8> {
    let mut m = Hmac::<Sha256>::new_from_slice(key).expect("key");
    m.update(msg);
    m.finalize().into_bytes().to_vec()
}

/// Form fields for a policy with `conditions` (plus the x-amz-* ones), signed now.
fn signed_fields(expiration: time::OffsetDateTime, conditions: serde_json::Value) -> Vec<(String, String)> {
    let now = time::OffsetDateTime::now_utc();
    let date = format!("{:04}{:02}{:02}", now.year(), now.month() as u8, now.day());
    let amz_date = format!("{date}T{:02}{:02}{:02}Z", now.hour(), now.minute(), now.second());
    let credential = format!("{CLIENT_AKID}/{date}/us-east-1/s3/aws4_request");
    let mut all = conditions.as_array().expect("list").clone();
    all.extend([
        serde_json::json!({"x-amz-algorithm": "AWS4-HMAC-SHA256"}),
        serde_json::json!({"x-amz-credential": credential}),
        serde_json::json!({"x-amz-date": amz_date}),
    ]);
    let expiration = expiration.format(&time::format_description::well_known::Rfc3339).expect("format");
    let policy = serde_json::json!({"expiration": expiration, "conditions": all}).to_string();
    let policy = base64::engine::general_purpose::STANDARD.encode(policy);
    let mut key = hmac(format!("AWS4{CLIENT_SECRET}").as_bytes(), date.as_bytes());
    for part in ["us-east-1", "s3", "aws4_request"] {
        key = hmac(&key, part.as_bytes());
    }
    let signature = hex::encode(hmac(&key, policy.as_bytes()));
    [
        ("x-amz-algorithm", "AWS4-HMAC-SHA256".to_owned()),
        ("x-amz-credential", credential),
        ("x-amz-date", amz_date),
        ("policy", policy),
        ("x-amz-signature", signature),
    ]
    .into_iter()
    .map(|(n, v)| (n.to_owned(), v))
    .collect()
}

/// curl -F, as a browser posts a form: the fields in order, then the file.
async fn curl_form(url: &str, fields: &[(String, String)], file: &std::path::Path) -> (u16, String) {
    let mut args: Vec<String> = Vec::new();
    for (name, value) in fields {
        args.extend(["--form-string".to_owned(), format!("{name}={value}")]);
    }
    args.extend(["-F".to_owned(), format!("file=@{};type=application/octet-stream", utf8(file))]);
    args.push(url.to_owned());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (status, body) = curl(&args).await;
    (status, String::from_utf8_lossy(&body).into_owned())
}

fn in_an_hour() -> time::OffsetDateTime {
    time::OffsetDateTime::now_utc() + Duration::from_secs(3600)
}

#[tokio::test]
async fn a_browser_form_upload_reaches_the_store() {
    let up = Upstream::start().await;
    create_bucket(&up.direct_client(), "drop").await;
    let addr = start(up.store.url()).await;
    let conditions = serde_json::json!([
        {"bucket": "drop"},
        ["starts-with", "$key", "inbox/"],
        ["starts-with", "$Content-Type", "text/"],
        ["content-length-range", 1, 10_000_000],
        {"success_action_status": "201"},
        ["starts-with", "$x-amz-meta-sender", ""],
    ]);
    let mut fields = vec![
        ("key".to_owned(), "inbox/${filename}".to_owned()),
        ("Content-Type".to_owned(), "text/plain".to_owned()),
        ("success_action_status".to_owned(), "201".to_owned()),
        ("x-amz-meta-sender".to_owned(), "eric".to_owned()),
    ];
    fields.extend(signed_fields(in_an_hour(), conditions));
    let data = pattern(3 * 1024 * 1024 + 11, 2);
    let file = temp_file("report.txt", &data);
    let (status, body) = curl_form(&format!("http://{addr}/drop"), &fields, &file.path).await;
    assert_eq!(status, 201, "{body}");
    assert!(body.contains("<Bucket>drop</Bucket><Key>inbox/report.txt</Key><ETag>"), "{body}");
    let store = up.direct_client();
    assert_eq!(get_bytes(&store, "drop", "inbox/report.txt").await, data);
    let head = store.head_object().bucket("drop").key("inbox/report.txt").send().await.expect("head");
    assert_eq!(head.content_type(), Some("text/plain"));
    assert_eq!(head.metadata().and_then(|m| m.get("sender")).map(String::as_str), Some("eric"));
}

#[tokio::test]
async fn a_violated_content_length_range_stores_nothing() {
    let up = Upstream::start().await;
    create_bucket(&up.direct_client(), "drop").await;
    let addr = start(up.store.url()).await;
    let conditions = serde_json::json!([{"key": "small.bin"}, ["content-length-range", 10, 100_000]]);
    let mut fields = vec![("key".to_owned(), "small.bin".to_owned())];
    fields.extend(signed_fields(in_an_hour(), conditions));
    let url = format!("http://{addr}/drop");

    let big = temp_file("big.bin", &pattern(2 * 1024 * 1024, 1));
    let (status, body) = curl_form(&url, &fields, &big.path).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("<Code>EntityTooLarge</Code>"), "{body}");
    let tiny = temp_file("tiny.bin", b"123");
    let (status, body) = curl_form(&url, &fields, &tiny.path).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("<Code>EntityTooSmall</Code>"), "{body}");
    assert!(!exists(&up.direct_client(), "drop", "small.bin").await, "a refused upload was stored");
    assert!(up.stored_paths("small.bin").is_empty(), "{:?}", up.stored_paths("small.bin"));
}

#[tokio::test]
async fn an_expired_or_unlisted_form_is_refused_before_the_file_is_read() {
    let up = Upstream::start().await;
    create_bucket(&up.direct_client(), "drop").await;
    let addr = start(up.store.url()).await;
    let url = format!("http://{addr}/drop");
    let file = temp_file("f.txt", b"hello");

    let mut expired = vec![("key".to_owned(), "k".to_owned())];
    expired.extend(signed_fields(
        time::OffsetDateTime::now_utc() - Duration::from_secs(1),
        serde_json::json!([{"key": "k"}]),
    ));
    let (status, body) = curl_form(&url, &expired, &file.path).await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("Invalid according to Policy: Policy expired."), "{body}");

    let mut extra = vec![("key".to_owned(), "k".to_owned()), ("acl".to_owned(), "public-read".to_owned())];
    extra.extend(signed_fields(in_an_hour(), serde_json::json!([{"key": "k"}])));
    let (status, body) = curl_form(&url, &extra, &file.path).await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("Extra input fields: acl"), "{body}");
    assert!(!exists(&up.direct_client(), "drop", "k").await);
}

#[tokio::test]
async fn a_boto3_presigned_post_is_accepted() {
    let up = Upstream::start().await;
    create_bucket(&up.direct_client(), "drop").await;
    let addr = start(up.store.url()).await;
    let file = temp_file("note.txt", b"posted by boto3");
    let out = boto3(&format!("http://{addr}"), &["post", "drop", "notes/${filename}", utf8(&file.path), "1000"]).await;
    assert!(out.starts_with("STATUS=201"), "{out}");
    assert_eq!(get_bytes(&up.direct_client(), "drop", "notes/note.txt").await, b"posted by boto3");

    let big = temp_file("big.txt", &[b'x'; 1001]);
    let out = boto3(&format!("http://{addr}"), &["post", "drop", "notes/big.txt", utf8(&big.path), "1000"]).await;
    assert!(out.starts_with("STATUS=400") && out.contains("EntityTooLarge"), "{out}");
    assert!(!exists(&up.direct_client(), "drop", "notes/big.txt").await);
}

#[test]
fn status_codes_are_s3s() {
    assert_eq!(s3gate::error::S3ErrorCode::EntityTooLarge.status(), StatusCode::BAD_REQUEST);
    assert_eq!(s3gate::error::S3ErrorCode::InvalidPolicyDocument.status(), StatusCode::BAD_REQUEST);
    assert_eq!(s3gate::error::S3ErrorCode::PreconditionFailed.status(), StatusCode::PRECONDITION_FAILED);
}
