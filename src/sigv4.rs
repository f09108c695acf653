//! AWS Signature Version 4 as S3 speaks it.
//!
//! S3's dialect differs from generic SigV4 in ways that break a naive verifier: the path is
//! encoded exactly once and never normalized (`a//b/../c` is a valid key), the payload hash is a
//! header the client sends (`x-amz-content-sha256`) and may name a streaming mode instead of a
//! hash, and bodies may arrive as signed `aws-chunked` frames. This module verifies incoming
//! requests (header and presigned-URL auth), decodes aws-chunked bodies ([`chunked`]), mints
//! presigned URLs, and re-signs requests for the upstream over the same canonical-request code
//! (checked against the `aws-sigv4` crate in the tests).
//!
//! Nothing here logs: a signature, a secret or a presigned query must never reach a log line.

mod authorization;
mod canonical;
pub mod chunked;
mod key_cache;
mod payload;
mod presign;
mod sign;
#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests;

use std::fmt;

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use time::format_description::BorrowedFormatItem;
use time::macros::format_description;
use time::{OffsetDateTime, PrimitiveDateTime, UtcOffset};
use zeroize::Zeroizing;

#[cfg(feature = "fuzzing")]
pub(crate) use authorization::parse_authorization;
pub use authorization::{verify_header_auth, verify_service_auth, SignedHeaders};
pub use canonical::{canonical_query, canonical_request, canonical_uri};
pub use chunked::{ChunkSigning, ChunkedDecoder, Decoded};
pub use payload::{PayloadHash, PayloadMode};
pub use presign::{is_presigned, is_sigv2_query, presign_query, verify_presigned, QUERY_AUTH_PARAMS};
pub use sign::{host_from_uri, sign_upstream, sign_upstream_for, SignError};

pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";
/// Header names read on every request, made once: looked up by string, each lookup parsed the
/// name again.
pub(crate) const X_AMZ_DATE: http::HeaderName = http::HeaderName::from_static("x-amz-date");
pub(crate) const X_AMZ_CONTENT_SHA256: http::HeaderName = http::HeaderName::from_static("x-amz-content-sha256");
pub(crate) const X_AMZ_SECURITY_TOKEN: http::HeaderName = http::HeaderName::from_static("x-amz-security-token");
pub const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
pub const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";
pub const STREAMING_SIGNED: &str = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD";
pub const STREAMING_SIGNED_TRAILER: &str = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER";
pub const STREAMING_UNSIGNED_TRAILER: &str = "STREAMING-UNSIGNED-PAYLOAD-TRAILER";

/// The longest presigned URL lifetime S3 accepts (seven days). `verify_presigned` never allows
/// more, whatever the configured maximum, so a URL the gateway accepts is one S3 would accept.
pub const MAX_PRESIGN_EXPIRES: std::time::Duration = std::time::Duration::from_secs(604_800);

/// Why a request failed authentication. Each variant maps to the S3 error code of the same name
/// (`error.rs` does the mapping). Messages never contain a signature or a secret.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum SigV4Error {
    #[error("missing security header: {0}")]
    MissingSecurityHeader(String),
    #[error("the authorization header is malformed: {0}")]
    AuthorizationHeaderMalformed(String),
    #[error("the access key id does not exist in our records")]
    InvalidAccessKeyId,
    #[error("the request signature does not match the signature computed for it")]
    SignatureDoesNotMatch,
    #[error("the difference between the request time and the current time is too large")]
    RequestTimeTooSkewed,
    #[error("x-amz-content-sha256 is neither a SHA-256 hex digest nor a known payload mode: {0}")]
    InvalidContentSha256(String),
    #[error("error parsing the presigned query parameters: {0}")]
    AuthorizationQueryParametersError(String),
    #[error("the presigned request has expired")]
    RequestExpired,
    #[error("the request body is incomplete: {0}")]
    IncompleteBody(String),
    #[error("invalid aws-chunked body: {0}")]
    InvalidChunk(String),
    #[error("the body does not match the signed x-amz-content-sha256")]
    ContentSha256Mismatch,
    /// `x-amz-*` headers that the client sent but did not sign. S3 refuses them: an unsigned
    /// header could be added by anyone who captured the request or holds a presigned URL.
    #[error("there were headers present in the request which were not signed")]
    HeadersNotSigned(Vec<String>),
    /// Signature Version 2 (`Authorization: AWS ...`, `AWSAccessKeyId=` in a query or form).
    #[error("the authorization mechanism you have provided is not supported; use AWS4-HMAC-SHA256")]
    UnsupportedSigV2,
}

/// The credential scope: `YYYYMMDD/region/service/aws4_request`.
///
/// Held as that one string (with where its parts end) rather than a string per part: a small
/// request makes two scopes, one each way, and compares each with the signing keys at hand.
#[derive(Clone, PartialEq, Eq)]
pub struct Scope {
    /// `20130524/us-east-1/s3/aws4_request`
    text: String,
    /// Where the date and the region end in `text` (each at a `/`).
    date_end: usize,
    region_end: usize,
}

/// What ends every scope.
const SCOPE_TERMINATOR: &str = "/aws4_request";

impl Scope {
    /// The scope of `date` (`YYYYMMDD`), `region` and `service`. None of them may hold a `/`;
    /// the callers take them from a parsed credential or from s3gate's own settings.
    pub fn new(date: &str, region: &str, service: &str) -> Self {
        let mut text = String::with_capacity(date.len() + region.len() + service.len() + 2 + SCOPE_TERMINATOR.len());
        for (i, part) in [date, region, service].into_iter().enumerate() {
            if i > 0 {
                text.push('/');
            }
            text.push_str(part);
        }
        text.push_str(SCOPE_TERMINATOR);
        Self { text, date_end: date.len(), region_end: date.len() + 1 + region.len() }
    }

    /// Scope for S3 at the given time (used when minting signatures).
    pub fn s3(now: OffsetDateTime, region: &str) -> Self {
        let amz_date = format_amz_date(now);
        Self::new(&amz_date[..8], region, "s3")
    }

    pub fn date(&self) -> &str {
        &self.text[..self.date_end]
    }

    pub fn region(&self) -> &str {
        &self.text[self.date_end + 1..self.region_end]
    }

    pub fn service(&self) -> &str {
        &self.text[self.region_end + 1..self.text.len() - SCOPE_TERMINATOR.len()]
    }

    /// `20130524/us-east-1/s3/aws4_request`, as it appears in the string to sign.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The scope as an owned string (`Credential=` of a presigned URL, the chunk signer's).
    pub fn to_string_scope(&self) -> String {
        self.text.clone()
    }
}

impl fmt::Debug for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Scope")
            .field("date", &self.date())
            .field("region", &self.region())
            .field("service", &self.service())
            .finish()
    }
}

/// The last key of the HMAC chain. It stands in for the secret for as long as a request lives
/// (the chunk decoder needs it for every chunk), so it is wiped on drop and never printed.
#[derive(Clone)]
pub struct SigningKey(Zeroizing<[u8; 32]>);

impl SigningKey {
    pub fn derive(secret: &str, scope: &Scope) -> Self {
        let mut k_secret = Zeroizing::new(Vec::with_capacity(4 + secret.len()));
        k_secret.extend_from_slice(b"AWS4");
        k_secret.extend_from_slice(secret.as_bytes());
        let k_date = Zeroizing::new(hmac_sha256(&k_secret, scope.date().as_bytes()));
        let k_region = Zeroizing::new(hmac_sha256(&*k_date, scope.region().as_bytes()));
        let k_service = Zeroizing::new(hmac_sha256(&*k_region, scope.service().as_bytes()));
        Self(Zeroizing::new(hmac_sha256(&*k_service, b"aws4_request")))
    }

    pub fn sign(&self, string_to_sign: &str) -> [u8; 32] {
        hmac_sha256(&*self.0, string_to_sign.as_bytes())
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SigningKey(<redacted>)")
    }
}

/// `AWS4-HMAC-SHA256\n<amz_date>\n<scope>\n<hex sha256(canonical request)>`.
pub fn string_to_sign(amz_date: &str, scope: &Scope, canonical_request: &str) -> String {
    let mut out = String::with_capacity(ALGORITHM.len() + amz_date.len() + 48 + 64 + 3);
    push_string_to_sign(&mut out, amz_date, scope, canonical_request);
    out
}

fn push_string_to_sign(out: &mut String, amz_date: &str, scope: &Scope, canonical_request: &str) {
    out.push_str(ALGORITHM);
    out.push('\n');
    out.push_str(amz_date);
    out.push('\n');
    out.push_str(scope.as_str());
    out.push('\n');
    push_hex(out, &Sha256::digest(canonical_request.as_bytes()).into());
}

/// Canonical requests and strings to sign above this size are not kept for the next request.
const SCRATCH_KEPT: usize = 16 * 1024;

thread_local! {
    /// [`signature_of`]'s canonical request and string to sign.
    static SCRATCH: std::cell::RefCell<(String, String)> = const { std::cell::RefCell::new((String::new(), String::new())) };
}

/// The signature, under `key`, of the canonical request that `write` appends to the string
/// it is given. Every request signs twice (the client's signature checked, the upstream's
/// made), and each time built two strings only to hash them: they are built in two buffers
/// each thread keeps instead.
pub(crate) fn signature_of<E>(
    key: &SigningKey,
    amz_date: &str,
    scope: &Scope,
    write: impl FnOnce(&mut String) -> Result<(), E>,
) -> Result<[u8; 32], E> {
    let sign = |creq: &mut String, sts: &mut String| {
        creq.clear();
        sts.clear();
        write(creq)?;
        push_string_to_sign(sts, amz_date, scope, creq);
        let signature = key.sign(sts);
        for buffer in [creq, sts] {
            if buffer.capacity() > SCRATCH_KEPT {
                *buffer = String::new();
            }
        }
        Ok(signature)
    };
    SCRATCH.with(|scratch| match scratch.try_borrow_mut() {
        Ok(mut buffers) => {
            let (creq, sts) = &mut *buffers;
            sign(creq, sts)
        }
        // Only if `write` itself signed something.
        Err(_) => sign(&mut String::new(), &mut String::new()),
    })
}

/// Constant-time comparison, so that response timing does not reveal how many leading bytes of
/// a forged signature were right.
pub fn signatures_equal(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

/// Outcome of a successful verification: what the body layer needs to verify chunks.
#[derive(Clone)]
pub struct Verified {
    pub access_key_id: String,
    pub scope: Scope,
    /// `20130524T000000Z`
    pub amz_date: String,
    pub seed_signature: [u8; 32],
    pub signing_key: SigningKey,
    /// For presigned requests: `Unsigned` unless the client sent `x-amz-content-sha256`.
    pub payload: PayloadMode,
    pub presigned: bool,
    /// The headers the signature covers, lower case. Only these (and a short list of standard
    /// headers S3 accepts unsigned) are forwarded: see `proxy::headers::forwardable`.
    pub signed_headers: SignedHeaders,
}

/// By hand so that a `{:?}` of a verified request cannot put its signature in a log.
impl fmt::Debug for Verified {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verified")
            .field("access_key_id", &self.access_key_id)
            .field("scope", &self.scope)
            .field("amz_date", &self.amz_date)
            .field("seed_signature", &"<redacted>")
            .field("signing_key", &self.signing_key)
            .field("payload", &self.payload)
            .field("presigned", &self.presigned)
            .field("signed_headers", &self.signed_headers)
            .finish()
    }
}

pub(crate) fn hmac_sha256(key: &[u8], data: &[u8]) -> [u8; 32] {
    // HMAC accepts keys of any length (long ones are hashed first), so this cannot fail.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) else {
        unreachable!("HMAC-SHA256 accepts keys of any length")
    };
    mac.update(data);
    mac.finalize().into_bytes().into()
}

pub(crate) fn sha256_hex(data: &[u8]) -> String {
    let mut out = String::with_capacity(64);
    push_hex(&mut out, &Sha256::digest(data).into());
    out
}

/// A digest or signature as 64 lowercase hex digits (SigV4's encoding), on the stack: `hex`'s
/// slice encoder, without the per-character iterator and allocation of `hex::encode`.
pub(crate) fn hex32(digest: &[u8; 32]) -> [u8; 64] {
    let mut out = [0u8; 64];
    // 32 bytes always take exactly 64 digits.
    let _ = hex::encode_to_slice(digest, &mut out);
    out
}

/// Appends [`hex32`] of `digest`.
pub(crate) fn push_hex(out: &mut String, digest: &[u8; 32]) {
    out.push_str(std::str::from_utf8(&hex32(digest)).unwrap_or_default());
}

/// Decodes exactly 64 hex digits, either case; anything else is `None`.
///
/// By table, two lookups a byte: every request decodes two of these (its signature and its
/// payload hash), and `hex`'s general decoder took as long as a tenth of a SHA-256 block each.
pub(crate) fn parse_hex32(value: &str) -> Option<[u8; 32]> {
    let digits: &[u8; 64] = value.as_bytes().try_into().ok()?;
    let mut out = [0u8; 32];
    let mut bad = 0u8;
    for (byte, pair) in out.iter_mut().zip(digits.chunks_exact(2)) {
        let (hi, lo) = (HEX_VALUE[usize::from(pair[0])], HEX_VALUE[usize::from(pair[1])]);
        bad |= (hi | lo) & 0x10;
        *byte = (hi << 4) | (lo & 0x0f);
    }
    (bad == 0).then_some(out)
}

/// Each byte's value as a hex digit, or `0x10` (a bit no digit has) for a non-digit.
const HEX_VALUE: [u8; 256] = {
    let mut table = [0x10u8; 256];
    let mut i = 0;
    while i < 10 {
        table[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        table[b'a' as usize + i] = 10 + i as u8;
        table[b'A' as usize + i] = 10 + i as u8;
        i += 1;
    }
    table
};

const AMZ_DATE_FORMAT: &[BorrowedFormatItem<'static>] =
    format_description!("[year][month][day]T[hour][minute][second]Z");
const HTTP_DATE_FORMAT: &[BorrowedFormatItem<'static>] =
    format_description!("[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT");

/// ISO 8601 basic format in UTC, as SigV4 wants it: `20130524T000000Z`.
///
/// Every upstream request is signed with the current second, so each thread keeps the last
/// second it formatted: the calendar arithmetic runs once a second, not once a request.
pub(crate) fn format_amz_date(t: OffsetDateTime) -> String {
    thread_local! {
        static LAST: std::cell::RefCell<(i64, String)> = const { std::cell::RefCell::new((i64::MIN, String::new())) };
    }
    let second = t.unix_timestamp();
    LAST.with(|last| {
        let mut last = last.borrow_mut();
        if last.0 != second {
            *last = (second, format_amz_date_uncached(t));
        }
        last.1.clone()
    })
}

fn format_amz_date_uncached(t: OffsetDateTime) -> String {
    let t = t.to_offset(UtcOffset::UTC);
    // Formatting fails only when the value lacks a component the format names, and an
    // OffsetDateTime has them all.
    t.format(AMZ_DATE_FORMAT).unwrap_or_else(|_| String::from("00000000T000000Z"))
}

/// `20130524T000000Z`, read by hand: the `time` crate's general parser walks a format
/// description item by item, which on every request cost more than the rest of this check.
pub(crate) fn parse_amz_date(value: &str) -> Option<OffsetDateTime> {
    let b: &[u8; 16] = value.as_bytes().try_into().ok()?;
    if b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    let number =
        |digits: &[u8]| digits.iter().try_fold(0u32, |n, &d| d.is_ascii_digit().then(|| n * 10 + u32::from(d - b'0')));
    let year = i32::try_from(number(&b[0..4])?).ok()?;
    let month = time::Month::try_from(u8::try_from(number(&b[4..6])?).ok()?).ok()?;
    let day = u8::try_from(number(&b[6..8])?).ok()?;
    let date = time::Date::from_calendar_date(year, month, day).ok()?;
    let (hour, minute, second) = (number(&b[9..11])?, number(&b[11..13])?, number(&b[13..15])?);
    let at =
        time::Time::from_hms(u8::try_from(hour).ok()?, u8::try_from(minute).ok()?, u8::try_from(second).ok()?).ok()?;
    Some(PrimitiveDateTime::new(date, at).assume_utc())
}

/// The RFC 1123 `Date` header, which S3 accepts when `x-amz-date` is absent.
pub(crate) fn parse_http_date(value: &str) -> Option<OffsetDateTime> {
    PrimitiveDateTime::parse(value.trim(), HTTP_DATE_FORMAT).ok().map(PrimitiveDateTime::assume_utc)
}

/// `x-amz-*` headers whose values the signature binds even when SignedHeaders does not list
/// them: the canonical request ends with the payload hash, and the string to sign carries the
/// request time. Changing either breaks the signature, so neither can be slipped in.
const BOUND_UNLISTED: &[&str] = &["x-amz-content-sha256", "x-amz-date"];

/// Refuses `x-amz-*` headers that the signature does not cover, as S3 does, after the
/// signature itself was found good (so an unauthenticated caller learns nothing from it).
/// Without this, whoever holds a presigned PUT URL, or replays a captured request within the
/// skew window, could add `x-amz-copy-source`, `x-amz-acl` or `x-amz-tagging` and have
/// s3gate's own upstream signature vouch for them.
pub(crate) fn check_all_amz_headers_signed(
    headers: &http::HeaderMap,
    signed: &SignedHeaders,
) -> Result<(), SigV4Error> {
    let mut unsigned: Vec<String> = headers
        .keys()
        .map(http::HeaderName::as_str)
        .filter(|name| name.starts_with("x-amz-") && !BOUND_UNLISTED.contains(name))
        .filter(|name| !signed.iter().any(|s| s.eq_ignore_ascii_case(name)))
        .map(str::to_owned)
        .collect();
    if unsigned.is_empty() {
        return Ok(());
    }
    unsigned.sort();
    unsigned.dedup();
    Err(SigV4Error::HeadersNotSigned(unsigned))
}

/// Whether two instants are further apart than `limit`, in either direction.
pub(crate) fn too_far_apart(a: OffsetDateTime, b: OffsetDateTime, limit: std::time::Duration) -> bool {
    (a - b).unsigned_abs() > limit
}
