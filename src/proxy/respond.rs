//! Answers: the upstream's, filtered on the way back (phase 6), s3gate's own built-in ones,
//! and the bounded read of a refused request's body that lets the client see its error.

use http::{header, HeaderValue, Method, Request, Response};
use hyper::body::Incoming;

use super::timeout::IdleTimeout;
use super::{headers, scrub};
use crate::body::{self, Body, BoxError};
use crate::error::S3Error;
use crate::health::Readiness;
use crate::upstream::Route;

/// Reads and discards a refused request's body, up to a limit, before the answer goes out, so
/// the client gets to read it (see `Gateway::process`). A client that sent
/// `Expect: 100-continue` has not sent its body and will not: nothing is read then.
pub(super) async fn drain(body: Incoming, expects_continue: bool) {
    if expects_continue {
        return;
    }
    discard(body).await;
}

/// Reads and drops what is left of a client's body, within a bound: past 8 MiB or 2 s the
/// connection is closed anyway (hyper closes one whose body was left unread), since nobody is
/// owed an unbounded read. Used for requests refused before they were forwarded, and for the
/// rest of a body the upstream answered before it had all arrived (`early`).
pub(super) async fn discard<B>(body: B)
where
    B: http_body::Body<Data = bytes::Bytes> + Unpin,
{
    const LIMIT: usize = 8 * 1024 * 1024;
    if body.is_end_stream() {
        return;
    }
    use http_body_util::BodyExt;
    let mut body = body;
    let mut read = 0usize;
    let deadline = tokio::time::sleep(std::time::Duration::from_secs(2));
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            frame = body.frame() => match frame {
                Some(Ok(f)) => {
                    read += f.data_ref().map_or(0, |d| d.len());
                    if read > LIMIT {
                        break;
                    }
                }
                _ => break,
            },
            () = &mut deadline => break,
        }
    }
}

/// Set on every relayed answer: s3gate's id for the request, beside the upstream's own.
const REQUEST_ID_HEADER: http::HeaderName = http::HeaderName::from_static("x-s3gate-request-id");

/// Phase 6: upstream answers pass through unchanged but for hop-by-hop headers, and small
/// error bodies cleaned of the upstream's identity (`scrub`).
pub(super) async fn response_filter(
    resp: Response<Incoming>,
    request_id: &str,
    idle: std::time::Duration,
    route: &Route,
    head: bool,
) -> Response<Body> {
    let (mut parts, incoming) = resp.into_parts();
    crate::hop_by_hop::remove(&mut parts.headers);
    // Some S3-compatible stores keep the upload's `aws-chunked` framing as the object's
    // Content-Encoding; AWS never returns it, and a client must not try to decode it.
    headers::strip_aws_chunked_encoding(&mut parts.headers);
    if let Ok(v) = HeaderValue::from_str(request_id) {
        parts.headers.insert(REQUEST_ID_HEADER, v);
    }
    if !scrub::applies(parts.status, &parts.headers, head) {
        // One box: the upstream body is wrapped as it is, not boxed once more inside.
        let incoming = http_body_util::BodyExt::map_err(incoming, BoxError::from);
        return Response::from_parts(parts, body::boxed(IdleTimeout::upstream_body(incoming, idle)));
    }
    let read = http_body_util::Limited::new(incoming, scrub::MAX_ERROR_BODY as usize);
    let bytes = match tokio::time::timeout(idle, http_body_util::BodyExt::collect(read)).await {
        Ok(Ok(collected)) => collected.to_bytes(),
        _ => {
            tracing::warn!(request_id, "reading an upstream error answer failed");
            return S3Error::service_unavailable("The upstream's answer could not be read.")
                .into_response(request_id, false);
        }
    };
    let key = route.upstream.credentials().await.ok().map(|c| c.access_key_id().to_owned());
    let cleaned = scrub::error_body(&bytes, key.as_deref());
    parts.headers.insert(header::CONTENT_LENGTH, HeaderValue::from(cleaned.len()));
    Response::from_parts(parts, body::full(cleaned))
}

/// Answers that never reach the upstream and need no signature: readiness (a load balancer's
/// health check, 503 while draining) and liveness.
pub(super) async fn builtin_route<B>(req: &Request<B>, readiness: &Readiness) -> Option<Response<Body>> {
    if !matches!(*req.method(), Method::GET | Method::HEAD) {
        return None;
    }
    match req.uri().path() {
        // Boxed: readiness may look up the upstream credentials, a large future that would
        // otherwise be part of every request's.
        "/_s3gate/health" => Some(Box::pin(readiness.answer("ok\n")).await),
        "/_s3gate/live" => Some(crate::health::live("ok\n")),
        _ => None,
    }
}
