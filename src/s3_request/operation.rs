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
    pub operation: Operation,
}

/// Declares the operations once, with the name S3's API reference gives each, for metrics,
/// logs and audit records.
macro_rules! operations {
    ($($name:ident),* $(,)?) => {
        /// Every S3 API operation s3gate forwards. Policy, metrics, audit and the proxy match on
        /// this, never on the name, so a typo is a compile error rather than a check that never
        /// fires.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Operation {
            $($name),*
        }

        impl Operation {
            /// The operation's name in the S3 API reference (`GetObject`).
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$name => stringify!($name)),*
                }
            }
        }
    };
}

operations! {
    AbortMultipartUpload,
    CompleteMultipartUpload,
    CopyObject,
    CreateBucket,
    CreateBucketMetadataTableConfiguration,
    CreateMultipartUpload,
    CreateSession,
    DeleteBucket,
    DeleteBucketAnalyticsConfiguration,
    DeleteBucketCors,
    DeleteBucketEncryption,
    DeleteBucketIntelligentTieringConfiguration,
    DeleteBucketInventoryConfiguration,
    DeleteBucketLifecycle,
    DeleteBucketMetadataTableConfiguration,
    DeleteBucketMetricsConfiguration,
    DeleteBucketOwnershipControls,
    DeleteBucketPolicy,
    DeleteBucketReplication,
    DeleteBucketTagging,
    DeleteBucketWebsite,
    DeleteObject,
    DeleteObjectTagging,
    DeleteObjects,
    DeletePublicAccessBlock,
    GetBucketAccelerateConfiguration,
    GetBucketAcl,
    GetBucketAnalyticsConfiguration,
    GetBucketCors,
    GetBucketEncryption,
    GetBucketIntelligentTieringConfiguration,
    GetBucketInventoryConfiguration,
    GetBucketLifecycleConfiguration,
    GetBucketLocation,
    GetBucketLogging,
    GetBucketMetadataTableConfiguration,
    GetBucketMetricsConfiguration,
    GetBucketNotificationConfiguration,
    GetBucketOwnershipControls,
    GetBucketPolicy,
    GetBucketPolicyStatus,
    GetBucketReplication,
    GetBucketRequestPayment,
    GetBucketTagging,
    GetBucketVersioning,
    GetBucketWebsite,
    GetObject,
    GetObjectAcl,
    GetObjectAttributes,
    GetObjectLegalHold,
    GetObjectLockConfiguration,
    GetObjectRetention,
    GetObjectTagging,
    GetObjectTorrent,
    GetPublicAccessBlock,
    HeadBucket,
    HeadObject,
    ListBucketAnalyticsConfigurations,
    ListBucketIntelligentTieringConfigurations,
    ListBucketInventoryConfigurations,
    ListBucketMetricsConfigurations,
    ListBuckets,
    ListMultipartUploads,
    ListObjectVersions,
    ListObjects,
    ListObjectsV2,
    ListParts,
    PostObject,
    PutBucketAccelerateConfiguration,
    PutBucketAcl,
    PutBucketAnalyticsConfiguration,
    PutBucketCors,
    PutBucketEncryption,
    PutBucketIntelligentTieringConfiguration,
    PutBucketInventoryConfiguration,
    PutBucketLifecycleConfiguration,
    PutBucketLogging,
    PutBucketMetricsConfiguration,
    PutBucketNotificationConfiguration,
    PutBucketOwnershipControls,
    PutBucketPolicy,
    PutBucketReplication,
    PutBucketRequestPayment,
    PutBucketTagging,
    PutBucketVersioning,
    PutBucketWebsite,
    PutObject,
    PutObjectAcl,
    PutObjectLegalHold,
    PutObjectLockConfiguration,
    PutObjectRetention,
    PutObjectTagging,
    PutPublicAccessBlock,
    RestoreObject,
    SelectObjectContent,
    UploadPart,
    UploadPartCopy,
}

impl std::fmt::Display for Operation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

use Operation as Op;

use Target::{Bucket, Object, Service};

/// (method, target, subresource or "", operation, IAM action)
#[rustfmt::skip]
const ROUTES: &[(&str, Target, &str, Op, &str)] = &[
    ("GET", Service, "", Op::ListBuckets, "s3:ListAllMyBuckets"),
    // Bucket reads.
    ("GET", Bucket, "", Op::ListObjects, "s3:ListBucket"),
    ("HEAD", Bucket, "", Op::HeadBucket, "s3:ListBucket"),
    ("GET", Bucket, "versions", Op::ListObjectVersions, "s3:ListBucketVersions"),
    ("GET", Bucket, "uploads", Op::ListMultipartUploads, "s3:ListBucketMultipartUploads"),
    ("GET", Bucket, "location", Op::GetBucketLocation, "s3:GetBucketLocation"),
    ("GET", Bucket, "accelerate", Op::GetBucketAccelerateConfiguration, "s3:GetAccelerateConfiguration"),
    ("GET", Bucket, "acl", Op::GetBucketAcl, "s3:GetBucketAcl"),
    ("GET", Bucket, "analytics", Op::GetBucketAnalyticsConfiguration, "s3:GetAnalyticsConfiguration"),
    ("GET", Bucket, "cors", Op::GetBucketCors, "s3:GetBucketCORS"),
    ("GET", Bucket, "encryption", Op::GetBucketEncryption, "s3:GetEncryptionConfiguration"),
    ("GET", Bucket, "intelligent-tiering", Op::GetBucketIntelligentTieringConfiguration, "s3:GetIntelligentTieringConfiguration"),
    ("GET", Bucket, "inventory", Op::GetBucketInventoryConfiguration, "s3:GetInventoryConfiguration"),
    ("GET", Bucket, "lifecycle", Op::GetBucketLifecycleConfiguration, "s3:GetLifecycleConfiguration"),
    ("GET", Bucket, "logging", Op::GetBucketLogging, "s3:GetBucketLogging"),
    ("GET", Bucket, "metadataTable", Op::GetBucketMetadataTableConfiguration, "s3:GetBucketMetadataTableConfiguration"),
    ("GET", Bucket, "metrics", Op::GetBucketMetricsConfiguration, "s3:GetMetricsConfiguration"),
    ("GET", Bucket, "notification", Op::GetBucketNotificationConfiguration, "s3:GetBucketNotification"),
    ("GET", Bucket, "object-lock", Op::GetObjectLockConfiguration, "s3:GetBucketObjectLockConfiguration"),
    ("GET", Bucket, "ownershipControls", Op::GetBucketOwnershipControls, "s3:GetBucketOwnershipControls"),
    ("GET", Bucket, "policy", Op::GetBucketPolicy, "s3:GetBucketPolicy"),
    ("GET", Bucket, "policyStatus", Op::GetBucketPolicyStatus, "s3:GetBucketPolicyStatus"),
    ("GET", Bucket, "publicAccessBlock", Op::GetPublicAccessBlock, "s3:GetBucketPublicAccessBlock"),
    ("GET", Bucket, "replication", Op::GetBucketReplication, "s3:GetReplicationConfiguration"),
    ("GET", Bucket, "requestPayment", Op::GetBucketRequestPayment, "s3:GetBucketRequestPayment"),
    ("GET", Bucket, "session", Op::CreateSession, "s3express:CreateSession"),
    ("GET", Bucket, "tagging", Op::GetBucketTagging, "s3:GetBucketTagging"),
    ("GET", Bucket, "versioning", Op::GetBucketVersioning, "s3:GetBucketVersioning"),
    ("GET", Bucket, "website", Op::GetBucketWebsite, "s3:GetBucketWebsite"),
    // Bucket writes.
    ("PUT", Bucket, "", Op::CreateBucket, "s3:CreateBucket"),
    ("PUT", Bucket, "accelerate", Op::PutBucketAccelerateConfiguration, "s3:PutAccelerateConfiguration"),
    ("PUT", Bucket, "acl", Op::PutBucketAcl, "s3:PutBucketAcl"),
    ("PUT", Bucket, "analytics", Op::PutBucketAnalyticsConfiguration, "s3:PutAnalyticsConfiguration"),
    ("PUT", Bucket, "cors", Op::PutBucketCors, "s3:PutBucketCORS"),
    ("PUT", Bucket, "encryption", Op::PutBucketEncryption, "s3:PutEncryptionConfiguration"),
    ("PUT", Bucket, "intelligent-tiering", Op::PutBucketIntelligentTieringConfiguration, "s3:PutIntelligentTieringConfiguration"),
    ("PUT", Bucket, "inventory", Op::PutBucketInventoryConfiguration, "s3:PutInventoryConfiguration"),
    ("PUT", Bucket, "lifecycle", Op::PutBucketLifecycleConfiguration, "s3:PutLifecycleConfiguration"),
    ("PUT", Bucket, "logging", Op::PutBucketLogging, "s3:PutBucketLogging"),
    ("PUT", Bucket, "metrics", Op::PutBucketMetricsConfiguration, "s3:PutMetricsConfiguration"),
    ("PUT", Bucket, "notification", Op::PutBucketNotificationConfiguration, "s3:PutBucketNotification"),
    ("PUT", Bucket, "object-lock", Op::PutObjectLockConfiguration, "s3:PutBucketObjectLockConfiguration"),
    ("PUT", Bucket, "ownershipControls", Op::PutBucketOwnershipControls, "s3:PutBucketOwnershipControls"),
    ("PUT", Bucket, "policy", Op::PutBucketPolicy, "s3:PutBucketPolicy"),
    ("PUT", Bucket, "publicAccessBlock", Op::PutPublicAccessBlock, "s3:PutBucketPublicAccessBlock"),
    ("PUT", Bucket, "replication", Op::PutBucketReplication, "s3:PutReplicationConfiguration"),
    ("PUT", Bucket, "requestPayment", Op::PutBucketRequestPayment, "s3:PutBucketRequestPayment"),
    ("PUT", Bucket, "tagging", Op::PutBucketTagging, "s3:PutBucketTagging"),
    ("PUT", Bucket, "versioning", Op::PutBucketVersioning, "s3:PutBucketVersioning"),
    ("PUT", Bucket, "website", Op::PutBucketWebsite, "s3:PutBucketWebsite"),
    ("POST", Bucket, "metadataTable", Op::CreateBucketMetadataTableConfiguration, "s3:CreateBucketMetadataTableConfiguration"),
    // DeleteObjects is authorized per object (the proxy reads the keys from the body).
    ("POST", Bucket, "delete", Op::DeleteObjects, "s3:DeleteObject"),
    // A browser-form upload: the key is in the form body, not the path.
    ("POST", Bucket, "", Op::PostObject, "s3:PutObject"),
    ("DELETE", Bucket, "", Op::DeleteBucket, "s3:DeleteBucket"),
    ("DELETE", Bucket, "analytics", Op::DeleteBucketAnalyticsConfiguration, "s3:PutAnalyticsConfiguration"),
    ("DELETE", Bucket, "cors", Op::DeleteBucketCors, "s3:PutBucketCORS"),
    ("DELETE", Bucket, "encryption", Op::DeleteBucketEncryption, "s3:PutEncryptionConfiguration"),
    ("DELETE", Bucket, "intelligent-tiering", Op::DeleteBucketIntelligentTieringConfiguration, "s3:PutIntelligentTieringConfiguration"),
    ("DELETE", Bucket, "inventory", Op::DeleteBucketInventoryConfiguration, "s3:PutInventoryConfiguration"),
    ("DELETE", Bucket, "lifecycle", Op::DeleteBucketLifecycle, "s3:PutLifecycleConfiguration"),
    ("DELETE", Bucket, "metadataTable", Op::DeleteBucketMetadataTableConfiguration, "s3:DeleteBucketMetadataTableConfiguration"),
    ("DELETE", Bucket, "metrics", Op::DeleteBucketMetricsConfiguration, "s3:PutMetricsConfiguration"),
    ("DELETE", Bucket, "ownershipControls", Op::DeleteBucketOwnershipControls, "s3:PutBucketOwnershipControls"),
    ("DELETE", Bucket, "policy", Op::DeleteBucketPolicy, "s3:DeleteBucketPolicy"),
    ("DELETE", Bucket, "publicAccessBlock", Op::DeletePublicAccessBlock, "s3:PutBucketPublicAccessBlock"),
    ("DELETE", Bucket, "replication", Op::DeleteBucketReplication, "s3:PutReplicationConfiguration"),
    ("DELETE", Bucket, "tagging", Op::DeleteBucketTagging, "s3:PutBucketTagging"),
    ("DELETE", Bucket, "website", Op::DeleteBucketWebsite, "s3:DeleteBucketWebsite"),
    // Objects.
    ("GET", Object, "", Op::GetObject, "s3:GetObject"),
    ("HEAD", Object, "", Op::HeadObject, "s3:GetObject"),
    ("GET", Object, "acl", Op::GetObjectAcl, "s3:GetObjectAcl"),
    ("GET", Object, "attributes", Op::GetObjectAttributes, "s3:GetObjectAttributes"),
    ("GET", Object, "legal-hold", Op::GetObjectLegalHold, "s3:GetObjectLegalHold"),
    ("GET", Object, "retention", Op::GetObjectRetention, "s3:GetObjectRetention"),
    ("GET", Object, "tagging", Op::GetObjectTagging, "s3:GetObjectTagging"),
    ("GET", Object, "torrent", Op::GetObjectTorrent, "s3:GetObjectTorrent"),
    ("GET", Object, "uploadId", Op::ListParts, "s3:ListMultipartUploadParts"),
    ("PUT", Object, "", Op::PutObject, "s3:PutObject"),
    ("PUT", Object, "uploadId", Op::UploadPart, "s3:PutObject"),
    ("PUT", Object, "acl", Op::PutObjectAcl, "s3:PutObjectAcl"),
    ("PUT", Object, "legal-hold", Op::PutObjectLegalHold, "s3:PutObjectLegalHold"),
    ("PUT", Object, "retention", Op::PutObjectRetention, "s3:PutObjectRetention"),
    ("PUT", Object, "tagging", Op::PutObjectTagging, "s3:PutObjectTagging"),
    ("POST", Object, "uploads", Op::CreateMultipartUpload, "s3:PutObject"),
    ("POST", Object, "uploadId", Op::CompleteMultipartUpload, "s3:PutObject"),
    ("POST", Object, "restore", Op::RestoreObject, "s3:RestoreObject"),
    ("POST", Object, "select", Op::SelectObjectContent, "s3:GetObject"),
    ("DELETE", Object, "", Op::DeleteObject, "s3:DeleteObject"),
    ("DELETE", Object, "uploadId", Op::AbortMultipartUpload, "s3:AbortMultipartUpload"),
    ("DELETE", Object, "tagging", Op::DeleteObjectTagging, "s3:DeleteObjectTagging"),
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
    // The target, an enum, is compared first: most routes differ in it, and the strings are
    // then compared for a few.
    let &(_, _, _, operation, action) =
        ROUTES.iter().find(|r| r.1 == target && r.2 == sub && r.0 == method.as_str()).ok_or_else(|| {
            ClassifyError::InvalidUri(format!("no S3 operation is {method} on {target:?} with subresource {sub:?}"))
        })?;
    Ok(refine(operation, action, query, headers))
}

/// The variants S3 distinguishes by a parameter or header that is not a subresource.
fn refine(operation: Op, action: &'static str, query: &[(String, String)], headers: &HeaderMap) -> Route {
    let has = |name: &str| query.iter().any(|(k, _)| k == name);
    let version = has("versionId");
    let copy = headers.contains_key(&super::X_AMZ_COPY_SOURCE);
    let (operation, action) = match operation {
        Op::ListObjects if query.iter().any(|(k, v)| k == "list-type" && v == "2") => (Op::ListObjectsV2, action),
        Op::PutObject if copy => (Op::CopyObject, action),
        Op::UploadPart if copy => (Op::UploadPartCopy, action),
        Op::GetObject | Op::HeadObject if version => (operation, "s3:GetObjectVersion"),
        Op::DeleteObject if version => (operation, "s3:DeleteObjectVersion"),
        Op::GetObjectAcl if version => (operation, "s3:GetObjectVersionAcl"),
        Op::PutObjectAcl if version => (operation, "s3:PutObjectVersionAcl"),
        Op::GetObjectTagging if version => (operation, "s3:GetObjectVersionTagging"),
        Op::PutObjectTagging if version => (operation, "s3:PutObjectVersionTagging"),
        Op::DeleteObjectTagging if version => (operation, "s3:DeleteObjectVersionTagging"),
        Op::GetObjectAttributes if version => (operation, "s3:GetObjectVersionAttributes"),
        Op::GetObjectTorrent if version => (operation, "s3:GetObjectVersionTorrent"),
        // Without `id` these read the list of configurations; IAM uses the same action.
        Op::GetBucketAnalyticsConfiguration if !has("id") => (Op::ListBucketAnalyticsConfigurations, action),
        Op::GetBucketIntelligentTieringConfiguration if !has("id") => {
            (Op::ListBucketIntelligentTieringConfigurations, action)
        }
        Op::GetBucketInventoryConfiguration if !has("id") => (Op::ListBucketInventoryConfigurations, action),
        Op::GetBucketMetricsConfiguration if !has("id") => (Op::ListBucketMetricsConfigurations, action),
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
pub(super) fn extra_actions(operation: Op, query: &[(String, String)], headers: &HeaderMap) -> Vec<&'static str> {
    let has = |name: &str| requested(name, query, headers).is_some();
    let mut out = Vec::new();
    match operation {
        Op::PutObject | Op::CopyObject | Op::CreateMultipartUpload | Op::PostObject => {
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
        Op::CreateBucket => {
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
            Op::PutObject
                | Op::CopyObject
                | Op::CreateMultipartUpload
                | Op::DeleteObject
                | Op::DeleteObjects
                | Op::PutObjectRetention
        )
    {
        out.push("s3:BypassGovernanceRetention");
    }
    out
}
