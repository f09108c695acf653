//! Taking connections off a socket, and learning who the client is.
//!
//! A failed accept is mostly the process being out of file descriptors (`EMFILE`, `ENFILE`) or
//! the kernel out of memory: retrying at once would only spin a core while nothing frees up, so
//! the listener waits, 10 ms at first and doubling up to 1 s, and starts again from 10 ms after
//! the next success. An error about one connection (the client reset it while it was queued)
//! says nothing about the next, and is retried at once: each one used up its queued connection,
//! so that cannot spin either.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};

use crate::net::CidrSet;
use crate::proxy_protocol::{self, ProxyProtocolError};

/// The first pause after a failed accept.
pub const FIRST_BACKOFF: Duration = Duration::from_millis(10);
/// The longest: a listener out of descriptors still looks again every second.
pub const MAX_BACKOFF: Duration = Duration::from_secs(1);
/// How long a trusted load balancer has to send its PROXY protocol header.
pub const PROXY_HEADER_TIMEOUT: Duration = Duration::from_secs(5);

/// The pause before the next accept after a failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backoff {
    next: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self { next: FIRST_BACKOFF }
    }
}

impl Backoff {
    /// How long to wait after this failure; the next one waits twice as long, up to the cap.
    pub fn failed(&mut self) -> Duration {
        let wait = self.next;
        self.next = (self.next * 2).min(MAX_BACKOFF);
        wait
    }

    pub fn succeeded(&mut self) {
        self.next = FIRST_BACKOFF;
    }
}

/// Where connections come from: a TCP socket, or a scripted source in tests.
pub trait Source {
    type Conn;
    fn accept(&self) -> impl Future<Output = io::Result<(Self::Conn, SocketAddr)>> + Send;
}

impl Source for TcpListener {
    type Conn = TcpStream;

    fn accept(&self) -> impl Future<Output = io::Result<(TcpStream, SocketAddr)>> + Send {
        TcpListener::accept(self)
    }
}

/// The next connection. Failures are logged and retried, after a pause unless they were about
/// one connection only.
pub async fn next<S: Source>(source: &S, backoff: &mut Backoff, listener: &'static str) -> (S::Conn, SocketAddr) {
    loop {
        match source.accept().await {
            Ok(conn) => {
                backoff.succeeded();
                return conn;
            }
            Err(e) if about_one_connection(&e) => {
                tracing::debug!(listener, error = %e, "a connection failed before it was accepted");
            }
            Err(e) => {
                let wait = backoff.failed();
                tracing::warn!(listener, error = %e, retry_in = ?wait, "accept failed");
                tokio::time::sleep(wait).await;
            }
        }
    }
}

fn about_one_connection(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset | io::ErrorKind::Interrupted)
}

/// The client a trusted load balancer names in its PROXY protocol header (v1 or v2), read
/// before anything else on the connection. Nobody else is read for one: only a load balancer
/// may say who the client is. `Ok(None)`: not a trusted peer, or its header names nobody (a
/// health check); an error means the connection must be closed.
pub async fn proxied_client(
    stream: &mut TcpStream,
    peer: SocketAddr,
    trusted: &CidrSet,
) -> Result<Option<SocketAddr>, ProxyProtocolError> {
    if !trusted.contains(peer.ip()) {
        return Ok(None);
    }
    let header = proxy_protocol::read_header(stream, PROXY_HEADER_TIMEOUT).await?;
    Ok(header.and_then(|h| h.source))
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex;
    use std::time::Instant;

    use super::*;

    /// Answers accepts from a script, then fails with `then` forever; counts the calls.
    struct Scripted {
        script: Mutex<VecDeque<io::Result<u32>>>,
        then: io::ErrorKind,
        calls: AtomicUsize,
    }

    impl Scripted {
        fn new(script: Vec<io::Result<u32>>, then: io::ErrorKind) -> Self {
            Self { script: Mutex::new(script.into()), then, calls: AtomicUsize::new(0) }
        }
    }

    impl Source for Scripted {
        type Conn = u32;

        fn accept(&self) -> impl Future<Output = io::Result<(u32, SocketAddr)>> + Send {
            self.calls.fetch_add(1, Ordering::SeqCst);
            let next = self.script.lock().unwrap().pop_front().unwrap_or_else(|| Err(self.then.into()));
            let peer = SocketAddr::from(([127, 0, 0, 1], 40000));
            async move {
                // As a real socket does when it has nothing: give the runtime a turn.
                tokio::task::yield_now().await;
                next.map(|n| (n, peer))
            }
        }
    }

    fn emfile() -> io::Error {
        io::Error::other("Too many open files (os error 24)")
    }

    #[test]
    fn the_pause_doubles_from_10_ms_to_1_s_and_starts_over_after_a_success() {
        let mut backoff = Backoff::default();
        let waits: Vec<u64> = (0..9).map(|_| backoff.failed().as_millis() as u64).collect();
        assert_eq!(waits, [10, 20, 40, 80, 160, 320, 640, 1000, 1000]);
        backoff.succeeded();
        assert_eq!(backoff.failed(), FIRST_BACKOFF);
    }

    #[tokio::test]
    async fn accept_errors_do_not_spin() {
        let source = Scripted::new(Vec::new(), io::ErrorKind::Other);
        let mut backoff = Backoff::default();
        let waited = tokio::time::timeout(Duration::from_millis(300), next(&source, &mut backoff, "test")).await;
        assert!(waited.is_err(), "a failing source produced a connection");
        // 10 + 20 + 40 + 80 + 160 ms of pauses fit in 300 ms: six tries, give or take a timer tick.
        let calls = source.calls.load(Ordering::SeqCst);
        assert!((2..=8).contains(&calls), "{calls} accepts in 300 ms");
    }

    #[tokio::test]
    async fn after_failures_the_next_connection_is_taken_and_the_pause_starts_over() {
        let source = Scripted::new(vec![Err(emfile()), Err(emfile()), Err(emfile()), Ok(7)], io::ErrorKind::Other);
        let mut backoff = Backoff::default();
        let started = Instant::now();
        let (conn, _) = next(&source, &mut backoff, "test").await;
        assert_eq!(conn, 7);
        let took = started.elapsed();
        assert!(took >= Duration::from_millis(10 + 20 + 40), "paused only {took:?}");
        assert_eq!(backoff, Backoff::default());
    }

    #[tokio::test]
    async fn a_connection_reset_while_queued_is_skipped_without_a_pause() {
        let reset = || Err(io::ErrorKind::ConnectionAborted.into());
        let source = Scripted::new(vec![reset(), reset(), reset(), Ok(1)], io::ErrorKind::Other);
        let mut backoff = Backoff::default();
        let (conn, _) = next(&source, &mut backoff, "test").await;
        assert_eq!(conn, 1);
        assert_eq!(source.calls.load(Ordering::SeqCst), 4);
        assert_eq!(backoff, Backoff::default(), "a pause was taken");
    }
}
