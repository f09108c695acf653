use http::{HeaderMap, HeaderValue, Method};

use super::*;

const DOMAIN: &str = "s3.gw.test";

fn domains() -> Vec<String> {
    vec![DOMAIN.to_owned(), "gw.test".to_owned()]
}

fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.insert(*name, HeaderValue::from_static(value));
    }
    map
}

fn request(method: &str, host: &str, path: &str, query: &str) -> Result<S3Request, ClassifyError> {
    let method = Method::from_bytes(method.as_bytes()).expect("method");
    let query = (!query.is_empty()).then_some(query);
    classify(&method, host, path, query, &HeaderMap::new(), &domains())
}

const COPY: &[(&str, &str)] = &[("x-amz-copy-source", "/src/a%20b.txt")];

/// method, path, query, headers -> IAM action, operation
type Row =
    (&'static str, &'static str, &'static str, &'static [(&'static str, &'static str)], &'static str, &'static str);

/// One row per S3 API operation.
#[rustfmt::skip]
const OPERATIONS: &[Row] = &[
    ("GET", "/", "", &[], "s3:ListAllMyBuckets", "ListBuckets"),
    ("GET", "/bkt", "", &[], "s3:ListBucket", "ListObjects"),
    ("GET", "/bkt/", "prefix=a/&delimiter=/&marker=x", &[], "s3:ListBucket", "ListObjects"),
    ("GET", "/bkt", "list-type=2&prefix=p&continuation-token=t&x-id=ListObjectsV2", &[], "s3:ListBucket", "ListObjectsV2"),
    ("HEAD", "/bkt", "", &[], "s3:ListBucket", "HeadBucket"),
    ("GET", "/bkt", "versions&key-marker=k", &[], "s3:ListBucketVersions", "ListObjectVersions"),
    ("GET", "/bkt", "uploads", &[], "s3:ListBucketMultipartUploads", "ListMultipartUploads"),
    ("GET", "/bkt", "location", &[], "s3:GetBucketLocation", "GetBucketLocation"),
    ("GET", "/bkt", "accelerate", &[], "s3:GetAccelerateConfiguration", "GetBucketAccelerateConfiguration"),
    ("GET", "/bkt", "acl", &[], "s3:GetBucketAcl", "GetBucketAcl"),
    ("GET", "/bkt", "analytics&id=a", &[], "s3:GetAnalyticsConfiguration", "GetBucketAnalyticsConfiguration"),
    ("GET", "/bkt", "analytics", &[], "s3:GetAnalyticsConfiguration", "ListBucketAnalyticsConfigurations"),
    ("GET", "/bkt", "cors", &[], "s3:GetBucketCORS", "GetBucketCors"),
    ("GET", "/bkt", "encryption", &[], "s3:GetEncryptionConfiguration", "GetBucketEncryption"),
    ("GET", "/bkt", "intelligent-tiering&id=i", &[], "s3:GetIntelligentTieringConfiguration", "GetBucketIntelligentTieringConfiguration"),
    ("GET", "/bkt", "intelligent-tiering", &[], "s3:GetIntelligentTieringConfiguration", "ListBucketIntelligentTieringConfigurations"),
    ("GET", "/bkt", "inventory&id=i", &[], "s3:GetInventoryConfiguration", "GetBucketInventoryConfiguration"),
    ("GET", "/bkt", "inventory", &[], "s3:GetInventoryConfiguration", "ListBucketInventoryConfigurations"),
    ("GET", "/bkt", "lifecycle", &[], "s3:GetLifecycleConfiguration", "GetBucketLifecycleConfiguration"),
    ("GET", "/bkt", "logging", &[], "s3:GetBucketLogging", "GetBucketLogging"),
    ("GET", "/bkt", "metadataTable", &[], "s3:GetBucketMetadataTableConfiguration", "GetBucketMetadataTableConfiguration"),
    ("GET", "/bkt", "metrics&id=m", &[], "s3:GetMetricsConfiguration", "GetBucketMetricsConfiguration"),
    ("GET", "/bkt", "metrics", &[], "s3:GetMetricsConfiguration", "ListBucketMetricsConfigurations"),
    ("GET", "/bkt", "notification", &[], "s3:GetBucketNotification", "GetBucketNotificationConfiguration"),
    ("GET", "/bkt", "object-lock", &[], "s3:GetBucketObjectLockConfiguration", "GetObjectLockConfiguration"),
    ("GET", "/bkt", "ownershipControls", &[], "s3:GetBucketOwnershipControls", "GetBucketOwnershipControls"),
    ("GET", "/bkt", "policy", &[], "s3:GetBucketPolicy", "GetBucketPolicy"),
    ("GET", "/bkt", "policyStatus", &[], "s3:GetBucketPolicyStatus", "GetBucketPolicyStatus"),
    ("GET", "/bkt", "publicAccessBlock", &[], "s3:GetBucketPublicAccessBlock", "GetPublicAccessBlock"),
    ("GET", "/bkt", "replication", &[], "s3:GetReplicationConfiguration", "GetBucketReplication"),
    ("GET", "/bkt", "requestPayment", &[], "s3:GetBucketRequestPayment", "GetBucketRequestPayment"),
    ("GET", "/bkt", "session", &[], "s3express:CreateSession", "CreateSession"),
    ("GET", "/bkt", "tagging", &[], "s3:GetBucketTagging", "GetBucketTagging"),
    ("GET", "/bkt", "versioning", &[], "s3:GetBucketVersioning", "GetBucketVersioning"),
    ("GET", "/bkt", "website", &[], "s3:GetBucketWebsite", "GetBucketWebsite"),
    ("PUT", "/bkt", "", &[], "s3:CreateBucket", "CreateBucket"),
    ("PUT", "/bkt", "accelerate", &[], "s3:PutAccelerateConfiguration", "PutBucketAccelerateConfiguration"),
    ("PUT", "/bkt", "acl", &[], "s3:PutBucketAcl", "PutBucketAcl"),
    ("PUT", "/bkt", "analytics&id=a", &[], "s3:PutAnalyticsConfiguration", "PutBucketAnalyticsConfiguration"),
    ("PUT", "/bkt", "cors", &[], "s3:PutBucketCORS", "PutBucketCors"),
    ("PUT", "/bkt", "encryption", &[], "s3:PutEncryptionConfiguration", "PutBucketEncryption"),
    ("PUT", "/bkt", "intelligent-tiering&id=i", &[], "s3:PutIntelligentTieringConfiguration", "PutBucketIntelligentTieringConfiguration"),
    ("PUT", "/bkt", "inventory&id=i", &[], "s3:PutInventoryConfiguration", "PutBucketInventoryConfiguration"),
    ("PUT", "/bkt", "lifecycle", &[], "s3:PutLifecycleConfiguration", "PutBucketLifecycleConfiguration"),
    ("PUT", "/bkt", "logging", &[], "s3:PutBucketLogging", "PutBucketLogging"),
    ("PUT", "/bkt", "metrics&id=m", &[], "s3:PutMetricsConfiguration", "PutBucketMetricsConfiguration"),
    ("PUT", "/bkt", "notification", &[], "s3:PutBucketNotification", "PutBucketNotificationConfiguration"),
    ("PUT", "/bkt", "object-lock", &[], "s3:PutBucketObjectLockConfiguration", "PutObjectLockConfiguration"),
    ("PUT", "/bkt", "ownershipControls", &[], "s3:PutBucketOwnershipControls", "PutBucketOwnershipControls"),
    ("PUT", "/bkt", "policy", &[], "s3:PutBucketPolicy", "PutBucketPolicy"),
    ("PUT", "/bkt", "publicAccessBlock", &[], "s3:PutBucketPublicAccessBlock", "PutPublicAccessBlock"),
    ("PUT", "/bkt", "replication", &[], "s3:PutReplicationConfiguration", "PutBucketReplication"),
    ("PUT", "/bkt", "requestPayment", &[], "s3:PutBucketRequestPayment", "PutBucketRequestPayment"),
    ("PUT", "/bkt", "tagging", &[], "s3:PutBucketTagging", "PutBucketTagging"),
    ("PUT", "/bkt", "versioning", &[], "s3:PutBucketVersioning", "PutBucketVersioning"),
    ("PUT", "/bkt", "website", &[], "s3:PutBucketWebsite", "PutBucketWebsite"),
    ("POST", "/bkt", "metadataTable", &[], "s3:CreateBucketMetadataTableConfiguration", "CreateBucketMetadataTableConfiguration"),
    ("POST", "/bkt", "delete", &[], "s3:DeleteObject", "DeleteObjects"),
    ("POST", "/bkt", "", &[], "s3:PutObject", "PostObject"),
    ("DELETE", "/bkt", "", &[], "s3:DeleteBucket", "DeleteBucket"),
    ("DELETE", "/bkt", "analytics&id=a", &[], "s3:PutAnalyticsConfiguration", "DeleteBucketAnalyticsConfiguration"),
    ("DELETE", "/bkt", "cors", &[], "s3:PutBucketCORS", "DeleteBucketCors"),
    ("DELETE", "/bkt", "encryption", &[], "s3:PutEncryptionConfiguration", "DeleteBucketEncryption"),
    ("DELETE", "/bkt", "intelligent-tiering&id=i", &[], "s3:PutIntelligentTieringConfiguration", "DeleteBucketIntelligentTieringConfiguration"),
    ("DELETE", "/bkt", "inventory&id=i", &[], "s3:PutInventoryConfiguration", "DeleteBucketInventoryConfiguration"),
    ("DELETE", "/bkt", "lifecycle", &[], "s3:PutLifecycleConfiguration", "DeleteBucketLifecycle"),
    ("DELETE", "/bkt", "metadataTable", &[], "s3:DeleteBucketMetadataTableConfiguration", "DeleteBucketMetadataTableConfiguration"),
    ("DELETE", "/bkt", "metrics&id=m", &[], "s3:PutMetricsConfiguration", "DeleteBucketMetricsConfiguration"),
    ("DELETE", "/bkt", "ownershipControls", &[], "s3:PutBucketOwnershipControls", "DeleteBucketOwnershipControls"),
    ("DELETE", "/bkt", "policy", &[], "s3:DeleteBucketPolicy", "DeleteBucketPolicy"),
    ("DELETE", "/bkt", "publicAccessBlock", &[], "s3:PutBucketPublicAccessBlock", "DeletePublicAccessBlock"),
    ("DELETE", "/bkt", "replication", &[], "s3:PutReplicationConfiguration", "DeleteBucketReplication"),
    ("DELETE", "/bkt", "tagging", &[], "s3:PutBucketTagging", "DeleteBucketTagging"),
    ("DELETE", "/bkt", "website", &[], "s3:DeleteBucketWebsite", "DeleteBucketWebsite"),
    ("GET", "/bkt/k", "", &[], "s3:GetObject", "GetObject"),
    ("GET", "/bkt/k", "partNumber=2&response-content-type=text/plain&x-id=GetObject", &[], "s3:GetObject", "GetObject"),
    ("GET", "/bkt/k", "versionId=v1", &[], "s3:GetObjectVersion", "GetObject"),
    ("HEAD", "/bkt/k", "", &[], "s3:GetObject", "HeadObject"),
    ("HEAD", "/bkt/k", "versionId=v1", &[], "s3:GetObjectVersion", "HeadObject"),
    ("GET", "/bkt/k", "acl", &[], "s3:GetObjectAcl", "GetObjectAcl"),
    ("GET", "/bkt/k", "acl&versionId=v1", &[], "s3:GetObjectVersionAcl", "GetObjectAcl"),
    ("GET", "/bkt/k", "attributes", &[], "s3:GetObjectAttributes", "GetObjectAttributes"),
    ("GET", "/bkt/k", "attributes&versionId=v1", &[], "s3:GetObjectVersionAttributes", "GetObjectAttributes"),
    ("GET", "/bkt/k", "legal-hold", &[], "s3:GetObjectLegalHold", "GetObjectLegalHold"),
    ("GET", "/bkt/k", "retention", &[], "s3:GetObjectRetention", "GetObjectRetention"),
    ("GET", "/bkt/k", "tagging", &[], "s3:GetObjectTagging", "GetObjectTagging"),
    ("GET", "/bkt/k", "tagging&versionId=v1", &[], "s3:GetObjectVersionTagging", "GetObjectTagging"),
    ("GET", "/bkt/k", "torrent", &[], "s3:GetObjectTorrent", "GetObjectTorrent"),
    ("GET", "/bkt/k", "uploadId=u&max-parts=10", &[], "s3:ListMultipartUploadParts", "ListParts"),
    ("PUT", "/bkt/k", "", &[], "s3:PutObject", "PutObject"),
    ("PUT", "/bkt/k", "", COPY, "s3:PutObject", "CopyObject"),
    ("PUT", "/bkt/k", "partNumber=1&uploadId=u", &[], "s3:PutObject", "UploadPart"),
    ("PUT", "/bkt/k", "partNumber=1&uploadId=u", COPY, "s3:PutObject", "UploadPartCopy"),
    ("PUT", "/bkt/k", "acl", &[], "s3:PutObjectAcl", "PutObjectAcl"),
    ("PUT", "/bkt/k", "acl&versionId=v1", &[], "s3:PutObjectVersionAcl", "PutObjectAcl"),
    ("PUT", "/bkt/k", "legal-hold", &[], "s3:PutObjectLegalHold", "PutObjectLegalHold"),
    ("PUT", "/bkt/k", "retention", &[], "s3:PutObjectRetention", "PutObjectRetention"),
    ("PUT", "/bkt/k", "tagging", &[], "s3:PutObjectTagging", "PutObjectTagging"),
    ("PUT", "/bkt/k", "tagging&versionId=v1", &[], "s3:PutObjectVersionTagging", "PutObjectTagging"),
    ("POST", "/bkt/k", "uploads", &[], "s3:PutObject", "CreateMultipartUpload"),
    ("POST", "/bkt/k", "uploadId=u", &[], "s3:PutObject", "CompleteMultipartUpload"),
    ("POST", "/bkt/k", "restore&versionId=v1", &[], "s3:RestoreObject", "RestoreObject"),
    ("POST", "/bkt/k", "select&select-type=2", &[], "s3:GetObject", "SelectObjectContent"),
    ("DELETE", "/bkt/k", "", &[], "s3:DeleteObject", "DeleteObject"),
    ("DELETE", "/bkt/k", "versionId=v1", &[], "s3:DeleteObjectVersion", "DeleteObject"),
    ("DELETE", "/bkt/k", "uploadId=u", &[], "s3:AbortMultipartUpload", "AbortMultipartUpload"),
    ("DELETE", "/bkt/k", "tagging", &[], "s3:DeleteObjectTagging", "DeleteObjectTagging"),
    ("DELETE", "/bkt/k", "tagging&versionId=v1", &[], "s3:DeleteObjectVersionTagging", "DeleteObjectTagging"),
];

#[test]
fn every_operation_maps_to_its_action() {
    for &(method, path, query, hdrs, action, operation) in OPERATIONS {
        let m = Method::from_bytes(method.as_bytes()).expect("method");
        let q = (!query.is_empty()).then_some(query);
        let got = classify(&m, DOMAIN, path, q, &headers(hdrs), &domains())
            .unwrap_or_else(|e| panic!("{method} {path}?{query}: {e:?}"));
        assert_eq!((got.action, got.operation()), (action, operation), "{method} {path}?{query}");
    }
}

#[test]
fn presigned_url_fields_are_parameters() {
    let q = "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AK%2F20240101%2Fus-east-1%2Fs3%2Faws4_request\
             &X-Amz-Date=20240101T000000Z&X-Amz-Expires=60&X-Amz-SignedHeaders=host&X-Amz-Signature=ab";
    let got = request("GET", DOMAIN, "/bkt/k", q).expect("presigned");
    assert_eq!(got.operation(), "GetObject");
    assert_eq!(got.query_value("X-Amz-Credential"), Some("AK/20240101/us-east-1/s3/aws4_request"));
}

#[test]
fn unknown_or_ambiguous_requests_are_refused() {
    let refused = [
        ("GET", "/bkt/k", "frobnicate"),
        ("GET", "/bkt", "ACL"),
        ("GET", "/bkt", "acl&policy"),
        ("GET", "/bkt/k", "uploadId=u&tagging"),
        ("PUT", "/", ""),
        ("DELETE", "/", ""),
        ("HEAD", "/bkt", "acl"),
        ("GET", "/bkt", "restore"),
        ("POST", "/bkt/k", "delete"),
        ("PATCH", "/bkt/k", ""),
        ("OPTIONS", "/bkt/k", ""),
    ];
    for (method, path, query) in refused {
        let err = request(method, DOMAIN, path, query).expect_err(&format!("{method} {path}?{query}"));
        assert!(matches!(err, ClassifyError::InvalidUri(_)), "{err:?}");
    }
}

#[test]
fn virtual_host_with_port_and_dotted_bucket() {
    let got = request("GET", "my.dotted.bucket.s3.gw.test:8443", "/a/b.txt", "").expect("vhost");
    assert_eq!(got.addressing, Addressing::VirtualHost);
    assert_eq!(got.bucket.as_deref(), Some("my.dotted.bucket"));
    assert_eq!(got.key.as_deref(), Some("a/b.txt"));
    assert_eq!(got.resource_arn(), "arn:aws:s3:::my.dotted.bucket/a/b.txt");

    // The longest matching domain wins; the Host header's case does not matter.
    let got = request("GET", "Bkt.GW.test", "/", "").expect("vhost");
    assert_eq!(got.bucket.as_deref(), Some("bkt"));
    assert_eq!((got.key, got.action), (None, "s3:ListBucket"));

    let got = request("GET", "bkt.s3.gw.test.", "//lead", "").expect("vhost");
    assert_eq!(got.bucket.as_deref(), Some("bkt"));
    assert_eq!(got.key.as_deref(), Some("/lead"));
}

#[test]
fn path_style_for_own_domain_ip_and_foreign_hosts() {
    for host in [DOMAIN, "s3.gw.test:80", "gw.test", "10.0.0.1:9000", "[::1]:9000", "other.example"] {
        let got = request("GET", host, "/bkt/k", "").expect(host);
        assert_eq!(got.addressing, Addressing::Path, "{host}");
        assert_eq!(got.bucket.as_deref(), Some("bkt"), "{host}");
        assert_eq!(got.key.as_deref(), Some("k"), "{host}");
    }
    for path in ["/bkt", "/bkt/"] {
        let got = request("GET", DOMAIN, path, "").expect(path);
        assert_eq!((got.bucket.as_deref(), got.key), (Some("bkt"), None));
    }
    let got = request("GET", DOMAIN, "/", "").expect("root");
    assert_eq!((&got.bucket, &got.key), (&None, &None));
    assert_eq!(got.resource_arn(), "arn:aws:s3:::*");
}

#[test]
fn keys_are_decoded_once() {
    let cases = [
        ("/bkt//double//slash/", "/double//slash/"),
        ("/bkt/caf%C3%A9/%E6%97%A5%E6%9C%AC", "café/日本"),
        ("/bkt/a%20b+c", "a b+c"),
        ("/bkt/%2B%25%7E%3D%3A%40%21%24%26%27%28%29%2A%2C%3B", "+%~=:@!$&'()*,;"),
        ("/bkt/+~=:@!$&'()*,;", "+~=:@!$&'()*,;"),
        ("/bkt/100%2525", "100%25"),
        ("/bkt/dir%2Ffile", "dir/file"),
        // Literal keys, as in S3: dot segments and empty segments are part of the key.
        ("/bkt/a/../other", "a/../other"),
        ("/bkt/./k", "./k"),
        ("/bkt/..", ".."),
        ("/bkt/double//slash/./dot/../x", "double//slash/./dot/../x"),
        ("/bkt/public/%2E%2E/secret/x", "public/../secret/x"),
    ];
    for (path, key) in cases {
        let got = request("GET", DOMAIN, path, "").expect(path);
        assert_eq!(got.key.as_deref(), Some(key), "{path}");
    }
}

#[test]
fn query_is_decoded_in_order() {
    let got = request("GET", DOMAIN, "/bkt", "list-type=2&prefix=a+b%2Bc%2F&delimiter=%2F&fetch-owner").expect("list");
    // `+` is a literal plus, as the signature covers it and as it goes upstream (`%2B`).
    let want = [("list-type", "2"), ("prefix", "a+b+c/"), ("delimiter", "/"), ("fetch-owner", "")];
    let want: Vec<(String, String)> = want.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    assert_eq!(got.query, want);
}

#[test]
fn malformed_requests_are_refused() {
    let invalid_uri = [
        ("/bkt/bad%zzescape", ""),
        ("/bkt/trunc%4", ""),
        ("/bkt/not-utf8%FF", ""),
        ("bkt/no-leading-slash", ""),
        ("/bkt", "prefix=%zz"),
    ];
    for (path, query) in invalid_uri {
        let err = request("GET", DOMAIN, path, query).expect_err(path);
        assert!(matches!(err, ClassifyError::InvalidUri(_)), "{path}: {err:?}");
    }
    for path in ["//k", "/ab/k", "/a%2Fb/k", "/bucket*/k", "/-bkt/k", "/a..b/k", "/b%C3%A9b/k"] {
        let err = request("GET", DOMAIN, path, "").expect_err(path);
        assert!(matches!(err, ClassifyError::InvalidBucketName(_)), "{path}: {err:?}");
    }
    let err = request("GET", "bad_-.gw.test", "/k", "").expect_err("vhost");
    assert!(matches!(err, ClassifyError::InvalidBucketName(_)), "{err:?}");
}

#[test]
fn encode_key_matches_sdk_encoding() {
    assert_eq!(encode_key("a b/c+d~e_f-g.h"), "a%20b/c%2Bd~e_f-g.h");
    assert_eq!(encode_key("café/日"), "caf%C3%A9/%E6%97%A5");
    assert_eq!(encode_key("%=:@!$&'()*,;?#"), "%25%3D%3A%40%21%24%26%27%28%29%2A%2C%3B%3F%23");
    for key in ["//x//", "a b+c", "+%~=:@!$&'()*,;", "日本/語"] {
        let path = format!("/bkt/{}", encode_key(key));
        let got = request("GET", DOMAIN, &path, "").expect(key);
        assert_eq!(got.key.as_deref(), Some(key));
    }
}

#[test]
fn copy_source_names_the_object_read() {
    let cases =
        [("/src/a%20b.txt", "src", "a b.txt", None), ("src/dir/k%2Bx?versionId=v%2B1", "src", "dir/k+x", Some("v+1"))];
    for (value, bucket, key, version) in cases {
        let mut map = HeaderMap::new();
        map.insert("x-amz-copy-source", HeaderValue::from_static(value));
        let got = copy_source(&map).expect(value).expect("present");
        assert_eq!((got.bucket.as_str(), got.key.as_str(), got.version_id.as_deref()), (bucket, key, version));
    }
    assert_eq!(copy_source(&HeaderMap::new()), Ok(None));
    for bad in ["/src", "/src/", "arn:aws:s3:us-east-1:1:accesspoint/ap/object/k", "/src/k?x=1"] {
        let mut map = HeaderMap::new();
        map.insert("x-amz-copy-source", HeaderValue::from_static(bad));
        assert!(copy_source(&map).is_err(), "{bad}");
    }
}

#[test]
fn duplicated_parameters_and_single_valued_headers_are_refused() {
    for query in ["prefix=a&prefix=b", "list-type=2&prefix=&prefix=secret/", "versionId=1&versionId=2"] {
        let err = request("GET", DOMAIN, "/bkt", query).expect_err(query);
        assert!(matches!(err, ClassifyError::InvalidArgument(_)), "{query}: {err:?}");
    }
    for name in ["x-amz-copy-source", "x-amz-acl", "x-amz-meta-a", "content-type", "range"] {
        let mut map = HeaderMap::new();
        map.append(http::HeaderName::from_static(name), HeaderValue::from_static("/src/a"));
        map.append(http::HeaderName::from_static(name), HeaderValue::from_static("/src/b"));
        let err = classify(&Method::PUT, DOMAIN, "/bkt/k", None, &map, &domains()).expect_err(name);
        assert!(matches!(err, ClassifyError::InvalidArgument(_)), "{name}: {err:?}");
    }
    // Headers that are lists by nature may repeat.
    let mut map = HeaderMap::new();
    map.append("accept", HeaderValue::from_static("a"));
    map.append("accept", HeaderValue::from_static("b"));
    assert!(classify(&Method::GET, DOMAIN, "/bkt/k", None, &map, &domains()).is_ok());
}

#[test]
fn x_amz_query_parameters_belong_to_presigned_urls_only() {
    for query in ["x-amz-acl=public-read", "X-Amz-Credential=AK", "X-Amz-Security-Token=t"] {
        let err = request("PUT", DOMAIN, "/bkt/k", query).expect_err(query);
        assert!(matches!(err, ClassifyError::InvalidArgument(_)), "{query}: {err:?}");
    }
    let presigned = "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AK&X-Amz-Date=d&X-Amz-Expires=60\
                     &X-Amz-SignedHeaders=host&X-Amz-Signature=ab";
    let hoisted = format!("{presigned}&x-amz-acl=public-read&x-amz-tagging=a%3Db");
    let got = request("PUT", DOMAIN, "/bkt/k", &hoisted).expect("hoisted headers in a presigned URL");
    assert_eq!(got.also_requires, ["s3:PutObjectAcl", "s3:PutObjectTagging"]);
    // A hoisted copy source would turn the upload into a copy that no header shows.
    let copy = format!("{presigned}&x-amz-copy-source=%2Fother%2Fsecret");
    let err = request("PUT", DOMAIN, "/bkt/k", &copy).expect_err("copy source in the query");
    assert!(matches!(err, ClassifyError::InvalidArgument(_)), "{err:?}");
}

/// method, path, headers -> the extra actions required
type ExtraRow = (&'static str, &'static str, &'static [(&'static str, &'static str)], &'static [&'static str]);

#[test]
fn headers_that_set_more_than_the_operation_need_their_own_permission() {
    let cases: &[ExtraRow] = &[
        ("PUT", "/bkt/k", &[], &[]),
        ("PUT", "/bkt/k", &[("x-amz-acl", "public-read")], &["s3:PutObjectAcl"]),
        ("PUT", "/bkt/k", &[("x-amz-grant-read", "uri=x")], &["s3:PutObjectAcl"]),
        ("PUT", "/bkt/k", &[("x-amz-tagging", "a=b")], &["s3:PutObjectTagging"]),
        (
            "PUT",
            "/bkt/k",
            &[
                ("x-amz-object-lock-mode", "COMPLIANCE"),
                ("x-amz-object-lock-retain-until-date", "2030-01-01T00:00:00Z"),
            ],
            &["s3:PutObjectRetention"],
        ),
        ("PUT", "/bkt/k", &[("x-amz-object-lock-legal-hold", "ON")], &["s3:PutObjectLegalHold"]),
        (
            "PUT",
            "/bkt/k",
            &[("x-amz-copy-source", "/src/k"), ("x-amz-acl", "public-read"), ("x-amz-tagging", "a=b")],
            &["s3:PutObjectAcl", "s3:PutObjectTagging"],
        ),
        ("DELETE", "/bkt/k", &[("x-amz-bypass-governance-retention", "true")], &["s3:BypassGovernanceRetention"]),
        ("PUT", "/bkt", &[("x-amz-acl", "private")], &["s3:PutBucketAcl"]),
        (
            "PUT",
            "/bkt",
            &[("x-amz-bucket-object-lock-enabled", "true")],
            &["s3:PutBucketObjectLockConfiguration", "s3:PutBucketVersioning"],
        ),
        // A header that means nothing to the operation asks for nothing more.
        ("GET", "/bkt/k", &[("x-amz-acl", "public-read")], &[]),
    ];
    for &(method, path, hdrs, want) in cases {
        let m = Method::from_bytes(method.as_bytes()).expect("method");
        let mut map = HeaderMap::new();
        for (n, v) in hdrs {
            map.insert(http::HeaderName::from_static(n), HeaderValue::from_static(v));
        }
        let q = if path.ends_with("/k") && method == "POST" { Some("uploads") } else { None };
        let got = classify(&m, DOMAIN, path, q, &map, &domains()).expect(path);
        assert_eq!(got.also_requires, want, "{method} {path} {hdrs:?}");
    }
    let mut map = HeaderMap::new();
    map.insert("x-amz-acl", HeaderValue::from_static("public-read"));
    let got = classify(&Method::POST, DOMAIN, "/bkt/k", Some("uploads"), &map, &domains()).expect("create upload");
    assert_eq!(got.also_requires, ["s3:PutObjectAcl"]);
}

proptest::proptest! {
    /// The short ways (nothing to encode, nothing to decode) give what the general ones give.
    #[test]
    fn keys_encode_and_decode_the_short_way_as_the_general_way(key in "[a-zA-Z0-9/._~ +%-]{0,20}|\\PC{0,8}") {
        let general: String = utf8_percent_encode(&key, KEY_ENCODE).collect();
        proptest::prop_assert_eq!(encode_key(&key), general);
        let decoded_general = percent_encoding::percent_decode_str(&key).decode_utf8().map(|s| s.into_owned());
        match decode(&key) {
            Ok(decoded) => proptest::prop_assert_eq!(Ok(decoded), decoded_general.map_err(|_| ())),
            Err(_) => proptest::prop_assert!(key.contains('%'), "only an escape can be malformed: {:?}", key),
        }
    }
}
