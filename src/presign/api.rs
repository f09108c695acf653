//! The minting API: `GET /_s3gate/presign?bucket=B&key=K&method=GET|PUT&expires=SECONDS`.
//!
//! The request is itself SigV4-signed like any S3 request (awscurl works), and the URL it
//! returns is signed with the caller's own credential, so a caller can hand out no more than it
//! may do itself, and revoking its credential revokes its URLs. Authentication and the policy
//! check are the proxy's; this module only parses the query and renders the answer.

use std::time::Duration;

use http::{header, HeaderValue, Method, Response};
use percent_encoding::percent_decode_str;

use super::{MintRequest, Minted};
use crate::body::{self, Body};
use crate::error::S3Error;
use crate::sigv4::MAX_PRESIGN_EXPIRES;

/// Where the API answers on the endpoint listener.
pub const API_PATH: &str = "/_s3gate/presign";

/// How long a URL lives when the caller does not say.
pub const DEFAULT_EXPIRES: Duration = Duration::from_secs(3600);

fn invalid(message: impl Into<String>) -> S3Error {
    S3Error::invalid_argument(message.into())
}

/// Parses the API's query. `bucket` and `key` are required; `method` is GET (default), PUT,
/// HEAD or DELETE; `expires` is in seconds (default 3600, at most 604800); `content-type`
/// binds a PUT URL to one content type. The `X-Amz-*` parameters of a presigned call to the
/// API itself are skipped; any other parameter, or one given twice, is refused rather than
/// ignored, so a typo (`expire=60`) cannot silently mint a URL that lives an hour.
pub fn api_request(query: Option<&str>) -> Result<MintRequest, S3Error> {
    let (mut bucket, mut key, mut method, mut expires, mut content_type) = (None, None, None, None, None);
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let name = form_decode(name)?;
        if name.starts_with("X-Amz-") {
            continue;
        }
        let slot = match name.as_str() {
            "bucket" => &mut bucket,
            "key" => &mut key,
            "method" => &mut method,
            "expires" => &mut expires,
            "content-type" => &mut content_type,
            _ => {
                return Err(invalid(format!(
                    "unknown parameter {name:?}; expected bucket, key, method, expires, content-type"
                )))
            }
        };
        if slot.replace(form_decode(value)?).is_some() {
            return Err(invalid(format!("parameter {name:?} given twice")));
        }
    }
    let bucket = bucket.filter(|b| !b.is_empty()).ok_or_else(|| invalid("the bucket parameter is required"))?;
    let key = key.filter(|k| !k.is_empty()).ok_or_else(|| invalid("the key parameter is required"))?;
    let method = match method.as_deref().map(str::to_ascii_uppercase).as_deref() {
        None | Some("GET") => Method::GET,
        Some("PUT") => Method::PUT,
        Some("HEAD") => Method::HEAD,
        Some("DELETE") => Method::DELETE,
        Some(other) => return Err(invalid(format!("method must be GET, PUT, HEAD or DELETE, not {other:?}"))),
    };
    let expires = match expires {
        None => DEFAULT_EXPIRES,
        Some(text) => text
            .parse::<u64>()
            .ok()
            .filter(|s| (1..=MAX_PRESIGN_EXPIRES.as_secs()).contains(s))
            .map(Duration::from_secs)
            .ok_or_else(|| invalid("expires must be a number of seconds between 1 and 604800"))?,
    };
    Ok(MintRequest { bucket, key, method, expires, content_type: content_type.filter(|c| !c.is_empty()) })
}

/// `200` with `{"url": ..., "method": ..., "expires_at": ...}` (and `"headers"`, the signed
/// headers the user must send, when there are any). `no-store`: the URL is a bearer credential
/// that no cache on the way should keep.
pub fn api_response(minted: &Minted) -> Response<Body> {
    let mut json = serde_json::json!({
        "url": minted.url,
        "method": minted.method.as_str(),
        "expires_at": minted.expires_at,
    });
    if !minted.headers.is_empty() {
        let headers: serde_json::Map<String, serde_json::Value> =
            minted.headers.iter().map(|(n, v)| (n.clone(), serde_json::Value::from(v.as_str()))).collect();
        json["headers"] = serde_json::Value::Object(headers);
    }
    let mut text = json.to_string();
    text.push('\n');
    let mut resp = Response::new(body::full(text));
    let headers = resp.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// `application/x-www-form-urlencoded` decoding: `+` is a space, `%XX` a byte, UTF-8 required.
fn form_decode(raw: &str) -> Result<String, S3Error> {
    let spaced = raw.replace('+', " ");
    percent_decode_str(&spaced)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| invalid("a query parameter is not UTF-8 once decoded"))
}
