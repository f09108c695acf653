//! The end of a request: one log line, one audit record and the metrics, written when the
//! response body has been sent (or dropped), so that bytes and durations are the real ones.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http::{Method, Response};
use http_body::{Body as HttpBody, Frame, SizeHint};

use crate::audit::{AuditLog, AuditRecord};
use crate::body::{Body, BoxError};
use crate::error::S3Error;
use crate::metrics::{Metrics, Mode};
use crate::s3_request::S3Request;

/// What s3gate knows about one request as it moves through the phases.
pub struct RequestContext {
    pub request_id: String,
    pub client: SocketAddr,
    pub secure: bool,
    pub started: Instant,
    pub method: Method,
    pub access_key_id: Option<String>,
    pub s3: Option<S3Request>,
    pub route: Option<String>,
    pub bytes_in: Arc<AtomicU64>,
    /// The STS session the request was signed under, for the record and the policies.
    pub session: Option<Arc<crate::session::SessionClaims>>,
    /// What the request must satisfy, every one (see `Gateway::policies`); empty: full access.
    pub policies: Vec<Arc<crate::policy::Policy>>,
    /// An S3 request with a session token: the `role` its metrics count it under (a declared
    /// role, `none` for a GetSessionToken session, `unknown` for a token that did not open).
    pub session_role: Option<String>,
    /// A call to s3gate's own STS.
    pub sts: Option<StsCall>,
}

/// A call to s3gate's STS as its record and metrics name it. A session it issued is the
/// request's `session`; these say what was asked for when none was.
#[derive(Debug, Clone)]
pub struct StsCall {
    /// One of `metrics::STS_ACTIONS`, or `other` for a form with no action s3gate answers.
    pub action: &'static str,
    /// The metrics' `role`: a declared role's ARN, `none` (GetSessionToken) or `unknown`.
    pub role_label: String,
    /// The role asked for (RoleArn), declared or not: the audit log records what was tried.
    pub role: Option<String>,
    pub session_name: Option<String>,
    /// The web identity's subject, once its token was verified.
    pub subject: Option<String>,
}

impl StsCall {
    /// Before the form is read: nothing known yet.
    pub fn unread() -> Self {
        Self {
            action: "other",
            role_label: crate::metrics::ROLE_UNKNOWN.to_owned(),
            role: None,
            session_name: None,
            subject: None,
        }
    }

    fn record(&self, parent: Option<&str>) -> crate::audit::SessionRecord {
        crate::audit::SessionRecord {
            role: self.role.clone(),
            session_name: self.session_name.clone(),
            issuer: None,
            subject: self.subject.clone(),
            source_identity: None,
            parent: parent.map(str::to_owned),
        }
    }
}

/// A body that counts the data bytes passing through it.
pub struct Counting<B> {
    inner: B,
    counter: Arc<AtomicU64>,
}

impl<B> Counting<B> {
    pub fn new(inner: B, counter: Arc<AtomicU64>) -> Self {
        Self { inner, counter }
    }
}

impl<B> HttpBody for Counting<B>
where
    B: HttpBody<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let poll = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &poll {
            if let Some(data) = frame.data_ref() {
                self.counter.fetch_add(data.len() as u64, Ordering::Relaxed);
            }
        }
        poll
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Writes the record once, when dropped.
struct Finish {
    ctx: RequestContext,
    status: u16,
    error_code: Option<String>,
    bytes_out: u64,
    complete: bool,
    /// The response's Content-Length: hyper stops polling a body once that much was sent, so
    /// the end of the stream is never seen; sending all of it is what completes the response.
    expected_len: Option<u64>,
    metrics: Metrics,
    audit: Option<AuditLog>,
}

impl Drop for Finish {
    fn drop(&mut self) {
        if self.expected_len == Some(self.bytes_out) {
            self.complete = true;
        }
        let ctx = &self.ctx;
        let sts_action;
        let (action, operation, bucket, key) = match (&ctx.s3, &ctx.sts) {
            (Some(s), _) => (s.action, s.operation(), s.bucket.as_deref(), s.key.as_deref()),
            (None, Some(call)) => {
                sts_action = format!("sts:{}", call.action);
                (sts_action.as_str(), call.action, None, None)
            }
            (None, None) => ("unknown", "", None, None),
        };
        let duration = ctx.started.elapsed();
        let bytes_in = ctx.bytes_in.load(Ordering::Relaxed);
        self.metrics.request_finished(Mode::Endpoint, action, self.status, duration, bytes_in, self.bytes_out);
        if let Some(role) = &ctx.session_role {
            self.metrics.session_request(role, self.status);
        }
        tracing::info!(
            target: "s3gate::access",
            request_id = %ctx.request_id,
            client = %crate::telemetry::Addr(&ctx.client),
            access_key_id = ctx.access_key_id.as_deref().unwrap_or("-"),
            method = %ctx.method,
            operation,
            bucket = bucket.unwrap_or(""),
            key = key.unwrap_or(""),
            status = self.status,
            error_code = self.error_code.as_deref().unwrap_or(""),
            bytes_in,
            bytes_out = self.bytes_out,
            complete = self.complete,
            route = ctx.route.as_deref().unwrap_or(""),
            duration_ms = duration.as_millis() as u64,
            "request"
        );
        if let Some(audit) = &self.audit {
            audit.record(&AuditRecord {
                time: crate::audit::rfc3339_millis(time::OffsetDateTime::now_utc()),
                request_id: ctx.request_id.clone(),
                client: ctx.client.to_string(),
                access_key_id: ctx.access_key_id.clone(),
                action: action.to_owned(),
                operation: operation.to_owned(),
                bucket: bucket.map(str::to_owned),
                key: key.map(str::to_owned),
                status: self.status,
                error_code: self.error_code.clone(),
                bytes_in,
                bytes_out: self.bytes_out,
                duration_ms: duration.as_millis() as u64,
                route: ctx.route.clone(),
                mode: "endpoint".to_owned(),
                user: None,
                destination: None,
                session: match (&ctx.session, &ctx.sts) {
                    (Some(session), _) => Some(crate::audit::SessionRecord::of(session)),
                    (None, Some(call)) => Some(call.record(ctx.access_key_id.as_deref())),
                    (None, None) => None,
                },
            });
        }
    }
}

/// A response body that writes the request's record when it ends or is dropped (a client
/// that hangs up mid-download still gets its line, marked incomplete).
pub struct Finishing {
    inner: Body,
    finish: Option<Finish>,
    /// The start of an upstream error body, to find its `<Code>` for the record.
    sniff: Option<Vec<u8>>,
}

/// Enough of an S3 error body to hold its `<Code>`.
const SNIFF_LIMIT: usize = 1024;

fn error_code_in(xml: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(xml).ok()?;
    let start = text.find("<Code>")? + 6;
    let len = text[start..].find("</Code>")?;
    let code = &text[start..start + len];
    (code.len() <= 64 && code.chars().all(|c| c.is_ascii_alphanumeric())).then(|| code.to_owned())
}

impl HttpBody for Finishing {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let poll = Pin::new(&mut self.inner).poll_frame(cx);
        match &poll {
            Poll::Ready(Some(Ok(frame))) => {
                let this = &mut *self;
                if let (Some(data), Some(f)) = (frame.data_ref(), this.finish.as_mut()) {
                    f.bytes_out += data.len() as u64;
                    if let Some(buf) = this.sniff.as_mut() {
                        let room = SNIFF_LIMIT.saturating_sub(buf.len());
                        buf.extend_from_slice(&data[..data.len().min(room)]);
                        if let Some(code) = error_code_in(buf) {
                            f.error_code = Some(code);
                            this.sniff = None;
                        } else if buf.len() >= SNIFF_LIMIT {
                            this.sniff = None;
                        }
                    }
                }
            }
            Poll::Ready(None) => {
                if let Some(mut f) = self.finish.take() {
                    f.complete = true;
                }
            }
            Poll::Ready(Some(Err(_))) => {
                self.finish.take();
            }
            Poll::Pending => {}
        }
        poll
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Wraps `resp` so that the record is written when its body is done.
pub fn finish_with(
    resp: Response<Body>,
    ctx: RequestContext,
    metrics: Metrics,
    audit: Option<AuditLog>,
) -> Response<Body> {
    let status = resp.status().as_u16();
    let error_code = resp.headers().get(S3Error::CODE_HEADER).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let (parts, body) = resp.into_parts();
    let empty = body.is_end_stream();
    let expected_len = parts
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .filter(|_| ctx.method != Method::HEAD);
    let mut finish = Finish { ctx, status, error_code, bytes_out: 0, complete: false, expected_len, metrics, audit };
    if empty {
        finish.complete = true;
        drop(finish);
        return Response::from_parts(parts, body);
    }
    let sniff = (status >= 400 && finish.error_code.is_none()).then(Vec::new);
    let wrapped = Finishing { inner: body, finish: Some(finish), sniff };
    Response::from_parts(parts, crate::body::boxed(wrapped))
}
