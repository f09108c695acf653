//! Who may do what: network rules (checked before anything else), the regions a signature may
//! be scoped to, and per-credential policies (checked before anything reaches the upstream).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use bytes::Bytes;
use bytes::BytesMut;
use http::HeaderMap;
use http_body_util::BodyExt;

use crate::body::Body;
use crate::config::{AccessConfig, Config};
use crate::error::{S3Error, S3ErrorCode};
use crate::policy::{authorize, AuthzRequest, Decision, Policy};
use crate::s3_request::{self, Addressing, S3Request};
use crate::s3_xml::DeleteRequest;
use crate::session::SessionClaims;
use crate::sigv4::Verified;

/// S3 caps DeleteObjects at 1,000 keys of at most 1,024 bytes; the XML around them stays well
/// under this.
pub const DELETE_OBJECTS_MAX_BODY: usize = 2 * 1024 * 1024;

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
    host_allowed(access, &endpoint)
}

/// `--allowed-endpoint` for a Host as it is: s3gate's own paths (the presign API) have no
/// bucket label to strip.
pub fn host_allowed(access: &AccessConfig, host: &str) -> bool {
    if access.allowed_endpoints.is_empty() {
        return true;
    }
    let endpoint = host.to_ascii_lowercase();
    let without_port = match endpoint.rsplit_once(':') {
        Some((h, p)) if !h.is_empty() && p.chars().all(|c| c.is_ascii_digit()) && !endpoint.ends_with(']') => h,
        _ => endpoint.as_str(),
    };
    access.allowed_endpoints.iter().any(|e| *e == endpoint || *e == without_port)
}

/// The regions clients sign for: `--region` (the one they are told to use, and the one minted
/// URLs carry) and the `[[route]]` regions.
pub fn client_regions(config: &Config) -> Vec<String> {
    let mut regions = vec![config.upstream.region.clone()];
    for route in &config.routes {
        if !regions.contains(&route.upstream.region) {
            regions.push(route.upstream.region.clone());
        }
    }
    regions
}

/// A signature is scoped to a region, and S3 refuses one scoped to another than its own: so
/// does s3gate, so that a signature made for another deployment or another region's endpoint
/// is not valid here. The error names the region to use (`expected`) as S3's does, in the
/// message and in `<Region>`, where SDKs that follow S3's hint find the region to sign for.
pub fn region_served(regions: &[String], expected: &str, verified: &Verified) -> Result<(), S3Error> {
    let region = verified.scope.region();
    if regions.iter().any(|r| r == region) {
        return Ok(());
    }
    let error = if verified.presigned {
        S3Error::new(
            S3ErrorCode::AuthorizationQueryParametersError,
            format!(
                "Error parsing the X-Amz-Credential parameter; the region '{region}' is wrong; expecting '{expected}'"
            ),
        )
    } else {
        S3Error::new(
            S3ErrorCode::AuthorizationHeaderMalformed,
            format!("The authorization header is malformed; the region '{region}' is wrong; expecting '{expected}'"),
        )
    };
    Err(error.with_region(expected))
}

/// Who signed a request: the access key id, and the session it belongs to, if any. Policies
/// see it through the identity keys (`aws:username`, `aws:userid`, `aws:PrincipalTag/...`),
/// which `${...}` policy variables such as `home/${aws:userid}/*` read.
#[derive(Clone, Copy)]
pub struct Principal<'a> {
    pub access_key_id: &'a str,
    pub session: Option<&'a SessionClaims>,
}

impl Principal<'_> {
    /// The identity condition keys, as IAM sets them for a user, a user's session
    /// (GetSessionToken) or a role session; `s3gate:issuer` and `s3gate:subject` name a web
    /// identity.
    fn add_to(&self, req: &mut AuthzRequest) {
        let Some(session) = self.session else {
            req.insert("aws:username", self.access_key_id);
            req.insert("aws:userid", self.access_key_id);
            req.insert("aws:principaltype", "User");
            return;
        };
        match (&session.role, &session.parent) {
            (None, Some(parent)) => {
                req.insert("aws:username", parent.as_str());
                req.insert("aws:userid", parent.as_str());
                req.insert("aws:principaltype", "User");
            }
            (role, _) => {
                let arn = role.as_deref().unwrap_or_default();
                let session_name = session.session_name.as_deref().unwrap_or_default();
                req.insert("aws:userid", format!("{}:{session_name}", crate::session::role_id(arn)));
                req.insert("aws:principalarn", arn);
                req.insert("aws:principaltype", "AssumedRole");
                req.insert("aws:rolesessionname", session_name);
            }
        }
        let optional = [
            ("aws:sourceidentity", &session.source_identity),
            ("s3gate:issuer", &session.issuer),
            ("s3gate:subject", &session.subject),
        ];
        for (key, value) in optional {
            if let Some(value) = value {
                req.insert(key, value.as_str());
            }
        }
        for (key, value) in &session.tags {
            req.insert(&format!("aws:principaltag/{key}"), value.as_str());
        }
    }
}

/// Every policy must allow (a session policy narrows the role's, as in IAM); an empty list is
/// a credential without a policy, which may do anything.
fn allowed(policies: &[Arc<Policy>], req: &AuthzRequest) -> bool {
    policies.iter().all(|p| authorize(p, req) == Decision::Allow)
}

/// The credential's policies against the classified request, and for CopyObject and
/// UploadPartCopy also read access to the source: without that check a credential could copy
/// out of a bucket it cannot read.
pub fn check_policy(
    policies: &[Arc<Policy>],
    s3: &S3Request,
    headers: &HeaderMap,
    client: IpAddr,
    secure: bool,
    principal: Principal<'_>,
) -> Result<(), S3Error> {
    if policies.is_empty() {
        return Ok(());
    }
    let now = time::OffsetDateTime::now_utc();
    let mut req = AuthzRequest::from_s3(s3, client, secure, headers, now);
    principal.add_to(&mut req);
    if !allowed(policies, &req) {
        return Err(S3Error::access_denied());
    }
    for &action in &s3.also_requires {
        let extra = AuthzRequest { action, resource_arn: req.resource_arn.clone(), context: req.context.clone() };
        if !allowed(policies, &extra) {
            return Err(S3Error::access_denied());
        }
    }
    let source = s3_request::copy_source(headers)
        .map_err(|_| S3Error::invalid_argument("Invalid copy source: x-amz-copy-source"))?;
    if let Some(src) = source {
        let action = if src.version_id.is_some() { "s3:GetObjectVersion" } else { "s3:GetObject" };
        let read = AuthzRequest {
            action,
            resource_arn: format!("arn:aws:s3:::{}/{}", src.bucket, src.key),
            context: req.context.clone(),
        };
        if !allowed(policies, &read) {
            return Err(S3Error::access_denied());
        }
    }
    Ok(())
}

/// DeleteObjects names its objects in the body. Each is checked on its own ARN as
/// `s3:DeleteObject`, or `s3:DeleteObjectVersion` when it names a version, as IAM does. One
/// denied object refuses the whole request, before anything is sent: S3 would delete the others
/// and report that one, but a refusal that changes nothing is the safer answer.
pub fn check_delete_objects(
    policies: &[Arc<Policy>],
    s3: &S3Request,
    headers: &HeaderMap,
    client: IpAddr,
    secure: bool,
    principal: Principal<'_>,
    request: &DeleteRequest,
) -> Result<(), S3Error> {
    let bucket = s3.bucket.as_deref().unwrap_or_default();
    let now = time::OffsetDateTime::now_utc();
    let mut req = AuthzRequest::from_s3(s3, client, secure, headers, now);
    principal.add_to(&mut req);
    for object in &request.objects {
        let action = if object.version_id.is_some() { "s3:DeleteObjectVersion" } else { "s3:DeleteObject" };
        let resource_arn = format!("arn:aws:s3:::{bucket}/{}", object.key);
        // What the headers ask for beyond deleting (`x-amz-bypass-governance-retention`) is
        // checked on each object too.
        for &action in std::iter::once(&action).chain(&s3.also_requires) {
            let one = AuthzRequest { action, resource_arn: resource_arn.clone(), context: req.context.clone() };
            if !allowed(policies, &one) {
                return Err(S3Error::access_denied());
            }
        }
    }
    Ok(())
}

/// Reads a small body whole, up to `limit` bytes. A verification failure inside the body
/// stream surfaces as its own S3 error.
pub async fn collect_bounded(mut body: Body, limit: usize) -> Result<Bytes, S3Error> {
    let mut buf = BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| match e.downcast::<S3Error>() {
            Ok(s3e) => *s3e,
            Err(_) => S3Error::incomplete_body("The request body could not be read."),
        })?;
        if let Ok(data) = frame.into_data() {
            if buf.len() + data.len() > limit {
                return Err(S3Error::invalid_request("The DeleteObjects request body is too large."));
            }
            buf.extend_from_slice(&data);
        }
    }
    Ok(buf.freeze())
}
