//! s3gate's own STS against a real OpenID Connect issuer (HTTPS, discovery, JWKS with RSA and
//! EC keys, served by the test): web identities get temporary credentials that then work for
//! S3 through s3gate within the role's policy; forged, expired and misdirected tokens get STS's
//! codes; session tokens that were altered, expired, sealed elsewhere or not signed get S3's,
//! and nothing reaches the store. boto3 and the awscli do the same with no code change
//! (`sts/clients.rs`).

mod clients;
mod issuer;
mod jwks;
mod observe;
mod route_role;
mod upstream_role;

use std::sync::atomic::Ordering;

use aws_sdk_s3::config::Credentials;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use http::HeaderValue;
use s3gate::session::{SessionClaims, SessionKey, SessionKeys};
use serde_json::json;

use crate::support::raw::{self, RawResponse};
use crate::support::{code_of, create_bucket, private, sdk_config, Gateway, CLIENT_AKID, CLIENT_SECRET};
use issuer::{now, Issuer, Signer};

pub const BUCKET: &str = "sts-bucket";
pub const CI_ROLE: &str = "arn:aws:iam::000000000000:role/ci-writer";
pub const HOME_ROLE: &str = "arn:aws:iam::000000000000:role/home";
const SESSION_KEY: [u8; 32] = [0x5a; 32];

/// The gateway's config: STS on, the issuer trusted for `ci-writer` (subjects `repo:acme/*`,
/// bucket `sts-bucket` only), and `home` for the test's own credential (its session's home
/// folder only, by `${aws:userid}`).
/// `provider`: more `[[oidc_provider]]` settings (`key = value` lines).
pub fn sts_toml(issuer: &Issuer, key_file: &std::path::Path, provider: &str) -> String {
    format!(
        r#"
[sts]
enabled = true
session_key_file = "{key}"

[[oidc_provider]]
issuer = "{iss}"
ca_file = "{ca}"
{provider}

[[role]]
arn = "{CI_ROLE}"
trust = {{ issuer = "{iss}", audience = "s3gate", subject = "repo:acme/*" }}
max_session_seconds = 3600
policy = '''{{"Version": "2012-10-17", "Statement": [{{"Effect": "Allow", "Action": "s3:*",
  "Resource": ["arn:aws:s3:::{BUCKET}", "arn:aws:s3:::{BUCKET}/*"]}}]}}'''

[[role]]
arn = "{HOME_ROLE}"
trust = {{ access_keys = ["{CLIENT_AKID}"] }}
max_session_seconds = 7200
policy = '''{{"Version": "2012-10-17", "Statement": [
  {{"Effect": "Allow", "Action": ["s3:PutObject", "s3:GetObject"],
    "Resource": "arn:aws:s3:::{BUCKET}/home/${{aws:PrincipalTag/team}}/${{aws:rolesessionname}}/*"}},
  {{"Effect": "Allow", "Action": "s3:ListBucket", "Resource": "arn:aws:s3:::{BUCKET}"}}]}}'''
"#,
        key = key_file.display(),
        iss = issuer.url,
        ca = issuer.ca_file.display(),
    )
}

/// A gateway with STS in front of a store holding `sts-bucket`, and the issuer it trusts.
pub async fn start() -> (Gateway, Issuer, tempfile::TempDir) {
    start_with(|_| {}).await
}

/// [`start`], with more settings; its audit log is `audit.log` in the directory returned.
pub async fn start_with(tweak: impl FnOnce(&mut s3gate::config::ServeArgs)) -> (Gateway, Issuer, tempfile::TempDir) {
    start_with_provider("", tweak).await
}

/// `DIR/session.key` holding [`SESSION_KEY`], private as s3gate requires.
pub fn session_key_file(dir: &std::path::Path) -> std::path::PathBuf {
    let key_file = dir.join("session.key");
    std::fs::write(&key_file, hex::encode(SESSION_KEY)).expect("write key");
    private(&key_file);
    key_file
}

/// [`start_with`], with more `[[oidc_provider]]` settings.
pub async fn start_with_provider(
    provider: &str,
    tweak: impl FnOnce(&mut s3gate::config::ServeArgs),
) -> (Gateway, Issuer, tempfile::TempDir) {
    let issuer = Issuer::start().await;
    let dir = tempfile::tempdir().expect("dir");
    let key_file = session_key_file(dir.path());
    let audit = dir.path().join("audit.log").display().to_string();
    let gw = Gateway::start_with_toml(&sts_toml(&issuer, &key_file, provider), |a| {
        a.audit_log = Some(audit);
        tweak(a);
    })
    .await;
    create_bucket(&gw.client(), BUCKET).await;
    (gw, issuer, dir)
}

/// POSTs an STS form, unsigned.
pub async fn sts_post(gw: &Gateway, form: &str) -> RawResponse {
    let mut req = raw::request("POST", gw.addr(), "/");
    req.headers_mut().insert("content-type", HeaderValue::from_static("application/x-www-form-urlencoded"));
    raw::send(req, form.to_owned()).await
}

fn web_identity_form(role: &str, token: &str) -> String {
    format!(
        "Action=AssumeRoleWithWebIdentity&Version=2011-06-15&RoleArn={}&RoleSessionName=job-7&WebIdentityToken={token}",
        urlencode(role)
    )
}

fn urlencode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// The text of the first `<name>` element.
pub fn element<'a>(xml: &'a str, name: &str) -> &'a str {
    let open = format!("<{name}>");
    let start = xml.find(&open).map(|i| i + open.len()).unwrap_or_else(|| panic!("no <{name}> in {xml}"));
    let end = xml[start..].find(&format!("</{name}>")).expect("closed") + start;
    &xml[start..end]
}

/// The temporary credentials in an STS answer.
pub fn credentials(xml: &str) -> (String, String, String) {
    (element(xml, "AccessKeyId").into(), element(xml, "SecretAccessKey").into(), element(xml, "SessionToken").into())
}

fn session_client(gw: &Gateway, (akid, secret, token): &(String, String, String)) -> aws_sdk_s3::Client {
    let creds = Credentials::new(akid, secret, Some(token.clone()), None, "sts");
    aws_sdk_s3::Client::from_conf(sdk_config(&gw.url, akid, secret, None).credentials_provider(creds).build())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn web_identity_credentials_work_for_s3_within_the_role() {
    let (gw, issuer, _dir) = start().await;
    for signer in [Signer::Rsa, Signer::Ec] {
        let token = issuer.token(signer, &issuer.claims("repo:acme/app:ref:main"));
        let resp = sts_post(&gw, &web_identity_form(CI_ROLE, &token)).await;
        assert_eq!(resp.status, 200, "{signer:?}: {}", resp.body);
        assert!(resp
            .body
            .contains(r#"<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">"#));
        assert_eq!(element(&resp.body, "SubjectFromWebIdentityToken"), "repo:acme/app:ref:main");
        assert_eq!(element(&resp.body, "Audience"), "s3gate");
        assert_eq!(element(&resp.body, "Arn"), "arn:aws:sts::000000000000:assumed-role/ci-writer/job-7");
        let creds = credentials(&resp.body);
        assert!(creds.0.starts_with("ASIA"), "{}", creds.0);

        let s3 = session_client(&gw, &creds);
        let key = format!("{signer:?}.txt");
        s3.put_object().bucket(BUCKET).key(&key).body(b"from CI".to_vec().into()).send().await.expect("put");
        let got = s3.get_object().bucket(BUCKET).key(&key).send().await.expect("get");
        assert_eq!(got.body.collect().await.expect("body").into_bytes().as_ref(), b"from CI");
        let outside = s3.create_bucket().bucket("not-the-roles").send().await.expect_err("outside the role");
        assert_eq!(code_of(&outside), "AccessDenied");
    }
    assert_eq!(issuer.jwks_fetches.load(Ordering::SeqCst), 1, "the keys are fetched once and cached");
    let record = audit_record(&_dir, "Rsa.txt").await;
    assert_eq!(record["session"]["role"], CI_ROLE);
    assert_eq!(record["session"]["session_name"], "job-7");
    assert_eq!(record["session"]["subject"], "repo:acme/app:ref:main");
    assert_eq!(record["session"]["issuer"], issuer.url.as_str());
    let stored: Vec<_> = gw.upstream.stored_paths("not-the-roles");
    assert!(stored.is_empty(), "{stored:?}");
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_expired_and_misdirected_web_identity_tokens_get_sts_codes() {
    let (gw, issuer, _dir) = start().await;
    let good = issuer.claims("repo:acme/app");
    let with = |field: &str, value: serde_json::Value| {
        let mut c = good.clone();
        c[field] = value;
        c
    };
    let good_token = issuer.token(Signer::Rsa, &good);
    let (head, rest) = good_token.split_once('.').expect("a JWT");
    let signature = rest.split_once('.').expect("a JWT").1;
    let forged_payload = URL_SAFE_NO_PAD.encode(with("sub", json!("repo:acme/evil")).to_string());
    let none_header = URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#);
    let payload = URL_SAFE_NO_PAD.encode(good.to_string());
    let hs256 = {
        // HS256 with the RSA key's public modulus as the secret: the classic key-confusion forgery.
        let header = jsonwebtoken::Header {
            kid: Some("rsa1".into()),
            ..jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256)
        };
        let secret = include_str!("sts/test-rsa-key.n").trim();
        jsonwebtoken::encode(&header, &good, &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes())).expect("hs256")
    };
    let cases: Vec<(&str, String, &str, u16)> = vec![
        ("wrong audience", issuer.token(Signer::Rsa, &with("aud", json!("another-app"))), "InvalidIdentityToken", 400),
        (
            "wrong issuer",
            issuer.token(Signer::Rsa, &with("iss", json!("https://idp.evil.example"))),
            "InvalidIdentityToken",
            400,
        ),
        ("expired", issuer.token(Signer::Ec, &with("exp", json!(now() - 3600))), "ExpiredTokenException", 400),
        (
            "issued in the future",
            issuer.token(Signer::Ec, &with("iat", json!(now() + 3600))),
            "InvalidIdentityToken",
            400,
        ),
        ("alg none", format!("{none_header}.{payload}."), "InvalidIdentityToken", 400),
        ("a key not in the JWKS", issuer.token(Signer::Stranger, &good), "InvalidIdentityToken", 400),
        ("tampered payload", format!("{head}.{forged_payload}.{signature}"), "InvalidIdentityToken", 400),
        ("HS256 with the public key", hs256, "InvalidIdentityToken", 400),
        (
            "subject outside the trust",
            issuer.token(Signer::Rsa, &with("sub", json!("repo:other/app"))),
            "AccessDenied",
            403,
        ),
        ("not a JWT", "abcd.efgh".to_owned(), "InvalidIdentityToken", 400),
    ];
    for (what, token, code, status) in cases {
        let resp = sts_post(&gw, &web_identity_form(CI_ROLE, &token)).await;
        assert_eq!((resp.code(), resp.status.as_u16()), (code, status), "{what}: {}", resp.body);
        assert!(
            resp.body.contains("<ErrorResponse") && resp.body.contains("<Type>Sender</Type>"),
            "{what}: {}",
            resp.body
        );
        assert!(!resp.body.contains("SessionToken"), "{what}: credentials issued");
    }
    let unknown_role = sts_post(&gw, &web_identity_form("arn:aws:iam::000000000000:role/nope", &good_token)).await;
    assert_eq!((unknown_role.code(), unknown_role.status.as_u16()), ("AccessDenied", 403));
    let user_role = sts_post(&gw, &web_identity_form(HOME_ROLE, &good_token)).await;
    assert_eq!(user_role.code(), "AccessDenied", "a role that trusts no issuer: {}", user_role.body);
    let long = sts_post(&gw, &web_identity_form(CI_ROLE, &"a".repeat(20_001))).await;
    assert_eq!(long.code(), "ValidationError");
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_sts_forms_get_clear_sts_errors() {
    let (gw, _issuer, _dir) = start().await;
    let cases = [
        ("Version=2011-06-15", "MissingParameter", 400),
        ("Action=CreateUser&Version=2011-06-15", "InvalidAction", 400),
        ("Action=GetSessionToken&Version=2010-05-08", "InvalidAction", 400),
        ("Action=GetSessionToken&Action=AssumeRole&Version=2011-06-15", "ValidationError", 400),
        ("Action=GetSessionToken&Version=2011-06-15", "MissingAuthenticationToken", 403),
        ("Action=AssumeRoleWithWebIdentity&Version=2011-06-15&RoleArn=x", "MissingParameter", 400),
        ("Action=%ZZ&Version=2011-06-15", "InvalidAction", 400),
    ];
    for (form, code, status) in cases {
        let resp = sts_post(&gw, form).await;
        assert_eq!((resp.code(), resp.status.as_u16()), (code, status), "{form}: {}", resp.body);
    }
    let huge = format!("Action=AssumeRoleWithWebIdentity&Version=2011-06-15&WebIdentityToken={}", "a".repeat(70_000));
    let resp = sts_post(&gw, &huge).await;
    assert_eq!((resp.code(), resp.status.as_u16()), ("RequestEntityTooLarge", 413), "{}", resp.body);

    // A key that does not exist, and a forged signature with one that does.
    let date = raw::amz_date(std::time::SystemTime::now());
    for (akid, code) in [("NOSUCHKEY", "InvalidClientTokenId"), (CLIENT_AKID, "SignatureDoesNotMatch")] {
        let mut req = raw::request("POST", gw.addr(), "/");
        req.headers_mut().insert("content-type", HeaderValue::from_static("application/x-www-form-urlencoded"));
        let auth = format!(
            "AWS4-HMAC-SHA256 Credential={akid}/{}/us-east-1/sts/aws4_request, SignedHeaders=host;x-amz-date, Signature={}",
            &date[..8],
            "0".repeat(64)
        );
        req.headers_mut().insert("authorization", HeaderValue::from_str(&auth).expect("header"));
        req.headers_mut().insert("x-amz-date", HeaderValue::from_str(&date).expect("date"));
        let resp = raw::send(req, "Action=GetSessionToken&Version=2011-06-15").await;
        assert_eq!((resp.code(), resp.status.as_u16()), (code, 403), "{akid}: {}", resp.body);
    }
    gw.stop().await;
}

/// The audit record of the PutObject of `key`; records are written as responses finish, so this
/// waits (briefly) for it.
async fn audit_record(dir: &tempfile::TempDir, key: &str) -> serde_json::Value {
    let path = dir.path().join("audit.log");
    for _ in 0..100 {
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let found = text
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .find(|r| r["key"] == key && r["operation"] == "PutObject");
        if let Some(record) = found {
            assert!(!text.contains("SessionToken") && !text.contains("x-amz-security-token"));
            return record;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("no audit record for {key}");
}

/// A good session of the `ci-writer` role, through the issuer.
async fn ci_session(gw: &Gateway, issuer: &Issuer) -> (String, String, String) {
    let token = issuer.token(Signer::Rsa, &issuer.claims("repo:acme/app"));
    let resp = sts_post(gw, &web_identity_form(CI_ROLE, &token)).await;
    assert_eq!(resp.status, 200, "{}", resp.body);
    credentials(&resp.body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn altered_expired_foreign_and_borrowed_session_tokens_are_refused_and_store_nothing() {
    let (gw, issuer, _dir) = start().await;
    let (akid, secret, token) = ci_session(&gw, &issuer).await;
    let put = |creds: (String, String, String), key: &'static str| {
        let s3 = session_client(&gw, &creds);
        async move { s3.put_object().bucket(BUCKET).key(key).body(b"x".to_vec().into()).send().await }
    };

    let mut altered = token.clone().into_bytes();
    let mid = altered.len() / 2;
    altered[mid] = if altered[mid] == b'A' { b'B' } else { b'A' };
    let altered = String::from_utf8(altered).expect("ascii");
    let e = put((akid.clone(), secret.clone(), altered), "altered").await.expect_err("altered token");
    assert_eq!(code_of(&e), "InvalidToken");

    // The same claims, sealed with a key this gateway does not hold, and sealed with its own key
    // but already expired: the test knows the key, as an attacker who stole it would.
    let ours = SessionKeys::new(vec![SessionKey::new(SESSION_KEY)]).expect("keys");
    let mut claims: SessionClaims = ours.open(&token, now()).expect("the gateway's own token opens");
    let foreign = SessionKeys::new(vec![SessionKey::new([1; 32])]).expect("keys").seal(&claims);
    let e = put((akid.clone(), secret.clone(), foreign), "foreign").await.expect_err("foreign key");
    assert_eq!(code_of(&e), "InvalidToken");
    claims.expires = now() - 1;
    let expired = ours.seal(&claims);
    let e = put((akid.clone(), secret.clone(), expired), "expired").await.expect_err("expired token");
    assert_eq!(code_of(&e), "ExpiredToken");

    // Someone else's token with a long-term key, and the token with a made-up key id.
    let e = put((CLIENT_AKID.into(), CLIENT_SECRET.into(), token.clone()), "borrowed").await.expect_err("borrowed");
    assert_eq!(code_of(&e), "InvalidAccessKeyId");
    let e = put(("ASIAMADEUP0000000000".into(), secret.clone(), token.clone()), "made-up").await.expect_err("made up");
    assert_eq!(code_of(&e), "InvalidAccessKeyId");

    // The session's own signature, with the token added after signing: the signature does not
    // vouch for it, so it could be anyone's.
    let mut req = raw::request("PUT", gw.addr(), &format!("/{BUCKET}/unsigned-token"));
    raw::sign_as(&mut req, &raw::sha256_hex(b"x"), std::time::SystemTime::now(), &akid, &secret);
    req.headers_mut().insert("x-amz-security-token", HeaderValue::from_str(&token).expect("token"));
    let resp = raw::send(req, "x").await;
    assert_eq!((resp.status.as_u16(), resp.code()), (403, "AccessDenied"), "{}", resp.body);
    assert!(resp.body.contains("x-amz-security-token"), "{}", resp.body);

    for key in ["altered", "foreign", "expired", "borrowed", "made-up", "unsigned-token"] {
        assert!(gw.upstream.stored_paths(key).is_empty(), "{key} reached the store");
    }
    // The good session still works.
    put((akid, secret, token), "good").await.expect("the real session works");
    assert_eq!(gw.upstream.stored_paths("good").len(), 1);
    gw.stop().await;
}

#[test]
fn sts_configuration_mistakes_are_refused_naming_the_setting() {
    use s3gate::config::{Config, FileUse, Files, ServeArgs};
    let args = ServeArgs { credentials: vec![format!("{CLIENT_AKID}:{CLIENT_SECRET}")], ..Default::default() };
    let policy = r#"policy = '{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}]}'"#;
    let provider = "[[oidc_provider]]\nissuer = \"https://idp.example\"\n";
    let check = |env: &[(&str, &str)], toml: &str| {
        let env = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let mut files = Files::default();
        files.insert("/keys/session.key", FileUse::Secret, "ab".repeat(32));
        Config::resolve(&args, &env, Some(toml)).and_then(|r| Config::validate_with(r, &files))
    };
    let cases = [
        (vec![], "[sts]\nenabled = true\n".to_owned(), "session key"),
        (vec![("S3GATE_STS_SESSION_KEY", "abcd")], "[sts]\nenabled = true\n".to_owned(), "sts-session-key"),
        (
            vec![],
            format!(
                "[[role]]\narn = \"{CI_ROLE}\"\ntrust = {{ issuer = \"https://other\", audience = \"a\" }}\n{policy}\n"
            ),
            "not an [[oidc_provider]]",
        ),
        (
            vec![],
            format!(
                "{provider}[[role]]\narn = \"{CI_ROLE}\"\ntrust = {{ issuer = \"https://idp.example\" }}\n{policy}\n"
            ),
            "audience",
        ),
        (vec![], format!("[[role]]\narn = \"{CI_ROLE}\"\ntrust = {{ access_keys = [\"K\"] }}\n"), "policy"),
        (vec![], format!("[[role]]\narn = \"{CI_ROLE}\"\ntrust = {{}}\n{policy}\n"), "nobody could assume it"),
        (
            vec![],
            format!("[[role]]\narn = \"arn:aws:s3:::bucket\"\ntrust = {{ access_keys = [\"K\"] }}\n{policy}\n"),
            "arn must be",
        ),
        (vec![], "[[oidc_provider]]\nissuer = \"http://idp.example\"\n".to_owned(), "https://"),
        (
            vec![],
            "[[route]]\nbucket = \"b-*\"\nupstream_role_arn = \"arn:aws:s3:::b\"\n".to_owned(),
            "route #1 (\"b-*\"): upstream_role_arn must be arn:aws:iam::<account>:role/<name>",
        ),
        (
            vec![],
            "[[route]]\nbucket = \"b-*\"\nupstream_external_id = \"ext-1\"\n".to_owned(),
            "upstream_external_id needs an upstream_role_arn",
        ),
        (
            vec![],
            format!("[[route]]\nbucket = \"b-*\"\nupstream_role_arn = \"{CI_ROLE}\"\nupstream_external_id = \"x\"\n"),
            "upstream_external_id must be 2 to 1224",
        ),
        (
            vec![],
            format!("{provider}jwks_min_refresh_seconds = 60\njwks_cache_seconds = 30\n"),
            "jwks_min_refresh_seconds must not exceed jwks_cache_seconds",
        ),
        (vec![], format!("{provider}jwks_cache_seconds = 0\n"), "jwks_cache_seconds must be at least 1"),
    ];
    for (env, toml, expected) in cases {
        let err = check(&env, &toml).expect_err(&toml);
        assert!(err.to_string().contains(expected), "{toml}: {err}");
    }
    let ok = check(&[], "[sts]\nenabled = true\nsession_key_file = \"/keys/session.key\"\n").expect("valid");
    assert!(ok.sts.enabled && ok.sts.keys.is_some());

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("dir");
        let key = dir.path().join("session.key");
        std::fs::write(&key, "ab".repeat(32)).expect("write");
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let mut args = args.clone();
        args.sts.sts_session_key_file = Some(key);
        let err = Config::load(&args, &Default::default()).expect_err("a readable key file");
        assert!(err.to_string().contains("readable by others"), "{err}");
    }
}

/// A session of the test's own credential, sealed with the gateway's key as its STS would seal
/// one (GetSessionToken): the verification path on its own, with no issuer involved.
fn user_session(expires_in: i64) -> (String, String, String) {
    let claims = SessionClaims {
        access_key_id: s3gate::session::new_access_key_id(),
        secret: s3gate::session::new_secret(),
        issued: now(),
        expires: now() + expires_in,
        parent: Some(CLIENT_AKID.to_owned()),
        role: None,
        session_name: None,
        issuer: None,
        subject: None,
        source_identity: None,
        tags: Vec::new(),
        policy: None,
    };
    let token = SessionKeys::new(vec![SessionKey::new(SESSION_KEY)]).expect("keys").seal(&claims);
    (claims.access_key_id.clone(), claims.secret.0.clone(), token)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_tokens_never_go_upstream_in_headers_or_presigned_urls() {
    use crate::support::recorder::Recorder;
    let recorder = Recorder::ok().await;
    let dir = tempfile::tempdir().expect("dir");
    let key_file = session_key_file(dir.path());
    let mut args = crate::support::base_args(&recorder.url());
    args.sts.sts_session_key_file = Some(key_file);
    let config = s3gate::config::Config::load(&args, &Default::default()).expect("config");
    let running = s3gate::start(config).await.expect("gateway starts");
    let url = format!("http://{}", running.addr);

    let (akid, secret, token) = user_session(600);
    let creds = Credentials::new(&akid, &secret, Some(token.clone()), None, "sts");
    let s3 = aws_sdk_s3::Client::from_conf(sdk_config(&url, &akid, &secret, None).credentials_provider(creds).build());
    s3.put_object().bucket("logs").key("k").body(b"x".to_vec().into()).send().await.expect("put with a session");
    let presigning =
        aws_sdk_s3::presigning::PresigningConfig::expires_in(std::time::Duration::from_secs(300)).expect("config");
    let presigned = s3.get_object().bucket("logs").key("k").presigned(presigning).await.expect("presign");
    let presigned = presigned.uri().to_owned();
    assert!(presigned.contains("X-Amz-Security-Token="), "{presigned}");
    let resp = raw::send(http::Request::get(presigned.as_str()).body(()).expect("request"), "").await;
    assert_eq!(resp.status, 200, "{}", resp.body);

    let seen = recorder.requests();
    assert_eq!(seen.len(), 2, "the upload and the presigned download reached the upstream");
    for r in &seen {
        assert!(r.header("x-amz-security-token").is_none(), "{} carried a token upstream", r.target);
        assert!(!r.target.contains("Security-Token") && !r.target.contains(&token[..20]), "{}", r.target);
        assert!(!r.headers.iter().any(|(_, v)| v.as_bytes().windows(20).any(|w| w == &token.as_bytes()[..20])));
    }

    // The same URL with the token altered, and an expired session's URL: refused, never sent.
    recorder.clear();
    let altered = presigned.replacen("X-Amz-Security-Token=", "X-Amz-Security-Token=A", 1);
    let resp = raw::send(http::Request::get(altered.as_str()).body(()).expect("request"), "").await;
    assert_eq!((resp.status.as_u16(), resp.code()), (400, "InvalidToken"), "{}", resp.body);
    let (akid, secret, expired) = user_session(-1);
    let creds = Credentials::new(&akid, &secret, Some(expired), None, "sts");
    let old = aws_sdk_s3::Client::from_conf(sdk_config(&url, &akid, &secret, None).credentials_provider(creds).build());
    let e = old.get_object().bucket("logs").key("k").send().await.expect_err("an expired session");
    assert_eq!(code_of(&e), "ExpiredToken");
    assert!(recorder.requests().is_empty(), "a refused request reached the upstream");
    running.stop().await;
}
