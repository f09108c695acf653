//! Forward-proxy mode: what `HTTPS_PROXY` / `HTTP_PROXY` point at. `CONNECT host:443` opens a
//! byte tunnel (the client's TLS goes end to end, s3gate never sees inside), and absolute-form
//! plain-HTTP requests (`GET http://bucket.s3.amazonaws.com/key`) are forwarded as they are.
//!
//! It is never an open proxy: every destination must pass the allow list ([`allow`]), which by
//! default names only AWS S3 endpoints on port 443 (80 for plain HTTP). Connections are capped
//! by `--max-connections`, as the endpoint's are ([`crate::listener::limits`]). The flow of one
//! request: authenticate ([`auth`]) -> parse and check the destination -> take a tunnel permit
//! -> dial ([`dial`]) -> answer and pump bytes ([`tunnel`], [`exchange`]) -> one log line
//! ([`record`]).
//!
//! It serves on the shared [`listener`](crate::listener) (accept, PROXY protocol, connection
//! cap, drain) speaking HTTP/1.1 only, with upgrades for CONNECT: proxy clients speak HTTP/1.1
//! to a proxy, and hyper's own connection type lets a tunnel take back the bare TCP stream.

// The allow list and proxy users are pure rules that config builds too; they live in
// `forward_rules` so config need not depend on this module.
pub use crate::forward_rules::{allow, auth};
pub mod dial;
mod exchange;
mod record;
pub mod traffic;
mod tunnel;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use http::{Method, Request, Response};
use hyper::body::Incoming;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::body::Body;
use crate::config::ForwardConfig;
use crate::listener::drain::Token;
use crate::listener::{ConnInfo, Handler, ListenOptions, Listener, Protocol};
use crate::metrics::{Metrics, Mode};
use crate::shutdown::Shutdown;
use record::Record;

/// Shared by every connection of one forward listener. It holds a drain token, and tunnels and
/// plain-HTTP bodies hold the `Arc`, so the listener's drain waits for them too and cuts them
/// when the grace period is over.
pub(crate) struct Forwarder {
    config: ForwardConfig,
    /// `--allowed-source-subnet` (empty allows every client) and `--trusted-proxy`, shared with
    /// the endpoint.
    access: crate::config::AccessConfig,
    metrics: Metrics,
    /// `--audit-log`, shared with the endpoint: one record per tunnel or request.
    audit: Option<crate::audit::AuditLog>,
    permits: Arc<Semaphore>,
    drain: Token,
}

/// Accepts proxy clients until shutdown, then lets tunnels and requests in flight finish for up
/// to `grace` before cutting them. `sources` limits who may use the proxy at all.
pub async fn serve(
    tcp: TcpListener,
    config: ForwardConfig,
    access: crate::config::AccessConfig,
    metrics: Metrics,
    audit: Option<crate::audit::AuditLog>,
    shutdown: Shutdown,
    grace: std::time::Duration,
) {
    for p in config.allow.patterns.iter().map(ToString::to_string) {
        if p.split('.').all(|label| label == "*") {
            tracing::warn!(target: "s3gate::forward", pattern = %p, "the allow list reaches every DNS name of this many labels");
        }
    }
    let options = ListenOptions {
        name: "forward",
        // Proxy clients speak HTTP/1.1 to a proxy; CONNECT needs upgrades.
        protocol: Protocol::Http1,
        tls: None,
        trusted_proxies: access.trusted_proxies.clone(),
        grace,
        metrics: Some((metrics.clone(), Mode::Forward)),
        max_connections: config.max_connections,
        ..ListenOptions::default()
    };
    let listener = Listener::new(tcp, options);
    let permits = Arc::new(Semaphore::new(config.max_tunnels));
    let drain = listener.token();
    let fwd = Arc::new(Forwarder { config, access, metrics, audit, permits, drain });
    listener.serve(ForwardHandler(fwd), shutdown).await;
}

/// The forward proxy as a listener's handler.
#[derive(Clone)]
struct ForwardHandler(Arc<Forwarder>);

impl Handler for ForwardHandler {
    fn call(&self, req: Request<Incoming>, conn: ConnInfo) -> impl Future<Output = Response<Body>> + Send {
        // Behind a trusted load balancer the client is who its PROXY protocol header says.
        self.0.clone().handle(req, conn.proxied.unwrap_or(conn.peer))
    }
}

impl Forwarder {
    /// Authenticates, then hands CONNECT to the tunnel and everything else to the exchange.
    async fn handle(self: Arc<Self>, req: Request<Incoming>, peer: SocketAddr) -> Response<Body> {
        let mut record = Record::new(peer, req.method(), self.metrics.clone(), self.audit.clone());
        let sources = &self.access.allowed_source_subnets;
        if !sources.is_empty() && !sources.contains(peer.ip()) {
            return record.refuse(record::Refusal::Source);
        }
        match self.config.users.check(req.headers().get(http::header::PROXY_AUTHORIZATION)) {
            Ok(user) => record.user = user,
            Err(failure) => return record.refuse(record::Refusal::Auth(failure)),
        }
        if req.method() == Method::CONNECT {
            tunnel::open(self, req, record).await
        } else {
            exchange::forward(self, req, record).await
        }
    }
}
