//! Endpoint mode: S3 clients point `--endpoint-url` at s3gate.
//!
//! A request goes through one async function per phase, in order (see
//! `docs/request-flow.md`): network rules -> request filter (classify) -> authenticate (SigV4)
//! -> authorize (policy) -> upstream request (route, headers, verified body) -> forward
//! (re-sign, send, learn regions) -> response filter -> record (log, audit, metrics). Bodies
//! stream through every phase; none is held whole.

mod access;
mod form_upload;
pub(crate) mod headers;
pub mod payload;
#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod properties;
mod record;
mod timeout;

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use hyper::body::Incoming;

use crate::audit::AuditLog;
use crate::body::{self, Body};
use crate::config::Config;
use crate::error::{S3Error, S3ErrorCode};
pub use crate::listener::ConnInfo;
use crate::metrics::{Metrics, Mode};
use crate::s3_request::{self, Operation, S3Request};
use crate::sigv4::chunked::ChunkSigning;
use crate::sigv4::{self, PayloadMode, SigV4Error, Verified};
use crate::upstream::{Route, Router};
use payload::{AwsChunkedBody, ChunkedOutput, FailureSlot, Sha256Body};
use record::{Counting, RequestContext};
use timeout::{BodySent, IdleTimeout};

/// What the checks on a request's head decided.
enum Next {
    /// s3gate answers itself (health check, presign API).
    Respond(Response<Body>),
    /// A browser form upload to this bucket.
    PostObject(String),
    /// Authenticated and authorized: forward it.
    Forward(Verified),
}

/// Reads and discards a refused request's body, up to a limit, before the answer goes out, so
/// the client gets to read it (see `Gateway::process`). A client that sent
/// `Expect: 100-continue` has not sent its body and will not: nothing is read then.
async fn drain(body: Incoming, expects_continue: bool) {
    /// Past this the connection is closed anyway: nobody is owed an unbounded read.
    const LIMIT: usize = 8 * 1024 * 1024;
    if expects_continue || http_body::Body::is_end_stream(&body) {
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

/// A request on its way upstream, before it is signed: kept unsigned so that a request that
/// has to go to another region can be signed again.
struct Outgoing {
    method: Method,
    headers: http::HeaderMap,
    query: String,
    body: Body,
    payload_hash: String,
    /// No body: it can be sent again, as is, after a region redirect.
    bodiless: bool,
}

pub struct Gateway {
    config: Arc<Config>,
    router: Router,
    metrics: Metrics,
    audit: Option<AuditLog>,
}

impl Gateway {
    pub fn new(config: Arc<Config>, router: Router, metrics: Metrics, audit: Option<AuditLog>) -> Self {
        Self { config, router, metrics, audit }
    }

    /// Entry point for every endpoint-mode request. Never fails: errors become S3 XML.
    pub async fn handle(self: Arc<Self>, req: Request<Incoming>, conn: ConnInfo) -> Response<Body> {
        let client = access::client_address(&self.config.access, conn.peer, conn.proxied, req.headers());
        let mut ctx = RequestContext {
            request_id: new_request_id(),
            client,
            secure: conn.secure,
            started: Instant::now(),
            method: req.method().clone(),
            access_key_id: None,
            s3: None,
            route: None,
            bytes_in: Default::default(),
        };
        let head = req.method() == Method::HEAD;
        let resp = match self.process(req, &mut ctx).await {
            Ok(resp) => resp,
            Err(e) => {
                tracing::debug!(request_id = %ctx.request_id, code = %e.code, message = %e.message, "request refused");
                e.into_response(&ctx.request_id, head)
            }
        };
        record::finish_with(resp, ctx, self.metrics.clone(), self.audit.clone())
    }

    /// Every check that needs only the request head runs first; the body is taken only to be
    /// forwarded. A request refused before that has its body read and discarded (up to a limit)
    /// before the answer goes out, so the client reads the error instead of a reset connection:
    /// hyper closes a connection whose request body was left unread, and closing a socket with
    /// unread data in it makes the kernel answer with RST, which can destroy the response.
    async fn process(&self, req: Request<Incoming>, ctx: &mut RequestContext) -> Result<Response<Body>, S3Error> {
        let (parts, incoming) = req.into_parts();
        let expects_continue = parts
            .headers
            .get(header::EXPECT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("100-continue"));
        let mut head = Request::from_parts(parts, ());
        let next = match self.check(&mut head, ctx) {
            Ok(next) => next,
            Err(e) => {
                drain(incoming, expects_continue).await;
                return Err(e);
            }
        };
        let (parts, ()) = head.into_parts();
        let req = Request::from_parts(parts, incoming);
        match next {
            Next::Respond(resp) => {
                drain(req.into_body(), expects_continue).await;
                Ok(resp)
            }
            Next::PostObject(bucket) => self.post_object(req, &bucket, ctx).await,
            Next::Forward(verified) => {
                let s3 = ctx.s3.as_ref().ok_or_else(internal)?;
                let route = self.router.route(s3.bucket.as_deref());
                ctx.route = Some(route.name.clone());
                let slot = FailureSlot::default();
                let sent = BodySent::default();
                let outgoing = self.upstream_request(req, s3, &verified, route, ctx, slot.clone(), sent.clone())?;
                let outgoing = self.policy_body_checks(outgoing, s3, &verified, ctx).await?;
                let resp = self.forward(outgoing, s3, route, &slot, &sent).await?;
                Ok(response_filter(resp, &ctx.request_id, self.config.upstream.idle_timeout))
            }
        }
    }

    /// Network rules, classification, authentication and policy: all from the request head.
    fn check(&self, req: &mut Request<()>, ctx: &mut RequestContext) -> Result<Next, S3Error> {
        if let Some(resp) = builtin_route(req) {
            return Ok(Next::Respond(resp));
        }
        if !access::source_allowed(&self.config.access, ctx.client.ip()) {
            self.metrics.network_denied(Mode::Endpoint, "source_subnet");
            return Err(access::access_denied());
        }
        ensure_host_header(req)?;
        if req.uri().path() == crate::presign::api::API_PATH && req.method() == Method::GET {
            return self.presign_api(req, ctx).map(Next::Respond);
        }
        let s3 = self.request_filter(req)?;
        if !access::endpoint_allowed(&self.config.access, host_of(req).unwrap_or_default(), &s3) {
            self.metrics.network_denied(Mode::Endpoint, "endpoint");
            ctx.s3 = Some(s3);
            return Err(access::access_denied());
        }
        if s3.op() == Operation::PostObject {
            // A browser form: its authentication is the signed policy inside the body.
            let bucket = s3.bucket.clone().unwrap_or_default();
            ctx.s3 = Some(s3);
            return Ok(Next::PostObject(bucket));
        }
        ctx.s3 = Some(s3);
        let verified = self.authenticate(req).inspect_err(|e| self.metrics.auth_failure(e.code.as_str()))?;
        ctx.access_key_id = Some(verified.access_key_id.clone());
        let s3 = ctx.s3.as_ref().ok_or_else(internal)?;
        self.authorize(req, s3, &verified, ctx).inspect_err(|_| self.metrics.policy_denied(s3.action))?;
        Ok(Next::Forward(verified))
    }

    /// Phase 1: classify once into action, bucket and key.
    fn request_filter<B>(&self, req: &Request<B>) -> Result<S3Request, S3Error> {
        let host = host_of(req).unwrap_or_default();
        s3_request::classify(
            req.method(),
            host,
            req.uri().path(),
            req.uri().query(),
            req.headers(),
            &self.config.domains,
        )
        .map_err(|e| match e {
            s3_request::ClassifyError::InvalidBucketName(b) => {
                S3Error::new(S3ErrorCode::InvalidBucketName, "The specified bucket is not valid.").with_resource(b)
            }
            s3_request::ClassifyError::InvalidUri(m) => {
                S3Error::new(S3ErrorCode::InvalidURI, format!("Couldn't parse the specified URI: {m}"))
            }
            s3_request::ClassifyError::InvalidArgument(m) => S3Error::new(S3ErrorCode::InvalidArgument, m),
        })
    }

    /// Phase 2: SigV4, header or presigned form, against the credentials s3gate issued.
    fn authenticate<B>(&self, req: &Request<B>) -> Result<Verified, S3Error> {
        let keys = &self.config.keys;
        let lookup = |akid: &str| keys.secret(akid);
        let now = time::OffsetDateTime::now_utc();
        let skew = self.config.max_clock_skew;
        let (path, query) = (req.uri().path(), req.uri().query());
        if sigv4::is_presigned(query) {
            let q = query.unwrap_or_default();
            return Ok(sigv4::verify_presigned(
                req.method(),
                path,
                q,
                req.headers(),
                &lookup,
                now,
                skew,
                std::time::Duration::from_secs(604_800),
            )?);
        }
        if !req.headers().contains_key(header::AUTHORIZATION) {
            if sigv4::is_sigv2_query(query) {
                return Err(SigV4Error::UnsupportedSigV2.into());
            }
            return Err(S3Error::new(S3ErrorCode::AccessDenied, "Anonymous access is not allowed; sign the request."));
        }
        Ok(sigv4::verify_header_auth(req.method(), path, query, req.headers(), &lookup, now, skew)?)
    }

    /// Phase 3: the credential's policy, if it has one. Denied requests never reach the
    /// upstream (a denied PUT's body is not read).
    fn authorize<B>(
        &self,
        req: &Request<B>,
        s3: &S3Request,
        verified: &Verified,
        ctx: &RequestContext,
    ) -> Result<(), S3Error> {
        match self.config.keys.policy(&verified.access_key_id) {
            None => Ok(()),
            Some(policy) => {
                access::check_policy(&policy, s3, req.headers(), ctx.client.ip(), ctx.secure, &verified.access_key_id)
            }
        }
    }

    /// Phase 4: forwarded headers and the verified body, not yet signed.
    #[allow(clippy::too_many_arguments)]
    fn upstream_request(
        &self,
        req: Request<Incoming>,
        s3: &S3Request,
        verified: &Verified,
        route: &Route,
        ctx: &RequestContext,
        slot: FailureSlot,
        sent: BodySent,
    ) -> Result<Outgoing, S3Error> {
        let slot_for_timeout = slot.clone();
        let (parts, incoming) = req.into_parts();
        let incoming = Counting::new(incoming, ctx.bytes_in.clone());
        let mut headers = headers::forwardable(&parts.headers, &verified.signed_headers);
        let content_length = headers::content_length(&parts.headers)?;
        let framed = content_length.is_some() || parts.headers.contains_key(header::TRANSFER_ENCODING);
        let (body, payload_hash) = match &verified.payload {
            // No Content-Length and no Transfer-Encoding: HTTP says there is no body. Say so
            // upstream with an explicit length, or hyper would pick chunked framing.
            PayloadMode::Sha256(hash) if !framed => {
                if hex::encode(hash) != sigv4::EMPTY_SHA256 {
                    return Err(SigV4Error::ContentSha256Mismatch.into());
                }
                headers::set_empty_body_length(&mut headers, &parts.method);
                (body::empty(), sigv4::EMPTY_SHA256.to_owned())
            }
            PayloadMode::Unsigned if !framed => {
                headers::set_empty_body_length(&mut headers, &parts.method);
                (body::empty(), sigv4::UNSIGNED_PAYLOAD.to_owned())
            }
            PayloadMode::Unsigned => {
                headers::set_content_length(&mut headers, content_length);
                (body::boxed(incoming), sigv4::UNSIGNED_PAYLOAD.to_owned())
            }
            // The same hash goes upstream, which checks the body against it (AWS S3 does), so
            // the body stays bound to the client's signature without s3gate hashing it again.
            // `--verify-body-hash` adds s3gate's own check for stores that do not; a body read
            // whole for a policy check (DeleteObjects) is always checked here.
            PayloadMode::Sha256(hash) if self.config.verify_body_hash || s3.op() == Operation::DeleteObjects => {
                headers::set_content_length(&mut headers, content_length);
                let b = Sha256Body::new(incoming, *hash, content_length, slot);
                (body::boxed(b), hex::encode(hash))
            }
            PayloadMode::Sha256(hash) => {
                headers::set_content_length(&mut headers, content_length);
                (body::boxed(incoming), hex::encode(hash))
            }
            PayloadMode::StreamingSigned { trailer } => {
                let signing = ChunkSigning::Signed {
                    key: verified.signing_key.clone(),
                    scope: verified.scope.clone(),
                    amz_date: verified.amz_date.clone(),
                    seed_signature: verified.seed_signature,
                };
                chunked(&parts.headers, &mut headers, incoming, signing, *trailer, slot)?
            }
            PayloadMode::StreamingUnsignedTrailer => {
                chunked(&parts.headers, &mut headers, incoming, ChunkSigning::Unsigned, true, slot)?
            }
        };
        let bodiless = http_body::Body::is_end_stream(&body);
        let body = if bodiless {
            sent.mark();
            body
        } else {
            body::boxed(IdleTimeout::client_body(body, self.config.upstream.idle_timeout, slot_for_timeout, sent))
        };
        if let Some(class) = &route.storage_class {
            if matches!(s3.op(), Operation::PutObject | Operation::CopyObject | Operation::CreateMultipartUpload) {
                if let Ok(v) = HeaderValue::from_str(class) {
                    headers.insert("x-amz-storage-class", v);
                }
            }
        }
        headers::alias_copy_source(&mut headers, &self.router);
        let query = upstream_query(parts.uri.query(), verified.presigned);
        Ok(Outgoing { method: parts.method, headers, query, body, payload_hash, bodiless })
    }

    /// DeleteObjects under a policy: every key in the body is checked before anything is sent.
    async fn policy_body_checks(
        &self,
        out: Outgoing,
        s3: &S3Request,
        verified: &Verified,
        ctx: &RequestContext,
    ) -> Result<Outgoing, S3Error> {
        if s3.op() != Operation::DeleteObjects {
            return Ok(out);
        }
        let Some(policy) = self.config.keys.policy(&verified.access_key_id) else { return Ok(out) };
        let Outgoing { method, headers, query, body, payload_hash, bodiless } = out;
        let bytes: Bytes = access::check_delete_objects(
            &policy,
            s3,
            &headers,
            ctx.client.ip(),
            ctx.secure,
            &verified.access_key_id,
            body,
        )
        .await
        .inspect_err(|_| self.metrics.policy_denied("s3:DeleteObject"))?;
        Ok(Outgoing { method, headers, query, body: body::full(bytes), payload_hash, bodiless })
    }

    /// Phase 5: sign for the route's upstream and send. A bodiless request that the upstream
    /// redirects to the bucket's real region is signed again for it and retried once.
    async fn forward(
        &self,
        out: Outgoing,
        s3: &S3Request,
        route: &Route,
        slot: &FailureSlot,
        sent: &BodySent,
    ) -> Result<Response<Incoming>, S3Error> {
        let upstream = &route.upstream;
        let bucket = s3.bucket.as_deref().map(|b| route.upstream_bucket(b));
        let Outgoing { method, headers, query, body, payload_hash, bodiless } = out;
        let mut body = Some(body);
        for attempt in 0..2 {
            let uri = upstream
                .uri_for(bucket, s3.key.as_deref(), &query)
                .map_err(|e| S3Error::new(S3ErrorCode::InvalidURI, e.to_string()))?;
            let mut req = Request::new(body.take().unwrap_or_else(body::empty));
            *req.method_mut() = method.clone();
            *req.uri_mut() = uri;
            *req.headers_mut() = headers.clone();
            let (mut parts, b) = req.into_parts();
            let creds = upstream.credentials().await.map_err(|e| {
                tracing::error!(error = %e, "no upstream credentials");
                self.metrics.upstream_error("credentials");
                S3Error::new(S3ErrorCode::ServiceUnavailable, "The gateway has no upstream credentials right now.")
            })?;
            let region = upstream.region_for(bucket);
            sigv4::sign_upstream(&mut parts, &creds, &region, &payload_hash, std::time::SystemTime::now()).map_err(
                |e| {
                    tracing::error!(error = %e, "signing the upstream request failed");
                    internal()
                },
            )?;
            let resp = self.send(Request::from_parts(parts, b), route, slot, sent).await?;
            if attempt == 0 && bodiless {
                if let (Some(b), Some(learned)) = (bucket, redirect_region(&resp)) {
                    if upstream.learn_region(b, &learned) {
                        continue;
                    }
                }
            }
            return Ok(resp);
        }
        Err(internal())
    }

    /// Sends one request; once its body is sent, the upstream has `idle_timeout` to answer.
    async fn send(
        &self,
        req: Request<Body>,
        route: &Route,
        slot: &FailureSlot,
        sent: &BodySent,
    ) -> Result<Response<Incoming>, S3Error> {
        let limit = self.config.upstream.idle_timeout;
        let send = route.upstream.send(req);
        tokio::pin!(send);
        let result = loop {
            let wake = match sent.at() {
                Some(at) => at + limit,
                None => tokio::time::Instant::now() + limit,
            };
            tokio::select! {
                r = &mut send => break r,
                () = tokio::time::sleep_until(wake) => {
                    if sent.at().is_some_and(|at| at.elapsed() >= limit) {
                        tracing::warn!(secs = limit.as_secs(), route = %route.name, "upstream did not answer in time");
                        self.metrics.upstream_error("timeout");
                        return Err(S3Error::new(
                            S3ErrorCode::ServiceUnavailable,
                            "The upstream S3 endpoint did not answer in time.",
                        ));
                    }
                }
            }
        };
        match result {
            Ok(resp) => Ok(resp),
            Err(e) => {
                if let Some(body_error) = slot.take() {
                    return Err(body_error);
                }
                let kind = if e.is_connect() { "connect" } else { "other" };
                self.metrics.upstream_error(kind);
                tracing::warn!(error = %e, source = ?std::error::Error::source(&e), route = %route.name, "upstream request failed");
                Err(S3Error::new(S3ErrorCode::ServiceUnavailable, "The upstream S3 endpoint could not be reached."))
            }
        }
    }
}

fn chunked(
    client_headers: &http::HeaderMap,
    headers: &mut http::HeaderMap,
    incoming: Counting<Incoming>,
    signing: ChunkSigning,
    trailer: bool,
    slot: FailureSlot,
) -> Result<(Body, String), S3Error> {
    let decoded_len = headers::decoded_content_length(client_headers)?;
    let checksum = headers::announced_trailer_checksum(client_headers);
    headers::strip_aws_chunked_encoding(headers);
    headers.remove(header::CONTENT_LENGTH);
    if trailer {
        headers.insert("x-amz-decoded-content-length", HeaderValue::from(decoded_len));
        headers::add_aws_chunked_encoding(headers);
        let b =
            AwsChunkedBody::new(incoming, signing, true, ChunkedOutput::UnsignedTrailer, decoded_len, checksum, slot);
        Ok((body::boxed(b), sigv4::STREAMING_UNSIGNED_TRAILER.to_owned()))
    } else {
        headers.remove(http::HeaderName::from_static("x-amz-trailer"));
        headers::set_content_length(headers, Some(decoded_len));
        let b = AwsChunkedBody::new(incoming, signing, false, ChunkedOutput::Decoded, decoded_len, None, slot);
        Ok((body::boxed(b), sigv4::UNSIGNED_PAYLOAD.to_owned()))
    }
}

/// The region an upstream redirect names (`x-amz-bucket-region` on a 301 PermanentRedirect or
/// a 400 for the wrong signing region), so the request can go there instead.
fn redirect_region<B>(resp: &Response<B>) -> Option<String> {
    let status = resp.status();
    if status != StatusCode::MOVED_PERMANENTLY
        && status != StatusCode::BAD_REQUEST
        && status != StatusCode::TEMPORARY_REDIRECT
    {
        return None;
    }
    resp.headers().get("x-amz-bucket-region").and_then(|v| v.to_str().ok()).map(str::to_owned)
}

/// Phase 6: upstream answers pass through unchanged but for hop-by-hop headers.
fn response_filter(resp: Response<Incoming>, request_id: &str, idle: std::time::Duration) -> Response<Body> {
    let (mut parts, incoming) = resp.into_parts();
    headers::remove_hop_by_hop(&mut parts.headers);
    // Some S3-compatible stores keep the upload's `aws-chunked` framing as the object's
    // Content-Encoding; AWS never returns it, and a client must not try to decode it.
    headers::strip_aws_chunked_encoding(&mut parts.headers);
    if let Ok(v) = HeaderValue::from_str(request_id) {
        parts.headers.insert("x-s3gate-request-id", v);
    }
    Response::from_parts(parts, body::boxed(IdleTimeout::upstream_body(body::boxed(incoming), idle)))
}

/// Answers that never reach the upstream and need no signature.
fn builtin_route<B>(req: &Request<B>) -> Option<Response<Body>> {
    if req.uri().path() == "/_s3gate/health" && matches!(*req.method(), Method::GET | Method::HEAD) {
        let mut resp = Response::new(body::full("ok\n"));
        resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        return Some(resp);
    }
    None
}

fn host_of<B>(req: &Request<B>) -> Option<&str> {
    req.headers().get(header::HOST).and_then(|h| h.to_str().ok()).or_else(|| req.uri().authority().map(|a| a.as_str()))
}

/// HTTP/2 clients put the host in `:authority`; the signature covers it as `host`.
fn ensure_host_header<B>(req: &mut Request<B>) -> Result<(), S3Error> {
    if req.headers().contains_key(header::HOST) {
        return Ok(());
    }
    let authority = req.uri().authority().ok_or_else(|| {
        S3Error::new(S3ErrorCode::MissingSecurityHeader, "Your request was missing a required header: host")
    })?;
    let v =
        HeaderValue::from_str(authority.as_str()).map_err(|_| S3Error::new(S3ErrorCode::InvalidRequest, "bad host"))?;
    req.headers_mut().insert(header::HOST, v);
    Ok(())
}

/// The upstream query: the client's own parameters as it wrote them (`delimiter=` stays
/// `delimiter=`), without the presigned-auth parameters, which never leave s3gate. The
/// upstream signer canonicalizes the encoding.
fn upstream_query(raw: Option<&str>, presigned: bool) -> String {
    let mut out = String::new();
    for pair in raw.unwrap_or_default().split('&').filter(|p| !p.is_empty()) {
        let name = pair.split_once('=').map_or(pair, |(k, _)| k);
        if presigned && is_presign_param(&percent_encoding::percent_decode_str(name).decode_utf8_lossy()) {
            continue;
        }
        if !out.is_empty() {
            out.push('&');
        }
        out.push_str(pair);
    }
    out
}

fn is_presign_param(name: &str) -> bool {
    matches!(
        name,
        "X-Amz-Algorithm"
            | "X-Amz-Credential"
            | "X-Amz-Date"
            | "X-Amz-Expires"
            | "X-Amz-SignedHeaders"
            | "X-Amz-Signature"
            | "X-Amz-Security-Token"
    )
}

fn internal() -> S3Error {
    S3Error::new(S3ErrorCode::InternalError, "We encountered an internal error. Please try again.")
}

fn new_request_id() -> String {
    format!("{:016X}", rand::random::<u64>())
}
