//! Which S3 operation a request is, and which IAM action authorizes it.
//!
//! S3 picks the operation from the method, whether the path names a bucket and a key, and at
//! most one "subresource" query parameter (`?acl`, `?uploads`, ...). The table below lists every
//! combination S3 serves; anything else is refused, so an operation we do not know can never
//! be authorized as one we do. IAM action names follow "Required permissions for Amazon S3 API
//! operations" (e.g. DeleteBucketCors needs s3:PutBucketCORS).

use http::{HeaderMap, Method};

use super::ClassifyError;

/// What the path names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Target {
    Service,
    Bucket,
    Object,
}

pub(super) struct Route {
    pub action: &'static str,
    pub operation: &'static str,
}

use Target::{Bucket, Object, Service};

/// (method, target, subresource or "", operation, IAM action)
#[rustfmt::skip]
const ROUTES: &[(&str, Target, &str, &str, &str)] = &[
    ("GET", Service, "", "ListBuckets", "s3:ListAllMyBuckets"),
    // Bucket reads.
    ("GET", Bucket, "", "ListObjects", "s3:ListBucket"),
    ("HEAD", Bucket, "", "HeadBucket", "s3:ListBucket"),
    ("GET", Bucket, "versions", "ListObjectVersions", "s3:ListBucketVersions"),
    ("GET", Bucket, "uploads", "ListMultipartUploads", "s3:ListBucketMultipartUploads"),
    ("GET", Bucket, "location", "GetBucketLocation", "s3:GetBucketLocation"),
    ("GET", Bucket, "accelerate", "GetBucketAccelerateConfiguration", "s3:GetAccelerateConfiguration"),
    ("GET", Bucket, "acl", "GetBucketAcl", "s3:GetBucketAcl"),
    ("GET", Bucket, "analytics", "GetBucketAnalyticsConfiguration", "s3:GetAnalyticsConfiguration"),
    ("GET", Bucket, "cors", "GetBucketCors", "s3:GetBucketCORS"),
    ("GET", Bucket, "encryption", "GetBucketEncryption", "s3:GetEncryptionConfiguration"),
    ("GET", Bucket, "intelligent-tiering", "GetBucketIntelligentTieringConfiguration", "s3:GetIntelligentTieringConfiguration"),
    ("GET", Bucket, "inventory", "GetBucketInventoryConfiguration", "s3:GetInventoryConfiguration"),
    ("GET", Bucket, "lifecycle", "GetBucketLifecycleConfiguration", "s3:GetLifecycleConfiguration"),
    ("GET", Bucket, "logging", "GetBucketLogging", "s3:GetBucketLogging"),
    ("GET", Bucket, "metadataTable", "GetBucketMetadataTableConfiguration", "s3:GetBucketMetadataTableConfiguration"),
    ("GET", Bucket, "metrics", "GetBucketMetricsConfiguration", "s3:GetMetricsConfiguration"),
    ("GET", Bucket, "notification", "GetBucketNotificationConfiguration", "s3:GetBucketNotification"),
    ("GET", Bucket, "object-lock", "GetObjectLockConfiguration", "s3:GetBucketObjectLockConfiguration"),
    ("GET", Bucket, "ownershipControls", "GetBucketOwnershipControls", "s3:GetBucketOwnershipControls"),
    ("GET", Bucket, "policy", "GetBucketPolicy", "s3:GetBucketPolicy"),
    ("GET", Bucket, "policyStatus", "GetBucketPolicyStatus", "s3:GetBucketPolicyStatus"),
    ("GET", Bucket, "publicAccessBlock", "GetPublicAccessBlock", "s3:GetBucketPublicAccessBlock"),
    ("GET", Bucket, "replication", "GetBucketReplication", "s3:GetReplicationConfiguration"),
    ("GET", Bucket, "requestPayment", "GetBucketRequestPayment", "s3:GetBucketRequestPayment"),
    ("GET", Bucket, "session", "CreateSession", "s3express:CreateSession"),
    ("GET", Bucket, "tagging", "GetBucketTagging", "s3:GetBucketTagging"),
    ("GET", Bucket, "versioning", "GetBucketVersioning", "s3:GetBucketVersioning"),
    ("GET", Bucket, "website", "GetBucketWebsite", "s3:GetBucketWebsite"),
    // Bucket writes.
    ("PUT", Bucket, "", "CreateBucket", "s3:CreateBucket"),
    ("PUT", Bucket, "accelerate", "PutBucketAccelerateConfiguration", "s3:PutAccelerateConfiguration"),
    ("PUT", Bucket, "acl", "PutBucketAcl", "s3:PutBucketAcl"),
    ("PUT", Bucket, "analytics", "PutBucketAnalyticsConfiguration", "s3:PutAnalyticsConfiguration"),
    ("PUT", Bucket, "cors", "PutBucketCors", "s3:PutBucketCORS"),
    ("PUT", Bucket, "encryption", "PutBucketEncryption", "s3:PutEncryptionConfiguration"),
    ("PUT", Bucket, "intelligent-tiering", "PutBucketIntelligentTieringConfiguration", "s3:PutIntelligentTieringConfiguration"),
    ("PUT", Bucket, "inventory", "PutBucketInventoryConfiguration", "s3:PutInventoryConfiguration"),
    ("PUT", Bucket, "lifecycle", "PutBucketLifecycleConfiguration", "s3:PutLifecycleConfiguration"),
    ("PUT", Bucket, "logging", "PutBucketLogging", "s3:PutBucketLogging"),
    ("PUT", Bucket, "metrics", "PutBucketMetricsConfiguration", "s3:PutMetricsConfiguration"),
    ("PUT", Bucket, "notification", "PutBucketNotificationConfiguration", "s3:PutBucketNotification"),
    ("PUT", Bucket, "object-lock", "PutObjectLockConfiguration", "s3:PutBucketObjectLockConfiguration"),
    ("PUT", Bucket, "ownershipControls", "PutBucketOwnershipControls", "s3:PutBucketOwnershipControls"),
    ("PUT", Bucket, "policy", "PutBucketPolicy", "s3:PutBucketPolicy"),
    ("PUT", Bucket, "publicAccessBlock", "PutPublicAccessBlock", "s3:PutBucketPublicAccessBlock"),
    ("PUT", Bucket, "replication", "PutBucketReplication", "s3:PutReplicationConfiguration"),
    ("PUT", Bucket, "requestPayment", "PutBucketRequestPayment", "s3:PutBucketRequestPayment"),
    ("PUT", Bucket, "tagging", "PutBucketTagging", "s3:PutBucketTagging"),
    ("PUT", Bucket, "versioning", "PutBucketVersioning", "s3:PutBucketVersioning"),
    ("PUT", Bucket, "website", "PutBucketWebsite", "s3:PutBucketWebsite"),
    ("POST", Bucket, "metadataTable", "CreateBucketMetadataTableConfiguration", "s3:CreateBucketMetadataTableConfiguration"),
    // DeleteObjects is authorized per object (the proxy reads the keys from the body).
    ("POST", Bucket, "delete", "DeleteObjects", "s3:DeleteObject"),
    // A browser-form upload: the key is in the form body, not the path.
    ("POST", Bucket, "", "PostObject", "s3:PutObject"),
    ("DELETE", Bucket, "", "DeleteBucket", "s3:DeleteBucket"),
    ("DELETE", Bucket, "analytics", "DeleteBucketAnalyticsConfiguration", "s3:PutAnalyticsConfiguration"),
    ("DELETE", Bucket, "cors", "DeleteBucketCors", "s3:PutBucketCORS"),
    ("DELETE", Bucket, "encryption", "DeleteBucketEncryption", "s3:PutEncryptionConfiguration"),
    ("DELETE", Bucket, "intelligent-tiering", "DeleteBucketIntelligentTieringConfiguration", "s3:PutIntelligentTieringConfiguration"),
    ("DELETE", Bucket, "inventory", "DeleteBucketInventoryConfiguration", "s3:PutInventoryConfiguration"),
    ("DELETE", Bucket, "lifecycle", "DeleteBucketLifecycle", "s3:PutLifecycleConfiguration"),
    ("DELETE", Bucket, "metadataTable", "DeleteBucketMetadataTableConfiguration", "s3:DeleteBucketMetadataTableConfiguration"),
    ("DELETE", Bucket, "metrics", "DeleteBucketMetricsConfiguration", "s3:PutMetricsConfiguration"),
    ("DELETE", Bucket, "ownershipControls", "DeleteBucketOwnershipControls", "s3:PutBucketOwnershipControls"),
    ("DELETE", Bucket, "policy", "DeleteBucketPolicy", "s3:DeleteBucketPolicy"),
    ("DELETE", Bucket, "publicAccessBlock", "DeletePublicAccessBlock", "s3:PutBucketPublicAccessBlock"),
    ("DELETE", Bucket, "replication", "DeleteBucketReplication", "s3:PutReplicationConfiguration"),
    ("DELETE", Bucket, "tagging", "DeleteBucketTagging", "s3:PutBucketTagging"),
    ("DELETE", Bucket, "website", "DeleteBucketWebsite", "s3:DeleteBucketWebsite"),
    // Objects.
    ("GET", Object, "", "GetObject", "s3:GetObject"),
    ("HEAD", Object, "", "HeadObject", "s3:GetObject"),
    ("GET", Object, "acl", "GetObjectAcl", "s3:GetObjectAcl"),
    ("GET", Object, "attributes", "GetObjectAttributes", "s3:GetObjectAttributes"),
    ("GET", Object, "legal-hold", "GetObjectLegalHold", "s3:GetObjectLegalHold"),
    ("GET", Object, "retention", "GetObjectRetention", "s3:GetObjectRetention"),
    ("GET", Object, "tagging", "GetObjectTagging", "s3:GetObjectTagging"),
    ("GET", Object, "torrent", "GetObjectTorrent", "s3:GetObjectTorrent"),
    ("GET", Object, "uploadId", "ListParts", "s3:ListMultipartUploadParts"),
    ("PUT", Object, "", "PutObject", "s3:PutObject"),
    ("PUT", Object, "uploadId", "UploadPart", "s3:PutObject"),
    ("PUT", Object, "acl", "PutObjectAcl", "s3:PutObjectAcl"),
    ("PUT", Object, "legal-hold", "PutObjectLegalHold", "s3:PutObjectLegalHold"),
    ("PUT", Object, "retention", "PutObjectRetention", "s3:PutObjectRetention"),
    ("PUT", Object, "tagging", "PutObjectTagging", "s3:PutObjectTagging"),
    ("POST", Object, "uploads", "CreateMultipartUpload", "s3:PutObject"),
    ("POST", Object, "uploadId", "CompleteMultipartUpload", "s3:PutObject"),
    ("POST", Object, "restore", "RestoreObject", "s3:RestoreObject"),
    ("POST", Object, "select", "SelectObjectContent", "s3:GetObject"),
    ("DELETE", Object, "", "DeleteObject", "s3:DeleteObject"),
    ("DELETE", Object, "uploadId", "AbortMultipartUpload", "s3:AbortMultipartUpload"),
    ("DELETE", Object, "tagging", "DeleteObjectTagging", "s3:DeleteObjectTagging"),
];

/// Query parameters that select the operation. Two different ones in one request are refused:
/// we cannot know which one S3 would act on.
const SUBRESOURCES: &[&str] = &[
    "accelerate",
    "acl",
    "analytics",
    "attributes",
    "cors",
    "delete",
    "encryption",
    "intelligent-tiering",
    "inventory",
    "legal-hold",
    "lifecycle",
    "location",
    "logging",
    "metadataTable",
    "metrics",
    "notification",
    "object-lock",
    "ownershipControls",
    "policy",
    "policyStatus",
    "publicAccessBlock",
    "replication",
    "requestPayment",
    "restore",
    "retention",
    "select",
    "session",
    "tagging",
    "torrent",
    "uploadId",
    "uploads",
    "versioning",
    "versions",
    "website",
];

/// Query parameters that shape an operation without selecting another one.
const PARAMETERS: &[&str] = &[
    "AWSAccessKeyId",
    "Expires",
    "Signature",
    "bucket-region",
    "continuation-token",
    "delimiter",
    "encoding-type",
    "fetch-owner",
    "id",
    "key-marker",
    "list-type",
    "marker",
    "max-buckets",
    "max-keys",
    "max-parts",
    "max-uploads",
    "part-number-marker",
    "partNumber",
    "prefix",
    "select-type",
    "start-after",
    "upload-id-marker",
    "version-id-marker",
    "versionId",
    "x-id",
];

/// The parameters of a presigned URL's own signature.
const PRESIGN_AUTH: &[&str] = &[
    "X-Amz-Algorithm",
    "X-Amz-Credential",
    "X-Amz-Date",
    "X-Amz-Expires",
    "X-Amz-SignedHeaders",
    "X-Amz-Signature",
    "X-Amz-Security-Token",
];

fn is_amz(name: &str) -> bool {
    name.get(..6).is_some_and(|p| p.eq_ignore_ascii_case("x-amz-"))
}

/// `response-*` overrides the response headers of GetObject. `X-Amz-*` parameters belong to
/// presigned URLs only: their signature fields, and headers the minter hoisted into the signed
/// query (S3 reads `x-amz-acl=...` there as the header). Under header auth they are refused:
/// S3 would act on a parameter that no signed header shows. A hoisted copy source is refused
/// everywhere, so that whether a request copies is decided by its headers alone.
fn check_parameter(name: &str, presigned: bool) -> Result<(), ClassifyError> {
    if PARAMETERS.contains(&name) || name.starts_with("response-") {
        return Ok(());
    }
    if !is_amz(name) {
        return Err(ClassifyError::InvalidUri(format!("unsupported query parameter {name:?}")));
    }
    if !presigned {
        return Err(ClassifyError::InvalidArgument(format!(
            "query parameter {name:?} is only accepted in a presigned URL"
        )));
    }
    if !PRESIGN_AUTH.contains(&name) && name.to_ascii_lowercase().starts_with("x-amz-copy-source") {
        return Err(ClassifyError::InvalidArgument(format!("query parameter {name:?} is not accepted")));
    }
    Ok(())
}

pub(super) fn route(
    method: &Method,
    target: Target,
    query: &[(String, String)],
    headers: &HeaderMap,
) -> Result<Route, ClassifyError> {
    let mut subresource: Option<&str> = None;
    let presigned = query.iter().any(|(name, _)| name == "X-Amz-Algorithm");
    for (name, _) in query {
        if let Some(&sub) = SUBRESOURCES.iter().find(|s| **s == name.as_str()) {
            match subresource {
                Some(seen) if seen != sub => {
                    return Err(ClassifyError::InvalidUri(format!("conflicting subresources ?{seen} and ?{sub}")))
                }
                _ => subresource = Some(sub),
            }
        } else {
            check_parameter(name, presigned)?;
        }
    }
    let sub = subresource.unwrap_or("");
    let &(_, _, _, operation, action) =
        ROUTES.iter().find(|r| r.0 == method.as_str() && r.1 == target && r.2 == sub).ok_or_else(|| {
            ClassifyError::InvalidUri(format!("no S3 operation is {method} on {target:?} with subresource {sub:?}"))
        })?;
    Ok(refine(operation, action, query, headers))
}

/// The variants S3 distinguishes by a parameter or header that is not a subresource.
fn refine(operation: &'static str, action: &'static str, query: &[(String, String)], headers: &HeaderMap) -> Route {
    let has = |name: &str| query.iter().any(|(k, _)| k == name);
    let version = has("versionId");
    let copy = headers.contains_key("x-amz-copy-source");
    let (operation, action) = match operation {
        "ListObjects" if query.iter().any(|(k, v)| k == "list-type" && v == "2") => ("ListObjectsV2", action),
        "PutObject" if copy => ("CopyObject", action),
        "UploadPart" if copy => ("UploadPartCopy", action),
        "GetObject" | "HeadObject" if version => (operation, "s3:GetObjectVersion"),
        "DeleteObject" if version => (operation, "s3:DeleteObjectVersion"),
        "GetObjectAcl" if version => (operation, "s3:GetObjectVersionAcl"),
        "PutObjectAcl" if version => (operation, "s3:PutObjectVersionAcl"),
        "GetObjectTagging" if version => (operation, "s3:GetObjectVersionTagging"),
        "PutObjectTagging" if version => (operation, "s3:PutObjectVersionTagging"),
        "DeleteObjectTagging" if version => (operation, "s3:DeleteObjectVersionTagging"),
        "GetObjectAttributes" if version => (operation, "s3:GetObjectVersionAttributes"),
        "GetObjectTorrent" if version => (operation, "s3:GetObjectVersionTorrent"),
        // Without `id` these read the list of configurations; IAM uses the same action.
        "GetBucketAnalyticsConfiguration" if !has("id") => ("ListBucketAnalyticsConfigurations", action),
        "GetBucketIntelligentTieringConfiguration" if !has("id") => {
            ("ListBucketIntelligentTieringConfigurations", action)
        }
        "GetBucketInventoryConfiguration" if !has("id") => ("ListBucketInventoryConfigurations", action),
        "GetBucketMetricsConfiguration" if !has("id") => ("ListBucketMetricsConfigurations", action),
        _ => (operation, action),
    };
    Route { action, operation }
}

/// A request header, or the same name hoisted into a presigned URL's query, as text.
fn requested<'a>(name: &str, query: &'a [(String, String)], headers: &'a HeaderMap) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .or_else(|| query.iter().find(|(k, _)| is_amz(k) && k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str()))
}

const ACL_HEADERS: &[&str] = &[
    "x-amz-acl",
    "x-amz-grant-full-control",
    "x-amz-grant-read",
    "x-amz-grant-read-acp",
    "x-amz-grant-write",
    "x-amz-grant-write-acp",
];

/// The permissions S3 requires beyond the operation's own action, from "Required permissions
/// for Amazon S3 API operations": an upload that sets an ACL, tags or Object Lock settings
/// needs the permission for setting them on their own, or a credential allowed only
/// `s3:PutObject` could publish an object (`x-amz-acl: public-read`) or lock it for years.
pub(super) fn extra_actions(operation: &str, query: &[(String, String)], headers: &HeaderMap) -> Vec<&'static str> {
    let has = |name: &str| requested(name, query, headers).is_some();
    let mut out = Vec::new();
    match operation {
        "PutObject" | "CopyObject" | "CreateMultipartUpload" | "PostObject" => {
            if ACL_HEADERS.iter().any(|h| has(h)) {
                out.push("s3:PutObjectAcl");
            }
            if has("x-amz-tagging") {
                out.push("s3:PutObjectTagging");
            }
            if has("x-amz-object-lock-mode") || has("x-amz-object-lock-retain-until-date") {
                out.push("s3:PutObjectRetention");
            }
            if has("x-amz-object-lock-legal-hold") {
                out.push("s3:PutObjectLegalHold");
            }
        }
        "CreateBucket" => {
            if ACL_HEADERS.iter().any(|h| has(h)) {
                out.push("s3:PutBucketAcl");
            }
            if requested("x-amz-bucket-object-lock-enabled", query, headers)
                .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
            {
                out.push("s3:PutBucketObjectLockConfiguration");
                out.push("s3:PutBucketVersioning");
            }
            if has("x-amz-object-ownership") {
                out.push("s3:PutBucketOwnershipControls");
            }
        }
        _ => {}
    }
    if has("x-amz-bypass-governance-retention")
        && matches!(
            operation,
            "PutObject"
                | "CopyObject"
                | "CreateMultipartUpload"
                | "DeleteObject"
                | "DeleteObjects"
                | "PutObjectRetention"
        )
    {
        out.push("s3:BypassGovernanceRetention");
    }
    out
}
