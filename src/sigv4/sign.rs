//! Re-signing a request for the upstream S3 with the `aws-sigv4` crate.
//!
//! aws-sigv4 gets two things wrong for a proxy that forwards S3 paths as the client sent them,
//! so [`sign_upstream`] rewrites the URI into S3's canonical encoding first:
//!
//! - With `PercentEncodingMode::Single` it takes the path verbatim as the canonical URI, while
//!   S3 decodes it and re-encodes every byte outside `A-Z a-z 0-9 - . _ ~ /`. A raw
//!   `/test$file.text` would be signed as is but checked as `/test%24file.text`.
//! - It parses the query with `form_urlencoded`, which reads `+` as a space, while S3 (and our
//!   verifier) keep it a literal `+`; and it decodes non-UTF-8 escapes lossily.
//!
//! Re-encoding is harmless to S3: decoding the canonical form gives back the same bytes, so the
//! object key and parameter values do not change, and aws-sigv4 then signs exactly what S3
//! computes. A query whose escapes decode to non-UTF-8 cannot be signed that way and is refused.

use std::time::SystemTime;

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    sign, PayloadChecksumKind, PercentEncodingMode, SessionTokenMode, SignableBody, SignableRequest, SigningSettings,
    UriPathNormalizationMode,
};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use http::header::{HeaderName, HeaderValue, HOST};
use http::Uri;
use percent_encoding::percent_decode_str;

use super::canonical::{canonical_uri, encode_component};
use super::PayloadMode;

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
    #[error("aws-sigv4: {0}")]
    Signing(String),
}

/// Headers that signing replaces; stale copies from the client must not survive next to them.
const REPLACED: [&str; 4] = ["authorization", "x-amz-date", "x-amz-content-sha256", "x-amz-security-token"];

/// Signs an outgoing request in place with aws-sigv4 and S3's settings (single encoding, no
/// path normalization, `x-amz-content-sha256`, session token signed).
///
/// Signs every header in `parts.headers` (the caller has removed hop-by-hop and auth headers
/// and set the final `Content-Length`), except the three aws-sigv4 leaves out by default because
/// proxies rewrite them (`user-agent`, `x-amzn-trace-id`, `transfer-encoding`), plus `host`: the
/// Host header, or else one set here from the URI authority. Sets `Authorization`, `x-amz-date`,
/// `x-amz-content-sha256` (= `payload_hash`: a hex digest, `UNSIGNED-PAYLOAD`,
/// `STREAMING-UNSIGNED-PAYLOAD-TRAILER`...) and `x-amz-security-token` when the credentials
/// have a session token. The URI is rewritten to S3's canonical encoding (see the module doc).
///
/// aws-sigv4 traces the request (header values included) at TRACE level: keep
/// `aws_sigv4=trace` out of production filters.
pub fn sign_upstream(
    parts: &mut http::request::Parts,
    creds: &Credentials,
    region: &str,
    payload_hash: &str,
    time: SystemTime,
) -> Result<(), SignError> {
    PayloadMode::parse(payload_hash).map_err(|_| SignError::PayloadHash(payload_hash.to_owned()))?;
    for name in REPLACED {
        parts.headers.remove(name);
    }
    parts.uri = s3_encoded_uri(&parts.uri)?;
    if !parts.headers.contains_key(HOST) {
        // Set it here rather than let the HTTP client derive it, so that what is sent is what
        // was signed (and because aws-sigv4 panics when it finds no host at all).
        let host = host_from_uri(&parts.uri).ok_or(SignError::NoHost)?;
        parts.headers.insert(HOST, host);
    }

    let mut settings = SigningSettings::default();
    settings.percent_encoding_mode = PercentEncodingMode::Single;
    settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
    settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
    settings.session_token_mode = SessionTokenMode::Include;
    let identity: Identity = creds.clone().into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name("s3")
        .time(time)
        .settings(settings)
        .build()
        .map_err(|e| SignError::Signing(e.to_string()))?
        .into();

    let uri = parts.uri.to_string();
    let headers = parts
        .headers
        .iter()
        .map(|(name, value)| {
            let value = value.to_str().map_err(|_| SignError::HeaderValue(name.to_string()))?;
            Ok((name.as_str(), value))
        })
        .collect::<Result<Vec<_>, SignError>>()?;
    let body = SignableBody::Precomputed(payload_hash.to_owned());
    let request = SignableRequest::new(parts.method.as_str(), uri, headers.into_iter(), body)
        .map_err(|e| SignError::Signing(e.to_string()))?;
    let (instructions, _signature) =
        sign(request, &params).map_err(|e| SignError::Signing(e.to_string()))?.into_parts();

    // Applied by hand: `apply_to_request_http1x` unwraps header values and wants a `Request`.
    let (new_headers, _query) = instructions.into_parts();
    for header in new_headers {
        let name = HeaderName::from_bytes(header.name().as_bytes())
            .map_err(|_| SignError::HeaderValue(header.name().to_owned()))?;
        let mut value =
            HeaderValue::from_str(header.value()).map_err(|_| SignError::HeaderValue(header.name().to_owned()))?;
        value.set_sensitive(header.sensitive() || name == http::header::AUTHORIZATION);
        parts.headers.insert(name, value);
    }
    Ok(())
}

/// `host[:port]` from the URI authority, the port left out when it is the scheme's default.
fn host_from_uri(uri: &Uri) -> Option<HeaderValue> {
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
/// parameters (`?uploads`) kept as sent.
fn s3_encoded_uri(uri: &Uri) -> Result<Uri, SignError> {
    let mut path_and_query = canonical_uri(uri.path());
    let mut separator = '?';
    for param in uri.query().unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (name, value) = match param.split_once('=') {
            Some((name, value)) => (name, Some(value)),
            None => (param, None),
        };
        for raw in std::iter::once(name).chain(value) {
            percent_decode_str(raw).decode_utf8().map_err(|_| SignError::NonUtf8Query)?;
        }
        path_and_query.push(separator);
        separator = '&';
        path_and_query.push_str(&encode_component(name));
        if let Some(value) = value {
            path_and_query.push('=');
            path_and_query.push_str(&encode_component(value));
        }
    }
    let mut parts = uri.clone().into_parts();
    parts.path_and_query =
        Some(path_and_query.parse().map_err(|e: http::uri::InvalidUri| SignError::Uri(e.to_string()))?);
    Uri::from_parts(parts).map_err(|e| SignError::Uri(e.to_string()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests;
