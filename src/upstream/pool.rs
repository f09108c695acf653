//! Upstream HTTP/1 connections, kept by serving thread, over hyper's connection API.
//!
//! hyper-util's pooled client did, for every request: a keyed pool lookup (SipHash of the
//! scheme and authority, twice), a race between the checkout and a lazily built connect, and a
//! task spawned to put the connection back once its answer was read. Here a serving thread keeps
//! its connections in a short list and takes the last one that is ready for a request (hyper
//! says so from the connection's own state): a connection busy with an answer stays in the list
//! and is ready again once that answer has been read.
//!
//! A request sent on a kept connection that turns out closed (the upstream closed it between
//! two requests) goes again on another, as hyper-util's client did, but only if hyper hands it
//! back unsent.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use http::{Request, Response, Uri};
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use tower_service::Service;

use crate::body::{Body, BoxError};

/// Connections a thread keeps per upstream, busy or idle.
const MAX_KEPT: usize = 256;
/// A connection idle this long is closed rather than used: upstreams close theirs after a
/// while (S3 after about 20 s), and a request sent as they do would have to go again.
const IDLE_TIMEOUT: Duration = Duration::from_secs(50);
/// Sending on kept connections that turn out closed, then on a new one.
const MAX_ATTEMPTS: usize = 3;

/// Why a request got no answer from the upstream.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("cannot connect to the upstream: {0}")]
    Connect(BoxError),
    #[error("the request URI has no scheme or host")]
    Uri,
    #[error(transparent)]
    Http(#[from] hyper::Error),
}

impl SendError {
    /// Whether no connection could be made (`upstream_errors_total{kind="connect"}`).
    pub fn is_connect(&self) -> bool {
        matches!(self, Self::Connect(_))
    }
}

struct Kept {
    /// Where it goes: an upstream's requests mostly go to its own host, but not all (its
    /// STS endpoint, for one).
    scheme: http::uri::Scheme,
    authority: http::uri::Authority,
    tx: SendRequest<Body>,
    last_used: Instant,
}

/// One upstream's connections, a list per serving thread (and one for other threads).
pub struct Pool {
    connector: HttpsConnector<HttpConnector>,
    threads: Box<[List]>,
}

/// A thread's list, alone on its cache lines. Side by side, two threads' lists shared a line,
/// and each request locks its list twice: every lock moved the line from the other core, which
/// made each thread slower the more the other one served.
#[repr(align(128))]
struct List(Mutex<Vec<Kept>>);

impl Pool {
    pub fn new(connector: HttpsConnector<HttpConnector>, lists: usize) -> Self {
        Self { connector, threads: (0..lists.max(1)).map(|_| List(Mutex::new(Vec::new()))).collect() }
    }

    /// Sends `req` (absolute URI: its scheme and authority say where) as an origin-form request.
    pub async fn send(&self, mut req: Request<Body>) -> Result<Response<Incoming>, SendError> {
        let at = crate::listener::workers::index().min(self.threads.len() - 1);
        // Taken, not cloned: the request goes with the origin form put in its place.
        let target = std::mem::take(req.uri_mut());
        let (Some(scheme), Some(authority)) = (target.scheme(), target.authority()) else {
            return Err(SendError::Uri);
        };
        *req.uri_mut() = origin_form(&target);
        let mut attempt = 0;
        loop {
            attempt += 1;
            // The last attempt goes on a new connection, leaving the kept ones where they are.
            let kept = if attempt < MAX_ATTEMPTS { self.checkout(at, scheme, authority) } else { None };
            let (mut kept, reused) = match kept {
                Some(kept) => {
                    tracing::trace!(%authority, "reusing a kept upstream connection");
                    (kept, true)
                }
                _ => {
                    let tx = self.connect(scheme, authority).await?;
                    let (scheme, authority) = (scheme.clone(), authority.clone());
                    (Kept { scheme, authority, tx, last_used: Instant::now() }, false)
                }
            };
            let answer = kept.tx.try_send_request(req);
            // A reused connection goes back as it came, with its own scheme and authority.
            kept.last_used = Instant::now();
            self.keep(at, kept);
            match answer.await {
                Ok(resp) => return Ok(resp),
                Err(mut e) => match e.take_message() {
                    // Never sent: the kept connection was closed. Send it again, on another.
                    Some(unsent) if reused => {
                        tracing::debug!(%authority, "a kept upstream connection was closed; sending again");
                        req = unsent;
                    }
                    _ => return Err(e.into_error().into()),
                },
            }
        }
    }

    fn list(&self, at: usize) -> std::sync::MutexGuard<'_, Vec<Kept>> {
        // A list is whole at every step (pushes and removals), so a poisoned one is usable.
        self.threads[at].0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The most recently used connection that is ready for a request, if any; closed ones and
    /// ones idle past [`IDLE_TIMEOUT`] are dropped on the way.
    fn checkout(&self, at: usize, scheme: &http::uri::Scheme, authority: &http::uri::Authority) -> Option<Kept> {
        let mut list = self.list(at);
        let spent = |k: &Kept| k.tx.is_closed() || (k.tx.is_ready() && k.last_used.elapsed() > IDLE_TIMEOUT);
        let before = list.len();
        list.retain(|k| !spent(k));
        if list.len() < before {
            tracing::trace!(dropped = before - list.len(), "closed or long-idle upstream connections dropped");
        }
        let i = list.iter().rposition(|k| k.tx.is_ready() && k.authority == *authority && k.scheme == *scheme)?;
        Some(list.remove(i))
    }

    /// Puts a connection (busy with the request just sent) back in the thread's list.
    fn keep(&self, at: usize, kept: Kept) {
        let mut list = self.list(at);
        if list.len() >= MAX_KEPT {
            // Full: the oldest idle one makes room; with none idle, this one is not kept
            // (dropped, it still finishes the request in flight, then closes).
            match list.iter().position(|k| k.tx.is_ready()) {
                Some(i) => {
                    list.remove(i);
                }
                None => return,
            }
        }
        tracing::trace!(authority = %kept.authority, kept = list.len() + 1, "upstream connection kept for reuse");
        list.push(kept);
    }

    async fn connect(
        &self,
        scheme: &http::uri::Scheme,
        authority: &http::uri::Authority,
    ) -> Result<SendRequest<Body>, SendError> {
        let uri = Uri::builder()
            .scheme(scheme.clone())
            .authority(authority.clone())
            .path_and_query("/")
            .build()
            .map_err(|_| SendError::Uri)?;
        let mut connector = self.connector.clone();
        let io = connector.call(uri).await.map_err(SendError::Connect)?;
        let (tx, conn) = http1::Builder::new().handshake(io).await.map_err(|e| SendError::Connect(Box::new(e)))?;
        tracing::trace!(%scheme, %authority, "new upstream connection");
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "upstream connection ended with an error");
            }
        });
        Ok(tx)
    }

    /// Connections kept by each list (tests).
    #[cfg(test)]
    pub(crate) fn kept(&self) -> Vec<usize> {
        self.threads.iter().map(|l| l.0.lock().map(|l| l.len()).unwrap_or(0)).collect()
    }
}

/// `/path?query` of an absolute URI: what goes on the request line to an origin server.
fn origin_form(uri: &Uri) -> Uri {
    match uri.path_and_query() {
        Some(pq) if pq.as_str().starts_with('/') => Uri::from(pq.clone()),
        _ => Uri::from_static("/"),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
pub(super) mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use super::*;

    /// An HTTP/1 origin on 127.0.0.1 answering `ok`; counts its connections. `close_after`: it
    /// closes a connection once it has been idle that long.
    pub(crate) async fn origin(close_after: Option<Duration>) -> (String, Arc<AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let accepted = Arc::new(AtomicUsize::new(0));
        let counter = accepted.clone();
        tokio::spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    // `/big`: an answer too large to be in before it is read.
                    let svc = hyper::service::service_fn(|req: Request<Incoming>| async move {
                        let body = match req.uri().path() {
                            "/big" => crate::body::full(vec![b'x'; 8 << 20]),
                            _ => crate::body::full("ok"),
                        };
                        Ok::<_, std::convert::Infallible>(Response::new(body))
                    });
                    let io = hyper_util::rt::TokioIo::new(sock);
                    let mut builder = hyper::server::conn::http1::Builder::new();
                    if let Some(idle) = close_after {
                        builder.timer(hyper_util::rt::TokioTimer::new()).header_read_timeout(idle);
                    }
                    let _ = builder.serve_connection(io, svc).await;
                });
            }
        });
        (url, accepted)
    }

    fn pool() -> Pool {
        pool_of(1)
    }

    fn pool_of(lists: usize) -> Pool {
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(crate::upstream::client_tls_config(None).unwrap())
            .https_or_http()
            .enable_http1()
            .wrap_connector(HttpConnector::new());
        Pool::new(connector, lists)
    }

    async fn get(pool: &Pool, url: &str) -> Result<String, SendError> {
        let req = Request::get(format!("{url}/b/k?x=1")).body(crate::body::empty()).unwrap();
        let resp = pool.send(req).await?;
        let body = http_body_util::BodyExt::collect(resp.into_body()).await.unwrap().to_bytes();
        Ok(String::from_utf8_lossy(&body).into_owned())
    }

    /// Two serving threads' lists never share a cache line (128 bytes: a line and the one the
    /// CPU fetches beside it), whatever the size of a list's own fields.
    #[test]
    fn each_threads_list_is_alone_on_its_cache_lines() {
        let pool = pool_of(3);
        for pair in pool.threads.windows(2) {
            let (a, b) = (&pair[0] as *const List as usize, &pair[1] as *const List as usize);
            assert!(b - a >= 128, "lists {a:#x} and {b:#x} are {} bytes apart", b - a);
            assert_eq!(a % 128, 0, "list at {a:#x} does not start a cache line");
        }
    }

    #[tokio::test]
    async fn one_connection_serves_requests_in_turn_and_a_closed_one_is_replaced() {
        let (url, accepted) = origin(Some(Duration::from_millis(100))).await;
        let pool = pool();
        for _ in 0..5 {
            assert_eq!(get(&pool, &url).await.unwrap(), "ok");
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 1, "one connection, reused");
        assert_eq!(pool.kept(), [1]);
        // The origin closes it while idle; the next request still gets its answer.
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(get(&pool, &url).await.unwrap(), "ok");
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
        assert_eq!(pool.kept(), [1], "the closed connection is gone from the list");
    }

    #[tokio::test]
    async fn requests_at_once_take_a_connection_each() {
        let (url, accepted) = origin(None).await;
        let pool = Arc::new(pool());
        let mut answers = Vec::new();
        let mut held = Vec::new();
        // Four answers held open (large bodies, unread) need four connections.
        for _ in 0..4 {
            let req = Request::get(format!("{url}/big")).body(crate::body::empty()).unwrap();
            held.push(pool.send(req).await.unwrap());
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 4);
        for resp in held {
            answers.push(http_body_util::BodyExt::collect(resp.into_body()).await.unwrap().to_bytes());
        }
        assert!(answers.iter().all(|a| a.len() == 8 << 20));
        // Once read, they are ready again: no new connection for the next ones.
        for _ in 0..4 {
            assert_eq!(get(&pool, &url).await.unwrap(), "ok");
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 4);
    }

    /// An upstream's pool also carries requests to other hosts (its STS endpoint): each goes
    /// to its own host, on that host's connection.
    #[tokio::test]
    async fn each_host_gets_its_own_connections() {
        let (a, accepted_a) = origin(None).await;
        let (b, accepted_b) = origin(None).await;
        let pool = pool();
        for _ in 0..3 {
            assert_eq!(get(&pool, &a).await.unwrap(), "ok");
            assert_eq!(get(&pool, &b).await.unwrap(), "ok");
        }
        assert_eq!((accepted_a.load(Ordering::SeqCst), accepted_b.load(Ordering::SeqCst)), (1, 1));
        assert_eq!(pool.kept(), [2]);
    }

    /// The upstream closes a kept connection just as a request is put on it: hyper hands the
    /// request back unsent, and it goes again on a new connection.
    #[tokio::test]
    async fn a_request_put_on_a_connection_closed_under_it_goes_again() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (close_tx, mut close_rx) = tokio::sync::mpsc::unbounded_channel::<tokio::sync::oneshot::Sender<()>>();
        tokio::spawn(async move {
            // First connection: one answer, then closed when the test says so.
            let (mut first, _) = listener.accept().await.unwrap();
            let mut buf = vec![0u8; 4096];
            let _ = first.read(&mut buf).await.unwrap();
            first.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok").await.unwrap();
            let closed = close_rx.recv().await.unwrap();
            drop(first);
            closed.send(()).unwrap();
            // Second connection: answers whatever comes.
            let (mut second, _) = listener.accept().await.unwrap();
            let _ = second.read(&mut buf).await.unwrap();
            second.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nagain").await.unwrap();
            let _ = second.read(&mut buf).await;
        });
        let pool = pool();
        assert_eq!(get(&pool, &url).await.unwrap(), "ok");
        assert_eq!(pool.kept(), [1]);
        let (tx, rx) = tokio::sync::oneshot::channel();
        close_tx.send(tx).unwrap();
        rx.await.unwrap();
        // The close has not reached the kept connection's task yet: the request is put on it.
        assert_eq!(get(&pool, &url).await.unwrap(), "again");
    }

    #[tokio::test]
    async fn no_upstream_listening_is_a_connect_error() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        drop(listener);
        let err = get(&pool(), &url).await.unwrap_err();
        assert!(err.is_connect(), "{err}");
    }

    #[test]
    fn the_request_line_carries_the_path_and_query_only() {
        let cases = [
            ("http://h:9000/b/k?x=1", "/b/k?x=1"),
            ("https://b.s3.amazonaws.com/", "/"),
            ("http://h", "/"),
            ("http://h/?list-type=2", "/?list-type=2"),
        ];
        for (absolute, origin) in cases {
            assert_eq!(origin_form(&absolute.parse().expect("uri")), origin, "{absolute}");
        }
    }
}
