//! The canonical request, S3 style.
//!
//! The verifier must rebuild byte for byte what the client hashed, from what the client put on
//! the wire. S3 differs from generic SigV4 here: the path is decoded once and encoded once (no
//! double encoding) and never normalized, because `a//b/./c` is a perfectly good object key.

use std::borrow::Cow;

use http::HeaderMap;
use percent_encoding::{percent_decode_str, percent_encode, AsciiSet, NON_ALPHANUMERIC};

use super::{SigV4Error, SignedHeaders};

/// Everything except the RFC 3986 unreserved characters is escaped, `/` included: SigV4's
/// rule for query names and values.
const QUERY_SET: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');
/// The same for the path, where `/` separates segments and stays as it is.
const PATH_SET: &AsciiSet = &QUERY_SET.remove(b'/');

/// Canonical URI: the raw path percent-decoded once, then every byte outside the unreserved set
/// and `/` escaped with uppercase hex. No normalization: `//` and `..` are kept.
pub fn canonical_uri(raw_path: &str) -> Cow<'_, str> {
    // Most keys need no escaping at all: then decoding and encoding change nothing, and the
    // path is its own canonical form (two per request, one each way, went through `fmt`).
    if !raw_path.is_empty() && raw_path.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~/".contains(&b)) {
        return Cow::Borrowed(raw_path);
    }
    Cow::Owned(general_canonical_uri(raw_path))
}

fn general_canonical_uri(raw_path: &str) -> String {
    let decoded: Cow<'_, [u8]> = percent_decode_str(raw_path).into();
    if decoded.is_empty() {
        return "/".to_owned();
    }
    percent_encode(&decoded, PATH_SET).to_string()
}

/// One query name or value in canonical form. A `+` is a literal plus (S3 does not read it as
/// a space), so it becomes `%2B`.
pub(crate) fn encode_component(raw: &str) -> String {
    let decoded: Cow<'_, [u8]> = percent_decode_str(raw).into();
    encode_query_bytes(&decoded)
}

/// Escapes already-decoded bytes for a query name or value (presigned URLs we mint).
pub(crate) fn encode_query_bytes(decoded: &[u8]) -> String {
    percent_encode(decoded, QUERY_SET).to_string()
}

/// Splits a raw query into `(name, value)` as sent, skipping the empty pieces that `&&` leaves.
/// A parameter without `=` has an empty value.
pub(crate) fn raw_params(raw_query: &str) -> impl Iterator<Item = (&str, &str)> {
    raw_query.split('&').filter(|p| !p.is_empty()).map(|p| p.split_once('=').unwrap_or((p, "")))
}

/// Canonical query string: names and values re-encoded, sorted by name then value (on the
/// encoded form, as the spec says), joined as `name=value` with `&`.
pub fn canonical_query(raw_query: &str, exclude_signature_param: bool) -> String {
    let mut params: Vec<(String, String)> = raw_params(raw_query)
        .map(|(name, value)| (encode_component(name), encode_component(value)))
        .filter(|(name, _)| !(exclude_signature_param && name == "X-Amz-Signature"))
        .collect();
    params.sort();
    join_params(&params)
}

pub(crate) fn join_params(params: &[(String, String)]) -> String {
    let mut out = String::new();
    for (i, (name, value)) in params.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        out.push_str(name);
        out.push('=');
        out.push_str(value);
    }
    out
}

/// Appends a header value with leading and trailing spaces removed and inner runs of spaces
/// collapsed to one. Only spaces, like S3 and the AWS SDKs: a tab inside a value is kept.
pub(crate) fn push_trimmed(out: &mut String, value: &[u8]) {
    match std::str::from_utf8(value) {
        Ok(value) => push_trimmed_str(out, value),
        // Non-UTF-8 bytes (obs-text) cannot be reproduced exactly; the signature then simply fails.
        Err(_) => push_trimmed_str(out, &String::from_utf8_lossy(value)),
    }
}

fn push_trimmed_str(out: &mut String, value: &str) {
    let value = value.trim_matches(' ');
    // The usual value has no run of spaces: one copy, no per-character work. (By bytes: a
    // substring search sets itself up first, which cost more than the scan on every value.)
    if !value.as_bytes().windows(2).any(|pair| pair == b"  ") {
        out.push_str(value);
        return;
    }
    let mut after_space = false;
    for c in value.chars() {
        if c == ' ' && after_space {
            continue;
        }
        after_space = c == ' ';
        out.push(c);
    }
}

/// All occurrences of a header in request order, each trimmed, joined with `,`, appended to
/// `out`. A header that is signed but absent yields an empty value: the signature comparison
/// decides.
fn push_canonical_header_value(out: &mut String, headers: &HeaderMap, name: &str) {
    let lower;
    let name = if name.bytes().any(|b| b.is_ascii_uppercase()) {
        lower = name.to_ascii_lowercase();
        lower.as_str()
    } else {
        name
    };
    for (i, value) in headers.get_all(name).iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_trimmed(out, value.as_bytes());
    }
}

/// The canonical request. `signed_headers` is used in the order the client listed it (SDKs
/// always sort it), `payload_hash` is the `x-amz-content-sha256` value exactly as sent (or
/// `UNSIGNED-PAYLOAD` for presigned URLs), and `exclude_signature_param` drops `X-Amz-Signature`
/// from the query, for presigned URLs.
pub fn canonical_request(
    method: &str,
    raw_path: &str,
    raw_query: Option<&str>,
    headers: &HeaderMap,
    signed_headers: &SignedHeaders,
    payload_hash: &str,
    exclude_signature_param: bool,
) -> Result<String, SigV4Error> {
    let mut out = String::new();
    write_canonical_request(
        &mut out,
        method,
        raw_path,
        raw_query,
        headers,
        signed_headers,
        payload_hash,
        exclude_signature_param,
    )?;
    Ok(out)
}

/// [`canonical_request`] appended to `out`: verification writes it to a buffer each thread
/// keeps (see [`super::signature_of`]), as it hashes it at once.
#[allow(clippy::too_many_arguments)] // `canonical_request`'s, and where to write
pub(crate) fn write_canonical_request(
    out: &mut String,
    method: &str,
    raw_path: &str,
    raw_query: Option<&str>,
    headers: &HeaderMap,
    signed_headers: &SignedHeaders,
    payload_hash: &str,
    exclude_signature_param: bool,
) -> Result<(), SigV4Error> {
    if signed_headers.as_str().is_empty() {
        return Err(SigV4Error::AuthorizationHeaderMalformed("no signed headers".to_owned()));
    }
    if let Some(bad) = signed_headers.iter().find(|h| !is_header_name(h)) {
        let shown: String = bad.chars().take(64).collect();
        return Err(SigV4Error::AuthorizationHeaderMalformed(format!("invalid signed header name {shown:?}")));
    }
    let lookup = |out: &mut String, name: &&str| {
        push_canonical_header_value(out, headers, name);
        Ok::<(), std::convert::Infallible>(())
    };
    let Ok(()) = assemble(
        out,
        method,
        &canonical_uri(raw_path),
        &canonical_query(raw_query.unwrap_or(""), exclude_signature_param),
        signed_headers.iter(),
        lookup,
        payload_hash,
    );
    Ok(())
}

/// Puts the parts together in the order SigV4 fixes, appended to `out`, each signed header's
/// value written by `push_value` straight into the request (no string per header line). Shared
/// by verification (values from a `HeaderMap`), upstream signing and `presign_query` (values as
/// strings). `names` are the signed headers in the order given; they are joined with `;` for
/// the signed-headers line.
pub(crate) fn assemble<N: AsRef<str>, E>(
    out: &mut String,
    method: &str,
    uri: &str,
    query: &str,
    names: impl Iterator<Item = N> + Clone,
    mut push_value: impl FnMut(&mut String, &N) -> Result<(), E>,
    payload_hash: &str,
) -> Result<(), E> {
    out.reserve(512 + uri.len() + query.len());
    for part in [method, "\n", uri, "\n", query, "\n"] {
        out.push_str(part);
    }
    for name in names.clone() {
        out.push_str(name.as_ref());
        out.push(':');
        push_value(out, &name)?;
        out.push('\n');
    }
    out.push('\n');
    for (i, name) in names.enumerate() {
        if i > 0 {
            out.push(';');
        }
        out.push_str(name.as_ref());
    }
    out.push('\n');
    out.push_str(payload_hash);
    Ok(())
}

/// An RFC 9110 token: what a header name may contain.
fn is_header_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn uri_is_decoded_once_and_encoded_once() {
        assert_eq!(canonical_uri("/test$file.text"), "/test%24file.text");
        assert_eq!(canonical_uri("/a%20b"), "/a%20b");
        assert_eq!(canonical_uri("/a+b"), "/a%2Bb");
        assert_eq!(canonical_uri("/a%2Bb"), "/a%2Bb");
        assert_eq!(canonical_uri("/%e1%88%b4"), "/%E1%88%B4");
        assert_eq!(canonical_uri("/a%2Fb"), "/a/b");
        assert_eq!(canonical_uri("/-._~AZaz09"), "/-._~AZaz09");
        assert_eq!(canonical_uri(""), "/");
    }

    proptest::proptest! {
        #[test]
        fn the_short_way_to_a_canonical_uri_agrees_with_the_general_one(
            path in "[a-zA-Z0-9/._~%+ -]{0,24}|/\\PC{0,12}",
        ) {
            proptest::prop_assert_eq!(canonical_uri(&path), general_canonical_uri(&path));
        }
    }

    #[test]
    fn uri_is_never_normalized() {
        for path in ["//", "/a//b//", "/./a", "/a/../b", "/example/.."] {
            assert_eq!(canonical_uri(path), path);
        }
    }

    #[test]
    fn query_rules() {
        assert_eq!(canonical_query("lifecycle", false), "lifecycle=");
        assert_eq!(canonical_query("prefix=J&max-keys=2", false), "max-keys=2&prefix=J");
        assert_eq!(canonical_query("a=1&&b=2&", false), "a=1&b=2");
        assert_eq!(canonical_query("k=a+b", false), "k=a%2Bb");
        assert_eq!(canonical_query("k=a%20b/c", false), "k=a%20b%2Fc");
        assert_eq!(canonical_query("p=2&p=1", false), "p=1&p=2");
        assert_eq!(canonical_query("Param-3=x&Param=y", false), "Param=y&Param-3=x");
        assert_eq!(canonical_query("a=b=c", false), "a=b%3Dc");
        assert_eq!(canonical_query("X-Amz-Signature=00&a=1", true), "a=1");
        assert_eq!(canonical_query("X-Amz-Signature=00&a=1", false), "X-Amz-Signature=00&a=1");
        assert_eq!(canonical_query("", false), "");
    }

    #[test]
    fn headers_are_trimmed_joined_and_listed_as_signed() {
        let mut headers = HeaderMap::new();
        headers.insert("host", HeaderValue::from_static("h:8080"));
        headers.append("x-multi", HeaderValue::from_static("  b   c  "));
        headers.append("x-multi", HeaderValue::from_static("a"));
        headers.insert("x-tab", HeaderValue::from_static("a\tb"));
        let signed = SignedHeaders::of(&["host", "x-missing", "X-Multi", "x-tab"]);
        let creq = canonical_request("GET", "/", None, &headers, &signed, "UNSIGNED-PAYLOAD", false);
        assert_eq!(
            creq.unwrap(),
            "GET\n/\n\nhost:h:8080\nx-missing:\nX-Multi:b c,a\nx-tab:a\tb\n\n\
             host;x-missing;X-Multi;x-tab\nUNSIGNED-PAYLOAD"
        );
    }

    #[test]
    fn values_lose_outer_spaces_and_runs_of_spaces_only() {
        for (raw, want) in [
            ("plain", "plain"),
            ("  a  ", "a"),
            ("a   b    c", "a b c"),
            ("a\t\tb", "a\t\tb"),
            (" \ta  b\t ", "\ta b\t"),
            ("", ""),
            ("     ", ""),
            ("ü  ß", "ü ß"),
        ] {
            let mut out = String::new();
            push_trimmed(&mut out, raw.as_bytes());
            assert_eq!(out, want, "{raw:?}");
        }
        let mut out = String::new();
        push_trimmed(&mut out, b"a  \xff");
        assert_eq!(out, "a \u{fffd}");
    }

    #[test]
    fn rejects_empty_or_invalid_signed_headers() {
        let headers = HeaderMap::new();
        for signed in [SignedHeaders::of(&[""; 0]), SignedHeaders::of(&["host", "bad name"])] {
            let r = canonical_request("GET", "/", None, &headers, &signed, "x", false);
            assert!(matches!(r, Err(SigV4Error::AuthorizationHeaderMalformed(_))));
        }
    }
}
