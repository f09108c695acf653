use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use http::{HeaderMap, HeaderValue};
use tokio::io::AsyncWriteExt;

use super::{forwarded_for, read_header, ProxyHeader, ProxyProtocolError};

const TIMEOUT: Duration = Duration::from_secs(5);
const V2_SIG: &[u8] = b"\r\n\r\n\0\r\nQUIT\n";
/// What a client sends after the header; it must still be there for hyper or TLS.
const REQUEST: &[u8] = b"GET /bucket/key HTTP/1.1\r\nHost: s3\r\n\r\n";

/// Reads a header from `bytes` followed by `REQUEST`; returns the result and what was left.
async fn read(bytes: &[u8]) -> (Result<Option<ProxyHeader>, ProxyProtocolError>, Vec<u8>) {
    let input = [bytes, REQUEST].concat();
    let mut rest = input.as_slice();
    let result = read_header(&mut rest, TIMEOUT).await;
    (result, rest.to_vec())
}

/// A header that must parse, leaving the request untouched.
async fn header(bytes: &[u8]) -> ProxyHeader {
    let (result, rest) = read(bytes).await;
    let header = result.unwrap().expect("no header");
    assert_eq!(rest, REQUEST, "bytes after the header were consumed");
    header
}

async fn error(bytes: &[u8]) -> ProxyProtocolError {
    let mut rest = bytes;
    match read_header(&mut rest, TIMEOUT).await {
        Ok(header) => panic!("expected an error, got {header:?}"),
        Err(e) => e,
    }
}

fn addr(text: &str) -> Option<SocketAddr> {
    Some(text.parse().unwrap_or_else(|e| panic!("{text}: {e}")))
}

fn v2(ver_cmd: u8, family: u8, payload: &[u8]) -> Vec<u8> {
    let len = u16::try_from(payload.len()).unwrap();
    [V2_SIG, &[ver_cmd, family], &len.to_be_bytes(), payload].concat()
}

fn v2_inet(tlvs: &[u8]) -> Vec<u8> {
    let addrs = [[10, 0, 0, 5], [10, 0, 1, 10]].concat();
    let ports = [51234u16.to_be_bytes(), 443u16.to_be_bytes()].concat();
    v2(0x21, 0x11, &[&addrs, &ports, tlvs].concat())
}

fn tlv(kind: u8, value: &[u8]) -> Vec<u8> {
    let len = u16::try_from(value.len()).unwrap();
    [&[kind][..], &len.to_be_bytes(), value].concat()
}

#[tokio::test]
async fn v1_tcp4() {
    let h = header(b"PROXY TCP4 192.0.2.10 198.51.100.1 56324 443\r\n").await;
    assert_eq!(
        h,
        ProxyHeader { source: addr("192.0.2.10:56324"), destination: addr("198.51.100.1:443"), vpce_id: None }
    );
}

#[tokio::test]
async fn v1_tcp6() {
    let h = header(b"PROXY TCP6 2001:db8::10 2001:db8::1 65535 8099\r\n").await;
    assert_eq!(h.source, addr("[2001:db8::10]:65535"));
    assert_eq!(h.destination, addr("[2001:db8::1]:8099"));
}

#[tokio::test]
async fn v1_longest_line() {
    let line =
        b"PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n";
    assert_eq!(line.len(), 104);
    assert_eq!(header(line).await.source, addr("[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535"));
}

#[tokio::test]
async fn v1_unknown_has_no_source() {
    assert_eq!(header(b"PROXY UNKNOWN\r\n").await, ProxyHeader::default());
    let h = header(b"PROXY UNKNOWN ffff:f::1 ffff:f::2 1 2\r\n").await;
    assert_eq!(h.source, None);
}

#[tokio::test]
async fn v1_malformed() {
    for line in [
        &b"PROXY TCP5 192.0.2.10 198.51.100.1 1 2\r\n"[..],
        b"PROXY TCP4 2001:db8::1 198.51.100.1 1 2\r\n",
        b"PROXY TCP6 192.0.2.10 2001:db8::1 1 2\r\n",
        b"PROXY TCP4 192.0.2.10 198.51.100.1 65536 2\r\n",
        b"PROXY TCP4 192.0.2.10 198.51.100.1 +1 2\r\n",
        b"PROXY TCP4 192.0.2.10 198.51.100.1 1\r\n",
        b"PROXY TCP4 192.0.2.10 198.51.100.1 1 2 3\r\n",
        b"PROXY TCP4  192.0.2.10 198.51.100.1 1 2\r\n",
        b"PROXY TCP4 192.0.2.10 198.51.100.1 1 2\n",
        b"PROXY UNKNOWN\n\r\nmore bytes",
        b"PROXY TCP4 192.0.2.\xff 198.51.100.1 1 2\r\n",
    ] {
        let e = error(line).await;
        assert!(matches!(e, ProxyProtocolError::Malformed(_)), "{:?}: {e}", String::from_utf8_lossy(line));
    }
}

#[tokio::test]
async fn v1_too_long_reads_no_more_than_107_bytes() {
    let input = [&b"PROXY TCP4 "[..], &[b'1'; 300]].concat();
    let mut rest = input.as_slice();
    let e = read_header(&mut rest, TIMEOUT).await.err();
    assert!(matches!(e, Some(ProxyProtocolError::V1TooLong)), "{e:?}");
    assert_eq!(rest.len(), input.len() - 107);
}

#[tokio::test]
async fn v2_proxy_ipv4() {
    let h = header(&v2_inet(&[])).await;
    assert_eq!(h, ProxyHeader { source: addr("10.0.0.5:51234"), destination: addr("10.0.1.10:443"), vpce_id: None });
}

#[tokio::test]
async fn v2_proxy_ipv6() {
    let src: std::net::Ipv6Addr = "2001:db8::5".parse().unwrap();
    let dst: std::net::Ipv6Addr = "2001:db8::1".parse().unwrap();
    let payload = [&src.octets()[..], &dst.octets(), &40000u16.to_be_bytes(), &443u16.to_be_bytes()].concat();
    let h = header(&v2(0x21, 0x21, &payload)).await;
    assert_eq!(h.source, addr("[2001:db8::5]:40000"));
    assert_eq!(h.destination, addr("[2001:db8::1]:443"));
}

#[tokio::test]
async fn v2_local_has_no_source() {
    // An NLB health check: LOCAL, UNSPEC, no payload.
    assert_eq!(header(&v2(0x20, 0x00, &[])).await, ProxyHeader::default());
    // LOCAL with addresses: they are to be ignored.
    let mut local = v2_inet(&[]);
    local[12] = 0x20;
    assert_eq!(header(&local).await, ProxyHeader::default());
}

#[tokio::test]
async fn v2_unspec_and_unix_have_no_source() {
    assert_eq!(header(&v2(0x21, 0x00, &[])).await.source, None);
    assert_eq!(header(&v2(0x21, 0x31, &[0u8; 216])).await.source, None);
}

#[tokio::test]
async fn v2_aws_vpce_tlv() {
    let vpce = tlv(0xEA, &[&[0x01][..], b"vpce-08d2bf15fac5001c9"].concat());
    let noop = tlv(0x04, &[0; 3]);
    let h = header(&v2_inet(&[noop, vpce].concat())).await;
    assert_eq!(h.source, addr("10.0.0.5:51234"));
    assert_eq!(h.vpce_id.as_deref(), Some("vpce-08d2bf15fac5001c9"));
    // Another AWS subtype is not a VPC endpoint id.
    assert_eq!(header(&v2_inet(&tlv(0xEA, &[0x02, b'x']))).await.vpce_id, None);
}

#[tokio::test]
async fn v2_malformed() {
    let vpce_with_newline = tlv(0xEA, b"\x01vpce-1\nfake");
    let cases: Vec<Vec<u8>> = vec![
        v2(0x11, 0x11, &[0; 12]),           // version 1
        v2(0x22, 0x11, &[0; 12]),           // command 2
        v2(0x21, 0x12, &[0; 12]),           // DGRAM
        v2(0x21, 0x41, &[0; 12]),           // family 4
        v2(0x21, 0x11, &[0; 11]),           // too short for INET
        v2(0x21, 0x21, &[0; 12]),           // too short for INET6
        v2_inet(&[0x04, 0x00]),             // TLV header cut short
        v2_inet(&[0x04, 0x00, 0x05, 1, 2]), // TLV runs past the end
        v2_inet(&vpce_with_newline),        // not printable
        v2_inet(&tlv(0xEA, &[0x01])),       // empty id
    ];
    for case in cases {
        let e = error(&case).await;
        assert!(matches!(e, ProxyProtocolError::Malformed(_)), "{case:x?}: {e}");
    }
}

#[tokio::test]
async fn v2_too_long() {
    let mut fixed = v2(0x21, 0x11, &[]);
    fixed[14..16].copy_from_slice(&u16::MAX.to_be_bytes());
    let e = error(&[fixed, vec![0; 100]].concat()).await;
    assert!(matches!(e, ProxyProtocolError::V2TooLong(65551)), "{e}");
}

#[tokio::test]
async fn truncated() {
    for input in [
        &b"PROXY TCP4 192.0.2.10"[..],
        b"PROX",
        b"\r\n\r\n\0\r\nQU",
        &v2_inet(&[])[..20],
        &v2(0x21, 0x11, &[0; 12])[..16],
    ] {
        let e = error(input).await;
        assert!(matches!(e, ProxyProtocolError::Truncated), "{input:x?}: {e}");
    }
}

#[tokio::test]
async fn not_proxy_protocol() {
    for input in [
        &b"GET / HTTP/1.1\r\nHost: s3\r\n\r\n"[..],
        b"PUT /b/k HTTP/1.1\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", // a TLS ClientHello
        b"\r\n\r\n\0\r\nQUIX\n\x21\x11\x00\x00",         // v2 signature wrong after 6 bytes
        b"proxy TCP4 192.0.2.10 198.51.100.1 1 2\r\n",
    ] {
        let e = error(input).await;
        assert!(matches!(e, ProxyProtocolError::NotProxyProtocol), "{input:x?}: {e}");
    }
}

#[tokio::test]
async fn closed_before_any_byte_is_none() {
    let mut empty: &[u8] = &[];
    assert!(matches!(read_header(&mut empty, TIMEOUT).await, Ok(None)));
}

/// A reader that asked for one byte too many would wait for the client's request here, which
/// (an HTTP client waiting for the connection) never comes.
#[tokio::test]
async fn returns_without_reading_past_the_header() {
    for header_bytes in
        [b"PROXY TCP4 192.0.2.10 198.51.100.1 1 2\r\n".to_vec(), b"PROXY UNKNOWN\r\n".to_vec(), v2_inet(&[])]
    {
        let (mut client, mut server) = tokio::io::duplex(1024);
        client.write_all(&header_bytes).await.unwrap();
        let h = read_header(&mut server, Duration::from_secs(2)).await;
        assert!(matches!(h, Ok(Some(_))), "{h:?}");
        client.write_all(REQUEST).await.unwrap();
        drop(client);
        let mut rest = Vec::new();
        tokio::io::AsyncReadExt::read_to_end(&mut server, &mut rest).await.unwrap();
        assert_eq!(rest, REQUEST);
    }
}

#[tokio::test]
async fn header_in_small_pieces() {
    let (mut client, mut server) = tokio::io::duplex(1024);
    let bytes = [v2_inet(&tlv(0xEA, b"\x01vpce-0a1b2c")), REQUEST.to_vec()].concat();
    let writer = tokio::spawn(async move {
        for byte in bytes {
            client.write_all(&[byte]).await.unwrap();
            tokio::task::yield_now().await;
        }
    });
    let h = read_header(&mut server, TIMEOUT).await.unwrap();
    assert_eq!(h.and_then(|h| h.vpce_id).as_deref(), Some("vpce-0a1b2c"));
    writer.await.unwrap();
    let mut rest = Vec::new();
    tokio::io::AsyncReadExt::read_to_end(&mut server, &mut rest).await.unwrap();
    assert_eq!(rest, REQUEST);
}

#[tokio::test]
async fn silent_connection_times_out() {
    let (_client, mut server) = tokio::io::duplex(64);
    let e = read_header(&mut server, Duration::from_millis(50)).await;
    assert!(matches!(e, Err(ProxyProtocolError::Timeout(_))), "{e:?}");
    // A proxy that stops inside the header times out too.
    let (mut client, mut server) = tokio::io::duplex(64);
    client.write_all(b"PROXY TCP4 1.2.3.4").await.unwrap();
    let e = read_header(&mut server, Duration::from_millis(50)).await;
    assert!(matches!(e, Err(ProxyProtocolError::Timeout(_))), "{e:?}");
}

fn xff(values: &[&str]) -> Option<IpAddr> {
    let mut headers = HeaderMap::new();
    for v in values {
        headers.append("x-forwarded-for", HeaderValue::from_str(v).unwrap());
    }
    forwarded_for(&headers)
}

fn ip(text: &str) -> Option<IpAddr> {
    Some(text.parse().unwrap())
}

#[test]
fn forwarded_for_takes_the_right_most_entry() {
    assert_eq!(xff(&["203.0.113.7"]), ip("203.0.113.7"));
    assert_eq!(xff(&["10.0.0.1, 203.0.113.7"]), ip("203.0.113.7"), "the left entry is the client's claim");
    assert_eq!(xff(&["10.0.0.1", "198.51.100.2, 203.0.113.7"]), ip("203.0.113.7"));
    assert_eq!(xff(&["10.0.0.1, 203.0.113.7", "198.51.100.2"]), ip("198.51.100.2"), "later header lines come after");
    assert_eq!(xff(&["2001:db8::7"]), ip("2001:db8::7"));
}

#[test]
fn forwarded_for_ignores_spacing_empty_entries_and_ports() {
    assert_eq!(xff(&["  10.0.0.1 ,203.0.113.7  "]), ip("203.0.113.7"));
    assert_eq!(xff(&["10.0.0.1, 203.0.113.7, "]), ip("203.0.113.7"));
    assert_eq!(xff(&["203.0.113.7:51234"]), ip("203.0.113.7"));
    assert_eq!(xff(&["[2001:db8::7]:443"]), ip("2001:db8::7"));
    assert_eq!(xff(&["[2001:db8::7]"]), ip("2001:db8::7"));
}

#[test]
fn forwarded_for_does_not_guess_past_junk() {
    assert_eq!(xff(&[]), None);
    assert_eq!(xff(&[""]), None);
    assert_eq!(xff(&[" , "]), None);
    assert_eq!(xff(&["203.0.113.7, unknown"]), None, "never fall back to a client-written entry");
    assert_eq!(xff(&["203.0.113.7, example.com"]), None);
    assert_eq!(xff(&["203.0.113.7", "garbage"]), None);
    assert_eq!(xff(&["[2001:db8::7]:99999"]), None);
    assert_eq!(xff(&["[10.0.0.1]"]), None);
    assert_eq!(xff(&["2001:db8::7]"]), None);
    let mut headers = HeaderMap::new();
    headers.insert("x-forwarded-for", HeaderValue::from_bytes(b"10.0.0.1, \xff").unwrap());
    assert_eq!(forwarded_for(&headers), None);
}
