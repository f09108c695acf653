//! Streams end cleanly however a peer misbehaves: stalls and disconnects on either side never
//! hang a connection, and never leave a partial object upstream.

use std::time::{Duration, Instant, SystemTime};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::raw::{self, sha256_hex};
use crate::support::{create_bucket, exists, pattern, Gateway, CLIENT_SECRET};

/// Opens a raw connection and sends a signed PUT's head plus the first `sent` bytes of `data`.
async fn partial_put(gw: &Gateway, path: &str, data: &[u8], sent: usize) -> TcpStream {
    let mut req = raw::request("PUT", gw.addr(), path);
    req.headers_mut().insert("content-length", data.len().to_string().parse().expect("value"));
    raw::sign(&mut req, &sha256_hex(data), SystemTime::now(), CLIENT_SECRET);
    let mut head = format!("PUT {path} HTTP/1.1\r\n");
    for (k, v) in req.headers() {
        head.push_str(&format!("{k}: {}\r\n", v.to_str().expect("ascii")));
    }
    head.push_str("\r\n");
    let mut sock = TcpStream::connect(gw.addr()).await.expect("connect");
    sock.write_all(head.as_bytes()).await.expect("head");
    sock.write_all(&data[..sent]).await.expect("partial body");
    sock
}

#[tokio::test]
async fn a_client_that_stalls_mid_body_gets_request_timeout_and_nothing_is_stored() {
    let gw = Gateway::start_with(|a| a.upstream_timeout = Some(1)).await;
    create_bucket(&gw.client(), "stall").await;
    let data = pattern(1_000_000, 1);
    let mut sock = partial_put(&gw, "/stall/obj", &data, 300_000).await;
    let started = Instant::now();
    let mut resp = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), sock.read_to_end(&mut resp)).await;
    assert!(read.is_ok(), "the gateway must close a stalled upload, not hang");
    let text = String::from_utf8_lossy(&resp);
    assert!(text.starts_with("HTTP/1.1 400"), "{text}");
    assert!(text.contains("<Code>RequestTimeout</Code>"), "{text}");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(!exists(&gw.upstream.direct_client(), "stall", "obj").await);
}

#[tokio::test]
async fn a_client_that_disconnects_mid_body_cancels_the_upstream_request() {
    let gw = Gateway::start().await;
    create_bucket(&gw.client(), "gone").await;
    let data = pattern(2_000_000, 2);
    let sock = partial_put(&gw, "/gone/obj", &data, 1_000_000).await;
    drop(sock);
    // Give the gateway time to notice and the store time to (not) finish.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!exists(&gw.upstream.direct_client(), "gone", "obj").await);
    // The gateway is unharmed.
    gw.client().list_buckets().send().await.expect("still serving");
}

/// An upstream that accepts connections, reads the request, and never answers.
async fn silent_upstream() -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((mut sock, _)) = listener.accept().await {
            let mut buf = [0u8; 4096];
            let _ = sock.read(&mut buf).await;
            held.push(sock);
        }
    });
    addr
}

#[tokio::test]
async fn an_upstream_that_never_answers_is_service_unavailable_after_the_timeout() {
    let addr = silent_upstream().await;
    let gw = Gateway::start_with(|a| {
        a.upstream = Some(format!("http://{addr}"));
        a.upstream_timeout = Some(1);
    })
    .await;
    let started = Instant::now();
    let err = gw.client().list_buckets().send().await.expect_err("times out");
    assert_eq!(crate::support::code_of(&err), "ServiceUnavailable");
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(900) && took < Duration::from_secs(5), "took {took:?}");
}

#[tokio::test]
async fn large_objects_stream_both_ways() {
    let gw = Gateway::start().await;
    let s3 = gw.client();
    create_bucket(&s3, "large").await;
    let data = pattern(48 * 1024 * 1024 + 5, 3);
    s3.put_object()
        .bucket("large")
        .key("big")
        .body(aws_sdk_s3::primitives::ByteStream::from(data.clone()))
        .send()
        .await
        .expect("put");
    let mut got = s3.get_object().bucket("large").key("big").send().await.expect("get").body;
    let mut n = 0usize;
    while let Some(chunk) = got.try_next().await.expect("chunk") {
        assert_eq!(&data[n..n + chunk.len()], chunk.as_ref(), "at {n}");
        n += chunk.len();
    }
    assert_eq!(n, data.len());
}
