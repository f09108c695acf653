//! Endpoint mode: S3 clients point `--endpoint-url` at s3gate.
//!
//! A request goes through one async function per phase, in order (see
//! `docs/request-flow.md`): network rules -> request filter (classify) -> authenticate (SigV4)
//! -> authorize (policy) -> upstream request (route, headers, verified body) -> forward
//! (re-sign, send, learn regions) -> response filter -> record (log, audit, metrics). Bodies
//! stream through every phase; none is held whole.

mod access;
mod delete_objects;
mod early;
pub(crate) mod headers;
mod outgoing;
pub mod payload;
mod post_object;
mod presign_api;
#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod properties;
mod record;
mod respond;
mod scrub;
mod send;
mod session_auth;
mod sts_api;
mod timeout;

use std::sync::Arc;
use std::time::Instant;

use http::{header, HeaderValue, Method, Request, Response};
use hyper::body::Incoming;

use crate::audit::AuditLog;
use crate::body::{self, Body};
use crate::config::Config;
use crate::error::{S3Error, S3ErrorCode};
use crate::health::Readiness;
pub use crate::listener::ConnInfo;
use crate::metrics::{Metrics, Mode, ROLE_NONE, ROLE_UNKNOWN};
use crate::s3_request::{self, Operation, S3Request};
use crate::session::SessionClaims;
use crate::sigv4::{self, SigV4Error, Verified};
use crate::upstream::Router;
use outgoing::{Admitted, BodyWatch, Outgoing};
use record::RequestContext;
use respond::{builtin_route, drain, response_filter};

/// What the checks on a request's head decided.
enum Next {
    /// s3gate answers itself (the presign API).
    Respond(Response<Body>),
    /// A browser form upload to this bucket.
    PostObject(String),
    /// Authenticated and authorized: forward it.
    Forward(Verified),
    /// A request for s3gate's own STS.
    Sts,
}

/// One configuration's endpoint. A reload builds a new one and swaps it in for new requests;
/// a request keeps the one it started with, so it finishes under the rules it was admitted by.
pub struct Gateway {
    config: Arc<Config>,
    router: Arc<Router>,
    metrics: Metrics,
    audit: Option<AuditLog>,
    readiness: Readiness,
    /// The regions a client's signature may be scoped to (see `access::region_served`).
    client_regions: Vec<String>,
    /// The identity providers of the STS, with their cached keys.
    oidc: crate::oidc::Providers,
    /// Upstream role credentials per (role, client), for roles with an `upstream_role_arn`.
    assumed: crate::upstream::assume::AssumedRoles,
}

impl Gateway {
    /// `previous`: the gateway a reload replaces. What it learned that is still true carries
    /// over: the identity providers' keys, so that a reload while one is down loses none.
    pub fn new(
        config: Arc<Config>,
        router: Arc<Router>,
        metrics: Metrics,
        audit: Option<AuditLog>,
        readiness: Readiness,
        previous: Option<&Gateway>,
    ) -> Self {
        let client_regions = access::client_regions(&config);
        let oidc = crate::oidc::Providers::new(&config.sts.providers, previous.map(|g| &g.oidc)).unwrap_or_else(|e| {
            tracing::error!(error = %e, "identity providers unusable; web identity tokens will be refused");
            crate::oidc::Providers::default()
        });
        let assumed = crate::upstream::assume::AssumedRoles::new(config.sts.upstream_endpoint.clone());
        Self { config, router, metrics, audit, readiness, client_regions, oidc, assumed }
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
            session: None,
            policies: Vec::new(),
            session_role: None,
            sts: None,
        };
        let head = req.method() == Method::HEAD;
        // A refused HTTP/1 request whose client waits for `100 Continue` never sends its body,
        // and hyper closes such a connection after the answer. Saying so lets the client open a
        // new one for its next request instead of sending it down one that is closing.
        let body_unsent = req.version() < http::Version::HTTP_2
            && req.headers().get(header::EXPECT).is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
        let mut resp = match self.process(req, &mut ctx).await {
            Ok(resp) => resp,
            Err(e) => {
                tracing::debug!(request_id = %ctx.request_id, code = %e.code, message = %e.message, "request refused");
                e.into_response(&ctx.request_id, head)
            }
        };
        if body_unsent && resp.status().as_u16() >= 400 {
            resp.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
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
        if let Some(resp) = builtin_route(&head, &self.readiness).await {
            drain(incoming, expects_continue).await;
            return Ok(resp);
        }
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
            // Boxed, as rare paths with large futures (form parsing, identity providers):
            // inline, they would make every request's future as large as theirs.
            Next::PostObject(bucket) => Box::pin(self.post_object(req, &bucket, ctx)).await,
            Next::Sts => Ok(Box::pin(self.sts(req, ctx)).await),
            Next::Forward(verified) => {
                let s3 = ctx.s3.as_ref().ok_or_else(S3Error::internal)?;
                let route = self.router.route(s3.bucket.as_deref());
                ctx.route = Some(route.name.clone());
                let admitted = Admitted { s3, verified: &verified, route };
                let watch = BodyWatch::default();
                let http1 = req.version() < http::Version::HTTP_2;
                let mut outgoing = self.upstream_request(req, &admitted, ctx, &watch)?;
                let handoff = outgoing.handoff.take();
                let outgoing = self.policy_body_checks(outgoing, s3, &verified, ctx).await?;
                let who = (ctx.access_key_id.as_deref().ok_or_else(S3Error::internal)?, ctx.session.as_deref());
                let resp = self.forward(outgoing, s3, route, &watch, who).await?;
                // The answer is final: whatever of the body is still to come goes nowhere.
                let rest = handoff.as_ref().and_then(early::Handoff::stop);
                let head = ctx.method == Method::HEAD;
                let resp = response_filter(resp, &ctx.request_id, self.config.upstream.idle_timeout, route, head).await;
                Ok(match handoff {
                    Some(handoff) => early_answer(resp, handoff, rest, http1),
                    None => resp,
                })
            }
        }
    }

    /// Network rules, classification, authentication and policy: all from the request head.
    fn check(&self, req: &mut Request<()>, ctx: &mut RequestContext) -> Result<Next, S3Error> {
        if !access::source_allowed(&self.config.access, ctx.client.ip()) {
            self.metrics.network_denied(Mode::Endpoint, "source_subnet");
            return Err(S3Error::access_denied());
        }
        ensure_host_header(req)?;
        if req.uri().path() == crate::presign::api::API_PATH && req.method() == Method::GET {
            if !access::host_allowed(&self.config.access, host_of(req).unwrap_or_default()) {
                self.metrics.network_denied(Mode::Endpoint, "endpoint");
                return Err(S3Error::access_denied());
            }
            return self.presign_api(req, ctx).map(Next::Respond);
        }
        let (method, uri) = (req.method(), req.uri());
        if self.config.sts.enabled && crate::sts::is_sts_request(method, uri.path(), uri.query(), req.headers()) {
            return Ok(Next::Sts);
        }
        let s3 = self.request_filter(req)?;
        if !access::endpoint_allowed(&self.config.access, host_of(req).unwrap_or_default(), &s3) {
            self.metrics.network_denied(Mode::Endpoint, "endpoint");
            ctx.s3 = Some(s3);
            return Err(S3Error::access_denied());
        }
        if s3.op() == Operation::CreateSession {
            // S3 Express answers CreateSession with temporary credentials of the caller's, here
            // the upstream's: passing them on would hand the client the upstream's keys.
            ctx.s3 = Some(s3);
            return Err(S3Error::new(
                S3ErrorCode::NotImplemented,
                "CreateSession is not implemented by this gateway: its answer holds the upstream's credentials.",
            ));
        }
        if s3.op() == Operation::PostObject {
            // A browser form: its authentication is the signed policy inside the body.
            let bucket = s3.bucket.clone().unwrap_or_default();
            ctx.s3 = Some(s3);
            return Ok(Next::PostObject(bucket));
        }
        ctx.s3 = Some(s3);
        let (verified, session) =
            self.authenticate(req, ctx).inspect_err(|e| self.metrics.auth_failure(e.code.as_str()))?;
        ctx.access_key_id = Some(verified.access_key_id.clone());
        ctx.policies = self.policies(&verified.access_key_id, session.as_deref())?;
        ctx.session = session;
        let s3 = ctx.s3.as_ref().ok_or_else(S3Error::internal)?;
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
            s3_request::ClassifyError::InvalidArgument(m) => S3Error::invalid_argument(m),
        })
    }

    /// Phase 2: SigV4, header or presigned form, against the credentials s3gate issued or the
    /// temporary ones its STS sealed into the request's session token, scoped to a region
    /// s3gate serves.
    fn authenticate<B>(
        &self,
        req: &Request<B>,
        ctx: &mut RequestContext,
    ) -> Result<(Verified, Option<Arc<SessionClaims>>), S3Error> {
        // A token that does not open is still a request made with temporary credentials.
        let session = self.open_session(req).inspect_err(|_| ctx.session_role = Some(ROLE_UNKNOWN.to_owned()))?;
        ctx.session_role = session.as_deref().map(|s| s.role.clone().unwrap_or_else(|| ROLE_NONE.to_owned()));
        let verified = self.verify_signature(req, session.as_deref())?;
        access::region_served(&self.client_regions, &self.config.upstream.region, &verified)?;
        Ok((verified, session))
    }

    fn verify_signature<B>(&self, req: &Request<B>, session: Option<&SessionClaims>) -> Result<Verified, S3Error> {
        let keys = &self.config.keys;
        // With a session token, only the session's own access key id signs: a long-term key
        // with someone's token is not that session.
        let lookup = |akid: &str| match session {
            Some(s) => (s.access_key_id == akid).then(|| s.secret_key()),
            None => keys.secret(akid),
        };
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
    /// upstream (a denied PUT's body is not read). DeleteObjects names its objects only in
    /// its body, and IAM has no bucket-level permission for it: each object is checked by
    /// `policy_body_checks`.
    fn authorize<B>(
        &self,
        req: &Request<B>,
        s3: &S3Request,
        verified: &Verified,
        ctx: &RequestContext,
    ) -> Result<(), S3Error> {
        if s3.op() == Operation::DeleteObjects && !ctx.policies.is_empty() {
            return Ok(());
        }
        let principal = access::Principal { access_key_id: &verified.access_key_id, session: ctx.session.as_deref() };
        access::check_policy(&ctx.policies, s3, req.headers(), ctx.client.ip(), ctx.secure, principal)
    }
}

/// Relays an answer that came while the request body may still be arriving: the rest of the
/// body is discarded within a bound, and an HTTP/1 connection is closed after the answer (an
/// HTTP/2 stream just ends), since the client may still be sending (see `early`).
fn early_answer(resp: Response<Body>, handoff: early::Handoff, rest: Option<Body>, http1: bool) -> Response<Body> {
    let (mut parts, b) = resp.into_parts();
    if let Some(rest) = rest {
        tokio::spawn(respond::discard(rest));
        if http1 {
            parts.headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
    }
    Response::from_parts(parts, body::boxed(early::Relayed::new(b, handoff)))
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
    let v = HeaderValue::from_str(authority.as_str()).map_err(|_| S3Error::invalid_request("bad host"))?;
    req.headers_mut().insert(header::HOST, v);
    Ok(())
}

/// Sixteen upper-case hex digits, as S3's own request ids look.
fn new_request_id() -> String {
    const DIGITS: &[u8; 16] = b"0123456789ABCDEF";
    let n = rand::random::<u64>();
    let mut id = String::with_capacity(16);
    for shift in (0..16).rev() {
        id.push(char::from(DIGITS[((n >> (shift * 4)) & 0xf) as usize]));
    }
    id
}

#[cfg(test)]
mod tests {
    #[test]
    fn request_ids_are_sixteen_upper_case_hex_digits_and_differ() {
        let ids: Vec<String> = (0..64).map(|_| super::new_request_id()).collect();
        for id in &ids {
            assert_eq!(id.len(), 16, "{id}");
            assert!(id.bytes().all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b)), "{id}");
        }
        let distinct: std::collections::HashSet<&String> = ids.iter().collect();
        assert_eq!(distinct.len(), ids.len());
        // Every digit position takes every value over enough ids (none is stuck at zero).
        let many: Vec<String> = (0..2000).map(|_| super::new_request_id()).collect();
        for pos in 0..16 {
            let seen: std::collections::HashSet<u8> = many.iter().map(|id| id.as_bytes()[pos]).collect();
            assert_eq!(seen.len(), 16, "position {pos}");
        }
    }
}
