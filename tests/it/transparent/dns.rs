//! The DNS responder against `dig`, with dnsmasq as the site's resolver behind it: A and AAAA
//! for the S3 names from s3gate, everything else from upstream as it answered (CNAME chains,
//! TTLs, NXDOMAIN), TCP, truncation and the fallback to TCP, and REFUSED for other networks.

use std::net::SocketAddr;
use std::process::Stdio;

use super::gateway;
use crate::forward::clients::find_tool;

/// dnsmasq on a free port on 127.0.0.1, serving only the records given, nothing else.
pub struct Dnsmasq {
    pub addr: SocketAddr,
    child: tokio::process::Child,
}

impl Dnsmasq {
    pub async fn start() -> Dnsmasq {
        // A port free for UDP may be taken for TCP (the other tests' listeners): dnsmasq then
        // exits at once, and another port is tried.
        for _ in 0..5 {
            if let Some(started) = Self::try_start().await {
                return started;
            }
        }
        panic!("dnsmasq did not start on any of 5 ports");
    }

    async fn try_start() -> Option<Dnsmasq> {
        // A free port for UDP: bound, noted, released.
        let probe = std::net::UdpSocket::bind("127.0.0.1:0").expect("probe");
        let port = probe.local_addr().expect("addr").port();
        drop(probe);
        let long_txt: Vec<String> =
            (0..12).map(|i| format!("--txt-record=big.site.test,{}", "x".repeat(200 + i))).collect();
        let mut child = tokio::process::Command::new(find_tool("dnsmasq"))
            .args([
                "--keep-in-foreground",
                "--no-resolv",
                "--no-hosts",
                "--bind-interfaces",
                "--listen-address=127.0.0.1",
                "--pid-file",
                "--log-facility=-",
                "--local=/site.test/",
                "--local-ttl=77",
                "--host-record=db.site.test,192.0.2.10,2001:db8::10",
                "--cname=www.site.test,web.site.test",
                "--cname=web.site.test,db.site.test",
                // An S3 name the site resolves to an address that is s3gate's own answer.
                "--host-record=loop.s3.us-east-1.amazonaws.com,127.0.0.7",
            ])
            .arg(format!("--port={port}"))
            .args(&long_txt)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("dnsmasq starts (scripts/install-test-deps.sh installs it)");
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        // Ready when it answers over TCP.
        for _ in 0..200 {
            if tokio::net::TcpStream::connect(addr).await.is_ok() {
                return Some(Dnsmasq { addr, child });
            }
            if child.try_wait().ok().flatten().is_some() {
                return None;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("dnsmasq did not answer on {addr} within 10 s");
    }
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

/// `dig @at -p PORT args +noall +answer +comments`: its output.
pub(super) async fn dig(at: SocketAddr, args: &[&str]) -> String {
    let out = tokio::process::Command::new(find_tool("dig"))
        .arg(format!("@{}", at.ip()))
        .args(["-p", &at.port().to_string(), "+time=5", "+tries=1"])
        .args(args)
        .output()
        .await
        .expect("dig runs (bind9-dnsutils)");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// s3gate's responder in front of dnsmasq.
async fn responder(upstream: SocketAddr, sources: &[&str]) -> s3gate::Running {
    gateway(|a| {
        a.transparent.transparent_listen = None;
        a.transparent.transparent_connect_timeout = None;
        a.dns.dns_listen = Some("127.0.0.1:0".into());
        a.dns.dns_answer = vec!["127.0.0.7".into(), "127.0.0.8".into(), "fd00::7".into()];
        a.dns.dns_upstream = vec![upstream.to_string()];
        a.dns.dns_allowed_source_subnet = sources.iter().map(|s| s.to_string()).collect();
        a.dns.dns_ttl = Some(30);
    })
    .await
}

#[tokio::test]
async fn s3_names_are_answered_by_s3gate_and_the_rest_by_upstream() {
    let site = Dnsmasq::start().await;
    let running = responder(site.addr, &[]).await;
    let at = running.dns_addr.expect("dns listener");

    let a = dig(at, &["s3.us-east-1.amazonaws.com", "A", "+noall", "+answer"]).await;
    assert!(a.contains("30\tIN\tA\t127.0.0.7") && a.contains("30\tIN\tA\t127.0.0.8"), "A:\n{a}");
    let aaaa = dig(at, &["Bucket.S3.us-east-1.amazonaws.com", "AAAA", "+noall", "+answer"]).await;
    assert!(aaaa.contains("AAAA") && aaaa.contains("fd00::7"), "AAAA of a virtual-hosted name:\n{aaaa}");
    assert!(!aaaa.contains("127.0.0."), "{aaaa}");

    // Not an S3 name: the upstream's answer, its CNAME chain and TTLs as they were.
    let chain = dig(at, &["www.site.test", "A", "+noall", "+answer"]).await;
    for line in [
        "www.site.test.\t\t77\tIN\tCNAME\tweb.site.test.",
        "web.site.test.\t\t77\tIN\tCNAME\tdb.site.test.",
        "db.site.test.\t\t77\tIN\tA\t192.0.2.10",
    ] {
        assert!(chain.contains(line), "{line:?} missing from\n{chain}");
    }
    let v6 = dig(at, &["db.site.test", "AAAA", "+short"]).await;
    assert_eq!(v6.trim(), "2001:db8::10");
    let missing = dig(at, &["nothing.site.test", "A"]).await;
    assert!(missing.contains("status: NXDOMAIN"), "{missing}");
    // A name one label deeper than the S3 grammar is not s3gate's: forwarded (and unknown).
    let deep = dig(at, &["a.b.s3.us-east-1.amazonaws.com", "A", "+noall", "+answer"]).await;
    assert!(!deep.contains("127.0.0.7"), "{deep}");
    running.stop().await;
}

#[tokio::test]
async fn large_answers_are_truncated_over_udp_and_whole_over_tcp() {
    let site = Dnsmasq::start().await;
    let running = responder(site.addr, &[]).await;
    let at = running.dns_addr.expect("dns listener");
    // Without EDNS a UDP answer holds 512 bytes: TC set, nothing else.
    let udp = dig(at, &["big.site.test", "TXT", "+noedns", "+ignore", "+noall", "+comments"]).await;
    assert!(udp.contains(" tc"), "no TC flag:\n{udp}");
    // dig's own fallback: the same question again over TCP, answered whole.
    let fallback = dig(at, &["big.site.test", "TXT", "+noedns", "+noall", "+answer"]).await;
    assert_eq!(fallback.lines().filter(|l| l.contains("TXT")).count(), 12, "{fallback}");
    let tcp = dig(at, &["+tcp", "s3.amazonaws.com", "A", "+short"]).await;
    assert!(tcp.contains("127.0.0.7"), "{tcp}");
    running.stop().await;
}

#[tokio::test]
async fn clients_outside_the_allowed_networks_are_refused() {
    let site = Dnsmasq::start().await;
    let running = responder(site.addr, &["10.0.0.0/8"]).await;
    let at = running.dns_addr.expect("dns listener");
    for name in ["s3.us-east-1.amazonaws.com", "www.site.test"] {
        for transport in ["+notcp", "+tcp"] {
            let out = dig(at, &[name, "A", transport]).await;
            assert!(out.contains("status: REFUSED"), "{name} {transport}:\n{out}");
            assert!(!out.contains("192.0.2.10") && !out.contains("127.0.0.7"), "{out}");
        }
    }
    running.stop().await;
}

#[tokio::test]
async fn the_passthrough_resolves_through_the_upstream_and_refuses_a_loop_to_itself() {
    let site = Dnsmasq::start().await;
    let dir = tempfile::tempdir().expect("dir");
    let log = dir.path().join("audit.jsonl");
    let running = gateway(|a| {
        a.dns.dns_listen = Some("127.0.0.1:0".into());
        a.dns.dns_answer = vec!["127.0.0.7".into()];
        a.dns.dns_upstream = vec![site.addr.to_string()];
        a.audit_log = Some(log.display().to_string());
    })
    .await;
    // The site's resolver says the name is s3gate (127.0.0.7): dialling it would loop.
    let hello = super::client_hello("loop.s3.us-east-1.amazonaws.com");
    let back = super::send_hello(running.transparent_addr.expect("transparent"), &hello).await;
    assert_eq!(back, [0x15, 3, 3, 0, 2, 2, 80], "an internal_error alert");
    let metrics = running.metrics.render();
    assert!(
        metrics.contains(
            r#"s3gate_requests_total{action="transparent:passthrough",mode="transparent",status_class="5xx"} 1"#
        ),
        "{metrics}"
    );
    running.stop().await;
    let audit = std::fs::read_to_string(&log).expect("audit log");
    assert!(audit.contains("resolves to s3gate itself"), "{audit}");
}
