//! Asking the site's resolvers: forwarding a client's question as it came, and looking up the
//! real address of an S3 name for the transparent listener (whose clients' resolver may be
//! s3gate itself, so the system resolver would answer with s3gate's own address).
//!
//! UDP first; an answer with the TC bit is asked again over TCP, as a stub resolver does. Each
//! upstream in turn until one answers; the answer's ID and question must be the question's.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hickory_proto::op::{Message, Query};
use hickory_proto::rr::{Name, RData, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

/// The largest UDP answer read from an upstream: the client's EDNS size travels with its
/// question and may allow up to 64 KiB, and a datagram cut short would not parse.
const MAX_UDP: usize = 65_535;

#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("no upstream resolver is configured")]
    None,
    #[error("no upstream resolver answered: {0}")]
    Failed(String),
    #[error("not a DNS name: {0}")]
    Name(String),
}

/// Sends `query` (a whole DNS message) to the first upstream that answers and returns its
/// answer as it came, with the query's ID.
pub async fn exchange(query: &[u8], upstreams: &[SocketAddr], timeout: Duration) -> Result<Vec<u8>, UpstreamError> {
    if upstreams.is_empty() {
        return Err(UpstreamError::None);
    }
    let asked = Message::from_vec(query).map_err(|e| UpstreamError::Failed(format!("the query: {e}")))?;
    let mut last = String::new();
    for &server in upstreams {
        match tokio::time::timeout(timeout, ask(query, &asked, server)).await {
            Ok(Ok(answer)) => return Ok(answer),
            Ok(Err(e)) => last = format!("{server}: {e}"),
            Err(_) => last = format!("{server}: no answer in {timeout:?}"),
        }
    }
    Err(UpstreamError::Failed(last))
}

/// One upstream: UDP, then TCP when the answer was truncated.
async fn ask(query: &[u8], asked: &Message, server: SocketAddr) -> Result<Vec<u8>, String> {
    let id: u16 = rand::random();
    let mut ours = query.to_vec();
    ours[..2].copy_from_slice(&id.to_be_bytes());
    let answer = udp(&ours, server).await.map_err(|e| format!("UDP: {e}"))?;
    let parsed = matching(&answer, id, asked)?;
    let mut answer = if parsed.metadata.truncation {
        let answer = tcp(&ours, server).await.map_err(|e| format!("TCP: {e}"))?;
        matching(&answer, id, asked)?;
        answer
    } else {
        answer
    };
    answer[..2].copy_from_slice(&query[..2]);
    Ok(answer)
}

/// The answer parsed, if it answers our question under our ID.
fn matching(answer: &[u8], id: u16, asked: &Message) -> Result<Message, String> {
    let parsed = Message::from_vec(answer).map_err(|e| format!("a malformed answer: {e}"))?;
    if parsed.metadata.id != id || parsed.queries != asked.queries {
        return Err("an answer to another question".into());
    }
    Ok(parsed)
}

async fn udp(query: &[u8], server: SocketAddr) -> std::io::Result<Vec<u8>> {
    let bind: SocketAddr = if server.is_ipv4() { ([0, 0, 0, 0], 0).into() } else { ([0u16; 8], 0).into() };
    let socket = UdpSocket::bind(bind).await?;
    socket.connect(server).await?;
    socket.send(query).await?;
    let mut buf = vec![0u8; MAX_UDP];
    // A connected socket only receives from `server`; a stray datagram with another ID is
    // rejected by `matching`, and the caller's timeout bounds the wait.
    let n = socket.recv(&mut buf).await?;
    buf.truncate(n);
    Ok(buf)
}

/// One question over TCP: two length bytes, then the message, each way.
pub(crate) async fn tcp(query: &[u8], server: SocketAddr) -> std::io::Result<Vec<u8>> {
    let mut s = TcpStream::connect(server).await?;
    let len = u16::try_from(query.len()).map_err(|_| std::io::Error::other("query too long"))?;
    s.write_all(&len.to_be_bytes()).await?;
    s.write_all(query).await?;
    let n = s.read_u16().await?;
    let mut buf = vec![0u8; usize::from(n)];
    s.read_exact(&mut buf).await?;
    Ok(buf)
}

/// The addresses of `name` (A, then AAAA when it has none), CNAME chains followed by the
/// upstream as resolvers do.
pub async fn lookup(name: &str, upstreams: &[SocketAddr], timeout: Duration) -> Result<Vec<IpAddr>, UpstreamError> {
    let fqdn = Name::from_ascii(format!("{}.", name.trim_end_matches('.')))
        .map_err(|_| UpstreamError::Name(name.to_owned()))?;
    for rtype in [RecordType::A, RecordType::AAAA] {
        let mut q = Message::query();
        q.metadata.recursion_desired = true;
        q.add_query(Query::query(fqdn.clone(), rtype));
        let bytes = q.to_vec().map_err(|e| UpstreamError::Name(e.to_string()))?;
        let answer = exchange(&bytes, upstreams, timeout).await?;
        let answer = Message::from_vec(&answer).map_err(|e| UpstreamError::Failed(e.to_string()))?;
        let ips: Vec<IpAddr> = (answer.answers.iter())
            .filter_map(|r| match &r.data {
                RData::A(a) => Some(IpAddr::V4(a.0)),
                RData::AAAA(a) => Some(IpAddr::V6(a.0)),
                _ => None,
            })
            .collect();
        if !ips.is_empty() {
            return Ok(ips);
        }
    }
    Ok(Vec::new())
}
