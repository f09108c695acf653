//! s3gate-bench: an S3 load generator for comparing s3gate with a plain proxy and the store.
//!
//! Run it (see bench/run.sh for the full comparison):
//!
//! ```text
//! s3gate-bench --endpoint http://127.0.0.1:8099 --access-key AKID --secret-key SECRET \
//!     --bucket bench --op get --size 4KiB --concurrency 16 --duration 10 --json
//! ```
//!
//! Every request is signed with `aws-sigv4` (header auth, path style) like an SDK over plain
//! HTTP, so a gateway that verifies and re-signs does all of its real work.

// A binary's root resolves modules beside itself, so point at the folder named after it.
#[path = "s3gate-bench/client.rs"]
mod client;
#[path = "s3gate-bench/stats.rs"]
mod stats;

use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::{Parser, ValueEnum};
use futures_util::{stream, TryStreamExt};
use rand::RngCore;
use sha2::{Digest, Sha256};

use client::{PayloadHash, S3Client};
use stats::OpStats;

pub type Error = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug, Parser)]
#[command(name = "s3gate-bench", version, about = "S3 load generator (SigV4-signed, path style)")]
struct Cli {
    /// S3 endpoint, `http://HOST:PORT` or `https://HOST:PORT`.
    #[arg(long)]
    endpoint: String,
    #[arg(long, env = "AWS_ACCESS_KEY_ID")]
    access_key: String,
    #[arg(long, env = "AWS_SECRET_ACCESS_KEY", hide_env_values = true)]
    secret_key: String,
    #[arg(long, default_value = "us-east-1")]
    region: String,
    /// Bucket to use; created if missing.
    #[arg(long, default_value = "s3gate-bench")]
    bucket: String,
    /// `get` reads objects written in a setup phase; `putget` makes each worker PUT its own
    /// object then GET it back.
    #[arg(long, value_enum, default_value_t = Op::Get)]
    op: Op,
    /// Object size: a number with an optional unit (B, KiB, MiB, GiB, KB, MB, GB).
    #[arg(long, default_value = "4KiB", value_parser = parse_size)]
    size: u64,
    /// Requests in flight at once (one worker each).
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u64).range(1..=4096))]
    concurrency: u64,
    /// Run for this many seconds (requests in flight at the end are finished) [default: 10].
    #[arg(long, value_name = "SECS", conflicts_with = "requests")]
    duration: Option<f64>,
    /// Stop after this many iterations in all (an iteration is one request, or a PUT+GET pair
    /// for `putget`).
    #[arg(long, value_name = "N")]
    requests: Option<u64>,
    /// How PUT bodies are signed: `sha256` (hex SHA-256, like boto3 over HTTP) or `unsigned`.
    #[arg(long, value_enum, default_value_t = PayloadMode::Sha256)]
    payload: PayloadMode,
    /// Number of objects the GET test reads (written first if missing).
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u64).range(1..))]
    keys: u64,
    /// Key prefix for every object the bench writes.
    #[arg(long, default_value = "bench")]
    prefix: String,
    /// Per-request timeout in seconds, body included.
    #[arg(long, value_name = "SECS", default_value_t = 120)]
    timeout: u64,
    /// PEM CA certificate(s) to trust for an `https://` endpoint (default: the system's roots).
    #[arg(long, value_name = "FILE")]
    ca_file: Option<std::path::PathBuf>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Op {
    Get,
    Put,
    Putget,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum PayloadMode {
    Sha256,
    Unsigned,
}

/// Parses `4KiB`, `64MiB`, `1GB`, `4096`, ... into bytes.
fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().map_err(|_| format!("{text:?}: expected a number with an optional unit"))?;
    let scale: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        other => return Err(format!("unknown size unit {other:?}")),
    };
    number.checked_mul(scale).ok_or_else(|| format!("{text:?} is too large"))
}

/// When the workers stop taking new iterations.
enum Stop {
    At(Instant),
    After(AtomicU64),
}

impl Stop {
    fn take(&self) -> bool {
        match self {
            Stop::At(deadline) => Instant::now() < *deadline,
            Stop::After(left) => left.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1)).is_ok(),
        }
    }
}

/// Everything the workers share.
struct Plan {
    client: S3Client,
    bucket: String,
    op: Op,
    size: u64,
    prefix: String,
    body: Bytes,
    hash: PayloadHash,
    /// Objects the GET test reads, in turn.
    keys: Vec<String>,
    next_key: AtomicUsize,
    stop: Stop,
    timeout: Duration,
}

#[derive(Debug, Default)]
struct WorkerStats {
    put: OpStats,
    get: OpStats,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(true) => ExitCode::SUCCESS,
        // The run completed and was reported, but some requests failed.
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("s3gate-bench: {}", chain(e.as_ref()));
            ExitCode::from(2)
        }
    }
}

/// Runs the benchmark and prints the report; `Ok(false)` when some requests failed.
async fn run(cli: Cli) -> Result<bool, Error> {
    let body = random_body(cli.size)?;
    let hash = match cli.payload {
        PayloadMode::Sha256 => PayloadHash::Sha256(hex::encode(Sha256::digest(&body))),
        PayloadMode::Unsigned => PayloadHash::Unsigned,
    };
    let client = S3Client::new(&cli.endpoint, &cli.access_key, &cli.secret_key, &cli.region, cli.ca_file.as_deref())?;
    let created = client.create_bucket(&cli.bucket).await?;
    if !created.is_success() {
        return Err(format!("create bucket {}: {}", cli.bucket, created.describe_error()).into());
    }
    let keys = (0..cli.keys).map(|i| format!("{}/obj-{}-{i}", cli.prefix, cli.size)).collect();
    let mut plan = Plan {
        client,
        bucket: cli.bucket.clone(),
        op: cli.op,
        size: cli.size,
        prefix: cli.prefix.clone(),
        body,
        hash,
        keys,
        next_key: AtomicUsize::new(0),
        stop: Stop::After(AtomicU64::new(0)),
        timeout: Duration::from_secs(cli.timeout),
    };
    if cli.op == Op::Get {
        setup_objects(&plan, cli.concurrency).await?;
    }
    plan.stop = match (cli.requests, cli.duration) {
        (Some(n), _) => Stop::After(AtomicU64::new(n)),
        (None, secs) => Stop::At(Instant::now() + Duration::try_from_secs_f64(secs.unwrap_or(10.0))?),
    };
    let plan = Arc::new(plan);
    let started = Instant::now();
    let workers: Vec<_> = (0..cli.concurrency).map(|id| tokio::spawn(worker(plan.clone(), id))).collect();
    let mut total = WorkerStats::default();
    for handle in workers {
        let stats = handle.await?;
        total.put.merge(stats.put);
        total.get.merge(stats.get);
    }
    let elapsed = started.elapsed();
    let clean = total.put.errors() == 0 && total.get.errors() == 0;
    report(&cli, total, elapsed);
    Ok(clean)
}

/// Writes the objects the GET test reads, skipping those already there at the right size.
async fn setup_objects(plan: &Plan, concurrency: u64) -> Result<(), Error> {
    let parallel = usize::try_from(concurrency.min(8)).unwrap_or(8);
    stream::iter(plan.keys.iter().map(Ok::<_, Error>))
        .try_for_each_concurrent(parallel, |key| async move {
            let head = plan.client.head_object(&plan.bucket, key).await?;
            if head.is_success() && head.bytes == plan.size {
                return Ok(());
            }
            let put = plan.client.put_object(&plan.bucket, key, plan.body.clone(), &plan.hash).await?;
            if put.is_success() {
                Ok(())
            } else {
                Err(format!("setup PUT {key}: {}", put.describe_error()).into())
            }
        })
        .await
}

async fn worker(plan: Arc<Plan>, id: u64) -> WorkerStats {
    let own_key = format!("{}/w{id}-{}", plan.prefix, plan.size);
    let mut stats = WorkerStats::default();
    while plan.stop.take() {
        match plan.op {
            Op::Get => {
                let turn = plan.next_key.fetch_add(1, Ordering::Relaxed);
                let key = &plan.keys[turn % plan.keys.len()];
                get_once(&plan, key, &mut stats.get).await;
            }
            Op::Put => {
                put_once(&plan, &own_key, &mut stats.put).await;
            }
            Op::Putget => {
                // A failed PUT leaves nothing to read: its GET would only add a 404.
                if put_once(&plan, &own_key, &mut stats.put).await {
                    get_once(&plan, &own_key, &mut stats.get).await;
                }
            }
        }
    }
    stats
}

async fn put_once(plan: &Plan, key: &str, stats: &mut OpStats) -> bool {
    let started = Instant::now();
    let reply =
        tokio::time::timeout(plan.timeout, plan.client.put_object(&plan.bucket, key, plan.body.clone(), &plan.hash))
            .await;
    match reply {
        Ok(Ok(reply)) if reply.is_success() => {
            stats.success(started.elapsed(), plan.size);
            true
        }
        Ok(Ok(reply)) => fail(stats, format!("PUT {key}: {}", reply.describe_error())),
        Ok(Err(e)) => fail(stats, format!("PUT {key}: {}", chain(e.as_ref()))),
        Err(_) => fail(stats, format!("PUT {key}: timed out after {:?}", plan.timeout)),
    }
}

async fn get_once(plan: &Plan, key: &str, stats: &mut OpStats) -> bool {
    let started = Instant::now();
    let reply = tokio::time::timeout(plan.timeout, plan.client.get_object(&plan.bucket, key)).await;
    match reply {
        Ok(Ok(reply)) if reply.is_success() && reply.bytes == plan.size => {
            stats.success(started.elapsed(), reply.bytes);
            true
        }
        Ok(Ok(reply)) if reply.is_success() => {
            fail(stats, format!("GET {key}: body of {} bytes, expected {}", reply.bytes, plan.size))
        }
        Ok(Ok(reply)) => fail(stats, format!("GET {key}: {}", reply.describe_error())),
        Ok(Err(e)) => fail(stats, format!("GET {key}: {}", chain(e.as_ref()))),
        Err(_) => fail(stats, format!("GET {key}: timed out after {:?}", plan.timeout)),
    }
}

fn fail(stats: &mut OpStats, message: String) -> bool {
    stats.failure(message);
    false
}

fn report(cli: &Cli, stats: WorkerStats, elapsed: Duration) {
    let ops: Vec<(&'static str, OpStats)> = match cli.op {
        Op::Get => vec![("get", stats.get)],
        Op::Put => vec![("put", stats.put)],
        Op::Putget => vec![("put", stats.put), ("get", stats.get)],
    };
    let mut all = OpStats::default();
    for (_, op_stats) in &ops {
        all.merge(op_stats.clone());
    }
    let total = all.summarize("total", elapsed);
    let parts: Vec<_> = ops.iter().map(|(name, s)| s.clone().summarize(name, elapsed)).collect();
    let op = format!("{:?}", cli.op).to_ascii_lowercase();
    if cli.json {
        let mut out = serde_json::json!({
            "endpoint": cli.endpoint,
            "op": op,
            "size_bytes": cli.size,
            "concurrency": cli.concurrency,
            "payload": format!("{:?}", cli.payload).to_ascii_lowercase(),
            "elapsed_s": (elapsed.as_secs_f64() * 1000.0).round() / 1000.0,
            "total": total.to_json(),
        });
        for part in &parts {
            out[part.name] = part.to_json();
        }
        println!("{out}");
    } else {
        println!(
            "s3gate-bench: {op} {} x{} against {} for {:.2} s",
            human_size(cli.size),
            cli.concurrency,
            cli.endpoint,
            elapsed.as_secs_f64()
        );
        for part in &parts {
            println!("{}", part.to_line());
        }
        if parts.len() > 1 {
            println!("{}", total.to_line());
        }
    }
}

/// `4 KiB`, `64 MiB`, or plain bytes when not a whole number of KiB.
fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut value = bytes;
    let mut unit = 0;
    while unit + 1 < UNITS.len() && value >= 1024 && value.is_multiple_of(1024) {
        value /= 1024;
        unit += 1;
    }
    format!("{value} {}", UNITS[unit])
}

/// `size` bytes of random data: incompressible, so nothing on the path can shortcut it.
fn random_body(size: u64) -> Result<Bytes, Error> {
    let mut body = vec![0u8; usize::try_from(size)?];
    rand::thread_rng().fill_bytes(&mut body);
    Ok(Bytes::from(body))
}

/// An error and its sources on one line (hyper's top-level errors alone say little).
fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_binary_and_decimal_units() {
        assert_eq!(parse_size("4KiB"), Ok(4096));
        assert_eq!(parse_size("64MiB"), Ok(64 << 20));
        assert_eq!(parse_size("256mib"), Ok(256 << 20));
        assert_eq!(parse_size("1GB"), Ok(1_000_000_000));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert!(parse_size("4 parsecs").is_err());
        assert!(parse_size("KiB").is_err());
    }

    #[test]
    fn sizes_print_in_the_largest_whole_unit() {
        assert_eq!(human_size(4096), "4 KiB");
        assert_eq!(human_size(256 << 20), "256 MiB");
        assert_eq!(human_size(1000), "1000 B");
    }

    #[test]
    fn a_request_budget_is_shared_and_exact() {
        let stop = Stop::After(AtomicU64::new(3));
        let taken = (0..10).filter(|_| stop.take()).count();
        assert_eq!(taken, 3);
    }
}
