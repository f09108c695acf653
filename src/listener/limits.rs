//! What one client connection may hold: a place among `--max-connections`, and a connection
//! with no request in flight only for so long.
//!
//! Past the cap a connection is not left waiting in the accept queue (where it would look like
//! a hung server) but answered at once, S3-style, with `503 SlowDown`, which SDKs retry with
//! backoff. The answer is sent by a few short-lived tasks of their own ([`MAX_REFUSALS`] at once,
//! [`REFUSAL_TIME`] each), so a flood of connections past the cap costs a bounded amount of
//! work and never takes a place; beyond that, connections are closed unanswered.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

/// Connections past the cap answered at once; more are closed without an answer.
pub const MAX_REFUSALS: usize = 64;
/// The longest a refused connection is served: TLS handshake, the request, the answer.
pub const REFUSAL_TIME: Duration = Duration::from_secs(5);
/// How long a refused connection waits for its request, and stays after its answer.
pub const REFUSAL_IDLE: Duration = Duration::from_secs(2);

/// `--max-connections` when it is not given, for each listener: 1024 a core, at most 65536.
///
/// What a machine can serve grows with its cores, and so, on the usual instance types, does its
/// memory. A connection costs a file descriptor (two while its request is upstream), a task and
/// its buffers (up to 64 KiB of request head): 1024 a core is about 128 MiB of buffers at worst
/// on a 2-core machine, well inside its memory, and far more than SDK connection pools need
/// (awscli opens 10 connections, a busy JVM service a few hundred). Past it, telling clients to
/// back off and retry does more good than queueing them. Mind the file-descriptor limit
/// (`ulimit -n`, systemd's `LimitNOFILE`): it must be above twice this, per listener.
pub fn default_max_connections() -> usize {
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    1024usize.saturating_mul(cores).min(65_536)
}

/// `--max-connections` of one listener.
#[derive(Clone, Debug)]
pub struct ConnectionCap {
    places: Arc<Semaphore>,
    refusals: Arc<Semaphore>,
}

/// What to do with a connection just accepted. Either permit is held until it is closed.
#[derive(Debug)]
pub enum Admission {
    Serve(OwnedSemaphorePermit),
    Refuse(OwnedSemaphorePermit),
    Close,
}

impl ConnectionCap {
    pub fn new(max: usize) -> Self {
        let max = max.clamp(1, Semaphore::MAX_PERMITS);
        Self { places: Arc::new(Semaphore::new(max)), refusals: Arc::new(Semaphore::new(MAX_REFUSALS)) }
    }

    pub fn admit(&self) -> Admission {
        if let Ok(place) = self.places.clone().try_acquire_owned() {
            return Admission::Serve(place);
        }
        match self.refusals.clone().try_acquire_owned() {
            Ok(permit) => Admission::Refuse(permit),
            Err(_) => Admission::Close,
        }
    }
}

/// Says when to log that the cap was reached: at most every 10 s, so a flood of connections
/// past the cap does not become a flood of log lines too.
#[derive(Debug, Default)]
pub struct CapWarning {
    last: Option<Instant>,
}

impl CapWarning {
    pub const EVERY: Duration = Duration::from_secs(10);

    pub fn due(&mut self) -> bool {
        self.due_at(Instant::now())
    }

    fn due_at(&mut self, now: Instant) -> bool {
        if self.last.is_some_and(|at| now.saturating_duration_since(at) < Self::EVERY) {
            return false;
        }
        self.last = Some(now);
        true
    }
}

/// One connection's requests in flight, and since when it has had none.
///
/// Requests only update a counter and a time under an uncontended lock: nothing is woken when
/// one starts or ends. The idle and drain waits are timers that look at the state when they
/// fire and sleep again until the earliest moment it could be quiet long enough (a request in
/// flight then means at least `limit` more). An idle connection is still closed exactly
/// `limit` after its last request; the per-request cost is two lock round trips and a clock
/// read, where waking the waiter on every change cost a timer reset and two task wake-ups.
#[derive(Clone, Debug, Default)]
pub struct Activity(Arc<Shared>);

#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    /// Woken when the connection turns out to speak HTTP/2, for a drain already waiting.
    http2: Notify,
}

impl Default for Shared {
    fn default() -> Self {
        Self {
            state: Mutex::new(State { in_flight: 0, idle_since: Instant::now(), http2: false }),
            http2: Notify::new(),
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct State {
    in_flight: usize,
    idle_since: Instant,
    /// The connection speaks HTTP/2: closing it (GOAWAY) never races a request.
    http2: bool,
}

impl Shared {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Activity {
    /// Counts a request as in flight until the guard is dropped: keep it until the response
    /// body has been sent (or the request was given up).
    pub fn request_started(&self) -> RequestGuard {
        self.0.state().in_flight += 1;
        RequestGuard(self.0.clone())
    }

    /// Marks the connection as HTTP/2 (seen on its first request).
    pub fn speaks_http2(&self) {
        let newly = !std::mem::replace(&mut self.0.state().http2, true);
        if newly {
            self.0.http2.notify_waiters();
        }
    }

    /// Resolves once the connection has had no request in flight for `limit`.
    pub async fn idle_for(&self, limit: Duration) {
        self.quiet_for(limit, None, false).await;
    }

    /// Resolves when a draining connection may be closed without crossing a request: at once
    /// for HTTP/2 (GOAWAY), else once it has had no request in flight for `quiet` since `since`
    /// (the start of the drain) and since its last request.
    pub async fn closable(&self, quiet: Duration, since: Instant) {
        self.quiet_for(quiet, Some(since), true).await;
    }

    async fn quiet_for(&self, limit: Duration, since: Option<Instant>, http2_at_once: bool) {
        loop {
            // Registered before the state is read, so an HTTP/2 request seen in between still
            // wakes this wait.
            let http2 = self.0.http2.notified();
            tokio::pin!(http2);
            http2.as_mut().enable();
            let now = Instant::now();
            let deadline = {
                let state = self.0.state();
                if http2_at_once && state.http2 {
                    return;
                }
                let idle_since = since.map_or(state.idle_since, |s| state.idle_since.max(s));
                if state.in_flight > 0 {
                    now + limit
                } else if now >= idle_since + limit {
                    return;
                } else {
                    idle_since + limit
                }
            };
            if http2_at_once {
                tokio::select! {
                    () = tokio::time::sleep_until(deadline) => {}
                    () = http2 => {}
                }
            } else {
                tokio::time::sleep_until(deadline).await;
            }
        }
    }
}

/// A request in flight on its connection.
#[derive(Debug)]
pub struct RequestGuard(Arc<Shared>);

impl Drop for RequestGuard {
    fn drop(&mut self) {
        let mut state = self.0.state();
        state.in_flight = state.in_flight.saturating_sub(1);
        if state.in_flight == 0 {
            state.idle_since = Instant::now();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn past_the_cap_a_few_connections_are_refused_and_the_rest_closed() {
        let cap = ConnectionCap::new(2);
        let a = cap.admit();
        let b = cap.admit();
        assert!(matches!((&a, &b), (Admission::Serve(_), Admission::Serve(_))));
        let refused: Vec<Admission> = (0..MAX_REFUSALS).map(|_| cap.admit()).collect();
        assert!(refused.iter().all(|r| matches!(r, Admission::Refuse(_))));
        assert!(matches!(cap.admit(), Admission::Close), "refusals are bounded too");
        drop(a);
        let c = cap.admit();
        assert!(matches!(c, Admission::Serve(_)), "a closed connection frees its place");
        drop(refused);
        assert!(matches!(cap.admit(), Admission::Refuse(_)), "a refusal never held a place");
    }

    #[test]
    fn reaching_the_cap_is_logged_at_most_every_10_s() {
        let mut warning = CapWarning::default();
        let start = Instant::now();
        assert!(warning.due_at(start), "the first time");
        assert!(!warning.due_at(start));
        assert!(!warning.due_at(start + CapWarning::EVERY - Duration::from_millis(1)));
        assert!(warning.due_at(start + CapWarning::EVERY), "again after 10 s");
        assert!(!warning.due_at(start + CapWarning::EVERY + Duration::from_secs(1)));
    }

    #[tokio::test]
    async fn a_connection_is_idle_only_with_no_request_in_flight() {
        let activity = Activity::default();
        let limit = Duration::from_millis(200);
        let guard = activity.request_started();
        let idle = activity.idle_for(limit);
        tokio::pin!(idle);
        tokio::select! {
            () = idle.as_mut() => panic!("idle with a request in flight"),
            () = tokio::time::sleep(limit * 3) => {}
        }
        let second = activity.request_started();
        drop(guard);
        tokio::select! {
            () = idle.as_mut() => panic!("idle with the second request in flight"),
            () = tokio::time::sleep(limit * 2) => {}
        }
        drop(second);
        let ended = Instant::now();
        idle.await;
        let waited = ended.elapsed();
        assert!(waited >= limit && waited < limit * 3, "idle {waited:?} after the last request ended");
    }

    #[tokio::test]
    async fn a_draining_connection_closes_after_a_quiet_period_from_the_drain_or_at_once_for_http2() {
        let quiet = Duration::from_millis(200);
        let activity = Activity::default();
        // Idle for long before the drain: the quiet period still counts from the drain.
        tokio::time::sleep(quiet * 2).await;
        let drain_started = Instant::now();
        activity.closable(quiet, drain_started).await;
        let waited = drain_started.elapsed();
        assert!(waited >= quiet && waited < quiet * 3, "closable after {waited:?}");

        // A request during the quiet period starts it over from its end.
        let busy = Activity::default();
        let since = Instant::now();
        let guard = busy.request_started();
        let closing = busy.closable(quiet, since);
        tokio::pin!(closing);
        tokio::select! {
            () = closing.as_mut() => panic!("closable with a request in flight"),
            () = tokio::time::sleep(quiet * 2) => {}
        }
        drop(guard);
        let ended = Instant::now();
        closing.await;
        assert!(ended.elapsed() >= quiet, "closed {:?} after its last request", ended.elapsed());

        let h2 = Activity::default();
        let _open_stream = h2.request_started();
        h2.speaks_http2();
        let started = Instant::now();
        h2.closable(quiet, started).await;
        assert!(started.elapsed() < quiet, "HTTP/2 waited {:?} for GOAWAY", started.elapsed());
    }

    #[tokio::test]
    async fn a_drain_already_waiting_ends_at_once_when_the_connection_turns_out_to_be_http2() {
        let quiet = Duration::from_secs(30);
        let activity = Activity::default();
        let _open_stream = activity.request_started();
        let closing = activity.closable(quiet, Instant::now());
        tokio::pin!(closing);
        tokio::select! {
            () = closing.as_mut() => panic!("closable with an HTTP/1 request in flight"),
            () = tokio::time::sleep(Duration::from_millis(50)) => {}
        }
        activity.speaks_http2();
        tokio::time::timeout(Duration::from_secs(5), closing).await.expect("GOAWAY waited for the quiet period");
    }
}
