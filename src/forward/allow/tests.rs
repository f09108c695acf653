use super::*;

fn defaults() -> AllowList {
    AllowList {
        patterns: AllowList::parse_patterns(&[AWS_S3_TOKEN.to_owned()]).expect("defaults parse"),
        tunnel_ports: vec![443],
        http_ports: vec![80],
    }
}

fn dest(host: &str, port: u16) -> Destination {
    parse_destination(host, port).expect("destination")
}

#[test]
fn every_default_pattern_parses_as_a_name_pattern() {
    for p in AWS_S3_PATTERNS {
        assert!(matches!(HostPattern::parse(p), Ok(HostPattern::Name(_))), "{p}");
    }
}

#[test]
fn the_defaults_cover_s3_endpoint_names_in_every_partition() {
    let allow = defaults();
    for host in [
        "s3.amazonaws.com",
        "my-bucket.s3.amazonaws.com",
        "dotted.bucket.name.s3.amazonaws.com",
        "s3.eu-west-1.amazonaws.com",
        "my-bucket.s3.eu-west-1.amazonaws.com",
        "s3-eu-west-1.amazonaws.com",
        "my-bucket.s3-eu-west-1.amazonaws.com",
        "s3-external-1.amazonaws.com",
        "s3.dualstack.us-east-1.amazonaws.com",
        "my-bucket.s3.dualstack.us-east-1.amazonaws.com",
        "s3-fips.us-east-2.amazonaws.com",
        "my-bucket.s3-fips.us-east-2.amazonaws.com",
        "s3-fips.dualstack.us-east-2.amazonaws.com",
        "s3.us-gov-west-1.amazonaws.com",
        "s3-fips.us-gov-west-1.amazonaws.com",
        "ap-123456789012.s3-accesspoint.eu-west-1.amazonaws.com",
        "bucket.vpce-1a2b3c4d-5e6f.s3.us-east-1.vpce.amazonaws.com",
        "S3.Amazonaws.COM.",
        "s3.cn-north-1.amazonaws.com.cn",
        "my-bucket.s3.cn-northwest-1.amazonaws.com.cn",
        "s3.dualstack.cn-north-1.amazonaws.com.cn",
        "bucket.vpce-0abc.s3.cn-north-1.vpce.amazonaws.com.cn",
    ] {
        assert_eq!(allow.check(&dest(host, 443), Via::Tunnel), Ok(()), "{host}");
    }
}

#[test]
fn the_defaults_refuse_everything_else() {
    let allow = defaults();
    for host in [
        "example.com",
        "amazonaws.com",
        "ec2.us-east-1.amazonaws.com",
        "sts.amazonaws.com",
        "s3.amazonaws.com.evil.example",
        "evil-s3.amazonaws.com.example",
        "s3.amazonaws.co",
        "xs3.amazonaws.com",
        "localhost",
    ] {
        assert!(allow.check(&dest(host, 443), Via::Tunnel).is_err(), "{host}");
    }
}

#[test]
fn ports_are_checked_per_kind_of_traffic() {
    let allow = defaults();
    let err = allow.check(&dest("s3.amazonaws.com", 8443), Via::Tunnel).expect_err("8443");
    assert!(err.contains("port 8443"), "{err}");
    assert!(allow.check(&dest("s3.amazonaws.com", 80), Via::Tunnel).is_err(), "no CONNECT to 80");
    assert_eq!(allow.check(&dest("s3.amazonaws.com", 80), Via::PlainHttp), Ok(()));
    assert!(allow.check(&dest("s3.amazonaws.com", 443), Via::PlainHttp).is_err(), "no plain HTTP to 443");
}

#[test]
fn ip_literals_and_numeric_names_are_refused_unless_named() {
    let allow = defaults();
    for host in ["127.0.0.1", "[::1]", "169.254.169.254", "127.1", "2130706433", "0x7f000001", "10.0.0.1."] {
        let d = dest(host, 443);
        assert!(matches!(d.host, Host::Ip(_)), "{host} is an address");
        let err = allow.check(&d, Via::Tunnel).expect_err(host);
        assert!(err.contains("IP address"), "{host}: {err}");
    }
    let named = AllowList {
        patterns: AllowList::parse_patterns(&["127.0.0.1".into(), "::1".into(), "*".into()]).expect("parse"),
        tunnel_ports: vec![443],
        http_ports: vec![],
    };
    assert_eq!(named.check(&dest("127.0.0.1", 443), Via::Tunnel), Ok(()));
    assert_eq!(named.check(&dest("[::1]", 443), Via::Tunnel), Ok(()));
    assert!(named.check(&dest("127.0.0.2", 443), Via::Tunnel).is_err(), "`*` never matches an address");
}

#[test]
fn a_star_covers_one_or_more_whole_characters_of_labels() {
    let p = HostPattern::parse("*.example.com").expect("pattern");
    assert!(p.matches(&Host::Name("a.example.com".into())));
    assert!(p.matches(&Host::Name("a.b.example.com".into())));
    assert!(!p.matches(&Host::Name("example.com".into())));
    assert!(!p.matches(&Host::Name("aexample.com".into())));
    let p = HostPattern::parse("s3-*.example.com").expect("pattern");
    assert!(p.matches(&Host::Name("s3-x.example.com".into())));
    assert!(p.matches(&Host::Name("s3-fips.us-east-1.example.com".into())));
    assert!(!p.matches(&Host::Name("s3-.example.com".into())));
    let p = HostPattern::parse("s3.*.example.com").expect("pattern");
    assert!(p.matches(&Host::Name("s3.a.b.example.com".into())));
    assert!(!p.matches(&Host::Name("s3.example.com".into())));
}

#[test]
fn bad_patterns_and_hosts_are_refused() {
    for p in ["", "a..b", "http://x", "x/y", "*..com", "a b"] {
        assert!(HostPattern::parse(p).is_err(), "{p:?}");
    }
    for h in ["", "a..b", "x/y", "bad host", "[nonsense]", &"a".repeat(64)] {
        assert!(Host::parse(h).is_err(), "{h:?}");
    }
}

#[test]
fn destinations_print_as_host_and_port() {
    assert_eq!(dest("S3.amazonaws.com", 443).to_string(), "s3.amazonaws.com:443");
    assert_eq!(dest("[::1]", 443).to_string(), "[::1]:443");
}
