//! The admin listener (`--metrics-listen`): `GET /metrics` in the Prometheus text format, and
//! for load balancers and orchestrators `GET /health` (readiness: 503 while draining or without
//! upstream credentials) and `GET /live` (liveness), as [`crate::health`] decides them.
//!
//! It is one more service on the shared [`listener`]: HTTP/1.1 only and plain
//! text, since scrapers and health checkers need nothing more and the listener belongs on an
//! internal address. Its connections are not counted in the metrics it serves: those describe
//! client traffic.

use std::future::Future;
use std::time::Duration;

use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use tokio::net::TcpListener;

use crate::body::{self, Body};
use crate::health::{self, Readiness};
use crate::listener::{self, ConnInfo, Handler, ListenOptions, Protocol};
use crate::metrics::Metrics;
use crate::shutdown::Shutdown;

/// A scrape in flight is small: shutdown does not wait longer than this for a stuck one.
const GRACE: Duration = Duration::from_secs(2);
/// A scraper sends its request at once; a connection that does not is closed.
const IDLE_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves `/metrics`, `/health` and `/live` on `tcp` until `shutdown`.
pub fn serve(
    tcp: TcpListener,
    metrics: Metrics,
    readiness: Readiness,
    shutdown: Shutdown,
) -> impl Future<Output = ()> + Send {
    let options = ListenOptions {
        name: "metrics",
        protocol: Protocol::Http1,
        grace: GRACE,
        idle_timeout: IDLE_TIMEOUT,
        ..ListenOptions::default()
    };
    listener::serve(tcp, options, Admin { metrics, readiness }, shutdown)
}

#[derive(Clone)]
struct Admin {
    metrics: Metrics,
    readiness: Readiness,
}

impl Handler for Admin {
    fn call(&self, req: Request<Incoming>, _conn: ConnInfo) -> impl Future<Output = Response<Body>> + Send {
        let admin = self.clone();
        async move { admin.answer(&req).await }
    }
}

impl Admin {
    async fn answer(&self, req: &Request<Incoming>) -> Response<Body> {
        if !matches!(req.uri().path(), "/metrics" | "/health" | "/live") {
            return plain(StatusCode::NOT_FOUND, "not found\n");
        }
        if req.method() != Method::GET && req.method() != Method::HEAD {
            let mut resp = plain(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
            resp.headers_mut().insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
            return resp;
        }
        match req.uri().path() {
            "/health" => self.readiness.answer("ok").await,
            "/live" => health::live("ok"),
            _ => metrics_page(&self.metrics),
        }
    }
}

fn metrics_page(metrics: &Metrics) -> Response<Body> {
    let (content_type, text) = ("text/plain; version=0.0.4", metrics.render());
    let mut resp = Response::new(body::full(text));
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

fn plain(status: StatusCode, text: &'static str) -> Response<Body> {
    let mut resp = Response::new(body::full(text));
    *resp.status_mut() = status;
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    resp
}

/// Over a real socket: what scrapers and health checkers see.
#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;
    use crate::metrics::tests::{known_sequence, parse};

    /// Sends one HTTP/1.1 request and returns (status line, headers, body) of the answer.
    async fn get(addr: std::net::SocketAddr, method: &str, path: &str) -> (String, String, String) {
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let request = format!("{method} {path} HTTP/1.1\r\nHost: metrics\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await.unwrap();
        let (head, body) = answer.split_once("\r\n\r\n").unwrap_or_else(|| panic!("no head: {answer:?}"));
        let (status, headers) = head.split_once("\r\n").unwrap_or((head, ""));
        (status.to_owned(), headers.to_ascii_lowercase(), body.to_owned())
    }

    #[tokio::test]
    async fn serve_answers_over_a_real_socket() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let metrics = known_sequence();
        let shutdown = Shutdown::default();
        let readiness = Readiness::draining_only(shutdown.clone());
        let server = tokio::spawn(serve(listener, metrics.clone(), readiness, shutdown.clone()));

        let (status, headers, body) = get(addr, "GET", "/metrics").await;
        assert_eq!(status, "HTTP/1.1 200 OK");
        assert!(headers.contains("content-type: text/plain; version=0.0.4"), "{headers}");
        let e = parse(&body);
        assert_eq!(e.value(r#"s3gate_requests_total{action="s3:GetObject",mode="endpoint",status_class="2xx"}"#), "2");

        let (status, _, body) = get(addr, "GET", "/health").await;
        assert_eq!((status.as_str(), body.as_str()), ("HTTP/1.1 200 OK", "ok"));

        let (status, _, _) = get(addr, "GET", "/").await;
        assert_eq!(status, "HTTP/1.1 404 Not Found");
        let (status, _, _) = get(addr, "GET", "/metrics/extra").await;
        assert_eq!(status, "HTTP/1.1 404 Not Found");
        let (status, headers, _) = get(addr, "POST", "/metrics").await;
        assert_eq!(status, "HTTP/1.1 405 Method Not Allowed");
        assert!(headers.contains("allow: get, head"), "{headers}");

        let (status, _, body) = get(addr, "GET", "/live").await;
        assert_eq!((status.as_str(), body.as_str()), ("HTTP/1.1 200 OK", "ok"));

        // Counters move between scrapes.
        metrics.auth_failure("AccessDenied");
        let (_, _, body) = get(addr, "GET", "/metrics").await;
        assert_eq!(parse(&body).value(r#"s3gate_auth_failures_total{reason="AccessDenied"}"#), "1");

        // A drain is announced: readiness fails at once, liveness and metrics do not.
        shutdown.announce();
        let (status, _, body) = get(addr, "GET", "/health").await;
        assert_eq!((status.as_str(), body.as_str()), ("HTTP/1.1 503 Service Unavailable", "draining\n"));
        let (status, _, _) = get(addr, "GET", "/live").await;
        assert_eq!(status, "HTTP/1.1 200 OK");
        let (status, _, _) = get(addr, "GET", "/metrics").await;
        assert_eq!(status, "HTTP/1.1 200 OK");

        shutdown.trigger();
        tokio::time::timeout(Duration::from_secs(5), server).await.expect("serve did not stop").unwrap();
        assert!(tokio::net::TcpStream::connect(addr).await.is_err(), "listener still open after shutdown");
    }

    /// `tokio::spawn(serve(..))` then an immediate shutdown (a test's start-then-stop): the task
    /// has not run yet when the shutdown is triggered, and must still stop.
    #[tokio::test]
    async fn serve_stops_when_shut_down_before_its_first_poll() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let shutdown = Shutdown::default();
        let server = serve(listener, Metrics::new(), Readiness::draining_only(shutdown.clone()), shutdown.clone());
        shutdown.trigger();
        tokio::time::timeout(Duration::from_secs(5), server).await.expect("serve did not stop");
    }
}
