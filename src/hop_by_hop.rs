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
/// One pass over the names finds what to remove, so that a map holding none of them (most
/// requests hold at most `Connection`) costs no lookup per listed header.
pub fn remove(headers: &mut HeaderMap) {
    let mut present: Vec<HeaderName> = headers.keys().filter(|k| is_hop_by_hop(k.as_str())).cloned().collect();
    if present.is_empty() {
        return;
    }
    present.extend(
        headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|s| HeaderName::from_bytes(s.trim().as_bytes()).ok()),
    );
    for n in present {
        headers.remove(n);
    }
}

/// Whether `name` is one of [`HEADERS`].
pub fn is_hop_by_hop(name: &str) -> bool {
    HEADERS.contains(&name)
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
}
