//! The forward-proxy options: flag > environment > `[forward]` table > default, `listen = none`
//! for a proxy alone, and clear refusals of what would otherwise be silently ignored.

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
        credentials = ["A:1"]
        [forward]
        listen = "127.0.0.1:3128"
        allow = ["file.example"]
        allow_port = [443, 8443]
        idle_timeout = 60
        max_tunnels = 7
    "#;
    let mut args = ServeArgs::default();
    args.forward.forward_allow = vec!["flag.example".into()];
    let e = env(&[("S3GATE_FORWARD_IDLE_TIMEOUT", "30"), ("S3GATE_FORWARD_ALLOW", "env.example")]);
    let cfg = load(&args, &e, Some(file)).expect("valid");
    assert!(cfg.endpoint, "the endpoint still runs");
    let fwd = cfg.forward.expect("the forward proxy is on");
    assert_eq!(fwd.listen.to_string(), "127.0.0.1:3128");
    let patterns: Vec<String> = fwd.allow.patterns.iter().map(ToString::to_string).collect();
    assert_eq!(patterns, ["flag.example"], "the flag wins");
    assert_eq!(fwd.idle_timeout, Duration::from_secs(30), "env beats the file");
    assert_eq!(fwd.allow.tunnel_ports, [443, 8443], "the file beats the default");
    assert_eq!(fwd.max_tunnels, 7);
    assert_eq!(fwd.allow.http_ports, [80], "default");
    assert_eq!(fwd.connect_timeout, Duration::from_secs(10), "default");
}

#[test]
fn the_default_allow_list_is_aws_s3_and_can_be_extended() {
    let e = env(&[("S3GATE_FORWARD_LISTEN", "127.0.0.1:3128"), ("S3GATE_CREDENTIALS", "A:1")]);
    let fwd = load(&ServeArgs::default(), &e, None).expect("valid").forward.expect("on");
    let patterns: Vec<String> = fwd.allow.patterns.iter().map(ToString::to_string).collect();
    assert!(patterns.contains(&"*.s3.{region}.amazonaws.com".to_owned()), "{patterns:?}");
    assert!(patterns.contains(&"*.vpce-*.s3.{region}.vpce.amazonaws.com.cn".to_owned()), "{patterns:?}");
    for every_privatelink_service in ["*.vpce.amazonaws.com", "*.vpce.amazonaws.com.cn"] {
        assert!(!patterns.contains(&every_privatelink_service.to_owned()), "{patterns:?}");
    }
    assert_eq!(fwd.allow.tunnel_ports, [443]);

    let e = env(&[
        ("S3GATE_FORWARD_LISTEN", "127.0.0.1:3128"),
        ("S3GATE_CREDENTIALS", "A:1"),
        ("S3GATE_FORWARD_ALLOW", "@aws-s3, minio.internal"),
        ("S3GATE_FORWARD_ALLOW_HTTP_PORT", "none"),
        ("S3GATE_FORWARD_CONNECT_TO", "*.amazonaws.com=10.0.1.5,minio.internal=10.0.2.9:9000"),
        ("S3GATE_FORWARD_USER", "alice:pw-sesame-1,bob:pw-sesame-2"),
    ]);
    let fwd = load(&ServeArgs::default(), &e, None).expect("valid").forward.expect("on");
    let patterns: Vec<String> = fwd.allow.patterns.iter().map(ToString::to_string).collect();
    assert_eq!(patterns.last().map(String::as_str), Some("minio.internal"));
    assert!(patterns.len() > 10, "@aws-s3 expands to the defaults: {patterns:?}");
    assert!(fwd.allow.http_ports.is_empty(), "`none` turns plain HTTP off");
    assert_eq!(fwd.connect_to.len(), 2);
    assert_eq!(fwd.users.len(), 2);
    assert!(!format!("{fwd:?}").contains("sesame"), "passwords never print");
}

#[test]
fn listen_none_runs_the_proxy_alone_without_client_credentials() {
    let mut args = ServeArgs { listen: Some("none".into()), ..Default::default() };
    args.forward.forward_listen = Some("127.0.0.1:3128".into());
    let cfg = load(&args, &HashMap::new(), None).expect("a proxy alone needs no S3 credentials");
    assert!(!cfg.endpoint);
    assert!(cfg.forward.is_some());

    let err = load(&ServeArgs { listen: Some("none".into()), ..Default::default() }, &HashMap::new(), None)
        .expect_err("nothing to serve");
    assert!(err.contains("nothing to serve"), "{err}");
    let mut args = ServeArgs::default();
    args.forward.forward_listen = Some("127.0.0.1:3128".into());
    let err = load(&args, &HashMap::new(), None).expect_err("the endpoint still needs credentials");
    assert!(err.contains("--listen none"), "{err}");
}

/// Environment pairs of a case.
type Env = &'static [(&'static str, &'static str)];

#[test]
fn bad_or_stray_forward_options_are_refused() {
    let cases: &[(Env, Option<&str>, &str)] = &[
        (&[("S3GATE_FORWARD_ALLOW", "example.com")], None, "forward-allow is set but forward-listen is not"),
        (&[], Some("[forward]\nidle_timeout = 5"), "forward-idle-timeout is set"),
        (&[], Some("[forward]\nlisten = \"127.0.0.1:3128\"\nlisen = 1"), "lisen"),
        (&[("S3GATE_FORWARD_LISTEN", "nowhere")], None, "forward-listen"),
        (&[("S3GATE_FORWARD_LISTEN", "127.0.0.1:1"), ("S3GATE_FORWARD_ALLOW", "a..b")], None, "forward-allow"),
        (&[("S3GATE_FORWARD_LISTEN", "127.0.0.1:1"), ("S3GATE_FORWARD_ALLOW_PORT", "https")], None, "allow-port"),
        (&[("S3GATE_FORWARD_LISTEN", "127.0.0.1:1"), ("S3GATE_FORWARD_CONNECT_TO", "x")], None, "connect-to"),
        (&[("S3GATE_FORWARD_LISTEN", "127.0.0.1:1"), ("S3GATE_FORWARD_USER", "nopassword")], None, "NAME:PASSWORD"),
        (&[("S3GATE_FORWARD_LISTEN", "127.0.0.1:1"), ("S3GATE_FORWARD_MAX_TUNNELS", "0")], None, "max-tunnels"),
        (&[("S3GATE_FORWARD_LISTEN", "127.0.0.1:1"), ("S3GATE_FORWARD_IDLE_TIMEOUT", "soon")], None, "IDLE_TIMEOUT"),
    ];
    for (pairs, file, needle) in cases {
        let mut e = env(pairs);
        e.insert("S3GATE_CREDENTIALS".into(), "A:1".into());
        let err = load(&ServeArgs::default(), &e, *file).expect_err("invalid");
        assert!(err.contains(needle), "{pairs:?} {file:?}: {err}");
    }
}

#[test]
fn the_example_config_file_turns_the_proxy_on() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/s3gate.toml");
    let (_dir, path) = crate::support::private_copy(example.as_ref());
    let args = ServeArgs { config: Some(path), ..Default::default() };
    let cfg = Config::load(&args, &HashMap::new()).expect("the example loads");
    let fwd = cfg.forward.expect("the example sets [forward] listen");
    assert_eq!(fwd.listen.port(), 3128);
    assert_eq!(fwd.idle_timeout, Duration::from_secs(300));
}
