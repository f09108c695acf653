//! Logging setup. (Process signals are [`crate::shutdown::signal`].)

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
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi);
    if json {
        let _ = builder.json().try_init();
    } else {
        let _ = builder.try_init();
    }
}
