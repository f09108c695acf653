//! boto3 and the awscli against s3gate's STS with no code change: `AWS_ENDPOINT_URL_STS`,
//! `AWS_ROLE_ARN` and `AWS_WEB_IDENTITY_TOKEN_FILE` in the default chain, `assume-role` and
//! `get-session-token` with the long-term key, a session policy that narrows the role. Then the
//! store is asked what each script left.

use super::issuer::Signer;
use super::{start, BUCKET, CI_ROLE, HOME_ROLE};
use crate::clients::{find_tool, repo, run_script, search_path};
use crate::support::{get_bytes, CLIENT_AKID, CLIENT_SECRET};

async fn run(runner: &str, script: &str, kept: &[&str], refused: &[&str]) {
    let (gw, issuer, dir) = start().await;
    let token_file = dir.path().join("token.jwt");
    let sub = format!("repo:acme/{script}");
    std::fs::write(&token_file, issuer.token(Signer::Ec, &issuer.claims(&sub))).expect("write token");
    let script = repo().join("tests/clients").join(script);
    let mut cmd = tokio::process::Command::new(find_tool(runner));
    cmd.arg(&script)
        .env("PATH", search_path())
        .env("S3GATE_ENDPOINT", &gw.url)
        .env("AWS_ENDPOINT_URL_STS", &gw.url)
        .env("AWS_ROLE_ARN", CI_ROLE)
        .env("AWS_WEB_IDENTITY_TOKEN_FILE", &token_file)
        .env("AWS_ROLE_SESSION_NAME", "ci-job")
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env("S3GATE_AKID", CLIENT_AKID)
        .env("S3GATE_SECRET", CLIENT_SECRET)
        .env("S3GATE_HOME_ROLE", HOME_ROLE)
        .env("S3GATE_TEST_BUCKET", BUCKET);
    for var in [
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_SECURITY_TOKEN",
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_S3",
        "AWS_CONFIG_FILE",
        "AWS_SHARED_CREDENTIALS_FILE",
    ] {
        cmd.env_remove(var);
    }
    let what = format!("{} against {}", script.display(), gw.url);
    let (status, out) = run_script(cmd, &what).await;
    println!("{out}");
    assert!(status.success(), "{what} exited with {status}\n{out}");

    let store = gw.upstream.direct_client();
    for key in kept {
        assert!(!get_bytes(&store, BUCKET, key).await.is_empty(), "{key} is in the store");
    }
    for key in refused {
        assert!(gw.upstream.stored_paths(key).is_empty(), "{key} was refused but reached the store");
    }
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boto3_gets_credentials_from_the_sts_and_uses_s3() {
    run(
        "python",
        "sts_boto3.py",
        &["boto3/web.txt", "home/blue/alice/notes.txt", "boto3/gst.txt"],
        &["home/blue/bob", "denied.txt", "another-bucket"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn awscli_gets_credentials_from_the_sts_and_uses_s3() {
    run("bash", "sts_awscli.sh", &["awscli/web.txt", "awscli/gst.txt", "home/red/carol/notes.txt"], &["denied.txt"])
        .await;
}
