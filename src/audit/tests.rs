use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use serde_json::Value;
use time::macros::datetime;

use super::{now_rfc3339, rfc3339_millis, spawn_sighup_reopen, AuditLog, AuditRecord};
use crate::metrics::Mode;

fn record(request_id: &str) -> AuditRecord {
    AuditRecord {
        time: rfc3339_millis(datetime!(2026-03-04 05:06:07.089_999 +02:00)),
        request_id: request_id.to_owned(),
        client: SocketAddr::from(([0x2001, 0xdb8, 0, 0, 0, 0, 0, 7], 51234)).to_string(),
        access_key_id: Some("AKIDREADONLY".to_owned()),
        action: "s3:PutObject".to_owned(),
        operation: "PutObject".to_owned(),
        bucket: Some("photos".to_owned()),
        key: Some("2026/march/cat.jpg".to_owned()),
        status: 403,
        error_code: Some("AccessDenied".to_owned()),
        bytes_in: 0,
        bytes_out: 243,
        duration_ms: 12,
        route: Some("default".to_owned()),
        mode: Mode::Endpoint.as_str().to_owned(),
        user: None,
        destination: None,
        session: None,
    }
}

fn lines(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(text.is_empty() || text.ends_with('\n'), "last line unterminated: {text:?}");
    text.lines().map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{line:?}: {e}"))).collect()
}

fn open(path: &Path) -> AuditLog {
    AuditLog::open(path.to_str().expect("non-UTF-8 temp path")).unwrap()
}

#[test]
fn lines_are_json_with_every_field() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    let log = open(&path);
    log.record(&record("req-1"));
    let mut forward = record("req-2");
    forward.mode = Mode::Forward.as_str().to_owned();
    forward.user = Some("build-bot".to_owned());
    forward.destination = Some("s3.eu-west-1.amazonaws.com:443".to_owned());
    forward.client = SocketAddr::from(([10, 0, 0, 5], 40000)).to_string();
    forward.access_key_id = None;
    forward.error_code = None;
    log.record(&forward);

    let lines = lines(&path);
    assert_eq!(lines.len(), 2);
    let expected = serde_json::json!({
        "time": "2026-03-04T03:06:07.089Z",
        "request_id": "req-1",
        "client": "[2001:db8::7]:51234",
        "access_key_id": "AKIDREADONLY",
        "action": "s3:PutObject",
        "operation": "PutObject",
        "bucket": "photos",
        "key": "2026/march/cat.jpg",
        "status": 403,
        "error_code": "AccessDenied",
        "bytes_in": 0,
        "bytes_out": 243,
        "duration_ms": 12,
        "route": "default",
        "mode": "endpoint",
        "user": null,
        "destination": null,
    });
    assert_eq!(lines[0], expected);
    assert_eq!(lines[1]["mode"], "forward");
    assert_eq!(lines[1]["user"], "build-bot");
    assert_eq!(lines[1]["destination"], "s3.eu-west-1.amazonaws.com:443");
    assert_eq!(lines[1]["client"], "10.0.0.5:40000");
    assert_eq!(lines[1]["access_key_id"], Value::Null);
}

#[test]
fn a_key_cannot_forge_a_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    let log = open(&path);
    let mut rec = record("req-1");
    rec.key = Some("a\n{\"request_id\":\"forged\"}\r\u{2028}\u{0}".to_owned());
    log.record(&rec);
    let lines = lines(&path);
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["key"], "a\n{\"request_id\":\"forged\"}\r\u{2028}\u{0}");
}

#[cfg(unix)]
#[test]
fn file_is_created_private_and_appended() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    open(&path).record(&record("req-1"));
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    // A restart appends rather than truncating.
    open(&path).record(&record("req-2"));
    let ids: Vec<_> = lines(&path).iter().map(|l| l["request_id"].clone()).collect();
    assert_eq!(ids, ["req-1", "req-2"]);
}

#[test]
fn open_names_the_path_on_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("missing-dir").join("audit.log");
    let err = AuditLog::open(path.to_str().unwrap_or_default()).err().map(|e| e.to_string()).unwrap_or_default();
    assert!(err.contains("missing-dir/audit.log"), "{err}");
}

#[test]
fn reopen_after_rename_writes_a_new_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    let rotated = dir.path().join("audit.log.1");
    let log = open(&path);
    let clone = log.clone();
    log.record(&record("before"));
    std::fs::rename(&path, &rotated).unwrap();
    // Until reopened, lines follow the renamed file (as with any open descriptor).
    clone.record(&record("in-between"));
    log.reopen().unwrap();
    clone.record(&record("after"));
    let ids = |p: &Path| lines(p).iter().map(|l| l["request_id"].clone()).collect::<Vec<_>>();
    assert_eq!(ids(&rotated), ["before", "in-between"]);
    assert_eq!(ids(&path), ["after"]);
}

#[test]
fn failed_reopen_keeps_the_old_file() {
    let dir = tempfile::tempdir().unwrap();
    let sub = dir.path().join("logs");
    std::fs::create_dir(&sub).unwrap();
    let path = sub.join("audit.log");
    let log = open(&path);
    let moved = dir.path().join("logs-old");
    std::fs::rename(&sub, &moved).unwrap();
    assert!(log.reopen().is_err());
    log.record(&record("still-written"));
    assert_eq!(lines(&moved.join("audit.log"))[0]["request_id"], "still-written");
}

#[test]
fn concurrent_lines_do_not_interleave() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    let log = open(&path);
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let log = log.clone();
            std::thread::spawn(move || {
                let mut rec = record("");
                rec.key = Some("k".repeat(5000));
                for i in 0..200 {
                    rec.request_id = format!("{t}-{i}");
                    log.record(&rec);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("writer panicked");
    }
    assert_eq!(lines(&path).len(), 800);
}

#[test]
fn stdout_target_works() {
    let log = AuditLog::open("-").unwrap();
    log.record(&record("to-stdout"));
    log.reopen().unwrap();
    log.record(&record("to-stdout-after-reopen"));
}

#[cfg(unix)]
#[tokio::test]
async fn sighup_reopens() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    let log = open(&path);
    spawn_sighup_reopen(log.clone());
    log.record(&record("before"));
    std::fs::rename(&path, dir.path().join("audit.log.1")).unwrap();
    let status = std::process::Command::new("kill")
        .args(["-HUP", &std::process::id().to_string()])
        .status()
        .unwrap_or_else(|e| panic!("kill: {e}"));
    assert!(status.success());
    // The reopen happens on the signal task; the new file appears when it has run.
    for _ in 0..200 {
        if path.exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    log.record(&record("after"));
    assert_eq!(lines(&path)[0]["request_id"], "after");
}

#[test]
fn times_are_utc_with_milliseconds() {
    assert_eq!(rfc3339_millis(datetime!(2026-12-31 23:59:59.9999 -05:00)), "2027-01-01T04:59:59.999Z");
    assert_eq!(rfc3339_millis(datetime!(2026-01-02 03:04:05 UTC)), "2026-01-02T03:04:05.000Z");
    let now = now_rfc3339();
    assert_eq!(now.len(), 24, "{now}");
    assert!(time::OffsetDateTime::parse(&now, &time::format_description::well_known::Rfc3339).is_ok(), "{now}");
}
