//! Logging setup. (Process signals are [`crate::shutdown::signal`].)

mod line;

pub use line::Addr;

use std::cell::RefCell;
use std::io::{self, Write};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::EnvFilter;

/// `RUST_LOG` overrides the default `info`; `S3GATE_LOG_FORMAT=json` gives JSON lines.
///
/// `aws_sigv4` logs canonical requests, header values included (a session token among them),
/// at debug and trace level; it is capped at `info` whatever `RUST_LOG` says, so that turning
/// up verbosity to debug something never puts a secret in the log.
pub fn init(json: bool) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let filter = match "aws_sigv4=info".parse() {
        Ok(directive) => filter.add_directive(directive),
        Err(_) => filter,
    };
    // Colour codes only for a terminal: in a file or a log collector they are noise, and
    // writing them was a measurable part of the per-request log line (docs/benchmarks.md).
    let ansi = io::IsTerminal::is_terminal(&io::stderr());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(Stderr).with_ansi(ansi);
    if json {
        let _ = builder.json().try_init();
    } else if ansi {
        let _ = builder.try_init();
    } else {
        let _ = builder.event_format(line::Line).try_init();
    }
}

/// Past this many bytes a serving thread writes its lines out at once.
const THREAD_BUFFER: usize = 32 * 1024;

/// The longest a line waits in a serving thread's buffer.
const MAX_DELAY: Duration = Duration::from_millis(25);

thread_local! {
    /// The lines a serving thread has logged and not yet written; `None` on other threads,
    /// which write each line as it comes.
    static BUFFER: RefCell<Option<Vec<u8>>> = const { RefCell::new(None) };
    /// Wakes the thread's [`flusher`] when a line lands in an empty buffer.
    static FIRST_LINE: Arc<Notify> = Arc::new(Notify::new());
}

/// Standard error, written a batch at a time by the serving threads.
///
/// One `write` per request line was a sixth of a small request's CPU time on a busy proxy (a
/// system call, and the file or pipe behind it woken each time). A serving thread instead
/// collects its lines and writes them once [`THREAD_BUFFER`] bytes are waiting, or
/// [`MAX_DELAY`] after the first of them ([`flusher`]). Writing when the thread was about to
/// wait for work, as it did before, still made batches of only three or four lines on a busy
/// proxy, and each `write` to a log file costs the kernel several microseconds whatever its
/// size (page-cache folio set-up; `docs/benchmarks.md`). An idle proxy's line reaches the log
/// within [`MAX_DELAY`]. Lines from different threads may reach the log out of order by up to
/// one batch; each carries its time. What a serving thread has not yet written is lost if the
/// process is killed (SIGKILL), at most [`THREAD_BUFFER`] bytes.
#[derive(Clone, Copy, Debug, Default)]
pub struct Stderr;

impl<'a> MakeWriter<'a> for Stderr {
    type Writer = LineWriter;

    fn make_writer(&'a self) -> LineWriter {
        LineWriter
    }
}

/// Writes one formatted line (tracing hands over each event whole).
pub struct LineWriter;

impl Write for LineWriter {
    fn write(&mut self, line: &[u8]) -> io::Result<usize> {
        let buffered = BUFFER.with(|b| match b.try_borrow_mut() {
            Ok(mut b) => match b.as_mut() {
                Some(buf) => {
                    if buf.is_empty() {
                        FIRST_LINE.with(|n| n.notify_one());
                    }
                    buf.extend_from_slice(line);
                    if buf.len() >= THREAD_BUFFER {
                        write_out(buf);
                    }
                    true
                }
                None => false,
            },
            Err(_) => false,
        });
        if !buffered {
            io::stderr().write_all(line)?;
        }
        Ok(line.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn write_out(buf: &mut Vec<u8>) {
    // A log that cannot be written (stderr closed) must not stop the proxy.
    let _ = io::stderr().write_all(buf);
    buf.clear();
}

/// Makes this thread collect its log lines (see [`Stderr`]); the serving threads call it once.
pub fn buffer_thread() {
    BUFFER.with(|b| {
        if let Ok(mut b) = b.try_borrow_mut() {
            b.get_or_insert_with(|| Vec::with_capacity(THREAD_BUFFER + 4096));
        }
    });
}

/// Writes out a serving thread's lines [`MAX_DELAY`] after the first of each batch; spawned on
/// each serving thread, after [`buffer_thread`].
pub async fn flusher() {
    let first_line = FIRST_LINE.with(Arc::clone);
    loop {
        first_line.notified().await;
        tokio::time::sleep(MAX_DELAY).await;
        flush_thread();
    }
}

/// Writes out what this thread has collected: by [`flusher`], and when the thread ends.
pub fn flush_thread() {
    BUFFER.with(|b| {
        if let Ok(mut b) = b.try_borrow_mut() {
            if let Some(buf) = b.as_mut().filter(|buf| !buf.is_empty()) {
                write_out(buf);
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thread_that_buffers_keeps_its_lines_until_flushed_or_full() {
        std::thread::spawn(|| {
            buffer_thread();
            let mut w = Stderr.make_writer();
            w.write_all(b"one line\n").expect("write");
            let held = BUFFER.with(|b| b.borrow().as_ref().map(Vec::len));
            assert_eq!(held, Some(9), "the line waits in the thread's buffer");
            flush_thread();
            assert_eq!(BUFFER.with(|b| b.borrow().as_ref().map(Vec::len)), Some(0), "flushed");
            let long = vec![b'x'; THREAD_BUFFER];
            w.write_all(&long).expect("write");
            assert_eq!(BUFFER.with(|b| b.borrow().as_ref().map(Vec::len)), Some(0), "a full buffer is written at once");
        })
        .join()
        .expect("thread");
        // Other threads write through.
        assert!(BUFFER.with(|b| b.borrow().is_none()));
    }

    /// A line left alone in a serving thread's buffer is written by the thread's flusher, with
    /// no other line or event to push it out.
    #[test]
    fn a_lone_line_is_written_by_the_flusher() {
        std::thread::spawn(|| {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            buffer_thread();
            runtime.block_on(async {
                tokio::spawn(flusher());
                tokio::task::yield_now().await;
                Stderr.make_writer().write_all(b"a lone line\n").expect("write");
                let held = || BUFFER.with(|b| b.borrow().as_ref().map(Vec::len));
                assert_eq!(held(), Some(12), "the line waits in the thread's buffer");
                let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
                while held() != Some(0) && tokio::time::Instant::now() < deadline {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                assert_eq!(held(), Some(0), "the flusher wrote the line out");
            });
        })
        .join()
        .expect("thread");
    }
}
