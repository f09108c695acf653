//! Operating s3gate: rolling restarts behind a real load balancer lose no request, and a live
//! reload changes credentials and policies under load without failing any request.
//!
//! These run the real `s3gate` binary (signals, exit, restart on the same port) in front of the
//! in-process S3 store, with a SigV4 load generator that never retries: every failed request
//! would be a request a client saw fail.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use crate::support::raw::{self, sha256_hex};
use crate::support::{private, Upstream, STORE_AKID, STORE_SECRET};

const LOAD_AKID: &str = "LOADCLIENTKEY0000001";
const LOAD_SECRET: &str = "load-client-secret-0123456789abcdefghijk";

/// A port free now, for a process that must come back on the same one after a restart.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

/// An `s3gate serve` process; killed however the test ends.
struct Process(Child);

impl Process {
    fn spawn(args: &[String]) -> Self {
        let child = Command::new(env!("CARGO_BIN_EXE_s3gate"))
            .arg("serve")
            .args(args)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("s3gate runs");
        Self(child)
    }

    fn signal(&self, name: &str) {
        let status = Command::new("kill").args([&format!("-{name}"), &self.0.id().to_string()]).status().expect("kill");
        assert!(status.success(), "kill -{name} failed");
    }

    /// Waits for the process to exit by itself; its exit status.
    async fn exited(&mut self, within: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.0.try_wait().expect("wait") {
                return status;
            }
            assert!(Instant::now() < deadline, "s3gate did not exit within {within:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `GET path` on a plain HTTP listener: (status, body), or `None` if nothing answers.
async fn get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    let req = http::Request::get(format!("http://{addr}{path}")).body(Full::new(Bytes::new())).ok()?;
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let resp = tokio::time::timeout(Duration::from_secs(2), client.request(req)).await.ok()?.ok()?;
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await.ok()?.to_bytes();
    Some((status, String::from_utf8_lossy(&body).into_owned()))
}

/// The value of one series on a metrics listener, if it answers.
async fn metric(metrics: SocketAddr, series: &str) -> Option<f64> {
    let (_, text) = get(metrics, "/metrics").await?;
    text.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.trim().parse().ok())
}

/// Polls `check` every 50 ms until it holds, for at most `within`.
async fn until<F, Fut>(within: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    while !check().await {
        assert!(Instant::now() < deadline, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A SigV4 load generator: workers that PUT an object and GET it back over kept-alive
/// connections, with no retries of any kind, counting every request that did not succeed.
#[derive(Clone)]
struct Load {
    target: SocketAddr,
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicU64>,
    failures: Arc<Mutex<Vec<String>>>,
    /// Large objects stored (key, length), to check against the store afterwards.
    large: Arc<Mutex<Vec<(String, usize)>>>,
}

/// A large body sent slowly, so that it is still in flight when a replica drains.
const LARGE_PIECES: usize = 40;
const LARGE_PIECE: usize = 128 * 1024;
const LARGE_PAUSE: Duration = Duration::from_millis(25);

impl Load {
    fn new(target: SocketAddr) -> Self {
        Self { target, stop: Arc::default(), ok: Arc::default(), failures: Arc::default(), large: Arc::default() }
    }

    /// A client that keeps connections alive and never resends a request, not even one hyper
    /// thinks was not sent (its default): a lost request must show as a failure.
    fn client<B>() -> Client<hyper_util::client::legacy::connect::HttpConnector, B>
    where
        B: http_body::Body + Send + 'static,
        B::Data: Send,
    {
        Client::builder(TokioExecutor::new()).retry_canceled_requests(false).build_http()
    }

    fn spawn_small(
        &self,
        workers: usize,
        akid: &'static str,
        secret: &'static str,
    ) -> Vec<tokio::task::JoinHandle<()>> {
        (0..workers)
            .map(|w| {
                let load = self.clone();
                tokio::spawn(async move { load.small_worker(w, akid, secret).await })
            })
            .collect()
    }

    async fn small_worker(self, worker: usize, akid: &str, secret: &str) {
        let client = Self::client::<Full<Bytes>>();
        let mut n = 0u64;
        while !self.stop.load(Ordering::SeqCst) {
            n += 1;
            let key = format!("/ops/{akid}-w{worker}-{}", n % 8);
            let body = format!("object {n} of worker {worker}").into_bytes();
            let mut put = raw::request("PUT", self.target, &key);
            put.headers_mut().insert("content-length", body.len().into());
            raw::sign_as(&mut put, &sha256_hex(&body), SystemTime::now(), akid, secret);
            if !self.outcome(&client, put, Full::new(Bytes::from(body.clone())), Some(&body)).await {
                continue;
            }
            let mut get = raw::request("GET", self.target, &key);
            raw::sign_as(&mut get, &sha256_hex(b""), SystemTime::now(), akid, secret);
            let _ = self.outcome(&client, get, Full::new(Bytes::new()), Some(&body)).await;
        }
    }

    /// Sends `req`; counts it as ok if it got a 2xx (and, for a GET, `expect` back), else as a
    /// failure. Whether it was ok.
    async fn outcome<B>(
        &self,
        client: &Client<hyper_util::client::legacy::connect::HttpConnector, B>,
        req: http::Request<()>,
        body: B,
        expect: Option<&[u8]>,
    ) -> bool
    where
        B: http_body::Body + Send + Unpin + 'static,
        B::Data: Send,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let (parts, ()) = req.into_parts();
        let what = format!("{} {}", parts.method, parts.uri.path());
        let is_get = parts.method == http::Method::GET;
        let result =
            tokio::time::timeout(Duration::from_secs(20), client.request(http::Request::from_parts(parts, body)));
        let failure = match result.await {
            Err(_) => Some("timed out".to_owned()),
            Ok(Err(e)) => Some(format!("{e:?}")),
            Ok(Ok(resp)) => {
                let status = resp.status();
                match resp.into_body().collect().await.map(|c| c.to_bytes()) {
                    Err(e) => Some(format!("{status}, body cut: {e}")),
                    Ok(_) if !status.is_success() => Some(format!("status {status}")),
                    Ok(got) if is_get && expect.is_some_and(|e| got != e) => Some("wrong object content".to_owned()),
                    Ok(_) => None,
                }
            }
        };
        match failure {
            None => {
                self.ok.fetch_add(1, Ordering::SeqCst);
                true
            }
            Some(why) => {
                self.failures.lock().expect("lock").push(format!("{what}: {why}"));
                false
            }
        }
    }

    fn spawn_large(&self, workers: usize) -> Vec<tokio::task::JoinHandle<()>> {
        (0..workers)
            .map(|w| {
                let load = self.clone();
                tokio::spawn(async move { load.large_worker(w).await })
            })
            .collect()
    }

    /// PUTs of 5 MiB sent over about a second, each with its SHA-256 signed: an upstream that
    /// got less would refuse it, and a cut on the way would fail the request.
    async fn large_worker(self, worker: usize) {
        let client = Self::client::<http_body_util::combinators::BoxBody<Bytes, std::convert::Infallible>>();
        let mut n = 0u64;
        while !self.stop.load(Ordering::SeqCst) {
            n += 1;
            let fill = (worker as u8).wrapping_mul(31).wrapping_add(n as u8);
            let whole: Vec<u8> = (0..LARGE_PIECES * LARGE_PIECE).map(|i| fill.wrapping_add((i / 4096) as u8)).collect();
            let key = format!("/ops/large-w{worker}-{n}");
            let mut put = raw::request("PUT", self.target, &key);
            put.headers_mut().insert("content-length", whole.len().into());
            raw::sign_as(&mut put, &sha256_hex(&whole), SystemTime::now(), LOAD_AKID, LOAD_SECRET);
            let pieces: Vec<Bytes> = whole.chunks(LARGE_PIECE).map(Bytes::copy_from_slice).collect();
            let slow = futures_util::StreamExt::then(futures_util::stream::iter(pieces), |piece| async move {
                tokio::time::sleep(LARGE_PAUSE).await;
                Ok::<_, std::convert::Infallible>(http_body::Frame::data(piece))
            });
            let body = http_body_util::BodyExt::boxed(StreamBody::new(slow));
            if self.outcome(&client, put, body, None).await {
                self.large.lock().expect("lock").push((key.trim_start_matches("/ops/").to_owned(), whole.len()));
            }
        }
    }

    fn failures(&self) -> Vec<String> {
        self.failures.lock().expect("lock").clone()
    }
}

/// One replica: its ports stay the same across restarts, its audit log grows across them.
struct Replica {
    port: u16,
    metrics_port: u16,
    audit: PathBuf,
    args: Vec<String>,
    process: Option<Process>,
}

impl Replica {
    fn new(dir: &Path, n: usize, store: &str) -> Self {
        let (port, metrics_port) = (free_port(), free_port());
        let audit = dir.join(format!("audit-{n}.log"));
        let args = [
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--metrics-listen",
            &format!("127.0.0.1:{metrics_port}"),
            "--upstream",
            store,
            "--upstream-credentials",
            &format!("{STORE_AKID}:{STORE_SECRET}"),
            "--credentials",
            &format!("{LOAD_AKID}:{LOAD_SECRET}"),
            "--trusted-proxy",
            "127.0.0.1/32",
            "--drain-delay",
            "1",
            "--shutdown-grace",
            "10",
            "--audit-log",
            audit.to_str().expect("utf-8 path"),
        ]
        .map(str::to_owned)
        .to_vec();
        Self { port, metrics_port, audit, args, process: None }
    }

    fn metrics(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.metrics_port))
    }

    async fn start(&mut self) {
        self.process = Some(Process::spawn(&self.args));
        let metrics = self.metrics();
        until(Duration::from_secs(30), "replica ready", || async move {
            get(metrics, "/health").await.is_some_and(|(status, _)| status == 200)
        })
        .await;
    }

    /// Requests this replica has answered, over all its runs.
    fn served(&self) -> usize {
        std::fs::read_to_string(&self.audit).map(|t| t.lines().count()).unwrap_or(0)
    }
}

/// `retries 0`: an NLB does not retry a connection its target refuses, so neither may HAProxy
/// here, or a replica that closed its listener too early would go unnoticed (with the drain
/// delay at 0 this test then fails with incomplete messages).
fn haproxy_config(front: u16, replicas: &[Replica]) -> String {
    let mut cfg = format!(
        "global\n  maxconn 2000\n\
         defaults\n  mode tcp\n  retries 0\n  timeout connect 2s\n  timeout client 30s\n  timeout server 30s\n\
         frontend s3\n  bind 127.0.0.1:{front}\n  default_backend s3gate\n\
         backend s3gate\n  balance roundrobin\n  option httpchk\n\
         \x20 http-check send meth GET uri /_s3gate/health ver HTTP/1.1 hdr Host s3gate\n\
         \x20 http-check expect status 200\n\
         \x20 default-server check inter 200ms fall 2 rise 2 send-proxy-v2 check-send-proxy\n"
    );
    for (i, r) in replicas.iter().enumerate() {
        cfg.push_str(&format!("  server r{i} 127.0.0.1:{}\n", r.port));
    }
    cfg
}

/// Three replicas behind HAProxy in TCP mode with PROXY protocol v2 and HTTP health checks, as
/// an NLB runs them; load throughout, small requests and slow 5 MiB PUTs; each replica in turn
/// gets SIGTERM, exits by itself and is started again. Not one request may fail, every large
/// object must be whole in the store, and every replica must have served before and after its
/// restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_restart_behind_haproxy_loses_no_request() {
    if Command::new("haproxy").arg("-v").output().is_err() {
        panic!("haproxy is not installed: run scripts/install-test-deps.sh");
    }
    let upstream = Upstream::start().await;
    upstream.direct_client().create_bucket().bucket("ops").send().await.expect("bucket");
    let dir = tempfile::tempdir().expect("dir");
    let mut replicas: Vec<Replica> = (0..3).map(|n| Replica::new(dir.path(), n, &upstream.store.url())).collect();
    for r in &mut replicas {
        r.start().await;
    }
    let front = free_port();
    let cfg_path = dir.path().join("haproxy.cfg");
    std::fs::write(&cfg_path, haproxy_config(front, &replicas)).expect("write haproxy.cfg");
    let haproxy = Command::new("haproxy")
        .args(["-db", "-f"])
        .arg(&cfg_path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("haproxy runs");
    let _haproxy = Process(haproxy);
    let front_addr = SocketAddr::from(([127, 0, 0, 1], front));
    until(Duration::from_secs(10), "haproxy passes requests", || async move {
        get(front_addr, "/_s3gate/health").await.is_some_and(|(status, _)| status == 200)
    })
    .await;

    let load = Load::new(front_addr);
    let mut workers = load.spawn_small(6, LOAD_AKID, LOAD_SECRET);
    workers.extend(load.spawn_large(2));
    // Every replica takes traffic before the first restart.
    until(Duration::from_secs(10), "all replicas serve", || {
        let all = replicas.iter().all(|r| r.served() > 0);
        async move { all }
    })
    .await;

    for r in &mut replicas {
        r.process.as_ref().expect("running").signal("TERM");
        // Readiness fails at once (the metrics listener stays up through the drain delay).
        let metrics = r.metrics();
        until(Duration::from_secs(2), "readiness fails on SIGTERM", || async move {
            get(metrics, "/health").await.is_some_and(|(status, body)| status == 503 && body.contains("draining"))
        })
        .await;
        assert_eq!(metric(metrics, "s3gate_draining").await, Some(1.0));
        let status = r.process.as_mut().expect("running").exited(Duration::from_secs(20)).await;
        assert!(status.success(), "a drained s3gate exits cleanly: {status}");
        let before = r.served();
        r.start().await;
        until(Duration::from_secs(10), "the restarted replica serves again", || {
            let grown = r.served() > before;
            async move { grown }
        })
        .await;
    }
    // Some load after the last restart too.
    tokio::time::sleep(Duration::from_millis(500)).await;
    load.stop.store(true, Ordering::SeqCst);
    for w in workers {
        w.await.expect("worker");
    }

    let failures = load.failures();
    assert!(
        failures.is_empty(),
        "{} of {} requests failed: {:?}",
        failures.len(),
        load.ok.load(Ordering::SeqCst) as usize + failures.len(),
        &failures[..failures.len().min(20)]
    );
    assert!(
        load.ok.load(Ordering::SeqCst) > 200,
        "too little load to prove anything: {}",
        load.ok.load(Ordering::SeqCst)
    );
    let large = load.large.lock().expect("lock").clone();
    assert!(large.len() >= 6, "too few large PUTs completed: {}", large.len());
    let client = upstream.direct_client();
    for (key, len) in &large {
        let head = client.head_object().bucket("ops").key(key).send().await.expect("large object stored");
        assert_eq!(head.content_length(), Some(*len as i64), "{key} stored truncated");
    }
    // Nothing partial slipped in: every large object in the store is whole.
    let listed = client.list_objects_v2().bucket("ops").prefix("large-").send().await.expect("list");
    for obj in listed.contents() {
        assert_eq!(obj.size(), Some((LARGE_PIECES * LARGE_PIECE) as i64), "{:?} is truncated", obj.key());
    }
}

const ADDED_AKID: &str = "ADDEDCLIENTKEY000001";
const ADDED_SECRET: &str = "added-client-secret-0123456789abcdefghij";
const REMOVED_AKID: &str = "REMOVEDCLIENTKEY0001";
const REMOVED_SECRET: &str = "removed-client-secret-0123456789abcdefgh";
const POLICY_AKID: &str = "POLICYCLIENTKEY00001";
const POLICY_SECRET: &str = "policy-client-secret-0123456789abcdefghi";

fn reload_config(port: u16, metrics_port: u16, store: &str, creds: &Path, actions: &str) -> String {
    format!(
        "listen = \"127.0.0.1:{port}\"\n\
         metrics_listen = \"127.0.0.1:{metrics_port}\"\n\
         upstream = \"{store}\"\n\
         upstream_credentials = \"{STORE_AKID}:{STORE_SECRET}\"\n\
         credentials_file = \"{}\"\n\
         drain_delay = 0.5\n\
         shutdown_grace = 5\n\
         [[client]]\n\
         access_key_id = \"{POLICY_AKID}\"\n\
         secret_access_key = \"{POLICY_SECRET}\"\n\
         policy = '{{\"Version\":\"2012-10-17\",\"Statement\":[{{\"Effect\":\"Allow\",\"Action\":[{actions}],\"Resource\":\"*\"}}]}}'\n",
        creds.display()
    )
}

fn write_private(path: &Path, text: &str) {
    std::fs::write(path, text).expect("write");
    private(path);
}

/// One signed request on a fresh connection: (status, S3 error code).
async fn signed(addr: SocketAddr, method: &str, path: &str, akid: &str, secret: &str) -> (u16, String) {
    let body: &[u8] = if method == "PUT" { b"reload test" } else { b"" };
    let mut req = raw::request(method, addr, path);
    req.headers_mut().insert("content-length", body.len().into());
    raw::sign_as(&mut req, &sha256_hex(body), SystemTime::now(), akid, secret);
    let resp = raw::send(req, body.to_vec()).await;
    (resp.status.as_u16(), resp.code().to_owned())
}

/// SIGHUP under load: a credential added works, a credential removed gets
/// `InvalidAccessKeyId`, a tightened policy denies, a broken config file is refused and the
/// running configuration stays; the load sees no failure and the reloads are counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_credentials_and_policies_under_load_and_refuses_a_broken_file() {
    let upstream = Upstream::start().await;
    upstream.direct_client().create_bucket().bucket("ops").send().await.expect("bucket");
    let dir = tempfile::tempdir().expect("dir");
    let (port, metrics_port) = (free_port(), free_port());
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let metrics = SocketAddr::from(([127, 0, 0, 1], metrics_port));
    let creds = dir.path().join("credentials");
    let config = dir.path().join("s3gate.toml");
    let store = upstream.store.url();
    write_private(&creds, &format!("{LOAD_AKID}:{LOAD_SECRET}\n{REMOVED_AKID}:{REMOVED_SECRET}\n"));
    write_private(&config, &reload_config(port, metrics_port, &store, &creds, "\"s3:*\""));
    let process = Process::spawn(&["--config".to_owned(), config.to_str().expect("utf-8").to_owned()]);
    until(Duration::from_secs(30), "s3gate ready", || async move {
        get(metrics, "/health").await.is_some_and(|(status, _)| status == 200)
    })
    .await;
    let reloads = |result: &'static str| async move {
        metric(metrics, &format!("s3gate_config_reload_total{{result=\"{result}\"}}")).await.unwrap_or(-1.0)
    };
    assert_eq!((reloads("ok").await, reloads("error").await), (0.0, 0.0));

    let load = Load::new(addr);
    let workers = load.spawn_small(4, LOAD_AKID, LOAD_SECRET);
    assert_eq!(signed(addr, "GET", "/ops", ADDED_AKID, ADDED_SECRET).await.1, "InvalidAccessKeyId");
    assert_eq!(signed(addr, "GET", "/ops", REMOVED_AKID, REMOVED_SECRET).await.0, 200);
    assert_eq!(signed(addr, "PUT", "/ops/by-policy-client", POLICY_AKID, POLICY_SECRET).await.0, 200);

    // A credential added and one removed, in the credentials file.
    write_private(&creds, &format!("{LOAD_AKID}:{LOAD_SECRET}\n{ADDED_AKID}:{ADDED_SECRET}\n"));
    process.signal("HUP");
    until(Duration::from_secs(5), "reload counted", || async { reloads("ok").await == 1.0 }).await;
    assert_eq!(signed(addr, "GET", "/ops", ADDED_AKID, ADDED_SECRET).await.0, 200, "the added credential works");
    let removed = signed(addr, "GET", "/ops", REMOVED_AKID, REMOVED_SECRET).await;
    assert_eq!(removed, (403, "InvalidAccessKeyId".to_owned()), "the removed credential is refused");

    // A policy tightened to reading only.
    write_private(&config, &reload_config(port, metrics_port, &store, &creds, "\"s3:GetObject\",\"s3:ListBucket\""));
    process.signal("HUP");
    until(Duration::from_secs(5), "reload counted", || async { reloads("ok").await == 2.0 }).await;
    let denied = signed(addr, "PUT", "/ops/by-policy-client", POLICY_AKID, POLICY_SECRET).await;
    assert_eq!(denied, (403, "AccessDenied".to_owned()), "the tightened policy denies the write");
    assert_eq!(signed(addr, "GET", "/ops/by-policy-client", POLICY_AKID, POLICY_SECRET).await.0, 200);

    // A broken file: refused, counted, and the running configuration stays.
    write_private(&config, "listen = [this is not toml\n");
    process.signal("HUP");
    until(Duration::from_secs(5), "failed reload counted", || async { reloads("error").await == 1.0 }).await;
    assert_eq!(reloads("ok").await, 2.0);
    assert_eq!(signed(addr, "GET", "/ops", ADDED_AKID, ADDED_SECRET).await.0, 200, "the old config stays");
    let still = signed(addr, "PUT", "/ops/by-policy-client", POLICY_AKID, POLICY_SECRET).await;
    assert_eq!(still.1, "AccessDenied", "the last good policy stays");
    assert_eq!(signed(addr, "GET", "/ops", REMOVED_AKID, REMOVED_SECRET).await.1, "InvalidAccessKeyId");
    // A credentials file that others may read is refused the same way.
    write_private(&config, &reload_config(port, metrics_port, &store, &creds, "\"s3:*\""));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&creds, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        process.signal("HUP");
        until(Duration::from_secs(5), "failed reload counted", || async { reloads("error").await == 2.0 }).await;
        assert_eq!(signed(addr, "PUT", "/ops/by-policy-client", POLICY_AKID, POLICY_SECRET).await.1, "AccessDenied");
    }

    tokio::time::sleep(Duration::from_millis(300)).await;
    load.stop.store(true, Ordering::SeqCst);
    for w in workers {
        w.await.expect("worker");
    }
    let failures = load.failures();
    assert!(failures.is_empty(), "requests failed during reloads: {:?}", &failures[..failures.len().min(20)]);
    assert!(load.ok.load(Ordering::SeqCst) > 50, "too little load: {}", load.ok.load(Ordering::SeqCst));
    // The process still serves, and drains on SIGTERM as usual.
    let mut process = process;
    process.signal("TERM");
    assert!(process.exited(Duration::from_secs(10)).await.success());
}

/// SIGHUP reloads the endpoint's certificate: handshakes from then on present the new one,
/// and a client that trusts only the old one is refused at the handshake.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_the_tls_certificate_for_new_handshakes() {
    let upstream = Upstream::start().await;
    let (_old_dir, old_ca, old_cert, old_key) = crate::support::throwaway_tls("localhost");
    let (_new_dir, new_ca, new_cert, new_key) = crate::support::throwaway_tls("localhost");
    let dir = tempfile::tempdir().expect("dir");
    let (cert, key, config) = (dir.path().join("cert.pem"), dir.path().join("key.pem"), dir.path().join("s3gate.toml"));
    std::fs::copy(&old_cert, &cert).expect("cert");
    std::fs::copy(&old_key, &key).expect("key");
    private(&key);
    let (port, metrics_port) = (free_port(), free_port());
    let metrics = SocketAddr::from(([127, 0, 0, 1], metrics_port));
    write_private(
        &config,
        &format!(
            "listen = \"127.0.0.1:{port}\"\n\
             metrics_listen = \"127.0.0.1:{metrics_port}\"\n\
             upstream = \"{}\"\n\
             upstream_credentials = \"{STORE_AKID}:{STORE_SECRET}\"\n\
             credentials = [\"{LOAD_AKID}:{LOAD_SECRET}\"]\n\
             tls_cert = \"{}\"\n\
             tls_key = \"{}\"\n\
             drain_delay = 0.2\n",
            upstream.store.url(),
            cert.display(),
            key.display()
        ),
    );
    let process = Process::spawn(&["--config".to_owned(), config.to_str().expect("utf-8").to_owned()]);
    until(Duration::from_secs(30), "s3gate ready", || async move {
        get(metrics, "/health").await.is_some_and(|(status, _)| status == 200)
    })
    .await;
    let endpoint = format!("https://localhost:{port}");
    // A fresh client each time: a new connection, so a new handshake.
    let lists = |ca: String| {
        let endpoint = endpoint.clone();
        async move {
            let client = crate::support::sdk_client(&endpoint, LOAD_AKID, LOAD_SECRET, Some(&ca));
            client.list_buckets().send().await.map(|_| ()).map_err(|e| format!("{e:?}"))
        }
    };
    lists(old_ca.clone()).await.expect("the first certificate is served");
    assert!(lists(new_ca.clone()).await.is_err(), "the second certificate is not served yet");

    std::fs::copy(&new_cert, &cert).expect("cert");
    std::fs::copy(&new_key, &key).expect("key");
    process.signal("HUP");
    until(Duration::from_secs(5), "reload counted", || async move {
        metric(metrics, "s3gate_config_reload_total{result=\"ok\"}").await == Some(1.0)
    })
    .await;
    lists(new_ca).await.expect("handshakes present the reloaded certificate");
    let old = lists(old_ca).await.expect_err("a client trusting only the old certificate is refused");
    assert!(old.contains("ertificate") || old.contains("Tls") || old.contains("tls"), "not a TLS refusal: {old}");
}

/// Readiness fails while the upstream credentials cannot be obtained (the AWS default chain
/// with nothing to find), on both listeners, while liveness still answers: a load balancer
/// takes such a replica out, an orchestrator does not restart it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_fails_while_the_upstream_credentials_cannot_be_obtained() {
    let home = tempfile::tempdir().expect("dir");
    let (port, metrics_port) = (free_port(), free_port());
    let (addr, metrics) = (SocketAddr::from(([127, 0, 0, 1], port)), SocketAddr::from(([127, 0, 0, 1], metrics_port)));
    // No --upstream-credentials: the default chain, given an environment where it finds nothing.
    let child = Command::new(env!("CARGO_BIN_EXE_s3gate"))
        .args(["serve", "--listen", &addr.to_string(), "--metrics-listen", &metrics.to_string()])
        .args(["--upstream", "http://127.0.0.1:9", "--credentials", &format!("{LOAD_AKID}:{LOAD_SECRET}")])
        .env_clear()
        .env("HOME", home.path())
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", home.path().join("none"))
        .env("AWS_SHARED_CREDENTIALS_FILE", home.path().join("none"))
        .env("RUST_LOG", "error")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("s3gate runs");
    let _process = Process(child);
    until(Duration::from_secs(30), "liveness answers", || async move {
        get(addr, "/_s3gate/live").await.is_some_and(|(status, _)| status == 200)
    })
    .await;
    for (at, path) in [(addr, "/_s3gate/health"), (metrics, "/health")] {
        let (status, body) = get(at, path).await.expect("readiness answers");
        assert_eq!(status, 503, "{path}: {body}");
        assert!(body.contains("upstream credentials unavailable"), "{path}: {body}");
    }
    assert_eq!(get(metrics, "/live").await.map(|(s, _)| s), Some(200));
}
