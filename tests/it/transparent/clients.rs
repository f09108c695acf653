//! Real clients, unmodified, with only their name resolution changed: boto3 and awscli resolve
//! every name through s3gate's DNS responder (tests/clients/transparent/sitecustomize.py, as a
//! resolv.conf naming s3gate would), reach its passthrough listener, and talk TLS end to end to
//! a stand-in for AWS S3 whose certificate names the S3 endpoints (the forward tests' origin).
//! curl, with `--connect-to`, signs its own requests (`--aws-sigv4`) and is refused for a
//! bucket outside the bucket list and a name outside the allow list. Clients sign with the
//! store's own keys: s3gate never holds them. A missing tool fails the test.

use super::{connect_s3_to, gateway};
use crate::forward::clients::{find_tool, repo, run_script, search_path};
use crate::forward::origin::Origin;
use crate::support::{pattern, STORE_AKID, STORE_SECRET};

const KNOWN_LEN: usize = 12 * 1024 * 1024 + 5;

/// Origin, and s3gate with its responder and its passthrough listener sending the S3 names
/// there; buckets limited to `tp-*`.
async fn setup() -> (Origin, s3gate::Running) {
    let origin = Origin::start().await;
    let running = gateway(|a| {
        a.transparent.transparent_connect_to = connect_s3_to(origin.tls_addr);
        a.transparent.transparent_allow_bucket = vec!["tp-*".into()];
        a.dns.dns_listen = Some("127.0.0.1:0".into());
        a.dns.dns_answer = vec!["127.0.0.1".into()];
    })
    .await;
    (origin, running)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boto3_with_only_its_resolver_changed() {
    run(("python", "forward_boto3.py"), "tp-boto3").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn awscli_with_only_its_resolver_changed() {
    run(("bash", "forward_awscli.sh"), "tp-awscli").await;
}

/// The script's environment: AWS's defaults, the store's keys, the test CA, and resolution
/// through s3gate; no endpoint, no proxy.
pub fn script(
    origin: &Origin,
    running: &s3gate::Running,
    runner: &str,
    args: &[&str],
    dir: &std::path::Path,
) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(find_tool(runner));
    cmd.args(args)
        .env("PATH", search_path())
        .env("PYTHONPATH", repo().join("tests/clients/transparent"))
        .env("S3GATE_TEST_DNS", running.dns_addr.expect("dns").to_string())
        .env("S3GATE_TEST_HTTPS_PORT", running.transparent_addr.expect("transparent").port().to_string())
        .env("AWS_CA_BUNDLE", &origin.ca_file)
        .env("TMPDIR", dir)
        .env("AWS_ACCESS_KEY_ID", STORE_AKID)
        .env("AWS_SECRET_ACCESS_KEY", STORE_SECRET)
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env("AWS_CONFIG_FILE", dir.join("no-config"))
        .env("AWS_SHARED_CREDENTIALS_FILE", dir.join("no-credentials"))
        .env("AWS_EC2_METADATA_DISABLED", "true");
    for var in [
        "AWS_PROFILE",
        "AWS_SESSION_TOKEN",
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_S3",
        "S3GATE_FORWARD_ENDPOINT",
        "HTTPS_PROXY",
        "https_proxy",
        "HTTP_PROXY",
        "http_proxy",
        "ALL_PROXY",
        "all_proxy",
    ] {
        cmd.env_remove(var);
    }
    cmd
}

async fn run((runner, name): (&str, &str), bucket: &str) {
    let (origin, running) = setup().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let known = pattern(KNOWN_LEN, bucket.len() as u8);
    let known_path = dir.path().join("known.bin");
    std::fs::write(&known_path, &known).expect("write the known file");
    let path = repo().join("tests/clients").join(name);
    let mut cmd = script(&origin, &running, runner, &[path.to_str().expect("path")], dir.path());
    cmd.env("S3GATE_TEST_BUCKET", bucket).env("S3GATE_KNOWN_FILE", &known_path);
    let what = format!("{name} with s3gate as its resolver");
    let (ok, out) = run_script(cmd, &what).await;
    println!("{out}");
    assert!(ok, "{what} failed\n{out}");
    assert_eq!(origin.keys(bucket), ["kept/known.bin"], "what the store holds after {what}");
    assert!(origin.object(bucket, "kept/known.bin").expect("stored") == known, "kept/known.bin differs");

    // The same client, for a bucket outside `tp-*`: the TLS fails, nothing is made.
    if runner == "python" {
        let probe = "import boto3, sys\ntry:\n    boto3.client('s3').create_bucket(Bucket='other-bucket')\nexcept Exception as e:\n    print('refused:', type(e).__name__); sys.exit(0)\nsys.exit('created a bucket outside the list')";
        let (ok, out) =
            run_script(script(&origin, &running, "python", &["-c", probe], dir.path()), "denied bucket").await;
        assert!(ok, "{out}");
        assert!(!origin.has_bucket("other-bucket"), "a bucket outside the list was made");
    }
    let metrics = running.metrics.render();
    assert!(metrics.contains(r#"action="transparent:passthrough",mode="transparent",status_class="2xx""#), "{metrics}");
    running.stop().await;
}

/// curl through the passthrough listener: `--connect-to` stands for the resolver.
async fn curl(running: &s3gate::Running, origin: &Origin, args: &[&str]) -> (i32, String) {
    let port = running.transparent_addr.expect("transparent").port();
    let out = tokio::process::Command::new(find_tool("curl"))
        .args(["-sS", "--max-time", "20", "--cacert"])
        .arg(&origin.ca_file)
        .args(["--connect-to", &format!("::127.0.0.1:{port}")])
        .args(args)
        .env_remove("HTTPS_PROXY")
        .env_remove("https_proxy")
        .output()
        .await
        .expect("curl runs");
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into_owned())
}

#[tokio::test]
async fn curl_signs_its_own_requests_through_passthrough_and_is_refused_elsewhere() {
    let (origin, running) = setup().await;
    let user = format!("{STORE_AKID}:{STORE_SECRET}");
    // S3 wants the payload hash header, which curl then signs too.
    let sign = [
        "--aws-sigv4",
        "aws:amz:us-east-1:s3",
        "--user",
        user.as_str(),
        "-H",
        "x-amz-content-sha256: UNSIGNED-PAYLOAD",
    ];
    let base = "https://tp-curl.s3.us-east-1.amazonaws.com";
    let (code, out) =
        curl(&running, &origin, &[&sign[..], &["-X", "PUT", "-w", "%{http_code}", &format!("{base}/")]].concat()).await;
    assert_eq!((code, out.trim_end().ends_with("200")), (0, true), "create bucket: {out}");
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("body.bin");
    let body = pattern(300_000, 5);
    std::fs::write(&file, &body).expect("write");
    let object = format!("{base}/obj");
    let put = [&sign[..], &["-T", file.to_str().expect("path"), "-w", "%{http_code}", &object]].concat();
    let (code, out) = curl(&running, &origin, &put).await;
    assert_eq!((code, out.trim_end().ends_with("200")), (0, true), "put: {out}");
    assert!(origin.object("tp-curl", "obj").expect("stored") == body);

    // A bucket outside the list, and a name outside the allow list: the TLS handshake fails
    // (curl's exit 35), and nothing arrives at the store.
    for url in
        ["https://other.s3.us-east-1.amazonaws.com/", "https://s3.us-east-1.amazonaws.com/", "https://example.com/"]
    {
        let (code, out) = curl(&running, &origin, &[&sign[..], &["-X", "PUT", url]].concat()).await;
        assert_eq!(code, 35, "{url}: {out}");
    }
    assert!(!origin.has_bucket("other"), "a bucket was made through a refused name");
    assert!(origin.has_bucket("tp-curl"));
    running.stop().await;
}
