//! CONNECT: check the target, dial it, answer 200, then copy bytes both ways until both sides
//! have closed, the tunnel has been idle for the limit, or shutdown cuts it.
//!
//! The destination is dialled before the 200 goes out, so a client learns of an unreachable
//! destination as a 502/504 instead of a tunnel that dies at once. Each direction is copied
//! through one fixed 64 KiB buffer, so a tunnel's memory does not grow with what it carries.
//! When one side shuts down its sending half, the other side's sending half is shut down too
//! and the other direction keeps going (half-close), as TLS close_notify and HTTP/1.0 expect.

use std::future::Future;
use std::io;
use std::sync::Arc;

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tracing::Instrument;

use super::allow::{self, Destination, Via};
use super::dial::dial;
use super::record::{Record, Refusal};
use super::traffic::{Direction, MeteredIo, Traffic};
use super::Forwarder;
use crate::body::{self, Body};

/// Per direction. Measured with bench/forward.sh: 256 KiB buffers cost the same CPU per GiB,
/// and splice(2), though it saved s3gate some CPU, made the transfer slower overall.
const BUFFER: usize = 64 * 1024;

pub async fn open(fwd: Arc<Forwarder>, mut req: Request<Incoming>, mut record: Record) -> Response<Body> {
    let dest = match target(&req) {
        Ok(d) => d,
        Err(why) => return record.refuse(Refusal::BadRequest(why)),
    };
    record.destination = Some(dest.to_string());
    if let Err(why) = fwd.config.allow.check(&dest, Via::Tunnel) {
        return record.refuse(Refusal::Denied(why));
    }
    let Ok(permit) = fwd.permits.clone().try_acquire_owned() else {
        return record.refuse(Refusal::Busy);
    };
    let upstream = match dial(&dest, &fwd.config.connect_to, fwd.config.connect_timeout).await {
        Ok(s) => s,
        Err(e) => return record.refuse(Refusal::Dial(e)),
    };
    record.allowed = true;
    record.status = StatusCode::OK.as_u16();
    let upgrade = hyper::upgrade::on(&mut req);
    let open = fwd.metrics.tunnel_opened();
    // In the connection's span, so the tunnel's log line names its listener and client too.
    let tunnel = async move {
        let _counted = (permit, open);
        let mut record = record;
        match upgrade.await {
            Ok(client) => pump(&fwd, client, upstream, &mut record).await,
            Err(e) => record.reason = Some(format!("the client left before the tunnel opened: {e}")),
        }
    };
    tokio::spawn(tunnel.in_current_span());
    Response::new(body::empty())
}

/// The authority-form target `host:port` of a CONNECT request; the port is required.
fn target(req: &Request<Incoming>) -> Result<Destination, String> {
    let uri = req.uri();
    let authority = match (uri.scheme(), uri.authority(), uri.path_and_query()) {
        (None, Some(a), None) => a,
        _ => return Err(format!("CONNECT needs a host:port target, got {uri}")),
    };
    if authority.as_str().contains('@') {
        return Err("CONNECT target must not hold user information".into());
    }
    let port = authority.port_u16().ok_or_else(|| format!("CONNECT target {authority} has no port"))?;
    allow::parse_destination(authority.host(), port)
}

/// Runs the tunnel until done, idle or cut, and records how it ended.
async fn pump(fwd: &Forwarder, client: Upgraded, upstream: TcpStream, record: &mut Record) {
    // hyper hands back the bare TCP stream when it can, which lets the tunnel splice. Bytes the
    // client sent right after its CONNECT (a TLS ClientHello, when it does not wait for the
    // 200) come with it and go first.
    let result = match client.downcast::<TokioIo<TcpStream>>() {
        Ok(parts) => tcp(fwd, parts.io.into_inner(), &parts.read_buf, upstream, record).await,
        Err(client) => copy(fwd, TokioIo::new(client), &[], upstream, record).await,
    };
    if let Err(why) = result {
        record.reason = Some(why);
    }
}

/// Between two TCP sockets. The client's side gets Nagle's algorithm back, as squid leaves it:
/// a relay writes whatever arrived, and with TCP_NODELAY each small read of a download becomes a
/// small segment for the client to handle; with Nagle the kernel merges them (a few percent
/// faster in bench/forward.sh). The destination's side keeps TCP_NODELAY, as squid sets it.
async fn tcp(
    fwd: &Forwarder,
    client: TcpStream,
    early: &[u8],
    upstream: TcpStream,
    record: &Record,
) -> Result<(), String> {
    let _ = client.set_nodelay(false);
    copy(fwd, client, early, upstream, record).await
}

/// Through a 64 KiB buffer each way.
async fn copy<C>(fwd: &Forwarder, client: C, early: &[u8], upstream: TcpStream, record: &Record) -> Result<(), String>
where
    C: AsyncRead + AsyncWrite + Unpin,
{
    let traffic = record.traffic.clone();
    let mut client = MeteredIo::new(client, &traffic, Direction::Down);
    let mut upstream = MeteredIo::new(upstream, &traffic, Direction::Up);
    if !early.is_empty() {
        upstream.write_all(early).await.map_err(|e| format!("destination: {e}"))?;
    }
    let both = tokio::io::copy_bidirectional_with_sizes(&mut client, &mut upstream, BUFFER, BUFFER);
    watch(fwd, &traffic, async { both.await.map(|_| ()) }).await
}

/// Lets `work` run until it ends, the tunnel has been idle for the limit, or shutdown cuts it.
async fn watch(fwd: &Forwarder, traffic: &Traffic, work: impl Future<Output = io::Result<()>>) -> Result<(), String> {
    let limit = fwd.config.idle_timeout;
    tokio::select! {
        res = work => res.map_err(|e| format!("tunnel: {e}")),
        () = traffic.idle(limit) => Err(format!("idle for {}s: closed", limit.as_secs())),
        () = fwd.drain.cut() => Err("shutting down: closed".into()),
    }
}
