//! Issuing temporary credentials: the checks each action makes, then the sealed session.

use std::sync::Arc;

use crate::config::sts::{MAX_ROLE_SESSION_SECONDS, MIN_SESSION_SECONDS};
use crate::config::{Role, StsConfig};
use crate::oidc::{IdToken, OidcError, Providers, TokenError};
use crate::policy::Policy;
use crate::session::{self, SessionClaims, SessionKeys};

use super::{Action, Form, StsError};

/// GetSessionToken's limits for a user's session, as AWS's: 15 minutes to 36 hours.
const MAX_USER_SESSION_SECONDS: u64 = 129_600;
const DEFAULT_USER_SESSION_SECONDS: u64 = 43_200;
const DEFAULT_ROLE_SESSION_SECONDS: u64 = 3_600;
/// A session policy's length limit in STS.
const MAX_SESSION_POLICY: usize = 2_048;
/// What the session policy and tags may add up to, so the sealed token stays a header's size.
const MAX_PACKED: usize = 4_096;
const MAX_TAGS: usize = 50;
/// The claim in which identity providers pass session tags, as for AWS.
const TAGS_CLAIM: &str = "https://aws.amazon.com/tags";
const SOURCE_IDENTITY_CLAIM: &str = "https://aws.amazon.com/source_identity";

/// Credentials just issued, with what the answer shows about them.
#[derive(Debug)]
pub struct Issued {
    pub action: Action,
    pub claims: SessionClaims,
    pub token: String,
    /// AssumeRole and AssumeRoleWithWebIdentity: the assumed-role ARN and `<role id>:<session>`.
    pub assumed: Option<(String, String)>,
    /// AssumeRoleWithWebIdentity: the audience the role's trust matched.
    pub audience: Option<String>,
    /// The session policy and tags as a percentage of what is allowed, as STS reports it.
    pub packed_policy_size: Option<u32>,
}

/// GetSessionToken: a session of the calling credential, with its permissions.
pub fn get_session_token(form: &Form, caller: &str, keys: &SessionKeys, now: i64) -> Result<Issued, StsError> {
    if form.get("SerialNumber").is_some() || form.get("TokenCode").is_some() {
        return Err(StsError::validation("MFA is not supported by this STS."));
    }
    let duration = form.duration(MIN_SESSION_SECONDS, MAX_USER_SESSION_SECONDS, DEFAULT_USER_SESSION_SECONDS)?;
    let claims = new_claims(now, duration, Extra { parent: Some(caller.to_owned()), ..Extra::default() });
    seal(Action::GetSessionToken, claims, keys, None, None)
}

/// AssumeRole: a credential the role's trust names takes on the role.
pub fn assume_role(
    form: &Form,
    caller: &str,
    sts: &StsConfig,
    keys: &SessionKeys,
    now: i64,
) -> Result<Issued, StsError> {
    let role = role(form, sts, "AssumeRole")?;
    if !role.trust.access_keys.iter().any(|k| k == caller) {
        return Err(not_authorized(caller, "AssumeRole", &role.arn));
    }
    if form.get("SerialNumber").is_some() || form.get("TokenCode").is_some() {
        return Err(StsError::validation("MFA is not supported by this STS."));
    }
    let request = RoleRequest::from_form(form, role)?;
    let tags = checked_tags(form.tags()?)?;
    let source_identity = form.get("SourceIdentity").map(checked_source_identity).transpose()?;
    let extra = Extra { parent: Some(caller.to_owned()), source_identity, tags, ..Extra::default() };
    request.issue(Action::AssumeRole, extra, keys, now, None)
}

/// AssumeRoleWithWebIdentity: an ID token from a trusted identity provider takes on the role.
pub async fn assume_role_with_web_identity(
    form: &Form,
    sts: &StsConfig,
    keys: &SessionKeys,
    providers: &Providers,
    now: i64,
) -> Result<Issued, StsError> {
    let token = form.required("WebIdentityToken")?;
    if !(4..=20_000).contains(&token.len()) {
        return Err(StsError::validation("WebIdentityToken must be between 4 and 20000 characters."));
    }
    let role = role(form, sts, "AssumeRoleWithWebIdentity")?;
    let request = RoleRequest::from_form(form, role)?;
    let Some(issuer) = &role.trust.issuer else {
        return Err(not_authorized("the web identity", "AssumeRoleWithWebIdentity", &role.arn));
    };
    let id = providers.verify(issuer, token, now).await.map_err(oidc_error)?;
    // From here on the token is genuine: a refusal names its subject in the audit log.
    let issue = || {
        let audience = trusted(&id, role)?;
        let extra = Extra {
            issuer: Some(id.iss.clone()),
            subject: Some(id.sub.clone()),
            source_identity: claim_str(&id, SOURCE_IDENTITY_CLAIM).map(checked_source_identity).transpose()?,
            tags: checked_tags(token_tags(&id)?)?,
            ..Extra::default()
        };
        request.issue(Action::AssumeRoleWithWebIdentity, extra, keys, now, Some(audience))
    };
    issue().map_err(|e| e.with_subject(&id.sub))
}

/// What a session carries besides its role, duration and policy.
#[derive(Default)]
struct Extra {
    parent: Option<String>,
    issuer: Option<String>,
    subject: Option<String>,
    source_identity: Option<String>,
    tags: Vec<(String, String)>,
}

/// The parameters every AssumeRole* action shares, checked.
struct RoleRequest<'a> {
    role: &'a Arc<Role>,
    session_name: String,
    duration: u64,
    policy: Option<String>,
}

impl<'a> RoleRequest<'a> {
    fn from_form(form: &Form, role: &'a Arc<Role>) -> Result<Self, StsError> {
        let session_name = form.required("RoleSessionName")?;
        if !(2..=64).contains(&session_name.len()) || !session_name.chars().all(name_char) {
            return Err(StsError::validation(
                "RoleSessionName must be 2 to 64 characters of letters, digits and +=,.@_-",
            ));
        }
        if form.has_prefix("PolicyArns.") {
            return Err(StsError::validation("PolicyArns are not supported by this STS; pass Policy."));
        }
        let default = DEFAULT_ROLE_SESSION_SECONDS.min(role.max_session_seconds);
        let duration =
            form.duration(MIN_SESSION_SECONDS, role.max_session_seconds.min(MAX_ROLE_SESSION_SECONDS), default)?;
        let policy = form.get("Policy").map(session_policy).transpose()?;
        Ok(Self { role, session_name: session_name.to_owned(), duration, policy })
    }

    fn issue(
        self,
        action: Action,
        extra: Extra,
        keys: &SessionKeys,
        now: i64,
        audience: Option<String>,
    ) -> Result<Issued, StsError> {
        let packed = self.policy.as_deref().map_or(0, str::len)
            + extra.tags.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>();
        if packed > MAX_PACKED {
            return Err(StsError::packed_policy_too_large(
                "The session policy and session tags together are too large.",
            ));
        }
        let mut claims = new_claims(now, self.duration, extra);
        claims.role = Some(self.role.arn.clone());
        claims.session_name = Some(self.session_name.clone());
        claims.policy = self.policy;
        let account = self.role.arn.split(':').nth(4).unwrap_or_default();
        let assumed = (
            format!("arn:aws:sts::{account}:assumed-role/{}/{}", self.role.name, self.session_name),
            format!("{}:{}", session::role_id(&self.role.arn), self.session_name),
        );
        let percent = (packed * 100).div_ceil(MAX_PACKED) as u32;
        let mut issued = seal(action, claims, keys, Some(assumed), audience)?;
        issued.packed_policy_size = Some(percent);
        Ok(issued)
    }
}

fn new_claims(now: i64, duration: u64, extra: Extra) -> SessionClaims {
    SessionClaims {
        access_key_id: session::new_access_key_id(),
        secret: session::new_secret(),
        issued: now,
        expires: now + duration as i64,
        parent: extra.parent,
        role: None,
        session_name: None,
        issuer: extra.issuer,
        subject: extra.subject,
        source_identity: extra.source_identity,
        tags: extra.tags,
        policy: None,
    }
}

fn seal(
    action: Action,
    claims: SessionClaims,
    keys: &SessionKeys,
    assumed: Option<(String, String)>,
    audience: Option<String>,
) -> Result<Issued, StsError> {
    let token = keys.seal(&claims);
    if token.len() > session::MAX_TOKEN_LEN {
        return Err(StsError::packed_policy_too_large("The session would be too large."));
    }
    Ok(Issued { action, claims, token, assumed, audience, packed_policy_size: None })
}

fn role<'s>(form: &Form, sts: &'s StsConfig, action: &str) -> Result<&'s Arc<Role>, StsError> {
    let arn = form.required("RoleArn")?;
    if !(20..=2048).contains(&arn.len()) {
        return Err(StsError::validation("RoleArn must be between 20 and 2048 characters."));
    }
    // An unknown role is refused like one the caller may not assume: AWS does not tell
    // strangers which roles exist.
    sts.role(arn).ok_or_else(|| not_authorized("the caller", action, arn))
}

fn not_authorized(who: &str, action: &str, arn: &str) -> StsError {
    StsError::access_denied(format!("{who} is not authorized to perform sts:{action} on resource {arn}"))
}

/// The session policy: valid IAM, at most 2,048 characters, kept compact.
fn session_policy(text: &str) -> Result<String, StsError> {
    if text.len() > MAX_SESSION_POLICY {
        return Err(StsError::packed_policy_too_large("The session policy is larger than 2048 characters."));
    }
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|_| StsError::malformed_policy("The session policy is not valid JSON."))?;
    Policy::try_from(value.clone()).map_err(|e| StsError::malformed_policy(format!("The session policy: {e}")))?;
    Ok(value.to_string())
}

/// The role's trust rules against a verified token: the audience (one of `aud`), the
/// subject and other claims (patterns). Returns the matched audience.
fn trusted(id: &IdToken, role: &Role) -> Result<String, StsError> {
    let audience = role.trust.audience.as_deref().unwrap_or_default();
    if !id.aud.iter().any(|a| a == audience) {
        return Err(StsError::invalid_identity_token("Incorrect token audience."));
    }
    if id.sub.is_empty() || id.sub.len() > 255 {
        return Err(StsError::invalid_identity_token("The token's sub claim is empty or too long."));
    }
    let denied = || not_authorized("the web identity", "AssumeRoleWithWebIdentity", &role.arn);
    if let Some(pattern) = &role.trust.subject {
        if !crate::glob::matches(pattern, &id.sub) {
            return Err(denied());
        }
    }
    for (name, pattern) in &role.trust.claims {
        let values: Vec<String> = match id.other.get(name) {
            Some(serde_json::Value::Array(items)) => items.iter().filter_map(scalar).collect(),
            Some(v) => scalar(v).into_iter().collect(),
            None => Vec::new(),
        };
        if !values.iter().any(|v| crate::glob::matches(pattern, v)) {
            return Err(denied());
        }
    }
    Ok(audience.to_owned())
}

fn scalar(v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Bool(b) => Some(b.to_string()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn claim_str<'t>(id: &'t IdToken, name: &str) -> Option<&'t str> {
    id.other.get(name).and_then(serde_json::Value::as_str)
}

/// Session tags an identity provider passes in the `https://aws.amazon.com/tags` claim:
/// `{"principal_tags": {"team": ["blue"]}}`, one value per key.
fn token_tags(id: &IdToken) -> Result<Vec<(String, String)>, StsError> {
    let Some(claim) = id.other.get(TAGS_CLAIM) else { return Ok(Vec::new()) };
    let bad = || StsError::invalid_identity_token("The token's session tags claim is malformed.");
    let principal = claim.get("principal_tags").and_then(serde_json::Value::as_object).ok_or_else(bad)?;
    principal
        .iter()
        .map(|(k, v)| match v.as_array().map(Vec::as_slice) {
            Some([serde_json::Value::String(one)]) => Ok((k.clone(), one.clone())),
            _ => Err(bad()),
        })
        .collect()
}

fn checked_tags(tags: Vec<(String, String)>) -> Result<Vec<(String, String)>, StsError> {
    if tags.len() > MAX_TAGS {
        return Err(StsError::validation("At most 50 session tags are allowed."));
    }
    let tag_char = |c: char| c.is_alphanumeric() || c.is_whitespace() || "_.:/=+-@".contains(c);
    for (i, (k, v)) in tags.iter().enumerate() {
        if k.is_empty() || k.len() > 128 || v.len() > 256 || !k.chars().all(tag_char) || !v.chars().all(tag_char) {
            return Err(StsError::validation("A session tag's key or value is not valid."));
        }
        if k.to_ascii_lowercase().starts_with("aws:") {
            return Err(StsError::validation("Session tag keys may not start with aws:."));
        }
        if tags[..i].iter().any(|(o, _)| o.eq_ignore_ascii_case(k)) {
            return Err(StsError::validation("Duplicate session tag keys."));
        }
    }
    Ok(tags)
}

fn checked_source_identity(text: &str) -> Result<String, StsError> {
    if !(2..=64).contains(&text.len()) || !text.chars().all(name_char) || text.starts_with("aws:") {
        return Err(StsError::validation("SourceIdentity must be 2 to 64 characters of letters, digits and +=,.@_-"));
    }
    Ok(text.to_owned())
}

fn name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "+=,.@_-".contains(c)
}

fn oidc_error(e: OidcError) -> StsError {
    match e {
        OidcError::UnknownIssuer(_) => {
            StsError::invalid_identity_token("No OpenIDConnect provider found for the issuer.")
        }
        OidcError::Unreachable(why) => {
            tracing::warn!(reason = %why, "identity provider unreachable");
            StsError::idp_communication("The identity provider could not be reached.")
        }
        OidcError::Token(TokenError::Expired) => StsError::expired_token("Token expired."),
        OidcError::Token(e) => StsError::invalid_identity_token(format!("The web identity token is not valid: {e}.")),
    }
}
