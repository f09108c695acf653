//! The POST policy document: `{"expiration": ..., "conditions": [...]}`, base64 in the form.
//!
//! Conditions are S3's: exact match (`{"acl": "private"}` or `["eq", "$acl", "private"]`),
//! `["starts-with", "$key", "uploads/"]` (an empty prefix allows anything; for Content-Type a
//! comma-separated value is a list whose every item must match) and
//! `["content-length-range", MIN, MAX]`. Field names are matched case-insensitively, values
//! exactly. Every form field but the few S3 exempts must be named by a condition, so that a
//! form cannot smuggle in a header (`x-amz-acl`, `Content-Disposition`) the signer never saw.

use base64::Engine;
use serde_json::Value;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::error::{S3Error, S3ErrorCode};

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Condition {
    /// `field` is lower case, without the `$`; `written` is the name as the policy wrote it,
    /// for the error message.
    Eq {
        field: String,
        written: String,
        value: String,
    },
    StartsWith {
        field: String,
        written: String,
        prefix: String,
    },
    ContentLengthRange {
        min: u64,
        max: u64,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PostPolicy {
    pub expiration: OffsetDateTime,
    pub conditions: Vec<Condition>,
}

/// The fields a condition may not name but that need none: S3's list.
pub(super) fn exempt(field: &str) -> bool {
    matches!(field, "x-amz-signature" | "file" | "policy") || field.starts_with("x-ignore-")
}

fn invalid_policy(why: impl std::fmt::Display) -> S3Error {
    S3Error::new(S3ErrorCode::InvalidPolicyDocument, format!("Invalid Policy: {why}"))
}

fn denied(why: impl std::fmt::Display) -> S3Error {
    S3Error::new(S3ErrorCode::AccessDenied, format!("Invalid according to Policy: {why}"))
}

impl PostPolicy {
    /// Decodes the form's `policy` field (base64 of UTF-8 JSON).
    pub fn from_base64(encoded: &str) -> Result<Self, S3Error> {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .map_err(|_| invalid_policy("Invalid Base64 encoding."))?;
        let doc: Value = serde_json::from_slice(&bytes).map_err(|_| invalid_policy("Invalid JSON."))?;
        let doc = doc.as_object().ok_or_else(|| invalid_policy("Invalid JSON."))?;
        let expiration = match doc.get("expiration") {
            None => return Err(invalid_policy("Policy missing expiration.")),
            Some(Value::String(text)) => OffsetDateTime::parse(text, &Rfc3339)
                .map_err(|_| invalid_policy(format!("Invalid 'expiration' value: '{text}'")))?,
            Some(_) => return Err(invalid_policy("Invalid 'expiration' value.")),
        };
        let list = match doc.get("conditions") {
            None => return Err(invalid_policy("Policy missing conditions.")),
            Some(Value::Array(list)) => list,
            Some(_) => return Err(invalid_policy("Invalid 'conditions' value.")),
        };
        let mut conditions = Vec::new();
        for item in list {
            parse_condition(item, &mut conditions)?;
        }
        Ok(Self { expiration, conditions })
    }

    /// Checks expiry and every condition against the form (`value(field)` gives a field's value,
    /// with `bucket` and `key` resolved by the caller), then that every non-exempt field is
    /// covered. Content-length ranges are returned, to be enforced while the file streams.
    pub fn check<'a>(
        &self,
        now: OffsetDateTime,
        fields: impl Iterator<Item = &'a str> + Clone,
        value: impl Fn(&str) -> Option<&'a str>,
    ) -> Result<(u64, u64), S3Error> {
        if now > self.expiration {
            return Err(denied("Policy expired."));
        }
        let (mut min, mut max) = (0u64, u64::MAX);
        for condition in &self.conditions {
            let ok = match condition {
                Condition::Eq { field, value: want, .. } => value(field).unwrap_or("") == want,
                Condition::StartsWith { field, prefix, .. } => {
                    let got = value(field).unwrap_or("");
                    if field == "content-type" && got.contains(',') {
                        got.split(',').all(|item| item.trim().starts_with(prefix.as_str()))
                    } else {
                        got.starts_with(prefix.as_str())
                    }
                }
                Condition::ContentLengthRange { min: lo, max: hi } => {
                    // Every range must hold, so the file must fit their intersection.
                    min = min.max(*lo);
                    max = max.min(*hi);
                    true
                }
            };
            if !ok {
                return Err(denied(format!("Policy Condition failed: {}", condition.render())));
            }
        }
        let extra: Vec<&str> = fields.filter(|f| !exempt(f) && !self.names(f)).collect();
        if !extra.is_empty() {
            return Err(denied(format!("Extra input fields: {}", extra.join(", "))));
        }
        Ok((min, max))
    }

    fn names(&self, field: &str) -> bool {
        self.conditions.iter().any(|c| match c {
            Condition::Eq { field: f, .. } | Condition::StartsWith { field: f, .. } => f == field,
            Condition::ContentLengthRange { .. } => false,
        })
    }
}

impl Condition {
    /// As S3 quotes a failed condition: `["eq", "$key", "a.txt"]`.
    pub(crate) fn render(&self) -> String {
        let quote = |s: &str| Value::from(s).to_string();
        match self {
            Condition::Eq { written, value, .. } => format!("[\"eq\", {}, {}]", quote(written), quote(value)),
            Condition::StartsWith { written, prefix, .. } => {
                format!("[\"starts-with\", {}, {}]", quote(written), quote(prefix))
            }
            Condition::ContentLengthRange { min, max } => format!("[\"content-length-range\", {min}, {max}]"),
        }
    }
}

fn parse_condition(item: &Value, out: &mut Vec<Condition>) -> Result<(), S3Error> {
    let bad = || invalid_policy(format!("Invalid Condition: {item}"));
    match item {
        Value::Object(map) if !map.is_empty() => {
            for (name, value) in map {
                let value = value.as_str().ok_or_else(bad)?;
                // As in the array form (`"$"` alone is refused): a condition names a field.
                if name.is_empty() {
                    return Err(bad());
                }
                let written = format!("${name}");
                out.push(Condition::Eq { field: name.to_ascii_lowercase(), written, value: value.to_owned() });
            }
            Ok(())
        }
        Value::Array(parts) => {
            let op = parts.first().and_then(Value::as_str).ok_or_else(bad)?.to_ascii_lowercase();
            let [_, a, b] = parts.as_slice() else {
                return Err(bad());
            };
            if op == "content-length-range" {
                let (min, max) = (number(a).ok_or_else(bad)?, number(b).ok_or_else(bad)?);
                if min > max {
                    return Err(bad());
                }
                out.push(Condition::ContentLengthRange { min, max });
                return Ok(());
            }
            let written = a.as_str().filter(|n| n.starts_with('$') && n.len() > 1).ok_or_else(bad)?;
            let field = written[1..].to_ascii_lowercase();
            let operand = b.as_str().ok_or_else(bad)?.to_owned();
            out.push(match op.as_str() {
                "eq" => Condition::Eq { field, written: written.to_owned(), value: operand },
                "starts-with" => Condition::StartsWith { field, written: written.to_owned(), prefix: operand },
                _ => return Err(bad()),
            });
            Ok(())
        }
        _ => Err(bad()),
    }
}

/// A size bound: a JSON integer, or a string of digits (some SDKs write them quoted).
fn number(v: &Value) -> Option<u64> {
    match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}
