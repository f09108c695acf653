//! Logs never carry a secret, a signature or a presigned query, even at trace level.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::SystemTime;

use crate::support::raw::{self, sha256_hex};
use crate::support::{Upstream, CLIENT_AKID, CLIENT_SECRET, STORE_AKID, STORE_SECRET};

/// Kills the child process however the test ends, so a failed test leaves no server behind.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn trace_logs_hold_no_secret_signature_or_presigned_query() {
    let upstream = Upstream::start().await;
    let child = Command::new(env!("CARGO_BIN_EXE_s3gate"))
        .args(["serve", "--listen", "127.0.0.1:0", "--upstream", &upstream.store.url()])
        .args(["--upstream-credentials", &format!("{STORE_AKID}:{STORE_SECRET}")])
        .args(["--credentials", &format!("{CLIENT_AKID}:{CLIENT_SECRET}")])
        .env("RUST_LOG", "trace")
        .env_remove("S3GATE_LOG_FORMAT")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("s3gate runs");
    let mut child = KillOnDrop(child);
    let stderr = child.0.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut log = Vec::new();
    let addr: std::net::SocketAddr = loop {
        let line = rx.recv_timeout(std::time::Duration::from_secs(30)).expect("s3gate starts");
        log.push(line.clone());
        if let Some(rest) = line.split("listening on http://").nth(1) {
            let addr: String = rest.chars().take_while(|c| c.is_ascii_digit() || *c == '.' || *c == ':').collect();
            break addr.parse().expect("address");
        }
    };

    let mut signatures = Vec::new();
    // A bucket and an object, header-signed.
    for (method, path, body) in [("PUT", "/logged", ""), ("PUT", "/logged/obj", "payload")] {
        let mut req = raw::request(method, addr, path);
        req.headers_mut().insert("content-length", body.len().to_string().parse().expect("len"));
        raw::sign(&mut req, &sha256_hex(body.as_bytes()), SystemTime::now(), CLIENT_SECRET);
        signatures.push(raw::seed_signature(&req));
        let resp = raw::send(req, body.to_owned()).await;
        assert_eq!(resp.status, 200, "{}", resp.body);
    }
    // A wrong secret.
    let mut req = raw::request("GET", addr, "/logged/obj");
    raw::sign(&mut req, &sha256_hex(b""), SystemTime::now(), "wrong-secret-wrong-secret-wrong-secret-00");
    signatures.push(raw::seed_signature(&req));
    assert_eq!(raw::send(req, "").await.status, 403);
    // A presigned GET, minted by the CLI.
    let out = Command::new(env!("CARGO_BIN_EXE_s3gate"))
        .args(["presign", "s3://logged/obj", "--public-url", &format!("http://{addr}")])
        .args(["--credentials", &format!("{CLIENT_AKID}:{CLIENT_SECRET}")])
        .output()
        .expect("presign runs");
    let url = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert!(url.contains("X-Amz-Signature="), "{url} {}", String::from_utf8_lossy(&out.stderr));
    let presigned_sig = url.split("X-Amz-Signature=").nth(1).expect("sig").split('&').next().expect("sig").to_owned();
    signatures.push(presigned_sig);
    let path_and_query = url.splitn(4, '/').nth(3).map(|p| format!("/{p}")).expect("path");
    let resp = raw::send(raw::request("GET", addr, &path_and_query), "").await;
    assert_eq!(resp.status, 200, "{}", resp.body);
    assert_eq!(resp.body, "payload");

    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    drop(child);
    while let Ok(line) = rx.recv_timeout(std::time::Duration::from_millis(500)) {
        log.push(line);
    }
    let text = log.join("\n");
    assert!(text.contains("s3gate::access"), "the requests were logged at all");
    // Trace level was on: its lines are there (the upstream connections' among them), so the
    // checks below ran over the most verbose log s3gate writes.
    let traced = text.lines().filter(|l| l.contains(" TRACE ")).count();
    assert!(traced >= 5, "trace logging was on: {traced} TRACE lines in\n{text}");
    for secret in [CLIENT_SECRET, STORE_SECRET, "X-Amz-Signature", "X-Amz-Credential", "Signature="] {
        assert!(!text.contains(secret), "the log contains {secret:?}");
    }
    for sig in &signatures {
        assert!(!text.contains(sig.as_str()), "the log contains a signature");
    }
}
