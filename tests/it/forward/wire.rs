//! Proxy clients and destinations at the byte level: a CONNECT that reads the proxy's answer
//! head, and small TCP servers that stay silent, echo, or answer after the client's half-close.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The proxy's answer to a CONNECT: status, head (lower-cased) and the open stream.
pub struct Connected {
    pub status: u16,
    pub head: String,
    pub stream: TcpStream,
}

/// Sends `CONNECT target` (with `extra` header lines) and reads the answer head.
pub async fn connect(proxy: SocketAddr, target: &str, extra: &str) -> Connected {
    let mut stream = TcpStream::connect(proxy).await.expect("connect to the proxy");
    let req = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n{extra}\r\n");
    stream.write_all(req.as_bytes()).await.expect("send CONNECT");
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut byte))
            .await
            .expect("the proxy answers CONNECT")
            .expect("read the answer");
        assert_eq!(n, 1, "the proxy closed before the end of its answer: {}", String::from_utf8_lossy(&head));
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).expect("a status line");
    Connected { status, head, stream }
}

/// A destination that accepts and then never sends a byte (and never closes).
pub async fn silent_server() -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            held.push(s);
        }
    });
    (addr, task)
}

/// A destination that echoes what it reads, and closes when the client has closed.
pub async fn echo_server() -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let task = tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    (addr, task)
}

/// A destination that reads until the client's half-close, then answers with how many bytes it
/// got and closes: only a proxy that passes the half-close on lets the answer come.
pub async fn count_then_answer_server() -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let task = tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut sink = Vec::new();
                let n = s.read_to_end(&mut sink).await.unwrap_or(0);
                let _ = s.write_all(format!("got {n} bytes").as_bytes()).await;
                let _ = s.shutdown().await;
            });
        }
    });
    (addr, task)
}

/// A destination that writes `total` bytes of a known pattern to each client, then closes.
/// What the client sends is read and dropped.
pub async fn source_server(total: u64) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let task = tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let block: Vec<u8> = (0..256 * 1024).map(|i| (i % 251) as u8).collect();
                let mut left = total;
                while left > 0 {
                    let n = left.min(block.len() as u64) as usize;
                    if s.write_all(&block[..n]).await.is_err() {
                        return;
                    }
                    left -= n as u64;
                }
                // Half-close, then read what the client sent until it closes: closing with
                // unread bytes would reset the connection and could cut the tail short.
                let _ = s.shutdown().await;
                let mut sink = [0u8; 4096];
                while matches!(s.read(&mut sink).await, Ok(n) if n > 0) {}
            });
        }
    });
    (addr, task)
}

/// The byte `source_server` writes at `offset`.
fn pattern_at(offset: u64) -> u8 {
    ((offset % (256 * 1024)) % 251) as u8
}

/// Reads to the end, spot-checking the pattern `source_server` writes; returns the byte count.
pub async fn drain_pattern(stream: &mut TcpStream) -> u64 {
    let mut buf = vec![0u8; 256 * 1024];
    let mut total: u64 = 0;
    loop {
        let n = stream.read(&mut buf).await.expect("read the tunnel");
        if n == 0 {
            return total;
        }
        assert_eq!(buf[0], pattern_at(total), "byte {total}");
        assert_eq!(buf[n - 1], pattern_at(total + n as u64 - 1), "byte {}", total + n as u64 - 1);
        total += n as u64;
    }
}

/// Sends `GET http://{host}/` (absolute form, plain HTTP) and returns the answer's status.
pub async fn absolute_get(proxy: SocketAddr, host: &str) -> u16 {
    let mut stream = TcpStream::connect(proxy).await.expect("connect to the proxy");
    let req = format!("GET http://{host}/ HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    stream.write_all(req.as_bytes()).await.expect("send the request");
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer))
        .await
        .expect("the proxy answers")
        .expect("read the answer");
    let text = String::from_utf8_lossy(&answer);
    text.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("no status in {text:?}"))
}

/// A destination that counts the connections it accepts and answers each with a small HTTP
/// 200 (a tunnel's client need not read it), then closes once the client has.
pub async fn counting_server() -> (SocketAddr, Arc<AtomicUsize>, tokio::task::JoinHandle<()>) {
    counting(false).await
}

/// [`counting_server`] as an HTTP server: it answers once a request head is in. One that
/// answers before the request may rightly be refused by an HTTP client (the forward proxy's
/// `502`), depending on which comes first; a tunnel that sends nothing just ends.
pub async fn counting_http_server() -> (SocketAddr, Arc<AtomicUsize>, tokio::task::JoinHandle<()>) {
    counting(true).await
}

async fn counting(wait_for_head: bool) -> (SocketAddr, Arc<AtomicUsize>, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let count = Arc::new(AtomicUsize::new(0));
    let counted = count.clone();
    let task = tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            counted.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 4096];
                while wait_for_head && !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf).await {
                        Ok(n) if n > 0 => head.extend_from_slice(&buf[..n]),
                        _ => return,
                    }
                }
                let _ = s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok").await;
                while matches!(s.read(&mut buf).await, Ok(n) if n > 0) {}
            });
        }
    });
    (addr, count, task)
}
