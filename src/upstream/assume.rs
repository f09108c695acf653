//! A separate upstream identity per client: when a session's role, a client credential or a
//! route names an `upstream_role_arn` (which one applies: `proxy/send.rs`), s3gate asks the
//! upstream STS for that role's credentials with its own base credentials, passing
//! `SourceIdentity` and session tags that name the client, so that CloudTrail and the bucket
//! policy see each user rather than s3gate. Credentials are cached per (role, client) and
//! fetched again five minutes before they expire.
//!
//! The STS call is one form POST, signed with the upstream signer (`sigv4::sign_upstream_for`)
//! and read with quick-xml: the `aws-sdk-sts` crate would do the same for a long compile.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use tokio::sync::Mutex;

use super::Upstream;
use crate::session::SessionClaims;

/// Fetched again this long before they expire, so no request signs with credentials that
/// lapse on the way.
const REFRESH_BEFORE_EXPIRY: Duration = Duration::from_secs(300);
const MAX_ANSWER: usize = 64 * 1024;
/// The longest a role session lasts by default in AWS: an hour.
const DURATION_SECONDS: u64 = 3600;

#[derive(Debug, thiserror::Error)]
pub enum AssumeError {
    #[error("the upstream STS could not be reached: {0}")]
    Unreachable(String),
    #[error("the upstream STS refused AssumeRole: {status} {code}")]
    Refused { status: u16, code: String },
    #[error("the upstream STS answer has no credentials")]
    Malformed,
    #[error("signing the upstream STS request failed: {0}")]
    Sign(String),
}

/// What to assume upstream, and for whom.
pub struct AssumeRequest<'a> {
    pub role_arn: &'a str,
    pub external_id: Option<&'a str>,
    pub client: Client,
}

/// The client as the upstream sees it: the cache key, the session name, the source identity
/// and the tags.
pub struct Client {
    id: String,
    session_name: String,
    source_identity: String,
    tags: Vec<(&'static str, String)>,
}

impl Client {
    /// A session of s3gate's STS: named by its session name, its caller's source identity (else
    /// the web identity's subject, else the s3gate credential), and tagged with the s3gate role,
    /// session name and subject.
    pub fn session(s: &SessionClaims) -> Self {
        let who = s.subject.as_deref().or(s.parent.as_deref()).unwrap_or_default();
        let session_name = name(s.session_name.as_deref().or(s.parent.as_deref()).unwrap_or("s3gate"));
        let source = s.source_identity.as_deref().or(s.subject.as_deref()).or(s.parent.as_deref());
        let mut tags = vec![("s3gate-session", session_name.clone())];
        if let Some(role) = &s.role {
            tags.push(("s3gate-role", tag_value(role.rsplit('/').next().unwrap_or_default())));
        }
        if let Some(sub) = &s.subject {
            tags.push(("s3gate-subject", tag_value(sub)));
        }
        Self {
            id: format!("session|{who}|{}", s.session_name.as_deref().unwrap_or_default()),
            session_name,
            source_identity: name(source.unwrap_or("s3gate")),
            tags,
        }
    }

    /// A long-term s3gate credential: named by its access key id.
    pub fn credential(access_key_id: &str) -> Self {
        Self {
            id: format!("credential|{access_key_id}"),
            session_name: name(access_key_id),
            source_identity: name(access_key_id),
            tags: vec![("s3gate-credential", tag_value(access_key_id))],
        }
    }
}

/// Upstream role credentials by (role ARN, client).
#[derive(Default)]
pub struct AssumedRoles {
    endpoint: Option<http::Uri>,
    /// One slot per (role, client); each slot's lock is held across its own fetch only.
    cache: std::sync::Mutex<HashMap<(String, String), Slot>>,
}

/// The credentials of one (role, client), behind the lock its fetch holds.
type Slot = Arc<Mutex<Option<Credentials>>>;

impl AssumedRoles {
    /// `endpoint`: the upstream STS (`https://sts.<region>.amazonaws.com`, or an S3-compatible
    /// store's).
    pub fn new(endpoint: Option<http::Uri>) -> Self {
        Self { endpoint, cache: std::sync::Mutex::default() }
    }

    /// Credentials of `req.role_arn` for this client, from the cache or the upstream STS.
    pub async fn credentials(
        &self,
        upstream: &Upstream,
        base: &Credentials,
        req: &AssumeRequest<'_>,
    ) -> Result<Credentials, AssumeError> {
        let key = (req.role_arn.to_owned(), req.client.id.clone());
        let slot = {
            let mut cache = self.cache.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            cache.entry(key.clone()).or_default().clone()
        };
        // Held across the fetch: one fetch per (role, client) however many of its requests
        // wait, while other clients' requests go on.
        let mut slot = slot.lock().await;
        if let Some(c) = slot.as_ref() {
            if c.expiry().is_none_or(|exp| exp > SystemTime::now() + REFRESH_BEFORE_EXPIRY) {
                return Ok(c.clone());
            }
        }
        let creds = self.assume(upstream, base, req).await?;
        tracing::info!(role = req.role_arn, client = %key.1, expiry = ?creds.expiry(), "upstream role assumed");
        *slot = Some(creds.clone());
        Ok(creds)
    }

    async fn assume(
        &self,
        upstream: &Upstream,
        base: &Credentials,
        req: &AssumeRequest<'_>,
    ) -> Result<Credentials, AssumeError> {
        let endpoint = match &self.endpoint {
            Some(e) => e.clone(),
            None => format!("https://sts.{}.amazonaws.com/", upstream.region)
                .parse()
                .map_err(|_| AssumeError::Unreachable("no STS endpoint".into()))?,
        };
        let form = form(req);
        let request = http::Request::post(endpoint)
            .header(http::header::CONTENT_TYPE, "application/x-www-form-urlencoded; charset=utf-8")
            .header(http::header::CONTENT_LENGTH, form.len())
            .body(())
            .map_err(|e| AssumeError::Sign(e.to_string()))?;
        let (mut parts, ()) = request.into_parts();
        let hash = crate::sigv4::sha256_hex(form.as_bytes());
        crate::sigv4::sign_upstream_for("sts", &mut parts, base, &upstream.region, &hash, SystemTime::now())
            .map_err(|e| AssumeError::Sign(e.to_string()))?;
        let request = http::Request::from_parts(parts, crate::body::full(Bytes::from(form)));
        let resp = tokio::time::timeout(Duration::from_secs(10), upstream.send(request))
            .await
            .map_err(|_| AssumeError::Unreachable("timed out".into()))?
            .map_err(|e| AssumeError::Unreachable(e.to_string()))?;
        let status = resp.status();
        let body = Limited::new(resp.into_body(), MAX_ANSWER)
            .collect()
            .await
            .map_err(|e| AssumeError::Unreachable(e.to_string()))?
            .to_bytes();
        let fields = elements(&body, &["Code", "AccessKeyId", "SecretAccessKey", "SessionToken", "Expiration"]);
        if !status.is_success() {
            let code = fields.get("Code").cloned().unwrap_or_default();
            return Err(AssumeError::Refused { status: status.as_u16(), code });
        }
        let (Some(akid), Some(secret), Some(token)) =
            (fields.get("AccessKeyId"), fields.get("SecretAccessKey"), fields.get("SessionToken"))
        else {
            return Err(AssumeError::Malformed);
        };
        let expiry = fields
            .get("Expiration")
            .and_then(|e| time::OffsetDateTime::parse(e, &time::format_description::well_known::Rfc3339).ok())
            .map(SystemTime::from);
        Ok(Credentials::new(akid, secret, Some(token.clone()), expiry, "s3gate-upstream-role"))
    }
}

/// The AssumeRole form for `req`.
fn form(req: &AssumeRequest<'_>) -> String {
    let c = &req.client;
    let mut pairs: Vec<(String, String)> = vec![
        ("Action".into(), "AssumeRole".into()),
        ("Version".into(), "2011-06-15".into()),
        ("RoleArn".into(), req.role_arn.into()),
        ("RoleSessionName".into(), c.session_name.clone()),
        ("SourceIdentity".into(), c.source_identity.clone()),
        ("DurationSeconds".into(), DURATION_SECONDS.to_string()),
    ];
    if let Some(id) = req.external_id {
        pairs.push(("ExternalId".into(), id.into()));
    }
    for (i, (k, v)) in c.tags.iter().enumerate() {
        pairs.push((format!("Tags.member.{}.Key", i + 1), (*k).into()));
        pairs.push((format!("Tags.member.{}.Value", i + 1), v.clone()));
    }
    let enc = |t: &str| percent_encoding::utf8_percent_encode(t, percent_encoding::NON_ALPHANUMERIC).to_string();
    pairs.iter().map(|(k, v)| format!("{}={}", enc(k), enc(v))).collect::<Vec<_>>().join("&")
}

/// A session name or source identity: 2 to 64 of `[A-Za-z0-9+=,.@_-]`, others replaced.
fn name(text: &str) -> String {
    let mut out: String = text
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || "+=,.@_-".contains(c) { c } else { '-' })
        .take(64)
        .collect();
    while out.len() < 2 {
        out.push('-');
    }
    out
}

/// A tag value: at most 256 of the characters tags allow, others replaced.
fn tag_value(text: &str) -> String {
    text.chars().map(|c| if c.is_alphanumeric() || " _.:/=+-@".contains(c) { c } else { '-' }).take(256).collect()
}

/// The text of the first element of each name, anywhere in the document.
fn elements(xml: &[u8], names: &[&str]) -> HashMap<String, String> {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_reader(xml);
    let mut out = HashMap::new();
    let mut current: Option<String> = None;
    let mut buf = Vec::new();
    loop {
        match reader.read_event_into(&mut buf) {
            Ok(Event::Start(e)) => {
                let local = String::from_utf8_lossy(e.local_name().as_ref()).into_owned();
                current = names.contains(&local.as_str()).then_some(local);
            }
            Ok(Event::Text(t)) => {
                if let (Some(name), Ok(text)) = (current.take(), t.unescape()) {
                    out.entry(name).or_insert_with(|| text.trim().to_owned());
                }
            }
            Ok(Event::End(_)) => current = None,
            Ok(Event::Eof) | Err(_) => break,
            Ok(_) => {}
        }
        buf.clear();
    }
    out
}
