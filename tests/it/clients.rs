//! Real S3 clients against s3gate, over HTTP and over HTTPS: awscli v1, boto3, rclone and s3cmd,
//! each running its script from `tests/clients/` (uploads single and multipart, sync, listings,
//! downloads compared byte for byte, deletes). Then the store itself is asked what the script
//! left, so a body stored with its aws-chunked framing, or cut short, fails here even where the
//! client never noticed. The tools come from `scripts/install-test-deps.sh`; a missing tool fails
//! the test, it is never skipped.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use crate::support::{get_bytes, pattern, Gateway, CLIENT_AKID, CLIENT_SECRET};

/// What every script uploads and leaves as `kept/known.bin`: past each client's multipart
/// threshold as the scripts set them (5 or 8 MiB), and not a whole number of parts.
const KNOWN_LEN: usize = 12 * 1024 * 1024 + 5;

/// A script moves about 100 MiB through a debug build; this only stops a hung one.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(900);

struct Client {
    name: &'static str,
    /// The program that runs the script: looked up in `.venv/bin`, then on PATH.
    runner: &'static str,
    script: &'static str,
    /// What else the script calls.
    tools: &'static [&'static str],
    /// The objects the script leaves in its bucket, each holding the known file's bytes.
    kept: &'static [&'static str],
}

const AWSCLI: Client = Client {
    name: "awscli",
    runner: "bash",
    script: "awscli.sh",
    tools: &["aws", "curl", "cmp"],
    kept: &["kept/known.bin", "kept/put.bin"],
};

const BOTO3: Client = Client {
    name: "boto3",
    runner: "python",
    script: "boto3_client.py",
    tools: &[],
    kept: &["kept/known.bin", "kept/put.bin"],
};

const RCLONE: Client = Client {
    name: "rclone",
    runner: "bash",
    script: "rclone.sh",
    tools: &["rclone", "cmp"],
    kept: &["kept/known.bin"],
};

const S3CMD: Client =
    Client { name: "s3cmd", runner: "bash", script: "s3cmd.sh", tools: &["s3cmd", "cmp"], kept: &["kept/known.bin"] };

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn awscli_over_http() {
    run(&AWSCLI, Gateway::start().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn awscli_over_https() {
    run(&AWSCLI, Gateway::start_tls().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boto3_over_http() {
    run(&BOTO3, Gateway::start().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boto3_over_https() {
    run(&BOTO3, Gateway::start_tls().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rclone_over_http() {
    run(&RCLONE, Gateway::start().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rclone_over_https() {
    run(&RCLONE, Gateway::start_tls().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3cmd_over_http() {
    run(&S3CMD, Gateway::start().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3cmd_over_https() {
    run(&S3CMD, Gateway::start_tls().await).await;
}

/// Runs `client`'s script against `gw` in a bucket of its own, then checks the store.
async fn run(client: &Client, gw: Gateway) {
    let scheme = if gw.ca_pem.is_some() { "https" } else { "http" };
    let bucket = format!("{}-{scheme}", client.name);
    let dir = tempfile::tempdir().expect("tempdir");
    let known = pattern(KNOWN_LEN, bucket.len() as u8);
    let known_path = dir.path().join("known.bin");
    std::fs::write(&known_path, &known).expect("write known file");

    let runner = find_tool(client.runner);
    for tool in client.tools {
        find_tool(tool);
    }
    let script = repo().join("tests/clients").join(client.script);
    let mut cmd = tokio::process::Command::new(&runner);
    cmd.arg(&script)
        .env("PATH", search_path())
        .env("TMPDIR", dir.path())
        .env("S3GATE_ENDPOINT", &gw.url)
        .env("AWS_ACCESS_KEY_ID", CLIENT_AKID)
        .env("AWS_SECRET_ACCESS_KEY", CLIENT_SECRET)
        .env("S3GATE_TEST_BUCKET", &bucket)
        .env("S3GATE_KNOWN_FILE", &known_path)
        .env_remove("S3GATE_CA_BUNDLE");
    for var in ["AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"] {
        cmd.env_remove(var);
    }
    for var in ["AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"] {
        cmd.env_remove(var);
    }
    if let Some(pem) = &gw.ca_pem {
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, pem).expect("write CA");
        cmd.env("S3GATE_CA_BUNDLE", &ca);
    }
    let what = format!("{} against {}", script.display(), gw.url);
    let (status, out) = run_script(cmd, &what).await;
    println!("{out}");
    assert!(status.success(), "{what} exited with {status}\n{out}");

    check_store(&gw, &bucket, client.kept, &known).await;
    gw.stop().await;
}

/// Runs the script in its own process group, so a timeout ends the tools it started too.
pub(crate) async fn run_script(mut cmd: tokio::process::Command, what: &str) -> (std::process::ExitStatus, String) {
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).process_group(0).kill_on_drop(true);
    let child = cmd.spawn().unwrap_or_else(|e| panic!("{what}: cannot start: {e}"));
    let pid = child.id().expect("child pid");
    match tokio::time::timeout(SCRIPT_TIMEOUT, child.wait_with_output()).await {
        Ok(done) => {
            let output = done.unwrap_or_else(|e| panic!("{what}: {e}"));
            let out = format!(
                "--- stdout ---\n{}\n--- stderr ---\n{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
            (output.status, out)
        }
        Err(_) => {
            let _ = std::process::Command::new("kill").arg("-KILL").arg(format!("-{pid}")).status();
            panic!("{what}: still running after {SCRIPT_TIMEOUT:?}, killed");
        }
    }
}

/// The store, asked directly: only the script's bucket, holding only the kept objects, each
/// exactly the known bytes. Through the gateway, none says it is aws-chunked encoded: s3gate
/// may forward an upload as aws-chunked (for its trailing checksum), and a store that records
/// that as the object's Content-Encoding, as s3s-fs does, must not make clients decode it.
async fn check_store(gw: &Gateway, bucket: &str, kept: &[&str], known: &[u8]) {
    let store = gw.upstream.direct_client();
    let buckets = store.list_buckets().send().await.expect("list buckets in the store");
    let names: Vec<&str> = buckets.buckets().iter().filter_map(|b| b.name()).collect();
    assert_eq!(names, [bucket], "buckets in the store");

    let listed = store.list_objects_v2().bucket(bucket).send().await.expect("list the store");
    let mut keys: Vec<&str> = listed.contents().iter().filter_map(|o| o.key()).collect();
    keys.sort_unstable();
    assert_eq!(keys, kept, "objects left in the store");

    for key in kept {
        let stored = get_bytes(&store, bucket, key).await;
        assert_same(&stored, known, key);
        let head = gw.client().head_object().bucket(bucket).key(*key).send().await.expect("head through s3gate");
        assert_eq!(head.content_length(), Some(known.len() as i64), "{key}: length through s3gate");
        let encoding = head.content_encoding().unwrap_or_default();
        assert!(!encoding.contains("aws-chunked"), "{key}: s3gate answers Content-Encoding {encoding}");
    }
}

/// Compares without printing megabytes: the lengths and the first byte that differs.
fn assert_same(stored: &[u8], known: &[u8], key: &str) {
    if stored == known {
        return;
    }
    let first = stored.iter().zip(known).position(|(a, b)| a != b).unwrap_or(stored.len().min(known.len()));
    let around = |b: &[u8]| String::from_utf8_lossy(&b[first.min(b.len())..(first + 40).min(b.len())]).into_owned();
    panic!(
        "{key}: the store holds {} bytes, the client sent {}; first difference at byte {first}: stored {:?}, sent {:?}",
        stored.len(),
        known.len(),
        around(stored),
        around(known)
    );
}

pub(crate) fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// `.venv/bin` first (awscli, boto3 and requests live there), then the inherited PATH.
pub(crate) fn search_path() -> std::ffi::OsString {
    let mut dirs = vec![repo().join(".venv/bin")];
    dirs.extend(std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()));
    std::env::join_paths(dirs).expect("PATH")
}

pub(crate) fn find_tool(name: &str) -> PathBuf {
    std::env::split_paths(&search_path())
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("{name} not found in .venv/bin or on PATH: run scripts/install-test-deps.sh"))
}
