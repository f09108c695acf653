//! Requests signed with temporary credentials from s3gate's STS: the session token
//! (`x-amz-security-token`, or `X-Amz-Security-Token` in a presigned URL) is opened first, and
//! its claims supply the secret the signature is checked against and the policies the request
//! is judged by. The token itself never goes upstream (`headers::REPLACED`, and the presigned
//! query's auth parameters are dropped) and is never logged.

use std::sync::Arc;

use http::Request;
use percent_encoding::percent_decode_str;

use super::Gateway;
use crate::error::{S3Error, S3ErrorCode};
use crate::policy::Policy;
use crate::session::{SessionClaims, SessionError};
use crate::sigv4::X_AMZ_SECURITY_TOKEN as TOKEN_HEADER;

const TOKEN_PARAM: &str = "X-Amz-Security-Token";

impl Gateway {
    /// The session a request's token opens; `None` when it carries no token. A token that is
    /// expired, altered, sealed with a key this replica lacks, or whose role or parent
    /// credential has since been removed, is refused before any signature is checked: the
    /// token is authenticated on its own, and what it says decides which secret to check with.
    pub(super) fn open_session<B>(&self, req: &Request<B>) -> Result<Option<Arc<SessionClaims>>, S3Error> {
        let Some(token) = token_of(req)? else { return Ok(None) };
        let keys = self.config.sts.keys.as_ref().ok_or_else(|| S3Error::from(SessionError::UnknownKey))?;
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let claims = keys.open(&token, now)?;
        let revoked = match (&claims.role, &claims.parent) {
            (Some(role), _) => self.config.sts.role(role).is_none(),
            (None, Some(parent)) => self.config.keys.secret(parent).is_none(),
            (None, None) => true,
        };
        if revoked {
            return Err(S3Error::new(S3ErrorCode::InvalidToken, "The provided token is no longer valid."));
        }
        Ok(Some(Arc::new(claims)))
    }

    /// The policies a request must satisfy, every one of them: a credential's own (none: full
    /// access); for a user's session, its parent's; for a role session, the role's and the
    /// session policy the caller passed to narrow it.
    pub(super) fn policies(
        &self,
        access_key_id: &str,
        session: Option<&SessionClaims>,
    ) -> Result<Vec<Arc<Policy>>, S3Error> {
        let Some(session) = session else {
            return Ok(self.config.keys.policy(access_key_id).into_iter().collect());
        };
        let gone = || S3Error::new(S3ErrorCode::InvalidToken, "The provided token is no longer valid.");
        let mut policies = Vec::with_capacity(2);
        match (&session.role, &session.parent) {
            (Some(arn), _) => policies.push(self.config.sts.role(arn).ok_or_else(gone)?.policy.clone()),
            (None, Some(parent)) => policies.extend(self.config.keys.policy(parent)),
            (None, None) => return Err(gone()),
        }
        if let Some(text) = &session.policy {
            // Checked when the session was issued; failing here means the token is not ours.
            policies.push(Arc::new(Policy::from_json(text).map_err(|_| gone())?));
        } else if session.role.is_some() && policies.is_empty() {
            return Err(gone());
        }
        Ok(policies)
    }
}

/// The token of a header-signed or presigned request. Both at once, or either twice, is
/// refused rather than guessed at.
fn token_of<B>(req: &Request<B>) -> Result<Option<String>, S3Error> {
    let malformed = || S3Error::from(SessionError::Malformed);
    let mut found = Vec::new();
    for value in req.headers().get_all(TOKEN_HEADER) {
        found.push(value.to_str().map_err(|_| malformed())?.to_owned());
    }
    for pair in req.uri().query().unwrap_or_default().split('&') {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        if percent_decode_str(name).decode_utf8_lossy() == TOKEN_PARAM {
            found.push(percent_decode_str(value).decode_utf8().map_err(|_| malformed())?.into_owned());
        }
    }
    match found.len() {
        0 => Ok(None),
        1 => Ok(found.pop()),
        _ => Err(S3Error::new(S3ErrorCode::InvalidToken, "More than one session token was given.")),
    }
}
