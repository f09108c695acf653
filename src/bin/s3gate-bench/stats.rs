//! Per-operation counters and latencies, merged across workers into one report.

use std::time::Duration;

use serde_json::{json, Value};

const MIB: f64 = 1024.0 * 1024.0;

/// What one worker saw for one kind of operation (GET or PUT).
#[derive(Debug, Default, Clone)]
pub struct OpStats {
    /// Latency of each successful request, in nanoseconds.
    latencies_ns: Vec<u64>,
    ok: u64,
    errors: u64,
    /// Payload bytes moved by successful requests.
    bytes: u64,
    first_error: Option<String>,
}

impl OpStats {
    pub fn success(&mut self, latency: Duration, bytes: u64) {
        self.latencies_ns.push(u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX));
        self.ok += 1;
        self.bytes += bytes;
    }

    pub fn failure(&mut self, message: String) {
        self.errors += 1;
        self.first_error.get_or_insert(message);
    }

    pub fn merge(&mut self, other: OpStats) {
        self.latencies_ns.extend(other.latencies_ns);
        self.ok += other.ok;
        self.errors += other.errors;
        self.bytes += other.bytes;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }

    pub fn errors(&self) -> u64 {
        self.errors
    }

    pub fn summarize(mut self, name: &'static str, elapsed: Duration) -> Summary {
        self.latencies_ns.sort_unstable();
        let secs = elapsed.as_secs_f64().max(f64::MIN_POSITIVE);
        Summary {
            name,
            ok: self.ok,
            errors: self.errors,
            bytes: self.bytes,
            ops_per_s: self.ok as f64 / secs,
            mib_per_s: self.bytes as f64 / MIB / secs,
            p50_ms: percentile_ms(&self.latencies_ns, 50.0),
            p99_ms: percentile_ms(&self.latencies_ns, 99.0),
            max_ms: percentile_ms(&self.latencies_ns, 100.0),
            first_error: self.first_error,
        }
    }
}

/// Nearest-rank percentile of sorted nanoseconds, in milliseconds (0 when there is no sample).
fn percentile_ms(sorted_ns: &[u64], p: f64) -> f64 {
    if sorted_ns.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted_ns.len() as f64).ceil() as usize;
    let index = rank.clamp(1, sorted_ns.len()) - 1;
    sorted_ns[index] as f64 / 1e6
}

/// The figures reported for one operation kind, or for all of them together.
#[derive(Debug)]
pub struct Summary {
    pub name: &'static str,
    pub ok: u64,
    pub errors: u64,
    pub bytes: u64,
    pub ops_per_s: f64,
    pub mib_per_s: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub first_error: Option<String>,
}

impl Summary {
    pub fn to_json(&self) -> Value {
        json!({
            "ok": self.ok,
            "errors": self.errors,
            "bytes": self.bytes,
            "ops_per_s": round(self.ops_per_s, 1),
            "mib_per_s": round(self.mib_per_s, 1),
            "p50_ms": round(self.p50_ms, 3),
            "p99_ms": round(self.p99_ms, 3),
            "max_ms": round(self.max_ms, 3),
            "first_error": self.first_error,
        })
    }

    pub fn to_line(&self) -> String {
        let mut line = format!(
            "{:>5}: {:>8} ok {:>6} errors {:>10.1} ops/s {:>9.1} MiB/s   latency p50 {:.2} ms  p99 {:.2} ms  max {:.2} ms",
            self.name, self.ok, self.errors, self.ops_per_s, self.mib_per_s, self.p50_ms, self.p99_ms, self.max_ms
        );
        if let Some(err) = &self.first_error {
            line.push_str(&format!("\n       first error: {err}"));
        }
        line
    }
}

fn round(value: f64, digits: i32) -> f64 {
    let scale = 10f64.powi(digits);
    (value * scale).round() / scale
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let ns: Vec<u64> = (1..=100).map(|ms| ms * 1_000_000).collect();
        assert_eq!(percentile_ms(&ns, 50.0), 50.0);
        assert_eq!(percentile_ms(&ns, 99.0), 99.0);
        assert_eq!(percentile_ms(&ns, 100.0), 100.0);
        assert_eq!(percentile_ms(&[], 50.0), 0.0);
        assert_eq!(percentile_ms(&[7_000_000], 99.0), 7.0);
    }

    #[test]
    fn merge_keeps_the_first_error() {
        let mut a = OpStats::default();
        a.success(Duration::from_millis(2), 10);
        let mut b = OpStats::default();
        b.failure("HTTP 403: denied".into());
        b.failure("HTTP 500: later".into());
        a.merge(b);
        let s = a.summarize("get", Duration::from_secs(1));
        assert_eq!((s.ok, s.errors, s.bytes), (1, 2, 10));
        assert_eq!(s.first_error.as_deref(), Some("HTTP 403: denied"));
    }
}
