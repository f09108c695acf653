//! Shutdown: the one switch that tells every listener to stop accepting and drain, and the
//! process signals that throw it. SIGTERM first *announces* the drain, which fails readiness
//! checks, and throws the switch `--drain-delay` later.
//!
//! It lives apart from the listeners so that everything that needs to know about shutdown (the
//! listeners, the admin listener, the demo store, `main`) depends on this small module and not on
//! one another.

use std::future::Future;
use std::time::Duration;

use tokio::sync::watch;

/// How far a shutdown has gone.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Stage {
    Serving,
    /// Health checks answer 503; everything else is served as before (`--drain-delay`).
    Announced,
    /// Listeners stop accepting and drain.
    Triggered,
}

/// Says "stop accepting and drain" to every listener at once. Clones share the switch.
///
/// A zero-loss shutdown has two steps ([`Shutdown::drain_after`]): it is *announced* first, so
/// that readiness checks fail while every request is still served and a load balancer has time
/// to take the replica out, and *triggered* after that delay. [`Shutdown::trigger`] skips the
/// announcement's wait (a test, or a second signal).
///
/// The switch stays thrown: a listener that starts watching after [`Shutdown::trigger`] (a task
/// spawned just before a test stops the gateway) still sees it.
#[derive(Clone, Debug)]
pub struct Shutdown(watch::Sender<Stage>);

impl Default for Shutdown {
    fn default() -> Self {
        Self(watch::channel(Stage::Serving).0)
    }
}

impl Shutdown {
    /// Readiness checks fail from now on; nothing else changes yet.
    pub fn announce(&self) {
        self.0.send_if_modified(|stage| {
            let before = *stage;
            *stage = before.max(Stage::Announced);
            *stage != before
        });
    }

    /// Listeners stop accepting and drain (announcing it too, if that had not happened).
    pub fn trigger(&self) {
        let _ = self.0.send_replace(Stage::Triggered);
    }

    /// Announces, waits `delay` while everything is still served, then triggers.
    pub async fn drain_after(&self, delay: Duration) {
        self.announce();
        let triggered = self.triggered();
        // Something else may trigger it meanwhile (a second signal): no reason to wait then.
        tokio::select! {
            () = tokio::time::sleep(delay) => self.trigger(),
            () = triggered => {}
        }
    }

    /// [`Shutdown::drain_after`] as a future that owns its switch, to be spawned.
    pub async fn drain_after_owned(self, delay: Duration) {
        self.drain_after(delay).await;
    }

    pub fn is_triggered(&self) -> bool {
        *self.0.borrow() == Stage::Triggered
    }

    /// True from the moment a shutdown is announced: what readiness checks answer by.
    pub fn is_draining(&self) -> bool {
        *self.0.borrow() >= Stage::Announced
    }

    /// Resolves once shutdown has been triggered, even if it was before this was called.
    ///
    /// It watches from the moment it is called, not from its first poll, and owns what it
    /// watches, so it can be created in one task and awaited in another.
    pub fn triggered(&self) -> impl Future<Output = ()> + Send + 'static {
        self.reached(Stage::Triggered)
    }

    /// Resolves once shutdown has been announced (or triggered).
    pub fn announced(&self) -> impl Future<Output = ()> + Send + 'static {
        self.reached(Stage::Announced)
    }

    fn reached(&self, stage: Stage) -> impl Future<Output = ()> + Send + 'static {
        let mut rx = self.0.subscribe();
        async move {
            // `wait_for` checks the current value first. Its `Err` means every `Shutdown` is
            // gone and nobody can trigger it any more: stopping is the safe reading of that.
            let _ = rx.wait_for(|now| *now >= stage).await;
        }
    }
}

/// Resolves on SIGTERM (what systemd, Kubernetes and ECS send) or Ctrl-C.
pub async fn signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {},
                    _ = tokio::signal::ctrl_c() => {},
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn a_trigger_before_watching_is_still_seen() {
        let shutdown = Shutdown::default();
        assert!(!shutdown.is_triggered());
        shutdown.trigger();
        let seen = tokio::time::timeout(Duration::from_secs(1), shutdown.triggered()).await;
        assert!(seen.is_ok(), "a late watcher missed the shutdown");
        assert!(shutdown.is_triggered());
    }

    #[tokio::test]
    async fn a_drain_is_announced_at_once_and_triggered_after_its_delay() {
        let shutdown = Shutdown::default();
        assert!(!shutdown.is_draining());
        let draining = tokio::spawn({
            let shutdown = shutdown.clone();
            async move { shutdown.drain_after(Duration::from_millis(300)).await }
        });
        tokio::time::timeout(Duration::from_secs(1), shutdown.announced()).await.expect("announced");
        assert!(shutdown.is_draining(), "readiness must fail from the first moment");
        assert!(!shutdown.is_triggered(), "the listeners must keep accepting during the delay");
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert!(!shutdown.is_triggered(), "triggered before the delay was over");
        tokio::time::timeout(Duration::from_secs(1), shutdown.triggered()).await.expect("triggered after the delay");
        draining.await.expect("drain_after returns");
    }

    #[tokio::test]
    async fn a_trigger_during_the_delay_ends_the_wait_and_counts_as_announced() {
        let shutdown = Shutdown::default();
        let draining = tokio::spawn({
            let shutdown = shutdown.clone();
            async move { shutdown.drain_after(Duration::from_secs(60)).await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        shutdown.trigger();
        tokio::time::timeout(Duration::from_secs(1), draining).await.expect("the wait ended").expect("task");
        assert!(shutdown.is_draining() && shutdown.is_triggered());
        let fresh = Shutdown::default();
        fresh.trigger();
        assert!(fresh.is_draining(), "a trigger without announcement still fails readiness");
    }

    #[tokio::test]
    async fn every_clone_sees_one_trigger() {
        let shutdown = Shutdown::default();
        let watchers: Vec<_> = (0..3).map(|_| tokio::spawn(shutdown.clone().triggered())).collect();
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(watchers.iter().all(|w| !w.is_finished()), "stopped before the trigger");
        shutdown.clone().trigger();
        for w in watchers {
            tokio::time::timeout(Duration::from_secs(1), w).await.expect("stopped").expect("task");
        }
    }
}
