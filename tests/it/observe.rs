//! What operators see: Prometheus metrics after a known sequence of requests, and the JSON
//! audit log, which never carries a secret.

use aws_sdk_s3::primitives::ByteStream;

use crate::support::{create_bucket, Gateway, CLIENT_AKID, CLIENT_SECRET, STORE_SECRET};

pub(crate) async fn scrape(addr: std::net::SocketAddr) -> String {
    let resp = crate::support::raw::send(
        http::Request::builder().uri(format!("http://{addr}/metrics")).body(()).expect("request"),
        "",
    )
    .await;
    assert_eq!(resp.status, 200);
    resp.body
}

/// The value of the sample whose name and labels are exactly `series` (labels in any order).
pub(crate) fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|line| {
        let (series, value) = line.rsplit_once(' ')?;
        let (n, rest) = series.split_once('{').unwrap_or((series, "}"));
        if n != name {
            return None;
        }
        let body = rest.strip_suffix('}')?;
        let mut got: Vec<(String, String)> = body
            .split(',')
            .filter(|s| !s.is_empty())
            .filter_map(|kv| kv.split_once('=').map(|(k, v)| (k.to_owned(), v.trim_matches('"').to_owned())))
            .collect();
        got.sort();
        let mut want: Vec<(String, String)> = labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        want.sort();
        (got == want).then(|| value.parse().ok()).flatten()
    })
}

#[tokio::test]
async fn metrics_count_a_known_sequence_of_requests() {
    let gw = Gateway::start_with(|a| a.metrics_listen = Some("127.0.0.1:0".into())).await;
    let addr = gw.running.as_ref().and_then(|r| r.metrics_addr).expect("metrics listener");
    let s3 = gw.client();
    create_bucket(&s3, "counted").await;
    for i in 0..3 {
        s3.put_object()
            .bucket("counted")
            .key(format!("k{i}"))
            .body(ByteStream::from(vec![1u8; 1000]))
            .send()
            .await
            .expect("put");
    }
    for _ in 0..2 {
        crate::support::get_bytes(&s3, "counted", "k0").await;
    }
    let _ = s3.get_object().bucket("counted").key("missing").send().await;
    let _ = gw.client_with(CLIENT_AKID, "wrong-secret-wrong-secret-wrong-secret-00").list_buckets().send().await;

    let text = scrape(addr).await;
    let requests = |action: &str, class: &str| {
        sample(&text, "s3gate_requests_total", &[("action", action), ("mode", "endpoint"), ("status_class", class)])
    };
    assert_eq!(requests("s3:PutObject", "2xx"), Some(3.0), "{text}");
    assert_eq!(requests("s3:GetObject", "2xx"), Some(2.0), "{text}");
    assert_eq!(requests("s3:GetObject", "4xx"), Some(1.0), "{text}");
    assert_eq!(requests("s3:CreateBucket", "2xx"), Some(1.0), "{text}");
    assert_eq!(requests("s3:ListAllMyBuckets", "4xx"), Some(1.0), "{text}");
    assert_eq!(
        sample(&text, "s3gate_auth_failures_total", &[("reason", "SignatureDoesNotMatch")]),
        Some(1.0),
        "{text}"
    );
    let received = sample(&text, "s3gate_received_bytes_total", &[("mode", "endpoint")]).expect("received");
    assert!(received >= 3000.0, "{received}");
    let sent = sample(&text, "s3gate_sent_bytes_total", &[("mode", "endpoint")]).expect("sent");
    assert!(sent >= 2000.0, "{sent}");
    let count = sample(&text, "s3gate_request_duration_seconds_count", &[("mode", "endpoint")]).expect("histogram");
    assert_eq!(count, 8.0, "{text}");
}

#[tokio::test]
async fn audit_log_has_one_json_line_per_request_and_no_secret() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("audit.log");
    let p = path.to_string_lossy().into_owned();
    let gw = Gateway::start_with(move |a| a.audit_log = Some(p)).await;
    let s3 = gw.client();
    create_bucket(&s3, "audited").await;
    s3.put_object()
        .bucket("audited")
        .key("dir/file.txt")
        .body(ByteStream::from_static(b"12345"))
        .send()
        .await
        .expect("put");
    let _ = s3.get_object().bucket("audited").key("nothing").send().await;
    let _ = gw.client_with(CLIENT_AKID, "bad-secret-bad-secret-bad-secret-bad-0000").list_buckets().send().await;
    // Records are written when the response body is done; give the last one a moment.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let text = std::fs::read_to_string(&path).expect("audit log");
    let lines: Vec<serde_json::Value> =
        text.lines().map(|l| serde_json::from_str(l).expect("each line is JSON")).collect();
    assert_eq!(lines.len(), 4, "{text}");
    let put = &lines[1];
    assert_eq!(put["action"], "s3:PutObject");
    assert_eq!(put["operation"], "PutObject");
    assert_eq!(put["bucket"], "audited");
    assert_eq!(put["key"], "dir/file.txt");
    assert_eq!(put["status"], 200);
    assert_eq!(put["access_key_id"], CLIENT_AKID);
    assert_eq!(put["bytes_in"], 5);
    assert_eq!(put["mode"], "endpoint");
    assert_eq!(put["route"], "default");
    assert!(put["request_id"].as_str().is_some_and(|s| !s.is_empty()));
    assert!(put["client"].as_str().is_some_and(|s| s.starts_with("127.0.0.1:")));
    assert!(put["time"].as_str().is_some_and(|s| s.ends_with('Z')));
    assert_eq!(lines[2]["error_code"], "NoSuchKey");
    assert_eq!(lines[3]["error_code"], "SignatureDoesNotMatch");
    assert_eq!(lines[3]["status"], 403);
    for secret in [CLIENT_SECRET, STORE_SECRET, "Signature=", "bad-secret"] {
        assert!(!text.contains(secret), "the audit log contains {secret:?}");
    }
}
