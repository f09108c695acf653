//! s3gate's STS on the endpoint listener: a form POST to `/` (see `sts::is_sts_request`) is
//! read whole within `sts::MAX_FORM_BYTES`, AssumeRole and GetSessionToken are authenticated
//! by SigV4 for service `sts` with an s3gate credential, and the answer is STS's XML.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use http::{header, HeaderValue, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;

use super::record::{RequestContext, StsCall};
use super::{access, host_of, Gateway};
use crate::body::{self, Body};
use crate::metrics::{ROLE_NONE, ROLE_UNKNOWN};
use crate::sigv4;
use crate::sts::{self, Action, Form, StsError};

impl Gateway {
    /// Answers one STS request; never fails: refusals are STS error XML.
    /// Its record (`ctx.sts`, and the session issued) and its metrics name the action, the role
    /// and the result.
    pub(super) async fn sts(&self, req: Request<Incoming>, ctx: &mut RequestContext) -> Response<Body> {
        ctx.sts = Some(StsCall::unread());
        let answer = self.sts_answer(req, ctx).await;
        let call = ctx.sts.get_or_insert_with(StsCall::unread);
        let (status, xml) = match answer {
            Ok(xml) => {
                self.metrics.sts_request(call.action, &call.role_label, "ok");
                (StatusCode::OK, xml)
            }
            Err(e) => {
                tracing::debug!(request_id = %ctx.request_id, code = e.code, message = %e.message, "STS request refused");
                if e.subject.is_some() {
                    call.subject = e.subject.clone();
                }
                self.metrics.sts_request(call.action, &call.role_label, e.code);
                self.metrics.auth_failure(e.code);
                (e.status, sts::error_xml(&e, &ctx.request_id))
            }
        };
        let mut resp = Response::new(body::full(Bytes::from(xml)));
        *resp.status_mut() = status;
        let headers = resp.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/xml"));
        if let Ok(id) = HeaderValue::from_str(&ctx.request_id) {
            headers.insert("x-amzn-requestid", id);
        }
        resp
    }

    async fn sts_answer(&self, req: Request<Incoming>, ctx: &mut RequestContext) -> Result<String, StsError> {
        if !access::host_allowed(&self.config.access, host_of(&req).unwrap_or_default()) {
            return Err(StsError::access_denied("This endpoint is not allowed."));
        }
        let (parts, incoming) = req.into_parts();
        let bytes = read_form(incoming, &parts.headers, self.config.upstream.idle_timeout).await?;
        let form = Form::parse(&bytes)?;
        ctx.sts = Some(self.sts_call(&form));
        let keys = self.config.sts.keys.as_ref().ok_or_else(StsError::internal)?;
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let issued = match form.action {
            Action::AssumeRoleWithWebIdentity => {
                sts::assume_role_with_web_identity(&form, &self.config.sts, keys, &self.oidc, now).await?
            }
            action => {
                let caller = self.sts_caller(&parts, &bytes)?;
                ctx.access_key_id = Some(caller.clone());
                if action == Action::GetSessionToken {
                    sts::get_session_token(&form, &caller, keys, now)?
                } else {
                    sts::assume_role(&form, &caller, &self.config.sts, keys, now)?
                }
            }
        };
        let c = &issued.claims;
        tracing::info!(
            request_id = %ctx.request_id,
            action = issued.action.as_str(),
            access_key_id = %c.access_key_id,
            role = c.role.as_deref().unwrap_or(""),
            session_name = c.session_name.as_deref().unwrap_or(""),
            subject = c.subject.as_deref().unwrap_or(""),
            parent = c.parent.as_deref().unwrap_or(""),
            expires = c.expires,
            "session issued"
        );
        let xml = sts::response_xml(&issued, &ctx.request_id);
        ctx.session = Some(Arc::new(issued.claims));
        Ok(xml)
    }

    /// What a parsed form asks for. The role is named in metrics only if it is declared: the
    /// RoleArn of a refused call is whatever the client wrote.
    fn sts_call(&self, form: &Form) -> StsCall {
        let role = (form.action != Action::GetSessionToken).then(|| form.get("RoleArn")).flatten();
        let role_label = match (form.action, role) {
            (Action::GetSessionToken, _) => ROLE_NONE.to_owned(),
            (_, Some(arn)) if self.config.sts.role(arn).is_some() => arn.to_owned(),
            _ => ROLE_UNKNOWN.to_owned(),
        };
        // Kept for the record as asked, within STS's own limits (longer ones are refused): a
        // form may be 64 KiB, an audit line need not.
        let bounded = |text: &str, max: usize| text.chars().take(max).collect::<String>();
        StsCall {
            action: form.action.as_str(),
            role_label,
            role: role.map(|r| bounded(r, 2048)),
            session_name: form.get("RoleSessionName").map(|n| bounded(n, 64)),
            subject: None,
        }
    }

    /// The s3gate credential that signed a GetSessionToken or AssumeRole. Temporary
    /// credentials may not ask for more: a session must not outlive or widen itself.
    fn sts_caller(&self, parts: &http::request::Parts, body: &[u8]) -> Result<String, StsError> {
        if parts.headers.contains_key(crate::sigv4::X_AMZ_SECURITY_TOKEN) {
            return Err(StsError::access_denied("Temporary credentials cannot call this action."));
        }
        if !parts.headers.contains_key(header::AUTHORIZATION) {
            return Err(StsError::missing_authentication());
        }
        let keys = &self.config.keys;
        let lookup = |akid: &str| keys.secret(akid);
        let verified = sigv4::verify_service_auth(
            "sts",
            &parts.method,
            parts.uri.path(),
            parts.uri.query(),
            &parts.headers,
            &sigv4::sha256_hex(body),
            &lookup,
            time::OffsetDateTime::now_utc(),
            self.config.max_clock_skew,
        )?;
        Ok(verified.access_key_id)
    }
}

/// The form, whole, within [`sts::MAX_FORM_BYTES`] and the idle timeout. A larger body is
/// refused as soon as its length or its bytes say so; the rest is read and dropped (within
/// `respond::discard`'s bound) so that the client gets to read the refusal.
async fn read_form(
    mut body: Incoming,
    headers: &http::HeaderMap,
    idle: std::time::Duration,
) -> Result<Bytes, StsError> {
    let declared =
        headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > sts::MAX_FORM_BYTES as u64) {
        super::respond::discard(body).await;
        return Err(StsError::too_large());
    }
    let mut buf = BytesMut::new();
    loop {
        let frame = match tokio::time::timeout(idle, body.frame()).await {
            Err(_) => return Err(StsError::validation("The request body did not arrive in time.")),
            Ok(None) => break,
            Ok(Some(Err(_))) => return Err(StsError::validation("The request body could not be read.")),
            Ok(Some(Ok(frame))) => frame,
        };
        if let Ok(data) = frame.into_data() {
            if buf.len() + data.len() > sts::MAX_FORM_BYTES {
                super::respond::discard(body).await;
                return Err(StsError::too_large());
            }
            buf.extend_from_slice(&data);
        }
    }
    Ok(buf.freeze())
}
