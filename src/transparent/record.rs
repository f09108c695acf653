//! The one log line, audit record and metrics of a transparent connection, written when the
//! [`Record`] is dropped, so a refusal, a failed dial, a cut or a finished splice each leave
//! exactly one.

use std::net::SocketAddr;
use std::sync::Arc;

use crate::forward::traffic::Traffic;
use crate::metrics::{Metrics, Mode};

/// What one connection did: logged under target `s3gate::transparent`, counted with
/// `mode="transparent"`, action `transparent:passthrough` (or `transparent:inspect`).
pub struct Record {
    pub peer: SocketAddr,
    pub server_name: Option<String>,
    pub bucket: Option<String>,
    pub allowed: bool,
    /// 200 spliced; 403 refused; 400 not a usable ClientHello; 502/504 the endpoint failed.
    pub status: u16,
    pub reason: Option<String>,
    pub traffic: Arc<Traffic>,
    /// `transparent:passthrough`, or `transparent:inspect` for a connection whose requests
    /// have records of their own. Those carry the body bytes; the inspected connection's own
    /// record counts none, so that the byte metrics do not count them twice.
    pub action: &'static str,
    metrics: Metrics,
    audit: Option<crate::audit::AuditLog>,
}

/// Why a connection was refused: the metrics' `reason` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denial {
    Source,
    NoName,
    EncryptedName,
    Name,
    Bucket,
}

impl Denial {
    fn label(self) -> &'static str {
        match self {
            Denial::Source => "source_subnet",
            Denial::NoName => "no_sni",
            Denial::EncryptedName => "encrypted_client_hello",
            Denial::Name => "server_name",
            Denial::Bucket => "bucket",
        }
    }
}

impl Record {
    pub fn new(peer: SocketAddr, metrics: Metrics, audit: Option<crate::audit::AuditLog>) -> Self {
        Self {
            peer,
            server_name: None,
            bucket: None,
            allowed: false,
            status: 0,
            reason: None,
            traffic: Arc::new(Traffic::default()),
            action: "transparent:passthrough",
            metrics,
            audit,
        }
    }

    pub fn deny(&mut self, denial: Denial, reason: String) {
        self.metrics.network_denied(Mode::Transparent, denial.label());
        self.status = 403;
        self.reason = Some(reason);
    }

    pub fn fail(&mut self, status: u16, reason: String) {
        self.status = status;
        self.reason = Some(reason);
    }
}

impl Drop for Record {
    fn drop(&mut self) {
        let duration = self.traffic.started().elapsed();
        let duration_ms = duration.as_millis() as u64;
        let action = self.action;
        let (up, down) = (self.traffic.up(), self.traffic.down());
        self.metrics.request_finished(Mode::Transparent, action, self.status, duration, up, down);
        tracing::info!(
            target: "s3gate::transparent",
            client = %self.peer,
            server_name = self.server_name.as_deref().unwrap_or("-"),
            bucket = self.bucket.as_deref().unwrap_or("-"),
            allowed = self.allowed,
            status = self.status,
            reason = self.reason.as_deref().unwrap_or("-"),
            bytes_up = up,
            bytes_down = down,
            duration_ms,
            "transparent"
        );
        if let Some(audit) = &self.audit {
            audit.record(&crate::audit::AuditRecord {
                time: crate::audit::now_rfc3339(),
                request_id: format!("{:016X}", rand::random::<u64>()),
                client: self.peer.to_string(),
                access_key_id: None,
                action: action.to_owned(),
                operation: "TLS".to_owned(),
                bucket: self.bucket.clone(),
                key: None,
                status: self.status,
                error_code: self.reason.clone(),
                bytes_in: up,
                bytes_out: down,
                duration_ms,
                route: None,
                mode: Mode::Transparent.as_str().to_owned(),
                user: None,
                destination: self.server_name.as_ref().map(|n| format!("{n}:443")),
                session: None,
            });
        }
    }
}
