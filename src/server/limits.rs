//! How long a client connection may hold on with no request in flight.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

/// One connection's requests in flight, and since when it has had none.
#[derive(Clone, Debug)]
pub struct Activity(Arc<watch::Sender<State>>);

#[derive(Clone, Copy, Debug)]
struct State {
    in_flight: usize,
    idle_since: Instant,
}

impl Default for Activity {
    fn default() -> Self {
        Self(Arc::new(watch::Sender::new(State { in_flight: 0, idle_since: Instant::now() })))
    }
}

impl Activity {
    /// Counts a request as in flight until the guard is dropped: keep it until the response
    /// body has been sent (or the request was given up).
    pub fn request_started(&self) -> RequestGuard {
        self.0.send_modify(|s| s.in_flight += 1);
        RequestGuard(self.0.clone())
    }

    /// Resolves once the connection has had no request in flight for `limit`.
    pub async fn idle_for(&self, limit: Duration) {
        let mut rx = self.0.subscribe();
        loop {
            let state = *rx.borrow_and_update();
            if state.in_flight > 0 {
                if rx.changed().await.is_err() {
                    return;
                }
                continue;
            }
            let deadline = state.idle_since + limit;
            if Instant::now() >= deadline {
                return;
            }
            tokio::select! {
                () = tokio::time::sleep_until(deadline) => {}
                changed = rx.changed() => if changed.is_err() { return },
            }
        }
    }
}

/// A request in flight on its connection.
#[derive(Debug)]
pub struct RequestGuard(Arc<watch::Sender<State>>);

impl Drop for RequestGuard {
    fn drop(&mut self) {
        self.0.send_modify(|s| {
            s.in_flight = s.in_flight.saturating_sub(1);
            if s.in_flight == 0 {
                s.idle_since = Instant::now();
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
