//! Hand-built S3 requests, signed with the `aws-sigv4` crate (an implementation independent of
//! s3gate's verifier) and, for aws-chunked bodies, chunk signatures computed here from the
//! published algorithm. Used where an SDK will not send what a test needs: tampered chunks,
//! a body that does not match its signed hash, a skewed date.

use std::time::SystemTime;

use bytes::Bytes;
use hmac::{Hmac, Mac};
use http::{HeaderMap, HeaderValue, Request, StatusCode};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use sha2::{Digest, Sha256};

use super::CLIENT_AKID;

pub struct RawResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl RawResponse {
    /// The `<Code>` of an S3 XML error body.
    pub fn code(&self) -> &str {
        let start = self.body.find("<Code>").map(|i| i + 6).unwrap_or(0);
        let end = self.body[start..].find("</Code>").map(|i| i + start).unwrap_or(start);
        &self.body[start..end]
    }
}

pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

fn hmac(key: &[u8], msg: &[u8]) -> Vec<u8> {
    let mut m = Hmac::<Sha256>::new_from_slice(key).expect("hmac key");
    m.update(msg);
    m.finalize().into_bytes().to_vec()
}

pub fn amz_date(t: SystemTime) -> String {
    let t = time::OffsetDateTime::from(t);
    format!("{:04}{:02}{:02}T{:02}{:02}{:02}Z", t.year(), t.month() as u8, t.day(), t.hour(), t.minute(), t.second())
}

pub fn signing_key(secret: &str, date: &str) -> Vec<u8> {
    let k = hmac(format!("AWS4{secret}").as_bytes(), date.as_bytes());
    let k = hmac(&k, b"us-east-1");
    let k = hmac(&k, b"s3");
    hmac(&k, b"aws4_request")
}

/// Signs `req` in place with aws-sigv4 for the gateway's client credential.
pub fn sign(req: &mut Request<()>, payload_hash: &str, time: SystemTime, secret: &str) {
    sign_as(req, payload_hash, time, CLIENT_AKID, secret);
}

/// Signs `req` in place with aws-sigv4 for another credential.
pub fn sign_as(req: &mut Request<()>, payload_hash: &str, time: SystemTime, akid: &str, secret: &str) {
    sign_for("s3", req, payload_hash, time, akid, secret);
}

/// Signs `req` in place with aws-sigv4 for `service` (`s3`, `sts`) in us-east-1.
pub fn sign_for(service: &str, req: &mut Request<()>, payload_hash: &str, time: SystemTime, akid: &str, secret: &str) {
    use aws_sigv4::http_request::{sign, PayloadChecksumKind, SignableBody, SignableRequest, SigningSettings};
    use aws_sigv4::sign::v4;
    let identity = aws_credential_types::Credentials::new(akid, secret, None, None, "raw").into();
    let mut settings = SigningSettings::default();
    settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
    settings.percent_encoding_mode = aws_sigv4::http_request::PercentEncodingMode::Single;
    settings.uri_path_normalization_mode = aws_sigv4::http_request::UriPathNormalizationMode::Disabled;
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region("us-east-1")
        .name(service)
        .time(time)
        .settings(settings)
        .build()
        .expect("params")
        .into();
    let headers: Vec<(&str, &str)> =
        req.headers().iter().map(|(k, v)| (k.as_str(), v.to_str().expect("ascii header"))).collect();
    let uri = req.uri().to_string();
    let signable = SignableRequest::new(
        req.method().as_str(),
        &uri,
        headers.into_iter(),
        SignableBody::Precomputed(payload_hash.to_owned()),
    )
    .expect("signable");
    let (instructions, _) = sign(signable, &params).expect("sign").into_parts();
    instructions.apply_to_request_http1x(req);
}

/// A request for `path` on the gateway at `addr`, with Host set as a client would.
pub fn request(method: &str, addr: std::net::SocketAddr, path_and_query: &str) -> Request<()> {
    let mut req =
        Request::builder().method(method).uri(format!("http://{addr}{path_and_query}")).body(()).expect("request");
    req.headers_mut().insert("host", HeaderValue::from_str(&addr.to_string()).expect("host"));
    req
}

/// Sends with a fixed body.
pub async fn send(req: Request<()>, body: impl Into<Bytes>) -> RawResponse {
    let (parts, ()) = req.into_parts();
    let req = Request::from_parts(parts, Full::new(body.into()));
    let client = Client::builder(TokioExecutor::new()).build_http();
    let resp = client.request(req).await.expect("gateway answers");
    collect(resp).await
}

/// Sends a body in pieces, with chunked transfer encoding (no Content-Length), as boto3 does
/// over HTTPS.
pub async fn send_streamed(req: Request<()>, pieces: Vec<Bytes>) -> RawResponse {
    let (parts, ()) = req.into_parts();
    let stream = futures_util::stream::iter(
        pieces.into_iter().map(|b| Ok::<_, std::convert::Infallible>(http_body::Frame::data(b))),
    );
    let req = Request::from_parts(parts, StreamBody::new(stream));
    let client = Client::builder(TokioExecutor::new()).build_http();
    let resp = client.request(req).await.expect("gateway answers");
    collect(resp).await
}

async fn collect(resp: http::Response<hyper::body::Incoming>) -> RawResponse {
    let (parts, body) = resp.into_parts();
    let bytes = body.collect().await.map(|c| c.to_bytes()).unwrap_or_default();
    RawResponse { status: parts.status, headers: parts.headers, body: String::from_utf8_lossy(&bytes).into_owned() }
}

/// An aws-chunked body with chunk signatures (STREAMING-AWS4-HMAC-SHA256-PAYLOAD[-TRAILER]),
/// chained from `seed`, split into chunks of `chunk` bytes. `trailer` is `(name, value)`.
pub fn signed_chunked_body(
    data: &[u8],
    chunk: usize,
    seed: &str,
    date_time: &str,
    secret: &str,
    trailer: Option<(&str, &str)>,
) -> Vec<u8> {
    let date = &date_time[..8];
    let key = signing_key(secret, date);
    let scope = format!("{date}/us-east-1/s3/aws4_request");
    let empty = sha256_hex(b"");
    let mut prev = seed.to_owned();
    let mut out = Vec::new();
    let mut pieces: Vec<&[u8]> = data.chunks(chunk).collect();
    pieces.push(&[]);
    for piece in pieces {
        let sts = format!("AWS4-HMAC-SHA256-PAYLOAD\n{date_time}\n{scope}\n{prev}\n{empty}\n{}", sha256_hex(piece));
        let sig = hex::encode(hmac(&key, sts.as_bytes()));
        out.extend_from_slice(format!("{:x};chunk-signature={sig}\r\n", piece.len()).as_bytes());
        out.extend_from_slice(piece);
        if !piece.is_empty() || trailer.is_none() {
            out.extend_from_slice(b"\r\n");
        }
        prev = sig;
    }
    if let Some((name, value)) = trailer {
        let canonical = format!("{name}:{value}\n");
        let sts =
            format!("AWS4-HMAC-SHA256-TRAILER\n{date_time}\n{scope}\n{prev}\n{}", sha256_hex(canonical.as_bytes()));
        let sig = hex::encode(hmac(&key, sts.as_bytes()));
        out.extend_from_slice(format!("{name}:{value}\r\nx-amz-trailer-signature:{sig}\r\n\r\n").as_bytes());
    }
    out
}

/// The seed signature the gateway will compute for `req` (the Authorization header's).
pub fn seed_signature(req: &Request<()>) -> String {
    let auth = req.headers()["authorization"].to_str().expect("auth");
    auth.rsplit("Signature=").next().expect("signature").to_owned()
}

/// CRC32 (IEEE) of `data`, base64, as `x-amz-checksum-crc32` carries it.
pub fn crc32_b64(data: &[u8]) -> String {
    let mut crc: u32 = 0xFFFF_FFFF;
    for &b in data {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
        }
    }
    let bytes = (!crc).to_be_bytes();
    b64(&bytes)
}

fn b64(input: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in input.chunks(3) {
        let n = (c[0] as u32) << 16 | (*c.get(1).unwrap_or(&0) as u32) << 8 | *c.get(2).unwrap_or(&0) as u32;
        out.push(T[(n >> 18) as usize & 63] as char);
        out.push(T[(n >> 12) as usize & 63] as char);
        out.push(if c.len() > 1 { T[(n >> 6) as usize & 63] as char } else { '=' });
        out.push(if c.len() > 2 { T[n as usize & 63] as char } else { '=' });
    }
    out
}
