//! The audit log (`--audit-log FILE|-`): one JSON line per request, saying who did what to
//! which object and how it ended.
//!
//! Writing: each record is serialized to one buffer before any lock is taken, then written with
//! a single `write` under a mutex. On a local file that lands in the page cache in microseconds,
//! so the async worker is held about as long as by a `tracing` line. A writer task behind a
//! channel would keep even a slow disk off the workers, but it would lose the queued lines when
//! the process exits, and an audit trail that drops its last lines on a crash or a SIGTERM is
//! the wrong trade. One `write` per line on an `O_APPEND` file also means lines from several
//! threads never interleave. (Pointing `-` at a pipe whose reader stops does stall requests:
//! an audit trail that cannot be written is not silently skipped.)

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use serde::Serialize;
use time::OffsetDateTime;

/// One request, as the audit log records it.
///
/// There is deliberately no field for a header, a query string, a signature, a secret or a
/// session token: a presigned URL's query carries its signature and credential, so nothing
/// here can carry one. Strings a client chose (bucket, key) are JSON-escaped, so a key with a
/// newline cannot forge a line.
#[derive(Debug, Clone, Serialize)]
pub struct AuditRecord {
    /// When the request finished: RFC 3339, UTC, milliseconds ([`now_rfc3339`]).
    pub time: String,
    pub request_id: String,
    /// The client's address (`ip:port`, `SocketAddr`'s `Display`); behind a trusted proxy, the
    /// one the proxy reported.
    pub client: String,
    pub access_key_id: Option<String>,
    /// IAM action (`s3:GetObject`).
    pub action: String,
    /// S3 API operation (`GetObject`, `UploadPart`, ...).
    pub operation: String,
    pub bucket: Option<String>,
    /// The decoded object key.
    pub key: Option<String>,
    pub status: u16,
    /// The S3 error code s3gate or the upstream answered with.
    pub error_code: Option<String>,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub duration_ms: u64,
    /// The `[[route]]` that sent the request upstream.
    pub route: Option<String>,
    /// `endpoint` or `forward` ([`crate::metrics::Mode::as_str`]).
    pub mode: String,
    /// Forward mode: the authenticated proxy user.
    pub user: Option<String>,
    /// Forward mode: the `host:port` the client asked for.
    pub destination: Option<String>,
    /// Endpoint mode, temporary credentials: the session they belong to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session: Option<SessionRecord>,
}

/// Who a session is: the role, the session name, the web identity behind it. Never its secret
/// or token.
#[derive(Debug, Clone, Serialize)]
pub struct SessionRecord {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_identity: Option<String>,
    /// The s3gate credential that asked for the session.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
}

impl SessionRecord {
    pub fn of(c: &crate::session::SessionClaims) -> Self {
        Self {
            role: c.role.clone(),
            session_name: c.session_name.clone(),
            issuer: c.issuer.clone(),
            subject: c.subject.clone(),
            source_identity: c.source_identity.clone(),
            parent: c.parent.clone(),
        }
    }
}

/// The current time for [`AuditRecord::time`].
pub fn now_rfc3339() -> String {
    rfc3339_millis(OffsetDateTime::now_utc())
}

/// `2026-03-04T03:06:07.089Z`: UTC and a fixed width, so lines sort as text.
pub fn rfc3339_millis(time: OffsetDateTime) -> String {
    let format =
        time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");
    // Formatting fails only for years outside 0..=9999.
    time.to_offset(time::UtcOffset::UTC).format(&format).unwrap_or_else(|_| "0000-00-00T00:00:00.000Z".to_owned())
}

/// Where audit lines go; cloning shares the destination.
#[derive(Clone)]
pub struct AuditLog(Arc<Inner>);

struct Inner {
    target: Target,
    /// Set while writes fail, so a full disk is reported once, not once per request.
    failing: AtomicBool,
}

enum Target {
    Stdout,
    File { path: PathBuf, file: Mutex<File> },
}

impl AuditLog {
    /// `-` is standard output; anything else is a file path, appended to, created with mode
    /// 0600 (audit lines name keys and buckets). An existing file keeps its mode, so rotation
    /// tools decide it.
    pub fn open(target: &str) -> io::Result<AuditLog> {
        let target = match target {
            "-" => Target::Stdout,
            path => {
                let path = PathBuf::from(path);
                let file = open_file(&path)?;
                Target::File { path, file: Mutex::new(file) }
            }
        };
        Ok(AuditLog(Arc::new(Inner { target, failing: AtomicBool::new(false) })))
    }

    /// Writes one line. Failures are logged (once until writes work again), never returned: a
    /// request is not failed after the fact because its log line could not be written.
    pub fn record(&self, rec: &AuditRecord) {
        let result = serde_json::to_vec(rec).map_err(io::Error::other).and_then(|mut line| {
            line.push(b'\n');
            self.write_line(&line)
        });
        match result {
            Ok(()) => {
                if self.0.failing.swap(false, Ordering::Relaxed) {
                    tracing::info!("audit log is being written again");
                }
            }
            Err(e) => {
                if !self.0.failing.swap(true, Ordering::Relaxed) {
                    tracing::error!(error = %e, "cannot write the audit log; lines are being lost");
                }
            }
        }
    }

    fn write_line(&self, line: &[u8]) -> io::Result<()> {
        match &self.0.target {
            Target::Stdout => {
                let mut out = io::stdout().lock();
                out.write_all(line)?;
                out.flush()
            }
            Target::File { file, .. } => lock(file).write_all(line),
        }
    }

    /// Opens the path again, for log rotation: after `mv audit.log audit.log.1`, lines go to a
    /// new `audit.log`. On error the old file stays in use. Standard output has nothing to
    /// reopen.
    pub fn reopen(&self) -> io::Result<()> {
        if let Target::File { path, file } = &self.0.target {
            let new = open_file(path)?;
            *lock(file) = new;
        }
        Ok(())
    }
}

fn lock(file: &Mutex<File>) -> std::sync::MutexGuard<'_, File> {
    // A panic while holding the lock cannot leave a File in a bad state.
    file.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn open_file(path: &Path) -> io::Result<File> {
    let mut options = std::fs::OpenOptions::new();
    options.create(true).append(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path).map_err(|e| io::Error::new(e.kind(), format!("audit log {}: {e}", path.display())))
}

/// Reopens `log` on every SIGHUP, as logrotate's `postrotate kill -HUP` expects. Call it
/// inside the tokio runtime; once it has run, SIGHUP no longer terminates the process.
pub fn spawn_sighup_reopen(log: AuditLog) {
    use tokio::signal::unix::{signal, SignalKind};
    let mut hangup = match signal(SignalKind::hangup()) {
        Ok(hangup) => hangup,
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGHUP; the audit log will not be reopened");
            return;
        }
    };
    tokio::spawn(async move {
        while hangup.recv().await.is_some() {
            match log.reopen() {
                Ok(()) => tracing::info!("SIGHUP: audit log reopened"),
                Err(e) => {
                    tracing::error!(error = %e, "SIGHUP: cannot reopen the audit log; still writing the old file")
                }
            }
        }
    });
}

#[cfg(test)]
mod tests;
