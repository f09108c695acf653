//! DeleteObjects under a policy: every object its body names is checked as S3 will read the
//! body, whatever XML syntax or aws-chunked framing hides a key, and a request naming one
//! denied object deletes nothing.

use std::time::SystemTime;

use aws_sdk_s3::types::{Delete, ObjectIdentifier};
use http::HeaderValue;

use crate::support::raw::{self, amz_date, crc32_b64, seed_signature, sha256_hex, signed_chunked_body, RawResponse};
use crate::support::{code_of, create_bucket, exists, Gateway};

/// May delete objects in `shared` (the bucket ARN too, so that a check of the request head
/// alone would let any DeleteObjects through), never under `secret/`.
const SCOPED: &str = "DELETESCOPED00000001";
const SCOPED_SECRET: &str = "scoped-secret-0123456789abcdefghijklmnop";
/// Granted on objects only, as IAM examples write it: `shared/*`, and versions under `versioned/`.
const OBJECTS: &str = "DELETEOBJECTS0000001";
const OBJECTS_SECRET: &str = "objects-secret-0123456789abcdefghijklmno";

fn policies() -> String {
    format!(
        r#"
[[client]]
access_key_id = "{SCOPED}"
secret_access_key = "{SCOPED_SECRET}"
policy = '''
{{ "Version": "2012-10-17",
   "Statement": [
     {{ "Effect": "Allow", "Action": "s3:DeleteObject", "Resource": ["arn:aws:s3:::shared", "arn:aws:s3:::shared/*"] }},
     {{ "Effect": "Deny", "Action": "s3:*", "Resource": "arn:aws:s3:::shared/secret/*" }}
   ] }}
'''

[[client]]
access_key_id = "{OBJECTS}"
secret_access_key = "{OBJECTS_SECRET}"
policy = '''
{{ "Version": "2012-10-17",
   "Statement": [
     {{ "Effect": "Allow", "Action": "s3:DeleteObject", "Resource": "arn:aws:s3:::shared/*" }},
     {{ "Effect": "Allow", "Action": "s3:DeleteObjectVersion", "Resource": "arn:aws:s3:::shared/versioned/*" }}
   ] }}
'''
"#
    )
}

/// A gateway with the policies and a bucket `shared` holding `keys`.
async fn gateway_with(keys: &[&str]) -> Gateway {
    let gw = Gateway::start_with_toml(&policies(), |_| {}).await;
    let admin = gw.upstream.direct_client();
    create_bucket(&admin, "shared").await;
    for key in keys {
        admin.put_object().bucket("shared").key(*key).body(b"x".to_vec().into()).send().await.expect("put");
    }
    gw
}

async fn all_exist(gw: &Gateway, keys: &[&str]) {
    for key in keys {
        assert!(exists(&gw.upstream.direct_client(), "shared", key).await, "{key} was deleted");
    }
}

fn header(v: &str) -> HeaderValue {
    HeaderValue::from_str(v).expect("header value")
}

/// `POST /shared?delete` with `body` signed by its SHA-256, a checksum header as the SDKs send.
async fn delete(gw: &Gateway, akid: &str, secret: &str, body: &str) -> RawResponse {
    let mut req = raw::request("POST", gw.addr(), "/shared?delete");
    let h = req.headers_mut();
    h.insert("content-length", header(&body.len().to_string()));
    h.insert("content-type", header("application/xml"));
    h.insert("x-amz-checksum-crc32", header(&crc32_b64(body.as_bytes())));
    raw::sign_as(&mut req, &sha256_hex(body.as_bytes()), SystemTime::now(), akid, secret);
    raw::send(req, body.to_owned()).await
}

/// The same as a signed aws-chunked stream in chunks of `chunk` bytes, with the CRC32 in a
/// signed trailer when `trailer`, as SDKs stream bodies.
async fn delete_chunked(gw: &Gateway, body: &str, chunk: usize, trailer: bool) -> RawResponse {
    let data = body.as_bytes();
    let now = SystemTime::now();
    let date_time = amz_date(now);
    let mut req = raw::request("POST", gw.addr(), "/shared?delete");
    let h = req.headers_mut();
    h.insert("content-encoding", header("aws-chunked"));
    h.insert("x-amz-decoded-content-length", header(&data.len().to_string()));
    let mode = if trailer {
        h.insert("x-amz-trailer", header("x-amz-checksum-crc32"));
        h.insert("x-amz-sdk-checksum-algorithm", header("CRC32"));
        "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER"
    } else {
        h.insert("x-amz-checksum-crc32", header(&crc32_b64(data)));
        "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
    };
    let crc = crc32_b64(data);
    let pair = trailer.then_some(("x-amz-checksum-crc32", crc.as_str()));
    let framed_len = signed_chunked_body(data, chunk, &"0".repeat(64), &date_time, SCOPED_SECRET, pair).len();
    req.headers_mut().insert("content-length", header(&framed_len.to_string()));
    raw::sign_as(&mut req, mode, now, SCOPED, SCOPED_SECRET);
    let framed = signed_chunked_body(data, chunk, &seed_signature(&req), &date_time, SCOPED_SECRET, pair);
    raw::send(req, framed).await
}

fn objects(keys: &[&str]) -> String {
    let list: String = keys.iter().map(|k| format!("<Object><Key>{k}</Key></Object>")).collect();
    format!("<Delete xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">{list}</Delete>")
}

#[tokio::test]
async fn a_policy_on_objects_alone_lets_delete_objects_delete_them() {
    let gw = gateway_with(&["a.txt", "dir/b.txt"]).await;
    let client = gw.client_with(OBJECTS, OBJECTS_SECRET);
    let delete = Delete::builder()
        .objects(ObjectIdentifier::builder().key("a.txt").build().expect("id"))
        .objects(ObjectIdentifier::builder().key("dir/b.txt").build().expect("id"))
        .build()
        .expect("delete");
    client.delete_objects().bucket("shared").delete(delete).send().await.expect("allowed on shared/*");
    let direct = gw.upstream.direct_client();
    assert!(!exists(&direct, "shared", "a.txt").await);
    assert!(!exists(&direct, "shared", "dir/b.txt").await);
}

#[tokio::test]
async fn deleting_a_version_needs_delete_object_version() {
    let gw = gateway_with(&["plain/a", "versioned/a"]).await;
    let client = gw.client_with(OBJECTS, OBJECTS_SECRET);
    let version_of = |key: &str| {
        let id = ObjectIdentifier::builder().key(key).version_id("3HL4kqtJlcpXroDTDmJ").build().expect("id");
        Delete::builder().objects(id).build().expect("delete")
    };
    let err = client.delete_objects().bucket("shared").delete(version_of("plain/a")).send().await;
    assert_eq!(code_of(&err.expect_err("s3:DeleteObject does not cover a version")), "AccessDenied");
    all_exist(&gw, &["plain/a"]).await;
    client.delete_objects().bucket("shared").delete(version_of("versioned/a")).send().await.expect("allowed");
    assert!(!exists(&gw.upstream.direct_client(), "shared", "versioned/a").await);
}

#[tokio::test]
async fn a_key_hidden_by_xml_syntax_is_still_the_key_checked() {
    let gw = gateway_with(&["public/a", "secret/x"]).await;
    let hidden = [
        "<Key >secret/x</Key >",
        "<Key><![CDATA[secret/x]]></Key>",
        "<Key>sec<!-- split -->ret/x</Key>",
        "<Key>&#x73;ecret/x</Key>",
        "<Key\n>secret/<![CDATA[x]]></Key\t>",
    ];
    for key in hidden {
        let body = format!("<Delete><Object><Key>public/a</Key></Object><Object>{key}</Object></Delete>");
        let resp = delete(&gw, SCOPED, SCOPED_SECRET, &body).await;
        assert_eq!(resp.status, 403, "{key}: {}", resp.body);
        assert_eq!(resp.code(), "AccessDenied", "{key}");
        all_exist(&gw, &["public/a", "secret/x"]).await;
    }
}

#[tokio::test]
async fn a_doctype_or_an_entity_of_its_own_is_malformed_xml() {
    let gw = gateway_with(&["public/a", "secret/x"]).await;
    let bodies = [
        r#"<!DOCTYPE Delete [<!ENTITY s "secret">]><Delete><Object><Key>&s;/x</Key></Object></Delete>"#,
        r#"<!DOCTYPE Delete [<!ENTITY o "&#60;Key>secret/x&#60;/Key>">]><Delete><Object>&o;</Object></Delete>"#,
        "<Delete><Object><Key>public/a</Key><Key>secret/x</Key></Object></Delete>",
        "<Delete><Object><Key>public/a</Key></Object>",
    ];
    for body in bodies {
        let resp = delete(&gw, SCOPED, SCOPED_SECRET, body).await;
        assert_eq!(resp.status, 400, "{body}: {}", resp.body);
        assert_eq!(resp.code(), "MalformedXML", "{body}");
        all_exist(&gw, &["public/a", "secret/x"]).await;
    }
}

#[tokio::test]
async fn a_chunk_boundary_inside_a_key_hides_nothing() {
    let gw = gateway_with(&["public/a", "public/b", "secret/x"]).await;
    let body = objects(&["public/a", "secret/x"]);
    let split = body.find("secret/x").expect("key") + 3;
    for trailer in [true, false] {
        let resp = delete_chunked(&gw, &body, split, trailer).await;
        assert_eq!(resp.status, 403, "trailer {trailer}: {}", resp.body);
        assert_eq!(resp.code(), "AccessDenied");
        all_exist(&gw, &["public/a", "public/b", "secret/x"]).await;
    }
    // Allowed keys in the same framing are deleted: the upstream gets the checked body, plain.
    let body = objects(&["public/a"]);
    let resp = delete_chunked(&gw, &body, 10, true).await;
    assert_eq!(resp.status, 200, "{}", resp.body);
    assert!(!exists(&gw.upstream.direct_client(), "shared", "public/a").await);
    let body = objects(&["public/b"]);
    let resp = delete_chunked(&gw, &body, 10, false).await;
    assert_eq!(resp.status, 200, "{}", resp.body);
    assert!(!exists(&gw.upstream.direct_client(), "shared", "public/b").await);
    all_exist(&gw, &["secret/x"]).await;
}

#[tokio::test]
async fn more_than_a_thousand_objects_is_malformed_xml() {
    let gw = gateway_with(&["k0", "k1000"]).await;
    let names: Vec<String> = (0..1001).map(|i| format!("k{i}")).collect();
    let keys: Vec<&str> = names.iter().map(String::as_str).collect();
    let resp = delete(&gw, SCOPED, SCOPED_SECRET, &objects(&keys)).await;
    assert_eq!(resp.status, 400, "{}", resp.body);
    assert_eq!(resp.code(), "MalformedXML");
    all_exist(&gw, &["k0", "k1000"]).await;
    // A thousand is S3's limit, and allowed.
    let resp = delete(&gw, SCOPED, SCOPED_SECRET, &objects(&keys[..1000])).await;
    assert_eq!(resp.status, 200, "{}", resp.body);
    assert!(!exists(&gw.upstream.direct_client(), "shared", "k0").await);
    all_exist(&gw, &["k1000"]).await;
}

#[tokio::test]
async fn bypassing_governance_retention_needs_its_own_permission_on_every_object() {
    let gw = gateway_with(&["a.txt"]).await;
    let body = objects(&["a.txt"]);
    let mut req = raw::request("POST", gw.addr(), "/shared?delete");
    let h = req.headers_mut();
    h.insert("content-length", header(&body.len().to_string()));
    h.insert("x-amz-checksum-crc32", header(&crc32_b64(body.as_bytes())));
    h.insert("x-amz-bypass-governance-retention", header("true"));
    raw::sign_as(&mut req, &sha256_hex(body.as_bytes()), SystemTime::now(), OBJECTS, OBJECTS_SECRET);
    let resp = raw::send(req, body.clone()).await;
    assert_eq!((resp.status.as_u16(), resp.code()), (403, "AccessDenied"), "{}", resp.body);
    all_exist(&gw, &["a.txt"]).await;
}
