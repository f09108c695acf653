//! Transparent mode: clients keep their own endpoint, credentials and TLS; only their S3 names
//! resolve to s3gate (its DNS responder, [`crate::dns`], or the site's). The listener reads the
//! TLS ClientHello without terminating TLS ([`hello`]), checks it, and splices the connection
//! to the real endpoint, replaying the bytes it read. s3gate never sees inside the TLS.
//!
//! The checks, in the order of the other modes: the source networks
//! (`--allowed-source-subnet`), then the server name against the allow list (`@aws-s3` by
//! default; `*` is one label) and the bucket a virtual-hosted name carries against
//! `--transparent-allow-bucket` ([`crate::forward_rules::names`]). A ClientHello with no
//! name, an encrypted one (ECH, ESNI) or a name that is refused gets a fatal TLS alert and the
//! connection closes; nothing is dialled. Each connection leaves one log line, one audit
//! record and the metrics, `mode="transparent"` ([`record`]).
//!
//! The real endpoint is `--transparent-connect-to`'s address for the name, else the name
//! resolved through `--dns-upstream` (the system resolver may be s3gate itself), else the
//! system resolver; an address that is one of s3gate's own DNS answers is refused, as a loop.
//! Bytes are copied through one 64 KiB buffer each way (bench/forward.sh found splice(2) no
//! faster end to end for the forward proxy's tunnels, which move bytes the same way);
//! half-closes pass through, silence past the idle timeout closes, and the listener drains as
//! every other does.
//!
//! A reload (SIGHUP) replaces the rules for the connections accepted after it ([`Settings`]):
//! the allow lists, bucket and action lists, connect-to rules, timeouts, inspect mode and its
//! CA, the source networks and the resolvers. A connection keeps the rules it was accepted
//! under, as a request does in the other modes; the address is kept until a restart.

pub mod hello;
pub mod inspect;
mod record;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use tls_parser::TlsAlertDescription;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tracing::Instrument;

use crate::config::{AccessConfig, Config, TransparentConfig};
use crate::forward::dial::{dial, DialError};
use crate::forward::traffic::{Direction, MeteredIo};
use crate::forward_rules::allow::{Destination, Host};
use crate::forward_rules::names::NameRefusal;
use crate::listener::accept::{self, Backoff};
use crate::listener::drain::{Drain, Token};
use crate::listener::limits::{Admission, ConnectionCap};
use crate::metrics::{Metrics, Mode};
use crate::shutdown::Shutdown;
use record::{Denial, Record};

/// How long a client has to send its whole ClientHello.
pub const HELLO_TIMEOUT: Duration = Duration::from_secs(10);
/// Per direction, as the forward proxy's tunnels.
const BUFFER: usize = 64 * 1024;
/// The TLS port: clients that only had their names resolved connect to it.
const HTTPS: u16 = 443;

/// The rules a connection is checked and routed by, and what records it.
pub struct Passthrough {
    pub config: TransparentConfig,
    /// `--allowed-source-subnet` and `--trusted-proxy`, shared with the other modes.
    pub access: AccessConfig,
    /// `--dns-upstream`: where real names are resolved; empty: the system resolver.
    pub resolvers: Vec<SocketAddr>,
    /// `--dns-answer`: s3gate's own addresses, never a destination.
    pub own: Vec<IpAddr>,
    pub metrics: Metrics,
    pub audit: Option<crate::audit::AuditLog>,
    /// Inspect mode, for the names it covers.
    pub inspect: Option<inspect::Inspect>,
}

impl Passthrough {
    /// The listener's rules from `config`; `None` without a transparent listener. Fails only on
    /// inspect mode's CA.
    pub fn from_config(
        config: &Config,
        metrics: &Metrics,
        audit: &Option<crate::audit::AuditLog>,
    ) -> Result<Option<Passthrough>, String> {
        let Some(tc) = &config.transparent else { return Ok(None) };
        Ok(Some(Passthrough {
            inspect: tc.inspect.as_ref().map(inspect::Inspect::new).transpose()?,
            config: tc.clone(),
            access: config.access.clone(),
            resolvers: config.resolvers.clone(),
            own: config.dns.as_ref().map(|d| d.answers.clone()).unwrap_or_default(),
            metrics: metrics.clone(),
            audit: audit.clone(),
        }))
    }
}

/// The rules in use, which a reload replaces for the connections accepted after it.
#[derive(Clone)]
pub struct Settings(Arc<ArcSwap<Passthrough>>);

impl Settings {
    pub fn new(passthrough: Passthrough) -> Settings {
        Settings(Arc::new(ArcSwap::from_pointee(passthrough)))
    }

    pub fn replace(&self, passthrough: Passthrough) {
        self.0.store(Arc::new(passthrough));
    }

    fn current(&self) -> Arc<Passthrough> {
        self.0.load_full()
    }
}

/// Accepts until shutdown, then lets spliced connections finish for up to `grace`.
pub async fn serve(tcp: TcpListener, settings: Settings, shutdown: Shutdown, grace: Duration) {
    let drain = Drain::default();
    let token = drain.token();
    let accepting = accept_loop(tcp, settings, token);
    drain.run("transparent", accepting, &shutdown, grace).await;
}

async fn accept_loop(tcp: TcpListener, settings: Settings, token: Token) {
    // Counted on the listener as it was built: the cap is kept until a restart.
    let cap = ConnectionCap::new(settings.current().config.max_connections);
    let mut backoff = Backoff::default();
    loop {
        let (stream, peer) = accept::next(&tcp, &mut backoff, "transparent").await;
        let _ = stream.set_nodelay(true);
        let shared = settings.current();
        let Admission::Serve(place) = cap.admit() else {
            // No HTTP to answer 503 in: the client's TLS fails and it retries.
            shared.metrics.connection_refused(Mode::Transparent);
            continue;
        };
        let span = tracing::info_span!("conn", listener = "transparent", %peer, client = tracing::field::Empty);
        let counted = shared.metrics.connection_opened(Mode::Transparent);
        let token = token.clone();
        tokio::spawn(
            async move {
                let _held = (place, counted);
                let cut = token.cut();
                tokio::select! {
                    () = shared.connection(stream, peer) => {}
                    () = cut => tracing::debug!("still open at the end of the grace period: closed"),
                }
            }
            .instrument(span),
        );
    }
}

impl Passthrough {
    /// One client: who it is, its ClientHello, the checks, then the splice.
    async fn connection(&self, mut client: TcpStream, peer: SocketAddr) {
        let who = match accept::proxied_client(&mut client, peer, &self.access.trusted_proxies).await {
            Ok(proxied) => proxied.unwrap_or(peer),
            Err(e) => {
                tracing::warn!(error = %e, "trusted proxy sent no valid PROXY protocol header; connection closed");
                return;
            }
        };
        let mut record = Record::new(who, self.metrics.clone(), self.audit.clone());
        let sources = &self.access.allowed_source_subnets;
        if !sources.is_empty() && !sources.contains(who.ip()) {
            record.deny(Denial::Source, "this gateway does not serve your address".into());
            return refuse(client, TlsAlertDescription::AccessDenied).await;
        }
        let hello = match tokio::time::timeout(HELLO_TIMEOUT, hello::read(&mut client)).await {
            Ok(Ok(hello)) => hello,
            Ok(Err(e)) => return record.fail(400, e.to_string()),
            Err(_) => return record.fail(400, format!("no ClientHello within {HELLO_TIMEOUT:?}")),
        };
        record.server_name = hello.server_name.clone();
        let host = match self.check(&hello, &mut record) {
            Ok(host) => host,
            Err(alert) => return refuse(client, alert).await,
        };
        let upstream = match self.dial(&host).await {
            Ok(s) => s,
            Err(e) => {
                let status = if matches!(e, DialError::Timeout(_)) { 504 } else { 502 };
                self.metrics.upstream_error(if status == 504 { "timeout" } else { "connect" });
                record.fail(status, e.to_string());
                return refuse(client, TlsAlertDescription::InternalError).await;
            }
        };
        record.allowed = true;
        record.status = 200;
        let _open = self.metrics.tunnel_opened();
        if let Some(inspect) = self.inspect.as_ref().filter(|i| i.covers(&host)) {
            record.action = "transparent:inspect";
            if let Err(why) = inspect::serve(self, inspect, client, who, hello.bytes, &host, upstream).await {
                record.reason = Some(why);
            }
            return;
        }
        if let Err(why) = self.splice(client, &hello.bytes, upstream, &record).await {
            record.reason = Some(why);
        }
    }

    /// The server name and bucket checks; the alert to refuse with.
    fn check(&self, hello: &hello::Hello, record: &mut Record) -> Result<Host, TlsAlertDescription> {
        if hello.encrypted_name {
            record.deny(Denial::EncryptedName, "encrypted ClientHello (ECH/ESNI): the name cannot be checked".into());
            return Err(TlsAlertDescription::HandshakeFailure);
        }
        let Some(name) = &hello.server_name else {
            record.deny(Denial::NoName, "no server name (SNI) in the ClientHello".into());
            return Err(TlsAlertDescription::UnrecognizedName);
        };
        match self.config.names.check(name) {
            Ok((host, bucket)) => {
                record.bucket = bucket;
                Ok(host)
            }
            // Inspection sees the bucket of a path-style request in its path, and checks it there.
            Err(NameRefusal::NoBucket(_)) if self.inspected(name) => match self.config.names.serves(name) {
                Some(host) => Ok(host),
                None => Err(TlsAlertDescription::UnrecognizedName),
            },
            Err(e @ (NameRefusal::Bucket(_) | NameRefusal::NoBucket(_))) => {
                if let NameRefusal::Bucket(b) = &e {
                    record.bucket = Some(b.clone());
                }
                record.deny(Denial::Bucket, e.to_string());
                Err(TlsAlertDescription::AccessDenied)
            }
            Err(e) => {
                record.deny(Denial::Name, e.to_string());
                Err(TlsAlertDescription::UnrecognizedName)
            }
        }
    }

    fn inspected(&self, name: &str) -> bool {
        let host = crate::forward_rules::allow::Host::parse(name);
        matches!((&self.inspect, host), (Some(i), Ok(h)) if i.covers(&h))
    }

    /// The real endpoint for `host`: a connect-to rule, else the upstream resolvers, else
    /// the system resolver.
    async fn dial(&self, host: &Host) -> Result<TcpStream, DialError> {
        let dest = Destination { host: host.clone(), port: HTTPS };
        let timeout = self.config.connect_timeout;
        // A connect-to rule is the operator's own choice of address, trusted as it is.
        if self.config.connect_to.iter().any(|r| r.applies_to(&dest)) {
            return dial(&dest, &self.config.connect_to, timeout).await;
        }
        if self.resolvers.is_empty() {
            let stream = dial(&dest, &[], timeout).await?;
            return match stream.peer_addr() {
                Ok(at) if self.own.contains(&at.ip()) => Err(loop_error(&dest)),
                _ => Ok(stream),
            };
        }
        let ips = crate::dns::upstream::lookup(host.as_str(), &self.resolvers, timeout)
            .await
            .map_err(|e| DialError::Connect(dest.to_string(), std::io::Error::other(e.to_string())))?;
        let mut last = DialError::Connect(dest.to_string(), std::io::Error::other("the name has no address"));
        for ip in ips {
            if self.own.contains(&ip) {
                last = loop_error(&dest);
                continue;
            }
            let at = Destination { host: Host::Ip(ip.to_string()), port: HTTPS };
            match dial(&at, &[], timeout).await {
                Ok(s) => return Ok(s),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    /// Replays the ClientHello, then copies both ways until both sides close, the connection
    /// idles past the limit, or the drain cuts it (the caller's select).
    async fn splice(
        &self,
        client: TcpStream,
        hello: &[u8],
        upstream: TcpStream,
        record: &Record,
    ) -> Result<(), String> {
        let traffic = record.traffic.clone();
        let mut client = MeteredIo::new(client, &traffic, Direction::Down);
        let mut upstream = MeteredIo::new(upstream, &traffic, Direction::Up);
        upstream.write_all(hello).await.map_err(|e| format!("endpoint: {e}"))?;
        let both = tokio::io::copy_bidirectional_with_sizes(&mut client, &mut upstream, BUFFER, BUFFER);
        let limit = self.config.idle_timeout;
        tokio::select! {
            res = both => res.map(|_| ()).map_err(|e| format!("splice: {e}")),
            () = traffic.idle(limit) => Err(format!("idle for {}s: closed", limit.as_secs())),
        }
    }
}

fn loop_error(dest: &Destination) -> DialError {
    DialError::Connect(dest.to_string(), std::io::Error::other("resolves to s3gate itself (a loop)"))
}

/// Sends the alert and closes; the client's bytes are not waited for.
async fn refuse(mut client: TcpStream, alert: TlsAlertDescription) {
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        let _ = client.write_all(&hello::alert(alert)).await;
        let _ = client.shutdown().await;
    })
    .await;
}
