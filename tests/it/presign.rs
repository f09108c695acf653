//! Presigned URLs through the gateway, used as a browser or a script without an SDK uses them:
//! minted by boto3, by `s3gate presign` and by `s3gate::presign::mint`, fetched with curl and
//! `requests`. Refusals use URLs signed by the `aws-sigv4` crate (not s3gate's code) for the
//! times and expiries no SDK will produce. The tools come from `scripts/install-test-deps.sh`;
//! a missing one fails the test.

mod post_handler;

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::Request;
use s3gate::presign::{mint, parse_public_url, MintRequest};

use crate::support::raw::{self, RawResponse};
use crate::support::recorder::Recorder;
use crate::support::{create_bucket, exists, get_bytes, pattern, Gateway, CLIENT_AKID, CLIENT_SECRET};

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs `tests/clients/presign_boto3.py` against `endpoint`; fails the test if it fails.
pub async fn boto3(endpoint: &str, args: &[&str]) -> String {
    let python = repo().join(".venv/bin/python");
    assert!(python.exists(), "{} is missing: run scripts/install-test-deps.sh", python.display());
    let out = tokio::process::Command::new(&python)
        .arg(repo().join("tests/clients/presign_boto3.py"))
        .args(args)
        .env("S3GATE_ENDPOINT", endpoint)
        .env("AWS_ACCESS_KEY_ID", CLIENT_AKID)
        .env("AWS_SECRET_ACCESS_KEY", CLIENT_SECRET)
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("AWS_CONFIG_FILE")
        .output()
        .await
        .expect("run presign_boto3.py");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "presign_boto3.py {args:?}: {}\n{text}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

/// Runs curl with `args`, writing the body to a file: (status, body).
pub async fn curl(args: &[&str]) -> (u16, Vec<u8>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let body = dir.path().join("body");
    let out = tokio::process::Command::new("curl")
        .args(["-sS", "-o"])
        .arg(&body)
        .args(["-w", "%{http_code}"])
        .args(args)
        .output()
        .await
        .expect("curl is installed (scripts/install-test-deps.sh)");
    assert!(out.status.success(), "curl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    let status = String::from_utf8_lossy(&out.stdout).trim().parse().expect("status code");
    (status, std::fs::read(&body).unwrap_or_default())
}

/// A presigned URL made by the `aws-sigv4` crate, signed at `time` for `expires`.
pub fn sigv4_url(method: &str, url: &str, secret: &str, time: SystemTime, expires: Duration) -> String {
    use aws_sigv4::http_request::{sign, PercentEncodingMode, SignableBody, SignableRequest, SignatureLocation};
    use aws_sigv4::http_request::{SigningSettings, UriPathNormalizationMode};
    let identity = aws_credential_types::Credentials::new(CLIENT_AKID, secret, None, None, "test").into();
    let mut settings = SigningSettings::default();
    settings.signature_location = SignatureLocation::QueryParams;
    settings.expires_in = Some(expires);
    settings.percent_encoding_mode = PercentEncodingMode::Single;
    settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
    let params = aws_sigv4::sign::v4::SigningParams::builder()
        .identity(&identity)
        .region("us-east-1")
        .name("s3")
        .time(time)
        .settings(settings)
        .build()
        .expect("params")
        .into();
    let mut req = Request::builder().method(method).uri(url).body(()).expect("request");
    let host = req.uri().authority().expect("authority").to_string();
    let signable =
        SignableRequest::new(method, url, [("host", host.as_str())].into_iter(), SignableBody::UnsignedPayload)
            .expect("signable");
    let (instructions, _) = sign(signable, &params).expect("sign").into_parts();
    instructions.apply_to_request_http1x(&mut req);
    req.uri().to_string()
}

pub async fn send(method: &str, url: &str, body: impl Into<Bytes>) -> RawResponse {
    raw::send(Request::builder().method(method).uri(url).body(()).expect("request"), body).await
}

fn hour_ago() -> SystemTime {
    SystemTime::now() - Duration::from_secs(3600)
}

#[tokio::test]
async fn boto3_presigned_put_and_get_carry_bytes_through_the_upstream() {
    let gw = Gateway::start().await;
    create_bucket(&gw.client(), "shared").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let data = pattern(1024 * 1024 + 7, 5);
    let file = dir.path().join("data.bin");
    std::fs::write(&file, &data).expect("write");
    let key = "in/a b+c€.bin";
    let out = boto3(&gw.url, &["roundtrip", "shared", key, file.to_str().expect("utf-8 path")]).await;
    assert_eq!(get_bytes(&gw.upstream.direct_client(), "shared", key).await, data, "what the store holds");
    // The same URL works from curl too.
    let get_url = out.lines().find_map(|l| l.strip_prefix("GET_URL=")).expect("GET_URL line");
    assert_eq!(curl(&[get_url]).await, (200, data));
}

#[tokio::test]
async fn boto3_presigned_head_and_delete_work() {
    let gw = Gateway::start().await;
    let s3 = gw.client();
    create_bucket(&s3, "shared").await;
    s3.put_object().bucket("shared").key("gone.txt").body(b"bye".to_vec().into()).send().await.expect("put");
    let head = boto3(&gw.url, &["url", "head_object", "shared", "gone.txt", "60"]).await;
    assert_eq!(send("HEAD", head.trim(), "").await.headers["content-length"], "3");
    let delete = boto3(&gw.url, &["url", "delete_object", "shared", "gone.txt", "60"]).await;
    assert_eq!(curl(&["-X", "DELETE", delete.trim()]).await.0, 204);
    assert!(!exists(&gw.upstream.direct_client(), "shared", "gone.txt").await);
}

fn s3gate_presign(args: &[&str]) -> std::process::Output {
    s3gate_presign_env(args, &[])
}

fn s3gate_presign_env(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_s3gate"))
        .arg("presign")
        .args(args)
        .env_clear()
        .envs(env.iter().copied())
        .output()
        .expect("run s3gate presign")
}

#[test]
fn s3gate_presign_reads_the_serve_configuration() {
    let (_dir, example) = crate::support::private_copy(&repo().join("examples/s3gate.toml"));
    let args = ["s3://reports/q1.pdf", "--config", utf8(&example), "--access-key-id", "GATEWAYEXAMPLEKEY001"];
    let out = s3gate_presign(&args);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let url = String::from_utf8_lossy(&out.stdout);
    assert!(
        url.starts_with("https://reports.s3.intranet.example.com/q1.pdf?X-Amz-Algorithm=AWS4-HMAC-SHA256&"),
        "{url}"
    );
    assert!(url.contains("%2Feu-west-1%2Fs3%2Faws4_request&"), "the configured region: {url}");
    // The environment overrides the file, as for `serve`.
    let out = s3gate_presign_env(&args, &[("S3GATE_PUBLIC_URL", "http://10.1.2.3:8099")]);
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("http://10.1.2.3:8099/reports/q1.pdf?"));
}

#[tokio::test]
async fn s3gate_presign_prints_urls_curl_can_use() {
    let gw = Gateway::start().await;
    let s3 = gw.client();
    create_bucket(&s3, "reports").await;
    s3.put_object()
        .bucket("reports")
        .key("q1/summary.txt")
        .body(b"all good".to_vec().into())
        .send()
        .await
        .expect("put");
    let creds = format!("{CLIENT_AKID}:{CLIENT_SECRET}");
    let public = gw.url.clone();
    let base = ["--credentials", creds.as_str(), "--public-url", public.as_str()];

    let out = s3gate_presign(&[&["s3://reports/q1/summary.txt", "--expires", "10m"][..], &base[..]].concat());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let url = String::from_utf8(out.stdout).expect("utf-8");
    assert!(url.starts_with(&format!("{public}/reports/q1/summary.txt?")), "{url}");
    assert!(url.contains("X-Amz-Expires=600&"), "{url}");
    assert_eq!(curl(&[url.trim()]).await, (200, b"all good".to_vec()));

    // An upload URL bound to a content type: curl must send exactly that type.
    let args = [&["s3://reports/in/data.csv", "--method", "put", "--content-type", "text/csv"][..], &base[..]].concat();
    let out = s3gate_presign(&args);
    let put = String::from_utf8(out.stdout).expect("utf-8");
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("data.csv");
    std::fs::write(&file, "a,b\n1,2\n").expect("write");
    let file = file.to_str().expect("utf-8 path");
    let (status, body) = curl(&["-T", file, "-H", "Content-Type: text/html", put.trim()]).await;
    assert_eq!(status, 403, "{}", String::from_utf8_lossy(&body));
    assert!(!exists(&gw.upstream.direct_client(), "reports", "in/data.csv").await);
    assert_eq!(curl(&["-T", file, "-H", "Content-Type: text/csv", put.trim()]).await.0, 200);
    let stored =
        gw.upstream.direct_client().get_object().bucket("reports").key("in/data.csv").send().await.expect("stored");
    assert_eq!(stored.content_type(), Some("text/csv"));
}

#[test]
fn s3gate_presign_needs_to_know_which_credential_signs() {
    let two = [
        "--credentials",
        "AKIDONE:secret-one",
        "--credentials",
        "AKIDTWO:secret-two",
        "--public-url",
        "http://gw.example",
    ];
    let out = s3gate_presign(&[&["s3://b1b/k"][..], &two[..]].concat());
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--access-key-id"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = s3gate_presign(&[&["s3://b1b/k", "--access-key-id", "AKIDTWO"][..], &two[..]].concat());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("X-Amz-Credential=AKIDTWO%2F"));
    for bad in [["b1b/k", "--expires", "1h"], ["s3://b1b/k", "--expires", "8d"], ["s3://b1b/k", "--method", "POST"]] {
        let out = s3gate_presign(&[&bad[..], &two[..], &["--access-key-id", "AKIDONE"][..]].concat());
        assert!(!out.status.success(), "{bad:?} accepted");
    }
}

#[tokio::test]
async fn minted_urls_are_virtual_hosted_under_a_gateway_domain() {
    let gw = Gateway::start_with(|a| a.domain = vec!["s3.test".into()]).await;
    create_bucket(&gw.client(), "photos").await;
    gw.client().put_object().bucket("photos").key("cat.jpg").body(b"meow".to_vec().into()).send().await.expect("put");
    let port = gw.addr().port();
    let public = parse_public_url(&format!("http://s3.test:{port}")).expect("public url");
    let req = MintRequest {
        bucket: "photos".into(),
        key: "cat.jpg".into(),
        method: http::Method::GET,
        expires: Duration::from_secs(60),
        content_type: None,
    };
    let credential = s3gate::credentials::Credential::new(CLIENT_AKID, CLIENT_SECRET);
    let now = time::OffsetDateTime::now_utc();
    let minted = mint(&req, &credential, &public, &["s3.test".into()], "us-east-1", now).expect("mint");
    assert!(minted.url.starts_with(&format!("http://photos.s3.test:{port}/cat.jpg?")), "{}", minted.url);
    let resolve = format!("photos.s3.test:{port}:127.0.0.1");
    assert_eq!(curl(&["--resolve", &resolve, &minted.url]).await, (200, b"meow".to_vec()));
}

#[tokio::test]
async fn a_presigned_upload_part_completes_a_multipart_upload() {
    use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
    let gw = Gateway::start().await;
    let s3 = gw.client();
    create_bucket(&s3, "shared").await;
    let created = s3.create_multipart_upload().bucket("shared").key("parts.bin").send().await.expect("create");
    let id = created.upload_id().expect("upload id");
    let data = pattern(300_000, 4);
    let part = format!("{}/shared/parts.bin?partNumber=1&uploadId={id}", gw.url);
    let url = sigv4_url("PUT", &part, CLIENT_SECRET, SystemTime::now(), Duration::from_secs(600));
    let resp = send("PUT", &url, data.clone()).await;
    assert_eq!(resp.status, 200, "{}", resp.body);
    let etag = resp.headers["etag"].to_str().expect("etag").to_owned();
    let parts = CompletedMultipartUpload::builder().parts(CompletedPart::builder().part_number(1).e_tag(etag).build());
    let done =
        s3.complete_multipart_upload().bucket("shared").key("parts.bin").upload_id(id).multipart_upload(parts.build());
    done.send().await.expect("complete");
    assert_eq!(get_bytes(&gw.upstream.direct_client(), "shared", "parts.bin").await, data);
}

#[tokio::test]
async fn expired_and_future_urls_are_refused() {
    let gw = Gateway::start().await;
    create_bucket(&gw.client(), "shared").await;
    let object = format!("{}/shared/late.bin", gw.url);

    let expired = sigv4_url("PUT", &object, CLIENT_SECRET, hour_ago(), Duration::from_secs(600));
    let resp = send("PUT", &expired, "too late").await;
    assert_eq!((resp.status.as_u16(), resp.code()), (403, "AccessDenied"), "{}", resp.body);
    assert!(resp.body.contains("Request has expired"), "{}", resp.body);
    assert!(!exists(&gw.upstream.direct_client(), "shared", "late.bin").await, "an expired PUT stored something");

    let future = SystemTime::now() + Duration::from_secs(3600);
    let early = sigv4_url("GET", &object, CLIENT_SECRET, future, Duration::from_secs(600));
    let resp = send("GET", &early, "").await;
    assert_eq!((resp.status.as_u16(), resp.code()), (403, "RequestTimeTooSkewed"), "{}", resp.body);

    let week_and_a_second = sigv4_url("GET", &object, CLIENT_SECRET, SystemTime::now(), Duration::from_secs(604_801));
    assert!(week_and_a_second.contains("X-Amz-Expires=604801"));
    let resp = send("GET", &week_and_a_second, "").await;
    assert_eq!((resp.status.as_u16(), resp.code()), (400, "AuthorizationQueryParametersError"), "{}", resp.body);
}

#[tokio::test]
async fn tampered_urls_and_wrong_keys_are_refused_and_store_nothing() {
    let gw = Gateway::start().await;
    let s3 = gw.client();
    create_bucket(&s3, "shared").await;
    s3.put_object().bucket("shared").key("public.txt").body(b"ok".to_vec().into()).send().await.expect("put");
    let store = gw.upstream.direct_client();
    let url = sigv4_url(
        "GET",
        &format!("{}/shared/public.txt", gw.url),
        CLIENT_SECRET,
        SystemTime::now(),
        Duration::from_secs(600),
    );
    assert_eq!(send("GET", &url, "").await.status, 200, "the untampered URL works");

    let refused = |resp: RawResponse, code: &str| {
        assert_eq!((resp.status.as_u16(), resp.code()), (403, code), "{}", resp.body);
    };
    // Another object with the same signature.
    refused(send("GET", &url.replace("/public.txt?", "/secret.txt?"), "").await, "SignatureDoesNotMatch");
    // A GET URL used to upload.
    refused(send("PUT", &url, "overwritten").await, "SignatureDoesNotMatch");
    assert_eq!(get_bytes(&store, "shared", "public.txt").await, b"ok");
    let put_elsewhere = url.replace("/public.txt?", "/planted.txt?");
    refused(send("PUT", &put_elsewhere, "planted").await, "SignatureDoesNotMatch");
    assert!(!exists(&store, "shared", "planted.txt").await, "a tampered PUT stored something");
    // A longer life than was signed.
    refused(send("GET", &url.replace("X-Amz-Expires=600", "X-Amz-Expires=6000"), "").await, "SignatureDoesNotMatch");
    // Signed with a secret that is not the credential's, or by a credential s3gate never issued.
    let forged = sigv4_url(
        "GET",
        &format!("{}/shared/public.txt", gw.url),
        "not-the-secret",
        SystemTime::now(),
        Duration::from_secs(600),
    );
    refused(send("GET", &forged, "").await, "SignatureDoesNotMatch");
    let unknown = url.replace(CLIENT_AKID, "AKIDNEVERISSUED00000");
    refused(send("GET", &unknown, "").await, "InvalidAccessKeyId");
}

#[tokio::test]
async fn the_presigned_query_never_reaches_the_upstream() {
    let recorder = Recorder::ok().await;
    let gw = Gateway::start_with(|a| a.upstream = Some(recorder.url())).await;
    let url = sigv4_url(
        "GET",
        &format!("{}/shared/k?versionId=v1", gw.url),
        CLIENT_SECRET,
        SystemTime::now(),
        Duration::from_secs(60),
    );
    assert_eq!(send("GET", &url, "").await.status, 200);
    let seen = recorder.requests();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].target, "/shared/k?versionId=v1", "only the S3 parameters go upstream");
    assert!(
        seen[0].header("authorization").is_some_and(|a| a.starts_with("AWS4-HMAC-SHA256 ")),
        "re-signed in the header form"
    );
}

/// Keeps `path`'s temp dir alive with it.
pub struct TempFile {
    pub path: PathBuf,
    _dir: tempfile::TempDir,
}

pub fn temp_file(name: &str, data: &[u8]) -> TempFile {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join(name);
    std::fs::write(&path, data).expect("write");
    TempFile { path, _dir: dir }
}

pub fn utf8(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}
