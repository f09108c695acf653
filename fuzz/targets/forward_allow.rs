//! The forward proxy's destination parsing (`forward::allow::Host`, `parse_destination`) and
//! its match against the default allow list (`@aws-s3`), plus host pattern parsing.
//!
//! Input: a host as a client names it in `CONNECT host:443` or an absolute-form URI.
//!
//! Checks: a parsed name is normalised (lower case, no trailing dot, valid labels, at most 253
//! bytes) and parses to itself; case and one trailing dot do not change the answer; an IP, or
//! anything a resolver could read as one, never matches the default list, and what does match it
//! is an AWS name; a destination printed for a log parses back. The input as a host pattern, if
//! accepted, matches the host it was validated with.

use s3gate::forward::allow::{parse_destination, AllowList, Host, HostPattern, Via, AWS_S3_TOKEN};

fn check_name(name: &str) {
    assert!(!name.is_empty() && name.len() <= 253, "name of {} bytes", name.len());
    assert!(!name.ends_with('.') && name == name.to_ascii_lowercase());
    for label in name.split('.') {
        assert!(!label.is_empty() && label.len() <= 63, "label {label:?}");
        assert!(label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'), "label {label:?}");
    }
}

/// One input, checked as described above; panics on a failed check.
pub fn run(input: &[u8]) {
    thread_local! {
        static DEFAULTS: AllowList = AllowList {
            patterns: AllowList::parse_patterns(&[AWS_S3_TOKEN.to_owned()]).expect("the default list parses"),
            tunnel_ports: vec![443],
            http_ports: vec![80],
        };
    }
    let Ok(text) = std::str::from_utf8(input) else {
        return;
    };
    let parsed = Host::parse(text);
    match &parsed {
        Ok(Host::Name(name)) => {
            check_name(name);
            assert_eq!(Host::parse(name).as_ref(), Ok(parsed.as_ref().expect("ok")));
        }
        Ok(Host::Ip(ip)) => {
            assert_eq!(Host::parse(ip).as_ref().ok(), parsed.as_ref().ok(), "{ip:?} re-parsed");
        }
        Err(_) => {}
    }
    assert_eq!(Host::parse(&text.to_ascii_uppercase()).ok(), parsed.clone().ok(), "case changed the answer");
    if !text.ends_with('.') && !text.starts_with('[') {
        let dotted = Host::parse(&format!("{text}."));
        if let (Ok(a), Ok(b)) = (&dotted, &parsed) {
            assert_eq!(a, b, "a trailing dot changed the host");
        }
    }

    if let Ok(dest) = parse_destination(text, 443) {
        let allowed = DEFAULTS.with(|list| list.check(&dest, Via::Tunnel).is_ok());
        if allowed {
            let Host::Name(name) = &dest.host else {
                panic!("an IP destination passed the default list: {dest}");
            };
            assert!(
                name.ends_with(".amazonaws.com") || name.ends_with(".amazonaws.com.cn") || name == "s3.amazonaws.com"
            );
        }
        let printed = dest.to_string();
        let (host, port) = printed.rsplit_once(':').expect("host:port");
        assert_eq!(parse_destination(host, port.parse().expect("a port")).as_ref(), Ok(&dest), "printed as {printed}");
        assert!(DEFAULTS.with(|list| list.check(&dest, Via::PlainHttp).is_err()), "port 443 allowed for plain HTTP");
    }

    if let Ok(HostPattern::Name(pattern)) = HostPattern::parse(text) {
        let sample = text.trim().replace('*', "x").replace("{region}", "us-east-1");
        let host = Host::parse(&sample).expect("a pattern is validated with its sample");
        assert!(HostPattern::Name(pattern.clone()).matches(&host), "{pattern:?} does not match {sample:?}");
    }
}
