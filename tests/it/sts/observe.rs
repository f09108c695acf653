//! What operators see of the STS: `s3gate_sts_requests_total{action,role,result}` for every
//! call and `s3gate_session_requests_total{role,status_class}` for every S3 request made with
//! temporary credentials, labelled with declared roles only (never a session name or a
//! subject), and one audit record per STS call naming the role, the session name, the subject
//! and the result.

use http::HeaderValue;
use serde_json::{json, Value};

use super::issuer::{now, Signer};
use super::{credentials, session_client, start_with, sts_post, web_identity_form, BUCKET, CI_ROLE, HOME_ROLE};
use crate::observe::{sample, scrape};
use crate::support::raw::{self, RawResponse};
use crate::support::{code_of, CLIENT_AKID, CLIENT_SECRET};

const NO_SUCH_ROLE: &str = "arn:aws:iam::000000000000:role/nope";

/// An STS action signed (service `sts`) with the test's s3gate credential.
async fn signed(addr: std::net::SocketAddr, form: &str) -> RawResponse {
    let mut req = raw::request("POST", addr, "/");
    req.headers_mut().insert("content-type", HeaderValue::from_static("application/x-www-form-urlencoded"));
    let hash = raw::sha256_hex(form.as_bytes());
    raw::sign_for("sts", &mut req, &hash, std::time::SystemTime::now(), CLIENT_AKID, CLIENT_SECRET);
    raw::send(req, form.to_owned()).await
}

/// A sample expected: metric name, labels, value.
type Sample<'a> = (&'a str, Vec<(&'a str, &'a str)>, f64);

/// Scrapes until every sample expected is there: a request's record and metrics are written as
/// its answer finishes, which may be just after the client has read it.
async fn metrics_with(addr: std::net::SocketAddr, expected: &[Sample<'_>]) -> String {
    let mut text = String::new();
    for _ in 0..200 {
        text = scrape(addr).await;
        if expected.iter().all(|(name, labels, value)| sample(&text, name, labels) == Some(*value)) {
            return text;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    for (name, labels, value) in expected {
        assert_eq!(sample(&text, name, labels), Some(*value), "{name} {labels:?}\n{text}");
    }
    text
}

/// The audit records of STS calls, once there are `n` of them.
async fn sts_records(dir: &tempfile::TempDir, n: usize) -> Vec<Value> {
    let path = dir.path().join("audit.log");
    let mut records = Vec::new();
    for _ in 0..200 {
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        records = text
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|r| r["action"].as_str().is_some_and(|a| a.starts_with("sts:")))
            .collect();
        if records.len() >= n {
            return records;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("{} STS audit records, expected {n}: {records:?}", records.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sts_calls_and_session_requests_are_counted_by_declared_role_and_audited_by_who() {
    let (gw, issuer, dir) = start_with(|a| a.metrics_listen = Some("127.0.0.1:0".into())).await;
    let metrics_addr = gw.running.as_ref().and_then(|r| r.metrics_addr).expect("metrics listener");

    // Web identities: one that works, one the role's trust refuses, one for a role nobody
    // declared, one expired.
    let token = issuer.token(Signer::Rsa, &issuer.claims("repo:acme/app"));
    let ok = sts_post(&gw, &web_identity_form(CI_ROLE, &token)).await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    let ci = credentials(&ok.body);
    let outsider = issuer.token(Signer::Rsa, &issuer.claims("repo:other/app"));
    assert_eq!(sts_post(&gw, &web_identity_form(CI_ROLE, &outsider)).await.code(), "AccessDenied");
    assert_eq!(sts_post(&gw, &web_identity_form(NO_SUCH_ROLE, &token)).await.code(), "AccessDenied");
    let mut expired = issuer.claims("repo:acme/app");
    expired["exp"] = json!(now() - 3600);
    let expired = issuer.token(Signer::Ec, &expired);
    assert_eq!(sts_post(&gw, &web_identity_form(CI_ROLE, &expired)).await.code(), "ExpiredTokenException");
    // AssumeRole and GetSessionToken with the long-term key; an action s3gate does not answer.
    let role_form = format!(
        "Action=AssumeRole&Version=2011-06-15&RoleArn={}&RoleSessionName=carol&Tags.member.1.Key=team&Tags.member.1.Value=red",
        super::urlencode(HOME_ROLE)
    );
    let assumed = signed(gw.addr(), &role_form).await;
    assert_eq!(assumed.status, 200, "{}", assumed.body);
    let gst = signed(gw.addr(), "Action=GetSessionToken&Version=2011-06-15").await;
    assert_eq!(gst.status, 200, "{}", gst.body);
    assert_eq!(sts_post(&gw, "Action=CreateUser&Version=2011-06-15").await.code(), "InvalidAction");

    // S3 with the sessions: allowed, refused by the role's policy, a token altered.
    let s3 = session_client(&gw, &ci);
    s3.put_object().bucket(BUCKET).key("observed.txt").body(b"x".to_vec().into()).send().await.expect("put");
    let e = s3.create_bucket().bucket("not-the-roles").send().await.expect_err("outside the role");
    assert_eq!(code_of(&e), "AccessDenied");
    let user = session_client(&gw, &credentials(&gst.body));
    user.put_object().bucket(BUCKET).key("user.txt").body(b"x".to_vec().into()).send().await.expect("put");
    let (akid, secret, token) = credentials(&gst.body);
    let altered = session_client(&gw, &(akid, secret, format!("A{token}")));
    let e = altered.get_object().bucket(BUCKET).key("user.txt").send().await.expect_err("altered token");
    assert_eq!(code_of(&e), "InvalidToken");
    gw.client().put_object().bucket(BUCKET).key("plain.txt").body(b"x".to_vec().into()).send().await.expect("put");

    let sts = "s3gate_sts_requests_total";
    let web = "AssumeRoleWithWebIdentity";
    let sessions = "s3gate_session_requests_total";
    let text = metrics_with(
        metrics_addr,
        &[
            (sts, vec![("action", web), ("role", CI_ROLE), ("result", "ok")], 1.0),
            (sts, vec![("action", web), ("role", CI_ROLE), ("result", "AccessDenied")], 1.0),
            (sts, vec![("action", web), ("role", "unknown"), ("result", "AccessDenied")], 1.0),
            (sts, vec![("action", web), ("role", CI_ROLE), ("result", "ExpiredTokenException")], 1.0),
            (sts, vec![("action", "AssumeRole"), ("role", HOME_ROLE), ("result", "ok")], 1.0),
            (sts, vec![("action", "GetSessionToken"), ("role", "none"), ("result", "ok")], 1.0),
            (sts, vec![("action", "other"), ("role", "unknown"), ("result", "InvalidAction")], 1.0),
            (sessions, vec![("role", CI_ROLE), ("status_class", "2xx")], 1.0),
            (sessions, vec![("role", CI_ROLE), ("status_class", "4xx")], 1.0),
            (sessions, vec![("role", "none"), ("status_class", "2xx")], 1.0),
            (sessions, vec![("role", "unknown"), ("status_class", "4xx")], 1.0),
        ],
    )
    .await;
    let total = |name: &str| -> f64 {
        text.lines()
            .filter(|l| l.starts_with(&format!("{name}{{")))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    assert_eq!(total(sts), 7.0, "every STS call, once:\n{text}");
    assert_eq!(total(sessions), 4.0, "only requests with temporary credentials:\n{text}");
    for private in ["repo:acme", "repo:other", "job-7", "carol", NO_SUCH_ROLE] {
        assert!(!text.contains(private), "{private} in a label:\n{text}");
    }

    // The audit log names who: the role, the session name, the subject, the result.
    let records = sts_records(&dir, 7).await;
    let of = |i: usize, field: &str| records[i]["session"][field].as_str().unwrap_or_default().to_owned();
    assert_eq!(records.len(), 7, "{records:?}");
    let actions: Vec<&str> = records.iter().map(|r| r["action"].as_str().unwrap_or_default()).collect();
    assert_eq!(
        actions,
        [
            "sts:AssumeRoleWithWebIdentity",
            "sts:AssumeRoleWithWebIdentity",
            "sts:AssumeRoleWithWebIdentity",
            "sts:AssumeRoleWithWebIdentity",
            "sts:AssumeRole",
            "sts:GetSessionToken",
            "sts:other"
        ]
    );
    assert_eq!((records[0]["status"].as_u64(), records[0]["error_code"].as_str()), (Some(200), None));
    assert_eq!([of(0, "role"), of(0, "session_name"), of(0, "subject")], [CI_ROLE, "job-7", "repo:acme/app"]);
    assert_eq!(of(0, "issuer"), issuer.url);
    assert_eq!(records[1]["error_code"], "AccessDenied");
    assert_eq!([of(1, "role"), of(1, "session_name"), of(1, "subject")], [CI_ROLE, "job-7", "repo:other/app"]);
    assert_eq!((of(2, "role"), records[2]["error_code"].as_str()), (NO_SUCH_ROLE.into(), Some("AccessDenied")));
    assert_eq!(of(2, "subject"), "", "a subject is named only once its token is verified");
    assert_eq!(records[3]["error_code"], "ExpiredTokenException");
    assert_eq!([of(4, "role"), of(4, "session_name"), of(4, "parent")], [HOME_ROLE, "carol", CLIENT_AKID]);
    assert_eq!(records[4]["access_key_id"], CLIENT_AKID);
    assert_eq!((of(5, "role"), of(5, "parent")), (String::new(), CLIENT_AKID.to_owned()));
    assert_eq!((records[6]["status"].as_u64(), records[6]["error_code"].as_str()), (Some(400), Some("InvalidAction")));
    let log = std::fs::read_to_string(dir.path().join("audit.log")).expect("audit log");
    let tail = |t: &str| t[t.len() - 40..].to_owned();
    for secret in [tail(&token), tail(&outsider), ci.1.clone(), tail(&ci.2)] {
        assert!(!log.contains(&secret), "a token or secret in the audit log");
    }
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_sts_call_is_recorded_within_stss_own_limits() {
    let (gw, issuer, dir) = super::start().await;
    let token = issuer.token(Signer::Rsa, &issuer.claims("repo:acme/app"));
    let huge_role = format!("arn:aws:iam::000000000000:role/{}", "r".repeat(20_000));
    let form = format!(
        "Action=AssumeRoleWithWebIdentity&Version=2011-06-15&RoleArn={huge_role}&RoleSessionName={}&WebIdentityToken={token}",
        "s".repeat(20_000)
    );
    let resp = sts_post(&gw, &form).await;
    assert_eq!(resp.code(), "ValidationError", "{}", resp.body);
    let records = sts_records(&dir, 1).await;
    let session = &records[0]["session"];
    assert_eq!(session["role"].as_str().map(str::len), Some(2048), "RoleArn is at most 2048 characters in STS");
    assert_eq!(session["session_name"].as_str().map(str::len), Some(64));
    gw.stop().await;
}
