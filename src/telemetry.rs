//! Logging setup. (Process signals are [`crate::shutdown::signal`].)

mod line;

use std::cell::RefCell;
use std::io::{self, Write};

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

/// Past this many bytes a serving thread writes its lines out even while busy.
const THREAD_BUFFER: usize = 32 * 1024;

thread_local! {
    /// The lines a serving thread has logged and not yet written; `None` on other threads,
    /// which write each line as it comes.
    static BUFFER: RefCell<Option<Vec<u8>>> = const { RefCell::new(None) };
}

/// Standard error, written a batch at a time by the serving threads.
///
/// One `write` per request line was a sixth of a small request's CPU time on a busy proxy (a
/// system call, and the file or pipe behind it woken each time). A serving thread instead
/// collects its lines and writes them when it is about to wait for work ([`flush_thread`],
/// from its runtime's park hook) or when [`THREAD_BUFFER`] bytes are waiting. An idle proxy
/// still writes each line at once; a busy one writes in batches of a few dozen lines. Lines
/// from different threads may reach the log out of order by up to one batch; each carries its
/// time. What a serving thread has not yet written is lost if the process is killed
/// (SIGKILL), at most [`THREAD_BUFFER`] bytes.
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

/// Writes out what this thread has collected: when its runtime is about to wait for work.
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
}
