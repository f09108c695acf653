//! The PROXY protocol header reader (`proxy_protocol::read_header`), v1 and v2, and the
//! `X-Forwarded-For` reader.
//!
//! Input: the first bytes a trusted load balancer sends on a connection.
//!
//! Checks: the reader never waits for more than it was given and never consumes a byte past the
//! header, so the request after it reaches TLS or hyper untouched; a v1 header is at most 107
//! bytes and ends in CRLF; a v2 header is its 16 fixed bytes plus the length they state, at most
//! 2048; a header with addresses has both; a VPC endpoint id is printable ASCII. An accepted
//! header re-encoded in the other version's wire format reads back the same.

use std::net::SocketAddr;

use http::{HeaderMap, HeaderValue};
use s3gate::fuzzing::proxy_protocol_header;
use s3gate::proxy_protocol::{forwarded_for, ProxyHeader, ProxyProtocolError};

const V2_SIGNATURE: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";

fn v1(header: &ProxyHeader) -> Vec<u8> {
    match (header.source, header.destination) {
        (Some(src), Some(dst)) => {
            let family = if src.is_ipv4() { "TCP4" } else { "TCP6" };
            format!("PROXY {family} {} {} {} {}\r\n", src.ip(), dst.ip(), src.port(), dst.port()).into_bytes()
        }
        _ => b"PROXY UNKNOWN\r\n".to_vec(),
    }
}

fn v2(header: &ProxyHeader) -> Vec<u8> {
    let mut payload = Vec::new();
    let (command, family) = match (header.source, header.destination) {
        (Some(SocketAddr::V4(src)), Some(SocketAddr::V4(dst))) => {
            payload.extend_from_slice(&src.ip().octets());
            payload.extend_from_slice(&dst.ip().octets());
            payload.extend_from_slice(&src.port().to_be_bytes());
            payload.extend_from_slice(&dst.port().to_be_bytes());
            (0x21, 0x11)
        }
        (Some(SocketAddr::V6(src)), Some(SocketAddr::V6(dst))) => {
            payload.extend_from_slice(&src.ip().octets());
            payload.extend_from_slice(&dst.ip().octets());
            payload.extend_from_slice(&src.port().to_be_bytes());
            payload.extend_from_slice(&dst.port().to_be_bytes());
            (0x21, 0x21)
        }
        _ => (0x21, 0x00),
    };
    if let Some(id) = &header.vpce_id {
        let value = [&[0x01][..], id.as_bytes()].concat();
        payload.push(0xEA);
        payload.extend_from_slice(&u16::try_from(value.len()).expect("a short id").to_be_bytes());
        payload.extend_from_slice(&value);
    }
    let len = u16::try_from(payload.len()).expect("a short header").to_be_bytes();
    [&V2_SIGNATURE[..], &[command, family], &len, &payload].concat()
}

fn read_back(bytes: &[u8]) -> ProxyHeader {
    let (result, consumed) = proxy_protocol_header(bytes);
    assert_eq!(consumed, bytes.len(), "re-encoded header not read to its end");
    match result {
        Ok(Some(header)) => header,
        other => panic!("re-encoded header {bytes:?} refused: {other:?}"),
    }
}

/// One input, checked as described above; panics on a failed check.
pub fn run(input: &[u8]) {
    let (result, consumed) = proxy_protocol_header(input);
    assert!(consumed <= input.len());
    let is_v2 = input.starts_with(&V2_SIGNATURE[..6]);
    if is_v2 {
        assert!(consumed <= 16 + 2048, "read {consumed} bytes of a v2 header");
    } else {
        assert!(consumed <= 107, "read {consumed} bytes of a v1 header");
    }
    match &result {
        Ok(None) => assert!(input.is_empty()),
        Ok(Some(header)) => {
            if is_v2 {
                let stated = usize::from(u16::from_be_bytes([input[14], input[15]]));
                assert_eq!(consumed, 16 + stated, "v2 header read past or short of its stated length");
            } else {
                assert!(input[..consumed].ends_with(b"\r\n"), "v1 header does not end at its CRLF");
                assert_eq!(input[..consumed].iter().filter(|&&b| b == b'\n').count(), 1);
            }
            assert_eq!(header.source.is_some(), header.destination.is_some());
            if let (Some(src), Some(dst)) = (header.source, header.destination) {
                assert_eq!(src.is_ipv4(), dst.is_ipv4(), "a header mixing address families");
            }
            if let Some(id) = &header.vpce_id {
                assert!(is_v2 && !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_graphic()));
            }
            let via_v1 = read_back(&v1(header));
            assert_eq!(via_v1, ProxyHeader { vpce_id: None, ..header.clone() });
            assert_eq!(&read_back(&v2(header)), header);
        }
        Err(ProxyProtocolError::Truncated) => assert_eq!(consumed, input.len(), "truncated before the input ended"),
        Err(_) => {}
    }

    // The same bytes as an X-Forwarded-For value: an answer is an address written in it.
    if let Ok(value) = HeaderValue::from_bytes(input) {
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", value);
        if let Some(ip) = forwarded_for(&headers) {
            let text = String::from_utf8_lossy(input);
            assert!(text.contains(&ip.to_string()) || ip.is_ipv6(), "{ip} is not in {text:?}");
        }
    }
}
