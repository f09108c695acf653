//! Prometheus metrics, in a registry passed explicitly (never the crate's global one, so tests
//! and several gateways in one process do not share counters). The admin listener (`admin.rs`)
//! serves them on `--metrics-listen`; this module knows nothing of listening.
//!
//! Every label value is bounded: modes and status classes are enums, error kinds are a fixed
//! list, and free-form names (IAM actions, S3 error codes, denial reasons) must look like one
//! and are capped in number, so no client can grow the exposition without limit. The STS
//! metrics' `role` is a role the configuration declares, [`ROLE_NONE`] or [`ROLE_UNKNOWN`]:
//! never the RoleArn a client asked for, and never a session name or a web identity's subject,
//! which are as many as there are users and jobs. Those belong to the audit log, which records
//! them for every STS call and every request made with temporary credentials.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

/// Which side of s3gate a request or connection belongs to; also the audit log's `mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// S3 clients pointing `--endpoint-url` at s3gate.
    Endpoint,
    /// Clients using s3gate as an HTTP(S) proxy.
    Forward,
    /// Clients that only had their S3 names resolved to s3gate (`--transparent-listen`).
    Transparent,
}

impl Mode {
    pub const ALL: [Mode; 3] = [Mode::Endpoint, Mode::Forward, Mode::Transparent];

    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Endpoint => "endpoint",
            Mode::Forward => "forward",
            Mode::Transparent => "transparent",
        }
    }
}

/// The kinds `upstream_error` counts (`credentials`: no upstream credentials to sign with);
/// anything else is counted as `other`.
pub const UPSTREAM_ERROR_KINDS: [&str; 6] = ["connect", "timeout", "reset", "tls", "credentials", "other"];

/// Label value for a free-form name that is malformed or over its cap.
const UNKNOWN: &str = "unknown";

/// The `role` of a session with no role (GetSessionToken's): the credential's own permissions.
pub const ROLE_NONE: &str = "none";
/// The `role` of an STS call or a session whose role is not one the configuration declares (a
/// RoleArn nobody configured, a form with no action, a session token that did not open).
pub const ROLE_UNKNOWN: &str = UNKNOWN;

/// The actions `sts_request` names; anything else is counted as `other`.
pub const STS_ACTIONS: [&str; 3] = ["AssumeRoleWithWebIdentity", "AssumeRole", "GetSessionToken"];

/// 1 ms .. 60 s: a HEAD answered from a warm pool up to a multi-gigabyte part upload; slower
/// requests land in `+Inf`.
const DURATION_BUCKETS: [f64; 16] =
    [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0];

/// The gateway's counters; cloning shares them.
#[derive(Clone)]
pub struct Metrics(Arc<Inner>);

struct Inner {
    /// Tells this instance's counters in a thread's [`REQUEST_COUNTERS`] from another's.
    id: u64,
    registry: Registry,
    /// Each mode's series of `duration`, `received_bytes` and `sent_bytes`, looked up once:
    /// a lookup by label values hashes them and takes the vector's lock, for every request.
    by_mode: [ModeSeries; 3],
    requests: IntCounterVec,
    upstream_errors: IntCounterVec,
    auth_failures: IntCounterVec,
    policy_denials: IntCounterVec,
    network_denials: IntCounterVec,
    active_connections: IntGaugeVec,
    refused_connections: IntCounterVec,
    active_tunnels: IntGauge,
    credential_refreshes: IntCounterVec,
    config_reloads: IntCounterVec,
    draining: IntGauge,
    sts_requests: IntCounterVec,
    session_requests: IntCounterVec,
    actions: LabelValues,
    auth_reasons: LabelValues,
    denial_reasons: LabelValues,
    roles: LabelValues,
    sts_results: LabelValues,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let r = &registry;
        let duration = register(
            r,
            HistogramVec::new(
                HistogramOpts::new(
                    "s3gate_request_duration_seconds",
                    "Time from request head received to response body sent.",
                )
                .buckets(DURATION_BUCKETS.to_vec()),
                &["mode"],
            ),
        );
        let received_bytes =
            register(r, counter("s3gate_received_bytes_total", "Request body bytes received from clients.", &["mode"]));
        let sent_bytes =
            register(r, counter("s3gate_sent_bytes_total", "Response body bytes sent to clients.", &["mode"]));
        let by_mode = Mode::ALL.map(|mode| ModeSeries {
            duration: duration.with_label_values(&[mode.as_str()]),
            received_bytes: received_bytes.with_label_values(&[mode.as_str()]),
            sent_bytes: sent_bytes.with_label_values(&[mode.as_str()]),
        });
        static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let inner = Inner {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            requests: register(
                r,
                counter(
                    "s3gate_requests_total",
                    "Requests answered, by S3 action and status class.",
                    &["mode", "action", "status_class"],
                ),
            ),
            upstream_errors: register(
                r,
                counter(
                    "s3gate_upstream_errors_total",
                    "Requests that failed on the way to or from the upstream, by kind.",
                    &["kind"],
                ),
            ),
            auth_failures: register(
                r,
                counter(
                    "s3gate_auth_failures_total",
                    "Requests refused by authentication, by S3 error code.",
                    &["reason"],
                ),
            ),
            policy_denials: register(
                r,
                counter(
                    "s3gate_policy_denials_total",
                    "Requests denied by a credential's policy, by IAM action.",
                    &["action"],
                ),
            ),
            network_denials: register(
                r,
                counter(
                    "s3gate_network_denials_total",
                    "Requests refused by source subnet or endpoint rules.",
                    &["mode", "reason"],
                ),
            ),
            active_connections: register(
                r,
                IntGaugeVec::new(Opts::new("s3gate_active_connections", "Client connections open now."), &["mode"]),
            ),
            refused_connections: register(
                r,
                counter(
                    "s3gate_refused_connections_total",
                    "Connections refused past --max-connections (answered 503, or closed).",
                    &["mode"],
                ),
            ),
            active_tunnels: register(
                r,
                IntGauge::with_opts(Opts::new(
                    "s3gate_active_tunnels",
                    "Forward-proxy CONNECT tunnels and transparent-mode splices open now.",
                )),
            ),
            credential_refreshes: register(
                r,
                counter(
                    "s3gate_upstream_credential_refreshes_total",
                    "Refreshes of the upstream credentials, by result.",
                    &["result"],
                ),
            ),
            config_reloads: register(
                r,
                counter(
                    "s3gate_config_reload_total",
                    "Configuration reloads (SIGHUP), by result: `error` kept the configuration running.",
                    &["result"],
                ),
            ),
            draining: register(
                r,
                IntGauge::with_opts(Opts::new(
                    "s3gate_draining",
                    "1 from the first moment of a drain (SIGTERM): health checks answer 503.",
                )),
            ),
            sts_requests: register(
                r,
                counter(
                    "s3gate_sts_requests_total",
                    "Calls to s3gate's STS, by action, configured role and result (ok, or the STS error code).",
                    &["action", "role", "result"],
                ),
            ),
            session_requests: register(
                r,
                counter(
                    "s3gate_session_requests_total",
                    "S3 requests made with temporary credentials from s3gate's STS, by role and status class.",
                    &["role", "status_class"],
                ),
            ),
            actions: LabelValues::new("action", 256),
            auth_reasons: LabelValues::new("auth failure reason", 64),
            denial_reasons: LabelValues::new("network denial reason", 16),
            roles: LabelValues::new("STS role", 256).longer(256),
            sts_results: LabelValues::new("STS result", 64),
            by_mode,
            registry,
        };
        // Series that exist from the start, so a dashboard's rate() sees 0, not "no data".
        for mode in Mode::ALL {
            let mode = mode.as_str();
            inner.active_connections.with_label_values(&[mode]);
            inner.refused_connections.with_label_values(&[mode]);
        }
        for kind in UPSTREAM_ERROR_KINDS {
            inner.upstream_errors.with_label_values(&[kind]);
        }
        for result in ["success", "failure"] {
            inner.credential_refreshes.with_label_values(&[result]);
        }
        for result in ["ok", "error"] {
            inner.config_reloads.with_label_values(&[result]);
        }
        Metrics(Arc::new(inner))
    }

    /// `s3gate_requests_total` for these labels. Each thread keeps the counters it used last:
    /// the lookup by label values (the action admitted under a lock, the labels hashed, the
    /// vector's lock) came on every request, for the few series a thread keeps counting.
    fn requests_counter(&self, mode: Mode, action: &str, class: &'static str) -> IntCounter {
        let m = &self.0;
        let at_hand = REQUEST_COUNTERS.with(|c| {
            c.try_borrow()
                .ok()?
                .iter()
                .find(|k| k.id == m.id && k.mode == mode && k.class == class && k.action == action)
                .map(|k| k.counter.clone())
        });
        if let Some(counter) = at_hand {
            return counter;
        }
        let admitted = m.actions.admit(action, is_iam_action);
        let counter = m.requests.with_label_values(&[mode.as_str(), admitted, class]);
        if admitted == action {
            REQUEST_COUNTERS.with(|c| {
                if let Ok(mut c) = c.try_borrow_mut() {
                    if c.len() >= REQUEST_COUNTERS_PER_THREAD {
                        c.clear();
                    }
                    c.push(RequestCounter {
                        id: m.id,
                        mode,
                        action: action.to_owned(),
                        class,
                        counter: counter.clone(),
                    });
                }
            });
        }
        counter
    }

    /// One answered request. `action` is the IAM action (`s3:GetObject`); anything that is not
    /// shaped like one is counted as `unknown`.
    pub fn request_finished(
        &self,
        mode: Mode,
        action: &str,
        status: u16,
        duration: Duration,
        bytes_in: u64,
        bytes_out: u64,
    ) {
        let series = &self.0.by_mode[mode as usize];
        self.requests_counter(mode, action, status_class(status)).inc();
        series.duration.observe(duration.as_secs_f64());
        series.received_bytes.inc_by(bytes_in);
        series.sent_bytes.inc_by(bytes_out);
    }

    /// `kind` is one of [`UPSTREAM_ERROR_KINDS`]; others count as `other`.
    pub fn upstream_error(&self, kind: &str) {
        let kind = UPSTREAM_ERROR_KINDS.into_iter().find(|k| *k == kind).unwrap_or("other");
        self.0.upstream_errors.with_label_values(&[kind]).inc();
    }

    /// `reason` is the S3 error code the client got (`SignatureDoesNotMatch`, ...).
    pub fn auth_failure(&self, reason: &str) {
        let reason = self.0.auth_reasons.admit(reason, is_identifier);
        self.0.auth_failures.with_label_values(&[reason]).inc();
    }

    pub fn policy_denied(&self, action: &str) {
        let action = self.0.actions.admit(action, is_iam_action);
        self.0.policy_denials.with_label_values(&[action]).inc();
    }

    /// `reason`: `source_subnet` or `endpoint` (or another short snake_case word).
    pub fn network_denied(&self, mode: Mode, reason: &str) {
        let reason = self.0.denial_reasons.admit(reason, is_identifier);
        self.0.network_denials.with_label_values(&[mode.as_str(), reason]).inc();
    }

    /// Counts a connection as open until the guard is dropped.
    pub fn connection_opened(&self, mode: Mode) -> ConnectionGuard {
        let gauge = self.0.active_connections.with_label_values(&[mode.as_str()]);
        gauge.inc();
        ConnectionGuard(gauge)
    }

    /// A connection past `--max-connections`.
    pub fn connection_refused(&self, mode: Mode) {
        self.0.refused_connections.with_label_values(&[mode.as_str()]).inc();
    }

    /// Counts a CONNECT tunnel as open until the guard is dropped.
    pub fn tunnel_opened(&self) -> TunnelGuard {
        self.0.active_tunnels.inc();
        TunnelGuard(self.0.active_tunnels.clone())
    }

    pub fn credential_refresh(&self, ok: bool) {
        let result = if ok { "success" } else { "failure" };
        self.0.credential_refreshes.with_label_values(&[result]).inc();
    }

    pub fn config_reloaded(&self, ok: bool) {
        let result = if ok { "ok" } else { "error" };
        self.0.config_reloads.with_label_values(&[result]).inc();
    }

    /// One call to s3gate's STS. `action` is one of [`STS_ACTIONS`] (else counted as `other`);
    /// `role` a role the configuration declares, [`ROLE_NONE`] or [`ROLE_UNKNOWN`], never what a
    /// client chose; `result` is `ok` or the STS error code.
    pub fn sts_request(&self, action: &str, role: &str, result: &str) {
        let m = &self.0;
        let action = STS_ACTIONS.into_iter().find(|a| *a == action).unwrap_or("other");
        let role = m.roles.admit(role, is_role_label);
        let result = m.sts_results.admit(result, is_identifier);
        m.sts_requests.with_label_values(&[action, role, result]).inc();
    }

    /// One S3 request signed with temporary credentials, whether or not they were accepted.
    /// `role` as for [`Metrics::sts_request`]: a declared role, [`ROLE_NONE`], [`ROLE_UNKNOWN`].
    pub fn session_request(&self, role: &str, status: u16) {
        let role = self.0.roles.admit(role, is_role_label);
        self.0.session_requests.with_label_values(&[role, status_class(status)]).inc();
    }

    /// From the first moment of a drain; never unset, since a drain is not called off.
    pub fn draining(&self) {
        self.0.draining.set(1);
    }

    /// The Prometheus text exposition format (0.0.4).
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.0.registry.gather(), &mut out) {
            tracing::warn!(error = %e, "encoding metrics failed");
        }
        String::from_utf8(out).unwrap_or_default()
    }
}

fn counter(name: &str, help: &str, labels: &[&str]) -> prometheus::Result<IntCounterVec> {
    IntCounterVec::new(Opts::new(name, help), labels)
}

/// Registers a metric defined in this file. The definitions are constants, so an error (bad
/// name, duplicate) is a bug that the first test run shows.
fn register<M: prometheus::core::Collector + Clone + 'static>(registry: &Registry, metric: prometheus::Result<M>) -> M {
    let metric = metric.expect("metric definitions are valid");
    registry.register(Box::new(metric.clone())).expect("metric names are unique");
    metric
}

fn status_class(status: u16) -> &'static str {
    match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        500..=599 => "5xx",
        _ => "other",
    }
}

/// `s3:GetObject`, `s3express:CreateSession`: a service prefix and an action name.
fn is_iam_action(value: &str) -> bool {
    value.split_once(':').is_some_and(|(service, action)| {
        !service.is_empty()
            && service.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !action.is_empty()
            && action.bytes().all(|b| b.is_ascii_alphanumeric())
    })
}

/// `arn:aws:iam::123456789012:role/path/name`, `none`, `unknown`.
fn is_role_label(value: &str) -> bool {
    value == ROLE_NONE
        || value == ROLE_UNKNOWN
        || (value.starts_with("arn:") && value.bytes().all(|b| b.is_ascii_alphanumeric() || b"+=,.@_-:/".contains(&b)))
}

/// `SignatureDoesNotMatch`, `source_subnet`.
fn is_identifier(value: &str) -> bool {
    !value.is_empty() && value.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// The values one label has taken; past `cap` distinct values, new ones become `unknown`.
struct LabelValues {
    what: &'static str,
    cap: usize,
    /// Longer values are malformed.
    max_len: usize,
    seen: Mutex<HashSet<String>>,
    warned: AtomicBool,
}

impl LabelValues {
    fn new(what: &'static str, cap: usize) -> Self {
        Self { what, cap, max_len: 80, seen: Mutex::new(HashSet::new()), warned: AtomicBool::new(false) }
    }

    /// Role ARNs, with their paths, are longer than codes and actions.
    fn longer(self, max_len: usize) -> Self {
        Self { max_len, ..self }
    }

    fn admit<'a>(&self, value: &'a str, well_formed: fn(&str) -> bool) -> &'a str {
        if value.len() > self.max_len || !well_formed(value) {
            return UNKNOWN;
        }
        let mut seen = self.seen.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if seen.contains(value) {
            return value;
        }
        if seen.len() < self.cap {
            seen.insert(value.to_owned());
            return value;
        }
        drop(seen);
        if !self.warned.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                cap = self.cap,
                "more than {} distinct {} values; counting new ones as unknown",
                self.cap,
                self.what
            );
        }
        UNKNOWN
    }
}

/// How many request counters each thread keeps at hand: more than the actions and status
/// classes a busy thread sees in a while; past it, the thread starts over.
const REQUEST_COUNTERS_PER_THREAD: usize = 64;

/// A counter of `s3gate_requests_total` a thread used, with its labels.
struct RequestCounter {
    id: u64,
    mode: Mode,
    action: String,
    class: &'static str,
    counter: IntCounter,
}

thread_local! {
    static REQUEST_COUNTERS: std::cell::RefCell<Vec<RequestCounter>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// One mode's per-request series.
struct ModeSeries {
    duration: Histogram,
    received_bytes: IntCounter,
    sent_bytes: IntCounter,
}

/// Keeps `s3gate_active_connections{mode}` counting one connection while it lives.
#[must_use = "the connection is counted only while the guard lives"]
pub struct ConnectionGuard(IntGauge);

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// Keeps `s3gate_active_tunnels` counting one tunnel while it lives.
#[must_use = "the tunnel is counted only while the guard lives"]
pub struct TunnelGuard(IntGauge);

impl Drop for TunnelGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

#[cfg(test)]
pub(crate) mod tests;
