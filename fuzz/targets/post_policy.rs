//! The browser-upload (POST Object) policy document and its check against a form.
//!
//! Input: the policy's JSON text. It is base64-encoded, as a form carries it, and decoded by
//! `fuzzing::post_policy`; the input is also tried as the form field itself (base64 text).
//!
//! Checks: the conditions, written back as S3 quotes them in errors, parse to the same policy;
//! an expired policy refuses every form; a form that gives each named field exactly the value
//! (or prefix) its only condition asks for, with no size range, is accepted.

use base64::Engine;
use s3gate::fuzzing::{post_policy, post_policy_check, PostPolicyFields};
use serde_json::Value;
use time::format_description::well_known::Rfc3339;

fn encode(json: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(json)
}

/// The document again, from the parsed expiry and the conditions as S3 quotes them.
fn rewrite(policy: &PostPolicyFields) -> Option<String> {
    let expiration = policy.expiration.format(&Rfc3339).ok()?;
    Some(format!("{{\"expiration\": {}, \"conditions\": [{}]}}", Value::from(expiration), policy.conditions.join(", ")))
}

/// A form satisfying the conditions, when they are all `eq`/`starts-with` on distinct fields.
fn satisfying_form(policy: &PostPolicyFields) -> Option<Vec<(String, String)>> {
    let mut fields: Vec<(String, String)> = Vec::new();
    for condition in &policy.conditions {
        let parts: Vec<Value> = serde_json::from_str(condition).expect("a rendered condition is JSON");
        let [Value::String(op), Value::String(name), Value::String(value)] = parts.as_slice() else {
            return None; // content-length-range
        };
        let name = name.strip_prefix('$').expect("a field name starts with $").to_ascii_lowercase();
        // A comma in a Content-Type is a list whose every item must have the prefix.
        if fields.iter().any(|(n, _)| *n == name)
            || (op == "starts-with" && name == "content-type" && value.contains(','))
        {
            return None;
        }
        fields.push((name, value.clone()));
    }
    Some(fields)
}

/// One input, checked as described above; panics on a failed check.
pub fn run(input: &[u8]) {
    let Ok(json) = std::str::from_utf8(input) else {
        return;
    };
    // The input as the form field itself: base64 text, decoded by the parser.
    let _ = post_policy(json);
    let encoded = encode(json);
    let Ok(policy) = post_policy(&encoded) else {
        return;
    };
    if let Some(rewritten) = rewrite(&policy) {
        let again = post_policy(&encode(&rewritten));
        assert_eq!(again.as_ref().ok(), Some(&policy), "re-written as {rewritten}");
    }

    if let Some(later) = policy.expiration.checked_add(time::Duration::seconds(1)) {
        assert!(post_policy_check(&encoded, later, &[]).is_err(), "an expired policy was accepted");
    }
    if let Some(form) = satisfying_form(&policy) {
        let result = post_policy_check(&encoded, policy.expiration, &form);
        assert_eq!(result.as_ref().ok(), Some(&(0, u64::MAX)), "form {form:?} refused: {result:?}");
    }
}
