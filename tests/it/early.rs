//! An upstream that answers a PUT before its body has arrived (S3 refusing an upload early, a
//! store that answers at once): s3gate stops forwarding the body once the answer is in, relays
//! the answer, reads and discards what the client still sends within a bound, and closes the
//! connection. The body is never held, and never sent on whole to an upstream that has already
//! answered.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::support::raw::{request, sign};
use crate::support::{Gateway, CLIENT_SECRET};

const MIB: u64 = 1 << 20;
const REFUSAL: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>EntityTooLarge</Code>\
    <Message>Your proposed upload exceeds the maximum allowed object size.</Message></Error>";

/// Answers every request `400 EntityTooLarge` as soon as its head has arrived, then reads and
/// counts whatever body bytes follow, until the connection closes (as nginx and S3 do).
struct EarlyUpstream {
    url: String,
    body_bytes: Arc<AtomicU64>,
    connections_closed: Arc<AtomicU64>,
}

impl EarlyUpstream {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let body_bytes = Arc::new(AtomicU64::new(0));
        let connections_closed = Arc::new(AtomicU64::new(0));
        let (counted, closed) = (body_bytes.clone(), connections_closed.clone());
        tokio::spawn(async move {
            while let Ok((mut sock, _)) = listener.accept().await {
                let (counted, closed) = (counted.clone(), closed.clone());
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 64 * 1024];
                    let mut head = Vec::new();
                    let body_start = loop {
                        let n = sock.read(&mut buf).await.unwrap_or(0);
                        if n == 0 {
                            return;
                        }
                        head.extend_from_slice(&buf[..n]);
                        if let Some(at) = head.windows(4).position(|w| w == b"\r\n\r\n") {
                            break at + 4;
                        }
                    };
                    counted.fetch_add((head.len() - body_start) as u64, Ordering::Relaxed);
                    let answer = format!(
                        "HTTP/1.1 400 Bad Request\r\nContent-Type: application/xml\r\nContent-Length: {}\r\n\r\n{REFUSAL}",
                        REFUSAL.len()
                    );
                    if sock.write_all(answer.as_bytes()).await.is_err() {
                        return;
                    }
                    loop {
                        match sock.read(&mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => counted.fetch_add(n as u64, Ordering::Relaxed),
                        };
                    }
                    closed.fetch_add(1, Ordering::Relaxed);
                });
            }
        });
        Self { url, body_bytes, connections_closed }
    }
}

/// A client that sends a PUT of `size` bytes (UNSIGNED-PAYLOAD) as fast as the connection takes
/// it, while reading the answer: what it managed to write, and the answer's head and body.
///
/// Its sending side stays open until the answer is in, as an SDK's does. A client that shuts
/// its side down after the body (a half-close) is taken by hyper, as by nginx, for a client
/// that went away, and a request still waiting for the upstream is dropped with its connection;
/// letting the writer's half-close race the upstream's answer made this test fail on a busy
/// machine.
async fn put_while_reading(gw: &Gateway, size: u64) -> (u64, String) {
    let mut req = request("PUT", gw.addr(), "/bucket/big-object");
    req.headers_mut().insert("content-length", size.into());
    sign(&mut req, "UNSIGNED-PAYLOAD", SystemTime::now(), CLIENT_SECRET);
    let mut head = String::from("PUT /bucket/big-object HTTP/1.1\r\n");
    for (name, value) in req.headers() {
        head.push_str(&format!("{name}: {}\r\n", value.to_str().expect("ascii")));
    }
    head.push_str("\r\n");
    let sock = TcpStream::connect(gw.addr()).await.expect("connect");
    let (mut rd, mut wr) = sock.into_split();
    let writer = tokio::spawn(async move {
        wr.write_all(head.as_bytes()).await.expect("head");
        let piece = vec![b'x'; 64 * 1024];
        let mut written = 0u64;
        while written < size {
            let n = piece.len().min((size - written) as usize);
            if wr.write_all(&piece[..n]).await.is_err() {
                break;
            }
            written += n as u64;
        }
        (written, wr)
    });
    // Until the answer's body has ended (every answer here is an S3 error document) or the
    // connection closes.
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(30), async {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let n = rd.read(&mut buf).await?;
            if n == 0 {
                return Ok::<_, std::io::Error>(());
            }
            answer.extend_from_slice(&buf[..n]);
            if answer.ends_with(b"</Error>") {
                return Ok(());
            }
        }
    })
    .await;
    assert!(read.is_ok(), "the connection was neither answered nor closed within 30 s");
    let (written, _sending_side) =
        tokio::time::timeout(Duration::from_secs(30), writer).await.expect("writer ends").expect("writer");
    (written, String::from_utf8_lossy(&answer).into_owned())
}

#[tokio::test]
async fn an_early_answer_stops_the_body_and_reaches_the_client() {
    let upstream = EarlyUpstream::start().await;
    let url = upstream.url.clone();
    let gw = Gateway::start_with(move |a| a.upstream = Some(url)).await;
    let size = 1024 * MIB;

    let (written, answer) = put_while_reading(&gw, size).await;

    // The client reads the upstream's answer, told that the connection ends with it.
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("<Code>EntityTooLarge</Code>"), "{answer}");
    assert!(answer.to_ascii_lowercase().contains("connection: close"), "{answer}");
    // s3gate read what it discards (8 MiB at most) and what was in flight, then closed: the
    // client could not push its whole body into it.
    assert!(written < 128 * MIB, "the client wrote {} MiB before s3gate closed", written / MIB);
    // The upstream, which had answered, got only what was sent before its answer arrived.
    let forwarded = upstream.body_bytes.load(Ordering::Relaxed);
    assert!(forwarded < 64 * MIB, "{} MiB went upstream after the answer", forwarded / MIB);
    // And its connection was closed rather than kept with half a request on it.
    for _ in 0..50 {
        if upstream.connections_closed.load(Ordering::Relaxed) > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(upstream.connections_closed.load(Ordering::Relaxed), 1, "the upstream connection stays open");
    gw.stop().await;
}

#[tokio::test]
async fn a_small_body_answered_early_is_read_to_its_end_and_the_answer_arrives_whole() {
    let upstream = EarlyUpstream::start().await;
    let url = upstream.url.clone();
    let gw = Gateway::start_with(move |a| a.upstream = Some(url)).await;

    let (written, answer) = put_while_reading(&gw, 2 * MIB).await;

    assert_eq!(written, 2 * MIB, "a body within the discard bound is taken whole from the client");
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.ends_with("</Error>"), "the answer arrives whole: {answer}");
    gw.stop().await;
}
