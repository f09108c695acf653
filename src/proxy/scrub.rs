//! Upstream error answers, cleaned of what identifies the upstream's own credentials.
//!
//! S3 explains a refusal in the error body: a `SignatureDoesNotMatch` carries the access key id
//! s3gate signed with, the string to sign and the canonical request; an `AccessDenied` from IAM
//! names the upstream principal ("User: arn:aws:sts::123456789012:assumed-role/gw/i-0abc is not
//! authorized to perform: ..."). Clients must never learn the upstream's keys or identity, so
//! small error bodies are rewritten before they pass on. Success bodies (objects) stream through
//! untouched.

use http::{HeaderMap, StatusCode};

/// Error answers larger than this pass unchanged: S3's are a few hundred bytes.
pub const MAX_ERROR_BODY: u64 = 64 * 1024;

/// Elements dropped whole: they hold the upstream's key id, its signature and what it signed,
/// and `HostId`, which identifies the upstream's request for the upstream's owner only.
const DROPPED: &[&str] = &[
    "AWSAccessKeyId",
    "StringToSign",
    "StringToSignBytes",
    "CanonicalRequest",
    "CanonicalRequestBytes",
    "SignatureProvided",
    "HostId",
];

pub const PRINCIPAL_PLACEHOLDER: &str = "[upstream principal]";
pub const KEY_PLACEHOLDER: &str = "[upstream access key]";

/// Whether an upstream answer is an error body small enough to rewrite. A HEAD answer has a
/// length but no body; a compressed body cannot be read here (S3 never compresses errors).
pub fn applies(status: StatusCode, headers: &HeaderMap, head: bool) -> bool {
    if status.as_u16() < 400 || head || headers.contains_key(http::header::CONTENT_ENCODING) {
        return false;
    }
    headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .is_some_and(|n| n > 0 && n <= MAX_ERROR_BODY)
}

/// The error body without the dropped elements, upstream principal ARNs or the upstream's
/// access key id (`upstream_key`, and anything shaped like an AWS key id).
pub fn error_body(body: &[u8], upstream_key: Option<&str>) -> Vec<u8> {
    let mut text = String::from_utf8_lossy(body).into_owned();
    for name in DROPPED {
        text = drop_element(&text, name);
    }
    text = replace_principal_arns(&text);
    if let Some(key) = upstream_key.filter(|k| !k.is_empty()) {
        text = text.replace(key, KEY_PLACEHOLDER);
    }
    replace_key_ids(&text).into_bytes()
}

/// Removes every `<name>...</name>` and `<name/>` (S3 writes them without attributes).
fn drop_element(text: &str, name: &str) -> String {
    let open = format!("<{name}>");
    let close = format!("</{name}>");
    let empty = format!("<{name}/>");
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    loop {
        let (at, is_empty) = match (rest.find(&open), rest.find(&empty)) {
            (Some(o), Some(e)) if e < o => (e, true),
            (Some(o), _) => (o, false),
            (None, Some(e)) => (e, true),
            (None, None) => break,
        };
        out.push_str(&rest[..at]);
        rest = if is_empty {
            &rest[at + empty.len()..]
        } else {
            // An element left open runs to the end: nothing of it is kept.
            match rest[at..].find(&close) {
                Some(c) => &rest[at + c + close.len()..],
                None => "",
            }
        };
    }
    out.push_str(rest);
    out
}

/// `arn:PARTITION:iam::...` and `arn:PARTITION:sts::...`: users, roles and sessions, the only
/// principals an upstream error names. Resource ARNs (the bucket's) stay.
fn replace_principal_arns(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("arn:") {
        out.push_str(&rest[..at]);
        let candidate = &rest[at..];
        let end = candidate.find(|c: char| !is_arn_char(c)).unwrap_or(candidate.len());
        let arn = &candidate[..end];
        let mut fields = arn.splitn(4, ':');
        let service = fields.nth(2);
        if matches!(service, Some("iam" | "sts")) {
            out.push_str(PRINCIPAL_PLACEHOLDER);
            rest = &candidate[end..];
        } else {
            out.push_str("arn:");
            rest = &candidate[4..];
        }
    }
    out.push_str(rest);
    out
}

/// What an IAM ARN may hold: names take `+=,.@-_`, paths `/`, fields `:`.
fn is_arn_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "+=,.@-_/:*".contains(c)
}

/// AWS access key ids: `AKIA` (long-term) or `ASIA` (temporary) and 16 more capitals or digits,
/// standing alone.
fn replace_key_ids(text: &str) -> String {
    let bytes = text.as_bytes();
    let is_key_char = |b: u8| b.is_ascii_uppercase() || b.is_ascii_digit();
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    let mut i = 0;
    while i + 20 <= bytes.len() {
        let starts = (bytes[i..].starts_with(b"AKIA") || bytes[i..].starts_with(b"ASIA"))
            && (i == 0 || !is_key_char(bytes[i - 1]))
            && bytes[i..i + 20].iter().all(|&b| is_key_char(b))
            && bytes.get(i + 20).is_none_or(|&b| !is_key_char(b));
        if starts {
            out.push_str(&text[last..i]);
            out.push_str(KEY_PLACEHOLDER);
            i += 20;
            last = i;
        } else {
            i += 1;
        }
    }
    out.push_str(&text[last..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SIGNATURE_ERROR: &str =
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>SignatureDoesNotMatch</Code>\
        <Message>The request signature we calculated does not match the signature you provided.</Message>\
        <AWSAccessKeyId>AKIAIOSFODNN7EXAMPLE</AWSAccessKeyId><StringToSign>AWS4-HMAC-SHA256\n20250101T000000Z\n\
        20250101/us-east-1/s3/aws4_request\nabc</StringToSign><SignatureProvided>00ff</SignatureProvided>\
        <StringToSignBytes>41 57</StringToSignBytes><CanonicalRequest>GET\n/b/k\n\nhost:s3</CanonicalRequest>\
        <CanonicalRequestBytes>47 45</CanonicalRequestBytes><RequestId>R1</RequestId><HostId>aGk=</HostId></Error>";

    fn scrubbed(body: &str, key: Option<&str>) -> String {
        String::from_utf8(error_body(body.as_bytes(), key)).expect("utf-8")
    }

    #[test]
    fn signature_details_and_host_id_are_dropped() {
        let out = scrubbed(SIGNATURE_ERROR, None);
        assert_eq!(
            out,
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>SignatureDoesNotMatch</Code>\
             <Message>The request signature we calculated does not match the signature you provided.</Message>\
             <RequestId>R1</RequestId></Error>"
        );
    }

    #[test]
    fn principals_and_key_ids_are_replaced_and_resources_kept() {
        let body = "<Error><Code>AccessDenied</Code><Message>User: arn:aws:sts::123456789012:assumed-role/gw/i-0abc \
                    is not authorized to perform: s3:GetObject on resource: \"arn:aws:s3:::bucket/k\" because no \
                    identity-based policy allows it (arn:aws-cn:iam::123456789012:user/path/me, STOREKEY0001, \
                    ASIAQWERTYUIOPASDFGH)</Message><Resource>/bucket/k</Resource></Error>";
        let out = scrubbed(body, Some("STOREKEY0001"));
        assert!(!out.contains("123456789012"), "{out}");
        assert!(!out.contains("STOREKEY0001") && !out.contains("ASIAQWERTYUIOPASDFGH"), "{out}");
        assert!(out.contains("User: [upstream principal] is not authorized"), "{out}");
        assert!(out.contains("resource: \"arn:aws:s3:::bucket/k\""), "{out}");
        assert!(out.contains("([upstream principal] [upstream access key], [upstream access key])"), "{out}");
    }

    #[test]
    fn unclosed_and_empty_elements_go_too() {
        assert_eq!(scrubbed("<Error><HostId/><Code>X</Code><HostId>abc", None), "<Error><Code>X</Code>");
        // Not key ids: too long, or part of a longer word.
        let text = "AKIAIOSFODNN7EXAMPLEX 1AKIAIOSFODNN7EXAMPLE";
        assert_eq!(scrubbed(text, None), text);
    }

    #[test]
    fn only_small_error_bodies_with_a_length_apply() {
        let mut h = HeaderMap::new();
        h.insert(http::header::CONTENT_LENGTH, "300".parse().expect("value"));
        assert!(applies(StatusCode::FORBIDDEN, &h, false));
        assert!(!applies(StatusCode::FORBIDDEN, &h, true), "HEAD has no body");
        assert!(!applies(StatusCode::OK, &h, false));
        h.insert(http::header::CONTENT_LENGTH, "70000".parse().expect("value"));
        assert!(!applies(StatusCode::BAD_REQUEST, &h, false));
        assert!(!applies(StatusCode::BAD_REQUEST, &HeaderMap::new(), false));
    }
}
