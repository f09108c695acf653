//! The transparent and DNS options: flag > environment > `[transparent]`/`[dns]` table >
//! default, `listen = none` for transparent mode alone, and clear refusals of what would
//! otherwise be silently ignored or unsafe.

use std::collections::HashMap;
use std::time::Duration;

use s3gate::config::{Config, ServeArgs};

fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn load(args: &ServeArgs, e: &HashMap<String, String>, file: Option<&str>) -> Result<Config, String> {
    Config::resolve(args, e, file).and_then(Config::validate).map_err(|err| err.to_string())
}

#[test]
fn precedence_is_flag_then_env_then_file_then_default() {
    let file = r#"
        listen = "none"
        [transparent]
        listen = "127.0.0.1:8443"
        allow_bucket = ["file-*"]
        idle_timeout = 60
        connect_to = ["*.s3.amazonaws.com=10.0.12.34"]
        [dns]
        listen = "127.0.0.1:5353"
        answer = ["10.0.5.10", "fd00::10"]
        upstream = ["10.0.0.2", "10.0.0.3:5300"]
        ttl = 20
    "#;
    let mut args = ServeArgs::default();
    args.transparent.transparent_allow_bucket = vec!["flag-*".into()];
    let e = env(&[("S3GATE_TRANSPARENT_IDLE_TIMEOUT", "30"), ("S3GATE_DNS_TTL", "10")]);
    let cfg = load(&args, &e, Some(file)).expect("valid");
    assert!(!cfg.endpoint, "listen = none: transparent mode alone, with no client credentials");
    let t = cfg.transparent.expect("the passthrough listener is on");
    assert_eq!(t.listen.to_string(), "127.0.0.1:8443");
    assert_eq!(t.names.buckets, ["flag-*"], "the flag wins");
    assert_eq!(t.idle_timeout, Duration::from_secs(30), "env beats the file");
    assert_eq!(t.connect_to[0].to_string(), "*.s3.amazonaws.com=10.0.12.34");
    assert_eq!(t.connect_timeout, Duration::from_secs(10), "default");
    assert!(t.names.patterns.iter().any(|p| p.to_string() == "*.s3.{region}.amazonaws.com"), "@aws-s3 by default");
    let d = cfg.dns.expect("the responder is on");
    assert_eq!(d.ttl, 10);
    assert_eq!(d.answers.iter().map(ToString::to_string).collect::<Vec<_>>(), ["10.0.5.10", "fd00::10"]);
    assert_eq!(d.upstreams.iter().map(ToString::to_string).collect::<Vec<_>>(), ["10.0.0.2:53", "10.0.0.3:5300"]);
    assert_eq!(cfg.resolvers, d.upstreams, "the passthrough resolves through the same resolvers");
    assert!(
        d.sources.contains("127.0.0.1".parse().expect("ip")) && !d.sources.contains("10.1.1.1".parse().expect("ip")),
        "loopback only, unless networks are given"
    );
}

#[test]
fn options_without_their_listener_and_unsafe_values_are_refused() {
    let cases: &[(&[(&str, &str)], &str)] = &[
        (&[("S3GATE_TRANSPARENT_ALLOW_BUCKET", "b")], "transparent-allow-bucket is set but transparent-listen is not"),
        (&[("S3GATE_DNS_ANSWER", "10.0.0.1")], "dns-answer is set but dns-listen is not"),
        (&[("S3GATE_DNS_LISTEN", "127.0.0.1:53")], "dns-answer is not"),
        (&[("S3GATE_DNS_LISTEN", "127.0.0.1:53"), ("S3GATE_DNS_ANSWER", "s3gate.internal")], "not an IP address"),
        (
            &[
                ("S3GATE_DNS_LISTEN", "127.0.0.1:53"),
                ("S3GATE_DNS_ANSWER", "10.0.0.1"),
                ("S3GATE_DNS_UPSTREAM", "resolver"),
            ],
            "dns-upstream",
        ),
        (
            &[
                ("S3GATE_DNS_LISTEN", "127.0.0.1:53"),
                ("S3GATE_DNS_ANSWER", "10.0.0.1"),
                ("S3GATE_DNS_ALLOWED_SOURCE_SUBNET", "10.0.0.0/33"),
            ],
            "dns-allowed-source-subnet",
        ),
        (
            &[("S3GATE_TRANSPARENT_LISTEN", "127.0.0.1:443"), ("S3GATE_TRANSPARENT_ALLOW_BUCKET", "a/b")],
            "not a bucket pattern",
        ),
        (
            &[("S3GATE_TRANSPARENT_LISTEN", "127.0.0.1:443"), ("S3GATE_TRANSPARENT_ALLOW", "bad name.example")],
            "transparent-allow",
        ),
        (&[("S3GATE_TRANSPARENT_LISTEN", "443")], "transparent-listen: not an address"),
    ];
    for (vars, want) in cases {
        let mut all = vec![("S3GATE_CREDENTIALS", "A:1")];
        all.extend_from_slice(vars);
        let err = load(&ServeArgs::default(), &env(&all), None).expect_err(want);
        assert!(err.contains(want), "{vars:?}: {err}");
    }
}

#[test]
fn listen_none_with_only_the_dns_responder_serves() {
    let e = env(&[("S3GATE_LISTEN", "none"), ("S3GATE_DNS_LISTEN", "127.0.0.1:0"), ("S3GATE_DNS_ANSWER", "10.0.0.1")]);
    let cfg = load(&ServeArgs::default(), &e, None).expect("valid");
    assert!(!cfg.endpoint && cfg.transparent.is_none() && cfg.dns.is_some());
    let err = load(&ServeArgs::default(), &env(&[("S3GATE_LISTEN", "none")]), None).expect_err("nothing");
    assert!(err.contains("nothing to serve"), "{err}");
}
