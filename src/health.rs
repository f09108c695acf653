//! Readiness and liveness: what a load balancer and an orchestrator ask before sending traffic,
//! and before restarting a process.
//!
//! *Readiness* (`/_s3gate/health` on the endpoint, `/health` on the metrics listener) is "send
//! me requests": it fails from the first moment of a drain (SIGTERM announces it
//! `--drain-delay` before the listeners close), and while the upstream credentials cannot be
//! obtained, since every request would fail then. *Liveness* (`/_s3gate/live`, `/live`) is
//! "this process serves": it holds while draining, so an orchestrator does not kill a process
//! that is finishing its requests, nor one whose upstream credentials are only late.
//!
//! Both listeners answer from the same [`Readiness`], so they cannot disagree.

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use http::{header, HeaderValue, Response, StatusCode};

use crate::body::{self, Body};
use crate::shutdown::Shutdown;
use crate::upstream::Router;

/// How long a readiness check waits for the upstream credentials (the AWS chain may go to
/// the instance metadata service): health checkers time out after a few seconds.
const CREDENTIALS_TIMEOUT: Duration = Duration::from_secs(2);

/// Why a replica should not get traffic now.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotReady {
    #[error("draining")]
    Draining,
    #[error("upstream credentials unavailable")]
    Credentials,
}

/// What readiness is decided from. Clones share it.
#[derive(Clone)]
pub struct Readiness {
    shutdown: Shutdown,
    /// The routes in use; a reload replaces them. `None`: nothing upstream to wait for.
    routes: Option<Arc<ArcSwap<Router>>>,
}

impl Readiness {
    pub fn new(shutdown: Shutdown, routes: Arc<ArcSwap<Router>>) -> Self {
        Self { shutdown, routes: Some(routes) }
    }

    /// Readiness that depends only on the drain (a listener with no upstream of its own).
    pub fn draining_only(shutdown: Shutdown) -> Self {
        Self { shutdown, routes: None }
    }

    /// Ready unless draining, or some route's upstream credentials cannot be had now.
    pub async fn check(&self) -> Result<(), NotReady> {
        if self.shutdown.is_draining() {
            return Err(NotReady::Draining);
        }
        let Some(routes) = self.routes.as_ref().map(|r| r.load_full()) else { return Ok(()) };
        for upstream in routes.upstreams() {
            match tokio::time::timeout(CREDENTIALS_TIMEOUT, upstream.credentials()).await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "not ready: upstream credentials unavailable");
                    return Err(NotReady::Credentials);
                }
                Err(_) => {
                    tracing::warn!("not ready: upstream credentials took too long");
                    return Err(NotReady::Credentials);
                }
            }
        }
        Ok(())
    }

    /// The readiness answer: `200` with `ok_text` (each listener keeps the body it always
    /// had), or `503` saying why.
    pub async fn answer(&self, ok_text: &'static str) -> Response<Body> {
        match self.check().await {
            Ok(()) => plain(StatusCode::OK, ok_text.to_owned()),
            Err(why) => plain(StatusCode::SERVICE_UNAVAILABLE, format!("{why}\n")),
        }
    }
}

/// The liveness answer: this process answers, so it lives.
pub fn live(ok_text: &'static str) -> Response<Body> {
    plain(StatusCode::OK, ok_text.to_owned())
}

fn plain(status: StatusCode, text: String) -> Response<Body> {
    let mut resp = Response::new(body::full(text));
    *resp.status_mut() = status;
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    // A health checker must see the state now, never a cached answer.
    resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}
