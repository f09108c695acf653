//! s3gate's own STS: the AWS STS Query API (`Action=...&Version=2011-06-15`, a form POST,
//! answered in XML) for AssumeRoleWithWebIdentity, AssumeRole and GetSessionToken, so that the
//! SDKs' standard machinery (`AWS_ENDPOINT_URL_STS`, `AWS_ROLE_ARN` with
//! `AWS_WEB_IDENTITY_TOKEN_FILE`, `aws sts ...`) gets short-lived credentials from s3gate
//! with no code change.
//!
//! This module decides and issues; the endpoint (`proxy/sts_api.rs`) reads the bounded body,
//! authenticates signed actions and writes the answer. Credentials are sealed into their
//! session token (`session`), so issuing stores nothing.

mod form;
mod issue;
#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests;
mod xml;

use std::borrow::Cow;

use http::StatusCode;

pub use form::{is_sts_request, Form, MAX_FORM_BYTES};
pub use issue::{assume_role, assume_role_with_web_identity, get_session_token, Issued};
pub use xml::{error_xml, response_xml};

pub const NAMESPACE: &str = "https://sts.amazonaws.com/doc/2011-06-15/";

/// The actions s3gate answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    AssumeRoleWithWebIdentity,
    AssumeRole,
    GetSessionToken,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AssumeRoleWithWebIdentity => "AssumeRoleWithWebIdentity",
            Self::AssumeRole => "AssumeRole",
            Self::GetSessionToken => "GetSessionToken",
        }
    }

    /// Whether the caller signs it with an s3gate credential; AssumeRoleWithWebIdentity is
    /// authenticated by its token instead.
    pub fn signed(self) -> bool {
        self != Self::AssumeRoleWithWebIdentity
    }
}

/// An STS error: the code AWS STS answers with, its HTTP status, and a message safe to show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StsError {
    pub code: &'static str,
    pub status: StatusCode,
    pub message: Cow<'static, str>,
    /// The web identity's subject, when the token was verified and refused for what it says
    /// (the role's trust): for the audit log, never for the answer.
    pub subject: Option<String>,
}

impl StsError {
    fn new(code: &'static str, status: StatusCode, message: impl Into<Cow<'static, str>>) -> Self {
        Self { code, status, message: message.into(), subject: None }
    }

    /// This refusal, naming the verified subject it concerns.
    pub fn with_subject(self, subject: &str) -> Self {
        Self { subject: Some(subject.to_owned()), ..self }
    }

    pub fn validation(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new("ValidationError", StatusCode::BAD_REQUEST, message)
    }

    pub fn access_denied(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new("AccessDenied", StatusCode::FORBIDDEN, message)
    }

    pub fn invalid_identity_token(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new("InvalidIdentityToken", StatusCode::BAD_REQUEST, message)
    }

    pub fn expired_token(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new("ExpiredTokenException", StatusCode::BAD_REQUEST, message)
    }

    pub fn idp_communication(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new("IDPCommunicationError", StatusCode::BAD_REQUEST, message)
    }

    pub fn malformed_policy(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new("MalformedPolicyDocument", StatusCode::BAD_REQUEST, message)
    }

    pub fn packed_policy_too_large(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new("PackedPolicyTooLarge", StatusCode::BAD_REQUEST, message)
    }

    pub fn invalid_action(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new("InvalidAction", StatusCode::BAD_REQUEST, message)
    }

    pub fn missing_parameter(name: &str) -> Self {
        Self::new("MissingParameter", StatusCode::BAD_REQUEST, format!("The request must contain the parameter {name}"))
    }

    pub fn invalid_client_token_id() -> Self {
        Self::new(
            "InvalidClientTokenId",
            StatusCode::FORBIDDEN,
            "The security token included in the request is invalid.",
        )
    }

    pub fn signature_does_not_match(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new("SignatureDoesNotMatch", StatusCode::FORBIDDEN, message)
    }

    pub fn missing_authentication() -> Self {
        Self::new("MissingAuthenticationToken", StatusCode::FORBIDDEN, "Request is missing Authentication Token")
    }

    pub fn incomplete_signature(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new("IncompleteSignature", StatusCode::BAD_REQUEST, message)
    }

    pub fn request_expired() -> Self {
        Self::new("RequestExpired", StatusCode::BAD_REQUEST, "Request has expired.")
    }

    pub fn too_large() -> Self {
        Self::new("RequestEntityTooLarge", StatusCode::PAYLOAD_TOO_LARGE, "The request body is too large.")
    }

    pub fn internal() -> Self {
        Self::new("InternalFailure", StatusCode::INTERNAL_SERVER_ERROR, "The request could not be completed.")
    }

    /// `Sender` for the caller's faults, `Receiver` for s3gate's, as STS types them.
    pub fn fault(&self) -> &'static str {
        if self.status.is_server_error() {
            "Receiver"
        } else {
            "Sender"
        }
    }
}

/// As STS answers what SigV4 verification found wrong with a signed action.
impl From<crate::sigv4::SigV4Error> for StsError {
    fn from(e: crate::sigv4::SigV4Error) -> Self {
        use crate::sigv4::SigV4Error as E;
        match e {
            E::InvalidAccessKeyId => Self::invalid_client_token_id(),
            E::SignatureDoesNotMatch | E::ContentSha256Mismatch => Self::signature_does_not_match(
                "The request signature we calculated does not match the signature you provided.",
            ),
            E::RequestTimeTooSkewed => Self::request_expired(),
            E::MissingSecurityHeader(h) if h == "Authorization" => Self::missing_authentication(),
            other => Self::incomplete_signature(other.to_string()),
        }
    }
}
