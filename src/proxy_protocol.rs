//! The real client address behind a load balancer: the PROXY protocol (v1 text and v2 binary,
//! as an AWS NLB sends it) and `X-Forwarded-For`.
//!
//! Both are only believed from `--trusted-proxy` addresses; anyone else could write them. The
//! header is read byte-exactly, never past its end, so the stream handed on to TLS or hyper is
//! untouched. Spec: <https://www.haproxy.org/download/2.9/doc/proxy-protocol.txt>.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};

/// What the proxy said about the connection it forwards.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProxyHeader {
    /// The client's address; `None` for v2 LOCAL (the proxy's own health check), v1 UNKNOWN and
    /// v2 UNSPEC/UNIX: the connection's own peer address then stands.
    pub source: Option<SocketAddr>,
    /// The address the client connected to (the load balancer's listener).
    pub destination: Option<SocketAddr>,
    /// The VPC endpoint the client came through (NLB behind PrivateLink: PP2_TYPE_AWS,
    /// subtype PP2_SUBTYPE_AWS_VPCE_ID), for the audit log.
    pub vpce_id: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ProxyProtocolError {
    #[error("connection from a trusted proxy does not start with a PROXY protocol header")]
    NotProxyProtocol,
    #[error("PROXY protocol header not received within {0:?}")]
    Timeout(Duration),
    #[error("connection closed inside the PROXY protocol header")]
    Truncated,
    #[error("PROXY protocol v1 line longer than 107 bytes")]
    V1TooLong,
    #[error("PROXY protocol v2 header of {0} bytes is over the {MAX_V2_PAYLOAD}-byte limit")]
    V2TooLong(usize),
    #[error("malformed PROXY protocol header: {0}")]
    Malformed(&'static str),
    #[error("reading the PROXY protocol header: {0}")]
    Io(#[source] std::io::Error),
}

const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
const V1_PREFIX: &[u8; 6] = b"PROXY ";
/// The spec's bound for a v1 line, CRLF included.
const V1_MAX: usize = 107;
/// The shortest v1 line, `PROXY UNKNOWN\r\n`: this much can always be read without overshooting.
const V1_MIN: usize = 15;
/// Addresses (at most 216 bytes, AF_UNIX) plus TLVs. An NLB sends well under 100 bytes; the
/// limit keeps a broken proxy from making s3gate buffer 64 KiB per connection.
const MAX_V2_PAYLOAD: usize = 2048;

const PP2_TYPE_AWS: u8 = 0xEA;
const PP2_SUBTYPE_AWS_VPCE_ID: u8 = 0x01;

/// Reads a PROXY protocol header (v1 or v2) and nothing after it.
///
/// Call it only for connections from a trusted proxy, and refuse the connection on error.
/// `Ok(None)` means the connection closed before sending a byte (a TCP health check).
pub async fn read_header<S: AsyncRead + Unpin>(
    stream: &mut S,
    timeout: Duration,
) -> Result<Option<ProxyHeader>, ProxyProtocolError> {
    tokio::time::timeout(timeout, read_header_inner(stream)).await.map_err(|_| ProxyProtocolError::Timeout(timeout))?
}

async fn read_header_inner<S: AsyncRead + Unpin>(stream: &mut S) -> Result<Option<ProxyHeader>, ProxyProtocolError> {
    // Six bytes tell the versions apart, so a client that is not a proxy fails at once instead
    // of waiting for the timeout.
    let mut buf = [0u8; V1_MAX];
    let mut filled = 0;
    while filled < V1_PREFIX.len() {
        match stream.read(&mut buf[filled..V1_PREFIX.len()]).await.map_err(ProxyProtocolError::Io)? {
            0 if filled == 0 => return Ok(None),
            0 => return Err(ProxyProtocolError::Truncated),
            n => filled += n,
        }
    }
    if buf[..6] == V2_SIGNATURE[..6] {
        read_v2(stream, &mut buf[..16]).await.map(Some)
    } else if &buf[..6] == V1_PREFIX {
        read_v1(stream, &mut buf).await.map(Some)
    } else {
        Err(ProxyProtocolError::NotProxyProtocol)
    }
}

async fn read_exact<S: AsyncRead + Unpin>(stream: &mut S, buf: &mut [u8]) -> Result<(), ProxyProtocolError> {
    match stream.read_exact(buf).await {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Err(ProxyProtocolError::Truncated),
        Err(e) => Err(ProxyProtocolError::Io(e)),
    }
}

/// `buf` holds "PROXY " already. The line's end is only known once it is seen, so past the
/// shortest possible line it is read a byte at a time (at most ~90 small reads, once per
/// connection; NLBs send v2 anyway).
async fn read_v1<S: AsyncRead + Unpin>(
    stream: &mut S,
    buf: &mut [u8; V1_MAX],
) -> Result<ProxyHeader, ProxyProtocolError> {
    read_exact(stream, &mut buf[V1_PREFIX.len()..V1_MIN]).await?;
    if buf[..V1_MIN - 1].contains(&b'\n') {
        return Err(ProxyProtocolError::Malformed("v1 line ends without CRLF"));
    }
    let mut len = V1_MIN;
    while buf[len - 1] != b'\n' {
        if len == V1_MAX {
            return Err(ProxyProtocolError::V1TooLong);
        }
        read_exact(stream, &mut buf[len..=len]).await?;
        len += 1;
    }
    let line = buf[..len].strip_suffix(b"\r\n").ok_or(ProxyProtocolError::Malformed("v1 line ends without CRLF"))?;
    parse_v1(line)
}

/// `line` is the v1 header without its CRLF.
fn parse_v1(line: &[u8]) -> Result<ProxyHeader, ProxyProtocolError> {
    let line = std::str::from_utf8(line).map_err(|_| ProxyProtocolError::Malformed("v1 line is not ASCII"))?;
    let mut fields = line.split(' ');
    let _proxy = fields.next();
    let family = fields.next().ok_or(ProxyProtocolError::Malformed("v1 line without a protocol"))?;
    let parse_ip: fn(&str) -> Option<IpAddr> = match family {
        // The proxy does not know the addresses; the rest of the line is to be ignored.
        "UNKNOWN" => return Ok(ProxyHeader::default()),
        "TCP4" => |s| s.parse::<Ipv4Addr>().ok().map(IpAddr::V4),
        "TCP6" => |s| s.parse::<Ipv6Addr>().ok().map(IpAddr::V6),
        _ => return Err(ProxyProtocolError::Malformed("v1 protocol is not TCP4, TCP6 or UNKNOWN")),
    };
    let mut next = || fields.next().ok_or(ProxyProtocolError::Malformed("v1 line has too few fields"));
    let (src, dst, sport, dport) = (next()?, next()?, next()?, next()?);
    if fields.next().is_some() {
        return Err(ProxyProtocolError::Malformed("v1 line has too many fields"));
    }
    let ip = |text| parse_ip(text).ok_or(ProxyProtocolError::Malformed("v1 address does not match its protocol"));
    let (src, dst) = (ip(src)?, ip(dst)?);
    let (sport, dport) = (parse_port(sport)?, parse_port(dport)?);
    Ok(ProxyHeader {
        source: Some(SocketAddr::new(src, sport)),
        destination: Some(SocketAddr::new(dst, dport)),
        vpce_id: None,
    })
}

fn parse_port(text: &str) -> Result<u16, ProxyProtocolError> {
    let digits = !text.is_empty() && text.len() <= 5 && text.bytes().all(|b| b.is_ascii_digit());
    digits.then(|| text.parse().ok()).flatten().ok_or(ProxyProtocolError::Malformed("v1 port is not a number 0-65535"))
}

/// `fixed` is the 16-byte fixed part, of which the first 6 bytes are read.
async fn read_v2<S: AsyncRead + Unpin>(stream: &mut S, fixed: &mut [u8]) -> Result<ProxyHeader, ProxyProtocolError> {
    read_exact(stream, &mut fixed[6..16]).await?;
    if fixed[..12] != V2_SIGNATURE {
        return Err(ProxyProtocolError::NotProxyProtocol);
    }
    let len = usize::from(u16::from_be_bytes([fixed[14], fixed[15]]));
    if len > MAX_V2_PAYLOAD {
        return Err(ProxyProtocolError::V2TooLong(16 + len));
    }
    let mut payload = vec![0u8; len];
    read_exact(stream, &mut payload).await?;
    parse_v2(fixed[12], fixed[13], &payload)
}

fn parse_v2(ver_cmd: u8, family: u8, payload: &[u8]) -> Result<ProxyHeader, ProxyProtocolError> {
    if ver_cmd >> 4 != 2 {
        return Err(ProxyProtocolError::Malformed("v2 version is not 2"));
    }
    let local = match ver_cmd & 0x0F {
        0x0 => true,
        0x1 => false,
        _ => return Err(ProxyProtocolError::Malformed("v2 command is not LOCAL or PROXY")),
    };
    // A datagram header on a stream connection means a misconfigured proxy: its addresses
    // describe some other flow.
    if family & 0x0F > 1 {
        return Err(ProxyProtocolError::Malformed("v2 transport is not STREAM or UNSPEC"));
    }
    let addr_len = match family >> 4 {
        0x0 => 0,
        0x1 => 12,
        0x2 => 36,
        0x3 => 216,
        _ => return Err(ProxyProtocolError::Malformed("v2 address family is not UNSPEC, INET, INET6 or UNIX")),
    };
    let (addrs, tlvs) = payload
        .split_at_checked(addr_len)
        .ok_or(ProxyProtocolError::Malformed("v2 length too short for its addresses"))?;
    if local {
        // The proxy's own connection (health checks): addresses and TLVs are to be ignored.
        return Ok(ProxyHeader::default());
    }
    let (source, destination) = match family >> 4 {
        0x1 => {
            let ip = |at: usize| IpAddr::V4(Ipv4Addr::from(read_array::<4>(addrs, at)));
            let port = |at: usize| u16::from_be_bytes(read_array::<2>(addrs, at));
            (Some(SocketAddr::new(ip(0), port(8))), Some(SocketAddr::new(ip(4), port(10))))
        }
        0x2 => {
            let ip = |at: usize| IpAddr::V6(Ipv6Addr::from(read_array::<16>(addrs, at)));
            let port = |at: usize| u16::from_be_bytes(read_array::<2>(addrs, at));
            (Some(SocketAddr::new(ip(0), port(32))), Some(SocketAddr::new(ip(16), port(34))))
        }
        _ => (None, None),
    };
    Ok(ProxyHeader { source, destination, vpce_id: parse_tlvs(tlvs)? })
}

/// `N` bytes of `bytes` at `at`; the caller has checked the length.
fn read_array<const N: usize>(bytes: &[u8], at: usize) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(&bytes[at..at + N]);
    out
}

/// Walks the TLVs, which must exactly fill the rest of the header, and returns the VPC
/// endpoint id. Other types (ALPN, authority, CRC32C, NOOP, ...) are skipped: nothing here
/// needs them, and the proxy is trusted not to have tampered with its own header.
fn parse_tlvs(mut tlvs: &[u8]) -> Result<Option<String>, ProxyProtocolError> {
    let mut vpce_id = None;
    while !tlvs.is_empty() {
        let [kind, hi, lo, rest @ ..] = tlvs else {
            return Err(ProxyProtocolError::Malformed("v2 TLV header is cut short"));
        };
        let (value, rest) = rest
            .split_at_checked(usize::from(u16::from_be_bytes([*hi, *lo])))
            .ok_or(ProxyProtocolError::Malformed("v2 TLV runs past the header"))?;
        if *kind == PP2_TYPE_AWS {
            if let [PP2_SUBTYPE_AWS_VPCE_ID, id @ ..] = value {
                // An id is `vpce-` and hex; anything else would be a broken proxy, and it
                // goes into the audit log, so it must be plain text.
                if id.is_empty() || id.len() > 64 || !id.iter().all(|b| b.is_ascii_graphic()) {
                    return Err(ProxyProtocolError::Malformed("v2 AWS VPC endpoint id is not printable ASCII"));
                }
                vpce_id = Some(String::from_utf8_lossy(id).into_owned());
            }
        }
        tlvs = rest;
    }
    Ok(vpce_id)
}

/// The client address a trusted load balancer put in `X-Forwarded-For`.
///
/// Each proxy appends the address it received the request from, so the list reads
/// `client-claimed, ..., what-our-proxy-saw`. Everything left of the right-most entry came from
/// the client or from proxies we know nothing about, and can be forged at will (`curl -H
/// 'X-Forwarded-For: 10.0.0.1'`); only the right-most entry was written by the trusted proxy
/// that connected to s3gate. If that entry is not an address, the answer is `None` rather than
/// a guess further left. Empty entries (`a, , b`, a trailing comma) are skipped, and a port
/// (`192.0.2.1:1234`, `[2001:db8::1]:443`) is dropped. Several header lines count as one list,
/// in order.
pub fn forwarded_for(headers: &http::HeaderMap) -> Option<IpAddr> {
    let last = headers.get_all("x-forwarded-for").iter().next_back()?;
    let entry = last.to_str().ok()?.rsplit(',').map(str::trim).find(|entry| !entry.is_empty())?;
    parse_forwarded_addr(entry)
}

fn parse_forwarded_addr(entry: &str) -> Option<IpAddr> {
    if let Ok(ip) = entry.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Some(rest) = entry.strip_prefix('[') {
        let (ip, after) = rest.split_once(']')?;
        let port_ok = after.is_empty() || after.strip_prefix(':').is_some_and(|p| p.parse::<u16>().is_ok());
        return port_ok.then(|| ip.parse::<Ipv6Addr>().ok().map(IpAddr::V6)).flatten();
    }
    entry.parse::<std::net::SocketAddrV4>().ok().map(|addr| IpAddr::V4(*addr.ip()))
}

#[cfg(test)]
mod tests;
