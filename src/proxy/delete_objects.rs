//! DeleteObjects under a policy: the objects it names are in its body, so the body is read whole
//! (it is small: at most 1,000 keys), parsed as S3 will parse it (`s3_xml`), and every object
//! checked before anything is sent.
//!
//! What the policy checks must be exactly what the upstream parses. So the body is taken after
//! its payload mode has decoded and verified it (aws-chunked framing removed, chunk signatures,
//! trailing checksum or signed SHA-256 checked), and the same bytes go upstream as a plain body
//! signed with their own SHA-256.

use http::{header, HeaderMap, HeaderValue};

use super::{access, body, headers, Gateway, Outgoing, RequestContext};
use crate::error::S3Error;
use crate::s3_request::{Operation, S3Request};
use crate::s3_xml;
use crate::sigv4::{self, Verified};

impl Gateway {
    /// Whether the body is read whole before anything is sent: DeleteObjects under a policy.
    pub(super) fn reads_body_whole(&self, s3: &S3Request, ctx: &RequestContext) -> bool {
        s3.op() == Operation::DeleteObjects && !ctx.policies.is_empty()
    }

    /// Every object a DeleteObjects names, checked; then the checked bytes go upstream.
    pub(super) async fn policy_body_checks(
        &self,
        out: Outgoing,
        s3: &S3Request,
        verified: &Verified,
        ctx: &RequestContext,
    ) -> Result<Outgoing, S3Error> {
        if s3.op() != Operation::DeleteObjects {
            return Ok(out);
        }
        if ctx.policies.is_empty() {
            return Ok(out);
        }
        let Outgoing { method, mut headers, query, body, .. } = out;
        let bytes = access::collect_bounded(body, access::DELETE_OBJECTS_MAX_BODY).await?;
        let request = s3_xml::delete_objects(&bytes).map_err(|e| {
            tracing::debug!(request_id = %ctx.request_id, reason = e.reason(), "DeleteObjects body refused");
            S3Error::from(e)
        })?;
        let principal = access::Principal { access_key_id: &verified.access_key_id, session: ctx.session.as_deref() };
        access::check_delete_objects(&ctx.policies, s3, &headers, ctx.client.ip(), ctx.secure, principal, &request)
            .inspect_err(|_| self.metrics.policy_denied("s3:DeleteObject"))?;
        plain_body(&mut headers, &bytes);
        let payload_hash = sigv4::sha256_hex(&bytes);
        Ok(Outgoing { method, headers, query, body: body::full(bytes), payload_hash, bodiless: false, handoff: None })
    }
}

/// Headers for a body read whole and sent as it is: its length, no aws-chunked framing, and
/// the trailing checksum (verified on the way in) as a header, since S3 wants a checksum or a
/// Content-MD5 on DeleteObjects. A checksum or Content-MD5 the client sent as a header stays.
fn plain_body(headers: &mut HeaderMap, bytes: &[u8]) {
    headers::strip_aws_chunked_encoding(headers);
    headers.remove("x-amz-decoded-content-length");
    if let Some(algorithm) = headers::announced_trailer_checksum(headers) {
        let mut sum = crate::checksum::Checksummer::new(algorithm);
        sum.update(bytes);
        if let Ok(v) = HeaderValue::from_str(&sum.finalize_base64()) {
            headers.insert(algorithm.header_name(), v);
        }
    }
    headers.remove("x-amz-trailer");
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(bytes.len()));
}
