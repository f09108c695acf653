//! Hop-by-hop headers (RFC 9110 7.6.1): they describe one connection, not the request, so no
//! mode of s3gate passes them on, in either direction. The endpoint, the forward proxy and form
//! uploads all filter through here, so they agree on the list.

use http::header::{self, HeaderMap, HeaderName};

/// The hop-by-hop headers and the proxy headers among them.
pub const HEADERS: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Removes the hop-by-hop headers and every header `Connection` names.
///
/// Without allocating in the usual case, where `Connection` names only `close` or listed
/// headers (`keep-alive`): nearly every upstream answer carries one, so this runs for most
/// responses. Each pass over the names finds one listed header, removed by its static name.
pub fn remove(headers: &mut HeaderMap) {
    if names_unlisted(headers) {
        let named: Vec<HeaderName> =
            connection_tokens(headers).filter_map(|t| HeaderName::from_bytes(t.as_bytes()).ok()).collect();
        for n in named {
            headers.remove(n);
        }
    }
    while let Some(name) = headers.keys().find_map(|k| listed(k.as_str())) {
        headers.remove(name);
    }
}

/// The tokens of every `Connection` header, trimmed, empty ones left out, in any case.
pub fn connection_tokens(headers: &HeaderMap) -> impl Iterator<Item = &str> {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

/// Whether `Connection` names a header other than the listed ones (`close` names none).
fn names_unlisted(headers: &HeaderMap) -> bool {
    connection_tokens(headers)
        .any(|token| !token.eq_ignore_ascii_case("close") && !HEADERS.iter().any(|h| token.eq_ignore_ascii_case(h)))
}

/// The listed name equal to `name`. A `match` (by length, then bytes) rather than a walk of
/// [`HEADERS`]: every name of every answer goes through here.
fn listed(name: &str) -> Option<&'static str> {
    let found = match name {
        "connection" => HEADERS[0],
        "keep-alive" => HEADERS[1],
        "proxy-connection" => HEADERS[2],
        "proxy-authenticate" => HEADERS[3],
        "proxy-authorization" => HEADERS[4],
        "te" => HEADERS[5],
        "trailer" => HEADERS[6],
        "transfer-encoding" => HEADERS[7],
        "upgrade" => HEADERS[8],
        _ => return None,
    };
    Some(found)
}

/// Whether `name` is one of [`HEADERS`].
pub fn is_hop_by_hop(name: &str) -> bool {
    listed(name).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn hop_by_hop_and_connection_named_headers_go() {
        let mut h = HeaderMap::new();
        h.insert("connection", HeaderValue::from_static("close, x-private"));
        h.insert("x-private", HeaderValue::from_static("1"));
        h.insert("transfer-encoding", HeaderValue::from_static("chunked"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert("etag", HeaderValue::from_static("\"e\""));
        remove(&mut h);
        assert_eq!(h.keys().map(HeaderName::as_str).collect::<Vec<_>>(), ["etag"]);
    }

    #[test]
    fn the_match_and_the_list_agree() {
        for name in HEADERS {
            assert_eq!(listed(name), Some(*name));
        }
        assert_eq!(HEADERS.len(), 9, "a name added to HEADERS must be added to `listed` too");
        for other in ["", "connectio", "connections", "Connection", "x-amz-date", "tee", "upgrade "] {
            assert_eq!(listed(other), None, "{other:?}");
        }
    }

    #[test]
    fn every_listed_header_goes_and_others_stay() {
        for name in HEADERS {
            let mut h = HeaderMap::new();
            h.insert(HeaderName::from_static(name), HeaderValue::from_static("x"));
            h.insert("x-amz-meta-a", HeaderValue::from_static("1"));
            remove(&mut h);
            assert_eq!(h.keys().map(HeaderName::as_str).collect::<Vec<_>>(), ["x-amz-meta-a"], "{name}");
        }
        let mut h = HeaderMap::new();
        h.insert("x-amz-meta-a", HeaderValue::from_static("1"));
        remove(&mut h);
        assert_eq!(h.len(), 1, "nothing hop-by-hop: nothing removed");
    }

    #[test]
    fn connection_may_name_headers_in_any_case_and_spacing() {
        let mut h = HeaderMap::new();
        h.append("connection", HeaderValue::from_static("Keep-Alive ,  X-Private"));
        h.append("connection", HeaderValue::from_static("CLOSE,,x-other"));
        h.insert("x-private", HeaderValue::from_static("1"));
        h.insert("x-other", HeaderValue::from_static("2"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert("upgrade", HeaderValue::from_static("h2c"));
        h.insert("etag", HeaderValue::from_static("\"e\""));
        remove(&mut h);
        assert_eq!(h.keys().map(HeaderName::as_str).collect::<Vec<_>>(), ["etag"]);

        // Only listed names: nothing else goes.
        let mut h = HeaderMap::new();
        h.insert("connection", HeaderValue::from_static("keep-alive, close"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert("x-amz-request-id", HeaderValue::from_static("r"));
        remove(&mut h);
        assert_eq!(h.keys().map(HeaderName::as_str).collect::<Vec<_>>(), ["x-amz-request-id"]);
    }
}
