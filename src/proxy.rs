//! Endpoint mode: S3 clients point `--endpoint-url` at s3gate.
//!
//! A request goes through one async function per phase, in order (see
//! `docs/request-flow.md`): request filter (classify) -> authenticate (SigV4) -> upstream
//! peer (where it goes) -> upstream request (headers, verified body, re-sign) -> forward ->
//! response filter -> log. Bodies stream through every phase; none is held whole.

mod headers;
pub mod payload;
mod timeout;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use http::{header, HeaderValue, Method, Request, Response};
use hyper::body::Incoming;

use crate::body::{self, Body};
use crate::config::Config;
use crate::error::{S3Error, S3ErrorCode};
use crate::s3_request::{self, S3Request};
use crate::sigv4::chunked::ChunkSigning;
use crate::sigv4::{self, PayloadMode, SigV4Error, Verified};
use crate::upstream::Upstream;
use payload::{AwsChunkedBody, ChunkedOutput, FailureSlot, Sha256Body};
use timeout::{BodySent, IdleTimeout};

/// What s3gate knows about one request as it moves through the phases; the log line is made
/// from it.
pub struct RequestContext {
    pub request_id: String,
    pub client: SocketAddr,
    pub secure: bool,
    pub started: Instant,
    pub access_key_id: Option<String>,
    pub s3: Option<S3Request>,
}

pub struct Gateway {
    config: Arc<Config>,
    upstream: Upstream,
}

impl Gateway {
    pub fn new(config: Arc<Config>, upstream: Upstream) -> Self {
        Self { config, upstream }
    }

    /// Entry point for every endpoint-mode request. Never fails: errors become S3 XML.
    pub async fn handle(self: Arc<Self>, req: Request<Incoming>, client: SocketAddr, secure: bool) -> Response<Body> {
        let mut ctx = RequestContext {
            request_id: new_request_id(),
            client,
            secure,
            started: Instant::now(),
            access_key_id: None,
            s3: None,
        };
        let head = req.method() == Method::HEAD;
        let method = req.method().clone();
        let resp = match self.process(req, &mut ctx).await {
            Ok(resp) => resp,
            Err(e) => {
                tracing::debug!(request_id = %ctx.request_id, code = %e.code, message = %e.message, "request refused");
                e.into_response(&ctx.request_id, head)
            }
        };
        log_request(&ctx, &method, &resp);
        resp
    }

    async fn process(&self, mut req: Request<Incoming>, ctx: &mut RequestContext) -> Result<Response<Body>, S3Error> {
        if let Some(resp) = builtin_route(&req) {
            return Ok(resp);
        }
        ensure_host_header(&mut req)?;
        let s3 = self.request_filter(&req)?;
        ctx.s3 = Some(s3);
        let verified = self.authenticate(&req)?;
        ctx.access_key_id = Some(verified.access_key_id.clone());
        let s3 = ctx.s3.as_ref().ok_or_else(internal)?;
        let uri = self.upstream_peer(s3, &verified)?;
        let slot = FailureSlot::default();
        let sent = BodySent::default();
        let upstream_req = self.upstream_request(req, uri, &verified, slot.clone(), sent.clone()).await?;
        let resp = self.forward(upstream_req, &slot, &sent).await?;
        Ok(response_filter(resp, &ctx.request_id, self.config.upstream.idle_timeout))
    }

    /// Phase 1: classify once into action, bucket and key.
    fn request_filter(&self, req: &Request<Incoming>) -> Result<S3Request, S3Error> {
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
        })
    }

    /// Phase 2: SigV4, header or presigned form, against the credentials s3gate issued.
    fn authenticate(&self, req: &Request<Incoming>) -> Result<Verified, S3Error> {
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
            return Err(S3Error::new(S3ErrorCode::AccessDenied, "Anonymous access is not allowed; sign the request."));
        }
        Ok(sigv4::verify_header_auth(req.method(), path, query, req.headers(), &lookup, now, skew)?)
    }

    /// Phase 3: the upstream URI for this bucket and key.
    fn upstream_peer(&self, s3: &S3Request, verified: &Verified) -> Result<http::Uri, S3Error> {
        let query = upstream_query(&s3.query, verified.presigned);
        self.upstream
            .uri_for(s3.bucket.as_deref(), s3.key.as_deref(), &query)
            .map_err(|e| S3Error::new(S3ErrorCode::InvalidURI, e.to_string()))
    }

    /// Phase 4: forwarded headers, the verified body, and the upstream signature.
    async fn upstream_request(
        &self,
        req: Request<Incoming>,
        uri: http::Uri,
        verified: &Verified,
        slot: FailureSlot,
        sent: BodySent,
    ) -> Result<Request<Body>, S3Error> {
        let slot_for_timeout = slot.clone();
        let (parts, incoming) = req.into_parts();
        let mut headers = headers::forwardable(&parts.headers);
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
            PayloadMode::Sha256(hash) => {
                headers::set_content_length(&mut headers, content_length);
                let b = Sha256Body::new(incoming, *hash, content_length, slot);
                (body::boxed(b), hex::encode(hash))
            }
            PayloadMode::StreamingSigned { trailer } => {
                let signing = ChunkSigning::Signed {
                    key: verified.signing_key.clone(),
                    scope: verified.scope.clone(),
                    amz_date: verified.amz_date.clone(),
                    seed_signature: verified.seed_signature,
                };
                self.chunked(&parts.headers, &mut headers, incoming, signing, *trailer, slot)?
            }
            PayloadMode::StreamingUnsignedTrailer => {
                self.chunked(&parts.headers, &mut headers, incoming, ChunkSigning::Unsigned, true, slot)?
            }
        };
        let body = if http_body::Body::is_end_stream(&body) {
            sent.mark();
            body
        } else {
            body::boxed(IdleTimeout::client_body(body, self.config.upstream.idle_timeout, slot_for_timeout, sent))
        };
        let mut out = Request::new(body);
        *out.method_mut() = parts.method;
        *out.uri_mut() = uri;
        *out.headers_mut() = headers;
        let (mut parts, body) = out.into_parts();
        let creds = self.upstream.credentials().await.map_err(|e| {
            tracing::error!(error = %e, "no upstream credentials");
            S3Error::new(S3ErrorCode::ServiceUnavailable, "The gateway has no upstream credentials right now.")
        })?;
        sigv4::sign_upstream(&mut parts, &creds, &self.upstream.region, &payload_hash, std::time::SystemTime::now())
            .map_err(|e| {
                tracing::error!(error = %e, "signing the upstream request failed");
                internal()
            })?;
        Ok(Request::from_parts(parts, body))
    }

    fn chunked(
        &self,
        client_headers: &http::HeaderMap,
        headers: &mut http::HeaderMap,
        incoming: Incoming,
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
            let b = AwsChunkedBody::new(
                incoming,
                signing,
                true,
                ChunkedOutput::UnsignedTrailer,
                decoded_len,
                checksum,
                slot,
            );
            Ok((body::boxed(b), sigv4::STREAMING_UNSIGNED_TRAILER.to_owned()))
        } else {
            headers.remove(http::HeaderName::from_static("x-amz-trailer"));
            headers::set_content_length(headers, Some(decoded_len));
            let b = AwsChunkedBody::new(incoming, signing, false, ChunkedOutput::Decoded, decoded_len, None, slot);
            Ok((body::boxed(b), sigv4::UNSIGNED_PAYLOAD.to_owned()))
        }
    }

    /// Phase 5: send it; a body that failed verification answers with its own S3 error.
    /// Once the body is sent, the upstream has `idle_timeout` to answer.
    async fn forward(
        &self,
        req: Request<Body>,
        slot: &FailureSlot,
        sent: &BodySent,
    ) -> Result<Response<Incoming>, S3Error> {
        let limit = self.config.upstream.idle_timeout;
        let send = self.upstream.send(req);
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
                        tracing::warn!(secs = limit.as_secs(), "upstream did not answer in time");
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
                tracing::warn!(error = %e, source = ?std::error::Error::source(&e), "upstream request failed");
                Err(S3Error::new(S3ErrorCode::ServiceUnavailable, "The upstream S3 endpoint could not be reached."))
            }
        }
    }
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

/// Phase 7: one line per request. Never the query (a presigned URL's signature lives there).
fn log_request(ctx: &RequestContext, method: &Method, resp: &Response<Body>) {
    let (op, bucket, key) = match &ctx.s3 {
        Some(s) => (s.operation(), s.bucket.as_deref().unwrap_or(""), s.key.as_deref().unwrap_or("")),
        None => ("", "", ""),
    };
    tracing::info!(
        target: "s3gate::access",
        request_id = %ctx.request_id,
        client = %ctx.client,
        access_key_id = ctx.access_key_id.as_deref().unwrap_or("-"),
        method = %method,
        operation = op,
        bucket,
        key,
        status = resp.status().as_u16(),
        error_code = resp.headers().get("x-amz-error-code").and_then(|v| v.to_str().ok()).unwrap_or(""),
        secure = ctx.secure,
        duration_ms = ctx.started.elapsed().as_millis() as u64,
        "request"
    );
}

/// Answers that never reach the upstream and need no signature.
fn builtin_route(req: &Request<Incoming>) -> Option<Response<Body>> {
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

/// The upstream query: decoded pairs encoded again strictly (so `+` and space are never
/// ambiguous), without the presigned-auth parameters, which never leave s3gate.
fn upstream_query(pairs: &[(String, String)], presigned: bool) -> String {
    let mut out = String::new();
    for (k, v) in pairs {
        if presigned && is_presign_param(k) {
            continue;
        }
        if !out.is_empty() {
            out.push('&');
        }
        out.push_str(&encode_component(k));
        if !v.is_empty() {
            out.push('=');
            out.push_str(&encode_component(v));
        }
    }
    out
}

/// Everything but RFC 3986 unreserved characters is escaped, as SigV4 canonicalizes it.
const STRICT: &percent_encoding::AsciiSet =
    &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

fn encode_component(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, STRICT).to_string()
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
