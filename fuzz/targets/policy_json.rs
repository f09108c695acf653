//! IAM policy documents (`policy::Policy`) and their evaluation (`policy::authorize`).
//!
//! Input: the policy's JSON text, as a `[[client]]` `policy` holds it.
//!
//! Checks: `Policy::from_json` and serde (the config loader's path) agree; evaluating a policy
//! terminates without panicking on fixed requests and on requests made of the document's own
//! strings (so wildcards meet long values); adding a statement that denies everything makes
//! every request an explicit deny, and a document that is refused stays refused with it.

use s3gate::policy::{authorize, AuthzRequest, Decision, Policy};
use serde_json::{json, Value};

/// Fixed requests, then one per string of the document (at most six), used as the action,
/// the resource and context values.
fn requests(strings: &[String]) -> Vec<AuthzRequest<'_>> {
    let fixed = [
        ("s3:ListAllMyBuckets", "arn:aws:s3:::*"),
        ("s3:ListBucket", "arn:aws:s3:::bkt"),
        ("s3:GetObject", "arn:aws:s3:::bkt/home/alice/a.txt"),
        ("s3:PutObject", "arn:aws:s3:::other/x"),
    ];
    let mut out: Vec<AuthzRequest<'_>> = fixed
        .iter()
        .map(|(action, resource)| {
            let mut req = AuthzRequest { action, resource_arn: (*resource).to_owned(), context: Default::default() };
            req.insert("aws:SourceIp", "10.1.2.3");
            req.insert("aws:username", "alice");
            req.insert("s3:prefix", "home/alice/");
            req.insert("aws:SecureTransport", "true");
            req.insert("aws:CurrentTime", "2024-01-01T00:00:00Z");
            req.insert("s3:max-keys", "10");
            req
        })
        .collect();
    for s in strings.iter().take(6) {
        let mut req = AuthzRequest { action: s, resource_arn: s.clone(), context: Default::default() };
        req.insert("aws:username", s.clone());
        req.insert("s3:prefix", s.clone());
        out.push(req);
    }
    out
}

fn collect_strings(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::String(s) => out.push(s.clone()),
        Value::Array(items) => items.iter().for_each(|v| collect_strings(v, out)),
        Value::Object(map) => map.iter().for_each(|(k, v)| {
            out.push(k.clone());
            collect_strings(v, out);
        }),
        _ => {}
    }
}

/// One input, checked as described above; panics on a failed check.
pub fn run(input: &[u8]) {
    let Ok(text) = std::str::from_utf8(input) else {
        return;
    };
    let policy = Policy::from_json(text);
    let via_serde = serde_json::from_str::<Policy>(text);
    assert_eq!(policy.as_ref().ok(), via_serde.as_ref().ok(), "from_json and serde disagree");
    let Ok(mut doc) = serde_json::from_str::<Value>(text) else {
        return;
    };

    let mut strings = Vec::new();
    collect_strings(&doc, &mut strings);
    let requests = if policy.is_ok() { requests(&strings) } else { Vec::new() };
    if let Ok(policy) = &policy {
        for req in &requests {
            let decision = authorize(policy, req);
            assert_eq!(authorize(policy, req), decision, "evaluation is not deterministic");
        }
    }

    // Append a statement denying everything, where the document has a statement list.
    let deny_all = json!({"Effect": "Deny", "Action": "*", "Resource": "*"});
    let Some(statement) = doc.get_mut("Statement") else {
        return;
    };
    match statement {
        Value::Array(items) if !items.is_empty() => items.push(deny_all),
        Value::Object(_) => *statement = Value::Array(vec![statement.take(), deny_all]),
        _ => return,
    }
    let denied = Policy::from_json(&doc.to_string());
    assert_eq!(denied.is_ok(), policy.is_ok(), "adding a deny-all statement changed validity");
    if let Ok(denied) = denied {
        for req in &requests {
            assert_eq!(authorize(&denied, req), Decision::ExplicitDeny, "deny-all did not deny {req:?}");
        }
    }
}
