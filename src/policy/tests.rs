use std::net::IpAddr;

use http::{HeaderMap, HeaderValue, Method};
use time::macros::datetime;

use super::*;
use crate::s3_request::classify;

const BUCKET: &str = "arn:aws:s3:::data";

fn policy(statements: &str) -> Policy {
    let text = format!(r#"{{"Version": "2012-10-17", "Statement": {statements}}}"#);
    Policy::from_json(&text).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

fn req(action: &'static str, resource: &str, context: &[(&str, &str)]) -> AuthzRequest<'static> {
    let mut req = AuthzRequest { action, resource_arn: resource.to_owned(), context: Context::new() };
    for (k, v) in context {
        req.insert(k, *v);
    }
    req
}

/// A read-only grant on one bucket with a deny for one prefix, as an operator would write it.
const READ_ONLY: &str = r#"[
  {"Sid": "List", "Effect": "Allow", "Action": "s3:ListBucket", "Resource": "arn:aws:s3:::data"},
  {"Sid": "Read", "Effect": "Allow", "Action": ["s3:Get*", "S3:HEADOBJECT"], "Resource": "arn:aws:s3:::data/*"},
  {"Sid": "NoSecrets", "Effect": "Deny", "Action": "s3:*", "Resource": "arn:aws:s3:::data/secret/*"}
]"#;

/// Statements where Deny and NotResource interact.
const ONLY_DATA: &str = r#"[{"Effect": "Allow", "Action": "s3:*", "Resource": "*"},
  {"Effect": "Deny", "Action": "s3:*", "NotResource": ["arn:aws:s3:::data", "arn:aws:s3:::data/*"]}]"#;
const NOT_ACTION: &str = r#"{"Effect": "Allow", "NotAction": ["s3:Delete*", "s3:Put*Policy"], "Resource": "*"}"#;
const HOME: &str = r#"{"Effect": "Allow", "Action": "s3:*", "Resource": "arn:aws:s3:::data/home/${aws:username}/*"}"#;
const ALL_BUCKETS: &str = r#"{"Effect": "Allow", "Action": "s3:ListAllMyBuckets", "Resource": "arn:aws:s3:::*"}"#;

/// case, statements, action, resource, context -> decision
type EvalRow = (&'static str, &'static str, &'static str, &'static str, Ctx, Decision);
type Ctx = &'static [(&'static str, &'static str)];

#[rustfmt::skip]
const EVALUATION: &[EvalRow] = &[
    ("allow", READ_ONLY, "s3:GetObject", "arn:aws:s3:::data/a/b", &[], Decision::Allow),
    ("wildcard action", READ_ONLY, "s3:GetObjectTagging", "arn:aws:s3:::data/a", &[], Decision::Allow),
    ("action case", READ_ONLY, "s3:headobject", "arn:aws:s3:::data/a", &[], Decision::Allow),
    ("bucket is not objects", READ_ONLY, "s3:GetObject", "arn:aws:s3:::data", &[], Decision::ImplicitDeny),
    ("other bucket", READ_ONLY, "s3:GetObject", "arn:aws:s3:::data2/a", &[], Decision::ImplicitDeny),
    ("unlisted action", READ_ONLY, "s3:PutObject", "arn:aws:s3:::data/a", &[], Decision::ImplicitDeny),
    ("deny over allow", READ_ONLY, "s3:GetObject", "arn:aws:s3:::data/secret/k", &[], Decision::ExplicitDeny),
    ("deny without allow", READ_ONLY, "s3:PutObject", "arn:aws:s3:::data/secret/k", &[], Decision::ExplicitDeny),
    ("ARN case matters", READ_ONLY, "s3:GetObject", "arn:aws:s3:::data/Secret/k", &[], Decision::Allow),
    ("NotAction", NOT_ACTION, "s3:PutObject", "arn:aws:s3:::data/k", &[], Decision::Allow),
    ("NotAction excludes", NOT_ACTION, "s3:PutBucketPolicy", "arn:aws:s3:::data", &[], Decision::ImplicitDeny),
    ("NotResource deny", ONLY_DATA, "s3:GetObject", "arn:aws:s3:::other/k", &[], Decision::ExplicitDeny),
    ("NotResource spares", ONLY_DATA, "s3:GetObject", "arn:aws:s3:::data/k", &[], Decision::Allow),
    ("ListAllMyBuckets", ALL_BUCKETS, "s3:ListAllMyBuckets", "arn:aws:s3:::*", &[], Decision::Allow),
    ("home variable", HOME, "s3:PutObject", "arn:aws:s3:::data/home/ann/x", &[("aws:username", "ann")], Decision::Allow),
    ("other's home", HOME, "s3:PutObject", "arn:aws:s3:::data/home/bob/x", &[("aws:username", "ann")], Decision::ImplicitDeny),
    ("unresolved variable", HOME, "s3:PutObject", "arn:aws:s3:::data/home//x", &[], Decision::ImplicitDeny),
];

#[test]
fn evaluation_table() {
    for (name, statements, action, resource, context, want) in EVALUATION {
        let got = authorize(&policy(statements), &req(action, resource, context));
        assert_eq!(got, *want, "{name}");
    }
}

const PREFIXES: &str = r#"{"StringLike": {"s3:prefix": ["home/", "home/ann/*"]}}"#;
const NO_PUBLIC: &str = r#"{"StringNotEquals": {"s3:x-amz-acl": ["public-read", "public-read-write"]}}"#;
const NETWORKS: &str = r#"{"IpAddress": {"aws:SourceIp": ["10.0.0.0/8", "2001:db8::/32"]}}"#;
const TAGS_ALL: &str = r#"{"ForAllValues:StringEquals": {"aws:TagKeys": ["a", "b"]}}"#;
const TAGS_ANY: &str = r#"{"ForAnyValue:StringEquals": {"aws:TagKeys": ["a", "b"]}}"#;
const TLS_AND_NET: &str = r#"{"Bool": {"aws:SecureTransport": "true"}, "IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}"#;
const TWO_KEYS: &str = r#"{"StringEquals": {"s3:prefix": "p/", "s3:delimiter": "/"}}"#;

/// Condition block, request context -> decision of an Allow statement carrying it.
#[rustfmt::skip]
const CONDITIONS: &[(&str, Ctx, Decision)] = &[
    (PREFIXES, &[("s3:prefix", "home/ann/docs/")], Decision::Allow),
    (PREFIXES, &[("s3:prefix", "home/bob/")], Decision::ImplicitDeny),
    (PREFIXES, &[], Decision::ImplicitDeny),
    (r#"{"StringEquals": {"s3:prefix": ["", "home/"]}}"#, &[("s3:prefix", "")], Decision::Allow),
    (r#"{"StringEquals": {"S3:Prefix": "abc"}}"#, &[("s3:prefix", "abc")], Decision::Allow),
    (r#"{"StringEquals": {"s3:prefix": "a*"}}"#, &[("s3:prefix", "abc")], Decision::ImplicitDeny),
    (NO_PUBLIC, &[("s3:x-amz-acl", "private")], Decision::Allow),
    (NO_PUBLIC, &[("s3:x-amz-acl", "public-read")], Decision::ImplicitDeny),
    (NO_PUBLIC, &[], Decision::Allow),
    (r#"{"StringEqualsIgnoreCase": {"s3:x-amz-storage-class": "standard_ia"}}"#, &[("s3:x-amz-storage-class", "STANDARD_IA")], Decision::Allow),
    (r#"{"StringNotLike": {"aws:UserAgent": "*curl*"}}"#, &[("aws:useragent", "aws-sdk-rust")], Decision::Allow),
    (NETWORKS, &[("aws:SourceIp", "10.1.2.3")], Decision::Allow),
    (NETWORKS, &[("aws:SourceIp", "2001:db8:1::5")], Decision::Allow),
    (NETWORKS, &[("aws:SourceIp", "::ffff:10.9.9.9")], Decision::Allow),
    (NETWORKS, &[("aws:SourceIp", "11.0.0.1")], Decision::ImplicitDeny),
    (NETWORKS, &[("aws:SourceIp", "2001:db9::1")], Decision::ImplicitDeny),
    (r#"{"IpAddress": {"aws:SourceIp": "192.0.2.7"}}"#, &[("aws:SourceIp", "192.0.2.7")], Decision::Allow),
    (r#"{"IpAddress": {"aws:SourceIp": "0.0.0.0/0"}}"#, &[("aws:SourceIp", "198.51.100.1")], Decision::Allow),
    (r#"{"NotIpAddress": {"aws:SourceIp": "10.0.0.0/8"}}"#, &[("aws:SourceIp", "10.0.0.1")], Decision::ImplicitDeny),
    (r#"{"NotIpAddress": {"aws:SourceIp": "10.0.0.0/8"}}"#, &[("aws:SourceIp", "::1")], Decision::Allow),
    (r#"{"Bool": {"aws:SecureTransport": "true"}}"#, &[("aws:SecureTransport", "true")], Decision::Allow),
    (r#"{"Bool": {"aws:SecureTransport": true}}"#, &[("aws:SecureTransport", "false")], Decision::ImplicitDeny),
    (r#"{"Bool": {"aws:SecureTransport": "true"}}"#, &[], Decision::ImplicitDeny),
    (r#"{"BoolIfExists": {"aws:SecureTransport": "true"}}"#, &[], Decision::Allow),
    (r#"{"StringEqualsIfExists": {"s3:x-amz-storage-class": "STANDARD"}}"#, &[], Decision::Allow),
    (r#"{"StringEqualsIfExists": {"s3:x-amz-storage-class": "STANDARD"}}"#, &[("s3:x-amz-storage-class", "GLACIER")], Decision::ImplicitDeny),
    (r#"{"NumericLessThanEquals": {"s3:max-keys": 100}}"#, &[("s3:max-keys", "100")], Decision::Allow),
    (r#"{"NumericLessThanEquals": {"s3:max-keys": "100"}}"#, &[("s3:max-keys", "1000")], Decision::ImplicitDeny),
    (r#"{"NumericLessThan": {"s3:max-keys": "100"}}"#, &[("s3:max-keys", "lots")], Decision::ImplicitDeny),
    (r#"{"NumericNotEquals": {"s3:max-keys": [1, 2]}}"#, &[("s3:max-keys", "3")], Decision::Allow),
    (r#"{"NumericGreaterThan": {"s3:max-keys": 1.5}}"#, &[("s3:max-keys", "2")], Decision::Allow),
    (r#"{"DateLessThan": {"aws:CurrentTime": "2030-01-01T00:00:00Z"}}"#, &[("aws:CurrentTime", "2029-12-31T23:59:59Z")], Decision::Allow),
    (r#"{"DateLessThan": {"aws:CurrentTime": "2030-01-01"}}"#, &[("aws:CurrentTime", "2030-01-01T00:00:00Z")], Decision::ImplicitDeny),
    (r#"{"DateGreaterThanEquals": {"aws:EpochTime": "2030-01-01T00:00:00+01:00"}}"#, &[("aws:EpochTime", "1893452400")], Decision::Allow),
    (r#"{"Null": {"s3:x-amz-server-side-encryption": "true"}}"#, &[], Decision::Allow),
    (r#"{"Null": {"s3:x-amz-server-side-encryption": "false"}}"#, &[], Decision::ImplicitDeny),
    (TAGS_ALL, &[("aws:TagKeys", "a"), ("aws:TagKeys", "b")], Decision::Allow),
    (TAGS_ALL, &[("aws:TagKeys", "a"), ("aws:TagKeys", "c")], Decision::ImplicitDeny),
    (TAGS_ALL, &[], Decision::Allow),
    (TAGS_ANY, &[("aws:TagKeys", "c"), ("aws:TagKeys", "b")], Decision::Allow),
    (TAGS_ANY, &[], Decision::ImplicitDeny),
    (r#"{"StringEquals": {"s3:prefix": "home/${aws:username}/"}}"#, &[("s3:prefix", "home/ann/"), ("aws:username", "ann")], Decision::Allow),
    // Keys and operators are ANDed.
    (TLS_AND_NET, &[("aws:SecureTransport", "true"), ("aws:SourceIp", "192.0.2.1")], Decision::ImplicitDeny),
    (TLS_AND_NET, &[("aws:SecureTransport", "true"), ("aws:SourceIp", "10.0.0.1")], Decision::Allow),
    (TWO_KEYS, &[("s3:prefix", "p/"), ("s3:delimiter", "/")], Decision::Allow),
    (TWO_KEYS, &[("s3:prefix", "p/")], Decision::ImplicitDeny),
];

#[test]
fn conditions_table() {
    for (condition, context, want) in CONDITIONS {
        let statement =
            format!(r#"{{"Effect": "Allow", "Action": "s3:ListBucket", "Resource": "*", "Condition": {condition}}}"#);
        let got = authorize(&policy(&statement), &req("s3:ListBucket", BUCKET, context));
        assert_eq!(got, *want, "{condition} with {context:?}");
    }
}

#[test]
fn from_s3_fills_the_standard_keys() {
    let domains = ["gw.test".to_owned()];
    let list = classify(
        &Method::GET,
        "data.gw.test",
        "/",
        Some("list-type=2&prefix=home%2Fann%2F&delimiter=%2F&max-keys=50"),
        &HeaderMap::new(),
        &domains,
    )
    .expect("classify");
    let mut headers = HeaderMap::new();
    headers.insert("x-amz-storage-class", HeaderValue::from_static("GLACIER"));
    let ip: IpAddr = "::ffff:10.1.2.3".parse().expect("ip");
    let now = datetime!(2030-01-02 03:04:05 +02:00);
    let authz = AuthzRequest::from_s3(&list, ip, true, &headers, now);
    let get = |k: &str| lookup(&authz.context, k).map(|v| v.join(","));
    assert_eq!(authz.action, "s3:ListBucket");
    assert_eq!(authz.resource_arn, BUCKET);
    assert_eq!(get("aws:SourceIp").as_deref(), Some("10.1.2.3"));
    assert_eq!(get("aws:SecureTransport").as_deref(), Some("true"));
    assert_eq!(get("aws:CurrentTime").as_deref(), Some("2030-01-02T01:04:05Z"));
    assert_eq!(get("aws:EpochTime").as_deref(), Some("1893546245"));
    assert_eq!(get("s3:prefix").as_deref(), Some("home/ann/"));
    assert_eq!(get("s3:delimiter").as_deref(), Some("/"));
    assert_eq!(get("s3:max-keys").as_deref(), Some("50"));
    assert_eq!(get("s3:x-amz-storage-class").as_deref(), Some("GLACIER"));

    let home = policy(
        r#"{"Effect": "Allow", "Action": "s3:ListBucket", "Resource": "arn:aws:s3:::data",
            "Condition": {"StringLike": {"s3:prefix": ["", "home/${aws:username}/*"]},
                          "Bool": {"aws:SecureTransport": "true"},
                          "IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}}"#,
    );
    let mut as_ann = authz.clone();
    as_ann.insert("aws:username", "ann");
    assert_eq!(authorize(&home, &as_ann), Decision::Allow);
    let mut as_bob = authz.clone();
    as_bob.insert("aws:username", "bob");
    assert_eq!(authorize(&home, &as_bob), Decision::ImplicitDeny);

    // A listing without a prefix is the root listing: s3:prefix is "".
    let root = classify(&Method::GET, "data.gw.test", "/", None, &HeaderMap::new(), &domains).expect("classify");
    let authz = AuthzRequest::from_s3(&root, ip, false, &HeaderMap::new(), now);
    assert_eq!(lookup(&authz.context, "s3:prefix"), Some(&[String::new()][..]));
    let get = classify(&Method::GET, "data.gw.test", "/k", None, &HeaderMap::new(), &domains).expect("classify");
    let authz = AuthzRequest::from_s3(&get, ip, false, &HeaderMap::new(), now);
    assert_eq!(lookup(&authz.context, "s3:prefix"), None);
    assert_eq!(authz.resource_arn, "arn:aws:s3:::data/k");
}

/// Document -> part of the error message that must point at the fault.
#[rustfmt::skip]
const INVALID_DOCUMENTS: &[(&str, &str)] = &[
    (r#"{"Version": "2012-10-17", "Statement": "#, "not valid JSON"),
    (r#"{"Version": "2012-10-18", "Statement": []}"#, "unknown Version"),
    (r#"{"Statement": []}"#, "Statement is empty"),
    (r#"{"Statement": [], "Statements": []}"#, "unknown field `Statements`"),
    (r#"{"Statement": {"Effect": "Alow", "Action": "*", "Resource": "*"}}"#, r#"statement 1: unknown Effect "Alow""#),
    (
        r#"{"Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"},
                          {"Sid": "Two", "Effect": "Allow", "Actions": "*", "Resource": "*"}]}"#,
        r#"statement 2 (Sid "Two"): unknown field `Actions`"#,
    ),
    (r#"{"Statement": {"Effect": "Allow", "Resource": "*"}}"#, "needs Action or NotAction"),
    (r#"{"Statement": {"Effect": "Allow", "Action": "*", "NotAction": "*", "Resource": "*"}}"#, "both Action and NotAction"),
    (r#"{"Statement": {"Effect": "Allow", "Action": "*"}}"#, "needs Resource or NotResource"),
    (r#"{"Statement": {"Effect": "Allow", "Action": "GetObject", "Resource": "*"}}"#, "no service prefix"),
    (r#"{"Statement": {"Effect": "Allow", "Action": [], "Resource": "*"}}"#, "Action is empty"),
    (r#"{"Statement": {"Effect": "Allow", "Action": 3, "Resource": "*"}}"#, "Action must be a string"),
    (r#"{"Statement": {"Effect": "Allow", "Action": "*", "Resource": "data/*"}}"#, "not an ARN"),
    (r#"{"Statement": {"Effect": "Allow", "Action": "*", "Resource": "*", "Principal": "*"}}"#, "Principal is not allowed"),
];

/// Condition block -> part of the error message.
#[rustfmt::skip]
const INVALID_CONDITIONS: &[(&str, &str)] = &[
    (r#"{"StringEqual": {"s3:prefix": "a"}}"#, r#"unknown condition operator "StringEqual""#),
    (r#"{"BinaryEquals": {"k": "YQ=="}}"#, "unknown condition operator"),
    (r#"{"NullIfExists": {"k": "true"}}"#, "unknown condition operator"),
    (r#"{"IpAddress": {"aws:SourceIp": "10.0.0.0/33"}}"#, r#"invalid CIDR "10.0.0.0/33""#),
    (r#"{"IpAddress": {"aws:SourceIp": "10.0.0/8"}}"#, "invalid CIDR"),
    (r#"{"NotIpAddress": {"aws:SourceIp": "2001:db8::/129"}}"#, "invalid CIDR"),
    (r#"{"IpAddress": {"aws:SourceIp": "10.0.0.0/+8"}}"#, "invalid CIDR"),
    (r#"{"IpAddress": {"aws:SourceIp": "10.0.0.0/"}}"#, "invalid CIDR"),
    (r#"{"NumericLessThan": {"s3:max-keys": "ten"}}"#, "is not a number"),
    (r#"{"DateLessThan": {"aws:CurrentTime": "next tuesday"}}"#, "is not a date"),
    (r#"{"Bool": {"aws:SecureTransport": "yes"}}"#, "is not true or false"),
    (r#"{"StringEquals": {"s3:prefix": []}}"#, "has no values"),
    (r#"{"StringEquals": {}}"#, "has no keys"),
    (r#"{"StringEquals": {"s3:prefix": {"a": 1}}}"#, "must be strings, numbers or booleans"),
    (r#"{"StringLike": {"s3:prefix": "${aws:username"}}"#, "unterminated policy variable"),
];

#[test]
fn invalid_policies_are_refused_with_a_reason() {
    let conditions = INVALID_CONDITIONS.iter().map(|(condition, reason)| {
        let doc = format!(
            r#"{{"Version": "2012-10-17", "Statement": {{"Effect": "Deny", "Action": "*",
                "Resource": "*", "Condition": {condition}}}}}"#
        );
        (doc, *reason)
    });
    let documents = INVALID_DOCUMENTS.iter().map(|(d, r)| (d.to_string(), *r));
    for (doc, reason) in documents.chain(conditions) {
        let err = Policy::from_json(&doc).expect_err(&doc).to_string();
        assert!(err.contains(reason), "{doc}\n  gave: {err}\n  want: {reason}");
    }
}

#[test]
fn policy_deserializes_from_config_formats() {
    let from_serde: Policy = serde_json::from_str(
        r#"{"Version": "2012-10-17", "Statement": {"Effect": "Allow", "Action": "s3:Get*", "Resource": "*"}}"#,
    )
    .expect("serde");
    let request = req("s3:GetObject", "arn:aws:s3:::b/k", &[]);
    assert_eq!(authorize(&from_serde, &request), Decision::Allow);
    let err = serde_json::from_str::<Policy>(r#"{"Statement": {"Effect": "Maybe"}}"#).expect_err("invalid").to_string();
    assert!(err.contains("unknown Effect"), "{err}");
}
