//! How a listener stops: the one drain sequence every listener runs.
//!
//! 1. Serve until [`Shutdown`] is triggered. On SIGTERM that is `--drain-delay` after the drain
//!    was announced ([`Shutdown::drain_after`]): meanwhile readiness checks answer 503 and
//!    everything else is served as before, so a load balancer takes the replica out while it
//!    still accepts what was already on its way.
//! 2. Stop accepting: the accept loop, which owns the socket, is dropped, so new clients get a
//!    refused connection and a load balancer moves on.
//! 3. Drain: every connection is told ([`Token::draining`]). An HTTP/1 connection answers its
//!    next response with `Connection: close` and closes after it; one with nothing in flight is
//!    closed only after [`QUIET`] without a request, so a client that is just reusing it does
//!    not see it close under its request (HTTP/1 has no way to say "not that one" once sent).
//!    HTTP/2 gets GOAWAY at once, which says which streams were taken. Work a connection handed
//!    on (a forward-proxy tunnel) holds a [`Token`] too, and is waited for the same way.
//! 4. Cut: whatever is still open when the grace period ends is dropped ([`Token::cut`]).
//!
//! The sequence is [`Drain::run`] and nothing else; the connections' part of step 3 is their
//! reaction to [`Phase::Draining`] (`listener/protocol.rs`).

use std::future::Future;
use std::time::Duration;

/// How long a draining HTTP/1 connection must go without a request before it is closed: clients
/// send their next request on a kept-alive connection at once, so a connection this quiet is
/// one they have put back in a pool, and a close crossing a request on it is unlikely.
pub const QUIET: Duration = Duration::from_millis(500);

use tokio::sync::{mpsc, watch};

use crate::shutdown::Shutdown;

/// Where a listener is in its life; connections and the work they started watch it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    Serving,
    /// Not accepting; connections finish what they have in flight and close.
    Draining,
    /// The grace period is over: everything still open is dropped.
    Cut,
}

/// One listener's drain: hands out a [`Token`] to every connection and to work that outlives
/// one, and knows when the last has gone.
#[derive(Debug)]
pub struct Drain {
    phase: watch::Sender<Phase>,
    /// Each token holds a clone; `recv` returns `None` once all are gone.
    alive: mpsc::Sender<()>,
    gone: mpsc::Receiver<()>,
}

impl Default for Drain {
    fn default() -> Self {
        let (alive, gone) = mpsc::channel(1);
        Self { phase: watch::channel(Phase::Serving).0, alive, gone }
    }
}

impl Drain {
    /// A token the drain waits for until it is dropped.
    pub fn token(&self) -> Token {
        Token { phase: self.phase.subscribe(), _alive: self.alive.clone() }
    }

    /// Runs `accepting` until `shutdown`, then drops it and drains for up to `grace`.
    ///
    /// `accepting` owns the listening socket and everything the listener holds for new
    /// connections (its handler and its own token among them), so dropping it both closes the
    /// socket and lets the drain see the end of the last token.
    pub async fn run(
        self,
        listener: &'static str,
        accepting: impl Future<Output = ()>,
        shutdown: &Shutdown,
        grace: Duration,
    ) {
        {
            let stopping = shutdown.triggered();
            tokio::select! {
                () = accepting => {}
                () = stopping => {}
            }
        }
        let Drain { phase, alive, mut gone } = self;
        drop(alive);
        phase.send_replace(Phase::Draining);
        match tokio::time::timeout(grace, gone.recv()).await {
            Ok(_) => tracing::info!(listener, "all connections drained"),
            Err(_) => {
                tracing::warn!(listener, "grace period over; closing the remaining connections");
                phase.send_replace(Phase::Cut);
            }
        }
    }
}

/// Held by a connection, or by work it handed on, for as long as the drain should wait for it.
#[derive(Clone, Debug)]
pub struct Token {
    phase: watch::Receiver<Phase>,
    _alive: mpsc::Sender<()>,
}

impl Token {
    /// Resolves once the listener drains: finish what is in flight, take nothing new.
    pub fn draining(&self) -> impl Future<Output = ()> + Send + 'static {
        self.reached(Phase::Draining)
    }

    /// True once the listener drains: a response now is the connection's last (HTTP/1).
    pub fn is_draining(&self) -> bool {
        *self.phase.borrow() >= Phase::Draining
    }

    /// Resolves once the grace period is over: stop now.
    pub fn cut(&self) -> impl Future<Output = ()> + Send + 'static {
        self.reached(Phase::Cut)
    }

    /// Also resolves if the drain itself is gone (its listener's task was dropped): nobody is
    /// left to wait for the work, so it is as good as cut.
    fn reached(&self, phase: Phase) -> impl Future<Output = ()> + Send + 'static {
        let mut rx = self.phase.clone();
        async move {
            let _ = rx.wait_for(|now| *now >= phase).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use std::time::Instant;

    use super::*;

    const GRACE: Duration = Duration::from_millis(400);

    /// Drains with one piece of work that takes `life` (forever: `None`): how long `run` took,
    /// and whether the work was cut.
    async fn drain_with(life: Option<Duration>) -> (Duration, bool) {
        let drain = Drain::default();
        let token = drain.token();
        let cut = Arc::new(AtomicBool::new(false));
        let seen = cut.clone();
        let work = async move {
            match life {
                Some(life) => tokio::time::sleep(life).await,
                None => std::future::pending().await,
            }
        };
        tokio::spawn(async move {
            tokio::select! {
                () = work => {}
                () = token.cut() => seen.store(true, Ordering::SeqCst),
            }
        });
        let shutdown = Shutdown::default();
        shutdown.trigger();
        let started = Instant::now();
        drain.run("test", std::future::pending(), &shutdown, GRACE).await;
        let took = started.elapsed();
        tokio::time::sleep(Duration::from_millis(20)).await;
        (took, cut.load(Ordering::SeqCst))
    }

    #[tokio::test]
    async fn work_that_ends_within_the_grace_period_is_waited_for_and_not_cut() {
        let (took, cut) = drain_with(Some(Duration::from_millis(100))).await;
        assert!(took >= Duration::from_millis(100) && took < GRACE, "drained after {took:?}");
        assert!(!cut);
    }

    #[tokio::test]
    async fn work_still_open_when_the_grace_period_ends_is_cut() {
        let (took, cut) = drain_with(None).await;
        assert!(took >= GRACE, "cut after {took:?}");
        assert!(cut, "the token never saw the cut");
    }

    #[tokio::test]
    async fn serving_goes_on_until_shutdown_and_connections_are_told_to_drain() {
        let drain = Drain::default();
        let token = drain.token();
        let accepting_token = drain.token();
        let shutdown = Shutdown::default();
        let stopper = shutdown.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(200)).await;
            stopper.trigger();
        });
        let watcher = tokio::spawn(async move {
            token.draining().await;
            Instant::now()
        });
        // The accept loop's token goes with it at shutdown, or the drain would wait for it.
        let accepting = async move {
            let _held = accepting_token;
            std::future::pending::<()>().await;
        };
        let started = Instant::now();
        drain.run("test", accepting, &shutdown, Duration::from_secs(30)).await;
        let took = started.elapsed();
        assert!(took >= Duration::from_millis(200) && took < Duration::from_secs(5), "stopped after {took:?}");
        let told = watcher.await.expect("watcher") - started;
        assert!(told >= Duration::from_millis(200), "told to drain before shutdown, after {told:?}");
    }
}
