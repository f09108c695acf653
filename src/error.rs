//! Every failure s3gate answers itself becomes one S3 error: an AWS error code, its HTTP status
//! and the `<Error>` XML body with a RequestId, rendered in one place.
//!
//! Internal causes (an upstream's socket error, a file that failed to open) are logged by the
//! caller and never sent to the client: the message here is what a client may see.

use std::borrow::Cow;
use std::fmt;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{header, HeaderName, HeaderValue, Response, StatusCode};

use crate::body::{self, Body};

/// The S3 error codes s3gate produces itself. Upstream errors pass through untouched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum S3ErrorCode {
    AccessDenied,
    AuthorizationHeaderMalformed,
    AuthorizationQueryParametersError,
    BadDigest,
    BadRequest,
    EntityTooLarge,
    EntityTooSmall,
    ExpiredToken,
    IncompleteBody,
    InternalError,
    InvalidAccessKeyId,
    InvalidArgument,
    InvalidBucketName,
    InvalidPolicyDocument,
    InvalidRequest,
    InvalidToken,
    InvalidURI,
    MalformedPOSTRequest,
    MalformedXML,
    MaxPostPreDataLengthExceeded,
    MissingContentLength,
    MissingSecurityHeader,
    NotImplemented,
    PreconditionFailed,
    RequestTimeTooSkewed,
    RequestTimeout,
    ServiceUnavailable,
    SignatureDoesNotMatch,
    SlowDown,
    XAmzContentSHA256Mismatch,
}

impl S3ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AccessDenied => "AccessDenied",
            Self::AuthorizationHeaderMalformed => "AuthorizationHeaderMalformed",
            Self::AuthorizationQueryParametersError => "AuthorizationQueryParametersError",
            Self::BadDigest => "BadDigest",
            Self::BadRequest => "BadRequest",
            Self::EntityTooLarge => "EntityTooLarge",
            Self::EntityTooSmall => "EntityTooSmall",
            Self::ExpiredToken => "ExpiredToken",
            Self::IncompleteBody => "IncompleteBody",
            Self::InternalError => "InternalError",
            Self::InvalidAccessKeyId => "InvalidAccessKeyId",
            Self::InvalidArgument => "InvalidArgument",
            Self::InvalidBucketName => "InvalidBucketName",
            Self::InvalidPolicyDocument => "InvalidPolicyDocument",
            Self::InvalidRequest => "InvalidRequest",
            Self::InvalidToken => "InvalidToken",
            Self::InvalidURI => "InvalidURI",
            Self::MalformedPOSTRequest => "MalformedPOSTRequest",
            Self::MalformedXML => "MalformedXML",
            Self::MaxPostPreDataLengthExceeded => "MaxPostPreDataLengthExceeded",
            Self::MissingContentLength => "MissingContentLength",
            Self::MissingSecurityHeader => "MissingSecurityHeader",
            Self::NotImplemented => "NotImplemented",
            Self::PreconditionFailed => "PreconditionFailed",
            Self::RequestTimeTooSkewed => "RequestTimeTooSkewed",
            Self::RequestTimeout => "RequestTimeout",
            Self::ServiceUnavailable => "ServiceUnavailable",
            Self::SignatureDoesNotMatch => "SignatureDoesNotMatch",
            Self::SlowDown => "SlowDown",
            Self::XAmzContentSHA256Mismatch => "XAmzContentSHA256Mismatch",
        }
    }

    /// The status S3 itself answers with for this code.
    pub fn status(self) -> StatusCode {
        match self {
            Self::AccessDenied
            | Self::InvalidAccessKeyId
            | Self::RequestTimeTooSkewed
            | Self::SignatureDoesNotMatch => StatusCode::FORBIDDEN,
            Self::AuthorizationHeaderMalformed
            | Self::AuthorizationQueryParametersError
            | Self::BadDigest
            | Self::BadRequest
            | Self::EntityTooLarge
            | Self::EntityTooSmall
            | Self::ExpiredToken
            | Self::IncompleteBody
            | Self::InvalidArgument
            | Self::InvalidBucketName
            | Self::InvalidPolicyDocument
            | Self::InvalidRequest
            | Self::InvalidToken
            | Self::InvalidURI
            | Self::MalformedPOSTRequest
            | Self::MalformedXML
            | Self::MaxPostPreDataLengthExceeded
            | Self::MissingSecurityHeader
            | Self::RequestTimeout
            | Self::XAmzContentSHA256Mismatch => StatusCode::BAD_REQUEST,
            Self::MissingContentLength => StatusCode::LENGTH_REQUIRED,
            Self::PreconditionFailed => StatusCode::PRECONDITION_FAILED,
            Self::InternalError => StatusCode::INTERNAL_SERVER_ERROR,
            Self::NotImplemented => StatusCode::NOT_IMPLEMENTED,
            Self::ServiceUnavailable | Self::SlowDown => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

impl fmt::Display for S3ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error s3gate answers with. `message` is shown to the client, so it never carries a
/// secret, a signature or an internal cause.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Error {
    pub code: S3ErrorCode,
    pub message: Cow<'static, str>,
    pub resource: Option<String>,
    /// Further elements S3 puts in this error, in order (`<HeadersNotSigned>`).
    pub details: Vec<(&'static str, String)>,
}

impl S3Error {
    pub fn new(code: S3ErrorCode, message: impl Into<Cow<'static, str>>) -> Self {
        Self { code, message: message.into(), resource: None, details: Vec::new() }
    }

    /// `403 AccessDenied` with S3's own message: a refusal says no more than S3 would.
    pub fn access_denied() -> Self {
        Self::new(S3ErrorCode::AccessDenied, "Access Denied")
    }

    /// `500 InternalError`: s3gate's own fault; the cause is logged by the caller, never sent.
    pub fn internal() -> Self {
        Self::new(S3ErrorCode::InternalError, "We encountered an internal error. Please try again.")
    }

    pub fn invalid_argument(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(S3ErrorCode::InvalidArgument, message)
    }

    pub fn invalid_request(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(S3ErrorCode::InvalidRequest, message)
    }

    pub fn incomplete_body(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(S3ErrorCode::IncompleteBody, message)
    }

    pub fn malformed_post_request(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(S3ErrorCode::MalformedPOSTRequest, message)
    }

    pub fn not_implemented(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(S3ErrorCode::NotImplemented, message)
    }

    /// `503 ServiceUnavailable`: the upstream, or s3gate's way to it, failed; worth a retry.
    pub fn service_unavailable(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(S3ErrorCode::ServiceUnavailable, message)
    }

    pub fn with_detail(mut self, element: &'static str, value: impl Into<String>) -> Self {
        self.details.push((element, value.into()));
        self
    }

    pub fn with_resource(mut self, resource: impl Into<String>) -> Self {
        self.resource = Some(resource.into());
        self
    }

    /// The region S3 names in a wrong-region error (`<Region>`), where SDKs look for the one
    /// to sign for.
    pub fn with_region(self, region: impl Into<String>) -> Self {
        self.with_detail("Region", region)
    }

    pub fn status(&self) -> StatusCode {
        self.code.status()
    }

    /// The XML body S3 sends: `<Error><Code/><Message/><Resource/><Region/><RequestId/></Error>`.
    pub fn to_xml(&self, request_id: &str) -> String {
        let mut xml = String::with_capacity(256);
        xml.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>");
        xml.push_str(self.code.as_str());
        xml.push_str("</Code><Message>");
        xml_escape_into(&mut xml, &self.message);
        xml.push_str("</Message>");
        if let Some(resource) = &self.resource {
            xml.push_str("<Resource>");
            xml_escape_into(&mut xml, resource);
            xml.push_str("</Resource>");
        }
        for (element, value) in &self.details {
            xml.push('<');
            xml.push_str(element);
            xml.push('>');
            xml_escape_into(&mut xml, value);
            xml.push_str("</");
            xml.push_str(element);
            xml.push('>');
        }
        xml.push_str("<RequestId>");
        xml_escape_into(&mut xml, request_id);
        xml.push_str("</RequestId></Error>");
        xml
    }

    /// The header carrying an S3 error's code on s3gate's own answers, read back for the
    /// access log (`proxy/record.rs`).
    pub const CODE_HEADER: HeaderName = HeaderName::from_static("x-amz-error-code");

    /// Renders the response. A HEAD answer carries the status and headers but no body, as S3's.
    pub fn into_response(self, request_id: &str, head: bool) -> Response<Body> {
        let xml = self.to_xml(request_id);
        let len = xml.len();
        let body = if head { body::empty() } else { body::full(Bytes::from(xml)) };
        let mut resp = Response::new(body);
        *resp.status_mut() = self.status();
        let headers = resp.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/xml"));
        if !head {
            headers.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
        }
        if let Ok(v) = HeaderValue::from_str(request_id) {
            headers.insert("x-amz-request-id", v);
        }
        headers.insert(Self::CODE_HEADER, HeaderValue::from_static(self.code.as_str()));
        resp
    }
}

impl fmt::Display for S3Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for S3Error {}

/// Where a body that fails on its way upstream (a bad chunk signature, a stalled client)
/// records its S3 error: hyper reports only that the upstream request failed, and the handler
/// reads the real cause here to answer with it. Shared by the endpoint, form uploads and the
/// body wrappers, so it lives beside the error type.
#[derive(Clone, Default, Debug)]
pub struct FailureSlot(Arc<Mutex<Option<S3Error>>>);

impl FailureSlot {
    pub(crate) fn set(&self, e: S3Error) -> crate::body::BoxError {
        let boxed: crate::body::BoxError = Box::new(e.clone());
        if let Ok(mut slot) = self.0.lock() {
            slot.get_or_insert(e);
        }
        boxed
    }

    pub fn take(&self) -> Option<S3Error> {
        self.0.lock().ok().and_then(|mut s| s.take())
    }
}

/// As S3 answers a session token it cannot use: expired, or anything else that is wrong with it.
impl From<crate::session::SessionError> for S3Error {
    fn from(e: crate::session::SessionError) -> Self {
        use crate::session::SessionError as E;
        match e {
            E::Expired => S3Error::new(S3ErrorCode::ExpiredToken, "The provided token has expired."),
            E::Malformed | E::UnknownKey | E::Tampered => {
                S3Error::new(S3ErrorCode::InvalidToken, "The provided token is malformed or otherwise invalid.")
            }
        }
    }
}

impl From<crate::sigv4::SigV4Error> for S3Error {
    fn from(e: crate::sigv4::SigV4Error) -> Self {
        use crate::sigv4::SigV4Error as E;
        use S3ErrorCode as C;
        match e {
            E::MissingSecurityHeader(h) => {
                Self::new(C::MissingSecurityHeader, format!("Your request was missing a required header: {h}"))
            }
            E::AuthorizationHeaderMalformed(m) => {
                Self::new(C::AuthorizationHeaderMalformed, format!("The authorization header is malformed; {m}"))
            }
            E::InvalidAccessKeyId => {
                Self::new(C::InvalidAccessKeyId, "The AWS Access Key Id you provided does not exist in our records.")
            }
            E::SignatureDoesNotMatch => Self::new(
                C::SignatureDoesNotMatch,
                "The request signature we calculated does not match the signature you provided. \
                 Check your key and signing method.",
            ),
            E::RequestTimeTooSkewed => Self::new(
                C::RequestTimeTooSkewed,
                "The difference between the request time and the current time is too large.",
            ),
            E::InvalidContentSha256(m) => Self::new(
                C::InvalidArgument,
                format!("x-amz-content-sha256 must be UNSIGNED-PAYLOAD, STREAMING-... or a valid sha256 value: {m}"),
            ),
            E::AuthorizationQueryParametersError(m) => Self::new(C::AuthorizationQueryParametersError, m),
            E::RequestExpired => Self::new(C::AccessDenied, "Request has expired"),
            E::IncompleteBody(m) => Self::new(
                C::IncompleteBody,
                format!("You did not provide the number of bytes specified by the Content-Length HTTP header: {m}"),
            ),
            E::InvalidChunk(m) => Self::new(C::IncompleteBody, format!("Invalid aws-chunked body: {m}")),
            E::HeadersNotSigned(names) => {
                Self::new(C::AccessDenied, "There were headers present in the request which were not signed")
                    .with_detail("HeadersNotSigned", names.join(", "))
            }
            E::UnsupportedSigV2 => Self::new(
                C::InvalidRequest,
                "The authorization mechanism you have provided is not supported. Please use AWS4-HMAC-SHA256.",
            ),
            E::ContentSha256Mismatch => Self::new(
                C::XAmzContentSHA256Mismatch,
                "The provided 'x-amz-content-sha256' header does not match what was computed.",
            ),
        }
    }
}

fn xml_escape_into(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xml_has_code_message_resource_and_request_id() {
        let e = S3Error::new(S3ErrorCode::AccessDenied, "no <way> & never").with_resource("/b/k");
        let xml = e.to_xml("REQ1");
        assert!(xml.contains("<Code>AccessDenied</Code>"));
        assert!(xml.contains("<Message>no &lt;way&gt; &amp; never</Message>"));
        assert!(xml.contains("<Resource>/b/k</Resource>"));
        assert!(xml.contains("<RequestId>REQ1</RequestId>"));
    }

    #[test]
    fn statuses_follow_s3() {
        assert_eq!(S3ErrorCode::SignatureDoesNotMatch.status(), 403);
        assert_eq!(S3ErrorCode::RequestTimeTooSkewed.status(), 403);
        assert_eq!(S3ErrorCode::AuthorizationHeaderMalformed.status(), 400);
        assert_eq!(S3ErrorCode::ServiceUnavailable.status(), 503);
        assert_eq!(S3ErrorCode::SlowDown.status(), 503);
        assert_eq!(S3ErrorCode::MissingSecurityHeader.status(), 400);
    }

    #[test]
    fn head_response_has_no_body_but_keeps_the_code() {
        let resp = S3Error::new(S3ErrorCode::AccessDenied, "x").into_response("R", true);
        assert_eq!(resp.status(), 403);
        assert_eq!(resp.headers()["x-amz-error-code"], "AccessDenied");
        assert!(resp.headers().get(header::CONTENT_LENGTH).is_none());
    }
}
