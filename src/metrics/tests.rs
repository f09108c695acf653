use std::collections::BTreeMap;
use std::time::Duration;

use super::{Metrics, Mode, REQUEST_COUNTERS_PER_THREAD};

/// The exposition as `series -> value` (`name{labels}` exactly as written), and its comments.
pub(crate) struct Exposition {
    samples: BTreeMap<String, String>,
    comments: Vec<String>,
}

pub(crate) fn parse(text: &str) -> Exposition {
    let mut samples = BTreeMap::new();
    let mut comments = Vec::new();
    for line in text.lines() {
        if line.starts_with('#') {
            comments.push(line.to_owned());
        } else if !line.is_empty() {
            let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("not a sample line: {line:?}"));
            assert!(samples.insert(series.to_owned(), value.to_owned()).is_none(), "duplicate series {series}");
        }
    }
    Exposition { samples, comments }
}

impl Exposition {
    pub(crate) fn value(&self, series: &str) -> &str {
        self.samples.get(series).map(String::as_str).unwrap_or_else(|| {
            let names: Vec<_> = self.samples.keys().collect();
            panic!("no sample {series}; have {names:#?}")
        })
    }

    fn has_type(&self, name: &str, kind: &str) -> bool {
        self.comments.contains(&format!("# TYPE {name} {kind}"))
            && self.comments.iter().any(|c| c.starts_with(&format!("# HELP {name} ")))
    }
}

pub(crate) fn known_sequence() -> Metrics {
    let m = Metrics::new();
    let ms = Duration::from_millis;
    m.request_finished(Mode::Endpoint, "s3:GetObject", 200, ms(3), 0, 1000);
    m.request_finished(Mode::Endpoint, "s3:GetObject", 206, ms(40), 0, 24);
    m.request_finished(Mode::Endpoint, "s3:PutObject", 403, ms(2), 512, 300);
    m.request_finished(Mode::Endpoint, "s3:ListBucket", 503, Duration::from_secs(90), 0, 0);
    m.request_finished(Mode::Forward, "s3:GetObject", 200, ms(7), 10, 20);
    m.upstream_error("connect");
    m.upstream_error("timeout");
    m.upstream_error("timeout");
    m.upstream_error("dns hiccup");
    m.auth_failure("SignatureDoesNotMatch");
    m.auth_failure("SignatureDoesNotMatch");
    m.auth_failure("InvalidAccessKeyId");
    m.policy_denied("s3:PutObject");
    m.network_denied(Mode::Endpoint, "source_subnet");
    m.network_denied(Mode::Forward, "endpoint");
    m.credential_refresh(true);
    m.credential_refresh(false);
    m.credential_refresh(true);
    m.connection_refused(Mode::Endpoint);
    m.connection_refused(Mode::Endpoint);
    m.config_reloaded(true);
    m.config_reloaded(false);
    m.config_reloaded(true);
    m
}

#[test]
fn render_after_a_known_sequence() {
    let text = known_sequence().render();
    let e = parse(&text);
    let expect = [
        (r#"s3gate_requests_total{action="s3:GetObject",mode="endpoint",status_class="2xx"}"#, "2"),
        (r#"s3gate_requests_total{action="s3:PutObject",mode="endpoint",status_class="4xx"}"#, "1"),
        (r#"s3gate_requests_total{action="s3:ListBucket",mode="endpoint",status_class="5xx"}"#, "1"),
        (r#"s3gate_requests_total{action="s3:GetObject",mode="forward",status_class="2xx"}"#, "1"),
        (r#"s3gate_received_bytes_total{mode="endpoint"}"#, "512"),
        (r#"s3gate_received_bytes_total{mode="forward"}"#, "10"),
        (r#"s3gate_sent_bytes_total{mode="endpoint"}"#, "1324"),
        (r#"s3gate_sent_bytes_total{mode="forward"}"#, "20"),
        (r#"s3gate_request_duration_seconds_bucket{mode="endpoint",le="0.001"}"#, "0"),
        (r#"s3gate_request_duration_seconds_bucket{mode="endpoint",le="0.0025"}"#, "1"),
        (r#"s3gate_request_duration_seconds_bucket{mode="endpoint",le="0.005"}"#, "2"),
        (r#"s3gate_request_duration_seconds_bucket{mode="endpoint",le="0.05"}"#, "3"),
        (r#"s3gate_request_duration_seconds_bucket{mode="endpoint",le="60"}"#, "3"),
        (r#"s3gate_request_duration_seconds_bucket{mode="endpoint",le="+Inf"}"#, "4"),
        (r#"s3gate_request_duration_seconds_count{mode="endpoint"}"#, "4"),
        (r#"s3gate_request_duration_seconds_sum{mode="endpoint"}"#, "90.045"),
        (r#"s3gate_request_duration_seconds_count{mode="forward"}"#, "1"),
        (r#"s3gate_upstream_errors_total{kind="connect"}"#, "1"),
        (r#"s3gate_upstream_errors_total{kind="timeout"}"#, "2"),
        (r#"s3gate_upstream_errors_total{kind="other"}"#, "1"),
        (r#"s3gate_upstream_errors_total{kind="reset"}"#, "0"),
        (r#"s3gate_upstream_errors_total{kind="tls"}"#, "0"),
        (r#"s3gate_upstream_errors_total{kind="credentials"}"#, "0"),
        (r#"s3gate_auth_failures_total{reason="SignatureDoesNotMatch"}"#, "2"),
        (r#"s3gate_auth_failures_total{reason="InvalidAccessKeyId"}"#, "1"),
        (r#"s3gate_policy_denials_total{action="s3:PutObject"}"#, "1"),
        (r#"s3gate_network_denials_total{mode="endpoint",reason="source_subnet"}"#, "1"),
        (r#"s3gate_network_denials_total{mode="forward",reason="endpoint"}"#, "1"),
        (r#"s3gate_upstream_credential_refreshes_total{result="success"}"#, "2"),
        (r#"s3gate_upstream_credential_refreshes_total{result="failure"}"#, "1"),
        (r#"s3gate_active_connections{mode="endpoint"}"#, "0"),
        (r#"s3gate_active_connections{mode="forward"}"#, "0"),
        (r#"s3gate_refused_connections_total{mode="endpoint"}"#, "2"),
        (r#"s3gate_refused_connections_total{mode="forward"}"#, "0"),
        ("s3gate_active_tunnels", "0"),
        (r#"s3gate_config_reload_total{result="ok"}"#, "2"),
        (r#"s3gate_config_reload_total{result="error"}"#, "1"),
        ("s3gate_draining", "0"),
    ];
    for (series, value) in expect {
        assert_eq!(e.value(series), value, "{series}");
    }
    let requests = e.samples.keys().filter(|s| s.starts_with("s3gate_requests_total{")).count();
    assert_eq!(requests, 4, "{text}");

    for (name, kind) in [
        ("s3gate_requests_total", "counter"),
        ("s3gate_request_duration_seconds", "histogram"),
        ("s3gate_received_bytes_total", "counter"),
        ("s3gate_sent_bytes_total", "counter"),
        ("s3gate_upstream_errors_total", "counter"),
        ("s3gate_auth_failures_total", "counter"),
        ("s3gate_policy_denials_total", "counter"),
        ("s3gate_network_denials_total", "counter"),
        ("s3gate_active_connections", "gauge"),
        ("s3gate_refused_connections_total", "counter"),
        ("s3gate_active_tunnels", "gauge"),
        ("s3gate_upstream_credential_refreshes_total", "counter"),
        ("s3gate_config_reload_total", "counter"),
        ("s3gate_draining", "gauge"),
    ] {
        assert!(e.has_type(name, kind), "no HELP/TYPE {kind} for {name}:\n{text}");
    }
}

#[test]
fn registries_are_not_shared() {
    let a = Metrics::new();
    let b = Metrics::new();
    a.auth_failure("SignatureDoesNotMatch");
    assert_eq!(parse(&a.render()).value(r#"s3gate_auth_failures_total{reason="SignatureDoesNotMatch"}"#), "1");
    assert!(!b.render().contains("SignatureDoesNotMatch"));
}

#[test]
fn status_classes() {
    let m = Metrics::new();
    for status in [100, 200, 304, 404, 599, 0, 600, 999] {
        m.request_finished(Mode::Endpoint, "s3:GetObject", status, Duration::ZERO, 0, 0);
    }
    let e = parse(&m.render());
    let series = |class: &str| {
        format!(r#"s3gate_requests_total{{action="s3:GetObject",mode="endpoint",status_class="{class}"}}"#)
    };
    for (class, n) in [("1xx", "1"), ("2xx", "1"), ("3xx", "1"), ("4xx", "1"), ("5xx", "1"), ("other", "3")] {
        assert_eq!(e.value(&series(class)), n, "{class}");
    }
}

#[test]
fn label_values_are_bounded() {
    let m = Metrics::new();
    for junk in
        ["", "GetObject", "s3:", ":GetObject", "s3:Get Object", "s3:GetObject\"}", "S3:GetObject", &"s3:A".repeat(40)]
    {
        m.request_finished(Mode::Endpoint, junk, 200, Duration::ZERO, 0, 0);
        m.policy_denied(junk);
    }
    for i in 0..300 {
        m.request_finished(Mode::Endpoint, &format!("s3:Made{i}"), 200, Duration::ZERO, 0, 0);
    }
    m.auth_failure("no such code");
    m.network_denied(Mode::Endpoint, "bad\nreason");
    let e = parse(&m.render());
    let unknown = r#"s3gate_requests_total{action="unknown",mode="endpoint",status_class="2xx"}"#;
    assert_eq!(e.value(unknown), (8 + 300 - 256).to_string());
    assert_eq!(e.value(r#"s3gate_policy_denials_total{action="unknown"}"#), "8");
    assert_eq!(e.value(r#"s3gate_auth_failures_total{reason="unknown"}"#), "1");
    assert_eq!(e.value(r#"s3gate_network_denials_total{mode="endpoint",reason="unknown"}"#), "1");
    let actions = e.samples.keys().filter(|s| s.starts_with("s3gate_requests_total{")).count();
    assert_eq!(actions, 257);
    // A value admitted before the cap keeps counting under its own name.
    m.request_finished(Mode::Endpoint, "s3:Made0", 200, Duration::ZERO, 0, 0);
    let e = parse(&m.render());
    assert_eq!(e.value(r#"s3gate_requests_total{action="s3:Made0",mode="endpoint",status_class="2xx"}"#), "2");
    // A name first seen after the cap is not.
    m.request_finished(Mode::Endpoint, "s3:GetObject", 200, Duration::ZERO, 0, 0);
    let e = parse(&m.render());
    assert!(!e
        .samples
        .contains_key(r#"s3gate_requests_total{action="s3:GetObject",mode="endpoint",status_class="2xx"}"#));
    assert_eq!(e.value(unknown), (8 + 300 - 256 + 1).to_string());
}

#[test]
fn guards_decrement_on_drop() {
    let m = Metrics::new();
    let gauge = |m: &Metrics, series: &str| parse(&m.render()).value(series).to_owned();
    let endpoint = r#"s3gate_active_connections{mode="endpoint"}"#;
    let forward = r#"s3gate_active_connections{mode="forward"}"#;
    let a = m.connection_opened(Mode::Endpoint);
    let b = m.connection_opened(Mode::Endpoint);
    let c = m.connection_opened(Mode::Forward);
    let t1 = m.tunnel_opened();
    let t2 = m.clone().tunnel_opened();
    assert_eq!(gauge(&m, endpoint), "2");
    assert_eq!(gauge(&m, forward), "1");
    assert_eq!(gauge(&m, "s3gate_active_tunnels"), "2");
    drop(a);
    drop(t1);
    assert_eq!(gauge(&m, endpoint), "1");
    assert_eq!(gauge(&m, "s3gate_active_tunnels"), "1");
    // A guard moved into another task still counts down when that task ends.
    std::thread::spawn(move || drop((b, c, t2))).join().expect("thread panicked");
    assert_eq!(gauge(&m, endpoint), "0");
    assert_eq!(gauge(&m, forward), "0");
    assert_eq!(gauge(&m, "s3gate_active_tunnels"), "0");
}

#[test]
fn sts_labels_take_only_declared_roles_known_actions_and_codes() {
    let m = Metrics::new();
    let role = "arn:aws:iam::000000000000:role/ci-writer";
    m.sts_request("AssumeRoleWithWebIdentity", role, "ok");
    m.sts_request("GetSessionToken", super::ROLE_NONE, "ok");
    m.sts_request("CreateUser", super::ROLE_UNKNOWN, "InvalidAction");
    // What a caller must never pass, and what happens if one did: a subject is no role, a
    // session name no result, and neither becomes a label value.
    m.sts_request("AssumeRoleWithWebIdentity", "repo:acme/app:ref:main", "job-7 <script>");
    m.session_request(role, 204);
    m.session_request(super::ROLE_NONE, 403);
    m.session_request(&format!("arn:aws:iam::000000000000:role/{}", "x".repeat(300)), 200);
    let e = parse(&m.render());
    let expect = [
        (format!(r#"s3gate_sts_requests_total{{action="AssumeRoleWithWebIdentity",result="ok",role="{role}"}}"#), "1"),
        (r#"s3gate_sts_requests_total{action="GetSessionToken",result="ok",role="none"}"#.into(), "1"),
        (r#"s3gate_sts_requests_total{action="other",result="InvalidAction",role="unknown"}"#.into(), "1"),
        (
            r#"s3gate_sts_requests_total{action="AssumeRoleWithWebIdentity",result="unknown",role="unknown"}"#.into(),
            "1",
        ),
        (format!(r#"s3gate_session_requests_total{{role="{role}",status_class="2xx"}}"#), "1"),
        (r#"s3gate_session_requests_total{role="none",status_class="4xx"}"#.into(), "1"),
        (r#"s3gate_session_requests_total{role="unknown",status_class="2xx"}"#.into(), "1"),
    ];
    for (series, value) in &expect {
        assert_eq!(e.value(series), *value, "{series}");
    }
    assert!(e.has_type("s3gate_sts_requests_total", "counter"));
    assert!(e.has_type("s3gate_session_requests_total", "counter"));
    let roles = (0..300).map(|i| format!("arn:aws:iam::000000000000:role/r{i}"));
    for r in roles {
        m.session_request(&r, 200);
    }
    let text = m.render();
    let series = text.lines().filter(|l| l.starts_with("s3gate_session_requests_total{")).count();
    assert!(series <= 256 + 3, "the role label is capped: {series} series");
}

/// The counters a thread keeps at hand count into their own instance, under their own labels,
/// however many series a thread has seen.
#[test]
fn request_counters_at_hand_count_where_they_belong() {
    std::thread::spawn(|| {
        let (a, b) = (Metrics::new(), Metrics::new());
        for _ in 0..3 {
            a.request_finished(Mode::Endpoint, "s3:GetObject", 200, Duration::ZERO, 0, 0);
        }
        b.request_finished(Mode::Endpoint, "s3:GetObject", 200, Duration::ZERO, 0, 0);
        a.request_finished(Mode::Forward, "s3:GetObject", 200, Duration::ZERO, 0, 0);
        a.request_finished(Mode::Endpoint, "s3:GetObject", 404, Duration::ZERO, 0, 0);
        a.request_finished(Mode::Endpoint, "s3:PutObject", 200, Duration::ZERO, 0, 0);
        // More series than a thread keeps at hand, then the first again.
        for i in 0..(REQUEST_COUNTERS_PER_THREAD + 5) {
            a.request_finished(Mode::Endpoint, &format!("s3:Made{i}"), 200, Duration::ZERO, 0, 0);
        }
        a.request_finished(Mode::Endpoint, "s3:GetObject", 200, Duration::ZERO, 0, 0);
        let series = |mode: &str, action: &str, class: &str| {
            format!(r#"s3gate_requests_total{{action="{action}",mode="{mode}",status_class="{class}"}}"#)
        };
        let (ea, eb) = (parse(&a.render()), parse(&b.render()));
        assert_eq!(ea.value(&series("endpoint", "s3:GetObject", "2xx")), "4");
        assert_eq!(eb.value(&series("endpoint", "s3:GetObject", "2xx")), "1");
        assert_eq!(ea.value(&series("forward", "s3:GetObject", "2xx")), "1");
        assert_eq!(ea.value(&series("endpoint", "s3:GetObject", "4xx")), "1");
        assert_eq!(ea.value(&series("endpoint", "s3:PutObject", "2xx")), "1");
        assert_eq!(ea.value(&series("endpoint", "s3:Made0", "2xx")), "1");
    })
    .join()
    .expect("thread");
}
