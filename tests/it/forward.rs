//! Forward-proxy mode: s3gate as the `HTTPS_PROXY` of S3 clients. Real clients (awscli, boto3,
//! curl) in `clients`, the 1 GiB tunnel in `memory`, the options in `settings`; here, what a
//! tunnel does at the byte level: refusals, idle cut, half-close, the tunnel cap.

pub mod clients;
mod memory;
mod names;
pub mod origin;
mod settings;
pub mod wire;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use s3gate::config::{Config, ForwardArgs, ServeArgs};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub const USER: &str = "builder";
pub const PASSWORD: &str = "proxy-pass:with/odd=chars";

/// s3gate running only its forward listener, on a free port.
pub async fn proxy(tweak: impl FnOnce(&mut ForwardArgs)) -> s3gate::Running {
    proxy_with(|args| tweak(&mut args.forward)).await
}

/// The same, for options outside `--forward-*`.
pub async fn proxy_with(tweak: impl FnOnce(&mut ServeArgs)) -> s3gate::Running {
    let mut args = ServeArgs { listen: Some("none".into()), shutdown_grace: Some(1), ..Default::default() };
    args.forward.forward_listen = Some("127.0.0.1:0".into());
    args.forward.forward_connect_timeout = Some(2);
    tweak(&mut args);
    let config = Config::load(&args, &HashMap::new()).expect("config");
    s3gate::start(config).await.expect("the proxy starts")
}

pub fn addr_of(running: &s3gate::Running) -> SocketAddr {
    running.forward_addr.expect("a forward listener")
}

/// A proxy that lets `name:443` through to `to`, and nothing else.
async fn proxy_to(names: &[(&str, SocketAddr)], tweak: impl FnOnce(&mut ForwardArgs)) -> s3gate::Running {
    proxy(|f| {
        f.forward_allow = names.iter().map(|(n, _)| (*n).to_owned()).collect();
        f.forward_connect_to = names.iter().map(|(n, to)| format!("{n}={to}")).collect();
        tweak(f);
    })
    .await
}

fn basic(user: &str, password: &str) -> String {
    use base64::Engine;
    let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    format!("Proxy-Authorization: Basic {token}\r\n")
}

#[tokio::test]
async fn refusals_name_their_reason_and_ask_for_credentials() {
    let (echo, _e) = wire::echo_server().await;
    let running = proxy_to(&[("echo.test", echo)], |f| f.forward_user = vec![format!("{USER}:{PASSWORD}")]).await;
    let at = addr_of(&running);
    let auth = basic(USER, PASSWORD);

    let missing = wire::connect(at, "echo.test:443", "").await;
    assert_eq!(missing.status, 407, "{}", missing.head);
    assert!(missing.head.contains("proxy-authenticate: basic realm=\"s3gate\""), "{}", missing.head);
    let wrong = wire::connect(at, "echo.test:443", &basic(USER, "nope")).await;
    assert_eq!(wrong.status, 407, "{}", wrong.head);

    for (target, why) in [
        ("example.com:443", "not in the allow list"),
        ("echo.test:8443", "port 8443"),
        ("127.0.0.1:443", "ip address"),
        ("[::1]:443", "ip address"),
        ("2130706433:443", "ip address"),
    ] {
        let mut c = wire::connect(at, target, &auth).await;
        assert_eq!(c.status, 403, "{target}: {}", c.head);
        let mut body = vec![0u8; 200];
        let n = c.stream.read(&mut body).await.expect("read the reason");
        let body = String::from_utf8_lossy(&body[..n]).to_ascii_lowercase();
        assert!(body.contains(why), "{target}: {body}");
    }

    let mut ok = wire::connect(at, "echo.test:443", &auth).await;
    assert_eq!(ok.status, 200, "{}", ok.head);
    ok.stream.write_all(b"ping").await.expect("write");
    let mut back = [0u8; 4];
    ok.stream.read_exact(&mut back).await.expect("echo");
    assert_eq!(&back, b"ping");

    let metrics = running.metrics.render();
    for line in [
        "s3gate_network_denials_total{mode=\"forward\",reason=\"destination\"} 5",
        "s3gate_auth_failures_total{reason=\"proxy_authentication\"} 2",
        "s3gate_active_tunnels 1",
    ] {
        assert!(metrics.lines().any(|l| l == line), "no `{line}` in\n{metrics}");
    }
    running.stop().await;
}

#[tokio::test]
async fn a_stalled_tunnel_is_cut_at_the_idle_timeout_and_a_busy_one_is_not() {
    let (silent, _s) = wire::silent_server().await;
    let (echo, _e) = wire::echo_server().await;
    let running = proxy_to(&[("silent.test", silent), ("echo.test", echo)], |f| f.forward_idle_timeout = Some(1)).await;
    let at = addr_of(&running);

    // Busy for three times the limit, never quiet for long: stays open.
    let mut busy = wire::connect(at, "echo.test:443", "").await;
    assert_eq!(busy.status, 200);
    for round in 0..10u8 {
        busy.stream.write_all(&[round]).await.expect("write");
        let mut back = [0u8; 1];
        busy.stream.read_exact(&mut back).await.unwrap_or_else(|e| panic!("round {round}: the tunnel closed: {e}"));
        assert_eq!(back, [round]);
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    let mut stalled = wire::connect(at, "silent.test:443", "").await;
    assert_eq!(stalled.status, 200);
    let started = Instant::now();
    let mut buf = [0u8; 16];
    let read = tokio::time::timeout(Duration::from_secs(10), stalled.stream.read(&mut buf)).await;
    let waited = started.elapsed();
    assert!(matches!(read, Ok(Ok(0)) | Ok(Err(_))), "the stalled tunnel was not closed: {read:?}");
    assert!(waited >= Duration::from_millis(900) && waited < Duration::from_secs(4), "cut after {waited:?}");
    running.stop().await;
}

#[tokio::test]
async fn a_half_close_passes_through_and_the_answer_still_comes_back() {
    let (answer, _a) = wire::count_then_answer_server().await;
    let running = proxy_to(&[("answer.test", answer)], |_| {}).await;
    let mut c = wire::connect(addr_of(&running), "answer.test:443", "").await;
    assert_eq!(c.status, 200);
    c.stream.write_all(&vec![7u8; 100_000]).await.expect("write");
    c.stream.shutdown().await.expect("half-close");
    let mut reply = String::new();
    tokio::time::timeout(Duration::from_secs(10), c.stream.read_to_string(&mut reply))
        .await
        .expect("the answer comes")
        .expect("read");
    assert_eq!(reply, "got 100000 bytes");
    running.stop().await;
}

#[tokio::test]
async fn past_the_tunnel_cap_the_answer_is_503_until_a_tunnel_closes() {
    let (echo, _e) = wire::echo_server().await;
    let running = proxy_to(&[("echo.test", echo)], |f| f.forward_max_tunnels = Some(1)).await;
    let at = addr_of(&running);
    let first = wire::connect(at, "echo.test:443", "").await;
    assert_eq!(first.status, 200);
    let second = wire::connect(at, "echo.test:443", "").await;
    assert_eq!(second.status, 503, "{}", second.head);
    drop(first);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let again = wire::connect(at, "echo.test:443", "").await;
        if again.status == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "the closed tunnel's place was never freed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    running.stop().await;
}

#[tokio::test]
async fn an_unreachable_destination_is_a_502_before_any_tunnel() {
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr")
    };
    let running = proxy_to(&[("gone.test", closed)], |_| {}).await;
    let c = wire::connect(addr_of(&running), "gone.test:443", "").await;
    assert_eq!(c.status, 502, "{}", c.head);
    running.stop().await;
}

#[tokio::test]
async fn clients_outside_the_allowed_source_subnets_are_refused() {
    let (echo, _e) = wire::echo_server().await;
    let running = proxy_with(|args| {
        args.allowed_source_subnet = vec!["10.0.0.0/8".into()];
        args.forward.forward_allow = vec!["echo.test".into()];
        args.forward.forward_connect_to = vec![format!("echo.test={echo}")];
    })
    .await;
    let c = wire::connect(addr_of(&running), "echo.test:443", "").await;
    assert_eq!(c.status, 403, "{}", c.head);
    let metrics = running.metrics.render();
    let line = "s3gate_network_denials_total{mode=\"forward\",reason=\"source_subnet\"} 1";
    assert!(metrics.lines().any(|l| l == line), "no `{line}` in\n{metrics}");
    running.stop().await;
}

#[tokio::test]
async fn on_shutdown_a_tunnel_keeps_working_for_the_grace_period_then_is_cut() {
    let (echo, _e) = wire::echo_server().await;
    let running = proxy_to(&[("echo.test", echo)], |_| {}).await;
    let at = addr_of(&running);
    let mut c = wire::connect(at, "echo.test:443", "").await;
    assert_eq!(c.status, 200);

    let started = Instant::now();
    let stopping = tokio::spawn(running.stop());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(tokio::net::TcpStream::connect(at).await.is_err(), "the listener is closed");
    c.stream.write_all(b"late").await.expect("write during the grace period");
    let mut back = [0u8; 4];
    c.stream.read_exact(&mut back).await.expect("the tunnel still works");
    assert_eq!(&back, b"late");

    let mut buf = [0u8; 8];
    let read = tokio::time::timeout(Duration::from_secs(5), c.stream.read(&mut buf)).await;
    assert!(matches!(read, Ok(Ok(0)) | Ok(Err(_))), "the tunnel was not cut: {read:?}");
    stopping.await.expect("stop");
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(900) && took < Duration::from_secs(4), "stopped after {took:?}");
}

#[tokio::test]
async fn tunnels_and_refusals_are_in_the_audit_log() {
    let (echo, _e) = wire::echo_server().await;
    let dir = tempfile::tempdir().expect("dir");
    let log = dir.path().join("audit.log");
    let path = log.to_string_lossy().into_owned();
    let running = proxy_with(|a| {
        a.audit_log = Some(path);
        a.forward.forward_allow = vec!["echo.test".into()];
        a.forward.forward_connect_to = vec![format!("echo.test={echo}")];
        a.forward.forward_user = vec![format!("{USER}:{PASSWORD}")];
    })
    .await;
    let at = addr_of(&running);
    let auth = basic(USER, PASSWORD);
    let mut ok = wire::connect(at, "echo.test:443", &auth).await;
    assert_eq!(ok.status, 200, "{}", ok.head);
    ok.stream.write_all(b"ping").await.expect("write");
    let mut back = [0u8; 4];
    ok.stream.read_exact(&mut back).await.expect("echo");
    drop(ok);
    let denied = wire::connect(at, "example.com:443", &auth).await;
    assert_eq!(denied.status, 403);
    drop(denied);
    running.stop().await;

    let text = std::fs::read_to_string(&log).expect("audit log");
    let lines: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).expect("JSON")).collect();
    assert_eq!(lines.len(), 2, "{text}");
    let tunnel = lines.iter().find(|l| l["status"] == 200).expect("the tunnel's record");
    assert_eq!(tunnel["mode"], "forward");
    assert_eq!(tunnel["user"], USER);
    assert_eq!(tunnel["destination"], "echo.test:443");
    assert_eq!(tunnel["bytes_in"], 4);
    assert_eq!(tunnel["bytes_out"], 4);
    let refused = lines.iter().find(|l| l["status"] == 403).expect("the refusal's record");
    assert_eq!(refused["destination"], "example.com:443");
    assert!(!text.contains(PASSWORD), "the audit log holds the proxy password");
}

#[tokio::test]
async fn behind_a_trusted_load_balancer_the_proxy_protocol_names_the_client() {
    let (echo, _e) = wire::echo_server().await;
    let running = proxy_with(|a| {
        a.trusted_proxy = vec!["127.0.0.1/32".into()];
        a.allowed_source_subnet = vec!["10.1.0.0/16".into()];
        a.forward.forward_allow = vec!["echo.test".into()];
        a.forward.forward_connect_to = vec![format!("echo.test={echo}")];
    })
    .await;
    let at = addr_of(&running);
    let via_lb = |client: &'static str| async move {
        let mut s = tokio::net::TcpStream::connect(at).await.expect("connect");
        s.write_all(format!("PROXY TCP4 {client} 10.0.0.1 40000 3128\r\n").as_bytes()).await.expect("header");
        s.write_all(b"CONNECT echo.test:443 HTTP/1.1\r\nHost: echo.test:443\r\n\r\n").await.expect("connect");
        let mut buf = vec![0u8; 64];
        let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf)).await.expect("answer").expect("read");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };
    assert!(via_lb("10.1.2.3").await.starts_with("HTTP/1.1 200"), "a client inside the subnet");
    assert!(via_lb("192.168.1.1").await.starts_with("HTTP/1.1 403"), "a client outside it");
    // Without a PROXY header a trusted peer is refused: the balancer always sends one.
    let mut s = tokio::net::TcpStream::connect(at).await.expect("connect");
    s.write_all(b"CONNECT echo.test:443 HTTP/1.1\r\nHost: echo.test:443\r\n\r\n").await.expect("connect");
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut buf)).await;
    assert!(!String::from_utf8_lossy(&buf).starts_with("HTTP/1.1 200"));
    running.stop().await;
}
