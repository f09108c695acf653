//! The one log line per tunnel or request, and the answers the proxy gives itself.
//!
//! A [`Record`] is written when it is dropped, so a tunnel that errors, a client that hangs up
//! mid-body, or a handler future hyper cancels still leaves exactly one line. Proxy refusals are
//! plain-text HTTP answers, not S3 XML errors: they come from the proxy, which the client
//! talks to as an HTTP proxy, before any S3 request exists.

use std::net::SocketAddr;
use std::sync::Arc;

use http::{header, HeaderValue, Response, StatusCode};

use super::auth::AuthFailure;
use super::dial::DialError;
use super::traffic::Traffic;
use crate::body::{self, Body};
use crate::metrics::{Metrics, Mode};

/// What one tunnel or request did, logged on drop under target `s3gate::forward` and counted
/// in the metrics (`mode="forward"`, action `forward:METHOD`).
pub struct Record {
    peer: SocketAddr,
    pub user: Option<String>,
    method: String,
    pub destination: Option<String>,
    pub allowed: bool,
    pub status: u16,
    pub reason: Option<String>,
    pub traffic: Arc<Traffic>,
    metrics: Metrics,
    audit: Option<crate::audit::AuditLog>,
}

impl Record {
    pub fn new(
        peer: SocketAddr,
        method: &http::Method,
        metrics: Metrics,
        audit: Option<crate::audit::AuditLog>,
    ) -> Self {
        Self {
            peer,
            user: None,
            method: method.as_str().to_owned(),
            destination: None,
            allowed: false,
            status: 0,
            reason: None,
            traffic: Arc::new(Traffic::default()),
            metrics,
            audit,
        }
    }

    /// Records the refusal and renders its answer.
    pub fn refuse(&mut self, refusal: Refusal) -> Response<Body> {
        let (status, reason) = refusal.status_and_reason();
        match &refusal {
            Refusal::Auth(_) => self.metrics.auth_failure("proxy_authentication"),
            Refusal::Denied(_) => self.metrics.network_denied(Mode::Forward, "destination"),
            Refusal::Source => self.metrics.network_denied(Mode::Forward, "source_subnet"),
            Refusal::Dial(DialError::Timeout(_)) | Refusal::Idle => self.metrics.upstream_error("timeout"),
            Refusal::Dial(DialError::Connect(..)) => self.metrics.upstream_error("connect"),
            Refusal::Upstream(_) => self.metrics.upstream_error("other"),
            Refusal::BadRequest(_) | Refusal::Busy => {}
        }
        self.allowed = refusal.was_allowed();
        self.status = status.as_u16();
        self.reason = Some(reason.clone());
        let mut resp = Response::new(body::full(format!("s3gate: {reason}\n")));
        *resp.status_mut() = status;
        resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
        if matches!(refusal, Refusal::Auth(_)) {
            resp.headers_mut().insert(header::PROXY_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"s3gate\""));
        }
        resp
    }
}

impl Drop for Record {
    fn drop(&mut self) {
        let duration = self.traffic.started().elapsed();
        let duration_ms = duration.as_millis() as u64;
        let action = format!("forward:{}", self.method);
        let (up, down) = (self.traffic.up(), self.traffic.down());
        self.metrics.request_finished(Mode::Forward, &action, self.status, duration, up, down);
        tracing::info!(
            target: "s3gate::forward",
            client = %self.peer,
            user = self.user.as_deref().unwrap_or("-"),
            method = %self.method,
            destination = self.destination.as_deref().unwrap_or("-"),
            allowed = self.allowed,
            status = self.status,
            reason = self.reason.as_deref().unwrap_or("-"),
            bytes_up = up,
            bytes_down = down,
            duration_ms,
            "forward"
        );
        if let Some(audit) = &self.audit {
            audit.record(&crate::audit::AuditRecord {
                time: crate::audit::now_rfc3339(),
                request_id: format!("{:016X}", rand::random::<u64>()),
                client: self.peer.to_string(),
                access_key_id: None,
                action,
                operation: self.method.clone(),
                bucket: None,
                key: None,
                status: self.status,
                error_code: self.reason.clone(),
                bytes_in: up,
                bytes_out: down,
                duration_ms,
                route: None,
                mode: "forward".to_owned(),
                user: self.user.clone(),
                destination: self.destination.clone(),
                session: None,
            });
        }
    }
}

/// Every way the proxy answers a request itself.
#[derive(Debug)]
pub enum Refusal {
    Auth(AuthFailure),
    /// The client's address is outside `--allowed-source-subnet`.
    Source,
    /// Not in the allow list, or a port that is not allowed.
    Denied(String),
    BadRequest(String),
    /// The tunnel cap is reached.
    Busy,
    Dial(DialError),
    /// The destination failed after the connection was made.
    Upstream(String),
    /// Silence past the idle timeout before the destination answered.
    Idle,
}

impl Refusal {
    fn status_and_reason(&self) -> (StatusCode, String) {
        match self {
            Refusal::Auth(AuthFailure::Missing) => {
                (StatusCode::PROXY_AUTHENTICATION_REQUIRED, "proxy authentication required".into())
            }
            Refusal::Auth(AuthFailure::Wrong) => {
                (StatusCode::PROXY_AUTHENTICATION_REQUIRED, "proxy authentication failed".into())
            }
            Refusal::Source => (StatusCode::FORBIDDEN, "this proxy does not serve your address".into()),
            Refusal::Denied(why) => (StatusCode::FORBIDDEN, format!("destination not allowed: {why}")),
            Refusal::BadRequest(why) => (StatusCode::BAD_REQUEST, why.clone()),
            Refusal::Busy => (StatusCode::SERVICE_UNAVAILABLE, "too many tunnels; try again later".into()),
            Refusal::Dial(e @ DialError::Timeout(_)) => (StatusCode::GATEWAY_TIMEOUT, e.to_string()),
            Refusal::Dial(e @ DialError::Connect(..)) => (StatusCode::BAD_GATEWAY, e.to_string()),
            Refusal::Upstream(why) => (StatusCode::BAD_GATEWAY, why.clone()),
            Refusal::Idle => (StatusCode::GATEWAY_TIMEOUT, "the destination did not answer in time".into()),
        }
    }

    /// Whether the allow list had let the request through (a busy or unreachable destination
    /// was allowed; a bad request or wrong password was not).
    fn was_allowed(&self) -> bool {
        matches!(self, Refusal::Busy | Refusal::Dial(_) | Refusal::Upstream(_) | Refusal::Idle)
    }
}
