//! The text log line, written the way `tracing-subscriber`'s default ("full") format writes it
//! without colour, at a fraction of its cost: one access line per request went through
//! `format!` machinery for its timestamp, its level and each of its fifteen fields (strings
//! escaped a character at a time), about a tenth of a small request's instructions.
//!
//! Same output: `2026-12-03T07:42:44.741607Z  INFO conn{listener=endpoint ...}: target: message
//! name=value ...`, strings quoted and escaped as `{:?}` does (a key holding a newline cannot
//! forge a line). Terminals keep the default format, with colour.

use std::cell::RefCell;
use std::fmt::{self, Write as _};

use time::OffsetDateTime;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

/// The "full" text format without colour; see the module doc.
pub struct Line;

impl<S, N> FormatEvent<S, N> for Line
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(&self, ctx: &FmtContext<'_, S, N>, mut writer: Writer<'_>, event: &Event<'_>) -> fmt::Result {
        thread_local! {
            static SCRATCH: RefCell<String> = const { RefCell::new(String::new()) };
        }
        // The line is put together in a plain `String` and handed over whole: `Writer` writes
        // through a `dyn fmt::Write`, and a line is some sixty small writes.
        SCRATCH.with(|scratch| match scratch.try_borrow_mut() {
            Ok(mut line) => {
                line.clear();
                compose(&mut line, ctx, event)?;
                writer.write_str(&line)
            }
            // Only if formatting a line logged another (a field's Debug impl that logs).
            Err(_) => {
                let mut line = String::new();
                compose(&mut line, ctx, event)?;
                writer.write_str(&line)
            }
        })
    }
}

fn compose<S, N>(line: &mut String, ctx: &FmtContext<'_, S, N>, event: &Event<'_>) -> fmt::Result
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    timestamp(line);
    line.push_str(match *event.metadata().level() {
        Level::TRACE => " TRACE ",
        Level::DEBUG => " DEBUG ",
        Level::INFO => "  INFO ",
        Level::WARN => "  WARN ",
        Level::ERROR => " ERROR ",
    });
    if let Some(scope) = ctx.event_scope() {
        let mut seen = false;
        for span in scope.from_root() {
            line.push_str(span.metadata().name());
            seen = true;
            let ext = span.extensions();
            if let Some(fields) = ext.get::<FormattedFields<N>>() {
                if !fields.is_empty() {
                    line.push('{');
                    line.push_str(fields);
                    line.push('}');
                }
            }
            line.push(':');
        }
        if seen {
            line.push(' ');
        }
    }
    line.push_str(event.metadata().target());
    line.push_str(": ");
    let mut fields = Fields { line, first: true, result: Ok(()) };
    event.record(&mut fields);
    fields.result?;
    line.push('\n');
    Ok(())
}

/// `2026-12-03T07:42:44.741607Z`, the calendar part formatted once a second per thread.
fn timestamp(line: &mut String) {
    thread_local! {
        static SECOND: RefCell<(i64, String)> = const { RefCell::new((i64::MIN, String::new())) };
    }
    let now = OffsetDateTime::now_utc();
    let second = now.unix_timestamp();
    SECOND.with(|cached| {
        let mut cached = cached.borrow_mut();
        if cached.0 != second {
            let text = format!(
                "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
                now.year(),
                u8::from(now.month()),
                now.day(),
                now.hour(),
                now.minute(),
                now.second()
            );
            *cached = (second, text);
        }
        line.push_str(&cached.1);
    });
    line.push_str(std::str::from_utf8(&fraction(now.microsecond())).unwrap_or(".000000Z"));
}

/// `.{:06}Z` of `micros` (below a million), without fmt's padding machinery.
fn fraction(mut micros: u32) -> [u8; 8] {
    let mut out = *b".000000Z";
    for digit in out[1..7].iter_mut().rev() {
        *digit = b'0' + (micros % 10) as u8;
        micros /= 10;
    }
    out
}

/// `message` first as it stands, then ` name=value` for each field, values as `{:?}` writes
/// them (integers by `itoa`, the same digits without `fmt`'s machinery).
struct Fields<'a> {
    line: &'a mut String,
    first: bool,
    result: fmt::Result,
}

impl Fields<'_> {
    fn name(&mut self, field: &Field) {
        if !self.first {
            self.line.push(' ');
        }
        self.first = false;
        if field.name() != "message" {
            self.line.push_str(field.name());
            self.line.push('=');
        }
    }
}

impl Visit for Fields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.name(field);
        // What `{:?}` writes unchanged is written straight through; anything it would escape
        // goes through it.
        if value.bytes().all(|b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\') {
            self.line.push('"');
            self.line.push_str(value);
            self.line.push('"');
        } else if self.result.is_ok() {
            self.result = write!(self.line, "{value:?}");
        }
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.name(field);
        self.line.push_str(itoa::Buffer::new().format(value));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.name(field);
        self.line.push_str(itoa::Buffer::new().format(value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.name(field);
        self.line.push_str(if value { "true" } else { "false" });
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.name(field);
        if self.result.is_ok() {
            self.result = write!(self.line, "{value:?}");
        }
    }
}

/// A socket address for a log field, written as its `Display` writes it. An IPv4 address is
/// put together by hand and written at once: `Display` formats it through `fmt` in three nested
/// calls, the most expensive field of the access line.
pub struct Addr<'a>(pub &'a std::net::SocketAddr);

impl fmt::Display for Addr<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let std::net::SocketAddr::V4(v4) = self.0 else {
            return fmt::Display::fmt(self.0, f);
        };
        // `255.255.255.255:65535`
        let mut out = [0u8; 21];
        let mut len = 0;
        let mut push = |bytes: &[u8]| {
            out[len..len + bytes.len()].copy_from_slice(bytes);
            len += bytes.len();
        };
        for (i, octet) in v4.ip().octets().into_iter().enumerate() {
            if i > 0 {
                push(b".");
            }
            push(itoa::Buffer::new().format(octet).as_bytes());
        }
        push(b":");
        push(itoa::Buffer::new().format(v4.port()).as_bytes());
        f.pad(std::str::from_utf8(&out[..len]).map_err(|_| fmt::Error)?)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::fmt::MakeWriter;

    use super::*;

    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("lock").extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Captured {
        type Writer = Captured;
        fn make_writer(&'a self) -> Captured {
            self.clone()
        }
    }

    fn log_with(format: impl FnOnce(Captured) -> tracing::Dispatch) -> String {
        let out = Captured::default();
        let dispatch = format(out.clone());
        tracing::dispatcher::with_default(&dispatch, || {
            let span = tracing::info_span!("conn", listener = %"endpoint", peer = %"127.0.0.1:4000");
            let _in = span.enter();
            tracing::info!(
                target: "s3gate::access",
                request_id = %"29B7BF61506F96DB",
                access_key_id = "AKID",
                key = "a \"quoted\"\nkey\\é",
                bucket = "",
                status = 200u16,
                bytes_in = 0u64,
                delta = -3i64,
                complete = true,
                route = ?Some("default"),
                "request"
            );
            tracing::warn!("plain {}", 42);
        });
        let text = String::from_utf8(out.0.lock().expect("lock").clone()).expect("utf-8");
        text
    }

    /// Everything after the timestamp, which differs between two runs.
    fn without_times(text: &str) -> Vec<String> {
        text.lines().map(|l| l.split_once(' ').map(|(_, rest)| rest.to_owned()).unwrap_or_default()).collect()
    }

    proptest::proptest! {
        #[test]
        fn addresses_read_as_display_writes_them(ip in proptest::prelude::any::<[u8; 4]>(), v6 in proptest::prelude::any::<[u16; 8]>(), port: u16) {
            for addr in [
                std::net::SocketAddr::from((ip, port)),
                std::net::SocketAddr::from((std::net::Ipv6Addr::from(v6), port)),
            ] {
                proptest::prop_assert_eq!(Addr(&addr).to_string(), addr.to_string());
            }
        }
    }

    #[test]
    fn fractions_of_a_second_are_six_digits() {
        for micros in [0, 7, 10, 4_500, 123_456, 999_999] {
            assert_eq!(fraction(micros), format!(".{micros:06}Z").as_bytes(), "{micros}");
        }
    }

    #[test]
    fn lines_read_as_the_default_format_writes_them() {
        let ours = log_with(|w| tracing_subscriber::fmt().with_writer(w).with_ansi(false).event_format(Line).into());
        let theirs = log_with(|w| tracing_subscriber::fmt().with_writer(w).with_ansi(false).into());
        assert_eq!(without_times(&ours), without_times(&theirs), "ours:\n{ours}\ntheirs:\n{theirs}");
        assert_eq!(ours.lines().count(), 2, "{ours}");
        assert!(ours.contains(r#"key="a \"quoted\"\nkey\\é""#), "escaped as {{:?}} escapes: {ours}");
        let stamp = ours.split(' ').next().expect("a timestamp");
        assert_eq!(stamp.len(), "2026-12-03T07:42:44.741607Z".len(), "{stamp}");
        assert!(time::OffsetDateTime::parse(stamp, &time::format_description::well_known::Rfc3339).is_ok(), "{stamp}");
    }
}
