//! The default allow list (`@aws-s3`) against names that only look like S3's: load balancers,
//! whose first label their owner chooses, and other services' interface endpoints. Every name
//! here is sent to one local server by `--forward-connect-to`, so a refusal with nothing
//! dialled shows that the allow list, and nothing else, stopped it.

use std::sync::atomic::Ordering;

use super::{addr_of, proxy, wire};

const NOT_S3: &[&str] = &[
    "s3-x-123.us-east-1.elb.amazonaws.com",
    "s3-x-123.amazonaws.com.us-east-1.elb.amazonaws.com",
    "vpce-0abc-def.sts.us-east-1.vpce.amazonaws.com",
    "vpce-0abc-def.secretsmanager.us-east-1.vpce.amazonaws.com",
    "vpce-0abc-def.vpce-svc-0123456789abcdef0.us-east-1.vpce.amazonaws.com",
];

const S3: &[&str] = &["s3.us-east-1.amazonaws.com", "bucket.vpce-1a2b3c4d-5e6f.s3.us-east-1.vpce.amazonaws.com"];

#[tokio::test]
async fn load_balancers_and_other_privatelink_services_are_refused_before_any_dial() {
    let (origin, dialled, _task) = wire::counting_http_server().await;
    let running = proxy(|f| {
        f.forward_allow_http_port = vec!["80".into()];
        f.forward_connect_to = NOT_S3.iter().chain(S3).map(|name| format!("{name}={origin}")).collect();
    })
    .await;
    let at = addr_of(&running);

    for name in NOT_S3 {
        let c = wire::connect(at, &format!("{name}:443"), "").await;
        assert_eq!(c.status, 403, "CONNECT {name}: {}", c.head);
        assert_eq!(wire::absolute_get(at, name).await, 403, "GET http://{name}/");
    }
    assert_eq!(dialled.load(Ordering::SeqCst), 0, "a refused name was dialled");

    // The same harness reaches S3's own names, so the refusals above were the allow list's.
    for (i, name) in S3.iter().enumerate() {
        let c = wire::connect(at, &format!("{name}:443"), "").await;
        assert_eq!(c.status, 200, "CONNECT {name}: {}", c.head);
        drop(c);
        assert_eq!(wire::absolute_get(at, name).await, 200, "GET http://{name}/");
        assert_eq!(dialled.load(Ordering::SeqCst), 2 * (i + 1), "{name} was dialled for both");
    }
    let metrics = running.metrics.render();
    let line = format!("s3gate_network_denials_total{{mode=\"forward\",reason=\"destination\"}} {}", 2 * NOT_S3.len());
    assert!(metrics.lines().any(|l| l == line), "no `{line}` in\n{metrics}");
    running.stop().await;
}
