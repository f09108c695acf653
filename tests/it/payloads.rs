//! Every payload mode, sent by hand so the bytes on the wire are exactly the ones under test,
//! and the failures that must leave nothing stored upstream.

use std::time::SystemTime;

use bytes::Bytes;
use http::HeaderValue;

use crate::support::raw::{self, amz_date, crc32_b64, seed_signature, sha256_hex, signed_chunked_body};
use crate::support::{create_bucket, exists, get_bytes, pattern, Gateway, CLIENT_SECRET};

fn header(v: &str) -> HeaderValue {
    HeaderValue::from_str(v).expect("header value")
}

async fn bucket(gw: &Gateway, name: &str) {
    create_bucket(&gw.client(), name).await;
}

#[tokio::test]
async fn hex_sha256_body_is_forwarded_and_stored() {
    let gw = Gateway::start().await;
    bucket(&gw, "hex").await;
    let data = pattern(300_000, 1);
    let mut req = raw::request("PUT", gw.addr(), "/hex/obj");
    req.headers_mut().insert("content-length", header(&data.len().to_string()));
    req.headers_mut().insert("expect", header("100-continue"));
    raw::sign(&mut req, &sha256_hex(&data), SystemTime::now(), CLIENT_SECRET);
    let resp = raw::send(req, data.clone()).await;
    assert_eq!(resp.status, 200, "{}", resp.body);
    assert_eq!(get_bytes(&gw.upstream.direct_client(), "hex", "obj").await, data);
}

/// A PUT whose last byte differs from the body its signed hash covers.
fn tampered_put(gw: &Gateway, path: &str) -> (http::Request<()>, Vec<u8>) {
    let signed = pattern(200_000, 1);
    let mut sent = signed.clone();
    sent[199_999] ^= 0xff;
    let mut req = raw::request("PUT", gw.addr(), path);
    req.headers_mut().insert("content-length", header(&sent.len().to_string()));
    raw::sign(&mut req, &sha256_hex(&signed), SystemTime::now(), CLIENT_SECRET);
    (req, sent)
}

#[tokio::test]
async fn body_not_matching_the_signed_hash_stores_nothing() {
    // By default the hash goes upstream with the body, and the upstream refuses the mismatch.
    let gw = Gateway::start().await;
    bucket(&gw, "bound").await;
    let (req, sent) = tampered_put(&gw, "/bound/obj");
    let resp = raw::send(req, sent).await;
    assert!(resp.status.is_client_error() || resp.status.is_server_error(), "{}", resp.body);
    assert!(!exists(&gw.upstream.direct_client(), "bound", "obj").await);
    assert!(gw.upstream.stored_paths("bound/obj").is_empty());
}

#[tokio::test]
async fn with_verify_body_hash_s3gate_itself_refuses_a_mismatch_before_the_upstream_has_it_all() {
    // An upstream that checks nothing: only s3gate stands between the body and the store.
    let recorder = crate::support::recorder::Recorder::ok().await;
    let gw = Gateway::start_with(|a| {
        a.upstream = Some(recorder.url());
        a.verify_body_hash = Some(true);
    })
    .await;
    let (req, sent) = tampered_put(&gw, "/bound/obj");
    let resp = raw::send(req, sent).await;
    assert_eq!(resp.status, 400, "{}", resp.body);
    assert_eq!(resp.code(), "XAmzContentSHA256Mismatch");
    assert!(recorder.requests().is_empty(), "the upstream received a whole request: {:?}", recorder.requests());
    // An intact body passes.
    let data = pattern(1000, 2);
    let mut req = raw::request("PUT", gw.addr(), "/bound/ok");
    req.headers_mut().insert("content-length", header(&data.len().to_string()));
    raw::sign(&mut req, &sha256_hex(&data), SystemTime::now(), CLIENT_SECRET);
    assert_eq!(raw::send(req, data.clone()).await.status, 200);
    assert_eq!(recorder.requests().len(), 1);
    assert_eq!(recorder.requests()[0].body.as_ref(), data.as_slice());
}

#[tokio::test]
async fn unsigned_payload_is_forwarded() {
    let gw = Gateway::start().await;
    bucket(&gw, "unsigned").await;
    let data = pattern(70_000, 2);
    let mut req = raw::request("PUT", gw.addr(), "/unsigned/obj");
    req.headers_mut().insert("content-length", header(&data.len().to_string()));
    raw::sign(&mut req, "UNSIGNED-PAYLOAD", SystemTime::now(), CLIENT_SECRET);
    let resp = raw::send(req, data.clone()).await;
    assert_eq!(resp.status, 200, "{}", resp.body);
    assert_eq!(get_bytes(&gw.upstream.direct_client(), "unsigned", "obj").await, data);
}

/// A signed aws-chunked PUT; returns the request and the body to send.
fn signed_chunked(gw: &Gateway, path: &str, data: &[u8], chunk: usize, trailer: bool) -> (http::Request<()>, Vec<u8>) {
    signed_chunked_claiming(gw, path, data, chunk, trailer, data.len())
}

/// As [`signed_chunked`], but the signed `x-amz-decoded-content-length` says `claimed`.
fn signed_chunked_claiming(
    gw: &Gateway,
    path: &str,
    data: &[u8],
    chunk: usize,
    trailer: bool,
    claimed: usize,
) -> (http::Request<()>, Vec<u8>) {
    let now = SystemTime::now();
    let date_time = amz_date(now);
    let mut req = raw::request("PUT", gw.addr(), path);
    let h = req.headers_mut();
    h.insert("content-encoding", header("aws-chunked"));
    h.insert("x-amz-decoded-content-length", header(&claimed.to_string()));
    let mode = if trailer {
        h.insert("x-amz-trailer", header("x-amz-checksum-crc32"));
        "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER"
    } else {
        "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
    };
    // Content-Length of the framed body must be signed too; compute it with a dummy seed
    // (signatures have a fixed length).
    let crc = crc32_b64(data);
    let trailer_pair = trailer.then_some(("x-amz-checksum-crc32", crc.as_str()));
    let framed_len = signed_chunked_body(data, chunk, &"0".repeat(64), &date_time, CLIENT_SECRET, trailer_pair).len();
    req.headers_mut().insert("content-length", header(&framed_len.to_string()));
    raw::sign(&mut req, mode, now, CLIENT_SECRET);
    let seed = seed_signature(&req);
    let body = signed_chunked_body(data, chunk, &seed, &date_time, CLIENT_SECRET, trailer_pair);
    assert_eq!(body.len(), framed_len);
    (req, body)
}

#[tokio::test]
async fn signed_chunks_without_trailer_are_verified_and_unframed() {
    let gw = Gateway::start().await;
    bucket(&gw, "chunks").await;
    let data = pattern(200_000, 4);
    let (req, body) = signed_chunked(&gw, "/chunks/obj", &data, 65_536, false);
    let resp = raw::send(req, body).await;
    assert_eq!(resp.status, 200, "{}", resp.body);
    assert_eq!(get_bytes(&gw.upstream.direct_client(), "chunks", "obj").await, data);
}

#[tokio::test]
async fn signed_chunks_with_signed_trailer_carry_the_checksum_upstream() {
    let gw = Gateway::start().await;
    bucket(&gw, "trailer").await;
    let data = pattern(150_001, 6);
    let (req, body) = signed_chunked(&gw, "/trailer/obj", &data, 8192, true);
    let resp = raw::send(req, body).await;
    assert_eq!(resp.status, 200, "{}", resp.body);
    let direct = gw.upstream.direct_client();
    assert_eq!(get_bytes(&direct, "trailer", "obj").await, data);
    let head = direct
        .head_object()
        .bucket("trailer")
        .key("obj")
        .checksum_mode(aws_sdk_s3::types::ChecksumMode::Enabled)
        .send()
        .await
        .expect("head");
    assert_eq!(head.checksum_crc32(), Some(crc32_b64(&data).as_str()));
}

async fn tampered_upload_stores_nothing(trailer: bool, flip_at: impl Fn(usize) -> usize) {
    let gw = Gateway::start().await;
    bucket(&gw, "tamper").await;
    let data = pattern(100_000, 7);
    let (req, mut body) = signed_chunked(&gw, "/tamper/obj", &data, 16_384, trailer);
    // Flip a data byte (never framing): the first chunk header is 86 bytes long.
    let at = flip_at(body.len());
    body[at] ^= 0x01;
    let resp = raw::send(req, body).await;
    assert_eq!(resp.status, 403, "{}", resp.body);
    assert_eq!(resp.code(), "SignatureDoesNotMatch");
    assert!(!exists(&gw.upstream.direct_client(), "tamper", "obj").await);
    assert!(gw.upstream.stored_paths("tamper/obj").is_empty());
}

#[tokio::test]
async fn tampered_first_chunk_is_refused_and_nothing_stored() {
    tampered_upload_stores_nothing(false, |_| 100).await;
}

#[tokio::test]
async fn tampered_last_data_chunk_is_refused_and_nothing_stored() {
    // The last data chunk's final byte: the one whose release would complete the object.
    // Layout at the end: data, "\r\n", final "0;chunk-signature=<64>\r\n\r\n" (86 bytes + 2).
    tampered_upload_stores_nothing(false, |len| len - 86 - 2 - 2 - 1).await;
}

#[tokio::test]
async fn tampered_chunk_with_trailer_is_refused_and_nothing_stored() {
    tampered_upload_stores_nothing(true, |_| 5000).await;
}

#[tokio::test]
async fn tampered_trailer_is_refused_and_nothing_stored() {
    let gw = Gateway::start().await;
    bucket(&gw, "trailer-tamper").await;
    let data = pattern(20_000, 8);
    let (req, body) = signed_chunked(&gw, "/trailer-tamper/obj", &data, 8192, true);
    // Replace the checksum value in the trailer with another valid-looking one.
    let text = String::from_utf8_lossy(&body).into_owned();
    let crc = crc32_b64(&data);
    let forged = text.replace(&format!("x-amz-checksum-crc32:{crc}"), "x-amz-checksum-crc32:AAAAAA==");
    assert_ne!(forged, text);
    let resp = raw::send(req, forged.into_bytes()).await;
    assert_eq!(resp.status, 403, "{}", resp.body);
    assert_eq!(resp.code(), "SignatureDoesNotMatch");
    assert!(!exists(&gw.upstream.direct_client(), "trailer-tamper", "obj").await);
}

#[tokio::test]
async fn wrong_decoded_length_is_incomplete_body_and_nothing_stored() {
    let gw = Gateway::start().await;
    bucket(&gw, "length").await;
    let data = pattern(10_000, 9);
    // Validly signed, but claims one byte more than the chunks carry.
    let (req, body) = signed_chunked_claiming(&gw, "/length/obj", &data, 4096, false, 10_001);
    let resp = raw::send(req, body).await;
    assert_eq!(resp.status, 400, "{}", resp.body);
    assert_eq!(resp.code(), "IncompleteBody");
    assert!(!exists(&gw.upstream.direct_client(), "length", "obj").await);
}

/// What the newest boto3 sends over HTTPS: unsigned aws-chunked with a trailing checksum,
/// `Transfer-Encoding: chunked`, no Content-Length.
#[tokio::test]
async fn unsigned_trailer_with_transfer_encoding_chunked_and_no_content_length() {
    let gw = Gateway::start().await;
    bucket(&gw, "boto").await;
    let data = pattern(1_100_000, 10);
    let mut req = raw::request("PUT", gw.addr(), "/boto/obj");
    let h = req.headers_mut();
    h.insert("content-encoding", header("aws-chunked"));
    h.insert("x-amz-decoded-content-length", header(&data.len().to_string()));
    h.insert("x-amz-trailer", header("x-amz-checksum-crc32"));
    h.insert("x-amz-sdk-checksum-algorithm", header("CRC32"));
    raw::sign(&mut req, "STREAMING-UNSIGNED-PAYLOAD-TRAILER", SystemTime::now(), CLIENT_SECRET);
    let mut pieces = Vec::new();
    for chunk in data.chunks(65_536) {
        pieces.push(Bytes::from(format!("{:x}\r\n", chunk.len())));
        pieces.push(Bytes::copy_from_slice(chunk));
        pieces.push(Bytes::from_static(b"\r\n"));
    }
    pieces.push(Bytes::from(format!("0\r\nx-amz-checksum-crc32:{}\r\n\r\n", crc32_b64(&data))));
    let resp = raw::send_streamed(req, pieces).await;
    assert_eq!(resp.status, 200, "{}", resp.body);
    let direct = gw.upstream.direct_client();
    let stored = get_bytes(&direct, "boto", "obj").await;
    assert_eq!(stored.len(), data.len(), "no chunk framing stored");
    assert_eq!(stored, data);
    let head = gw.client().head_object().bucket("boto").key("obj").send().await.expect("head");
    assert_eq!(head.content_length(), Some(data.len() as i64));
    assert_eq!(head.content_encoding(), None, "aws-chunked is framing, not the object's encoding");
}

#[tokio::test]
async fn unsigned_trailer_with_a_wrong_checksum_is_bad_digest_and_stores_nothing() {
    let gw = Gateway::start().await;
    bucket(&gw, "badsum").await;
    let data = pattern(5000, 11);
    let mut req = raw::request("PUT", gw.addr(), "/badsum/obj");
    let h = req.headers_mut();
    h.insert("content-encoding", header("aws-chunked"));
    h.insert("x-amz-decoded-content-length", header(&data.len().to_string()));
    h.insert("x-amz-trailer", header("x-amz-checksum-crc32"));
    raw::sign(&mut req, "STREAMING-UNSIGNED-PAYLOAD-TRAILER", SystemTime::now(), CLIENT_SECRET);
    let body = [
        Bytes::from(format!("{:x}\r\n", data.len())),
        Bytes::from(data.clone()),
        Bytes::from_static(b"\r\n0\r\nx-amz-checksum-crc32:AAAAAA==\r\n\r\n"),
    ];
    let resp = raw::send_streamed(req, body.to_vec()).await;
    assert_eq!(resp.status, 400, "{}", resp.body);
    assert_eq!(resp.code(), "BadDigest");
    assert!(!exists(&gw.upstream.direct_client(), "badsum", "obj").await);
}
