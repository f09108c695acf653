//! rclone, unmodified, through transparent mode: an AWS remote with no endpoint, region
//! us-east-1 (tests/clients/transparent_rclone.sh), whose only change is its resolver.
//!
//! rclone is Go: its resolver reads /etc/resolv.conf and asks port 53, and it connects to port
//! 443. So here s3gate's DNS responder and transparent listener take ports 53 and 443 of a
//! loopback address of their own (127.x.y.z, picked at random so that runs side by side do not
//! meet), and rclone runs in a private mount namespace (`unshare --mount`) in which a
//! resolv.conf naming that address is bound over /etc/resolv.conf: nothing else about rclone or
//! the machine changes. The mount namespace and the low ports take root, as the tests run; a
//! missing tool or privilege fails the test, it is never skipped.

use std::net::{Ipv4Addr, SocketAddr};

use super::{connect_s3_to, gateway};
use crate::forward::clients::{find_tool, repo, run_script, search_path};
use crate::forward::origin::Origin;
use crate::support::{pattern, STORE_AKID, STORE_SECRET};

const KNOWN_LEN: usize = 12 * 1024 * 1024 + 5;
const DENIED: &str = "other-bucket";

/// A loopback address outside 127.0.0.0/24 (which other tests use) whose ports 53 (UDP and
/// TCP) and 443 are free now.
fn loopback() -> Ipv4Addr {
    for _ in 0..50 {
        let ip = Ipv4Addr::new(127, 1 + rand::random::<u8>() % 254, rand::random(), 1 + rand::random::<u8>() % 254);
        let free = std::net::TcpListener::bind((ip, 443)).is_ok()
            && std::net::UdpSocket::bind((ip, 53)).is_ok()
            && std::net::TcpListener::bind((ip, 53)).is_ok();
        if free {
            return ip;
        }
    }
    panic!("no loopback address with ports 53 and 443 free (binding them takes root)");
}

/// s3gate answering the S3 names with `ip` and listening at `ip`:443, the origin behind it;
/// buckets limited to `tp-*`. `inspect`: the enterprise CA's (cert, key), for inspect mode.
async fn start(
    origin: &Origin,
    ip: Ipv4Addr,
    inspect: Option<(&std::path::Path, &std::path::Path)>,
    audit: &std::path::Path,
) -> s3gate::Running {
    gateway(|a| {
        let t = &mut a.transparent;
        t.transparent_listen = Some(SocketAddr::from((ip, 443)).to_string());
        t.transparent_connect_to = connect_s3_to(origin.tls_addr);
        t.transparent_allow_bucket = vec!["tp-*".into()];
        if let Some((cert, key)) = inspect {
            t.transparent_inspect = vec!["@aws-s3".into()];
            t.inspect_ca_cert = Some(cert.to_path_buf());
            t.inspect_ca_key = Some(key.to_path_buf());
            t.transparent_upstream_ca = Some(origin.ca_file.clone());
        }
        a.dns.dns_listen = Some(SocketAddr::from((ip, 53)).to_string());
        a.dns.dns_answer = vec![ip.to_string()];
        a.audit_log = Some(audit.display().to_string());
    })
    .await
}

/// Runs the script under `unshare --mount` with /etc/resolv.conf naming `ip`, trusting `ca`.
async fn rclone(ip: Ipv4Addr, ca: &std::path::Path, bucket: &str, known: &std::path::Path, dir: &std::path::Path) {
    let resolv = dir.join("resolv.conf");
    std::fs::write(&resolv, format!("nameserver {ip}\n")).expect("write resolv.conf");
    let script = repo().join("tests/clients/transparent_rclone.sh");
    let mut cmd = tokio::process::Command::new(find_tool("unshare"));
    // The bind mount lives and dies with the namespace: the machine's resolv.conf is untouched.
    cmd.args(["--mount", "--", "sh", "-c", r#"mount --bind "$0" /etc/resolv.conf && exec "$@""#])
        .arg(&resolv)
        .arg(find_tool("bash"))
        .arg(&script)
        .env("PATH", search_path())
        .env("TMPDIR", dir)
        .env("SSL_CERT_FILE", ca)
        .env("AWS_ACCESS_KEY_ID", STORE_AKID)
        .env("AWS_SECRET_ACCESS_KEY", STORE_SECRET)
        .env("AWS_CONFIG_FILE", dir.join("no-config"))
        .env("AWS_SHARED_CREDENTIALS_FILE", dir.join("no-credentials"))
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("S3GATE_TEST_BUCKET", bucket)
        .env("S3GATE_DENIED_BUCKET", DENIED)
        .env("S3GATE_KNOWN_FILE", known);
    for var in [
        "AWS_CA_BUNDLE",
        "AWS_PROFILE",
        "AWS_SESSION_TOKEN",
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_S3",
        "RCLONE_CONFIG",
        "HTTPS_PROXY",
        "https_proxy",
        "HTTP_PROXY",
        "http_proxy",
        "ALL_PROXY",
        "all_proxy",
    ] {
        cmd.env_remove(var);
    }
    let what = format!("transparent_rclone.sh for {bucket}, resolving through s3gate at {ip}");
    let (ok, out) = run_script(cmd, &what).await;
    println!("{out}");
    assert!(ok, "{what} failed\n{out}");
}

fn audit_lines(path: &std::path::Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(path).expect("audit log");
    text.lines().map(|l| serde_json::from_str(l).expect("json")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rclone_with_only_its_resolv_conf_changed_through_passthrough() {
    let origin = Origin::start().await;
    let dir = tempfile::tempdir().expect("dir");
    let ip = loopback();
    let audit = dir.path().join("audit.jsonl");
    let running = start(&origin, ip, None, &audit).await;
    let (bucket, known) = ("tp-rclone", pattern(KNOWN_LEN, 11));
    let known_path = dir.path().join("known.bin");
    std::fs::write(&known_path, &known).expect("write the known file");

    rclone(ip, &origin.ca_file, bucket, &known_path, dir.path()).await;
    assert_eq!(origin.keys(bucket), ["kept/known.bin"], "what the store holds after rclone");
    assert!(origin.object(bucket, "kept/known.bin").expect("stored") == known, "kept/known.bin differs");
    assert!(!origin.has_bucket(DENIED), "a bucket outside the list was made");
    let metrics = running.metrics.render();
    assert!(metrics.contains(r#"action="transparent:passthrough",mode="transparent",status_class="2xx""#), "{metrics}");
    assert!(metrics.contains(r#"s3gate_network_denials_total{mode="transparent",reason="bucket"}"#), "{metrics}");
    running.stop().await;
    let lines = audit_lines(&audit);
    assert!(lines.iter().any(|l| l["bucket"] == bucket && l["status"] == 200), "no spliced connection audited");
    assert!(lines.iter().any(|l| l["bucket"] == DENIED && l["status"] == 403), "the refusal was not audited");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rclone_with_only_its_resolv_conf_changed_through_inspection() {
    let origin = Origin::start().await;
    let (ca_dir, ca_cert, ca_key) = super::inspect::enterprise_ca();
    let ip = loopback();
    let audit = ca_dir.path().join("audit.jsonl");
    let running = start(&origin, ip, Some((&ca_cert, &ca_key)), &audit).await;
    let dir = tempfile::tempdir().expect("dir");
    let (bucket, known) = ("tp-rclone-inspect", pattern(KNOWN_LEN, 12));
    let known_path = dir.path().join("known.bin");
    std::fs::write(&known_path, &known).expect("write the known file");

    // rclone trusts the enterprise CA alone: every byte it exchanged went through s3gate.
    rclone(ip, &ca_cert, bucket, &known_path, dir.path()).await;
    assert_eq!(origin.keys(bucket), ["kept/known.bin"], "what the store holds after rclone");
    assert!(origin.object(bucket, "kept/known.bin").expect("stored") == known, "kept/known.bin differs");
    assert!(!origin.has_bucket(DENIED), "a bucket outside the list was made");
    let metrics = running.metrics.render();
    assert!(metrics.contains(r#"action="s3:PutObject",mode="transparent",status_class="2xx""#), "{metrics}");
    running.stop().await;

    // Each request audited with the key rclone signed with; the parts and the download carry
    // the known file's bytes.
    let lines = audit_lines(&audit);
    let requests: Vec<_> = (lines.iter())
        .filter(|l| l["bucket"] == bucket && l["action"].as_str().is_some_and(|a| a.starts_with("s3:")))
        .collect();
    assert!(requests.iter().all(|l| l["access_key_id"] == STORE_AKID), "{requests:?}");
    let parts: u64 = (requests.iter())
        .filter(|l| l["operation"] == "UploadPart" && l["status"] == 200)
        .map(|l| l["bytes_in"].as_u64().expect("bytes_in"))
        .sum();
    assert_eq!(parts, KNOWN_LEN as u64, "the parts' bytes in the audit log");
    let got = (requests.iter())
        .find(|l| l["operation"] == "GetObject" && l["key"] == "kept/known.bin" && l["status"] == 200)
        .expect("the download audited");
    assert_eq!(got["bytes_out"], KNOWN_LEN as u64, "{got}");
}
