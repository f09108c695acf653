//! What a client can make s3gate hold is bounded: connections past `--max-connections` are told
//! to slow down, request heads past their size or field count are refused before anything goes
//! upstream, and a connection with nothing in flight (silent from the start, HTTP/1 between
//! requests, HTTP/2 with no open stream) is closed.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Empty, StreamBody};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use s3gate::body::Body;
use s3gate::listener::{self, ConnInfo, Handler, ListenOptions};
use s3gate::shutdown::Shutdown;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::recorder::Recorder;
use crate::support::Gateway;

/// Sends `request` as it is and reads the answer until the server closes.
async fn exchange(addr: SocketAddr, request: &str) -> String {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.write_all(request.as_bytes()).await.expect("send");
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut answer)).await;
    assert!(read.is_ok(), "no answer to {:?}", &request[..request.len().min(60)]);
    String::from_utf8_lossy(&answer).into_owned()
}

fn health(extra_headers: &str) -> String {
    format!("GET /_s3gate/health HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n{extra_headers}\r\n")
}

#[tokio::test]
async fn past_max_connections_a_new_connection_gets_slow_down_until_one_closes() {
    let gw = Gateway::start_with(|a| a.max_connections = Some(2)).await;
    let first = TcpStream::connect(gw.addr()).await.expect("connect");
    let _second = TcpStream::connect(gw.addr()).await.expect("connect");

    let answer = exchange(gw.addr(), &health("")).await;
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("<Code>SlowDown</Code>"), "{answer}");
    assert!(answer.contains("<RequestId>"), "{answer}");

    drop(first);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let answer = exchange(gw.addr(), &health("")).await;
        if answer.starts_with("HTTP/1.1 200") {
            break;
        }
        assert!(answer.contains("SlowDown"), "{answer}");
        assert!(Instant::now() < deadline, "the closed connection's place was never freed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let metrics = gw.running.as_ref().expect("running").metrics.render();
    let refused = metrics
        .lines()
        .find_map(|l| l.strip_prefix("s3gate_refused_connections_total{mode=\"endpoint\"} "))
        .and_then(|v| v.parse::<u64>().ok());
    assert!(refused.is_some_and(|n| n >= 1), "{metrics}");
    gw.stop().await;
}

#[tokio::test]
async fn the_forward_proxy_has_its_own_connection_cap() {
    let running = crate::forward::proxy_with(|a| a.max_connections = Some(1)).await;
    let at = crate::forward::addr_of(&running);
    let first = TcpStream::connect(at).await.expect("connect");
    let connect = "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n";
    let answer = exchange(at, connect).await;
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("too many connections"), "{answer}");

    drop(first);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        // Served again: refused by the allow list, not by the cap.
        let mut s = TcpStream::connect(at).await.expect("connect");
        s.write_all(connect.as_bytes()).await.expect("send");
        let mut head = [0u8; 12];
        s.read_exact(&mut head).await.expect("an answer");
        if &head == b"HTTP/1.1 403" {
            break;
        }
        assert!(Instant::now() < deadline, "the closed connection's place was never freed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    running.stop().await;
}

#[tokio::test]
async fn request_heads_past_their_bounds_are_431_and_nothing_goes_upstream() {
    let upstream = Recorder::ok().await;
    let gw = Gateway::start_with(|a| a.upstream = Some(upstream.url())).await;
    let headers = |n: usize| (0..n).map(|i| format!("x-amz-meta-h{i}: v\r\n")).collect::<String>();
    let put = |extra: &str| {
        format!("PUT /bucket/key HTTP/1.1\r\nHost: gw\r\nContent-Length: 0\r\nConnection: close\r\n{extra}\r\n")
    };

    // Within the bounds: answered (the most fields allowed, with the two of `health`; a 40 KiB
    // field).
    assert!(exchange(gw.addr(), &health(&headers(listener::MAX_HEADERS - 2))).await.starts_with("HTTP/1.1 200"));
    let big = format!("x-big: {}\r\n", "a".repeat(40 * 1024));
    assert!(exchange(gw.addr(), &health(&big)).await.starts_with("HTTP/1.1 200"));

    // Past them: too many fields, one field too large, a head too large in total.
    let too_big = format!("x-big: {}\r\n", "a".repeat(listener::MAX_HEADER_BYTES));
    let many_large = (0..40).map(|i| format!("x-h{i}: {}\r\n", "b".repeat(2000))).collect::<String>();
    for (what, extra) in [
        ("101 fields", headers(listener::MAX_HEADERS + 1)),
        ("a 64 KiB field", too_big),
        ("80 KB of fields", many_large),
    ] {
        let answer = exchange(gw.addr(), &put(&extra)).await;
        assert!(answer.starts_with("HTTP/1.1 431"), "{what}: {answer}");
    }

    // HTTP/2: the header list is bounded the same way.
    let (status, _) = h2_request(gw.addr(), "/bucket/key", &[("x-big", "a".repeat(80_000))]).await;
    assert_eq!(status, 431);
    let (status, _) = h2_request(gw.addr(), "/_s3gate/health", &[("x-big", "a".repeat(40_000))]).await;
    assert_eq!(status, 200);

    assert!(upstream.requests().is_empty(), "{:?}", upstream.requests());
    gw.stop().await;
}

/// One HTTP/2 (prior knowledge, no TLS) GET with extra headers: the status and the body.
async fn h2_request(addr: SocketAddr, path: &str, headers: &[(&'static str, String)]) -> (u16, Bytes) {
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let (mut send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp)).await.expect("h2 handshake");
    tokio::spawn(conn);
    let mut req = Request::get(format!("http://{addr}{path}")).body(Empty::<Bytes>::new()).expect("request");
    for (name, value) in headers {
        req.headers_mut().insert(*name, value.parse().expect("header value"));
    }
    let resp = send.send_request(req).await.expect("an answer");
    let status = resp.status().as_u16();
    (status, resp.into_body().collect().await.map(|c| c.to_bytes()).unwrap_or_default())
}

/// Answers `/slow` with six bytes, one every 300 ms, and anything else with `ok`.
#[derive(Clone)]
struct Slow;

impl Handler for Slow {
    fn call(&self, req: Request<Incoming>, _conn: ConnInfo) -> impl Future<Output = Response<Body>> + Send {
        let slow = req.uri().path() == "/slow";
        async move {
            if !slow {
                return Response::new(s3gate::body::full("ok"));
            }
            let drip = futures_util::stream::unfold(0u8, |i| async move {
                if i == 6 {
                    return None;
                }
                tokio::time::sleep(Duration::from_millis(300)).await;
                Some((Ok::<_, Infallible>(http_body::Frame::data(Bytes::from_static(b"x"))), i + 1))
            });
            Response::new(s3gate::body::boxed(StreamBody::new(drip)))
        }
    }
}

/// A listener with a 1 s idle timeout in front of [`Slow`].
async fn listener_with_short_idle() -> (SocketAddr, Shutdown) {
    let tcp = listener::bind("127.0.0.1:0".parse().expect("addr")).await.expect("bind");
    let addr = tcp.local_addr().expect("addr");
    let shutdown = Shutdown::default();
    let options =
        ListenOptions { grace: Duration::from_secs(1), idle_timeout: Duration::from_secs(1), ..Default::default() };
    tokio::spawn(listener::serve(tcp, options, Slow, shutdown.clone()));
    (addr, shutdown)
}

/// Waits for the server to close `s`; how long it took.
async fn closed_after(s: &mut TcpStream) -> Duration {
    let started = Instant::now();
    let mut sink = [0u8; 1024];
    loop {
        match tokio::time::timeout(Duration::from_secs(10), s.read(&mut sink)).await {
            Err(_) => panic!("the connection was not closed"),
            Ok(Ok(0)) | Ok(Err(_)) => return started.elapsed(),
            Ok(Ok(_)) => {}
        }
    }
}

#[tokio::test]
async fn a_connection_that_never_sends_or_waits_between_requests_is_closed() {
    let (addr, shutdown) = listener_with_short_idle().await;
    // Silent from the start: not even enough bytes to tell HTTP/1 from HTTP/2.
    let mut silent = TcpStream::connect(addr).await.expect("connect");
    let took = closed_after(&mut silent).await;
    assert!(took >= Duration::from_millis(900) && took < Duration::from_secs(4), "closed after {took:?}");
    // HTTP/1 keep-alive, after one answered request.
    let mut kept = TcpStream::connect(addr).await.expect("connect");
    kept.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await.expect("send");
    let took = closed_after(&mut kept).await;
    assert!(took >= Duration::from_millis(900) && took < Duration::from_secs(4), "closed after {took:?}");
    shutdown.trigger();
}

/// Slowloris: a request head begun and never finished holds a connection no longer than the
/// idle timeout, on a fresh connection and between keep-alive requests.
#[tokio::test]
async fn a_request_head_left_unfinished_is_closed_within_the_idle_timeout() {
    let (addr, shutdown) = listener_with_short_idle().await;
    let mut fresh = TcpStream::connect(addr).await.expect("connect");
    fresh.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ").await.expect("send");
    let took = closed_after(&mut fresh).await;
    assert!(took >= Duration::from_millis(900) && took < Duration::from_secs(4), "closed after {took:?}");

    let mut kept = TcpStream::connect(addr).await.expect("connect");
    kept.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await.expect("send");
    let mut answer = [0u8; 1024];
    let n = kept.read(&mut answer).await.expect("answer");
    assert!(answer[..n].starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&answer[..n]));
    kept.write_all(b"GET / HTTP/1.1\r\nHo").await.expect("send");
    // Trickled, a byte a while: bytes arriving do not make an unfinished head a request.
    let started = Instant::now();
    for b in b"st: x\r\n" {
        tokio::time::sleep(Duration::from_millis(150)).await;
        if kept.write_all(&[*b]).await.is_err() {
            break;
        }
    }
    let took = started.elapsed() + closed_after(&mut kept).await;
    assert!(took < Duration::from_secs(4), "closed after {took:?}");
    shutdown.trigger();
}

#[tokio::test]
async fn an_http2_connection_is_closed_when_idle_but_not_while_a_response_streams() {
    let (addr, shutdown) = listener_with_short_idle().await;
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let (mut send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp)).await.expect("h2 handshake");
    let connection = tokio::spawn(conn);

    // 1.8 s of response, longer than the idle timeout: the open stream keeps the connection.
    let req = Request::get(format!("http://{addr}/slow")).body(Empty::<Bytes>::new()).expect("request");
    let resp = send.send_request(req).await.expect("an answer");
    let body = resp.into_body().collect().await.expect("the whole body").to_bytes();
    assert_eq!(&body[..], b"xxxxxx");
    let ended = Instant::now();
    assert!(!connection.is_finished(), "closed while a response was streaming");

    // Then nothing: closed (GOAWAY) after the idle timeout.
    let closed = tokio::time::timeout(Duration::from_secs(10), connection).await;
    assert!(closed.is_ok(), "the idle HTTP/2 connection was not closed");
    let took = ended.elapsed();
    assert!(took >= Duration::from_millis(800) && took < Duration::from_secs(4), "closed after {took:?}");
    shutdown.trigger();
}
