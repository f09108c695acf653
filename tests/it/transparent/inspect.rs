//! Inspect mode: s3gate terminates the client's TLS with a certificate its enterprise CA issues
//! for the name, reads each request, applies the bucket and action lists, audits it with the
//! access key id the client signed with, and forwards it unchanged to the real endpoint, where
//! the client's own signature is checked (the store holds keys s3gate never has).

use super::{connect_s3_to, gateway};
use crate::forward::clients::{repo, run_script};
use crate::forward::origin::Origin;
use crate::support::{pattern, private, STORE_AKID, STORE_SECRET};

/// An enterprise CA as PEM files (key chmod 600); returns (dir, cert, key).
pub fn enterprise_ca() -> (tempfile::TempDir, std::path::PathBuf, std::path::PathBuf) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    let key = KeyPair::generate().expect("key");
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(rcgen::DnType::CommonName, "Example Corp inspection CA");
    let ca = params.self_signed(&key).expect("ca");
    let dir = tempfile::tempdir().expect("dir");
    let (cert_path, key_path) = (dir.path().join("inspect-ca.pem"), dir.path().join("inspect-ca.key"));
    std::fs::write(&cert_path, ca.pem()).expect("write");
    std::fs::write(&key_path, key.serialize_pem()).expect("write");
    private(&key_path);
    (dir, cert_path, key_path)
}

struct Inspected {
    origin: Origin,
    running: s3gate::Running,
    ca_cert: std::path::PathBuf,
    audit: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

async fn setup(actions: &[&str]) -> Inspected {
    let origin = Origin::start().await;
    let (dir, ca_cert, ca_key) = enterprise_ca();
    let audit = dir.path().join("audit.jsonl");
    let running = gateway(|a| {
        let t = &mut a.transparent;
        t.transparent_connect_to = connect_s3_to(origin.tls_addr);
        t.transparent_allow_bucket = vec!["tp-*".into()];
        t.transparent_inspect = vec!["@aws-s3".into()];
        t.transparent_allow_action = actions.iter().map(|s| s.to_string()).collect();
        t.inspect_ca_cert = Some(ca_cert.clone());
        t.inspect_ca_key = Some(ca_key);
        t.transparent_upstream_ca = Some(origin.ca_file.clone());
        a.dns.dns_listen = Some("127.0.0.1:0".into());
        a.dns.dns_answer = vec!["127.0.0.1".into()];
        a.audit_log = Some(audit.display().to_string());
    })
    .await;
    Inspected { origin, running, ca_cert, audit, _dir: dir }
}

fn audit_lines(path: &std::path::Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines().map(|l| serde_json::from_str(l).expect("json")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boto3_through_inspection_keeps_its_signature_and_every_request_is_audited() {
    let t = setup(&[]).await;
    let bucket = "tp-boto3-inspect";
    let dir = tempfile::tempdir().expect("tempdir");
    let known = pattern(12 * 1024 * 1024 + 5, 9);
    let known_path = dir.path().join("known.bin");
    std::fs::write(&known_path, &known).expect("write");
    let script = repo().join("tests/clients/forward_boto3.py");
    let mut cmd =
        super::clients::script(&t.origin, &t.running, "python", &[script.to_str().expect("path")], dir.path());
    // The client trusts the enterprise CA, not the endpoint's: every byte went through s3gate.
    cmd.env("AWS_CA_BUNDLE", &t.ca_cert).env("S3GATE_TEST_BUCKET", bucket).env("S3GATE_KNOWN_FILE", &known_path);
    let (ok, out) = run_script(cmd, "forward_boto3.py through inspection").await;
    assert!(ok, "{out}");
    assert!(t.origin.object(bucket, "kept/known.bin").expect("stored") == known);
    t.running.stop().await;
    let lines = audit_lines(&t.audit);
    let puts: Vec<_> = lines.iter().filter(|l| l["action"] == "s3:PutObject").collect();
    assert!(!puts.is_empty(), "no PutObject audited among {} lines", lines.len());
    for l in &lines {
        if l["action"].as_str().is_some_and(|a| a.starts_with("s3:")) {
            assert_eq!(l["access_key_id"], STORE_AKID, "{l}");
            assert_eq!(l["bucket"], bucket, "{l}");
        }
    }
    assert!(lines.iter().any(|l| l["operation"] == "UploadPart" && l["status"] == 200), "multipart parts audited");
    let text = std::fs::read_to_string(&t.audit).expect("audit");
    assert!(!text.contains(STORE_SECRET) && !text.contains("Signature="), "a secret or signature in the audit log");
}

/// curl, trusting the enterprise CA, through the listener; `--aws-sigv4` signs.
async fn curl(t: &Inspected, args: &[&str]) -> (i32, String) {
    let port = t.running.transparent_addr.expect("transparent").port();
    let user = format!("{STORE_AKID}:{STORE_SECRET}");
    let out = tokio::process::Command::new(crate::forward::clients::find_tool("curl"))
        .args(["-sS", "--max-time", "20", "-w", "%{http_code}", "--cacert"])
        .arg(&t.ca_cert)
        .args(["--connect-to", &format!("::127.0.0.1:{port}")])
        .args(["--aws-sigv4", "aws:amz:us-east-1:s3", "--user", &user])
        .args(["-H", "x-amz-content-sha256: UNSIGNED-PAYLOAD"])
        .args(args)
        .output()
        .await
        .expect("curl runs");
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into_owned())
}

#[tokio::test]
async fn actions_and_buckets_outside_the_lists_are_refused_per_request_and_never_forwarded() {
    let t = setup(&["s3:CreateBucket", "s3:PutObject"]).await;
    let vhost = "https://tp-curl.s3.us-east-1.amazonaws.com";
    assert!(curl(&t, &["-X", "PUT", &format!("{vhost}/")]).await.1.ends_with("200"), "create bucket");
    let (_, out) = curl(&t, &["-X", "PUT", "--data-binary", "inspected", &format!("{vhost}/k")]).await;
    assert!(out.ends_with("200"), "put: {out}");
    assert_eq!(t.origin.object("tp-curl", "k").as_deref(), Some(&b"inspected"[..]));
    // GetObject is not in the action list: s3gate answers, in S3's words.
    let (_, out) = curl(&t, &[&format!("{vhost}/k")]).await;
    assert!(out.contains("<Code>AccessDenied</Code>") && out.ends_with("403"), "get: {out}");
    // Path style: the bucket is in the path, which inspection reads.
    let path = "https://s3.us-east-1.amazonaws.com";
    let (_, out) = curl(&t, &["-X", "PUT", "--data-binary", "x", &format!("{path}/other-bucket/k")]).await;
    assert!(out.contains("<Code>AccessDenied</Code>") && out.ends_with("403"), "other bucket: {out}");
    assert!(!t.origin.has_bucket("other-bucket"));
    let (_, out) = curl(&t, &["-X", "PUT", "--data-binary", "path style", &format!("{path}/tp-curl/p")]).await;
    assert!(out.ends_with("200"), "path style put: {out}");
    assert_eq!(t.origin.object("tp-curl", "p").as_deref(), Some(&b"path style"[..]));
    t.running.stop().await;
    let lines = audit_lines(&t.audit);
    let denied: Vec<_> = lines.iter().filter(|l| l["status"] == 403).collect();
    assert_eq!(denied.len(), 2, "{lines:?}");
    assert!(denied.iter().any(|l| l["action"] == "s3:GetObject" && l["key"] == "k"));
    assert!(denied.iter().any(|l| l["bucket"] == "other-bucket" && l["access_key_id"] == STORE_AKID));
}

/// The value of a metric line `name{labels}` in Prometheus' text format.
fn metric(text: &str, line: &str) -> u64 {
    let value = text.lines().find_map(|l| l.strip_prefix(line)?.strip_prefix(' '));
    value.unwrap_or_else(|| panic!("{line} missing from\n{text}")).parse().expect("a whole number")
}

#[tokio::test]
async fn inspected_requests_are_recorded_with_their_body_bytes() {
    const LEN: usize = 1_000_003;
    let t = setup(&[]).await;
    let metrics = t.running.metrics.clone();
    let vhost = "https://tp-bytes.s3.us-east-1.amazonaws.com";
    assert!(curl(&t, &["-X", "PUT", &format!("{vhost}/")]).await.1.ends_with("200"), "create bucket");
    let dir = tempfile::tempdir().expect("dir");
    let (up, down) = (dir.path().join("up.bin"), dir.path().join("down.bin"));
    let body = pattern(LEN, 4);
    std::fs::write(&up, &body).expect("write");
    let (_, out) = curl(&t, &["-T", up.to_str().expect("path"), &format!("{vhost}/sized")]).await;
    assert!(out.ends_with("200"), "put: {out}");
    let (_, out) = curl(&t, &["-o", down.to_str().expect("path"), &format!("{vhost}/sized")]).await;
    assert_eq!(out, "200", "get");
    assert!(std::fs::read(&down).expect("downloaded") == body, "the download differs");
    // Records are written as each response body ends; after the drain every one is in.
    t.running.stop().await;

    let lines = audit_lines(&t.audit);
    let put = lines.iter().find(|l| l["operation"] == "PutObject").expect("the upload audited");
    assert_eq!((put["bytes_in"].as_u64(), put["status"].as_u64()), (Some(LEN as u64), Some(200)), "{put}");
    let get = lines.iter().find(|l| l["operation"] == "GetObject").expect("the download audited");
    assert_eq!((get["bytes_in"].as_u64(), get["bytes_out"].as_u64()), (Some(0), Some(LEN as u64)), "{get}");
    // The metrics count what the records do: each body once, the connections' records nothing.
    let sum = |field: &str| lines.iter().map(|l| l[field].as_u64().expect("bytes")).sum::<u64>();
    let text = metrics.render();
    assert_eq!(metric(&text, r#"s3gate_received_bytes_total{mode="transparent"}"#), sum("bytes_in"));
    assert_eq!(metric(&text, r#"s3gate_sent_bytes_total{mode="transparent"}"#), sum("bytes_out"));
    assert!(sum("bytes_in") >= LEN as u64 && sum("bytes_out") >= LEN as u64, "{lines:?}");
}
