//! Building the condition context of a classified S3 request.

use std::net::IpAddr;

use http::HeaderMap;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::{AuthzRequest, Context};
use crate::s3_request::S3Request;

/// Request headers IAM exposes as `s3:` condition keys under their own name.
const HEADER_KEYS: &[&str] = &[
    "x-amz-acl",
    "x-amz-content-sha256",
    "x-amz-copy-source",
    "x-amz-grant-full-control",
    "x-amz-grant-read",
    "x-amz-grant-read-acp",
    "x-amz-grant-write",
    "x-amz-grant-write-acp",
    "x-amz-metadata-directive",
    "x-amz-server-side-encryption",
    "x-amz-server-side-encryption-aws-kms-key-id",
    "x-amz-server-side-encryption-customer-algorithm",
    "x-amz-storage-class",
    "x-amz-website-redirect-location",
];

/// Object Lock headers, whose condition keys drop the `x-amz-` prefix.
const OBJECT_LOCK_KEYS: &[(&str, &str)] = &[
    ("x-amz-object-lock-mode", "s3:object-lock-mode"),
    ("x-amz-object-lock-retain-until-date", "s3:object-lock-retain-until-date"),
    ("x-amz-object-lock-legal-hold", "s3:object-lock-legal-hold"),
];

impl AuthzRequest<'static> {
    /// The standard context of an S3 request: `aws:SourceIp`, `aws:SecureTransport`,
    /// `aws:CurrentTime`, `aws:EpochTime`, `aws:UserAgent`, `aws:Referer`, `s3:VersionId`, the
    /// `s3:x-amz-*` header keys, and for listings `s3:prefix`, `s3:delimiter`, `s3:max-keys`.
    /// Identity keys such as `aws:username` are the caller's to add with `insert`.
    pub fn from_s3(req: &S3Request, source_ip: IpAddr, secure: bool, headers: &HeaderMap, now: OffsetDateTime) -> Self {
        let mut context = Context::new();
        let mut put = |key: &str, value: String| {
            context.entry(key.to_owned()).or_default().push(value);
        };
        // A v4 client on a dual-stack socket must match the v4 blocks in the policy.
        put("aws:sourceip", source_ip.to_canonical().to_string());
        put("aws:securetransport", secure.to_string());
        let now = now.to_offset(time::UtcOffset::UTC);
        if let Ok(formatted) = now.format(&Rfc3339) {
            put("aws:currenttime", formatted);
        }
        put("aws:epochtime", now.unix_timestamp().to_string());
        for (header, key) in [("user-agent", "aws:useragent"), ("referer", "aws:referer")] {
            if let Some(value) = header_str(headers, header) {
                put(key, value);
            }
        }
        for header in HEADER_KEYS {
            if let Some(value) = header_str(headers, header) {
                put(&format!("s3:{header}"), value);
            }
        }
        for (header, key) in OBJECT_LOCK_KEYS {
            if let Some(value) = header_str(headers, header) {
                put(key, value);
            }
        }
        if let Some(version) = req.query_value("versionId") {
            put("s3:versionid", version.to_owned());
        }
        if matches!(req.action, "s3:ListBucket" | "s3:ListBucketVersions") {
            // A listing without `prefix` lists from the root: IAM treats it as prefix "", so
            // `"StringEquals": {"s3:prefix": ["", "home/"]}` allows the root listing.
            put("s3:prefix", req.query_value("prefix").unwrap_or_default().to_owned());
            for name in ["delimiter", "max-keys"] {
                if let Some(value) = req.query_value(name) {
                    put(&format!("s3:{name}"), value.to_owned());
                }
            }
        }
        AuthzRequest { action: req.action, resource_arn: req.resource_arn(), context }
    }
}

fn header_str(headers: &HeaderMap, name: &str) -> Option<String> {
    headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned)
}
