//! Listeners: TCP accept, optional TLS (rustls), HTTP/1.1 and HTTP/2 via hyper-util, and a
//! graceful drain on shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use crate::body::Body;
use crate::metrics::{Metrics, Mode};
use crate::net::CidrSet;

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
#[derive(Clone, Default)]
pub struct ListenOptions {
    pub tls: Option<TlsAcceptor>,
    /// Peers that put a PROXY protocol header (v1 or v2) before anything else. A connection
    /// from anyone else is never read for one: only a load balancer may say who the client is.
    pub trusted_proxies: CidrSet,
    pub grace: Duration,
    pub metrics: Option<Metrics>,
}

/// Says "stop accepting and drain" to every accept loop.
#[derive(Clone)]
pub struct Shutdown(watch::Sender<bool>);

impl Default for Shutdown {
    fn default() -> Self {
        Self(watch::channel(false).0)
    }
}

impl Shutdown {
    pub fn trigger(&self) {
        let _ = self.0.send_replace(true);
    }

    pub fn subscribe(&self) -> watch::Receiver<bool> {
        self.0.subscribe()
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

/// Accepts until shutdown, then waits up to `grace` for requests in flight.
pub async fn serve<H: Handler>(listener: TcpListener, options: ListenOptions, handler: H, shutdown: Shutdown) {
    let grace = options.grace;
    let options = Arc::new(options);
    let mut builder = ConnBuilder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).header_read_timeout(Duration::from_secs(30)).keep_alive(true);
    builder.http2().timer(TokioTimer::new()).max_concurrent_streams(256);
    let builder = Arc::new(builder);
    let graceful = GracefulShutdown::new();
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
            _ = async { let _ = stop.wait_for(|stopped| *stopped).await.map(|_| ()); } => break,
        };
        let _ = stream.set_nodelay(true);
        let handler = handler.clone();
        let builder = builder.clone();
        let options = options.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let _guard = options.metrics.as_ref().map(|m| m.connection_opened(Mode::Endpoint));
            serve_connection(stream, peer, &options, handler, builder, watcher).await;
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => tracing::info!("all connections drained"),
        () = tokio::time::sleep(grace) => tracing::warn!("grace period over; closing remaining connections"),
    }
}

async fn serve_connection<H: Handler>(
    mut stream: TcpStream,
    peer: SocketAddr,
    options: &ListenOptions,
    handler: H,
    builder: Arc<ConnBuilder<TokioExecutor>>,
    watcher: hyper_util::server::graceful::Watcher,
) {
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
            let svc = service_fn(move |req| {
                let handler = handler.clone();
                async move { Ok::<_, std::convert::Infallible>(handler.call(req, conn).await) }
            });
            let conn = builder.serve_connection(TokioIo::new(stream), svc);
            if let Err(e) = watcher.watch(conn).await {
                tracing::debug!(%peer, error = %e, "connection ended with error");
            }
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
            let svc = service_fn(move |req| {
                let handler = handler.clone();
                async move { Ok::<_, std::convert::Infallible>(handler.call(req, conn).await) }
            });
            let conn = builder.serve_connection(TokioIo::new(tls_stream), svc);
            if let Err(e) = watcher.watch(conn).await {
                tracing::debug!(%peer, error = %e, "connection ended with error");
            }
        }
    }
}
