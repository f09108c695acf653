//! A separate upstream identity per client: a role with `upstream_role_arn` makes s3gate assume
//! that role at the upstream STS (moto's server, run here, logging what it gets) once per
//! (role, client), with ExternalId, SourceIdentity and tags naming the client, and sign that
//! client's S3 requests with the result. A `[[client]]` credential may name one too.

use std::process::Stdio;

use aws_sdk_s3::config::Credentials;
use s3gate::session::{SessionClaims, SessionKey, SessionKeys};
use tokio::io::{AsyncBufReadExt, BufReader};

use super::issuer::now;
use super::SESSION_KEY;
use crate::clients::{find_tool, repo, search_path};
use crate::support::recorder::Recorder;
use crate::support::{base_args, private, sdk_config, CLIENT_AKID, STORE_AKID};

const ROLE: &str = "arn:aws:iam::000000000000:role/per-user";
const UPSTREAM_ROLE: &str = "arn:aws:iam::123456789012:role/s3-users";
const BATCH_ROLE: &str = "arn:aws:iam::123456789012:role/s3-batch";
const BATCH_AKID: &str = "BATCHCLIENT000000001";
const BATCH_SECRET: &str = "batch-client-secret-0123456789abcdefghij";

/// moto's STS on a port of its own; the child ends with the test.
pub(super) async fn moto(log: &std::path::Path) -> (tokio::process::Child, u16) {
    let mut child = tokio::process::Command::new(find_tool("python"))
        .arg(repo().join("tests/clients/moto_sts.py"))
        .arg(log)
        .env("PATH", search_path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("moto starts (scripts/install-test-deps.sh installs it)");
    let stdout = child.stdout.take().expect("stdout");
    let line = BufReader::new(stdout).lines().next_line().await.expect("read").expect("moto prints its port");
    (child, line.trim().parse().expect("a port"))
}

fn session(name: &str, subject: Option<&str>, source_identity: Option<&str>) -> (String, String, String) {
    let claims = SessionClaims {
        access_key_id: s3gate::session::new_access_key_id(),
        secret: s3gate::session::new_secret(),
        issued: now(),
        expires: now() + 600,
        parent: Some(CLIENT_AKID.into()),
        role: Some(ROLE.into()),
        session_name: Some(name.into()),
        issuer: subject.map(|_| "https://idp.example".into()),
        subject: subject.map(str::to_owned),
        source_identity: source_identity.map(str::to_owned),
        tags: Vec::new(),
        policy: None,
    };
    let token = SessionKeys::new(vec![SessionKey::new(SESSION_KEY)]).expect("keys").seal(&claims);
    (claims.access_key_id.clone(), claims.secret.0.clone(), token)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_client_reaches_s3_as_its_own_upstream_role_session() {
    let dir = tempfile::tempdir().expect("dir");
    let log = dir.path().join("sts.log");
    let (_moto, port) = moto(&log).await;
    let recorder = Recorder::ok().await;
    let key_file = super::session_key_file(dir.path());
    let config_file = dir.path().join("s3gate.toml");
    let policy = r#"{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}"#;
    std::fs::write(
        &config_file,
        format!(
            "[sts]\nsession_key_file = \"{}\"\nupstream_endpoint = \"http://127.0.0.1:{port}\"\n\n\
             [[role]]\narn = \"{ROLE}\"\ntrust = {{ access_keys = [\"{CLIENT_AKID}\"] }}\npolicy = '{policy}'\n\
             upstream_role_arn = \"{UPSTREAM_ROLE}\"\nupstream_external_id = \"ext-42\"\n\n\
             [[client]]\naccess_key_id = \"{BATCH_AKID}\"\nsecret_access_key = \"{BATCH_SECRET}\"\n\
             upstream_role_arn = \"{BATCH_ROLE}\"\n",
            key_file.display()
        ),
    )
    .expect("write config");
    private(&config_file);
    let mut args = base_args(&recorder.url());
    args.config = Some(config_file);
    let config = s3gate::config::Config::load(&args, &Default::default()).expect("config");
    let running = s3gate::start(config).await.expect("gateway starts");
    let url = format!("http://{}", running.addr);
    let put = |(akid, secret, token): (String, String, String), key: &'static str| {
        let creds = Credentials::new(&akid, &secret, Some(token), None, "sts");
        let s3 =
            aws_sdk_s3::Client::from_conf(sdk_config(&url, &akid, &secret, None).credentials_provider(creds).build());
        async move { s3.put_object().bucket("reports").key(key).body(b"x".to_vec().into()).send().await }
    };

    let alice = session("alice", None, Some("alice-src"));
    put(alice.clone(), "a1").await.expect("alice's first upload");
    put(alice, "a2").await.expect("alice's second upload");
    put(session("bob", Some("repo:acme/bob"), None), "b1").await.expect("bob's upload");
    let batch = crate::support::sdk_client(&url, BATCH_AKID, BATCH_SECRET, None);
    batch.put_object().bucket("reports").key("c1").body(b"x".to_vec().into()).send().await.expect("batch upload");
    let plain = crate::support::sdk_client(&url, CLIENT_AKID, crate::support::CLIENT_SECRET, None);
    plain.put_object().bucket("reports").key("d1").body(b"x".to_vec().into()).send().await.expect("plain upload");

    let text = std::fs::read_to_string(&log).expect("moto's log");
    let calls: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).expect("json")).collect();
    assert_eq!(calls.len(), 3, "one AssumeRole per client, cached for the next request: {text}");
    let field = |i: usize, name: &str| calls[i]["fields"][name].as_str().unwrap_or_default().to_owned();
    for (i, call) in calls.iter().enumerate() {
        assert_eq!(field(i, "Action"), "AssumeRole");
        let (role, external_id) = if i < 2 { (UPSTREAM_ROLE, "ext-42") } else { (BATCH_ROLE, "") };
        assert_eq!((field(i, "RoleArn"), field(i, "ExternalId")), (role.into(), external_id.into()));
        assert_eq!(call["signed"], true);
        assert_eq!(call["credential"], STORE_AKID, "assumed with s3gate's own base credentials");
    }
    assert_eq!((field(0, "RoleSessionName"), field(0, "SourceIdentity")), ("alice".into(), "alice-src".into()));
    assert_eq!((field(1, "RoleSessionName"), field(1, "SourceIdentity")), ("bob".into(), "repo-acme-bob".into()));
    let tags = |i: usize| -> Vec<(String, String)> {
        (1..=3)
            .map(|n| (field(i, &format!("Tags.member.{n}.Key")), field(i, &format!("Tags.member.{n}.Value"))))
            .collect()
    };
    assert_eq!(tags(0)[..2], [("s3gate-session".into(), "alice".into()), ("s3gate-role".into(), "per-user".into())]);
    assert_eq!(tags(1)[2], ("s3gate-subject".into(), "repo:acme/bob".into()));
    assert_eq!((field(2, "RoleSessionName"), field(2, "SourceIdentity")), (BATCH_AKID.into(), BATCH_AKID.into()));
    assert_eq!(tags(2)[0], ("s3gate-credential".into(), BATCH_AKID.into()));

    // The store saw each client under its own upstream session, never s3gate's base identity.
    let seen = recorder.requests();
    assert_eq!(seen.len(), 5);
    let signer = |i: usize| {
        let auth = seen[i].header("authorization").expect("signed");
        auth.split("Credential=").nth(1).and_then(|c| c.split('/').next()).expect("credential").to_owned()
    };
    assert!(signer(0).starts_with("ASIA") && signer(0) != STORE_AKID, "{}", signer(0));
    assert_eq!(signer(0), signer(1), "alice's cached upstream session");
    assert_ne!(signer(0), signer(2), "bob has his own");
    assert!(signer(3).starts_with("ASIA") && ![signer(0), signer(2)].contains(&signer(3)), "the credential's own role");
    assert_eq!(signer(4), STORE_AKID, "a credential without an upstream role signs as s3gate");
    assert!(seen[..4].iter().all(|r| r.header("x-amz-security-token").is_some_and(|t| !t.is_empty())));
    running.stop().await;
}
