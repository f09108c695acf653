//! Absolute-form plain-HTTP requests: `GET http://bucket.s3.amazonaws.com/key HTTP/1.1`.
//!
//! The request goes to the destination as origin-form (`GET /key`) on a connection of its own,
//! with hop-by-hop and `Proxy-*` headers removed and everything else untouched, Host included,
//! so the client's SigV4 signature stays valid. Bodies stream both ways; nothing is buffered.
//! One upstream connection per request keeps the proxy stateless; S3 over plain HTTP is rare
//! enough (HTTPS goes through CONNECT) that pooling would buy little.

use std::sync::Arc;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Request, Response, Uri, Version};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;

use super::allow::{self, Destination, Via};
use super::dial::dial;
use super::record::{Record, Refusal};
use super::traffic::{Direction, MeteredBody};
use super::Forwarder;
use crate::body::{self, Body};

pub async fn forward(fwd: Arc<Forwarder>, req: Request<Incoming>, mut record: Record) -> Response<Body> {
    let dest = match destination(req.uri()) {
        Ok(d) => d,
        Err(why) => return record.refuse(Refusal::BadRequest(why)),
    };
    record.destination = Some(dest.to_string());
    if let Err(why) = fwd.config.allow.check(&dest, Via::PlainHttp) {
        return record.refuse(Refusal::Denied(why));
    }
    let (parts, incoming) = req.into_parts();
    let headers = match outgoing_headers(&parts.headers, &parts.uri) {
        Ok(h) => h,
        Err(why) => return record.refuse(Refusal::BadRequest(why)),
    };
    let Ok(permit) = fwd.permits.clone().try_acquire_owned() else {
        return record.refuse(Refusal::Busy);
    };
    let stream = match dial(&dest, &fwd.config.connect_to, fwd.config.connect_timeout).await {
        Ok(s) => s,
        Err(e) => return record.refuse(Refusal::Dial(e)),
    };
    let (mut sender, conn) = match hyper::client::conn::http1::handshake(TokioIo::new(stream)).await {
        Ok(pair) => pair,
        Err(e) => return record.refuse(Refusal::Upstream(format!("destination: {e}"))),
    };
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(target: "s3gate::forward", error = %e, "destination connection ended with an error");
        }
    });

    let mut out = Request::new(MeteredBody::new(incoming, record.traffic.clone(), Direction::Up, ()));
    *out.method_mut() = parts.method;
    *out.uri_mut() = origin_form(&parts.uri);
    *out.version_mut() = Version::HTTP_11;
    *out.headers_mut() = headers;

    let traffic = record.traffic.clone();
    let limit = fwd.config.idle_timeout;
    let resp = tokio::select! {
        res = sender.send_request(out) => match res {
            Ok(resp) => resp,
            Err(e) => return record.refuse(Refusal::Upstream(format!("destination: {e}"))),
        },
        () = traffic.idle(limit) => return record.refuse(Refusal::Idle),
    };
    record.allowed = true;
    record.status = resp.status().as_u16();
    let (mut parts, incoming) = resp.into_parts();
    remove_hop_by_hop(&mut parts.headers);
    let keep = (record, permit, fwd.clone());
    let body = MeteredBody::new(incoming, traffic, Direction::Down, keep).with_idle_timeout(limit);
    Response::from_parts(parts, body::boxed(body))
}

/// The destination of an absolute-form `http://` URI; port 80 unless given.
fn destination(uri: &Uri) -> Result<Destination, String> {
    let Some(authority) = uri.authority() else {
        return Err("this is a proxy: send CONNECT host:port, or an absolute URL (http://host/path)".into());
    };
    if uri.scheme_str() != Some("http") {
        return Err(format!("only http:// URLs are forwarded as requests; use CONNECT for {uri}"));
    }
    if authority.as_str().contains('@') {
        return Err("the URL must not hold user information".into());
    }
    allow::parse_destination(authority.host(), authority.port_u16().unwrap_or(80))
}

/// `/path?query` of an absolute URI.
fn origin_form(uri: &Uri) -> Uri {
    let pq = uri.path_and_query().map(|pq| pq.as_str()).filter(|s| !s.is_empty()).unwrap_or("/");
    pq.parse().unwrap_or_else(|_| Uri::from_static("/"))
}

/// The client's headers minus hop-by-hop and `Proxy-*` ones. Host must name what the URI
/// names (RFC 9112 3.2.2): it is what the client signed, and what the proxy checked and dials.
fn outgoing_headers(client: &HeaderMap, uri: &Uri) -> Result<HeaderMap, String> {
    let authority = uri.authority().map(|a| a.as_str()).unwrap_or_default();
    let mut headers = client.clone();
    remove_hop_by_hop(&mut headers);
    match headers.get(header::HOST).map(|h| h.to_str()) {
        None => {
            let host = HeaderValue::from_str(authority).map_err(|_| "bad host in the URL".to_owned())?;
            headers.insert(header::HOST, host);
        }
        Some(Ok(host)) if same_authority(host, authority) => {}
        Some(_) => return Err("the Host header does not match the URL".into()),
    }
    Ok(headers)
}

/// Case-insensitive, and `host` equals `host:80`.
fn same_authority(a: &str, b: &str) -> bool {
    let strip = |s: &str| s.strip_suffix(":80").unwrap_or(s).to_ascii_lowercase();
    strip(a) == strip(b)
}

/// Removes hop-by-hop headers, the ones `Connection` names, and every `Proxy-*` header.
fn remove_hop_by_hop(headers: &mut HeaderMap) {
    crate::hop_by_hop::remove(headers);
    let proxy: Vec<HeaderName> = headers.keys().filter(|k| k.as_str().starts_with("proxy-")).cloned().collect();
    for name in proxy {
        headers.remove(name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        pairs.iter().map(|(k, v)| (HeaderName::from_static(k), HeaderValue::from_static(v))).collect()
    }

    #[test]
    fn hop_by_hop_proxy_and_connection_named_headers_go() {
        let mut h = map(&[
            ("connection", "keep-alive, x-private"),
            ("keep-alive", "timeout=5"),
            ("proxy-authorization", "Basic abc"),
            ("proxy-connection", "keep-alive"),
            ("x-private", "1"),
            ("transfer-encoding", "chunked"),
            ("authorization", "AWS4-HMAC-SHA256 ..."),
            ("x-amz-date", "20250101T000000Z"),
            ("expect", "100-continue"),
        ]);
        remove_hop_by_hop(&mut h);
        let mut left: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        left.sort_unstable();
        assert_eq!(left, ["authorization", "expect", "x-amz-date"]);
    }

    #[test]
    fn host_stays_as_signed_and_must_match_the_url() {
        let uri: Uri = "http://bucket.s3.amazonaws.com/key?x=1".parse().expect("uri");
        let h = outgoing_headers(&map(&[("host", "bucket.s3.amazonaws.com")]), &uri).expect("same host");
        assert_eq!(h[header::HOST], "bucket.s3.amazonaws.com");
        let h = outgoing_headers(&HeaderMap::new(), &uri).expect("no host");
        assert_eq!(h[header::HOST], "bucket.s3.amazonaws.com");
        assert!(outgoing_headers(&map(&[("host", "elsewhere.example")]), &uri).is_err());
        assert!(same_authority("S3.amazonaws.com:80", "s3.amazonaws.com"));
        assert_eq!(origin_form(&uri), "/key?x=1");
        assert_eq!(origin_form(&"http://s3.amazonaws.com".parse().expect("uri")), "/");
    }

    #[test]
    fn only_absolute_http_urls_are_forwarded() {
        let d = destination(&"http://s3.amazonaws.com/b/k".parse().expect("uri")).expect("http");
        assert_eq!(d.to_string(), "s3.amazonaws.com:80");
        let d = destination(&"http://s3.amazonaws.com:9000/".parse().expect("uri")).expect("port");
        assert_eq!(d.port, 9000);
        for bad in ["/b/k", "https://s3.amazonaws.com/", "http://user:pw@s3.amazonaws.com/"] {
            assert!(destination(&bad.parse().expect("uri")).is_err(), "{bad}");
        }
    }
}
