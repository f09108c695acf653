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
fn every_default_pattern_parses_as_the_name_pattern_it_is() {
    for p in aws_s3_patterns() {
        assert_eq!(HostPattern::parse(&p), Ok(HostPattern::Name(p.clone())), "{p}");
    }
}

#[test]
fn the_defaults_cover_s3_endpoint_names_in_every_partition() {
    let allow = defaults();
    for host in [
        "s3.amazonaws.com",
        "my-bucket.s3.amazonaws.com",
        "s3.eu-west-1.amazonaws.com",
        "s3.us-east-1.amazonaws.com",
        "bucket.s3.us-east-1.amazonaws.com",
        "my-bucket.s3.eu-west-1.amazonaws.com",
        "s3-eu-west-1.amazonaws.com",
        "s3-us-west-2.amazonaws.com",
        "my-bucket.s3-eu-west-1.amazonaws.com",
        "s3-external-1.amazonaws.com",
        "my-bucket.s3-external-1.amazonaws.com",
        "s3-fips-us-gov-west-1.amazonaws.com",
        "s3.dualstack.us-east-1.amazonaws.com",
        "my-bucket.s3.dualstack.us-east-1.amazonaws.com",
        "s3-fips.us-east-2.amazonaws.com",
        "my-bucket.s3-fips.us-east-2.amazonaws.com",
        "s3-fips.dualstack.us-east-2.amazonaws.com",
        "my-bucket.s3-fips.dualstack.us-east-2.amazonaws.com",
        "s3.us-gov-west-1.amazonaws.com",
        "s3-fips.us-gov-west-1.amazonaws.com",
        "s3.ap-southeast-7.amazonaws.com",
        "ap-123456789012.s3-accesspoint.eu-west-1.amazonaws.com",
        "ap-123456789012.s3-accesspoint.dualstack.eu-west-1.amazonaws.com",
        "ap-123456789012.s3-accesspoint-fips.us-east-1.amazonaws.com",
        "olap-123456789012.s3-object-lambda.us-east-1.amazonaws.com",
        "mfzwi23gnjvgw.mrap.accesspoint.s3-global.amazonaws.com",
        "ap-123456789012.op-01ac5d28a6a232904.s3-outposts.us-west-2.amazonaws.com",
        "123456789012.s3-control.us-east-1.amazonaws.com",
        "s3-control.us-east-1.amazonaws.com",
        "123456789012.s3-control-fips.dualstack.us-east-1.amazonaws.com",
        "my-site.s3-website-us-east-1.amazonaws.com",
        "my-site.s3-website.eu-central-1.amazonaws.com",
        "bucket.vpce-1a2b3c4d-5e6f.s3.us-east-1.vpce.amazonaws.com",
        "accesspoint.vpce-1a2b3c4d-5e6f.s3.us-east-1.vpce.amazonaws.com",
        "control.vpce-1a2b3c4d-5e6f.s3.us-east-1.vpce.amazonaws.com",
        "bucket.vpce-1a2b3c4d-5e6f-us-east-1a.s3.us-east-1.vpce.amazonaws.com",
        "S3.Amazonaws.COM.",
        "Bucket.S3.US-EAST-1.amazonaws.com.",
        "s3.amazonaws.com.cn",
        "s3.cn-north-1.amazonaws.com.cn",
        "my-bucket.s3.cn-northwest-1.amazonaws.com.cn",
        "s3.dualstack.cn-north-1.amazonaws.com.cn",
        "ap-123456789012.s3-accesspoint.cn-north-1.amazonaws.com.cn",
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
        "sts.us-east-1.amazonaws.com",
        "secretsmanager.us-east-1.amazonaws.com",
        "s3.amazonaws.com.evil.example",
        "evil-s3.amazonaws.com.example",
        "evil.com.s3.amazonaws.com.attacker.net",
        "s3.amazonaws.co",
        "xs3.amazonaws.com",
        "localhost",
        // Load balancers: their first label is whatever their owner named them.
        "s3-x-123.us-east-1.elb.amazonaws.com",
        "s3-anything-1234567890.eu-west-1.elb.amazonaws.com",
        "bucket.s3-x-123.us-east-1.elb.amazonaws.com",
        "s3.us-east-1.elb.amazonaws.com",
        "s3-x.elb.amazonaws.com",
        // Interface endpoints of other services, and PrivateLink services of other accounts.
        "vpce-0abc-def.sts.us-east-1.vpce.amazonaws.com",
        "vpce-0abc-def.secretsmanager.us-east-1.vpce.amazonaws.com",
        "vpce-0abc-def-us-east-1a.secretsmanager.us-east-1.vpce.amazonaws.com",
        "vpce-0abc-def.vpce-svc-0123456789abcdef0.us-east-1.vpce.amazonaws.com",
        "bucket.vpce-0abc.sts.us-east-1.vpce.amazonaws.com",
        "vpce-0abc.s3.us-east-1.vpce.amazonaws.com",
        "bucket.vpce-0abc.secretsmanager.cn-north-1.vpce.amazonaws.com.cn",
        // Region-shaped places that are not regions, and other labels where a region goes.
        "s3-x-123.amazonaws.com",
        "s3.elb.amazonaws.com",
        "bucket.s3.compute-1.amazonaws.com",
        "s3-fips.us-east-1.amazonaws.com.cn",
        // One label per `*`: a dotted bucket name is more than one.
        "dotted.bucket.name.s3.amazonaws.com",
        "a.b.s3.us-east-1.amazonaws.com",
    ] {
        let err = allow.check(&dest(host, 443), Via::Tunnel).expect_err(host);
        assert!(err.contains("not in the allow list"), "{host}: {err}");
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

fn name(n: &str) -> Host {
    match Host::parse(n) {
        Ok(h @ Host::Name(_)) => h,
        other => panic!("{n} is not a name: {other:?}"),
    }
}

#[test]
fn a_star_matches_within_exactly_one_label() {
    let p = HostPattern::parse("*.example.com").expect("pattern");
    assert!(p.matches(&name("a.example.com")));
    assert!(!p.matches(&name("a.b.example.com")), "two labels");
    assert!(!p.matches(&name("example.com")));
    assert!(!p.matches(&name("aexample.com")));
    let p = HostPattern::parse("s3-*.example.com").expect("pattern");
    assert!(p.matches(&name("s3-x.example.com")));
    assert!(p.matches(&name("s3-fips-a-b.example.com")));
    assert!(!p.matches(&name("s3-fips.us-east-1.example.com")), "a star never covers a dot");
    assert!(!p.matches(&name("s3-.example.com")), "a star is never empty");
    let p = HostPattern::parse("s3.*.example.com").expect("pattern");
    assert!(p.matches(&name("s3.a.example.com")));
    assert!(!p.matches(&name("s3.a.b.example.com")));
    assert!(!p.matches(&name("s3.example.com")));
    let p = HostPattern::parse("*").expect("pattern");
    assert!(p.matches(&name("localhost")));
    assert!(!p.matches(&name("example.com")), "a lone star is one label, not every name");
    let p = HostPattern::parse("*.*.example.com").expect("pattern");
    assert!(p.matches(&name("a.b.example.com")));
    assert!(!p.matches(&name("a.example.com")));
    let p = HostPattern::parse("a*b*c.example.com").expect("pattern");
    assert!(p.matches(&name("axbyc.example.com")));
    assert!(p.matches(&name("abbbc.example.com")));
    assert!(!p.matches(&name("abc.example.com")));
    assert!(!p.matches(&name("ax.byc.example.com")));
}

#[test]
fn user_patterns_follow_the_same_rules_and_may_name_a_region() {
    let allow = AllowList {
        patterns: AllowList::parse_patterns(&["*.minio.internal".into(), "s3.{region}.example.net".into()])
            .expect("parse"),
        tunnel_ports: vec![443],
        http_ports: vec![],
    };
    assert_eq!(allow.check(&dest("bucket.minio.internal", 443), Via::Tunnel), Ok(()));
    assert_eq!(allow.check(&dest("BUCKET.Minio.Internal.", 443), Via::Tunnel), Ok(()));
    assert!(allow.check(&dest("a.bucket.minio.internal", 443), Via::Tunnel).is_err());
    assert!(allow.check(&dest("minio.internal", 443), Via::Tunnel).is_err());
    assert_eq!(allow.check(&dest("s3.eu-central-2.example.net", 443), Via::Tunnel), Ok(()));
    assert!(allow.check(&dest("s3.internal-1.example.net", 443), Via::Tunnel).is_err());
    assert!(allow.check(&dest("s3.x.us-east-1.example.net", 443), Via::Tunnel).is_err());
}

#[test]
fn a_region_is_two_letters_words_and_a_number() {
    for r in ["us-east-1", "us-gov-west-1", "us-isob-east-1", "cn-northwest-1", "ap-southeast-7", "il-central-1"] {
        assert!(is_region(r.as_bytes()), "{r}");
    }
    for r in ["external-1", "us-east", "us--1", "us-east-123", "use-east-1", "us-east-1a", "x-123", "us-ea5t-1", ""] {
        assert!(!is_region(r.as_bytes()), "{r}");
    }
    let p = HostPattern::parse("s3-{region}.example.com").expect("pattern");
    assert!(p.matches(&name("s3-us-west-2.example.com")));
    assert!(!p.matches(&name("s3-x-123.example.com")));
    assert!(!p.matches(&name("s3-us-west-2.elb.example.com")));
}

#[test]
fn bad_patterns_and_hosts_are_refused() {
    for p in ["", "a..b", "http://x", "x/y", "*..com", "a b", "{region", "s3.{regions}.com", "*.1"] {
        assert!(HostPattern::parse(p).is_err(), "{p:?}");
    }
    // A label that only a name longer than DNS allows could match (found by fuzzing).
    let too_long = format!("s3.{}{{region}}.com", "d".repeat(55));
    assert!(HostPattern::parse(&too_long).is_err(), "{too_long}");
    for h in ["", "a..b", "x/y", "bad host", "[nonsense]", &"a".repeat(64)] {
        assert!(Host::parse(h).is_err(), "{h:?}");
    }
}

#[test]
fn destinations_print_as_host_and_port() {
    assert_eq!(dest("S3.amazonaws.com", 443).to_string(), "s3.amazonaws.com:443");
    assert_eq!(dest("[::1]", 443).to_string(), "[::1]:443");
}
