//! Who may do what: network rules (checked before anything else) and per-credential policies
//! (checked before anything reaches the upstream).

use std::net::{IpAddr, SocketAddr};

use bytes::Bytes;
use bytes::BytesMut;
use http::HeaderMap;
use http_body_util::BodyExt;

use crate::body::Body;
use crate::config::AccessConfig;
use crate::error::{S3Error, S3ErrorCode};
use crate::policy::{authorize, AuthzRequest, Decision, Policy};
use crate::s3_request::{self, Addressing, S3Request};

/// S3 caps DeleteObjects at 1,000 keys of at most 1,024 bytes; the XML around them stays well
/// under this.
const DELETE_OBJECTS_MAX_BODY: usize = 2 * 1024 * 1024;

pub fn access_denied() -> S3Error {
    S3Error::new(S3ErrorCode::AccessDenied, "Access Denied")
}

/// The client's address: the TCP peer, or what a trusted load balancer says it is.
pub fn client_address(
    access: &AccessConfig,
    peer: SocketAddr,
    proxied: Option<SocketAddr>,
    headers: &HeaderMap,
) -> SocketAddr {
    if !access.trusted_proxies.contains(peer.ip()) {
        return peer;
    }
    if let Some(client) = proxied {
        return client;
    }
    match crate::proxy_protocol::forwarded_for(headers) {
        Some(ip) => SocketAddr::new(ip, 0),
        None => peer,
    }
}

/// `--allowed-source-subnet`: empty means everyone.
pub fn source_allowed(access: &AccessConfig, client: IpAddr) -> bool {
    access.allowed_source_subnets.is_empty() || access.allowed_source_subnets.contains(client)
}

/// `--allowed-endpoint`: the Host the client addressed, without the bucket label of a
/// virtual-hosted request. An entry without a port matches any port.
pub fn endpoint_allowed(access: &AccessConfig, host: &str, s3: &S3Request) -> bool {
    if access.allowed_endpoints.is_empty() {
        return true;
    }
    let host = host.to_ascii_lowercase();
    let endpoint = match (s3.addressing, &s3.bucket) {
        (Addressing::VirtualHost, Some(b)) => {
            host.strip_prefix(&format!("{}.", b.to_ascii_lowercase())).unwrap_or(&host).to_owned()
        }
        _ => host,
    };
    let without_port = match endpoint.rsplit_once(':') {
        Some((h, p)) if !h.is_empty() && p.chars().all(|c| c.is_ascii_digit()) && !endpoint.ends_with(']') => h,
        _ => endpoint.as_str(),
    };
    access.allowed_endpoints.iter().any(|e| *e == endpoint || *e == without_port)
}

/// The credential's policy against the classified request, and for CopyObject and
/// UploadPartCopy also read access to the source: without that check a credential could copy
/// out of a bucket it cannot read.
pub fn check_policy(
    policy: &Policy,
    s3: &S3Request,
    headers: &HeaderMap,
    client: IpAddr,
    secure: bool,
    akid: &str,
) -> Result<(), S3Error> {
    let now = time::OffsetDateTime::now_utc();
    let mut req = AuthzRequest::from_s3(s3, client, secure, headers, now);
    req.insert("aws:username", akid);
    if authorize(policy, &req) != Decision::Allow {
        return Err(access_denied());
    }
    for &action in &s3.also_requires {
        let extra = AuthzRequest { action, resource_arn: req.resource_arn.clone(), context: req.context.clone() };
        if authorize(policy, &extra) != Decision::Allow {
            return Err(access_denied());
        }
    }
    let source = s3_request::copy_source(headers)
        .map_err(|_| S3Error::new(S3ErrorCode::InvalidArgument, "Invalid copy source: x-amz-copy-source"))?;
    if let Some(src) = source {
        let action = if src.version_id.is_some() { "s3:GetObjectVersion" } else { "s3:GetObject" };
        let read = AuthzRequest {
            action,
            resource_arn: format!("arn:aws:s3:::{}/{}", src.bucket, src.key),
            context: req.context.clone(),
        };
        if authorize(policy, &read) != Decision::Allow {
            return Err(access_denied());
        }
    }
    Ok(())
}

/// DeleteObjects names its keys in the body; each is checked as `s3:DeleteObject`. The body is
/// small and bounded, read whole (after its hash was verified by `body`), and sent on as is.
pub async fn check_delete_objects(
    policy: &Policy,
    s3: &S3Request,
    headers: &HeaderMap,
    client: IpAddr,
    secure: bool,
    akid: &str,
    body: Body,
) -> Result<Bytes, S3Error> {
    let bytes = collect_bounded(body, DELETE_OBJECTS_MAX_BODY).await?;
    let text = std::str::from_utf8(&bytes)
        .map_err(|_| S3Error::new(S3ErrorCode::InvalidRequest, "The XML you provided was not well-formed"))?;
    let bucket = s3.bucket.as_deref().unwrap_or_default();
    let now = time::OffsetDateTime::now_utc();
    let mut req = AuthzRequest::from_s3(s3, client, secure, headers, now);
    req.insert("aws:username", akid);
    for key in xml_keys(text)? {
        let one = AuthzRequest {
            action: "s3:DeleteObject",
            resource_arn: format!("arn:aws:s3:::{bucket}/{key}"),
            context: req.context.clone(),
        };
        if authorize(policy, &one) != Decision::Allow {
            return Err(access_denied());
        }
    }
    Ok(bytes)
}

/// Reads a small body whole, up to `limit` bytes. A verification failure inside the body
/// stream surfaces as its own S3 error.
async fn collect_bounded(mut body: Body, limit: usize) -> Result<Bytes, S3Error> {
    let mut buf = BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| match e.downcast::<S3Error>() {
            Ok(s3e) => *s3e,
            Err(_) => S3Error::new(S3ErrorCode::IncompleteBody, "The request body could not be read."),
        })?;
        if let Ok(data) = frame.into_data() {
            if buf.len() + data.len() > limit {
                return Err(S3Error::new(S3ErrorCode::InvalidRequest, "The DeleteObjects request body is too large."));
            }
            buf.extend_from_slice(&data);
        }
    }
    Ok(buf.freeze())
}

/// The `<Key>` values of a DeleteObjects body, entities decoded.
fn xml_keys(xml: &str) -> Result<Vec<String>, S3Error> {
    let malformed = || S3Error::new(S3ErrorCode::InvalidRequest, "The XML you provided was not well-formed");
    let mut keys = Vec::new();
    let mut rest = xml;
    while let Some(start) = rest.find("<Key>") {
        let after = &rest[start + 5..];
        let end = after.find("</Key>").ok_or_else(malformed)?;
        keys.push(xml_unescape(&after[..end]).ok_or_else(malformed)?);
        rest = &after[end + 6..];
    }
    Ok(keys)
}

fn xml_unescape(s: &str) -> Option<String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        let semi = rest[amp..].find(';')? + amp;
        let entity = &rest[amp + 1..semi];
        let c = match entity {
            "amp" => '&',
            "lt" => '<',
            "gt" => '>',
            "quot" => '"',
            "apos" => '\'',
            _ if entity.starts_with("#x") || entity.starts_with("#X") => {
                char::from_u32(u32::from_str_radix(&entity[2..], 16).ok()?)?
            }
            _ if entity.starts_with('#') => char::from_u32(entity[1..].parse().ok()?)?,
            _ => return None,
        };
        out.push(c);
        rest = &rest[semi + 1..];
    }
    out.push_str(rest);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delete_objects_keys_are_found_and_unescaped() {
        let xml = "<Delete><Object><Key>a&amp;b</Key></Object><Object><Key>c&#x2F;d&lt;</Key><VersionId>1</VersionId></Object><Quiet>true</Quiet></Delete>";
        assert_eq!(xml_keys(xml).unwrap(), ["a&b", "c/d<"]);
        assert!(xml_keys("<Key>unterminated").is_err());
        assert!(xml_keys("<Key>&bogus;</Key>").is_err());
    }
}
