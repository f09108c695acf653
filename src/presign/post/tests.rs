//! POST Object against the handler directly, with forms built as a browser sends them and
//! policies signed here by hand (HMAC chain written out, independent of `sigv4`).

use base64::Engine;
use bytes::Bytes;
use hmac::{Hmac, Mac};
use http::{HeaderValue, Request, StatusCode};
use http_body_util::{BodyExt, Full, StreamBody};
use sha2::Sha256;

use super::*;
use crate::credentials::Credential;

const AKID: &str = "FORMKEY0000000000001";
const SECRET: &str = "form/secret+0123456789abcdefghijklmnopqr";
const BOUNDARY: &str = "----WebKitFormBoundary7MA4YWxkTrZu0gW";
const BUCKET: &str = "uploads";

fn now() -> OffsetDateTime {
    time::macros::datetime!(2024-05-01 12:00:00 UTC)
}

fn keys() -> KeyStore {
    KeyStore::new([Credential::new(AKID, SECRET)])
}

fn hmac(key: &[u8], msg: &[u8]) -> Vec<u8> {
    let mut m = Hmac::<Sha256>::new_from_slice(key).unwrap();
    m.update(msg);
    m.finalize().into_bytes().to_vec()
}

/// A policy signed as the AWS SDKs sign one: the x-amz-* fields it needs, then `conditions`.
struct Signed {
    fields: Vec<(String, String)>,
}

fn sign(expiration: &str, conditions: serde_json::Value, secret: &str) -> Signed {
    let credential = format!("{AKID}/20240501/us-east-1/s3/aws4_request");
    let mut all = conditions.as_array().unwrap().clone();
    all.push(serde_json::json!({"x-amz-algorithm": "AWS4-HMAC-SHA256"}));
    all.push(serde_json::json!({"x-amz-credential": credential}));
    all.push(serde_json::json!({"x-amz-date": "20240501T110000Z"}));
    let policy = serde_json::json!({"expiration": expiration, "conditions": all}).to_string();
    let b64 = base64::engine::general_purpose::STANDARD.encode(policy);
    let mut k = hmac(format!("AWS4{secret}").as_bytes(), b"20240501");
    for part in [&b"us-east-1"[..], b"s3", b"aws4_request"] {
        k = hmac(&k, part);
    }
    let signature = hex::encode(hmac(&k, b64.as_bytes()));
    let fields = [
        ("x-amz-algorithm", "AWS4-HMAC-SHA256"),
        ("x-amz-credential", credential.as_str()),
        ("x-amz-date", "20240501T110000Z"),
        ("policy", b64.as_str()),
        ("x-amz-signature", signature.as_str()),
    ];
    Signed { fields: fields.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect() }
}

fn standard(extra: serde_json::Value) -> Signed {
    let mut conditions = vec![
        serde_json::json!({"bucket": BUCKET}),
        serde_json::json!(["starts-with", "$key", "user/eric/"]),
        serde_json::json!(["eq", "$Content-Type", "text/plain"]),
        serde_json::json!(["content-length-range", 1, 1000]),
        serde_json::json!({"success_action_status": "201"}),
        serde_json::json!(["starts-with", "$x-amz-meta-colour", ""]),
    ];
    conditions.extend(extra.as_array().unwrap().iter().cloned());
    sign("2024-05-01T13:00:00.000Z", serde_json::Value::Array(conditions), SECRET)
}

/// A multipart/form-data body with `fields` first and the file last, as browsers order it.
fn form_body(fields: &[(String, String)], file: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, value) in fields {
        out.extend_from_slice(
            format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n").as_bytes(),
        );
    }
    out.extend_from_slice(
        format!(
            "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"notes.txt\"\r\n\
             Content-Type: application/octet-stream\r\n\r\n"
        )
        .as_bytes(),
    );
    out.extend_from_slice(file);
    out.extend_from_slice(
        format!(
            "\r\n--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"submit\"\r\n\r\nUpload\r\n--{BOUNDARY}--\r\n"
        )
        .as_bytes(),
    );
    out
}

fn user_fields(signed: &Signed, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut fields: Vec<(String, String)> = vec![
        ("key".into(), "user/eric/${filename}".into()),
        ("Content-Type".into(), "text/plain".into()),
        ("success_action_status".into(), "201".into()),
        ("x-amz-meta-colour".into(), "blue".into()),
    ];
    fields.extend(signed.fields.iter().cloned());
    fields.extend(extra.iter().map(|(n, v)| (n.to_string(), v.to_string())));
    fields
}

fn request(body: Vec<u8>) -> Request<Full<Bytes>> {
    Request::builder()
        .method("POST")
        .uri("/uploads")
        .header("content-type", format!("multipart/form-data; boundary={BOUNDARY}"))
        .body(Full::new(Bytes::from(body)))
        .unwrap()
}

async fn post(body: Vec<u8>) -> Result<PostUpload, S3Error> {
    post_object(request(body), BUCKET, &keys(), now(), std::time::Duration::from_secs(900)).await
}

async fn post_err(body: Vec<u8>) -> S3Error {
    post(body).await.err().expect("refused")
}

/// Reads the body to its end: the bytes it yielded, and its error if it failed.
async fn drain(mut body: Body) -> (Vec<u8>, Option<String>) {
    let mut out = Vec::new();
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(f) => out.extend_from_slice(&f.into_data().unwrap()),
            Err(e) => return (out, Some(e.to_string())),
        }
    }
    (out, None)
}

#[tokio::test]
async fn a_browser_form_becomes_a_put_of_the_file_alone() {
    let signed = standard(serde_json::json!([{"acl": "private"}]));
    let upload = post(form_body(&user_fields(&signed, &[("acl", "private")]), b"hello, form")).await.unwrap();
    let t = &upload.target;
    assert_eq!((t.access_key_id.as_str(), t.bucket.as_str(), t.key.as_str()), (AKID, BUCKET, "user/eric/notes.txt"));
    assert_eq!(t.headers["content-type"], "text/plain");
    assert_eq!(t.headers["x-amz-meta-colour"], "blue");
    assert_eq!(t.headers["x-amz-acl"], "private");
    assert_eq!(t.headers.len(), 3, "{:?}", t.headers);
    assert_eq!(t.success, SuccessAction::Status(StatusCode::CREATED));
    assert_eq!(t.max_len, 1000);
    let put = t.as_s3_request().unwrap();
    assert_eq!(
        (put.action, put.operation(), put.key.as_deref()),
        ("s3:PutObject", "PutObject", Some("user/eric/notes.txt"))
    );
    assert_eq!(drain(upload.body).await, (b"hello, form".to_vec(), None));
    assert!(upload.failure.take().is_none());
}

#[tokio::test]
async fn an_expired_policy_is_refused_as_s3_refuses_it() {
    let signed = sign("2024-05-01T11:59:59Z", serde_json::json!([{"bucket": BUCKET}, {"key": "k"}]), SECRET);
    let mut fields = signed.fields.clone();
    fields.push(("key".into(), "k".into()));
    let err = post_err(form_body(&fields, b"x")).await;
    assert_eq!(
        (err.code, err.message.as_ref()),
        (S3ErrorCode::AccessDenied, "Invalid according to Policy: Policy expired.")
    );
}

#[tokio::test]
async fn every_condition_is_checked() {
    let signed = standard(serde_json::json!([]));
    let cases: [(&[(&str, &str)], &str); 3] = [
        (&[("key", "user/mallory/x")], "Policy Condition failed: [\"starts-with\", \"$key\", \"user/eric/\"]"),
        (&[("Content-Type", "text/html")], "Policy Condition failed: [\"eq\", \"$Content-Type\", \"text/plain\"]"),
        (&[("success_action_status", "200")], "Policy Condition failed: [\"eq\", \"$success_action_status\", \"201\"]"),
    ];
    for (replace, want) in cases {
        let mut fields = user_fields(&signed, &[]);
        for (n, v) in replace {
            fields.iter_mut().find(|(f, _)| f == n).unwrap().1 = v.to_string();
        }
        let err = post_err(form_body(&fields, b"x")).await;
        assert_eq!(err.code, S3ErrorCode::AccessDenied);
        assert_eq!(err.message, format!("Invalid according to Policy: {want}"));
    }
    // The bucket condition is checked against the bucket the form was posted to.
    let keys = keys();
    let upload = post_object(
        request(form_body(&user_fields(&signed, &[]), b"x")),
        "other",
        &keys,
        now(),
        std::time::Duration::from_secs(900),
    );
    assert!(upload.await.err().unwrap().message.contains("[\"eq\", \"$bucket\", \"uploads\"]"));
}

#[tokio::test]
async fn a_field_the_policy_does_not_name_is_refused() {
    let signed = standard(serde_json::json!([]));
    let err = post_err(form_body(&user_fields(&signed, &[("Content-Disposition", "attachment")]), b"x")).await;
    assert_eq!(
        (err.code, err.message.as_ref()),
        (S3ErrorCode::AccessDenied, "Invalid according to Policy: Extra input fields: content-disposition")
    );
    // x-ignore-* fields are exempt, as in S3.
    assert!(post(form_body(&user_fields(&signed, &[("x-ignore-note", "hi")]), b"x")).await.is_ok());
}

#[tokio::test]
async fn starts_with_on_content_type_checks_every_listed_type() {
    let mut conditions = serde_json::json!([["starts-with", "$key", ""], ["starts-with", "$content-type", "image/"]]);
    let signed = sign("2024-05-01T13:00:00Z", conditions.take(), SECRET);
    let fields = |ct: &str| {
        let mut f = signed.fields.clone();
        f.extend([("key".to_owned(), "k".to_owned()), ("Content-Type".to_owned(), ct.to_owned())]);
        f
    };
    assert!(post(form_body(&fields("image/png, image/jpeg"), b"x")).await.is_ok());
    assert_eq!(post_err(form_body(&fields("image/png,text/html"), b"x")).await.code, S3ErrorCode::AccessDenied);
}

#[tokio::test]
async fn signatures_and_keys_are_verified() {
    let forged = standard(serde_json::json!([]));
    let mut fields = user_fields(&forged, &[]);
    // The signature covers the base64 policy: any change to it breaks the signature.
    let sig = fields.iter_mut().find(|(n, _)| n == "x-amz-signature").unwrap();
    sig.1.replace_range(0..1, if sig.1.starts_with('0') { "1" } else { "0" });
    assert_eq!(post_err(form_body(&fields, b"x")).await.code, S3ErrorCode::SignatureDoesNotMatch);

    let wrong_secret = sign("2024-05-01T13:00:00Z", serde_json::json!([["starts-with", "$key", ""]]), "not-the-secret");
    let mut fields = wrong_secret.fields.clone();
    fields.push(("key".into(), "k".into()));
    assert_eq!(post_err(form_body(&fields, b"x")).await.code, S3ErrorCode::SignatureDoesNotMatch);

    let mut fields = user_fields(&standard(serde_json::json!([])), &[]);
    fields.iter_mut().find(|(n, _)| n == "x-amz-credential").unwrap().1 =
        "NOSUCHKEY/20240501/us-east-1/s3/aws4_request".into();
    assert_eq!(post_err(form_body(&fields, b"x")).await.code, S3ErrorCode::InvalidAccessKeyId);

    let unsigned = vec![("key".to_owned(), "k".to_owned())];
    assert_eq!(post_err(form_body(&unsigned, b"x")).await.code, S3ErrorCode::AccessDenied);
}

#[tokio::test]
async fn broken_policy_documents_are_invalid() {
    for (doc, want) in [
        ("not base64!", "Invalid Policy: Invalid Base64 encoding."),
        ("bm90IGpzb24=", "Invalid Policy: Invalid JSON."),
        ("eyJjb25kaXRpb25zIjpbXX0=", "Invalid Policy: Policy missing expiration."),
    ] {
        let signed = standard(serde_json::json!([]));
        let mut fields = user_fields(&signed, &[]);
        fields.iter_mut().find(|(n, _)| n == "policy").unwrap().1 = doc.into();
        // Re-sign the replaced document so only its content is wrong.
        let mut k = hmac(format!("AWS4{SECRET}").as_bytes(), b"20240501");
        for part in [&b"us-east-1"[..], b"s3", b"aws4_request"] {
            k = hmac(&k, part);
        }
        fields.iter_mut().find(|(n, _)| n == "x-amz-signature").unwrap().1 = hex::encode(hmac(&k, doc.as_bytes()));
        let err = post_err(form_body(&fields, b"x")).await;
        assert_eq!((err.code, err.message.as_ref()), (S3ErrorCode::InvalidPolicyDocument, want));
    }
    let bad_condition = sign("2024-05-01T13:00:00Z", serde_json::json!([["matches", "$key", ".*"]]), SECRET);
    let mut fields = bad_condition.fields.clone();
    fields.push(("key".into(), "k".into()));
    assert_eq!(post_err(form_body(&fields, b"x")).await.code, S3ErrorCode::InvalidPolicyDocument);
}

#[test]
fn a_condition_must_name_a_field() {
    // Found by fuzzing (fuzz/corpus/post_policy/regress-empty-field-name): the object form took
    // the empty name that the array form refuses.
    for conditions in [r#"[{"": "uploads"}]"#, r#"[["eq", "$", "uploads"]]"#] {
        let doc = format!(r#"{{"expiration": "2024-05-01T13:00:00Z", "conditions": {conditions}}}"#);
        let encoded = base64::engine::general_purpose::STANDARD.encode(doc);
        let err = policy::PostPolicy::from_base64(&encoded).unwrap_err();
        assert_eq!(err.code, S3ErrorCode::InvalidPolicyDocument, "{conditions}");
    }
}

#[tokio::test]
async fn content_length_range_is_enforced_while_streaming() {
    let signed = standard(serde_json::json!([]));
    let big = vec![b'a'; 1001];
    let upload = post(form_body(&user_fields(&signed, &[]), &big)).await.unwrap();
    let (_, err) = drain(upload.body).await;
    assert!(err.unwrap().contains("EntityTooLarge"));
    assert_eq!(upload.failure.take().map(|e| e.code), Some(S3ErrorCode::EntityTooLarge));

    let upload = post(form_body(&user_fields(&signed, &[]), b"")).await.unwrap();
    let (bytes, err) = drain(upload.body).await;
    assert!(bytes.is_empty() && err.unwrap().contains("EntityTooSmall"));
    assert_eq!(upload.failure.take().map(|e| e.code), Some(S3ErrorCode::EntityTooSmall));

    let exact = vec![b'z'; 1000];
    let upload = post(form_body(&user_fields(&signed, &[]), &exact)).await.unwrap();
    assert_eq!(drain(upload.body).await, (exact, None));
}

/// A body cut off inside the file: the parser notices at the end, and the chunk before the cut
/// was never released, so an upstream PUT with a known length could not have completed.
#[tokio::test]
async fn a_file_cut_short_fails_before_its_last_chunk() {
    let signed = standard(serde_json::json!([]));
    let full = form_body(&user_fields(&signed, &[]), &[b'q'; 900]);
    let cut = full.len() - 200;
    let pieces: Vec<Result<http_body::Frame<Bytes>, std::convert::Infallible>> =
        full[..cut].chunks(97).map(|c| Ok(http_body::Frame::data(Bytes::copy_from_slice(c)))).collect();
    let req = Request::builder()
        .method("POST")
        .header("content-type", format!("multipart/form-data; boundary=\"{BOUNDARY}\""))
        .body(StreamBody::new(futures_util::stream::iter(pieces)))
        .unwrap();
    let upload = post_object(req, BUCKET, &keys(), now(), std::time::Duration::from_secs(900)).await.unwrap();
    let (bytes, err) = drain(upload.body).await;
    assert!(err.is_some());
    assert!(bytes.len() < 900 - 100, "held back: {}", bytes.len());
    assert_eq!(upload.failure.take().map(|e| e.code), Some(S3ErrorCode::IncompleteBody));
}

#[tokio::test]
async fn malformed_forms_get_s3s_errors() {
    let not_form = Request::builder()
        .method("POST")
        .header("content-type", "application/json")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let err = post_object(not_form, BUCKET, &keys(), now(), std::time::Duration::from_secs(900)).await.err().unwrap();
    assert_eq!((err.code, err.status()), (S3ErrorCode::PreconditionFailed, StatusCode::PRECONDITION_FAILED));

    assert_eq!(post_err(b"garbage without any boundary".to_vec()).await.code, S3ErrorCode::MalformedPOSTRequest);
    let no_file =
        format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"key\"\r\n\r\nk\r\n--{BOUNDARY}--\r\n");
    assert_eq!(post_err(no_file.into_bytes()).await.code, S3ErrorCode::InvalidArgument);
    let signed = standard(serde_json::json!([]));
    let no_key: Vec<_> = user_fields(&signed, &[]).into_iter().filter(|(n, _)| n != "key").collect();
    let err = post_err(form_body(&no_key, b"x")).await;
    assert_eq!(err.code, S3ErrorCode::InvalidArgument);
    assert!(err.message.contains("'key'"), "{}", err.message);
    let twice = user_fields(&signed, &[("key", "user/eric/again")]);
    assert_eq!(post_err(form_body(&twice, b"x")).await.code, S3ErrorCode::InvalidArgument);
}

#[tokio::test]
async fn the_fields_before_the_file_are_capped() {
    let signed = standard(serde_json::json!([["starts-with", "$x-amz-meta-big", ""]]));
    let huge = "v".repeat(MAX_FORM_FIELDS_BYTES);
    let err = post_err(form_body(&user_fields(&signed, &[("x-amz-meta-big", &huge)]), b"x")).await;
    assert_eq!(err.code, S3ErrorCode::MaxPostPreDataLengthExceeded);
    // A body with no boundary at all is not searched forever.
    let endless = vec![b'-'; 2 * 1024 * 1024];
    assert_eq!(post_err(endless).await.code, S3ErrorCode::MaxPostPreDataLengthExceeded);
}

fn target(success: SuccessAction) -> PostTarget {
    PostTarget {
        access_key_id: AKID.into(),
        bucket: BUCKET.into(),
        key: "a b&c.txt".into(),
        headers: Default::default(),
        success,
        max_len: u64::MAX,
    }
}

#[tokio::test]
async fn the_answer_is_s3s() {
    let public = crate::presign::parse_public_url("https://s3.example.com").unwrap();
    let etag = HeaderValue::from_static("\"9a0364b9e99bb480dd25e1f0284c8555\"");
    let resp = post_object_response(&target(SuccessAction::Status(StatusCode::NO_CONTENT)), Some(&etag), &public, &[]);
    assert_eq!(resp.status(), 204);
    assert_eq!(resp.headers()["etag"], etag);
    assert_eq!(resp.headers()["location"], "https://s3.example.com/uploads/a%20b%26c.txt");

    let resp = post_object_response(&target(SuccessAction::Status(StatusCode::CREATED)), Some(&etag), &public, &[]);
    assert_eq!(resp.status(), 201);
    let xml = String::from_utf8(resp.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap();
    assert!(xml.contains("<Location>https://s3.example.com/uploads/a%20b%26c.txt</Location><Bucket>uploads</Bucket><Key>a b&amp;c.txt</Key><ETag>&quot;9a0364b9e99bb480dd25e1f0284c8555&quot;</ETag>"), "{xml}");

    let resp = post_object_response(
        &target(SuccessAction::Redirect("https://app.example/done?x=1".into())),
        Some(&etag),
        &public,
        &[],
    );
    assert_eq!(resp.status(), 303);
    assert_eq!(
        resp.headers()["location"],
        "https://app.example/done?x=1&bucket=uploads&key=a%20b%26c%2Etxt&etag=%229a0364b9e99bb480dd25e1f0284c8555%22"
    );
}
