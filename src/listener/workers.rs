//! Serving threads: one single-threaded runtime per core, each serving whole connections.
//!
//! A connection is served, start to end, on one thread: its requests, the upstream connections
//! they use (each serving thread has its own upstream pool, see [`index`]) and the tasks they
//! spawn. On tokio's work-stealing runtime the task reading a client, the task driving the
//! pooled upstream connection and the timer wake one another across threads; with two cores
//! that cost a small request a quarter of its CPU time (futex wake-ups, cache lines moving
//! between cores; measured in `docs/benchmarks.md`). Here a wake-up within a connection stays
//! on its thread, which sleeps in `epoll_wait` only when it has nothing to do, as an nginx
//! worker does.
//!
//! Accepting stays where it was (one accept loop per listener, under its drain): each accepted
//! socket is handed to the next serving thread in turn, which costs one channel send per
//! connection, not per request.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

use tokio::sync::mpsc;

/// Work handed to a serving thread: builds the connection's future there, so that its socket
/// registers with that thread's reactor.
pub type Job = Box<dyn FnOnce() -> Pin<Box<dyn Future<Output = ()> + Send>> + Send>;

struct Pool {
    threads: Vec<mpsc::UnboundedSender<Job>>,
    next: AtomicUsize,
}

static POOL: OnceLock<Pool> = OnceLock::new();

thread_local! {
    /// 1-based index of the serving thread this is; 0 on every other thread.
    static INDEX: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

static COUNT: OnceLock<usize> = OnceLock::new();

/// How many serving threads there are: `--serving-threads` if [`configure`]d before the first
/// connection, else one per core the process may use.
pub fn count() -> usize {
    *COUNT.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// Sets the number of serving threads, once per process: the threads and the upstream pools
/// sized by them are made on first use, so a later setting (a reload) has no effect and
/// `false` says so.
pub fn configure(threads: Option<usize>) -> bool {
    match threads {
        Some(n) => COUNT.set(n.max(1)).is_ok() || count() == n.max(1),
        None => true,
    }
}

/// Which serving thread the caller runs on: `1..=count()`, or 0 off them. Per-thread state (the
/// upstream pools) is indexed by it.
pub fn index() -> usize {
    INDEX.with(|i| i.get())
}

/// Runs `job` on the next serving thread. The threads are started on first use and live as long
/// as the process; if one cannot be started the job runs on the caller's runtime instead.
pub fn spawn(job: Job) {
    let pool = POOL.get_or_init(start);
    if pool.threads.is_empty() {
        tokio::spawn(job());
        return;
    }
    let at = pool.next.fetch_add(1, Ordering::Relaxed) % pool.threads.len();
    if let Err(mpsc::error::SendError(job)) = pool.threads[at].send(job) {
        tokio::spawn(job());
    }
}

fn start() -> Pool {
    let mut threads = Vec::new();
    for i in 1..=count() {
        let (tx, rx) = mpsc::unbounded_channel();
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build();
        let runtime = match runtime {
            Ok(rt) => rt,
            Err(e) => {
                tracing::error!(error = %e, "cannot start a serving thread's runtime; serving on the main runtime");
                break;
            }
        };
        let started = std::thread::Builder::new().name(format!("s3gate-serve-{i}")).spawn(move || {
            INDEX.with(|index| index.set(i));
            // Each thread writes its log lines in batches (`telemetry::Stderr`).
            crate::telemetry::buffer_thread();
            runtime.block_on(async {
                tokio::spawn(crate::telemetry::flusher());
                serve(rx).await
            });
            crate::telemetry::flush_thread();
        });
        match started {
            Ok(_) => threads.push(tx),
            Err(e) => {
                tracing::error!(error = %e, "cannot start a serving thread; serving on the main runtime");
                break;
            }
        }
    }
    Pool { threads, next: AtomicUsize::new(0) }
}

async fn serve(mut jobs: mpsc::UnboundedReceiver<Job>) {
    while let Some(job) = jobs.recv().await {
        tokio::spawn(job());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn connections_are_served_on_the_serving_threads_each_in_turn() {
        let n = count();
        let mut seen = std::collections::BTreeSet::new();
        // Other tests hand out connections at the same time, so the turns this test gets are
        // not consecutive; every thread still comes up within a few rounds.
        for _ in 0..100 * n {
            let (tx, rx) = tokio::sync::oneshot::channel();
            spawn(Box::new(move || {
                Box::pin(async move {
                    let _ = tx.send((index(), std::thread::current().name().map(str::to_owned)));
                })
            }));
            let (index, name) = rx.await.expect("the job ran");
            assert!((1..=n).contains(&index), "ran off the serving threads: {index}");
            assert_eq!(name.as_deref(), Some(format!("s3gate-serve-{index}").as_str()));
            seen.insert(index);
            if seen.len() == n {
                break;
            }
        }
        assert_eq!(seen.len(), n, "every serving thread took connections: {seen:?}");
        assert_eq!(index(), 0, "the test's own thread is not a serving thread");
    }
}
