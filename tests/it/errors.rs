//! What clients get when something is wrong: S3 XML errors with the right code, and nothing
//! stored upstream.

use std::time::{Duration, Instant, SystemTime};

use aws_sdk_s3::config::Region;
use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::primitives::ByteStream;
use http::StatusCode;

use crate::support::raw::{self, sha256_hex};
use crate::support::recorder::Recorder;
use crate::support::{code_of, create_bucket, exists, sdk_config, Gateway, CLIENT_AKID, CLIENT_SECRET};

#[tokio::test]
async fn wrong_secret_is_signature_does_not_match_and_stores_nothing() {
    let gw = Gateway::start().await;
    create_bucket(&gw.client(), "guarded").await;
    let bad = gw.client_with(CLIENT_AKID, "not-the-right-secret-at-all-000000000000");
    let err = bad
        .put_object()
        .bucket("guarded")
        .key("intruder")
        .body(ByteStream::from_static(b"should not land"))
        .send()
        .await
        .expect_err("refused");
    assert_eq!(code_of(&err), "SignatureDoesNotMatch");
    assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(403));
    assert!(!exists(&gw.upstream.direct_client(), "guarded", "intruder").await);
}

#[tokio::test]
async fn unknown_access_key_is_invalid_access_key_id() {
    let gw = Gateway::start().await;
    let err = gw.client_with("AKIDNOBODYISSUED0000", CLIENT_SECRET).list_buckets().send().await.expect_err("refused");
    assert_eq!(code_of(&err), "InvalidAccessKeyId");
}

#[tokio::test]
async fn the_upstream_keys_do_not_work_at_the_gateway() {
    let gw = Gateway::start().await;
    let err = gw
        .client_with(crate::support::STORE_AKID, crate::support::STORE_SECRET)
        .list_buckets()
        .send()
        .await
        .expect_err("refused");
    assert_eq!(code_of(&err), "InvalidAccessKeyId");
}

#[tokio::test]
async fn skewed_clock_is_request_time_too_skewed() {
    let gw = Gateway::start().await;
    let skewed = SystemTime::now() - Duration::from_secs(20 * 60);
    let client = aws_sdk_s3::Client::from_conf(
        sdk_config(&gw.url, CLIENT_AKID, CLIENT_SECRET, None)
            .time_source(aws_smithy_async::time::StaticTimeSource::new(skewed))
            .build(),
    );
    let err = client.list_buckets().send().await.expect_err("refused");
    assert_eq!(code_of(&err), "RequestTimeTooSkewed");
    assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(403));
}

#[tokio::test]
async fn skew_limit_is_configurable() {
    let gw = Gateway::start_with(|a| a.max_clock_skew = Some(3600)).await;
    let skewed = SystemTime::now() - Duration::from_secs(20 * 60);
    let client = aws_sdk_s3::Client::from_conf(
        sdk_config(&gw.url, CLIENT_AKID, CLIENT_SECRET, None)
            .time_source(aws_smithy_async::time::StaticTimeSource::new(skewed))
            .build(),
    );
    client.list_buckets().send().await.expect("20 minutes is within a 1 hour limit");
}

#[tokio::test]
async fn missing_content_sha256_is_missing_security_header() {
    let gw = Gateway::start().await;
    let mut req = raw::request("GET", gw.addr(), "/");
    raw::sign(&mut req, &sha256_hex(b""), SystemTime::now(), CLIENT_SECRET);
    req.headers_mut().remove("x-amz-content-sha256");
    let resp = raw::send(req, "").await;
    assert_eq!(resp.status, 400);
    assert_eq!(resp.code(), "MissingSecurityHeader");
    assert!(resp.body.contains("<RequestId>"), "{}", resp.body);
}

#[tokio::test]
async fn malformed_authorization_is_authorization_header_malformed() {
    let gw = Gateway::start().await;
    let mut req = raw::request("GET", gw.addr(), "/");
    raw::sign(&mut req, &sha256_hex(b""), SystemTime::now(), CLIENT_SECRET);
    req.headers_mut().insert("authorization", "AWS4-HMAC-SHA256 Credential=garbage".parse().expect("value"));
    let resp = raw::send(req, "").await;
    assert_eq!(resp.status, 400);
    assert_eq!(resp.code(), "AuthorizationHeaderMalformed");
}

#[tokio::test]
async fn anonymous_request_is_access_denied() {
    let gw = Gateway::start().await;
    let resp = raw::send(raw::request("GET", gw.addr(), "/some-bucket/key"), "").await;
    assert_eq!(resp.status, 403);
    assert_eq!(resp.code(), "AccessDenied");
    assert!(resp.headers.contains_key("x-amz-request-id"));
}

#[tokio::test]
async fn upstream_errors_pass_through_unchanged() {
    let gw = Gateway::start().await;
    let s3 = gw.client();
    let direct = gw.upstream.direct_client();
    create_bucket(&s3, "exists").await;
    for (bucket, key) in [("no-such-bucket", "k"), ("exists", "missing")] {
        let via = s3.get_object().bucket(bucket).key(key).send().await.expect_err("404");
        let straight = direct.get_object().bucket(bucket).key(key).send().await.expect_err("404");
        assert_eq!(code_of(&via), code_of(&straight));
        assert_eq!(
            via.raw_response().map(|r| r.status().as_u16()),
            straight.raw_response().map(|r| r.status().as_u16())
        );
    }
    let err = s3.get_object().bucket("exists").key("missing").send().await.expect_err("404");
    assert_eq!(code_of(&err), "NoSuchKey");
    let err = s3.delete_bucket().bucket("no-such-bucket").send().await.expect_err("404");
    assert_eq!(code_of(&err), "NoSuchBucket");
}

#[tokio::test]
async fn unreachable_upstream_is_service_unavailable_quickly() {
    // A port nothing listens on: connection refused must become a prompt 503.
    let free = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr");
    let gw = Gateway::start_with(|a| a.upstream = Some(format!("http://{free}"))).await;
    let started = Instant::now();
    let err = gw.client().list_buckets().send().await.expect_err("503");
    assert_eq!(code_of(&err), "ServiceUnavailable");
    assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(503));
    assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
}

#[tokio::test]
async fn health_endpoint_answers_without_auth() {
    let gw = Gateway::start().await;
    let resp = raw::send(raw::request("GET", gw.addr(), "/_s3gate/health"), "").await;
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body, "ok\n");
}

#[tokio::test]
async fn create_session_is_not_implemented_and_never_reaches_the_upstream() {
    // S3 Express answers CreateSession with session credentials: the upstream's, here.
    let recorder = Recorder::ok().await;
    let gw = Gateway::start_with(|a| a.upstream = Some(recorder.url())).await;
    let mut req = raw::request("GET", gw.addr(), "/express-bucket?session");
    raw::sign(&mut req, &sha256_hex(b""), SystemTime::now(), CLIENT_SECRET);
    let resp = raw::send(req, "").await;
    assert_eq!(resp.status, 501, "{}", resp.body);
    assert_eq!(resp.code(), "NotImplemented");
    assert!(recorder.requests().is_empty(), "the upstream saw {:?}", recorder.requests());
}

fn client_in(gw: &Gateway, region: &str) -> aws_sdk_s3::Client {
    aws_sdk_s3::Client::from_conf(
        sdk_config(&gw.url, CLIENT_AKID, CLIENT_SECRET, None).region(Region::new(region.to_owned())).build(),
    )
}

#[tokio::test]
async fn a_signature_for_another_region_is_refused_naming_the_right_one() {
    let gw = Gateway::start().await;
    let err = client_in(&gw, "us-west-2").list_buckets().send().await.expect_err("wrong region");
    assert_eq!(code_of(&err), "AuthorizationHeaderMalformed");
    assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(400));
    assert_eq!(
        err.as_service_error().and_then(|e| e.message()),
        Some("The authorization header is malformed; the region 'us-west-2' is wrong; expecting 'us-east-1'")
    );
    let body = err.raw_response().and_then(|r| r.body().bytes()).map(|b| String::from_utf8_lossy(b).into_owned());
    assert!(body.unwrap_or_default().contains("<Region>us-east-1</Region>"), "SDKs read the region to sign for here");

    // A presigned URL scoped to another region.
    create_bucket(&gw.client(), "reports").await;
    let presigning = aws_sdk_s3::presigning::PresigningConfig::expires_in(Duration::from_secs(300)).expect("config");
    let url = client_in(&gw, "eu-central-1")
        .get_object()
        .bucket("reports")
        .key("q1.pdf")
        .presigned(presigning)
        .await
        .expect("presign")
        .uri()
        .to_owned();
    let resp = raw::send(http::Request::get(url).body(()).expect("request"), "").await;
    assert_eq!(resp.status, 400, "{}", resp.body);
    assert_eq!(resp.code(), "AuthorizationQueryParametersError");
    let message =
        "Error parsing the X-Amz-Credential parameter; the region 'eu-central-1' is wrong; expecting 'us-east-1'";
    assert!(resp.body.replace("&apos;", "'").contains(message), "{}", resp.body);
}

#[tokio::test]
async fn the_configured_region_and_route_regions_are_served() {
    let toml = r#"
[[route]]
bucket = "eu-*"
upstream = "{STORE}"
region = "eu-west-1"
"#;
    let gw = Gateway::start_with_toml(toml, |a| a.region = Some("ap-south-1".into())).await;
    client_in(&gw, "ap-south-1").list_buckets().send().await.expect("the configured region");
    client_in(&gw, "eu-west-1").list_buckets().send().await.expect("a route's region");
    let err = client_in(&gw, "us-east-1").list_buckets().send().await.expect_err("not served here");
    assert_eq!(code_of(&err), "AuthorizationHeaderMalformed");
    assert!(err.as_service_error().and_then(|e| e.message()).unwrap_or_default().ends_with("expecting 'ap-south-1'"));
}

/// What S3 says when the upstream's own signature or identity is refused.
const UPSTREAM_SIGNATURE_ERROR: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error>\
    <Code>SignatureDoesNotMatch</Code><Message>The request signature we calculated does not match the signature \
    you provided. Check your key and signing method.</Message><AWSAccessKeyId>STOREKEY000000000001</AWSAccessKeyId>\
    <StringToSign>AWS4-HMAC-SHA256\n20250101T000000Z\n20250101/us-east-1/s3/aws4_request\n0f0f</StringToSign>\
    <SignatureProvided>abcdef</SignatureProvided><StringToSignBytes>41 57 53</StringToSignBytes>\
    <CanonicalRequest>GET\n/locked/k\n\nhost:store\n\nhost\nUNSIGNED-PAYLOAD</CanonicalRequest>\
    <CanonicalRequestBytes>47 45 54</CanonicalRequestBytes><RequestId>4442587FB7D0A2F9</RequestId>\
    <HostId>ZKr0aGPQ0lVy3V1qxm1h0YCGmHx4T1x6bIj2bq3S6A0=</HostId></Error>";
const UPSTREAM_IAM_ERROR: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>AccessDenied</Code>\
    <Message>User: arn:aws:sts::123456789012:assumed-role/s3gate-upstream/i-0abc123 is not authorized to perform: \
    s3:GetObject on resource: \"arn:aws:s3:::locked/iam\" because no identity-based policy allows the \
    s3:GetObject action</Message><RequestId>R2</RequestId><HostId>aG9zdA==</HostId></Error>";

#[tokio::test]
async fn upstream_errors_never_show_the_upstreams_key_or_identity() {
    let recorder = Recorder::start(|r| {
        let xml = vec![("content-type", "application/xml".to_owned())];
        match r.target.as_str() {
            "/locked/signature" => (StatusCode::FORBIDDEN, xml, UPSTREAM_SIGNATURE_ERROR.to_owned()),
            "/locked/iam" => (StatusCode::FORBIDDEN, xml, UPSTREAM_IAM_ERROR.to_owned()),
            // An object is never rewritten, whatever it holds.
            _ => (StatusCode::OK, vec![], "STOREKEY000000000001 arn:aws:iam::123456789012:user/x".to_owned()),
        }
    })
    .await;
    let gw = Gateway::start_with(|a| a.upstream = Some(recorder.url())).await;
    let get = |path: &'static str| {
        let mut req = raw::request("GET", gw.addr(), path);
        raw::sign(&mut req, &sha256_hex(b""), SystemTime::now(), CLIENT_SECRET);
        raw::send(req, "")
    };

    let resp = get("/locked/signature").await;
    assert_eq!(resp.status, 403);
    assert_eq!(resp.code(), "SignatureDoesNotMatch");
    for secret in ["STOREKEY", "AWSAccessKeyId", "StringToSign", "CanonicalRequest", "SignatureProvided", "HostId"] {
        assert!(!resp.body.contains(secret), "{secret} in {}", resp.body);
    }
    assert!(resp.body.contains("<RequestId>4442587FB7D0A2F9</RequestId>"), "{}", resp.body);
    assert_eq!(resp.headers["content-length"], resp.body.len().to_string().as_str());

    let resp = get("/locked/iam").await;
    assert_eq!(resp.code(), "AccessDenied");
    assert!(!resp.body.contains("123456789012") && !resp.body.contains("s3gate-upstream"), "{}", resp.body);
    assert!(resp.body.contains("User: [upstream principal] is not authorized to perform: s3:GetObject"));
    assert!(resp.body.contains("arn:aws:s3:::locked/iam"), "the resource stays: {}", resp.body);

    let resp = get("/open/object").await;
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body, "STOREKEY000000000001 arn:aws:iam::123456789012:user/x");
    assert_eq!(recorder.requests().len(), 3);
}
