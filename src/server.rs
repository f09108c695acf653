//! Listeners: TCP accept, optional TLS (rustls), HTTP/1.1 and HTTP/2 via hyper-util, and a
//! graceful drain on shutdown.
//!
//! What a client can make a listener hold is bounded: connections (`--max-connections`, see
//! [`limits`]), the size of a request head ([`MAX_HEADER_BYTES`], [`MAX_HEADERS`]), and time:
//! the PROXY protocol header and the TLS handshake have their own timeouts, a connection with
//! no request in flight is closed after [`IDLE_TIMEOUT`], and request bodies get the proxy's
//! idle timeout.

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio_rustls::TlsAcceptor;

use crate::body::{Body, BoxError};
use crate::error::{S3Error, S3ErrorCode};
use crate::metrics::{Metrics, Mode};
use crate::net::CidrSet;
use crate::shutdown::Shutdown;

pub mod limits;

use limits::{Activity, Admission, ConnectionCap, RequestGuard};

/// The most a client's request head may take: an HTTP/1 request line and headers, an HTTP/2
/// header list (as HTTP/2 counts it: names, values and 32 bytes a field). S3 itself allows 8 KiB
/// of PUT headers; presigned URLs with a session token take a few KiB. More is `431`.
pub const MAX_HEADER_BYTES: usize = 64 * 1024;
/// Header fields in an HTTP/1 request (hyper's default, stated here); more is `431`. HTTP/2
/// counts fields within [`MAX_HEADER_BYTES`].
pub const MAX_HEADERS: usize = 100;
/// How long a connection may go without a request in flight: before its first request, an
/// HTTP/1 connection between requests (and a request head must be in within it), an HTTP/2
/// connection with no open stream. Then it is closed (HTTP/2: GOAWAY).
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// HTTP/2 pings while the connection is open: a peer that stops answering is gone, even in the
/// middle of a request.
const H2_PING_INTERVAL: Duration = Duration::from_secs(30);
const H2_PING_TIMEOUT: Duration = Duration::from_secs(20);

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error("TLS: {0}")]
    Tls(String),
}

/// The connection a request arrived on.
#[derive(Debug, Clone, Copy)]
pub struct ConnInfo {
    /// The TCP peer.
    pub peer: SocketAddr,
    /// The client a trusted load balancer named in its PROXY protocol header.
    pub proxied: Option<SocketAddr>,
    pub secure: bool,
}

/// Answers one request.
pub trait Handler: Clone + Send + Sync + 'static {
    fn call(&self, req: http::Request<Incoming>, conn: ConnInfo) -> impl Future<Output = http::Response<Body>> + Send;
}

/// How a listener treats its connections.
#[derive(Clone)]
pub struct ListenOptions {
    pub tls: Option<TlsAcceptor>,
    /// Peers that put a PROXY protocol header (v1 or v2) before anything else. A connection
    /// from anyone else is never read for one: only a load balancer may say who the client is.
    pub trusted_proxies: CidrSet,
    pub grace: Duration,
    pub metrics: Option<Metrics>,
    /// `--max-connections`: connections served at once; past it, `503 SlowDown`.
    pub max_connections: usize,
    /// See [`IDLE_TIMEOUT`].
    pub idle_timeout: Duration,
}

impl Default for ListenOptions {
    fn default() -> Self {
        Self {
            tls: None,
            trusted_proxies: CidrSet::default(),
            grace: Duration::ZERO,
            metrics: None,
            max_connections: limits::default_max_connections(),
            idle_timeout: IDLE_TIMEOUT,
        }
    }
}

pub async fn bind(addr: SocketAddr) -> Result<TcpListener, ServerError> {
    TcpListener::bind(addr).await.map_err(|source| ServerError::Bind { addr, source })
}

/// Loads a PEM certificate chain and key into a rustls server config offering h2 and http/1.1.
pub fn tls_acceptor(cert: &Path, key: &Path) -> Result<TlsAcceptor, ServerError> {
    let cert_pem = std::fs::read(cert).map_err(|e| ServerError::Tls(format!("{}: {e}", cert.display())))?;
    let key_pem = std::fs::read(key).map_err(|e| ServerError::Tls(format!("{}: {e}", key.display())))?;
    let certs = rustls_pemfile::certs(&mut cert_pem.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ServerError::Tls(format!("{}: {e}", cert.display())))?;
    if certs.is_empty() {
        return Err(ServerError::Tls(format!("{}: no certificate found", cert.display())));
    }
    let key_der = rustls_pemfile::private_key(&mut key_pem.as_slice())
        .map_err(|e| ServerError::Tls(format!("{}: {e}", key.display())))?
        .ok_or_else(|| ServerError::Tls(format!("{}: no private key found", key.display())))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ServerError::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key_der)
        .map_err(|e| ServerError::Tls(e.to_string()))?;
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(cfg)))
}

/// Accepts until shutdown, then waits up to `grace` for requests in flight. Past
/// `max_connections`, a connection is answered `503 SlowDown` and closed.
pub async fn serve<H: Handler>(listener: TcpListener, options: ListenOptions, handler: H, shutdown: Shutdown) {
    let grace = options.grace;
    let cap = ConnectionCap::new(options.max_connections);
    let builder = Arc::new(conn_builder(options.idle_timeout));
    let options = Arc::new(options);
    // Every connection task holds a sender: when all are gone, every connection is done.
    let (drain_tx, mut drained) = mpsc::channel::<()>(1);
    let mut last_warned: Option<Instant> = None;
    let mut stop = shutdown.subscribe();
    loop {
        let (stream, peer) = tokio::select! {
            res = listener.accept() => match res {
                Ok(conn) => conn,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = until_true(&mut stop) => break,
        };
        let _ = stream.set_nodelay(true);
        let admission = cap.admit();
        if !matches!(admission, Admission::Serve(_)) {
            if let Some(m) = &options.metrics {
                m.connection_refused(Mode::Endpoint);
            }
            if last_warned.is_none_or(|at| at.elapsed() >= Duration::from_secs(10)) {
                last_warned = Some(Instant::now());
                tracing::warn!(
                    max_connections = options.max_connections,
                    "connection cap reached: answering 503 SlowDown"
                );
            }
        }
        let task = ConnectionTask {
            options: options.clone(),
            builder: builder.clone(),
            stop: shutdown.subscribe(),
            _drain: drain_tx.clone(),
        };
        match admission {
            Admission::Serve(place) => {
                let handler = handler.clone();
                tokio::spawn(async move {
                    let _place = place;
                    let _open = task.options.metrics.as_ref().map(|m| m.connection_opened(Mode::Endpoint));
                    let idle = task.options.idle_timeout;
                    task.serve(stream, peer, handler, idle).await;
                });
            }
            Admission::Refuse(permit) => {
                tokio::spawn(async move {
                    let _permit = permit;
                    let refusal = task.serve(stream, peer, SlowDown, limits::REFUSAL_IDLE);
                    let _ = tokio::time::timeout(limits::REFUSAL_TIME, refusal).await;
                });
            }
            Admission::Close => drop(stream),
        }
    }
    drop(listener);
    drop(drain_tx);
    tokio::select! {
        _ = drained.recv() => tracing::info!("all connections drained"),
        () = tokio::time::sleep(grace) => tracing::warn!("grace period over; closing remaining connections"),
    }
}

/// The HTTP/1 and HTTP/2 settings every endpoint connection gets.
fn conn_builder(idle: Duration) -> ConnBuilder<TokioExecutor> {
    let mut builder = ConnBuilder::new(TokioExecutor::new());
    // hyper-util does not expose hyper's `max_header_size`; its read buffer limit is the same
    // bound for a head (a request line and headers that do not fit are a 431).
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(idle)
        .keep_alive(true)
        .max_buf_size(MAX_HEADER_BYTES)
        .max_headers(MAX_HEADERS);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(256)
        .max_header_list_size(MAX_HEADER_BYTES as u32)
        .keep_alive_interval(H2_PING_INTERVAL)
        .keep_alive_timeout(H2_PING_TIMEOUT);
    builder
}

/// What one connection's task needs from its listener.
struct ConnectionTask {
    options: Arc<ListenOptions>,
    builder: Arc<ConnBuilder<TokioExecutor>>,
    stop: watch::Receiver<bool>,
    _drain: mpsc::Sender<()>,
}

impl ConnectionTask {
    /// PROXY protocol header (from trusted peers), TLS handshake, then HTTP until the client
    /// leaves, the connection has had no request in flight for `idle`, or shutdown.
    async fn serve<H: Handler>(self, mut stream: TcpStream, peer: SocketAddr, handler: H, idle: Duration) {
        let options = &self.options;
        let mut proxied = None;
        if options.trusted_proxies.contains(peer.ip()) {
            match crate::proxy_protocol::read_header(&mut stream, Duration::from_secs(5)).await {
                Ok(header) => proxied = header.and_then(|h| h.source),
                Err(e) => {
                    tracing::warn!(%peer, error = %e, "trusted proxy sent no valid PROXY protocol header; connection closed");
                    return;
                }
            }
        }
        match options.tls.clone() {
            None => {
                let conn = ConnInfo { peer, proxied, secure: false };
                self.drive(TokioIo::new(stream), conn, handler, idle).await;
            }
            Some(acceptor) => {
                let tls_stream = match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream)).await {
                    Ok(Ok(s)) => s,
                    Ok(Err(e)) => {
                        tracing::debug!(%peer, error = %e, "TLS handshake failed");
                        return;
                    }
                    Err(_) => {
                        tracing::debug!(%peer, "TLS handshake timed out");
                        return;
                    }
                };
                let conn = ConnInfo { peer, proxied, secure: true };
                self.drive(TokioIo::new(tls_stream), conn, handler, idle).await;
            }
        }
    }

    async fn drive<I, H>(mut self, io: TokioIo<I>, conn: ConnInfo, handler: H, idle: Duration)
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
        H: Handler,
    {
        let activity = Activity::default();
        let requests = activity.clone();
        let svc = service_fn(move |req| {
            let handler = handler.clone();
            // Taken before the handler runs, so a request the client gives up on (its future
            // dropped) stops counting too.
            let guard = requests.request_started();
            async move {
                let resp = handler.call(req, conn).await;
                Ok::<_, std::convert::Infallible>(resp.map(|body| InFlight { body, _guard: guard }))
            }
        });
        let connection = self.builder.serve_connection(io, svc);
        tokio::pin!(connection);
        let mut closing = false;
        let res = loop {
            tokio::select! {
                res = connection.as_mut() => break res,
                () = until_true(&mut self.stop), if !closing => {
                    closing = true;
                    connection.as_mut().graceful_shutdown();
                }
                () = activity.idle_for(idle), if !closing => {
                    tracing::debug!(peer = %conn.peer, "closing a connection idle for {idle:?}");
                    closing = true;
                    connection.as_mut().graceful_shutdown();
                }
            }
        };
        if let Err(e) = res {
            tracing::debug!(peer = %conn.peer, error = %e, "connection ended with error");
        }
    }
}

/// Resolves once the flag is (or turns) true, or its sender is gone.
async fn until_true(flag: &mut watch::Receiver<bool>) {
    let _ = flag.wait_for(|set| *set).await;
}

/// A response body that keeps its request counted as in flight until it has been sent.
struct InFlight {
    body: Body,
    _guard: RequestGuard,
}

impl http_body::Body for InFlight {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, BoxError>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

/// The answer on a connection past `--max-connections`: what S3 says when it wants clients to
/// back off, which SDKs retry. HTTP/1 connections are closed after it.
#[derive(Clone, Copy)]
struct SlowDown;

impl Handler for SlowDown {
    fn call(&self, req: http::Request<Incoming>, _conn: ConnInfo) -> impl Future<Output = http::Response<Body>> + Send {
        let head = req.method() == http::Method::HEAD;
        let http1 = req.version() < http::Version::HTTP_2;
        async move {
            let request_id = format!("{:016X}", rand::random::<u64>());
            let mut resp = S3Error::new(S3ErrorCode::SlowDown, "Please reduce your request rate.")
                .into_response(&request_id, head);
            if http1 {
                resp.headers_mut().insert(http::header::CONNECTION, http::HeaderValue::from_static("close"));
            }
            resp
        }
    }
}
