//! Transparent mode: clients keep their endpoint, credentials and TLS; only name resolution
//! sends them to s3gate. Real clients (awscli, boto3, curl) in `clients`, rclone with only its
//! resolv.conf changed in `rclone`, the DNS responder against `dig` in `dns`, live reload in
//! `reload`; here, what the passthrough listener does at the byte level: the refusals (each
//! with its TLS alert, and nothing dialled), the replayed ClientHello, the half-close, and the
//! audit line.

mod clients;
mod dns;
mod inspect;
mod rclone;
mod reload;
mod settings;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use s3gate::config::{Config, ServeArgs};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::forward::wire;

/// s3gate running only its transparent listener (and what `tweak` adds), on free ports.
pub async fn gateway(tweak: impl FnOnce(&mut ServeArgs)) -> s3gate::Running {
    let mut args = ServeArgs { listen: Some("none".into()), shutdown_grace: Some(1), ..Default::default() };
    args.transparent.transparent_listen = Some("127.0.0.1:0".into());
    args.transparent.transparent_connect_timeout = Some(2);
    tweak(&mut args);
    let config = Config::load(&args, &HashMap::new()).expect("config");
    s3gate::start(config).await.expect("s3gate starts")
}

/// Rules sending the S3 names of us-east-1 (path style and virtual-hosted) to `to`.
pub fn connect_s3_to(to: SocketAddr) -> Vec<String> {
    ["s3.us-east-1.amazonaws.com", "*.s3.us-east-1.amazonaws.com", "s3.amazonaws.com", "*.s3.amazonaws.com"]
        .iter()
        .map(|n| format!("{n}={to}"))
        .collect()
}

/// The ClientHello rustls sends for `name` (an IP address: no SNI).
fn client_hello(name: &str) -> Vec<u8> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from(name.to_owned()).expect("server name");
    let mut conn = rustls::ClientConnection::new(Arc::new(config), name).expect("client");
    let mut out = Vec::new();
    conn.write_tls(&mut out).expect("hello");
    out
}

/// A ClientHello naming `name` that also carries an `encrypted_client_hello` extension.
fn ech_hello(name: &str) -> Vec<u8> {
    let mut sni = vec![0u8];
    sni.extend_from_slice(&(name.len() as u16).to_be_bytes());
    sni.extend_from_slice(name.as_bytes());
    let mut ext = vec![0x00, 0x00];
    ext.extend_from_slice(&(sni.len() as u16 + 2).to_be_bytes());
    ext.extend_from_slice(&(sni.len() as u16).to_be_bytes());
    ext.extend_from_slice(&sni);
    ext.extend_from_slice(&[0xfe, 0x0d, 0x00, 0x04, 0, 0, 0, 0]);
    let mut body = vec![0x03, 0x03];
    body.extend_from_slice(&[9u8; 32]);
    body.extend_from_slice(&[0x00, 0x00, 0x02, 0x13, 0x01, 0x01, 0x00]);
    body.extend_from_slice(&(ext.len() as u16).to_be_bytes());
    body.extend_from_slice(&ext);
    let mut hs = vec![0x01];
    hs.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
    hs.extend_from_slice(&body);
    let mut rec = vec![0x16, 0x03, 0x01];
    rec.extend_from_slice(&(hs.len() as u16).to_be_bytes());
    rec.extend_from_slice(&hs);
    rec
}

/// Sends `hello`, half-closes, and reads until the listener closes: what came back.
async fn send_hello(at: SocketAddr, hello: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(at).await.expect("connect");
    s.write_all(hello).await.expect("send the hello");
    s.shutdown().await.expect("half-close");
    let mut back = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut back))
        .await
        .expect("the listener closed the connection")
        .expect("read");
    back
}

fn transparent_addr(running: &s3gate::Running) -> SocketAddr {
    running.transparent_addr.expect("a transparent listener")
}

#[tokio::test]
async fn refusals_get_their_tls_alert_and_nothing_is_dialled() {
    let (upstream, count, _t) = wire::counting_server().await;
    let running = gateway(|a| {
        a.transparent.transparent_connect_to =
            connect_s3_to(upstream).into_iter().chain([format!("example.com={upstream}")]).collect();
        a.transparent.transparent_allow_bucket = vec!["allowed-*".into()];
    })
    .await;
    let at = transparent_addr(&running);
    let (access_denied, unrecognized_name, handshake_failure) = (49u8, 112u8, 40u8);
    let cases: Vec<(&str, Vec<u8>, u8)> = vec![
        ("a name outside the allow list", client_hello("example.com"), unrecognized_name),
        ("a name one label too deep", client_hello("a.b.s3.us-east-1.amazonaws.com"), unrecognized_name),
        ("no SNI", client_hello("127.0.0.1"), unrecognized_name),
        ("a bucket outside the bucket list", client_hello("other.s3.us-east-1.amazonaws.com"), access_denied),
        ("path style, whose bucket cannot be seen", client_hello("s3.us-east-1.amazonaws.com"), access_denied),
        ("ECH with an allowed outer name", ech_hello("allowed-x.s3.us-east-1.amazonaws.com"), handshake_failure),
    ];
    for (what, hello, alert) in cases {
        let back = send_hello(at, &hello).await;
        assert_eq!(back, [0x15, 3, 3, 0, 2, 2, alert], "{what}: a fatal alert, then the close");
    }
    // Not TLS at all: closed without a word.
    assert!(send_hello(at, b"GET / HTTP/1.1\r\nHost: s3.amazonaws.com\r\n\r\n").await.is_empty());
    assert_eq!(count.load(Ordering::SeqCst), 0, "a refused connection reached the upstream");

    let back = send_hello(at, &client_hello("allowed-x.s3.us-east-1.amazonaws.com")).await;
    assert!(back.starts_with(b"HTTP/1.1 200"), "the allowed bucket is spliced: {back:?}");
    assert_eq!(count.load(Ordering::SeqCst), 1);
    let metrics = running.metrics.render();
    for reason in ["server_name", "no_sni", "bucket", "encrypted_client_hello"] {
        let line = format!("s3gate_network_denials_total{{mode=\"transparent\",reason=\"{reason}\"}}");
        assert!(metrics.contains(&line), "{line} missing from\n{metrics}");
    }
    assert!(metrics.contains(
        r#"s3gate_requests_total{action="transparent:passthrough",mode="transparent",status_class="2xx"} 1"#
    ));
    running.stop().await;
}

#[tokio::test]
async fn a_client_outside_the_source_networks_is_refused_before_its_hello_is_read() {
    let (upstream, count, _t) = wire::counting_server().await;
    let running = gateway(|a| {
        a.transparent.transparent_connect_to = connect_s3_to(upstream);
        a.allowed_source_subnet = vec!["10.0.0.0/8".into()];
    })
    .await;
    let back = send_hello(transparent_addr(&running), &client_hello("s3.us-east-1.amazonaws.com")).await;
    assert_eq!(back, [0x15, 3, 3, 0, 2, 2, 49]);
    assert_eq!(count.load(Ordering::SeqCst), 0);
    running.stop().await;
}

#[tokio::test]
async fn the_hello_is_replayed_byte_for_byte_and_half_closes_pass_through() {
    let (echo, _e) = wire::echo_server().await;
    let running = gateway(|a| a.transparent.transparent_connect_to = connect_s3_to(echo)).await;
    let mut sent = client_hello("bucket.s3.us-east-1.amazonaws.com");
    sent.extend(crate::support::pattern(300_000, 3));
    let mut s = TcpStream::connect(transparent_addr(&running)).await.expect("connect");
    let (mut r, mut w) = s.split();
    let reading = async {
        let mut back = Vec::new();
        r.read_to_end(&mut back).await.map(|_| back)
    };
    let writing = async {
        w.write_all(&sent).await?;
        // Our half-close reaches the echo server, which then closes, and that close comes back.
        w.shutdown().await
    };
    let (back, wrote) = tokio::time::timeout(Duration::from_secs(20), async { tokio::join!(reading, writing) })
        .await
        .expect("the splice ended after the half-close");
    wrote.expect("write");
    assert!(back.expect("read") == sent, "the echo differs from what was sent");
    running.stop().await;
}

#[tokio::test]
async fn an_idle_connection_is_closed() {
    let (silent, _s) = wire::silent_server().await;
    let running = gateway(|a| {
        a.transparent.transparent_connect_to = connect_s3_to(silent);
        a.transparent.transparent_idle_timeout = Some(1);
    })
    .await;
    let started = std::time::Instant::now();
    let back = send_hello(transparent_addr(&running), &client_hello("s3.us-east-1.amazonaws.com")).await;
    assert!(back.is_empty());
    let took = started.elapsed();
    assert!(took >= Duration::from_secs(1) && took < Duration::from_secs(5), "closed after {took:?}");
    running.stop().await;
}

#[tokio::test]
async fn every_connection_leaves_an_audit_record() {
    let (upstream, _count, _t) = wire::counting_server().await;
    let dir = tempfile::tempdir().expect("dir");
    let log = dir.path().join("audit.jsonl");
    let running = gateway(|a| {
        a.transparent.transparent_connect_to = connect_s3_to(upstream);
        a.audit_log = Some(log.display().to_string());
    })
    .await;
    let at = transparent_addr(&running);
    send_hello(at, &client_hello("photos.s3.us-east-1.amazonaws.com")).await;
    send_hello(at, &client_hello("example.com")).await;
    running.stop().await;
    let text = std::fs::read_to_string(&log).expect("audit log");
    let lines: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).expect("json")).collect();
    assert_eq!(lines.len(), 2, "{text}");
    let allowed = lines.iter().find(|l| l["status"] == 200).expect("the allowed connection");
    assert_eq!(allowed["mode"], "transparent");
    assert_eq!(allowed["bucket"], "photos");
    assert_eq!(allowed["destination"], "photos.s3.us-east-1.amazonaws.com:443");
    let refused = lines.iter().find(|l| l["status"] == 403).expect("the refused connection");
    assert_eq!(refused["destination"], "example.com:443");
    assert!(refused["error_code"].as_str().is_some_and(|r| r.contains("not in the allow list")), "{refused}");
}

#[tokio::test]
async fn shutdown_stops_accepting_and_cuts_a_splice_still_open_after_the_grace_period() {
    let (silent, _s) = wire::silent_server().await;
    let running = gateway(|a| a.transparent.transparent_connect_to = connect_s3_to(silent)).await;
    let at = transparent_addr(&running);
    let mut open = TcpStream::connect(at).await.expect("connect");
    open.write_all(&client_hello("s3.us-east-1.amazonaws.com")).await.expect("hello");
    // The splice is up once the metrics count it as open.
    let spliced = r#"s3gate_active_tunnels 1"#;
    for _ in 0..200 {
        if running.metrics.render().contains(spliced) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(running.metrics.render().contains(spliced), "the splice never opened");
    let started = std::time::Instant::now();
    running.stop().await;
    let took = started.elapsed();
    // `shutdown_grace` is 1 s in these tests: waited for, then cut.
    assert!(took >= Duration::from_millis(900) && took < Duration::from_secs(5), "stopped after {took:?}");
    let mut rest = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), open.read_to_end(&mut rest)).await.expect("closed");
    assert!(read.is_err() || rest.is_empty(), "{read:?}");
    assert!(TcpStream::connect(at).await.is_err(), "still accepting after shutdown");
}
