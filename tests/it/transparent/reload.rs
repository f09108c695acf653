//! A reload (what SIGHUP does) replaces the transparent listener's rules and the DNS
//! responder's answers for the connections and questions after it; a listener's address waits
//! for a restart and the reload says so, naming the key; a reload that cannot build its rules
//! (inspect mode's CA) changes nothing.

use std::collections::HashMap;
use std::sync::atomic::Ordering;

use s3gate::config::{Config, ServeArgs};

use super::dns::dig;
use super::{client_hello, connect_s3_to, send_hello};
use crate::forward::wire;

/// dig's answer section, its columns one space apart: `NAME TTL IN A ADDRESS`.
async fn answer(dns: std::net::SocketAddr, name: &str) -> String {
    let out = dig(dns, &[name, "A", "+noall", "+answer"]).await;
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Passed through: the endpoint's answer (the counting server's HTTP 200) comes back.
async fn spliced(running: &s3gate::Running, name: &str) -> bool {
    let back = send_hello(running.transparent_addr.expect("transparent"), &client_hello(name)).await;
    back.starts_with(b"HTTP/1.1 200")
}

/// Refused for its bucket: the `access_denied` alert.
async fn refused(running: &s3gate::Running, name: &str) -> bool {
    let back = send_hello(running.transparent_addr.expect("transparent"), &client_hello(name)).await;
    back == [0x15, 3, 3, 0, 2, 2, 49]
}

#[tokio::test]
async fn a_reload_replaces_the_bucket_list_and_the_dns_answers_and_names_what_needs_a_restart() {
    let (upstream, count, _t) = wire::counting_server().await;
    let env = HashMap::new();
    let mut args = ServeArgs { listen: Some("none".into()), shutdown_grace: Some(1), ..Default::default() };
    args.transparent.transparent_listen = Some("127.0.0.1:0".into());
    args.transparent.transparent_connect_timeout = Some(2);
    args.transparent.transparent_connect_to = connect_s3_to(upstream);
    args.transparent.transparent_allow_bucket = vec!["old-*".into()];
    args.dns.dns_listen = Some("127.0.0.1:0".into());
    args.dns.dns_answer = vec!["127.0.0.7".into()];
    args.dns.dns_ttl = Some(30);
    let running = s3gate::start(Config::load(&args, &env).expect("config")).await.expect("s3gate starts");
    let dns = running.dns_addr.expect("dns listener");
    let (old, new) = ("old-1.s3.us-east-1.amazonaws.com", "new-1.s3.us-east-1.amazonaws.com");
    assert!(spliced(&running, old).await, "the listed bucket is passed through");
    assert!(refused(&running, new).await, "an unlisted bucket is refused");
    let a = answer(dns, old).await;
    assert!(a.contains(" 30 IN A 127.0.0.7"), "{a}");

    // The bucket list turned over, another address and TTL for the S3 names.
    args.transparent.transparent_allow_bucket = vec!["new-*".into()];
    args.dns.dns_answer = vec!["127.0.0.9".into()];
    args.dns.dns_ttl = Some(45);
    let reloaded = running.reload(&args, &env).expect("the reload goes through");
    assert!(reloaded.needs_restart.is_empty(), "{:?}", reloaded.needs_restart);
    assert!(spliced(&running, new).await, "the bucket added is passed through");
    assert!(refused(&running, old).await, "the bucket removed is refused");
    let a = answer(dns, new).await;
    assert!(a.contains(" 45 IN A 127.0.0.9") && !a.contains("127.0.0.7"), "{a}");
    assert_eq!(count.load(Ordering::SeqCst), 2, "only the two allowed connections reached the endpoint");

    // Inspect mode with a CA that cannot be read: refused whole, the last rules stay.
    let mut broken = args.clone();
    broken.transparent.transparent_inspect = vec!["@aws-s3".into()];
    broken.transparent.inspect_ca_cert = Some("/nonexistent/ca.pem".into());
    broken.transparent.inspect_ca_key = Some("/nonexistent/ca.key".into());
    assert!(running.reload(&broken, &env).is_err(), "a reload whose CA cannot be read is refused");
    assert!(spliced(&running, new).await && refused(&running, old).await, "the last good rules stay");

    // New addresses wait for a restart, and say so; the rest of the reload still applies.
    args.transparent.transparent_listen = Some("127.0.0.2:0".into());
    args.dns.dns_listen = Some("127.0.0.2:0".into());
    args.transparent.transparent_allow_bucket = vec!["old-*".into()];
    let reloaded = running.reload(&args, &env).expect("the reload goes through");
    assert_eq!(reloaded.needs_restart, ["transparent_listen", "dns_listen"]);
    assert!(spliced(&running, old).await, "served where it was, under the new bucket list");
    running.stop().await;
}
