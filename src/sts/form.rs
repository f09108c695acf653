//! The STS Query API's request: a form-encoded POST to `/`, each parameter once.

use std::collections::BTreeMap;

use http::{header, HeaderMap, Method};
use percent_encoding::percent_decode_str;

use super::{Action, StsError};

/// The largest form accepted. A web identity token may be up to 20,000 characters and a
/// session policy 2,048; with the rest of the form this leaves ample room.
pub const MAX_FORM_BYTES: usize = 64 * 1024;
const VERSION: &str = "2011-06-15";

/// Whether a request is for the STS and not S3: a form POST to the root. No S3 operation is
/// one (a browser upload, POST Object, is multipart and names a bucket), so nothing S3 can
/// do is taken from clients.
pub fn is_sts_request(method: &Method, path: &str, query: Option<&str>, headers: &HeaderMap) -> bool {
    method == Method::POST
        && path == "/"
        && query.is_none_or(str::is_empty)
        && headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| ct.trim().to_ascii_lowercase().starts_with("application/x-www-form-urlencoded"))
}

/// A parsed form, checked for its `Action` and `Version`.
#[derive(Debug, Clone)]
pub struct Form {
    pub action: Action,
    params: BTreeMap<String, String>,
}

impl Form {
    pub fn parse(body: &[u8]) -> Result<Self, StsError> {
        let text = std::str::from_utf8(body).map_err(|_| StsError::validation("The request body is not UTF-8."))?;
        let mut params = BTreeMap::new();
        for pair in text.split('&').filter(|p| !p.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let (name, value) = (decode(name)?, decode(value)?);
            if params.insert(name.clone(), value).is_some() {
                return Err(StsError::validation(format!("The parameter {name} is given more than once.")));
            }
        }
        let action = match params.get("Action").map(String::as_str) {
            None => return Err(StsError::missing_parameter("Action")),
            Some("AssumeRoleWithWebIdentity") => Action::AssumeRoleWithWebIdentity,
            Some("AssumeRole") => Action::AssumeRole,
            Some("GetSessionToken") => Action::GetSessionToken,
            Some(_) => return Err(StsError::invalid_action("The action is not valid for this web service.")),
        };
        match params.get("Version").map(String::as_str) {
            Some(VERSION) => {}
            None => return Err(StsError::missing_parameter("Version")),
            Some(_) => return Err(StsError::invalid_action("Version must be 2011-06-15.")),
        }
        Ok(Self { action, params })
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.params.get(name).map(String::as_str)
    }

    pub fn required(&self, name: &str) -> Result<&str, StsError> {
        self.get(name).ok_or_else(|| StsError::missing_parameter(name))
    }

    /// `DurationSeconds` within `min..=max`, or `default` when absent.
    pub fn duration(&self, min: u64, max: u64, default: u64) -> Result<u64, StsError> {
        let Some(text) = self.get("DurationSeconds") else { return Ok(default.min(max)) };
        match text.parse::<u64>() {
            Ok(d) if (min..=max).contains(&d) => Ok(d),
            _ => Err(StsError::validation(format!(
                "The requested DurationSeconds exceeds the limits: it must be between {min} and {max}."
            ))),
        }
    }

    /// `Tags.member.N.Key` / `Tags.member.N.Value` pairs, in N order.
    pub fn tags(&self) -> Result<Vec<(String, String)>, StsError> {
        let mut tags = BTreeMap::new();
        for (name, value) in self.params.range("Tags.member.".to_owned()..) {
            let Some(rest) = name.strip_prefix("Tags.member.") else { break };
            let (n, field) = rest.split_once('.').ok_or_else(|| StsError::validation("Malformed Tags parameter."))?;
            let n: u32 = n.parse().map_err(|_| StsError::validation("Malformed Tags parameter."))?;
            let entry: &mut (Option<String>, Option<String>) = tags.entry(n).or_default();
            match field {
                "Key" => entry.0 = Some(value.clone()),
                "Value" => entry.1 = Some(value.clone()),
                _ => return Err(StsError::validation("Malformed Tags parameter.")),
            }
        }
        tags.into_values()
            .map(|(k, v)| match (k, v) {
                (Some(k), Some(v)) => Ok((k, v)),
                _ => Err(StsError::validation("Each tag needs a Key and a Value.")),
            })
            .collect()
    }

    /// Whether any parameter starts with `prefix` (`PolicyArns.member.`).
    pub fn has_prefix(&self, prefix: &str) -> bool {
        self.params.keys().any(|k| k.starts_with(prefix))
    }
}

/// Form decoding: `+` is a space, then percent escapes (so `%2B` stays a plus).
fn decode(text: &str) -> Result<String, StsError> {
    let spaced = text.replace('+', " ");
    percent_decode_str(&spaced)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| StsError::validation("A parameter is not UTF-8 once decoded."))
}
