//! Forward-proxy mode: what `HTTPS_PROXY` / `HTTP_PROXY` point at. `CONNECT host:443` opens a
//! byte tunnel (the client's TLS goes end to end, s3gate never sees inside), and absolute-form
//! plain-HTTP requests (`GET http://bucket.s3.amazonaws.com/key`) are forwarded as they are.
//!
//! It is never an open proxy: every destination must pass the allow list ([`allow`]), which by
//! default names only AWS S3 endpoints on port 443 (80 for plain HTTP). Connections are capped
//! by `--max-connections`, as the endpoint's are ([`crate::server::limits`]). The flow of one request:
//! authenticate ([`auth`]) -> parse and check the destination -> take a tunnel permit -> dial
//! ([`dial`]) -> answer and pump bytes ([`tunnel`], [`exchange`]) -> one log line ([`record`]).
//!
//! A plain HTTP/1.1 server (hyper, with upgrades for CONNECT) is used rather than the
//! endpoint's auto HTTP/1+2 one: proxy clients speak HTTP/1.1 to a proxy, and hyper's own
//! connection type lets a tunnel take back the bare TCP stream.

// The allow list and proxy users are pure rules that config builds too; they live in
// `forward_rules` so config need not depend on this module.
pub use crate::forward_rules::{allow, auth};
pub mod dial;
mod exchange;
mod record;
mod traffic;
mod tunnel;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::{Method, Request, Response};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch, Semaphore};

use crate::body::{self, Body};
use crate::config::ForwardConfig;
use crate::metrics::{Metrics, Mode};
use crate::server::limits::{Admission, ConnectionCap, REFUSAL_TIME};
use crate::server::{Shutdown, MAX_HEADERS, MAX_HEADER_BYTES};
use record::Record;

/// How long a client may take to send a request's headers.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Shared by every connection of one forward listener. Each clone of the `Arc` also holds the
/// drain sender, so "all clones dropped" is "every connection, tunnel and body is done".
pub(crate) struct Forwarder {
    config: ForwardConfig,
    /// `--allowed-source-subnet` (empty allows every client) and `--trusted-proxy`, shared with
    /// the endpoint.
    access: crate::config::AccessConfig,
    metrics: Metrics,
    /// `--audit-log`, shared with the endpoint: one record per tunnel or request.
    audit: Option<crate::audit::AuditLog>,
    permits: Arc<Semaphore>,
    /// Turns true when the shutdown grace period is over: tunnels still open are cut.
    cut: watch::Receiver<bool>,
    _drain: mpsc::Sender<()>,
}

/// Accepts proxy clients until shutdown, then lets tunnels and requests in flight finish for up
/// to `grace` before cutting them. `sources` limits who may use the proxy at all.
pub async fn serve(
    listener: TcpListener,
    config: ForwardConfig,
    access: crate::config::AccessConfig,
    metrics: Metrics,
    audit: Option<crate::audit::AuditLog>,
    shutdown: Shutdown,
    grace: Duration,
) {
    for p in config.allow.patterns.iter().map(ToString::to_string) {
        if p.split('.').all(|label| label == "*") {
            tracing::warn!(target: "s3gate::forward", pattern = %p, "the allow list reaches every DNS name of this many labels");
        }
    }
    let (drain_tx, mut drained) = mpsc::channel::<()>(1);
    let (cut_tx, cut) = watch::channel(false);
    let permits = Arc::new(Semaphore::new(config.max_tunnels));
    let fwd = Arc::new(Forwarder { config, access, metrics, audit, permits, cut, _drain: drain_tx });
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .keep_alive(true)
        .max_header_size(MAX_HEADER_BYTES)
        .max_headers(MAX_HEADERS);
    let cap = ConnectionCap::new(fwd.config.max_connections);
    let mut last_warned: Option<std::time::Instant> = None;
    let mut stop = shutdown.subscribe();
    loop {
        let (stream, peer) = tokio::select! {
            res = listener.accept() => match res {
                Ok(conn) => conn,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(target: "s3gate::forward", error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = until_true(&mut stop) => break,
        };
        let _ = stream.set_nodelay(true);
        let admission = cap.admit();
        if !matches!(admission, Admission::Serve(_)) {
            fwd.metrics.connection_refused(Mode::Forward);
            if last_warned.is_none_or(|at| at.elapsed() >= Duration::from_secs(10)) {
                last_warned = Some(std::time::Instant::now());
                tracing::warn!(target: "s3gate::forward", max_connections = fwd.config.max_connections, "connection cap reached: answering 503");
            }
        }
        match admission {
            Admission::Serve(place) => {
                let serving = connection(fwd.clone(), stream, peer, builder.clone(), shutdown.subscribe());
                tokio::spawn(async move {
                    let _place = place;
                    serving.await;
                });
            }
            Admission::Refuse(permit) => {
                let refusal = refuse(fwd.clone(), stream, peer, builder.clone());
                tokio::spawn(async move {
                    let _permit = permit;
                    let _ = tokio::time::timeout(REFUSAL_TIME, refusal).await;
                });
            }
            Admission::Close => drop(stream),
        }
    }
    drop(listener);
    drop(fwd);
    if tokio::time::timeout(grace, drained.recv()).await.is_err() {
        tracing::warn!(target: "s3gate::forward", "grace period over; cutting the remaining tunnels");
        let _ = cut_tx.send(true);
    }
}

/// Serves one client connection; on shutdown, finishes the request in flight and closes.
async fn connection(
    fwd: Arc<Forwarder>,
    mut stream: TcpStream,
    tcp_peer: SocketAddr,
    builder: http1::Builder,
    mut stop: watch::Receiver<bool>,
) {
    let _open = fwd.metrics.connection_opened(Mode::Forward);
    // Behind a trusted load balancer the client is who its PROXY protocol header says; nobody
    // else is read for one.
    let mut peer = tcp_peer;
    if fwd.access.trusted_proxies.contains(tcp_peer.ip()) {
        match crate::proxy_protocol::read_header(&mut stream, Duration::from_secs(5)).await {
            Ok(header) => peer = header.and_then(|h| h.source).unwrap_or(tcp_peer),
            Err(e) => {
                tracing::warn!(target: "s3gate::forward", peer = %tcp_peer, error = %e, "trusted proxy sent no valid PROXY protocol header; connection closed");
                return;
            }
        }
    }
    let mut cut = fwd.cut.clone();
    let handler = fwd.clone();
    let svc = service_fn(move |req| {
        let fwd = handler.clone();
        async move { Ok::<_, Infallible>(fwd.handle(req, peer).await) }
    });
    let conn = builder.serve_connection(TokioIo::new(stream), svc).with_upgrades();
    tokio::pin!(conn);
    let res = tokio::select! {
        res = conn.as_mut() => res,
        () = until_true(&mut stop) => {
            conn.as_mut().graceful_shutdown();
            tokio::select! {
                res = conn.as_mut() => res,
                () = until_true(&mut cut) => Ok(()),
            }
        }
    };
    if let Err(e) = res {
        tracing::debug!(target: "s3gate::forward", %peer, error = %e, "proxy connection ended with an error");
    }
}

/// Past `--max-connections`: the connection's request gets a plain `503`, and it is closed.
async fn refuse(fwd: Arc<Forwarder>, mut stream: TcpStream, tcp_peer: SocketAddr, builder: http1::Builder) {
    if fwd.access.trusted_proxies.contains(tcp_peer.ip())
        && crate::proxy_protocol::read_header(&mut stream, Duration::from_secs(5)).await.is_err()
    {
        return;
    }
    let svc = service_fn(|_req: Request<Incoming>| async {
        let mut resp = Response::new(body::full("s3gate: too many connections; try again later\n"));
        *resp.status_mut() = http::StatusCode::SERVICE_UNAVAILABLE;
        let headers = resp.headers_mut();
        headers.insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("text/plain; charset=utf-8"));
        headers.insert(http::header::CONNECTION, http::HeaderValue::from_static("close"));
        Ok::<_, Infallible>(resp)
    });
    let _ = builder.serve_connection(TokioIo::new(stream), svc).await;
}

/// Resolves once the flag is (or turns) true, or its sender is gone. The borrow `wait_for`
/// returns is not `Send`, so it is dropped here rather than held across a select.
async fn until_true(flag: &mut watch::Receiver<bool>) {
    let _ = flag.wait_for(|set| *set).await;
}

impl Forwarder {
    /// Authenticates, then hands CONNECT to the tunnel and everything else to the exchange.
    async fn handle(self: Arc<Self>, req: Request<Incoming>, peer: SocketAddr) -> Response<Body> {
        let mut record = Record::new(peer, req.method(), self.metrics.clone(), self.audit.clone());
        let sources = &self.access.allowed_source_subnets;
        if !sources.is_empty() && !sources.contains(peer.ip()) {
            return record.refuse(record::Refusal::Source);
        }
        match self.config.users.check(req.headers().get(http::header::PROXY_AUTHORIZATION)) {
            Ok(user) => record.user = user,
            Err(failure) => return record.refuse(record::Refusal::Auth(failure)),
        }
        if req.method() == Method::CONNECT {
            tunnel::open(self, req, record).await
        } else {
            exchange::forward(self, req, record).await
        }
    }
}
