//! Presigned URLs under the gateway's own name: minting them (`s3gate presign`, the
//! `/_s3gate/presign` API) and browser form uploads (S3 POST Object, [`post`]).
//!
//! Checking a presigned GET/PUT/HEAD/DELETE when it comes back is SigV4 query auth and lives in
//! `sigv4`; this is the other half. A URL is signed with a *client* credential that s3gate
//! issued, never with the upstream's, and it names the gateway's public host and the bucket's
//! real name. When it comes back s3gate verifies it like any client request and signs the
//! upstream request itself, so the upstream keys never leave the gateway and revoking the client
//! credential revokes every URL minted with it.

pub mod api;
pub mod cli;
pub mod post;
#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests;

use std::time::Duration;

use http::{HeaderMap, Method, Uri};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::credentials::Credential;
use crate::error::{S3Error, S3ErrorCode};
use crate::s3_request;
use crate::sigv4::{self, MAX_PRESIGN_EXPIRES};

/// What to presign: one object, one method, for how long.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MintRequest {
    pub bucket: String,
    /// The object key, decoded (`a b/c.txt`); it is encoded once, here, for the URL.
    pub key: String,
    /// GET, PUT, HEAD or DELETE.
    pub method: Method,
    /// 1 second to 7 days.
    pub expires: Duration,
    /// For PUT: the `Content-Type` the uploader must send (it is signed, so another is refused).
    pub content_type: Option<String>,
}

impl MintRequest {
    /// The IAM action the URL grants, for checking that the minting credential may do it.
    pub fn action(&self) -> &'static str {
        match self.method {
            Method::PUT => "s3:PutObject",
            Method::DELETE => "s3:DeleteObject",
            _ => "s3:GetObject",
        }
    }

    /// `arn:aws:s3:::bucket/key`, the resource the URL grants the action on.
    pub fn resource_arn(&self) -> String {
        format!("arn:aws:s3:::{}/{}", self.bucket, self.key)
    }

    /// The request the URL will make, classified as the proxy classifies requests, so the
    /// minting credential's policy is checked exactly as the URL's use will be.
    pub fn as_s3_request(&self) -> Result<s3_request::S3Request, PresignError> {
        classify_object(&self.method, &self.bucket, &self.key, &HeaderMap::new())
    }
}

/// Classifies `METHOD /bucket/key` (path style, no query) with `headers` as the proxy would.
pub(crate) fn classify_object(
    method: &Method,
    bucket: &str,
    key: &str,
    headers: &HeaderMap,
) -> Result<s3_request::S3Request, PresignError> {
    let path = format!("/{bucket}/{}", s3_request::encode_key(key));
    let s3 = s3_request::classify(method, "", &path, None, headers, &[]).map_err(classify_error)?;
    if s3.bucket.as_deref() != Some(bucket) {
        return Err(PresignError::Bucket(bucket.to_owned()));
    }
    if s3.key.as_deref() != Some(key) {
        return Err(PresignError::Key("the key must not be empty".into()));
    }
    Ok(s3)
}

fn classify_error(e: s3_request::ClassifyError) -> PresignError {
    match e {
        s3_request::ClassifyError::InvalidBucketName(b) => PresignError::Bucket(b),
        s3_request::ClassifyError::InvalidUri(m) | s3_request::ClassifyError::InvalidArgument(m) => {
            PresignError::Key(m)
        }
    }
}

/// A minted URL and what its user needs to know to use it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Minted {
    pub url: String,
    pub method: Method,
    /// When the URL stops working, RFC 3339 in UTC (`2024-05-01T12:00:00Z`).
    pub expires_at: String,
    /// Headers the request must carry with exactly these values (they are signed).
    pub headers: Vec<(String, String)>,
}

/// Why a URL could not be minted. Each is the caller's mistake, never an internal fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PresignError {
    #[error("method must be GET, PUT, HEAD or DELETE, not {0}")]
    Method(String),
    #[error("expiry must be between 1 second and 7 days (604800 seconds)")]
    Expires,
    #[error("invalid bucket name: {0:?}")]
    Bucket(String),
    #[error("invalid object key: {0}")]
    Key(String),
    #[error("public URL: {0}")]
    PublicUrl(String),
    #[error("content type: {0}")]
    ContentType(String),
}

impl From<PresignError> for S3Error {
    fn from(e: PresignError) -> Self {
        match e {
            PresignError::Bucket(b) => {
                S3Error::new(S3ErrorCode::InvalidBucketName, "The specified bucket is not valid.").with_resource(b)
            }
            other => S3Error::invalid_argument(other.to_string()),
        }
    }
}

/// Mints a presigned URL for `req`, signed with `credential`, under `public_url`.
///
/// The URL is virtual-hosted (`https://BUCKET.s3.example.com/KEY`) when the public URL's host
/// is one of `domains`, else path style (`https://gateway/BUCKET/KEY`). Over https a bucket
/// with dots is always path style, as the AWS SDKs do it: `a.b.s3.example.com` is not covered
/// by a `*.s3.example.com` certificate. `region` is the scope's region: one the gateway serves.
pub fn mint(
    req: &MintRequest,
    credential: &Credential,
    public_url: &Uri,
    domains: &[String],
    region: &str,
    now: OffsetDateTime,
) -> Result<Minted, PresignError> {
    if !matches!(req.method, Method::GET | Method::PUT | Method::HEAD | Method::DELETE) {
        return Err(PresignError::Method(req.method.to_string()));
    }
    if req.expires.is_zero() || req.expires > MAX_PRESIGN_EXPIRES {
        return Err(PresignError::Expires);
    }
    let signed_headers = match (&req.content_type, &req.method) {
        (None, _) => Vec::new(),
        (Some(ct), &Method::PUT) if !ct.trim().is_empty() && http::HeaderValue::from_str(ct).is_ok() => {
            vec![("content-type".to_owned(), ct.trim().to_owned())]
        }
        (Some(_), &Method::PUT) => return Err(PresignError::ContentType("not a valid header value".into())),
        (Some(_), _) => return Err(PresignError::ContentType("only a PUT URL can require one".into())),
    };
    let (host, path) = object_location(public_url, domains, &req.bucket, &req.key)?;
    // A URL is only useful if the gateway reads it back as this bucket and key, so ask the
    // classifier the proxy uses rather than trusting the encoding here.
    let read_back =
        s3_request::classify(&req.method, &host, &path, None, &HeaderMap::new(), domains).map_err(classify_error)?;
    if read_back.bucket.as_deref() != Some(req.bucket.as_str()) {
        return Err(PresignError::Bucket(req.bucket.clone()));
    }
    if read_back.key.as_deref() != Some(req.key.as_str()) {
        return Err(PresignError::Key("the key must not be empty".into()));
    }
    // X-Amz-Date has whole seconds; expires_at must be computed from the same instant.
    let now = now.to_offset(time::UtcOffset::UTC);
    let now = now - time::Duration::nanoseconds(i64::from(now.nanosecond()));
    let query = sigv4::presign_query(
        req.method.as_str(),
        &host,
        &path,
        &[],
        &credential.access_key_id,
        credential.secret.expose(),
        region,
        now,
        req.expires,
        &signed_headers,
    );
    let scheme = public_url.scheme_str().unwrap_or("https");
    let expires_at = (now + req.expires).format(&Rfc3339).map_err(|_| PresignError::Expires)?;
    Ok(Minted {
        url: format!("{scheme}://{host}{path}?{query}"),
        method: req.method.clone(),
        expires_at,
        headers: signed_headers,
    })
}

/// The `Host` and encoded path at which the gateway serves `bucket/key` under `public_url`.
/// [`post::post_object_response`] uses it for the `Location` of an upload too.
pub fn object_location(
    public_url: &Uri,
    domains: &[String],
    bucket: &str,
    key: &str,
) -> Result<(String, String), PresignError> {
    let authority = public_authority(public_url)?;
    let host_name = public_url.host().unwrap_or_default().trim_end_matches('.');
    let https = public_url.scheme_str() == Some("https");
    let virtual_hosted = domains.iter().any(|d| d.trim_end_matches('.').eq_ignore_ascii_case(host_name))
        && dns_compatible(bucket)
        && !(https && bucket.contains('.'));
    let encoded = s3_request::encode_key(key);
    Ok(if virtual_hosted {
        (format!("{bucket}.{authority}"), format!("/{encoded}"))
    } else {
        (authority, format!("/{bucket}/{encoded}"))
    })
}

/// Parses and checks a `--public-url` ([`crate::net::parse_public_url`]).
pub fn parse_public_url(text: &str) -> Result<Uri, PresignError> {
    crate::net::parse_public_url(text).map_err(PresignError::PublicUrl)
}

/// The public URL for a gateway reached at `host` (a request's Host header), for when no
/// `--public-url` is configured: URLs then name the host the caller already reaches.
pub fn public_url_from_host(host: &str, secure: bool) -> Result<Uri, PresignError> {
    let scheme = if secure { "https" } else { "http" };
    parse_public_url(&format!("{scheme}://{host}"))
}

/// `host[:port]`, without the scheme's default port: clients leave it out of the Host header
/// they send, and the signed `host` must be what they send.
fn public_authority(public_url: &Uri) -> Result<String, PresignError> {
    let host = public_url.host().ok_or_else(|| PresignError::PublicUrl("no host".into()))?.to_ascii_lowercase();
    let default_port = if public_url.scheme_str() == Some("https") { 443 } else { 80 };
    Ok(match public_url.port_u16() {
        Some(port) if port != default_port => format!("{host}:{port}"),
        _ => host,
    })
}

/// Whether `bucket` can be a DNS label prefix: lower case letters, digits, `-` and `.`.
fn dns_compatible(bucket: &str) -> bool {
    bucket.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
}

/// Parses an expiry such as `3600`, `90s`, `15m`, `12h` or `7d` (the CLI's `--expires`).
pub fn parse_duration(text: &str) -> Result<Duration, PresignError> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let n: u64 = digits.parse().map_err(|_| PresignError::Expires)?;
    let scale = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(PresignError::Expires),
    };
    let secs = n.checked_mul(scale).ok_or(PresignError::Expires)?;
    if secs == 0 || secs > MAX_PRESIGN_EXPIRES.as_secs() {
        return Err(PresignError::Expires);
    }
    Ok(Duration::from_secs(secs))
}
