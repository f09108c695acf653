//! Presigned URLs: the signature travels in the query (`X-Amz-Algorithm=...&X-Amz-Signature=...`)
//! so that a plain browser or `curl` can use the URL until it expires.

use http::header::HOST;
use percent_encoding::percent_decode_str;
use time::OffsetDateTime;

use super::authorization::{parse_credential, single_header, Request, SignedHeaders};
use super::canonical::{
    assemble, canonical_uri, encode_query_bytes, join_params, push_trimmed, raw_params, write_canonical_request,
};
use super::{
    check_all_amz_headers_signed, format_amz_date, parse_amz_date, parse_hex32, signature_of, signatures_equal,
    string_to_sign, too_far_apart, PayloadMode, Scope, SigV4Error, SigningKey, Verified, ALGORITHM,
    MAX_PRESIGN_EXPIRES, UNSIGNED_PAYLOAD,
};
use crate::credentials::SecretKey;

/// The query parameters that carry the signature, in the order `auth_params` returns them.
const AUTH_PARAMS: [&str; 6] =
    ["X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Date", "X-Amz-Expires", "X-Amz-SignedHeaders", "X-Amz-Signature"];

/// Every query parameter that belongs to a presigned URL's own authentication, session token
/// included: the classifier accepts them only in presigned URLs, and they never go upstream.
pub const QUERY_AUTH_PARAMS: [&str; 7] = [
    AUTH_PARAMS[0],
    AUTH_PARAMS[1],
    AUTH_PARAMS[2],
    AUTH_PARAMS[3],
    AUTH_PARAMS[4],
    AUTH_PARAMS[5],
    "X-Amz-Security-Token",
];

fn query_error(reason: impl Into<String>) -> SigV4Error {
    SigV4Error::AuthorizationQueryParametersError(reason.into())
}

/// Whether the request uses query auth: `X-Amz-Algorithm` is present (the name is matched
/// case-sensitively, as AWS sends it).
pub fn is_presigned(raw_query: Option<&str>) -> bool {
    raw_query
        .is_some_and(|q| raw_params(q).any(|(name, _)| percent_decode_str(name).decode_utf8_lossy() == AUTH_PARAMS[0]))
}

/// Whether the query carries a Signature Version 2 presigned URL (`AWSAccessKeyId=...&
/// Signature=...`), which S3 no longer accepts and neither does s3gate: the caller gets an
/// error that names SigV4 rather than "anonymous access".
pub fn is_sigv2_query(raw_query: Option<&str>) -> bool {
    raw_query.is_some_and(|q| {
        raw_params(q).any(|(name, _)| percent_decode_str(name).decode_utf8_lossy() == "AWSAccessKeyId")
    })
}

/// The decoded values of [`AUTH_PARAMS`]; each must appear exactly once.
fn auth_params(raw_query: &str) -> Result<[String; 6], SigV4Error> {
    let mut found: [Option<String>; 6] = Default::default();
    for (name, value) in raw_params(raw_query) {
        let name = percent_decode_str(name).decode_utf8_lossy();
        let Some(i) = AUTH_PARAMS.iter().position(|p| *p == name) else {
            continue;
        };
        let value = percent_decode_str(value).decode_utf8().map_err(|_| query_error(format!("{name} is not UTF-8")))?;
        if found[i].replace(value.into_owned()).is_some() {
            return Err(query_error(format!("{name} given twice")));
        }
    }
    let mut out: [String; 6] = Default::default();
    for (i, value) in found.into_iter().enumerate() {
        out[i] = value.ok_or_else(|| query_error(format!("missing {}", AUTH_PARAMS[i])))?;
    }
    Ok(out)
}

/// Verify presigned query auth. The payload hash is `UNSIGNED-PAYLOAD`, or the
/// `x-amz-content-sha256` header's value if the client sent one; `X-Amz-Signature` is left out
/// of the canonical query. A date further in the future than `max_skew` is
/// `RequestTimeTooSkewed` (S3 answers 403), a URL past its expiry `RequestExpired`, and
/// `X-Amz-Expires` outside `1..=max_expires` (never above seven days) a query parameters error.
#[allow(clippy::too_many_arguments)] // the signature other modules are written against
pub fn verify_presigned(
    method: &http::Method,
    raw_path: &str,
    raw_query: &str,
    headers: &http::HeaderMap,
    lookup: &dyn Fn(&str) -> Option<SecretKey>,
    now: OffsetDateTime,
    max_skew: std::time::Duration,
    max_expires: std::time::Duration,
) -> Result<Verified, SigV4Error> {
    let request = Request { method, raw_path, raw_query: Some(raw_query), headers };
    verify_presigned_for("s3", &request, lookup, now, max_skew, max_expires)
}

/// [`verify_presigned`] for any service name (tests run the generic SigV4 vectors through it).
pub(crate) fn verify_presigned_for(
    service: &str,
    req: &Request<'_>,
    lookup: &dyn Fn(&str) -> Option<SecretKey>,
    now: OffsetDateTime,
    max_skew: std::time::Duration,
    max_expires: std::time::Duration,
) -> Result<Verified, SigV4Error> {
    let raw_query = req.raw_query.unwrap_or("");
    let [algorithm, credential, amz_date, expires, signed, signature] = auth_params(raw_query)?;
    if algorithm != ALGORITHM {
        return Err(query_error("X-Amz-Algorithm must be AWS4-HMAC-SHA256"));
    }
    let (access_key_id, scope) = parse_credential(&credential, service).map_err(query_error)?;
    let date = parse_amz_date(&amz_date).ok_or_else(|| query_error("X-Amz-Date must be YYYYMMDDTHHMMSSZ"))?;
    if scope.date() != &amz_date[..8] {
        return Err(query_error("the credential date does not match X-Amz-Date"));
    }
    let limit = max_expires.min(MAX_PRESIGN_EXPIRES).as_secs();
    // Zero parses: S3 answers such a URL "Request has expired", as below, not a parse error.
    let expires: u64 = expires
        .parse()
        .ok()
        .filter(|e| *e <= limit)
        .ok_or_else(|| query_error(format!("X-Amz-Expires must be between 0 and {limit}")))?;
    let signed_headers = SignedHeaders::parse(&signed).map_err(query_error)?;
    let claimed = parse_hex32(&signature).ok_or_else(|| query_error("X-Amz-Signature must be 64 hex"))?;
    if !req.headers.contains_key(HOST) {
        return Err(SigV4Error::MissingSecurityHeader("host".to_owned()));
    }
    let content_sha256 = single_header(req.headers, &super::X_AMZ_CONTENT_SHA256)?;
    let payload = content_sha256.map(PayloadMode::parse).transpose()?;

    let secret = lookup(&access_key_id).ok_or(SigV4Error::InvalidAccessKeyId)?;
    if date > now && too_far_apart(date, now, max_skew) {
        return Err(SigV4Error::RequestTimeTooSkewed);
    }
    // `expires` is at most seven days, so this only overflows at the end of year 9999.
    let expiry = date.checked_add(time::Duration::seconds(i64::try_from(expires).unwrap_or(0)));
    if expires == 0 || expiry.is_some_and(|expiry| now > expiry) {
        return Err(SigV4Error::RequestExpired);
    }

    let cache = super::key_cache::global();
    let found = cache.find(secret.expose(), &scope);
    let computed = signature_of(&found.key, &amz_date, &scope, |creq| {
        let (method, payload) = (req.method.as_str(), content_sha256.unwrap_or(UNSIGNED_PAYLOAD));
        write_canonical_request(
            creq,
            method,
            req.raw_path,
            Some(raw_query),
            req.headers,
            &signed_headers,
            payload,
            true,
        )
    })?;
    if !signatures_equal(&computed, &claimed) {
        return Err(SigV4Error::SignatureDoesNotMatch);
    }
    if !found.cached {
        cache.keep(secret.expose(), &scope, &found.key);
    }
    let signing_key = found.key;
    check_all_amz_headers_signed(req.headers, &signed_headers)?;
    Ok(Verified {
        access_key_id,
        scope,
        amz_date,
        seed_signature: computed,
        signing_key,
        payload: payload.unwrap_or(PayloadMode::Unsigned),
        presigned: true,
        signed_headers: signed_headers.lowercase(),
    })
}

/// Mints a presigned URL's query (for `s3gate presign`): returns everything after `?`, the
/// `extra_query` parameters first (given decoded; they are escaped here) and then the
/// `X-Amz-*` ones. `raw_path` is the path exactly as it will appear in the URL (already
/// encoded). `signed_headers` are headers the URL's user must send, besides `host`. The payload
/// is `UNSIGNED-PAYLOAD`. No session token: s3gate's own keys are long-lived.
#[allow(clippy::too_many_arguments)] // the signature other modules are written against
pub fn presign_query(
    method: &str,
    host: &str,
    raw_path: &str,
    extra_query: &[(String, String)],
    access_key_id: &str,
    secret: &str,
    region: &str,
    now: OffsetDateTime,
    expires: std::time::Duration,
    signed_headers: &[(String, String)],
) -> String {
    let scope = Scope::s3(now, region);
    let amz_date = format_amz_date(now);

    let mut headers: Vec<(String, &str)> = signed_headers
        .iter()
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.as_str()))
        .chain([("host".to_owned(), host)])
        .collect();
    // Stable, so repeated headers keep their order, as they will on the wire.
    headers.sort_by(|a, b| a.0.cmp(&b.0));
    let mut lines: Vec<(String, String)> = Vec::with_capacity(headers.len());
    for (name, value) in headers {
        match lines.last_mut() {
            Some((last, joined)) if *last == name => {
                joined.push(',');
                push_trimmed(joined, value.as_bytes());
            }
            _ => {
                let mut joined = String::new();
                push_trimmed(&mut joined, value.as_bytes());
                lines.push((name, joined));
            }
        }
    }
    let signed_list = lines.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>().join(";");

    let credential = format!("{access_key_id}/{}", scope.to_string_scope());
    let expires = expires.as_secs().to_string();
    let auth = [ALGORITHM, &credential, &amz_date, &expires, &signed_list];
    let mut params: Vec<(String, String)> = extra_query
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .chain(AUTH_PARAMS.iter().copied().zip(auth))
        .map(|(n, v)| (encode_query_bytes(n.as_bytes()), encode_query_bytes(v.as_bytes())))
        .collect();
    let mut sorted = params.clone();
    sorted.sort();

    let names: Vec<&str> = lines.iter().map(|(n, _)| n.as_str()).collect();
    let mut values = lines.iter().map(|(_, v)| v.as_str());
    let push_value = |out: &mut String, _: &&str| {
        out.push_str(values.next().unwrap_or_default());
        Ok::<(), std::convert::Infallible>(())
    };
    let mut creq = String::new();
    let uri = canonical_uri(raw_path);
    let Ok(()) =
        assemble(&mut creq, method, &uri, &join_params(&sorted), names.iter().copied(), push_value, UNSIGNED_PAYLOAD);
    let signature = SigningKey::derive(secret, &scope).sign(&string_to_sign(&amz_date, &scope, &creq));
    params.push((AUTH_PARAMS[5].to_owned(), hex::encode(signature)));

    // A value-less parameter (`?uploads`) is written as the client would write it; it
    // canonicalizes to `uploads=` either way.
    let mut out = String::new();
    for (name, value) in &params {
        if !out.is_empty() {
            out.push('&');
        }
        out.push_str(name);
        if !value.is_empty() {
            out.push('=');
            out.push_str(value);
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests;
