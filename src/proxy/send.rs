//! Phase 5, forward: the request signed for the route's upstream and sent on a kept
//! connection (`upstream::pool`), within the upstream's time to answer; a bodiless request
//! redirected to the bucket's real region is signed again for it and retried once.

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;

use super::outgoing::{BodyWatch, Outgoing};
use super::Gateway;
use crate::body::{self, Body};
use crate::config::UpstreamRole;
use crate::error::{S3Error, S3ErrorCode};
use crate::s3_request::S3Request;
use crate::session::SessionClaims;
use crate::sigv4;
use crate::upstream::assume::{AssumeError, AssumeRequest, Client};
use crate::upstream::Route;

impl Gateway {
    /// Phase 5: sign for the route's upstream and send. A bodiless request that the upstream
    /// redirects to the bucket's real region is signed again for it and retried once.
    pub(super) async fn forward(
        &self,
        out: Outgoing,
        s3: &S3Request,
        route: &Route,
        watch: &BodyWatch,
        (access_key_id, session): (&str, Option<&SessionClaims>),
    ) -> Result<Response<Incoming>, S3Error> {
        let upstream = &route.upstream;
        let bucket = s3.bucket.as_deref().map(|b| route.upstream_bucket(b));
        let Outgoing { method, headers, query, body, payload_hash, bodiless, handoff: _ } = out;
        let mut body = Some(body);
        let mut headers = Some(headers);
        for attempt in 0..2 {
            // Kept for a second attempt only where one may follow.
            let retry_possible = attempt == 0 && bodiless;
            let uri = upstream
                .uri_for(bucket, s3.key.as_deref(), &query)
                .map_err(|e| S3Error::new(S3ErrorCode::InvalidURI, e.to_string()))?;
            let mut req = Request::new(body.take().unwrap_or_else(body::empty));
            *req.method_mut() = method.clone();
            *req.headers_mut() = match &mut headers {
                Some(h) if retry_possible => super::headers::copy_for_upstream(h),
                h => h.take().unwrap_or_default(),
            };
            if let Some(host) = upstream.host_header(&uri) {
                req.headers_mut().insert(http::header::HOST, host);
            }
            *req.uri_mut() = uri;
            let (mut parts, b) = req.into_parts();
            let creds = upstream.credentials().await.map_err(|e| {
                tracing::error!(error = %e, "no upstream credentials");
                self.metrics.upstream_error("credentials");
                S3Error::service_unavailable("The gateway has no upstream credentials right now.")
            })?;
            let creds = self.client_credentials(route, creds, access_key_id, session).await?;
            let region = upstream.region_for(bucket);
            sigv4::sign_upstream(&mut parts, &creds, &region, &payload_hash, std::time::SystemTime::now()).map_err(
                |e| {
                    tracing::error!(error = %e, "signing the upstream request failed");
                    S3Error::internal()
                },
            )?;
            let resp = self.send(Request::from_parts(parts, b), route, watch).await?;
            if retry_possible {
                if let (Some(b), Some(learned)) = (bucket, redirect_region(&resp)) {
                    if upstream.learn_region(b, &learned) {
                        continue;
                    }
                }
            }
            return Ok(resp);
        }
        Err(S3Error::internal())
    }

    /// Sends one request; once its body is sent, the upstream has `idle_timeout` to answer.
    async fn send(&self, req: Request<Body>, route: &Route, watch: &BodyWatch) -> Result<Response<Incoming>, S3Error> {
        let (slot, sent) = (&watch.failure, &watch.sent);
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
                Err(S3Error::service_unavailable("The upstream S3 endpoint could not be reached."))
            }
        }
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

impl Gateway {
    /// The credentials to sign with for this client: the route's base credentials, or those of
    /// an upstream role assumed for this client. Which role:
    /// - the route's `upstream_role_arn`, for every request routed there, unless
    /// - the client's own upstream role (its credential's, its session role's, or for a
    ///   GetSessionToken session its parent credential's) is in the same AWS account: that one
    ///   is the more specific, so it wins;
    /// - without a route role, the client's own, if it has one.
    async fn client_credentials(
        &self,
        route: &Route,
        base: aws_credential_types::Credentials,
        access_key_id: &str,
        session: Option<&SessionClaims>,
    ) -> Result<aws_credential_types::Credentials, S3Error> {
        let (own, client) = self.own_upstream_role(access_key_id, session);
        let role = match (&route.upstream_role, own) {
            (Some(route_role), Some(own)) if own.account() != route_role.account() => route_role,
            (_, Some(own)) => own,
            (Some(route_role), None) => route_role,
            (None, None) => return Ok(base),
        };
        let req = AssumeRequest {
            role_arn: &role.role_arn,
            external_id: role.external_id.as_deref(),
            client: client.into_client(),
        };
        // Boxed: a fetch from the upstream STS is a large future, and inline it would make
        // every request's future that large.
        Box::pin(self.assumed.credentials(&route.upstream, &base, &req)).await.map_err(|e| {
            tracing::error!(error = %e, role = req.role_arn, route = %route.name, "assuming the upstream role failed");
            self.metrics.upstream_error("credentials");
            match e {
                AssumeError::Refused { .. } => S3Error::access_denied(),
                _ => S3Error::service_unavailable("The gateway could not obtain upstream credentials for this client."),
            }
        })
    }

    /// The client's own upstream role, if it names one, and how the upstream STS is told who
    /// the client is. A GetSessionToken session acts as its parent credential, as it does in
    /// IAM: the same upstream role and the same upstream session.
    fn own_upstream_role<'a>(
        &'a self,
        access_key_id: &'a str,
        session: Option<&'a SessionClaims>,
    ) -> (Option<&'a UpstreamRole>, ClientOf<'a>) {
        let sts = &self.config.sts;
        match session {
            Some(session) if session.role.is_some() => {
                let role = session.role.as_deref().and_then(|arn| sts.role(arn));
                (role.and_then(|r| r.upstream_role.as_ref()), ClientOf::Session(session))
            }
            Some(session) => match session.parent.as_deref() {
                Some(parent) => (sts.client_upstream_roles.get(parent), ClientOf::Credential(parent)),
                None => (None, ClientOf::Session(session)),
            },
            None => (sts.client_upstream_roles.get(access_key_id), ClientOf::Credential(access_key_id)),
        }
    }
}

/// Who the client is, told to the upstream STS only when a role is assumed: building the
/// [`Client`] (its session name, source identity and tags) for every request cost three
/// allocations a request that most gateways, with no upstream roles, never use.
enum ClientOf<'a> {
    Session(&'a SessionClaims),
    Credential(&'a str),
}

impl ClientOf<'_> {
    fn into_client(self) -> Client {
        match self {
            Self::Session(session) => Client::session(session),
            Self::Credential(access_key_id) => Client::credential(access_key_id),
        }
    }
}
