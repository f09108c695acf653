//! The worked examples of the Amazon S3 API Reference (`aws-s3-docs-examples.json`): header
//! auth, a presigned URL, and aws-chunked uploads with and without a signed trailer. Every
//! canonical request, string to sign and signature must come out exactly as published, the
//! verifiers must accept them, and `sign_upstream` must produce the published headers.

use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use bytes::Bytes;
use serde_json::Value;

use super::{at, keys, read, DOCS_AKID, DOCS_SECRET, SKEW, WEEK};
use crate::sigv4::chunked::streaming_string_to_sign;
use crate::sigv4::*;

const HEADER_CASES: [&str; 6] = [
    "get_object",
    "put_object",
    "get_bucket_lifecycle",
    "list_objects",
    "chunked_put_object",
    "chunked_put_object_trailer",
];
const NOW: &str = "20130524T000000Z";

fn case(name: &str) -> Value {
    let doc: Value = serde_json::from_str(&read("aws-s3-docs-examples.json")).unwrap();
    assert_eq!(doc["timestamp"], NOW);
    assert_eq!(doc["credentials"]["secret_access_key"], DOCS_SECRET);
    let cases = doc["cases"].as_array().unwrap();
    cases.iter().find(|c| c["name"] == name).unwrap_or_else(|| panic!("no case {name}")).clone()
}

fn s(value: &Value) -> &str {
    value.as_str().unwrap()
}

/// (method, path, query) from `GET /?max-keys=2&prefix=J HTTP/1.1`.
fn request_line(case: &Value) -> (http::Method, String, Option<String>) {
    let mut parts = s(&case["request_line"]).split(' ');
    let method = parts.next().unwrap().parse().unwrap();
    let target = parts.next().unwrap();
    match target.split_once('?') {
        Some((path, query)) => (method, path.to_owned(), Some(query.to_owned())),
        None => (method, target.to_owned(), None),
    }
}

fn case_headers(case: &Value, skip: &[&str]) -> http::HeaderMap {
    let mut map = http::HeaderMap::new();
    for (name, value) in case["headers"].as_object().unwrap() {
        if !skip.iter().any(|s| s.eq_ignore_ascii_case(name)) {
            map.insert(http::HeaderName::from_bytes(name.as_bytes()).unwrap(), s(value).parse().unwrap());
        }
    }
    map
}

fn lookup() -> impl Fn(&str) -> Option<crate::credentials::SecretKey> {
    keys(&[(DOCS_AKID, DOCS_SECRET)])
}

fn verify_case(name: &str) -> Verified {
    let c = case(name);
    let (method, path, query) = request_line(&c);
    let mut headers = case_headers(&c, &[]);
    headers.insert("authorization", s(&c["expected_authorization"]).parse().unwrap());
    verify_header_auth(&method, &path, query.as_deref(), &headers, &lookup(), at(NOW), SKEW)
        .unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[test]
fn header_examples_reproduce_exactly_and_verify() {
    for name in HEADER_CASES {
        let c = case(name);
        let (method, path, query) = request_line(&c);
        let headers = case_headers(&c, &[]);
        let signed = crate::sigv4::SignedHeaders::parse(s(&c["signed_headers"])).unwrap();
        let creq = canonical_request(
            method.as_str(),
            &path,
            query.as_deref(),
            &headers,
            &signed,
            s(&c["payload_hash"]),
            false,
        )
        .unwrap();
        assert_eq!(creq, s(&c["expected_canonical_request"]), "{name}");
        let scope = Scope::s3(at(NOW), "us-east-1");
        let sts = string_to_sign(NOW, &scope, &creq);
        assert_eq!(sts, s(&c["expected_string_to_sign"]), "{name}");
        let signature = SigningKey::derive(DOCS_SECRET, &scope).sign(&sts);
        assert_eq!(hex::encode(signature), s(&c["expected_signature"]), "{name}");

        let verified = verify_case(name);
        assert_eq!(verified.access_key_id, DOCS_AKID);
        assert_eq!(verified.seed_signature, signature);
        assert_eq!(verified.payload, PayloadMode::parse(s(&c["payload_hash"])).unwrap());
        assert!(!verified.presigned);
    }
}

#[test]
fn sign_upstream_reproduces_the_published_authorization() {
    let creds = Credentials::new(DOCS_AKID, DOCS_SECRET, None, None, "docs");
    let time = SystemTime::UNIX_EPOCH + Duration::from_secs(1_369_353_600);
    for name in HEADER_CASES {
        let c = case(name);
        let target = s(&c["request_line"]).split(' ').nth(1).unwrap();
        let method = s(&c["request_line"]).split(' ').next().unwrap();
        let (mut parts, ()) = http::Request::builder().method(method).uri(target).body(()).unwrap().into_parts();
        // sign_upstream sets these two itself.
        parts.headers = case_headers(&c, &["x-amz-date", "x-amz-content-sha256"]);
        sign_upstream(&mut parts, &creds, "us-east-1", s(&c["payload_hash"]), time).unwrap();
        // aws-sigv4 writes `, ` between the fields, the documentation `,`.
        let authorization = parts.headers["authorization"].to_str().unwrap().replace(", ", ",");
        assert_eq!(authorization, s(&c["expected_authorization"]), "{name}");
        assert_eq!(parts.headers["x-amz-date"], NOW);
        assert_eq!(parts.headers["x-amz-content-sha256"], s(&c["payload_hash"]));
    }
}

#[test]
fn presigned_example_reproduces_verifies_and_is_minted_identically() {
    let c = case("presigned_get_object");
    let url = s(&c["url"]);
    let (path, query) = url.strip_prefix("https://examplebucket.s3.amazonaws.com").unwrap().split_once('?').unwrap();
    let headers = case_headers(&c, &[]);
    let creq = canonical_request(
        "GET",
        path,
        Some(query),
        &headers,
        &crate::sigv4::SignedHeaders::of(&["host"]),
        UNSIGNED_PAYLOAD,
        true,
    )
    .unwrap();
    assert_eq!(creq, s(&c["expected_canonical_request"]));
    let scope = Scope::s3(at(NOW), "us-east-1");
    let sts = string_to_sign(NOW, &scope, &creq);
    assert_eq!(sts, s(&c["expected_string_to_sign"]));
    assert_eq!(hex::encode(SigningKey::derive(DOCS_SECRET, &scope).sign(&sts)), s(&c["expected_signature"]));

    let verify = |now| verify_presigned(&http::Method::GET, path, query, &headers, &lookup(), now, SKEW, WEEK);
    let verified = verify(at(NOW) + Duration::from_secs(3600)).unwrap();
    assert!(verified.presigned);
    assert_eq!(verified.payload, PayloadMode::Unsigned);
    assert_eq!(hex::encode(verified.seed_signature), s(&c["expected_signature"]));
    assert!(verify(at(NOW) + Duration::from_secs(86_400)).is_ok());
    assert_eq!(verify(at(NOW) + Duration::from_secs(86_401)).unwrap_err(), SigV4Error::RequestExpired);

    let minted = presign_query(
        "GET",
        "examplebucket.s3.amazonaws.com",
        "/test.txt",
        &[],
        DOCS_AKID,
        DOCS_SECRET,
        "us-east-1",
        at(NOW),
        Duration::from_secs(86_400),
        &[],
    );
    assert_eq!(minted, query);
}

/// The wire body of a chunked example: 65536 + 1024 bytes of `a`, then the final chunk and,
/// for the trailer example, `x-amz-checksum-crc32c` and the trailer signature.
fn chunked_body(c: &Value) -> Vec<u8> {
    let mut body = Vec::new();
    for chunk in c["expected_chunks"].as_array().unwrap() {
        let size = chunk["size"].as_u64().unwrap() as usize;
        body.extend_from_slice(format!("{size:x};chunk-signature={}\r\n", s(&chunk["expected_signature"])).as_bytes());
        if size > 0 {
            body.extend(std::iter::repeat_n(b'a', size));
            body.extend_from_slice(b"\r\n");
        }
    }
    if let Some(trailer) = c["trailer"].as_str() {
        body.extend_from_slice(trailer.replace('\n', "\r\n").as_bytes());
        body.extend_from_slice(
            format!("x-amz-trailer-signature:{}\r\n", s(&c["expected_trailer_signature"])).as_bytes(),
        );
    }
    body.extend_from_slice(b"\r\n");
    body
}

type Body = (Vec<u8>, Vec<(String, String)>);

fn decode(verified: &Verified, body: &[u8], piece: usize) -> Result<Body, SigV4Error> {
    let mut decoder = ChunkedDecoder::for_request(verified).unwrap().with_decoded_length(66_560);
    let (mut data, mut trailers, mut ended) = (Vec::new(), Vec::new(), false);
    for input in body.chunks(piece) {
        decoder.feed(Bytes::copy_from_slice(input));
        while let Some(decoded) = decoder.next()? {
            match decoded {
                Decoded::Data(bytes) => data.extend_from_slice(&bytes),
                Decoded::Trailers(t) => trailers = t,
                Decoded::End => ended = true,
            }
        }
    }
    decoder.finish()?;
    assert!(ended);
    assert_eq!(decoder.decoded_len(), data.len() as u64);
    Ok((data, trailers))
}

#[test]
fn chunk_and_trailer_strings_to_sign_reproduce_exactly() {
    for name in ["chunked_put_object", "chunked_put_object_trailer"] {
        let c = case(name);
        let key = SigningKey::derive(DOCS_SECRET, &Scope::s3(at(NOW), "us-east-1"));
        let scope = Scope::s3(at(NOW), "us-east-1").to_string_scope();
        let mut previous = parse_hex32(s(&c["expected_signature"])).unwrap();
        for chunk in c["expected_chunks"].as_array().unwrap() {
            let data = vec![b'a'; chunk["size"].as_u64().unwrap() as usize];
            let hashes = format!("{EMPTY_SHA256}\n{}", sha256_hex(&data));
            let sts = streaming_string_to_sign("AWS4-HMAC-SHA256-PAYLOAD", NOW, &scope, &previous, &hashes);
            assert_eq!(sts, s(&chunk["expected_string_to_sign"]), "{name}");
            previous = key.sign(&sts);
            assert_eq!(hex::encode(previous), s(&chunk["expected_signature"]), "{name}");
        }
        if let Some(trailer) = c["trailer"].as_str() {
            let sts = streaming_string_to_sign(
                "AWS4-HMAC-SHA256-TRAILER",
                NOW,
                &scope,
                &previous,
                &sha256_hex(trailer.as_bytes()),
            );
            assert_eq!(sts, s(&c["expected_trailer_string_to_sign"]));
            assert_eq!(hex::encode(key.sign(&sts)), s(&c["expected_trailer_signature"]));
        }
    }
}

#[test]
fn chunked_examples_decode_in_any_piece_size() {
    for (name, wire_len) in [("chunked_put_object", 66_824), ("chunked_put_object_trailer", 66_946)] {
        let c = case(name);
        let verified = verify_case(name);
        let body = chunked_body(&c);
        assert_eq!(body.len(), wire_len, "{name}: the framing adds up to the published length");
        for piece in [1, 7, body.len()] {
            let (data, trailers) = decode(&verified, &body, piece).unwrap_or_else(|e| panic!("{name}/{piece}: {e}"));
            assert_eq!(data.len(), 66_560);
            assert!(data.iter().all(|&b| b == b'a'));
            if name.ends_with("trailer") {
                assert_eq!(trailers, [("x-amz-checksum-crc32c".to_owned(), "sOO8/Q==".to_owned())]);
            } else {
                assert!(trailers.is_empty());
            }
        }
    }
}

#[test]
fn tampered_chunked_bodies_are_refused() {
    for name in ["chunked_put_object", "chunked_put_object_trailer"] {
        let c = case(name);
        let verified = verify_case(name);
        let body = chunked_body(&c);
        let second_chunk_data = body.len() - 1100; // inside the 1024-byte chunk
        let first_signature = body.iter().position(|&b| b == b'=').unwrap() + 1;
        let text = String::from_utf8_lossy(&body);
        let final_signature = text.rfind("0;chunk-signature=").unwrap() + 18;
        let mut flips = vec![10_000, second_chunk_data, first_signature, final_signature];
        if name.ends_with("trailer") {
            flips.push(body.len() - 100); // inside the checksum value sOO8/Q==
        }
        for at_byte in flips {
            let mut tampered = body.clone();
            tampered[at_byte] = if tampered[at_byte] == b'b' { b'c' } else { b'b' };
            let result = decode(&verified, &tampered, 7);
            assert_eq!(result.unwrap_err(), SigV4Error::SignatureDoesNotMatch, "{name} byte {at_byte}");
        }
        let truncated = decode(&verified, &body[..body.len() - 2], 7);
        assert!(matches!(truncated, Err(SigV4Error::IncompleteBody(_))), "{name}");
    }
}
