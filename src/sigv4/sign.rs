//! Re-signing a request for the upstream S3.
//!
//! The signer builds the canonical request with the same code the verifier uses
//! ([`super::canonical`]) and a signing key from the process's [`key_cache`](super::key_cache), so
//! a small request costs one string to hash and two HMACs rather than a general-purpose signer's
//! allocations and four more HMACs to derive the key. Its output is the `aws-sigv4` crate's,
//! byte for byte, for S3's settings (single encoding, no path normalization,
//! `x-amz-content-sha256`, session token signed): the tests sign random requests both ways and
//! compare.
//!
//! The URI is rewritten into S3's canonical encoding first, which a proxy forwarding S3 paths
//! as the client sent them needs:
//!
//! - S3 decodes the path and re-encodes every byte outside `A-Z a-z 0-9 - . _ ~ /`. A raw
//!   `/test$file.text` is checked as `/test%24file.text`.
//! - A `+` in the query is a literal plus for S3 (and our verifier), never a space.
//!
//! Re-encoding is harmless to S3: decoding the canonical form gives back the same bytes, so the
//! object key and parameter values do not change. A query whose escapes decode to non-UTF-8 is
//! refused, as S3 would not read it as sent either.

use std::time::SystemTime;

use aws_credential_types::Credentials;
use http::header::{HeaderName, HeaderValue, HOST};
use http::Uri;
use percent_encoding::percent_decode_str;
use time::OffsetDateTime;

use super::canonical::{assemble, canonical_uri, encode_component, join_params, push_trimmed};
use super::{
    format_amz_date_uncached, key_cache, signature_of, PayloadMode, Scope, ALGORITHM, X_AMZ_CONTENT_SHA256, X_AMZ_DATE,
    X_AMZ_SECURITY_TOKEN,
};

/// Why an outgoing request could not be signed. These are s3gate's faults or a request it
/// should not forward, never the client's credentials, hence a type apart from `SigV4Error`.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    #[error("the request has no host to sign: no Host header and no authority in the URI")]
    NoHost,
    #[error("header {0} has a value that is not visible ASCII")]
    HeaderValue(String),
    #[error("not a payload hash or payload mode: {0}")]
    PayloadHash(String),
    #[error("a query parameter does not decode to UTF-8, which aws-sigv4 cannot sign as S3 reads it")]
    NonUtf8Query,
    #[error("could not rebuild the request URI: {0}")]
    Uri(String),
}

/// Headers that signing replaces; stale copies from the client must not survive next to them.
const REPLACED: [&str; 4] = ["authorization", "x-amz-date", "x-amz-content-sha256", "x-amz-security-token"];

/// Headers never signed, as the AWS SDKs leave them out: proxies rewrite or drop them.
const EXCLUDED: [&str; 4] = ["authorization", "user-agent", "x-amzn-trace-id", "transfer-encoding"];

/// Signs an outgoing request in place with S3's settings (single encoding, no path
/// normalization, `x-amz-content-sha256`, session token signed).
///
/// Signs every header in `parts.headers` (the caller has removed hop-by-hop and auth headers
/// and set the final `Content-Length`), except those the AWS SDKs leave out because proxies
/// rewrite them (`user-agent`, `x-amzn-trace-id`, `transfer-encoding`), plus `host`: the Host
/// header, or else one set here from the URI authority. Sets `Authorization`, `x-amz-date`,
/// `x-amz-content-sha256` (= `payload_hash`: a hex digest, `UNSIGNED-PAYLOAD`,
/// `STREAMING-UNSIGNED-PAYLOAD-TRAILER`...) and `x-amz-security-token` when the credentials
/// have a session token. The URI is rewritten to S3's canonical encoding (see the module doc).
pub fn sign_upstream(
    parts: &mut http::request::Parts,
    creds: &Credentials,
    region: &str,
    payload_hash: &str,
    time: SystemTime,
) -> Result<(), SignError> {
    sign_upstream_for("s3", parts, creds, region, payload_hash, time)
}

/// [`sign_upstream`] for another service of the upstream's: the upstream STS, which s3gate
/// asks for a role's credentials per client (`upstream/assume.rs`). Same canonical request;
/// only the scope's service differs.
pub fn sign_upstream_for(
    service: &str,
    parts: &mut http::request::Parts,
    creds: &Credentials,
    region: &str,
    payload_hash: &str,
    time: SystemTime,
) -> Result<(), SignError> {
    PayloadMode::parse(payload_hash).map_err(|_| SignError::PayloadHash(payload_hash.to_owned()))?;
    // Removed only when present: one pass over the names instead of a lookup per name.
    if parts.headers.keys().any(|k| REPLACED.contains(&k.as_str())) {
        for name in REPLACED {
            parts.headers.remove(name);
        }
    }
    let query = match s3_encoded_uri(&parts.uri)? {
        Some((uri, query)) => {
            parts.uri = uri;
            query
        }
        None => String::new(),
    };
    if !parts.headers.contains_key(HOST) {
        // Set it here rather than let the HTTP client derive it, so that what is sent is what
        // was signed.
        let host = host_from_uri(&parts.uri).ok_or(SignError::NoHost)?;
        parts.headers.insert(HOST, host);
    }
    let date_value = amz_date_value(time);
    let amz_date = date_value.to_str().map_err(|_| SignError::HeaderValue("x-amz-date".into()))?;
    let scope = Scope::new(&amz_date[..8], region, service);
    parts.headers.insert(X_AMZ_DATE, date_value.clone());
    parts.headers.insert(X_AMZ_CONTENT_SHA256, payload_hash_value(payload_hash)?);
    if let Some(token) = creds.session_token() {
        let mut value = visible(token, X_AMZ_SECURITY_TOKEN.as_str())?;
        value.set_sensitive(true);
        parts.headers.insert(X_AMZ_SECURITY_TOKEN, value);
    }

    // `keys()` yields each name once; `get_all` below joins repeated headers in order.
    // The names themselves, not their text: each value is then found without parsing its name.
    let mut names: Vec<&HeaderName> = parts.headers.keys().filter(|n| !EXCLUDED.contains(&n.as_str())).collect();
    names.sort_unstable_by(|a, b| a.as_str().cmp(b.as_str()));
    let push_value = |out: &mut String, name: &&HeaderName| {
        for (i, v) in parts.headers.get_all(*name).iter().enumerate() {
            v.to_str().map_err(|_| SignError::HeaderValue(name.to_string()))?;
            if i > 0 {
                out.push(',');
            }
            push_trimmed(out, v.as_bytes());
        }
        Ok(())
    };
    let key = key_cache::global().get(creds.secret_access_key(), &scope);
    let signature = signature_of(&key, amz_date, &scope, |creq| {
        let (method, path) = (parts.method.as_str(), parts.uri.path());
        assemble(creq, method, path, &query, names.iter().copied(), push_value, payload_hash)
    })?;
    let mut authorization = String::with_capacity(256 + names.iter().map(|n| n.as_str().len() + 1).sum::<usize>());
    for part in [ALGORITHM, " Credential=", creds.access_key_id(), "/"] {
        authorization.push_str(part);
    }
    authorization.push_str(scope.as_str());
    authorization.push_str(", SignedHeaders=");
    for (i, name) in names.iter().enumerate() {
        if i > 0 {
            authorization.push(';');
        }
        authorization.push_str(name.as_str());
    }
    authorization.push_str(", Signature=");
    crate::sigv4::push_hex(&mut authorization, &signature);
    // The string becomes the value's storage: no copy.
    let mut value = HeaderValue::from_maybe_shared(bytes::Bytes::from(authorization))
        .map_err(|_| SignError::HeaderValue("authorization".into()))?;
    value.set_sensitive(true);
    parts.headers.insert(http::header::AUTHORIZATION, value);
    Ok(())
}

/// `x-amz-date` for `time`, as a header value made once a second per thread: every request
/// signed within that second takes a clone of it (a reference count, not a copy).
fn amz_date_value(time: SystemTime) -> HeaderValue {
    thread_local! {
        static LAST: std::cell::RefCell<Option<(i64, HeaderValue)>> = const { std::cell::RefCell::new(None) };
    }
    let time = OffsetDateTime::from(time);
    let second = time.unix_timestamp();
    LAST.with(|last| {
        let mut last = last.borrow_mut();
        match &*last {
            Some((at, value)) if *at == second => value.clone(),
            _ => {
                // Uncached: this is the cache (`format_amz_date`'s own would copy its string).
                let value = HeaderValue::from_maybe_shared(bytes::Bytes::from(format_amz_date_uncached(time)))
                    .unwrap_or_else(|_| HeaderValue::from_static("00000000T000000Z"));
                *last = Some((second, value.clone()));
                value
            }
        }
    })
}

/// `x-amz-content-sha256`: the payload modes and the empty body's hash are constants, sent
/// without a copy; a body's own hash is checked and copied.
fn payload_hash_value(payload_hash: &str) -> Result<HeaderValue, SignError> {
    const CONSTANT: [&str; 5] = [
        super::EMPTY_SHA256,
        super::UNSIGNED_PAYLOAD,
        super::STREAMING_UNSIGNED_TRAILER,
        super::STREAMING_SIGNED,
        super::STREAMING_SIGNED_TRAILER,
    ];
    match CONSTANT.iter().find(|c| **c == payload_hash) {
        Some(c) => Ok(HeaderValue::from_static(c)),
        None => visible(payload_hash, "x-amz-content-sha256"),
    }
}

/// A header value s3gate sets itself, refused if it is not visible ASCII (a session token from
/// a broken credential source, say) rather than sent as something other than what was signed.
fn visible(value: &str, name: &str) -> Result<HeaderValue, SignError> {
    HeaderValue::from_str(value).map_err(|_| SignError::HeaderValue(name.to_owned()))
}

/// `host[:port]` from the URI authority, the port left out when it is the scheme's default:
/// the Host header signed and sent when the request has none.
pub fn host_from_uri(uri: &Uri) -> Option<HeaderValue> {
    let host = uri.host()?;
    let default_port =
        matches!((uri.scheme_str(), uri.port_u16()), (Some("http"), Some(80)) | (Some("https"), Some(443)));
    let value = match uri.port() {
        Some(port) if !default_port => format!("{host}:{port}"),
        _ => host.to_owned(),
    };
    HeaderValue::from_str(&value).ok()
}

/// The URI with its path and query in S3's canonical encoding, query order and value-less
/// parameters (`?uploads`) kept as sent; and the canonical query string, the same encoded
/// pairs sorted, so that the query is encoded once for both. `None` when the URI is already
/// that (no query, path already canonical: the usual GET or PUT of an object), so that it is
/// not rebuilt.
fn s3_encoded_uri(uri: &Uri) -> Result<Option<(Uri, String)>, SignError> {
    let path = canonical_uri(uri.path());
    if uri.query().is_none() && path == uri.path() {
        return Ok(None);
    }
    let mut path_and_query = path.into_owned();
    let mut separator = '?';
    let mut pairs = Vec::new();
    for param in uri.query().unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (name, value) = match param.split_once('=') {
            Some((name, value)) => (name, Some(value)),
            None => (param, None),
        };
        for raw in std::iter::once(name).chain(value) {
            percent_decode_str(raw).decode_utf8().map_err(|_| SignError::NonUtf8Query)?;
        }
        let (name, value) = (encode_component(name), value.map(encode_component));
        path_and_query.push(separator);
        separator = '&';
        path_and_query.push_str(&name);
        if let Some(value) = &value {
            path_and_query.push('=');
            path_and_query.push_str(value);
        }
        pairs.push((name, value.unwrap_or_default()));
    }
    pairs.sort();
    let mut parts = uri.clone().into_parts();
    parts.path_and_query =
        Some(path_and_query.parse().map_err(|e: http::uri::InvalidUri| SignError::Uri(e.to_string()))?);
    let uri = Uri::from_parts(parts).map_err(|e| SignError::Uri(e.to_string()))?;
    Ok(Some((uri, join_params(&pairs))))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests;
