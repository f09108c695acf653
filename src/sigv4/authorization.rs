//! Header auth: `Authorization: AWS4-HMAC-SHA256 Credential=..., SignedHeaders=..., Signature=...`.

use http::header::{AUTHORIZATION, DATE, HOST};
use http::{HeaderMap, HeaderName, Method};
use time::OffsetDateTime;

use super::{
    canonical::write_canonical_request, check_all_amz_headers_signed, format_amz_date, parse_amz_date, parse_hex32,
    parse_http_date, signature_of, signatures_equal, too_far_apart, PayloadMode, Scope, SigV4Error, Verified,
    ALGORITHM, X_AMZ_CONTENT_SHA256, X_AMZ_DATE,
};
use crate::credentials::SecretKey;

/// What the `Authorization` header (or the presigned query) claims.
pub(crate) struct Claim {
    pub access_key_id: String,
    pub scope: Scope,
    pub signed_headers: SignedHeaders,
    pub signature: [u8; 32],
}

/// Parses `AKID/20130524/us-east-1/s3/aws4_request`. Split from the right so that the access key
/// id is whatever precedes the four scope parts. The error is a reason for the caller to wrap in
/// its own variant (header and query auth report different S3 errors).
pub(crate) fn parse_credential(value: &str, service: &str) -> Result<(String, Scope), String> {
    let mut parts = value.rsplitn(5, '/');
    let (Some(terminator), Some(svc), Some(region), Some(date), Some(akid)) =
        (parts.next(), parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("credential must be <key>/<date>/<region>/<service>/aws4_request".to_owned());
    };
    if akid.is_empty() || region.is_empty() {
        return Err("credential has an empty access key id or region".to_owned());
    }
    if date.len() != 8 || !date.bytes().all(|b| b.is_ascii_digit()) {
        return Err("credential date must be YYYYMMDD".to_owned());
    }
    if svc != service {
        return Err(format!("credential service must be {service:?}"));
    }
    if terminator != "aws4_request" {
        return Err("credential must end in aws4_request".to_owned());
    }
    let scope = Scope::new(date, region, svc);
    Ok((akid.to_owned(), scope))
}

/// The names of a [`SignedHeaders`], as `str::split(';')` gives them. By hand: the list is read
/// some six times a request (checked, canonicalized twice, matched against the headers sent
/// and forwarded), and `split`'s searcher is made for long texts, not three short names.
#[derive(Clone)]
pub struct Names<'a>(Option<&'a str>);

impl<'a> Iterator for Names<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        let rest = self.0?;
        match rest.bytes().position(|b| b == b';') {
            Some(at) => {
                self.0 = Some(&rest[at + 1..]);
                Some(&rest[..at])
            }
            None => {
                self.0 = None;
                Some(rest)
            }
        }
    }
}

/// The `SignedHeaders` list, `host;range;x-amz-date`, kept as the one string it was sent as
/// (a small request's three names were a list and three strings, made and freed per request).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedHeaders(String);

impl SignedHeaders {
    /// `host` is mandatory: without it a signature could be replayed against another bucket's
    /// virtual host.
    pub(crate) fn parse(value: &str) -> Result<Self, String> {
        let list = Self(value.to_owned());
        if list.iter().any(str::is_empty) {
            return Err("SignedHeaders has an empty name".to_owned());
        }
        if !list.iter().any(|n| n.eq_ignore_ascii_case("host")) {
            return Err("SignedHeaders must include host".to_owned());
        }
        Ok(list)
    }

    /// A list of `names` as given, unchecked, for tests that build odd lists.
    #[cfg(test)]
    pub(crate) fn of(names: &[impl AsRef<str>]) -> Self {
        Self(names.iter().map(AsRef::as_ref).collect::<Vec<_>>().join(";"))
    }

    /// The names in the order they were listed.
    pub fn iter(&self) -> Names<'_> {
        Names(Some(&self.0))
    }

    /// The list as sent, names joined by `;`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// In place: the list keeps its allocation.
    pub(crate) fn lowercase(mut self) -> Self {
        self.0.make_ascii_lowercase();
        self
    }
}

fn malformed(reason: impl Into<String>) -> SigV4Error {
    SigV4Error::AuthorizationHeaderMalformed(reason.into())
}

/// Parses the header. Accepts `, ` or `,` between the three fields, in any order.
pub(crate) fn parse_authorization(value: &str, service: &str) -> Result<Claim, SigV4Error> {
    let Some(fields) = value.strip_prefix(ALGORITHM).and_then(|r| r.strip_prefix(' ')) else {
        if value.starts_with("AWS ") {
            return Err(SigV4Error::UnsupportedSigV2);
        }
        return Err(malformed("the authorization algorithm must be AWS4-HMAC-SHA256"));
    };
    let (mut credential, mut signed, mut signature) = (None, None, None);
    for field in fields.split(',').map(str::trim).filter(|f| !f.is_empty()) {
        let (name, value) = field.split_once('=').ok_or_else(|| malformed("a field lacks '='"))?;
        let slot = match name {
            "Credential" => &mut credential,
            "SignedHeaders" => &mut signed,
            "Signature" => &mut signature,
            _ => return Err(malformed("unknown authorization field")),
        };
        if slot.replace(value).is_some() {
            return Err(malformed(format!("{name} given twice")));
        }
    }
    let credential = credential.ok_or_else(|| malformed("missing Credential"))?;
    let signed = signed.ok_or_else(|| malformed("missing SignedHeaders"))?;
    let signature = signature.ok_or_else(|| malformed("missing Signature"))?;
    let (access_key_id, scope) = parse_credential(credential, service).map_err(malformed)?;
    let signed_headers = SignedHeaders::parse(signed).map_err(malformed)?;
    let signature = parse_hex32(signature).ok_or_else(|| malformed("Signature must be 64 hex digits"))?;
    Ok(Claim { access_key_id, scope, signed_headers, signature })
}

/// The one value of a header as text; `Ok(None)` if absent. Duplicates of headers that carry
/// auth data are refused rather than guessed at.
pub(crate) fn single_header<'a>(headers: &'a HeaderMap, name: &HeaderName) -> Result<Option<&'a str>, SigV4Error> {
    let mut values = headers.get_all(name).iter();
    let Some(first) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(malformed(format!("more than one {name} header")));
    }
    first.to_str().map(Some).map_err(|_| malformed(format!("{name} is not visible ASCII")))
}

/// The request time: `x-amz-date`, or else `Date`, which S3 also accepts.
fn request_date(headers: &HeaderMap) -> Result<(OffsetDateTime, String), SigV4Error> {
    let parsed = if let Some(value) = single_header(headers, &X_AMZ_DATE)? {
        parse_amz_date(value)
    } else if let Some(value) = single_header(headers, &DATE)? {
        parse_http_date(value)
    } else {
        return Err(SigV4Error::MissingSecurityHeader("x-amz-date or Date".to_owned()));
    };
    // S3 answers an unparsable date like a missing one: it needs a *valid* date header.
    let date = parsed.ok_or_else(|| SigV4Error::MissingSecurityHeader("a valid x-amz-date or Date".to_owned()))?;
    Ok((date, format_amz_date(date)))
}

/// Verify header auth (`Authorization: AWS4-HMAC-SHA256 ...`).
///
/// `raw_path` and `raw_query` are exactly what the client sent on the request line. `lookup`
/// maps an access key id to its secret. Checks run in S3's order, so clients see the error S3
/// would give them: malformed header, missing headers, unknown key, clock skew, signature.
pub fn verify_header_auth(
    method: &Method,
    raw_path: &str,
    raw_query: Option<&str>,
    headers: &HeaderMap,
    lookup: &dyn Fn(&str) -> Option<SecretKey>,
    now: OffsetDateTime,
    max_skew: std::time::Duration,
) -> Result<Verified, SigV4Error> {
    let request = Request { method, raw_path, raw_query, headers };
    verify_header_auth_for("s3", &request, lookup, now, max_skew)
}

/// The request as received, bundled to keep signatures short.
pub(crate) struct Request<'a> {
    pub method: &'a Method,
    pub raw_path: &'a str,
    pub raw_query: Option<&'a str>,
    pub headers: &'a HeaderMap,
}

/// [`verify_header_auth`] for any service name; the generic SigV4 test vectors sign for
/// `service`, and only tests pass anything but `s3`.
pub(crate) fn verify_header_auth_for(
    service: &str,
    req: &Request<'_>,
    lookup: &dyn Fn(&str) -> Option<SecretKey>,
    now: OffsetDateTime,
    max_skew: std::time::Duration,
) -> Result<Verified, SigV4Error> {
    verify_header_auth_with(service, req, None, lookup, now, max_skew)
}

/// Header auth for a service other than S3 (s3gate's own STS): such clients send no
/// `x-amz-content-sha256`, so the payload hash is that of the body, which the caller read
/// (bounded) and hashed. A header that is sent must match it.
#[allow(clippy::too_many_arguments)] // the request's parts, as `verify_header_auth` takes them
pub fn verify_service_auth(
    service: &str,
    method: &Method,
    raw_path: &str,
    raw_query: Option<&str>,
    headers: &HeaderMap,
    body_sha256: &str,
    lookup: &dyn Fn(&str) -> Option<SecretKey>,
    now: OffsetDateTime,
    max_skew: std::time::Duration,
) -> Result<Verified, SigV4Error> {
    let request = Request { method, raw_path, raw_query, headers };
    verify_header_auth_with(service, &request, Some(body_sha256), lookup, now, max_skew)
}

fn verify_header_auth_with(
    service: &str,
    req: &Request<'_>,
    body_sha256: Option<&str>,
    lookup: &dyn Fn(&str) -> Option<SecretKey>,
    now: OffsetDateTime,
    max_skew: std::time::Duration,
) -> Result<Verified, SigV4Error> {
    let authorization = single_header(req.headers, &AUTHORIZATION)?
        .ok_or_else(|| SigV4Error::MissingSecurityHeader("Authorization".to_owned()))?;
    let claim = parse_authorization(authorization, service)?;

    let (date, amz_date) = request_date(req.headers)?;
    let sent = single_header(req.headers, &X_AMZ_CONTENT_SHA256)?;
    let content_sha256 = match (sent, body_sha256) {
        (Some(sent), Some(body)) if !sent.eq_ignore_ascii_case(body) => return Err(SigV4Error::ContentSha256Mismatch),
        (_, Some(body)) => body,
        (Some(sent), None) => sent,
        (None, None) => return Err(SigV4Error::MissingSecurityHeader("x-amz-content-sha256".to_owned())),
    };
    if !req.headers.contains_key(HOST) {
        return Err(SigV4Error::MissingSecurityHeader("host".to_owned()));
    }
    let payload = PayloadMode::parse(content_sha256)?;
    if claim.scope.date() != &amz_date[..8] {
        return Err(malformed("the credential date does not match the request date"));
    }

    let secret = lookup(&claim.access_key_id).ok_or(SigV4Error::InvalidAccessKeyId)?;
    if too_far_apart(now, date, max_skew) {
        return Err(SigV4Error::RequestTimeTooSkewed);
    }

    let cache = super::key_cache::global();
    let found = cache.find(secret.expose(), &claim.scope);
    let signature = signature_of(&found.key, &amz_date, &claim.scope, |creq| {
        let (method, path, query) = (req.method.as_str(), req.raw_path, req.raw_query);
        write_canonical_request(creq, method, path, query, req.headers, &claim.signed_headers, content_sha256, false)
    })?;
    if !signatures_equal(&signature, &claim.signature) {
        return Err(SigV4Error::SignatureDoesNotMatch);
    }
    if !found.cached {
        cache.keep(secret.expose(), &claim.scope, &found.key);
    }
    let signing_key = found.key;
    check_all_amz_headers_signed(req.headers, &claim.signed_headers)?;
    Ok(Verified {
        access_key_id: claim.access_key_id,
        scope: claim.scope,
        amz_date,
        seed_signature: signature,
        signing_key,
        payload,
        presigned: false,
        signed_headers: claim.signed_headers.lowercase(),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests;
