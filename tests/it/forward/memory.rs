//! A tunnel carrying 1 GiB keeps s3gate's memory flat. The gateway runs as its own process (the
//! binary cargo built for these tests), so its peak resident size (`VmHWM`) is its own and not
//! the test harness's; it also proves the binary's flags and its one log line per tunnel.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;

use super::wire;

const GIB: u64 = 1 << 30;
/// Two 64 KiB copy buffers per tunnel, plus the runtime: far below this. A proxy that buffered
/// what it carries would pass it within the first few hundred megabytes.
const PEAK_LIMIT_KIB: u64 = 64 * 1024;
/// How much the peak may rise above what the idle process held.
const GROWTH_LIMIT_KIB: u64 = 16 * 1024;

/// Kills the gateway process when the test ends, however it ends.
struct Gateway(Child);

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tunnel_carrying_one_gib_keeps_memory_flat() {
    let (source, _s) = wire::source_server(GIB).await;
    let mut child = Command::new(env!("CARGO_BIN_EXE_s3gate"))
        .args(["--log-json", "serve", "--listen", "none", "--forward-listen", "127.0.0.1:0"])
        .args(["--forward-allow", "bytes.test", "--forward-connect-to", &format!("bytes.test={source}")])
        .env_clear()
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start s3gate");
    let stderr = child.stderr.take().expect("stderr");
    let gateway = Gateway(child);
    let pid = gateway.0.id();

    // The log, line by line, on a thread: the first thing needed is the listening address.
    let (lines_tx, lines) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    let at = listening_address(&lines);
    let idle_rss = status_kib(pid, "VmRSS");

    let started = Instant::now();
    let mut tunnel = wire::connect(at, "bytes.test:443", "").await;
    assert_eq!(tunnel.status, 200, "{}", tunnel.head);
    tunnel.stream.write_all(b"a few bytes up, too").await.expect("write");
    let carried = wire::drain_pattern(&mut tunnel.stream).await;
    let took = started.elapsed();
    assert_eq!(carried, GIB, "bytes through the tunnel");
    drop(tunnel);

    let record = log_line(&lines, |l| l.contains("\"s3gate::forward\"") && l.contains("bytes.test:443"));
    let peak = status_kib(pid, "VmHWM");
    println!(
        "1 GiB through the tunnel in {took:?} ({:.0} MiB/s); s3gate idle RSS {idle_rss} KiB, peak {peak} KiB",
        1024.0 / took.as_secs_f64()
    );
    assert!(peak < PEAK_LIMIT_KIB, "peak RSS {peak} KiB");
    assert!(peak.saturating_sub(idle_rss) < GROWTH_LIMIT_KIB, "RSS grew from {idle_rss} KiB to {peak} KiB");

    let record: serde_json::Value = serde_json::from_str(&record).expect("a JSON log line");
    let fields = &record["fields"];
    assert_eq!(fields["destination"], "bytes.test:443", "{record}");
    assert_eq!(fields["allowed"], true, "{record}");
    assert_eq!(fields["bytes_down"], GIB, "{record}");
    assert_eq!(fields["bytes_up"], 19, "{record}");
    assert!(fields["client"].as_str().is_some_and(|c| c.starts_with("127.0.0.1:")), "{record}");
    drop(gateway);
}

/// Waits for the "forward proxy listening" line and takes the address from it.
fn listening_address(lines: &std::sync::mpsc::Receiver<String>) -> SocketAddr {
    let line = log_line(lines, |l| l.contains("forward_listen"));
    let v: serde_json::Value = serde_json::from_str(&line).expect("a JSON log line");
    v["fields"]["forward_listen"].as_str().and_then(|a| a.parse().ok()).unwrap_or_else(|| panic!("no address: {line}"))
}

fn log_line(lines: &std::sync::mpsc::Receiver<String>, want: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut seen = Vec::new();
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match lines.recv_timeout(left) {
            Ok(line) if want(&line) => return line,
            Ok(line) => seen.push(line),
            Err(_) => break,
        }
    }
    panic!("no such log line from s3gate; it printed:\n{}", seen.join("\n"));
}

/// A `Vm*` line of /proc/PID/status, in KiB.
fn status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read /proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':')?.trim().strip_suffix("kB")?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}
