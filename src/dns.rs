//! The DNS responder (`--dns-listen`, UDP and TCP): what makes transparent mode need no client
//! change. It answers A and AAAA for the served S3 names ([`crate::forward_rules::names`]) with
//! s3gate's own addresses (`--dns-answer`), and forwards every other question to the site's
//! resolvers (`--dns-upstream`, [`upstream`]), whose answer goes back as it came: its records,
//! TTLs, CNAME chains and NXDOMAIN. It answers only `--dns-allowed-source-subnet` (loopback by
//! default) and REFUSED everyone else: an open resolver is an amplifier for anyone's attack.
//!
//! Messages are parsed and built with hickory-proto; the only bytes touched by hand are the
//! two of the ID, which a forwarded question gets fresh (so an upstream's answer cannot be
//! confused with another) and its answer gets back.
//!
//! A reload (SIGHUP) replaces everything but the address for the questions after it
//! ([`Settings`]): the names, the answers and their TTL, the upstreams and the source networks.

pub mod upstream;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use hickory_proto::op::{Edns, Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA};
use hickory_proto::rr::{RData, Record, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::Semaphore;

use crate::config::DnsConfig;
use crate::shutdown::Shutdown;

/// What a client without EDNS may receive over UDP (RFC 1035); larger answers are truncated
/// (TC), and the client asks again over TCP.
const PLAIN_UDP: usize = 512;
/// Questions answered at once, over UDP and over TCP each: past it, UDP questions are dropped
/// (the client retries) and TCP connections wait.
const IN_FLIGHT: usize = 512;
/// A TCP client has this long for each question.
const TCP_IDLE: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    #[error("cannot listen on {addr} ({proto}): {source}")]
    Bind { addr: SocketAddr, proto: &'static str, source: std::io::Error },
}

/// The bound sockets of one responder.
pub struct Sockets {
    udp: UdpSocket,
    tcp: TcpListener,
}

impl Sockets {
    /// Binds UDP, then TCP on the same port (the one the system chose, for port 0). A port the
    /// system gives free for UDP may be in use for TCP; for port 0 another is then tried.
    pub async fn bind(addr: SocketAddr) -> Result<Sockets, DnsError> {
        let attempts = if addr.port() == 0 { 16 } else { 1 };
        let mut attempt = 0;
        loop {
            attempt += 1;
            let udp = UdpSocket::bind(addr).await.map_err(|source| DnsError::Bind { addr, proto: "udp", source })?;
            let at = udp.local_addr().map_err(|source| DnsError::Bind { addr, proto: "udp", source })?;
            match TcpListener::bind(at).await {
                Ok(tcp) => return Ok(Sockets { udp, tcp }),
                Err(e) if attempt < attempts && e.kind() == std::io::ErrorKind::AddrInUse => continue,
                Err(source) => return Err(DnsError::Bind { addr: at, proto: "tcp", source }),
            }
        }
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.udp.local_addr()
    }
}

/// The responder's configuration in use, which a reload replaces for the questions after it.
#[derive(Clone)]
pub struct Settings(Arc<ArcSwap<Responder>>);

impl Settings {
    pub fn new(config: DnsConfig) -> Settings {
        Settings(Arc::new(ArcSwap::from_pointee(Responder { config })))
    }

    pub fn replace(&self, config: DnsConfig) {
        self.0.store(Arc::new(Responder { config }));
    }

    fn current(&self) -> Arc<Responder> {
        self.0.load_full()
    }
}

/// Serves UDP and TCP until shutdown.
pub async fn serve(sockets: Sockets, settings: Settings, shutdown: Shutdown) {
    let udp = serve_udp(Arc::new(sockets.udp), settings.clone());
    let tcp = serve_tcp(sockets.tcp, settings);
    tokio::select! {
        () = udp => {}
        () = tcp => {}
        () = shutdown.triggered() => {}
    }
}

async fn serve_udp(socket: Arc<UdpSocket>, settings: Settings) {
    let permits = Arc::new(Semaphore::new(IN_FLIGHT));
    let mut buf = vec![0u8; 65_535];
    loop {
        let (n, peer) = match socket.recv_from(&mut buf).await {
            Ok(got) => got,
            Err(e) => {
                tracing::debug!(target: "s3gate::dns", error = %e, "UDP receive failed");
                continue;
            }
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else { continue };
        let query = buf[..n].to_vec();
        let (socket, responder) = (socket.clone(), settings.current());
        tokio::spawn(async move {
            let _permit = permit;
            if let Some(answer) = responder.answer(&query, peer, Transport::Udp).await {
                let _ = socket.send_to(&answer, peer).await;
            }
        });
    }
}

async fn serve_tcp(listener: TcpListener, settings: Settings) {
    let permits = Arc::new(Semaphore::new(IN_FLIGHT));
    loop {
        let Ok(permit) = permits.clone().acquire_owned().await else { return };
        let Ok((stream, peer)) = listener.accept().await else { continue };
        let settings = settings.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let _ = tcp_connection(stream, peer, &settings).await;
        });
    }
}

/// Questions on one TCP connection, each framed by two length bytes, until the client stops.
/// Each is answered under the settings in use when it arrives.
async fn tcp_connection(mut stream: TcpStream, peer: SocketAddr, settings: &Settings) -> std::io::Result<()> {
    loop {
        let Ok(len) = tokio::time::timeout(TCP_IDLE, stream.read_u16()).await else { return Ok(()) };
        let mut query = vec![0u8; usize::from(len?)];
        tokio::time::timeout(TCP_IDLE, stream.read_exact(&mut query)).await.map_err(std::io::Error::other)??;
        let responder = settings.current();
        let Some(answer) = responder.answer(&query, peer, Transport::Tcp).await else { return Ok(()) };
        let n = u16::try_from(answer.len()).map_err(std::io::Error::other)?;
        stream.write_all(&n.to_be_bytes()).await?;
        stream.write_all(&answer).await?;
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Transport {
    Udp,
    Tcp,
}

struct Responder {
    config: DnsConfig,
}

impl Responder {
    /// The answer to one message, or `None` when it deserves none (not a DNS question).
    async fn answer(&self, query: &[u8], peer: SocketAddr, transport: Transport) -> Option<Vec<u8>> {
        let msg = match Message::from_vec(query) {
            Ok(m) if m.metadata.message_type == MessageType::Query => m,
            Ok(_) => return None,
            // A header is enough to say FORMERR to.
            Err(_) if query.len() >= 12 => {
                let id = u16::from_be_bytes([query[0], query[1]]);
                return Message::error_msg(id, OpCode::Query, ResponseCode::FormErr).to_vec().ok();
            }
            Err(_) => return None,
        };
        let name = msg.queries.first().map(|q| q.name.to_ascii()).unwrap_or_default();
        if !self.config.sources.contains(peer.ip()) {
            tracing::info!(target: "s3gate::dns", client = %peer, %name, "refused: not an allowed source");
            return self.error(&msg, ResponseCode::Refused);
        }
        if msg.metadata.op_code != OpCode::Query || msg.queries.len() != 1 {
            return self.error(&msg, ResponseCode::NotImp);
        }
        let answer = if self.config.names.serves(name.trim_end_matches('.')).is_some() {
            tracing::debug!(target: "s3gate::dns", client = %peer, %name, "answered with s3gate's addresses");
            self.local(&msg)?
        } else {
            match upstream::exchange(query, &self.config.upstreams, self.config.upstream_timeout).await {
                Ok(answer) => answer,
                Err(upstream::UpstreamError::None) => return self.error(&msg, ResponseCode::Refused),
                Err(e) => {
                    tracing::warn!(target: "s3gate::dns", client = %peer, %name, error = %e, "upstream failed");
                    return self.error(&msg, ResponseCode::ServFail);
                }
            }
        };
        let limit = msg.edns.as_ref().map_or(PLAIN_UDP, |e| usize::from(e.max_payload()).max(PLAIN_UDP));
        if transport == Transport::Udp && answer.len() > limit {
            // Too big for this client over UDP: the question with TC set, and it asks over TCP.
            let full = Message::from_vec(&answer).ok()?;
            return full.truncate().to_vec().ok();
        }
        Some(answer)
    }

    /// A/AAAA with `--dns-answer`; any other type of a served name has no data.
    fn local(&self, msg: &Message) -> Option<Vec<u8>> {
        let q = msg.queries.first()?;
        let mut out = self.reply(msg, ResponseCode::NoError);
        out.metadata.authoritative = true;
        for ip in &self.config.answers {
            let data = match (q.query_type, ip) {
                (RecordType::A, std::net::IpAddr::V4(v4)) => RData::A(A(*v4)),
                (RecordType::AAAA, std::net::IpAddr::V6(v6)) => RData::AAAA(AAAA(*v6)),
                _ => continue,
            };
            out.add_answer(Record::from_rdata(q.name.clone(), self.config.ttl, data));
        }
        out.to_vec().ok()
    }

    fn error(&self, msg: &Message, code: ResponseCode) -> Option<Vec<u8>> {
        self.reply(msg, code).to_vec().ok()
    }

    /// A response to `msg` with its question, flags and EDNS.
    fn reply(&self, msg: &Message, code: ResponseCode) -> Message {
        let mut out = Message::response(msg.metadata.id, msg.metadata.op_code);
        out.metadata.response_code = code;
        out.metadata.recursion_desired = msg.metadata.recursion_desired;
        out.metadata.recursion_available = !self.config.upstreams.is_empty();
        out.add_queries(msg.queries.iter().cloned());
        if msg.edns.is_some() {
            let mut edns = Edns::new();
            edns.set_max_payload(1232);
            out.set_edns(edns);
        }
        out
    }
}
