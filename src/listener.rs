//! The one way s3gate listens. Every listener (the S3 endpoint, the forward proxy, the admin
//! listener for metrics and health, the demo store) is this module given a [`Handler`]:
//!
//! accept, pausing on errors ([`accept`]) -> a place under `--max-connections`, or a short
//! refusal ([`limits`]) -> a serving thread ([`workers`]) -> the PROXY protocol header from
//! trusted peers ([`accept`]) -> TLS ([`tls`]) -> HTTP until the client leaves, idles or the
//! listener drains ([`protocol`]) -> on shutdown, the drain sequence ([`drain`]).
//!
//! Each connection runs in a tracing span naming the listener, the peer and, behind a load
//! balancer, the client, so every line a request logs says where it came from.
//!
//! What a client can make a listener hold is bounded: connections (`--max-connections`), the
//! size of a request head ([`MAX_HEADER_BYTES`], [`MAX_HEADERS`]), and time: the PROXY protocol
//! header and the TLS handshake have their own timeouts, and a connection with no request in
//! flight is closed after [`IDLE_TIMEOUT`].

pub mod accept;
pub mod drain;
pub mod limits;
mod preface;
pub mod protocol;
pub mod tls;
pub mod workers;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::{header, HeaderValue, Request, Response, StatusCode};
use hyper::body::Incoming;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tracing::Instrument;

use crate::body::{self, Body};
use crate::metrics::{Metrics, Mode};
use crate::net::CidrSet;
use crate::shutdown::Shutdown;
use accept::Backoff;
use drain::{Drain, Token};
use limits::{Admission, CapWarning, ConnectionCap};
pub use protocol::Protocol;
pub use tls::{acceptor as tls_acceptor, read_certificate, reloadable_acceptor, Certificate};

/// The most a client's request head may take: an HTTP/1 request line and headers, an HTTP/2
/// header list (as HTTP/2 counts it: names, values and 32 bytes a field). S3 itself allows 8 KiB
/// of PUT headers; presigned URLs with a session token take a few KiB. More is `431`.
pub const MAX_HEADER_BYTES: usize = 64 * 1024;
/// Header fields in an HTTP/1 request; more is `431`. HTTP/2 counts fields within
/// [`MAX_HEADER_BYTES`]. This is hyper's default, and it is left unset: hyper given any
/// `max_headers`, even this same number, fills its header index arrays element by element for
/// every request head it parses, a cost the default's fixed arrays do not have
/// (`docs/benchmarks.md`). `tests/it/limits.rs` holds the bound.
pub const MAX_HEADERS: usize = 100;
/// How long a connection may go without a request in flight: before its first request, an
/// HTTP/1 connection between requests (and a request head must be in within it), an HTTP/2
/// connection with no open stream. Then it is closed (HTTP/2: GOAWAY).
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum ListenError {
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

/// What a listener serves: it answers one request.
pub trait Handler: Clone + Send + Sync + 'static {
    fn call(&self, req: Request<Incoming>, conn: ConnInfo) -> impl Future<Output = Response<Body>> + Send;

    /// The answer on a connection past `--max-connections`, which is closed after it. A short
    /// plain-text `503` unless the listener's clients understand better (S3's `SlowDown`).
    fn refusal(&self, _req: &Request<Incoming>) -> Response<Body> {
        let mut resp = Response::new(body::full("s3gate: too many connections; try again later\n"));
        *resp.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
        resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
        resp
    }
}

/// How a listener treats its connections.
#[derive(Clone)]
pub struct ListenOptions {
    /// Names the listener in its log lines and in each connection's span.
    pub name: &'static str,
    pub protocol: Protocol,
    pub tls: Option<TlsAcceptor>,
    /// Peers that put a PROXY protocol header (v1 or v2) before anything else. A connection
    /// from anyone else is never read for one: only a load balancer may say who the client is.
    pub trusted_proxies: CidrSet,
    /// How long the drain waits for what is in flight before cutting it.
    pub grace: Duration,
    /// Where the listener's connections are counted (open, refused), and under which mode.
    pub metrics: Option<(Metrics, Mode)>,
    /// `--max-connections`: connections served at once; past it, [`Handler::refusal`].
    pub max_connections: usize,
    /// See [`IDLE_TIMEOUT`].
    pub idle_timeout: Duration,
}

impl Default for ListenOptions {
    fn default() -> Self {
        Self {
            name: "endpoint",
            protocol: Protocol::Auto,
            tls: None,
            trusted_proxies: CidrSet::default(),
            grace: Duration::ZERO,
            metrics: None,
            max_connections: limits::default_max_connections(),
            idle_timeout: IDLE_TIMEOUT,
        }
    }
}

pub async fn bind(addr: SocketAddr) -> Result<TcpListener, ListenError> {
    TcpListener::bind(addr).await.map_err(|source| ListenError::Bind { addr, source })
}

/// Accepts until shutdown, then drains (see [`drain`]). Past `max_connections`, a connection
/// gets the handler's [`Handler::refusal`] and is closed.
pub async fn serve<H: Handler>(tcp: TcpListener, options: ListenOptions, handler: H, shutdown: Shutdown) {
    Listener::new(tcp, options).serve(handler, shutdown).await;
}

/// A bound socket and how to serve it, before it serves: the moment to take a [`Token`] for
/// work that will outlive its connection.
pub struct Listener {
    tcp: TcpListener,
    options: ListenOptions,
    drain: Drain,
}

impl Listener {
    pub fn new(tcp: TcpListener, options: ListenOptions) -> Self {
        Self { tcp, options, drain: Drain::default() }
    }

    /// A token the drain waits for, and which says when to cut: for work a connection hands on
    /// (a forward-proxy tunnel runs on after its CONNECT request has been answered).
    pub fn token(&self) -> Token {
        self.drain.token()
    }

    pub async fn serve<H: Handler>(self, handler: H, shutdown: Shutdown) {
        let Listener { tcp, options, drain } = self;
        let (name, grace) = (options.name, options.grace);
        let http = protocol::Http::new(options.protocol);
        let accepting = accept_loop(tcp, Arc::new(Shared { options, http }), handler, drain.token());
        drain.run(name, accepting, &shutdown, grace).await;
    }
}

/// What every connection of one listener shares.
struct Shared {
    options: ListenOptions,
    http: protocol::Http,
}

/// Accepts connections and gives each its own task, for as long as the drain lets it run. It
/// owns the socket, the handler and a token: dropping it is "stop accepting".
async fn accept_loop<H: Handler>(tcp: TcpListener, shared: Arc<Shared>, handler: H, token: Token) {
    let name = shared.options.name;
    let cap = ConnectionCap::new(shared.options.max_connections);
    let mut backoff = Backoff::default();
    let mut warning = CapWarning::default();
    loop {
        let (stream, peer) = accept::next(&tcp, &mut backoff, name).await;
        let _ = stream.set_nodelay(true);
        let span = tracing::info_span!("conn", listener = %name, %peer, client = tracing::field::Empty);
        let admission = cap.admit();
        if !matches!(admission, Admission::Serve(_)) {
            shared.count_refusal(&mut warning);
        }
        match admission {
            Admission::Serve(place) => {
                let counted = shared.options.metrics.as_ref().map(|(m, mode)| m.connection_opened(*mode));
                let idle = shared.options.idle_timeout;
                let (shared, handler, token) = (shared.clone(), handler.clone(), token.clone());
                on_serving_thread(stream, span, move |stream| async move {
                    let _held = (place, counted);
                    shared.connection(stream, peer, handler, idle, token).await;
                });
            }
            Admission::Refuse(permit) => {
                let (shared, refusal, token) = (shared.clone(), Refusal(handler.clone()), token.clone());
                on_serving_thread(stream, span, move |stream| async move {
                    let _permit = permit;
                    let refusing = shared.connection(stream, peer, refusal, limits::REFUSAL_IDLE, token);
                    let _ = tokio::time::timeout(limits::REFUSAL_TIME, refusing).await;
                });
            }
            Admission::Close => drop(stream),
        }
    }
}

/// Serves an accepted connection on a serving thread ([`workers`]), in its span. The socket
/// moves there unregistered and joins that thread's reactor.
fn on_serving_thread<F, Fut>(stream: TcpStream, span: tracing::Span, serve: F)
where
    F: FnOnce(TcpStream) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let stream = match stream.into_std() {
        Ok(stream) => stream,
        Err(e) => return tracing::debug!(error = %e, "accepted connection lost before it was served"),
    };
    workers::spawn(Box::new(move || {
        Box::pin(
            async move {
                match TcpStream::from_std(stream) {
                    Ok(stream) => serve(stream).await,
                    Err(e) => tracing::warn!(error = %e, "cannot serve an accepted connection"),
                }
            }
            .instrument(span),
        )
    }));
}

impl Shared {
    /// PROXY protocol header (from trusted peers), TLS handshake, then HTTP; dropped where it
    /// stands if the drain cuts it.
    async fn connection<H: Handler>(
        self: Arc<Self>,
        mut stream: TcpStream,
        peer: SocketAddr,
        handler: H,
        idle: Duration,
        token: Token,
    ) {
        let cut = token.cut();
        let serving = async {
            let proxied = match accept::proxied_client(&mut stream, peer, &self.options.trusted_proxies).await {
                Ok(client) => client,
                Err(e) => {
                    tracing::warn!(error = %e, "trusted proxy sent no valid PROXY protocol header; connection closed");
                    return;
                }
            };
            if let Some(client) = proxied {
                tracing::Span::current().record("client", tracing::field::display(client));
            }
            match &self.options.tls {
                None => {
                    let conn = ConnInfo { peer, proxied, secure: false };
                    self.http.serve(stream, conn, handler, idle, &token).await;
                }
                Some(acceptor) => {
                    let Some(tls) = tls::handshake(acceptor, stream).await else { return };
                    let conn = ConnInfo { peer, proxied, secure: true };
                    self.http.serve(tls, conn, handler, idle, &token).await;
                }
            }
        };
        tokio::select! {
            () = serving => {}
            () = cut => tracing::debug!("still open at the end of the grace period: closed"),
        }
    }

    /// Counts a connection past the cap, and says so in the log now and then.
    fn count_refusal(&self, warning: &mut CapWarning) {
        if let Some((metrics, mode)) = &self.options.metrics {
            metrics.connection_refused(*mode);
        }
        if warning.due() {
            tracing::warn!(
                listener = self.options.name,
                max_connections = self.options.max_connections,
                "connection cap reached: answering 503"
            );
        }
    }
}

/// Serves a connection past the cap: every request gets the listener's refusal, and HTTP/1
/// connections are closed after it.
#[derive(Clone)]
struct Refusal<H>(H);

impl<H: Handler> Handler for Refusal<H> {
    fn call(&self, req: Request<Incoming>, _conn: ConnInfo) -> impl Future<Output = Response<Body>> + Send {
        let mut resp = self.0.refusal(&req);
        if req.version() < http::Version::HTTP_2 {
            resp.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        std::future::ready(resp)
    }
}
