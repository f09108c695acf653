//! Real clients through the forward proxy, configured only by proxy variables: awscli and boto3
//! with `HTTPS_PROXY` (CONNECT, TLS end to end to a server whose certificate names AWS S3) and
//! with `HTTP_PROXY` to a plain-HTTP endpoint (absolute-form requests), then curl for the
//! refusals. `--forward-connect-to` sends the AWS names to the local store; after each script
//! the store itself is asked what it holds. A missing tool fails the test, it is never skipped.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use super::origin::{Origin, S3_DOMAINS};
use super::{addr_of, proxy, PASSWORD, USER};
use crate::support::{pattern, STORE_AKID, STORE_SECRET};

/// The password the scripts put in their proxy URL: URL-safe, unlike [`PASSWORD`].
const SCRIPT_PASSWORD: &str = "script-proxy-pass-0123";
/// A script moves about 50 MiB through a debug build; this only stops a hung one.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(600);
const KNOWN_LEN: usize = 12 * 1024 * 1024 + 5;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Scheme {
    Https,
    Http,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn awscli_through_https_proxy() {
    run(("bash", "forward_awscli.sh"), Scheme::Https).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn awscli_through_http_proxy() {
    run(("bash", "forward_awscli.sh"), Scheme::Http).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boto3_through_https_proxy() {
    run(("python", "forward_boto3.py"), Scheme::Https).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boto3_through_http_proxy() {
    run(("python", "forward_boto3.py"), Scheme::Http).await;
}

async fn run((runner, script): (&str, &str), scheme: Scheme) {
    let origin = Origin::start().await;
    let running = proxy(|f| {
        // `*` is one label: the S3 names and their buckets' virtual-hosted names.
        let names = S3_DOMAINS.iter().flat_map(|d| [d.to_string(), format!("*.{d}")]);
        f.forward_connect_to = names
            .flat_map(|n| [format!("{n}:443={}", origin.tls_addr), format!("{n}:80={}", origin.plain_addr)])
            .collect();
        f.forward_user = vec![format!("{USER}:{SCRIPT_PASSWORD}")];
    })
    .await;
    let proxy_url = format!("http://{USER}:{SCRIPT_PASSWORD}@{}", addr_of(&running));
    let bucket =
        format!("fwd-{}-{}", script.split('.').next().unwrap_or(script).replace('_', "-"), scheme_name(scheme));
    let dir = tempfile::tempdir().expect("tempdir");
    let known = pattern(KNOWN_LEN, bucket.len() as u8);
    let known_path = dir.path().join("known.bin");
    std::fs::write(&known_path, &known).expect("write the known file");

    let mut cmd = tokio::process::Command::new(find_tool(runner));
    cmd.arg(repo().join("tests/clients").join(script))
        .env("PATH", search_path())
        .env("TMPDIR", dir.path())
        .env("AWS_ACCESS_KEY_ID", STORE_AKID)
        .env("AWS_SECRET_ACCESS_KEY", STORE_SECRET)
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env("AWS_CONFIG_FILE", dir.path().join("no-config"))
        .env("AWS_SHARED_CREDENTIALS_FILE", dir.path().join("no-credentials"))
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("S3GATE_TEST_BUCKET", &bucket)
        .env("S3GATE_KNOWN_FILE", &known_path);
    for var in [
        "AWS_PROFILE",
        "AWS_SESSION_TOKEN",
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_S3",
        "AWS_CA_BUNDLE",
        "S3GATE_FORWARD_ENDPOINT",
        "HTTPS_PROXY",
        "https_proxy",
        "HTTP_PROXY",
        "http_proxy",
        "ALL_PROXY",
        "all_proxy",
        "NO_PROXY",
        "no_proxy",
    ] {
        cmd.env_remove(var);
    }
    match scheme {
        Scheme::Https => cmd.env("HTTPS_PROXY", &proxy_url).env("AWS_CA_BUNDLE", &origin.ca_file),
        Scheme::Http => {
            cmd.env("HTTP_PROXY", &proxy_url).env("S3GATE_FORWARD_ENDPOINT", "http://s3.us-east-1.amazonaws.com")
        }
    };
    let what = format!("{script} through the proxy ({})", scheme_name(scheme));
    let (ok, out) = run_script(cmd, &what).await;
    println!("{out}");
    assert!(ok, "{what} failed\n{out}");

    assert_eq!(origin.keys(&bucket), ["kept/known.bin"], "what the store holds after {what}");
    let stored = origin.object(&bucket, "kept/known.bin").expect("kept/known.bin is stored");
    assert!(stored == known, "kept/known.bin: {} bytes stored, {} sent, or different bytes", stored.len(), known.len());
    running.stop().await;
}

fn scheme_name(scheme: Scheme) -> &'static str {
    if scheme == Scheme::Https {
        "https"
    } else {
        "http"
    }
}

#[tokio::test]
async fn curl_is_refused_outside_the_allow_list_and_without_the_password() {
    let running = proxy(|f| f.forward_user = vec![format!("{USER}:{PASSWORD}")]).await;
    let proxy_url = format!("http://{}", addr_of(&running));
    let good = format!("{USER}:{PASSWORD}");
    let cases: &[(&str, &str, &str, &str)] = &[
        ("a host outside the allow list", &good, "https://example.com/", "403"),
        ("an allowed host on port 8443", &good, "https://s3.amazonaws.com:8443/", "403"),
        ("an IP literal", &good, "https://127.0.0.1/", "403"),
        ("plain HTTP outside the allow list", &good, "http://example.com/", "403"),
        ("plain HTTP to an allowed host on port 8080", &good, "http://s3.amazonaws.com:8080/", "403"),
        ("a wrong password", "builder:wrong", "https://s3.amazonaws.com/", "407"),
        ("no credentials", "", "https://s3.amazonaws.com/", "407"),
        ("no credentials, plain HTTP", "", "http://s3.amazonaws.com/", "407"),
    ];
    for (what, user, url, want) in cases {
        let mut cmd = tokio::process::Command::new(find_tool("curl"));
        cmd.args(["-s", "-o", "/dev/null", "--max-time", "20", "-w", "%{http_connect} %{http_code}", "-x", &proxy_url]);
        if !user.is_empty() {
            cmd.args(["--proxy-user", user]);
        }
        for var in ["NO_PROXY", "no_proxy", "HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"] {
            cmd.env_remove(var);
        }
        let out = cmd.arg(url).output().await.expect("curl runs");
        let codes = String::from_utf8_lossy(&out.stdout).into_owned();
        let got = if url.starts_with("https") { codes.split(' ').next() } else { codes.split(' ').nth(1) };
        assert_eq!(got, Some(*want), "{what}: curl -x {url} printed {codes:?}");
    }
    running.stop().await;
}

/// Runs the script in its own process group, so a timeout ends what it started too.
pub async fn run_script(mut cmd: tokio::process::Command, what: &str) -> (bool, String) {
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
            (output.status.success(), out)
        }
        Err(_) => {
            let _ = std::process::Command::new("kill").arg("-KILL").arg(format!("-{pid}")).status();
            panic!("{what}: still running after {SCRIPT_TIMEOUT:?}, killed");
        }
    }
}

pub fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// `.venv/bin` first (awscli and boto3 live there), then the inherited PATH.
pub fn search_path() -> std::ffi::OsString {
    let mut dirs = vec![repo().join(".venv/bin")];
    dirs.extend(std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()));
    std::env::join_paths(dirs).expect("PATH")
}

pub fn find_tool(name: &str) -> PathBuf {
    std::env::split_paths(&search_path())
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("{name} not found in .venv/bin or on PATH: run scripts/install-test-deps.sh"))
}
