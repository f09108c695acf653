//! Shutdown: the one switch that tells every listener to stop accepting and drain, and the
//! process signals that throw it.
//!
//! It lives apart from the listeners so that everything that needs to know about shutdown (the
//! listeners, the admin listener, the demo store, `main`) depends on this small module and not on
//! one another.

use std::future::Future;

use tokio::sync::watch;

/// Says "stop accepting and drain" to every listener at once. Clones share the switch.
///
/// The switch stays thrown: a listener that starts watching after [`Shutdown::trigger`] (a task
/// spawned just before a test stops the gateway) still sees it.
#[derive(Clone, Debug)]
pub struct Shutdown(watch::Sender<bool>);

impl Default for Shutdown {
    fn default() -> Self {
        Self(watch::channel(false).0)
    }
}

impl Shutdown {
    pub fn trigger(&self) {
        let _ = self.0.send_replace(true);
    }

    pub fn is_triggered(&self) -> bool {
        *self.0.borrow()
    }

    /// Resolves once shutdown has been triggered, even if it was before this was called.
    ///
    /// It watches from the moment it is called, not from its first poll, and owns what it
    /// watches, so it can be created in one task and awaited in another.
    pub fn triggered(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut flag = self.0.subscribe();
        async move {
            // `wait_for` checks the current value first. Its `Err` means every `Shutdown` is
            // gone and nobody can trigger it any more: stopping is the safe reading of that.
            let _ = flag.wait_for(|set| *set).await;
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
