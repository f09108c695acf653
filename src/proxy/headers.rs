//! Which client headers go upstream, and the few s3gate sets itself.

use http::header::{self, HeaderMap, HeaderValue};

use crate::error::{S3Error, S3ErrorCode};
use crate::sigv4::SignedHeaders;

/// The client's own authentication, replaced by s3gate's upstream signature; `expect` because
/// s3gate already answered the client's 100-continue; `content-length` because each payload
/// mode sets its own.
const REPLACED: &[&str] = &[
    "authorization",
    "x-amz-date",
    "x-amz-content-sha256",
    "x-amz-security-token",
    "host",
    "expect",
    "content-length",
    "x-amz-decoded-content-length",
];

/// Standard headers S3 itself accepts without a signature, forwarded even when the client did
/// not sign them (a browser adds `Content-Type` to a presigned PUT, for one). Each either
/// describes the object as S3 stores it or narrows what the request does; none changes which
/// operation runs or who may see the object. `content-md5` is here because it can only make
/// S3 refuse a body, never accept another one. Every other header goes upstream only if the
/// client's signature covers it, and every `x-amz-*` header must be signed (the verifier refuses
/// the request otherwise).
pub const FORWARDED_UNSIGNED: &[&str] = &[
    "cache-control",
    "content-disposition",
    "content-encoding",
    "content-language",
    "content-md5",
    "content-type",
    "expires",
    "if-match",
    "if-modified-since",
    "if-none-match",
    "if-unmodified-since",
    "range",
    "user-agent",
];

/// The client's headers that go upstream: those its signature covers (`signed`, lower case)
/// and [`FORWARDED_UNSIGNED`], minus hop-by-hop, auth and the ones each payload mode rewrites.
pub fn forwardable(client: &HeaderMap, signed: &SignedHeaders) -> HeaderMap {
    let mut out = HeaderMap::with_capacity(upstream_capacity(client.len()));
    // Read once, not once per header; empty (no allocation) when the client sent no `Connection`.
    let named: Vec<&str> = crate::hop_by_hop::connection_tokens(client).collect();
    for (name, value) in client {
        let n = name.as_str();
        if crate::hop_by_hop::is_hop_by_hop(n)
            || REPLACED.contains(&n)
            || named.iter().any(|c| c.eq_ignore_ascii_case(n))
        {
            continue;
        }
        if !FORWARDED_UNSIGNED.contains(&n) && !signed.iter().any(|s| s == n) {
            continue;
        }
        out.append(name.clone(), value.clone());
    }
    out
}

/// Room for an upstream request's headers: the client's that pass, those signing adds, and
/// those of the answer. hyper reads the answer's headers into the request's map once it has
/// written the request, so a map sized for the request alone grew (and rehashed) on every
/// answer.
pub fn upstream_capacity(forwarded: usize) -> usize {
    forwarded.max(8) + 16
}

/// A copy of an upstream request's headers, with the room [`upstream_capacity`] gives (a
/// `clone` is sized to the entries alone).
pub fn copy_for_upstream(headers: &HeaderMap) -> HeaderMap {
    let mut out = HeaderMap::with_capacity(upstream_capacity(headers.len()));
    for (name, value) in headers {
        out.append(name.clone(), value.clone());
    }
    out
}

pub fn content_length(headers: &HeaderMap) -> Result<Option<u64>, S3Error> {
    match headers.get(header::CONTENT_LENGTH) {
        None => Ok(None),
        Some(v) => v
            .to_str()
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
            .map(Some)
            .ok_or_else(|| S3Error::new(S3ErrorCode::BadRequest, "Invalid Content-Length")),
    }
}

pub fn set_content_length(headers: &mut HeaderMap, len: Option<u64>) {
    if let Some(n) = len {
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(n));
    }
}

/// PUT and POST carry `Content-Length: 0` when empty (S3 answers 411 without it); other
/// methods send no length at all, as clients do.
pub fn set_empty_body_length(headers: &mut HeaderMap, method: &http::Method) {
    if *method == http::Method::PUT || *method == http::Method::POST {
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
    }
}

/// The checksum a client promises in its trailer (`x-amz-trailer: x-amz-checksum-crc32`).
pub fn announced_trailer_checksum(headers: &HeaderMap) -> Option<crate::checksum::Algorithm> {
    headers
        .get("x-amz-trailer")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').find_map(crate::checksum::Algorithm::from_header_name))
}

pub fn decoded_content_length(headers: &HeaderMap) -> Result<u64, S3Error> {
    let v = headers.get("x-amz-decoded-content-length").ok_or_else(|| {
        S3Error::new(S3ErrorCode::MissingContentLength, "You must provide the x-amz-decoded-content-length header.")
    })?;
    v.to_str()
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .ok_or_else(|| S3Error::invalid_argument("Invalid x-amz-decoded-content-length"))
}

/// `aws-chunked` describes the framing s3gate removes, not the stored object: drop it from
/// Content-Encoding and keep any real encoding (`aws-chunked,gzip` -> `gzip`).
pub fn strip_aws_chunked_encoding(headers: &mut HeaderMap) {
    let rest: Vec<String> = headers
        .get_all(header::CONTENT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|s| s.trim())
        .filter(|s| !s.is_empty() && !s.eq_ignore_ascii_case("aws-chunked"))
        .map(str::to_owned)
        .collect();
    headers.remove(header::CONTENT_ENCODING);
    if !rest.is_empty() {
        if let Ok(v) = HeaderValue::from_str(&rest.join(",")) {
            headers.insert(header::CONTENT_ENCODING, v);
        }
    }
}

/// For the unsigned-trailer framing s3gate sends upstream.
pub fn add_aws_chunked_encoding(headers: &mut HeaderMap) {
    let value = match headers.get(header::CONTENT_ENCODING).and_then(|v| v.to_str().ok()) {
        Some(rest) => format!("aws-chunked,{rest}"),
        None => "aws-chunked".to_owned(),
    };
    if let Ok(v) = HeaderValue::from_str(&value) {
        headers.insert(header::CONTENT_ENCODING, v);
    }
}

/// `x-amz-copy-source: /bucket/key` names a client-facing bucket; when its route gives the
/// upstream another name for it, the upstream must see that name.
pub fn alias_copy_source(headers: &mut HeaderMap, router: &crate::upstream::Router) {
    let Some(value) = headers.get(&crate::s3_request::X_AMZ_COPY_SOURCE).and_then(|v| v.to_str().ok()) else { return };
    let trimmed = value.strip_prefix('/').unwrap_or(value);
    let (raw_bucket, rest) = trimmed.split_once('/').unwrap_or((trimmed, ""));
    let Ok(bucket) = percent_encoding::percent_decode_str(raw_bucket).decode_utf8() else { return };
    let Some(alias) = router.route(Some(&bucket)).alias.clone() else { return };
    if let Ok(v) = HeaderValue::from_str(&format!("/{alias}/{rest}")) {
        headers.insert(crate::s3_request::X_AMZ_COPY_SOURCE, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::header::HeaderName;

    #[test]
    fn a_copy_for_the_upstream_keeps_every_value_in_order_with_room_to_grow() {
        let mut h = HeaderMap::new();
        h.append("x-amz-meta-a", HeaderValue::from_static("1"));
        h.append("range", HeaderValue::from_static("bytes=0-1"));
        h.append("x-amz-meta-a", HeaderValue::from_static("2"));
        let copy = copy_for_upstream(&h);
        assert_eq!(copy, h);
        let values: Vec<_> = copy.get_all("x-amz-meta-a").iter().collect();
        assert_eq!(values, ["1", "2"]);
        assert!(copy.capacity() >= upstream_capacity(h.len()), "{}", copy.capacity());
        let out = forwardable(&h, &SignedHeaders::of(&["host", "x-amz-meta-a"]));
        assert!(out.capacity() >= 24, "room for signing and for the answer's headers: {}", out.capacity());
    }

    #[test]
    fn drops_hop_by_hop_auth_and_connection_named_headers() {
        let mut h = HeaderMap::new();
        h.insert("connection", HeaderValue::from_static("keep-alive, x-private"));
        h.insert("x-private", HeaderValue::from_static("1"));
        h.insert("authorization", HeaderValue::from_static("AWS4-HMAC-SHA256 ..."));
        h.insert("x-amz-meta-a", HeaderValue::from_static("b"));
        h.insert("range", HeaderValue::from_static("bytes=0-1"));
        h.insert("expect", HeaderValue::from_static("100-continue"));
        let signed = SignedHeaders::of(&["host", "x-amz-meta-a", "x-private", "connection", "expect"]);
        let out = forwardable(&h, &signed);
        assert_eq!(out.len(), 2);
        assert!(out.contains_key("x-amz-meta-a") && out.contains_key("range"));
    }

    #[test]
    fn only_signed_headers_and_the_standard_unsigned_ones_are_forwarded() {
        let mut h = HeaderMap::new();
        for (name, value) in [
            ("x-amz-meta-a", "signed"),
            ("x-custom", "unsigned"),
            ("origin", "https://app.example"),
            ("content-type", "image/png"),
            ("if-match", "\"e\""),
            ("content-md5", "1B2M2Y8AsgTpgAmY7PhCfg=="),
            ("x-forwarded-for", "10.0.0.1"),
        ] {
            h.insert(HeaderName::from_static(name), HeaderValue::from_static(value));
        }
        let out = forwardable(&h, &SignedHeaders::parse("host;x-amz-meta-a").expect("a list"));
        let mut names: Vec<&str> = out.keys().map(HeaderName::as_str).collect();
        names.sort_unstable();
        assert_eq!(names, ["content-md5", "content-type", "if-match", "x-amz-meta-a"]);
    }

    #[test]
    fn aws_chunked_is_removed_but_real_encodings_stay() {
        let mut h = HeaderMap::new();
        h.insert("content-encoding", HeaderValue::from_static("aws-chunked,gzip"));
        strip_aws_chunked_encoding(&mut h);
        assert_eq!(h["content-encoding"], "gzip");
        let mut h = HeaderMap::new();
        h.insert("content-encoding", HeaderValue::from_static("aws-chunked"));
        strip_aws_chunked_encoding(&mut h);
        assert!(!h.contains_key("content-encoding"));
    }
}
