//! HTTP on an accepted connection, until the client leaves, the connection idles or its
//! listener drains.
//!
//! The same bounds hold whichever HTTP a listener speaks: a request head of at most
//! [`MAX_HEADER_BYTES`] and [`MAX_HEADERS`](super::MAX_HEADERS) fields, and a connection with
//! no request in flight closed after its idle timeout. A request counts as in flight from the
//! moment its head is read until its response body has been sent, so a long download is never
//! taken for idleness.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::server::conn::{http1, http2};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};

use http::{header, HeaderValue};

use super::drain::{Token, QUIET};
use super::limits::{Activity, RequestGuard};
use super::preface;
use super::{ConnInfo, Handler, MAX_HEADER_BYTES};
use crate::body::{Body, BoxError};

/// HTTP/2 pings while the connection is open: a peer that stops answering is gone, even in the
/// middle of a request.
const H2_PING_INTERVAL: Duration = Duration::from_secs(30);
const H2_PING_TIMEOUT: Duration = Duration::from_secs(20);
/// Streams one HTTP/2 client may have open at once.
const H2_MAX_STREAMS: u32 = 256;
/// The most an HTTP/1 connection reads ahead: room for a whole head ([`MAX_HEADER_BYTES`]) and
/// for large body reads, which cost less CPU per byte than 64 KiB ones (hyper's own default).
const H1_MAX_BUF: usize = 400 * 1024;

/// Which HTTP a listener speaks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Protocol {
    /// HTTP/1.1 and HTTP/2 (by ALPN, or by the HTTP/2 preface on plain TCP): what S3 clients
    /// speak to the endpoint and the store.
    #[default]
    Auto,
    /// HTTP/1.1 only, with upgrades. Proxy clients speak HTTP/1.1 to a proxy, and a CONNECT
    /// tunnel takes back hyper's bare TCP stream, which the auto server's wrapper would hide.
    Http1,
}

/// One listener's HTTP settings, built once and shared by its connections.
#[derive(Clone)]
pub(super) enum Http {
    /// HTTP/1.1 or HTTP/2, told apart by the connection's first bytes ([`preface::sniff`]).
    Auto(Arc<(http1::Builder, http2::Builder<TokioExecutor>)>),
    Http1(Arc<http1::Builder>),
}

impl Http {
    pub(super) fn new(protocol: Protocol) -> Self {
        // No header read timeout of hyper's: `drive` closes an HTTP/1 connection that has had
        // no request in flight for `idle`, a request head begun and never finished included.
        // hyper's own timer cost an allocation and a timer set and cleared for every request.
        let mut h1 = http1::Builder::new();
        h1.keep_alive(true).max_header_size(MAX_HEADER_BYTES).max_buf_size(H1_MAX_BUF);
        match protocol {
            Protocol::Auto => {
                let mut h2 = http2::Builder::new(TokioExecutor::new());
                h2.timer(TokioTimer::new())
                    .max_concurrent_streams(H2_MAX_STREAMS)
                    .max_header_list_size(MAX_HEADER_BYTES as u32)
                    .keep_alive_interval(H2_PING_INTERVAL)
                    .keep_alive_timeout(H2_PING_TIMEOUT);
                Http::Auto(Arc::new((h1, h2)))
            }
            Protocol::Http1 => Http::Http1(Arc::new(h1)),
        }
    }

    /// Serves `io` until the client leaves, the connection has had no request in flight for
    /// `idle`, or the listener drains; either of the last two closes it gracefully.
    pub(super) async fn serve<I, H>(&self, io: I, conn: ConnInfo, handler: H, idle: Duration, drain: &Token)
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
        H: Handler,
    {
        let activity = Activity::default();
        let requests = activity.clone();
        let token = drain.clone();
        let svc = service_fn(move |req: http::Request<hyper::body::Incoming>| {
            let handler = handler.clone();
            // Taken before the handler runs, so a request the client gives up on (its future
            // dropped) stops counting too.
            let guard = requests.request_started();
            if req.version() >= http::Version::HTTP_2 {
                requests.speaks_http2();
            }
            let last_if_draining = keep_alive_ends_on_drain(&req).then(|| token.clone());
            async move {
                let mut resp = handler.call(req, conn).await;
                if last_if_draining.is_some_and(|t| t.is_draining()) {
                    // hyper closes an HTTP/1 connection after a response that says so.
                    resp.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
                }
                Ok::<_, Infallible>(resp.map(|body| InFlight { body, _guard: guard }))
            }
        });
        match self {
            Http::Auto(builders) => {
                // A client that sends nothing is given the same time as one that sends half a head.
                let (h2, io) = match tokio::time::timeout(idle, preface::sniff(io)).await {
                    Ok(Ok(Some(sniffed))) => sniffed,
                    Ok(Ok(None)) => return,
                    Ok(Err(e)) => return tracing::debug!(error = %e, "connection failed before its first request"),
                    Err(_) => return tracing::debug!("no request within {idle:?}: connection closed"),
                };
                let (h1_builder, h2_builder) = &**builders;
                let io = TokioIo::new(io);
                if h2 {
                    let connection = h2_builder.serve_connection(io, svc);
                    drive(connection, |c| c.graceful_shutdown(), &activity, idle, drain, Idle::GoAway).await;
                } else {
                    let connection = h1_builder.serve_connection(io, svc);
                    drive(connection, |c| c.graceful_shutdown(), &activity, idle, drain, Idle::Drop).await;
                }
            }
            Http::Http1(h1) => {
                let connection = h1.serve_connection(TokioIo::new(io), svc).with_upgrades();
                drive(connection, |c| c.graceful_shutdown(), &activity, idle, drain, Idle::Drop).await;
            }
        }
    }
}

/// Whether a response to `req` should tell an HTTP/1 client, once the listener drains, that
/// the connection ends after it. Not HTTP/2 (GOAWAY says it there, and the header is not
/// allowed) and not CONNECT, whose answer turns the connection into a tunnel.
fn keep_alive_ends_on_drain<B>(req: &http::Request<B>) -> bool {
    req.version() < http::Version::HTTP_2 && req.method() != http::Method::CONNECT
}

/// What becomes of a connection that has had no request in flight for the idle timeout.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Idle {
    /// HTTP/1: closed at once. Nothing is in flight, but hyper may hold part of a request head
    /// (a client that began one and stalled), and a graceful shutdown would wait for the rest.
    Drop,
    /// HTTP/2: GOAWAY, then it closes.
    GoAway,
}

/// Runs one hyper connection, asking it to close (HTTP/1: after the response in flight;
/// HTTP/2: GOAWAY, then the open streams finish) once the listener drains, when that cannot
/// cross a request ([`Activity::closable`]; responses meanwhile say `Connection: close`), and
/// closing it when it idles (see [`Idle`]).
///
/// `close` is each connection type's own `graceful_shutdown`: hyper has no trait for it that
/// covers an HTTP/1 connection with upgrades.
async fn drive<C, E>(
    connection: C,
    close: impl Fn(Pin<&mut C>),
    activity: &Activity,
    idle: Duration,
    drain: &Token,
    on_idle: Idle,
) where
    C: Future<Output = Result<(), E>>,
    E: std::fmt::Display,
{
    tokio::pin!(connection);
    let draining = drain.draining();
    let draining = async move {
        draining.await;
        activity.closable(QUIET, tokio::time::Instant::now()).await;
    };
    tokio::pin!(draining);
    let mut closing = false;
    let res = loop {
        tokio::select! {
            res = connection.as_mut() => break res,
            () = &mut draining, if !closing => {
                closing = true;
                close(connection.as_mut());
            }
            () = activity.idle_for(idle), if !closing => {
                tracing::debug!("closing a connection idle for {idle:?}");
                if on_idle == Idle::Drop {
                    break Ok(());
                }
                closing = true;
                close(connection.as_mut());
            }
        }
    };
    if let Err(e) = res {
        tracing::debug!(error = %e, "connection ended with an error");
    }
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
