//! A route's upstream role: requests routed to `routed-*` reach the upstream as the route's IAM
//! role, assumed at the upstream STS (moto's server) once per client and named after it, unless
//! the client's own upstream role is in the same AWS account; a bucket on no route is signed
//! as before. Presigned URLs, browser form uploads and GetSessionToken sessions sign as the
//! credential behind them.

use aws_sdk_s3::config::Credentials;
use http::HeaderValue;

use super::upstream_role::moto;
use super::{credentials, session_key_file, urlencode};
use crate::presign::temp_file;
use crate::presign_wired::{curl_form, signed_form_as};
use crate::support::raw::{self, RawResponse};
use crate::support::recorder::{Recorded, Recorder};
use crate::support::{base_args, private, sdk_client, sdk_config, CLIENT_AKID, CLIENT_SECRET, STORE_AKID};

const ROUTE_ROLE: &str = "arn:aws:iam::123456789012:role/s3-routed";
/// A client role in the route role's account: it wins over the route's.
const BATCH_ROLE: &str = "arn:aws:iam::123456789012:role/s3-batch";
const BATCH_AKID: &str = "BATCHCLIENT000000001";
const BATCH_SECRET: &str = "batch-client-secret-0123456789abcdefghij";
/// A client role in another account: on the route, the route's role is used instead.
const PARTNER_ROLE: &str = "arn:aws:iam::210987654321:role/partner-s3";
const PARTNER_AKID: &str = "PARTNERCLIENT0000001";
const PARTNER_SECRET: &str = "partner-client-secret-0123456789abcdefgh";
/// s3gate roles: one with an upstream role in the route's account, one with none.
const PER_USER: &str = "arn:aws:iam::000000000000:role/per-user";
const PER_USER_UPSTREAM: &str = "arn:aws:iam::123456789012:role/s3-users";
const READERS: &str = "arn:aws:iam::000000000000:role/readers";

struct Setup {
    running: s3gate::Running,
    url: String,
    recorder: Recorder,
    sts_log: std::path::PathBuf,
    _moto: tokio::process::Child,
    _dir: tempfile::TempDir,
}

impl Setup {
    /// The gateway in front of a recording upstream, with moto as the upstream STS and a route
    /// for `routed-*` to the same upstream under `ROUTE_ROLE`.
    async fn start() -> Self {
        let dir = tempfile::tempdir().expect("dir");
        let sts_log = dir.path().join("sts.log");
        let (moto, port) = moto(&sts_log).await;
        let recorder = Recorder::ok().await;
        let key_file = session_key_file(dir.path());
        let all = r#"{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}"#;
        let toml = format!(
            r#"
[sts]
enabled = true
session_key_file = "{key}"
upstream_endpoint = "http://127.0.0.1:{port}"

[[role]]
arn = "{PER_USER}"
trust = {{ access_keys = ["{CLIENT_AKID}"] }}
policy = '{all}'
upstream_role_arn = "{PER_USER_UPSTREAM}"

[[role]]
arn = "{READERS}"
trust = {{ access_keys = ["{CLIENT_AKID}"] }}
policy = '{all}'

[[client]]
access_key_id = "{BATCH_AKID}"
secret_access_key = "{BATCH_SECRET}"
upstream_role_arn = "{BATCH_ROLE}"

[[client]]
access_key_id = "{PARTNER_AKID}"
secret_access_key = "{PARTNER_SECRET}"
upstream_role_arn = "{PARTNER_ROLE}"

[[route]]
bucket = "routed-*"
name = "routed"
upstream_role_arn = "{ROUTE_ROLE}"
upstream_external_id = "route-ext"
"#,
            key = key_file.display(),
        );
        let config_file = dir.path().join("s3gate.toml");
        std::fs::write(&config_file, toml).expect("write config");
        private(&config_file);
        let mut args = base_args(&recorder.url());
        args.config = Some(config_file);
        let config = s3gate::config::Config::load(&args, &Default::default()).expect("config");
        let running = s3gate::start(config).await.expect("gateway starts");
        let url = format!("http://{}", running.addr);
        Self { running, url, recorder, sts_log, _moto: moto, _dir: dir }
    }

    /// An STS action signed (service `sts`) with an s3gate credential.
    async fn sts(&self, akid: &str, secret: &str, form: &str) -> (String, String, String) {
        let mut req = raw::request("POST", self.running.addr, "/");
        req.headers_mut().insert("content-type", HeaderValue::from_static("application/x-www-form-urlencoded"));
        raw::sign_for("sts", &mut req, &raw::sha256_hex(form.as_bytes()), std::time::SystemTime::now(), akid, secret);
        let resp: RawResponse = raw::send(req, form.to_owned()).await;
        assert_eq!(resp.status, 200, "{form}: {}", resp.body);
        credentials(&resp.body)
    }

    async fn assume_role(&self, role: &str, session_name: &str, source_identity: &str) -> (String, String, String) {
        let form = format!(
            "Action=AssumeRole&Version=2011-06-15&RoleArn={}&RoleSessionName={session_name}&SourceIdentity={source_identity}",
            urlencode(role)
        );
        self.sts(CLIENT_AKID, CLIENT_SECRET, &form).await
    }

    async fn get_session_token(&self, akid: &str, secret: &str) -> (String, String, String) {
        self.sts(akid, secret, "Action=GetSessionToken&Version=2011-06-15").await
    }

    fn client(&self, akid: &str, secret: &str) -> aws_sdk_s3::Client {
        sdk_client(&self.url, akid, secret, None)
    }

    fn session_client(&self, (akid, secret, token): &(String, String, String)) -> aws_sdk_s3::Client {
        let creds = Credentials::new(akid, secret, Some(token.clone()), None, "sts");
        aws_sdk_s3::Client::from_conf(sdk_config(&self.url, akid, secret, None).credentials_provider(creds).build())
    }

    /// The AssumeRole calls that reached the upstream STS, in order.
    fn sts_calls(&self) -> Vec<serde_json::Value> {
        let text = std::fs::read_to_string(&self.sts_log).unwrap_or_default();
        text.lines().map(|l| serde_json::from_str(l).expect("json")).collect()
    }

    /// The access key id the upstream request for `path` was signed with.
    fn signer(&self, path: &str) -> String {
        let seen = self.recorder.requests();
        let found: Vec<&Recorded> = seen.iter().filter(|r| r.target.split('?').next() == Some(path)).collect();
        assert_eq!(found.len(), 1, "one upstream request for {path}: {:?}", seen.iter().map(|r| &r.target));
        let auth = found[0].header("authorization").expect("signed");
        let akid = auth.split("Credential=").nth(1).and_then(|c| c.split('/').next()).expect("credential");
        if akid != STORE_AKID {
            assert!(akid.starts_with("ASIA"), "{path}: {akid}");
            assert!(found[0].header("x-amz-security-token").is_some_and(|t| !t.is_empty()), "{path}");
        }
        akid.to_owned()
    }
}

async fn put(s3: &aws_sdk_s3::Client, bucket: &str, key: &str) {
    s3.put_object().bucket(bucket).key(key).body(b"x".to_vec().into()).send().await.expect("upload");
}

fn field(call: &serde_json::Value, name: &str) -> String {
    call["fields"][name].as_str().unwrap_or_default().to_owned()
}

/// The RoleArn, ExternalId, RoleSessionName and SourceIdentity of one call.
fn asked(call: &serde_json::Value) -> [String; 4] {
    ["RoleArn", "ExternalId", "RoleSessionName", "SourceIdentity"].map(|n| field(call, n))
}

fn tags(call: &serde_json::Value) -> Vec<(String, String)> {
    (1..)
        .map(|n| (field(call, &format!("Tags.member.{n}.Key")), field(call, &format!("Tags.member.{n}.Value"))))
        .take_while(|(k, _)| !k.is_empty())
        .collect()
}

fn strings<const N: usize>(items: [&str; N]) -> [String; N] {
    items.map(str::to_owned)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_route_role_signs_routed_requests_unless_the_clients_own_role_is_in_its_account() {
    let gw = Setup::start().await;
    let plain = gw.client(CLIENT_AKID, CLIENT_SECRET);
    put(&plain, "routed-a", "plain-1").await;
    put(&plain, "other", "plain-2").await;
    let batch = gw.client(BATCH_AKID, BATCH_SECRET);
    put(&batch, "routed-a", "batch-1").await;
    let partner = gw.client(PARTNER_AKID, PARTNER_SECRET);
    put(&partner, "routed-a", "partner-1").await;
    put(&partner, "other", "partner-2").await;
    let carol = gw.session_client(&gw.assume_role(READERS, "carol", "carol-src").await);
    put(&carol, "routed-a", "carol-1").await;
    put(&carol, "other", "carol-2").await;
    let dave = gw.session_client(&gw.assume_role(PER_USER, "dave", "dave-src").await);
    put(&dave, "routed-a", "dave-1").await;

    let calls = gw.sts_calls();
    assert_eq!(calls.len(), 6, "{calls:?}");
    for call in &calls {
        assert_eq!(field(call, "Action"), "AssumeRole");
        assert_eq!(call["signed"], true);
        assert_eq!(call["credential"], STORE_AKID, "assumed with s3gate's own base credentials");
    }
    // A credential with no role of its own: the route's, with the route's ExternalId, named
    // after the credential.
    assert_eq!(asked(&calls[0]), strings([ROUTE_ROLE, "route-ext", CLIENT_AKID, CLIENT_AKID]));
    assert_eq!(tags(&calls[0]), [("s3gate-credential".to_owned(), CLIENT_AKID.to_owned())]);
    // Its own role in the route role's account: its own.
    assert_eq!(asked(&calls[1]), strings([BATCH_ROLE, "", BATCH_AKID, BATCH_AKID]));
    // Its own role in another account: the route's on the route, its own elsewhere.
    assert_eq!(asked(&calls[2]), strings([ROUTE_ROLE, "route-ext", PARTNER_AKID, PARTNER_AKID]));
    assert_eq!(asked(&calls[3]), strings([PARTNER_ROLE, "", PARTNER_AKID, PARTNER_AKID]));
    // A session whose role has no upstream role: the route's, named after the session.
    assert_eq!(asked(&calls[4]), strings([ROUTE_ROLE, "route-ext", "carol", "carol-src"]));
    assert_eq!(
        tags(&calls[4]),
        [("s3gate-session".to_owned(), "carol".to_owned()), ("s3gate-role".to_owned(), "readers".to_owned())]
    );
    // A session whose role's upstream role is in the route role's account: that one.
    assert_eq!(asked(&calls[5]), strings([PER_USER_UPSTREAM, "", "dave", "dave-src"]));

    assert_eq!(gw.signer("/other/plain-2"), STORE_AKID, "an unrouted bucket is signed as before");
    assert_eq!(gw.signer("/other/carol-2"), STORE_AKID);
    let routed = ["/routed-a/plain-1", "/routed-a/batch-1", "/routed-a/partner-1", "/routed-a/carol-1"];
    let mut signers: Vec<String> = routed.iter().map(|p| gw.signer(p)).collect();
    signers.extend([gw.signer("/other/partner-2"), gw.signer("/routed-a/dave-1")]);
    for (i, s) in signers.iter().enumerate() {
        assert_ne!(s, STORE_AKID, "{i}");
        assert!(!signers[..i].contains(s), "each (role, client) has its own upstream session: {signers:?}");
    }
    gw.running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presigned_urls_form_uploads_and_session_tokens_sign_as_the_credential_behind_them() {
    let gw = Setup::start().await;
    let batch = gw.client(BATCH_AKID, BATCH_SECRET);
    put(&batch, "other", "b1").await;
    let plain = gw.client(CLIENT_AKID, CLIENT_SECRET);
    put(&plain, "routed-a", "c1").await;
    assert_eq!(gw.sts_calls().len(), 2);
    let batch_role = gw.signer("/other/b1");
    let route_role_for_plain = gw.signer("/routed-a/c1");

    // GetSessionToken sessions act as their parent credential: the same upstream role and the
    // same cached upstream session, on a route or not.
    let batch_session = gw.session_client(&gw.get_session_token(BATCH_AKID, BATCH_SECRET).await);
    put(&batch_session, "other", "b-gst").await;
    assert_eq!(gw.signer("/other/b-gst"), batch_role);
    let plain_session = gw.session_client(&gw.get_session_token(CLIENT_AKID, CLIENT_SECRET).await);
    put(&plain_session, "routed-a", "c-gst").await;
    put(&plain_session, "other", "c-gst").await;
    assert_eq!(gw.signer("/routed-a/c-gst"), route_role_for_plain);
    assert_eq!(gw.signer("/other/c-gst"), STORE_AKID);
    assert_eq!(gw.sts_calls().len(), 2, "no new upstream session for a session of the same credential");

    // Presigned URLs: the credential (or session) that signed the URL.
    let presign = |s3: aws_sdk_s3::Client, bucket: &'static str, key: &'static str| async move {
        let config = aws_sdk_s3::presigning::PresigningConfig::expires_in(std::time::Duration::from_secs(300))
            .expect("presigning config");
        let url = s3.get_object().bucket(bucket).key(key).presigned(config).await.expect("presign");
        let resp = raw::send(http::Request::get(url.uri()).body(()).expect("request"), "").await;
        assert_eq!(resp.status, 200, "{bucket}/{key}: {}", resp.body);
    };
    let partner = gw.client(PARTNER_AKID, PARTNER_SECRET);
    presign(partner.clone(), "routed-a", "p1").await;
    presign(partner, "other", "p2").await;
    presign(batch_session, "other", "b-presigned").await;
    assert_eq!(gw.signer("/other/b-presigned"), batch_role);
    let calls = gw.sts_calls();
    assert_eq!(calls.len(), 4, "{calls:?}");
    assert_eq!(asked(&calls[2]), strings([ROUTE_ROLE, "route-ext", PARTNER_AKID, PARTNER_AKID]));
    assert_eq!(asked(&calls[3]), strings([PARTNER_ROLE, "", PARTNER_AKID, PARTNER_AKID]));
    let (partner_routed, partner_own) = (gw.signer("/routed-a/p1"), gw.signer("/other/p2"));
    assert!(![STORE_AKID, &partner_own, &route_role_for_plain].contains(&partner_routed.as_str()));

    // Browser form uploads: the credential that signed the form's policy.
    let file = temp_file("form.txt", b"from a form");
    for (akid, secret, bucket, expected) in [
        (CLIENT_AKID, CLIENT_SECRET, "routed-a", &route_role_for_plain),
        (BATCH_AKID, BATCH_SECRET, "other", &batch_role),
        (PARTNER_AKID, PARTNER_SECRET, "routed-b", &partner_routed),
    ] {
        let key = format!("form-{akid}");
        let conditions = serde_json::json!([{"bucket": bucket}, {"key": key}]);
        let fields = signed_form_as(akid, secret, conditions, &[("key", &key)]);
        let (status, body) = curl_form(&format!("{}/{bucket}", gw.url), &fields, &file.path).await;
        assert_eq!(status, 204, "{akid}: {body}");
        assert_eq!(&gw.signer(&format!("/{bucket}/{key}")), expected, "{akid}'s form upload");
    }
    assert_eq!(gw.sts_calls().len(), 4, "every identity was already cached");
    gw.running.stop().await;
}
