//! Inspect mode (`--transparent-inspect PATTERN`): for the names it covers, s3gate terminates
//! the client's TLS with a certificate its enterprise CA issues on the fly ([`certs`]), reads
//! each request head (bucket, key, IAM action through the one classifier, [`crate::s3_request`],
//! and the access key id the client signed with), applies the bucket and action allow lists,
//! audits the request, and forwards it unchanged (method, path, query, headers, body) over a
//! new TLS connection to the real name, so the client's own signature stays valid: s3gate never
//! needs the client's secret. Bodies stream both ways; nothing is read whole. Each request's
//! record is written when its response body has been sent (or dropped), with the body bytes
//! that went each way, as the endpoint's requests are.

pub mod certs;

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use super::Passthrough;
use crate::body::{self, Body};
use crate::config::InspectConfig;
use crate::error::S3Error;
use crate::forward::traffic::{Direction, MeteredBody, Traffic};
use crate::forward_rules::allow::{Host, HostPattern};
use crate::forward_rules::names::bucket_of;
use crate::metrics::{Metrics, Mode};

/// What every inspected connection shares: the TLS configurations both ways.
pub struct Inspect {
    names: Vec<HostPattern>,
    actions: Vec<String>,
    server: Arc<rustls::ServerConfig>,
    client: Arc<rustls::ClientConfig>,
}

impl Inspect {
    /// Loads the CA and builds both TLS configurations.
    pub fn new(config: &InspectConfig) -> Result<Inspect, String> {
        let issuer = certs::Issuer::load(&config.ca_cert, &config.ca_key)?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut server = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(issuer));
        // HTTP/1.1 only: requests are read one at a time, as S3 clients send them.
        server.alpn_protocols = vec![b"http/1.1".to_vec()];
        let mut client =
            crate::upstream::client_tls_config(config.upstream_ca.as_deref()).map_err(|e| e.to_string())?;
        client.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Inspect {
            names: config.names.clone(),
            actions: config.actions.clone(),
            server: Arc::new(server),
            client: Arc::new(client),
        })
    }

    pub fn covers(&self, host: &Host) -> bool {
        self.names.iter().any(|p| p.matches(host))
    }

    fn action_allowed(&self, action: &str) -> bool {
        self.actions.is_empty() || self.actions.iter().any(|p| crate::glob::matches(p, action))
    }
}

/// Serves one inspected connection: the client's TLS (its ClientHello replayed from `hello`),
/// then its requests, each checked and forwarded on one TLS connection to `upstream`.
pub async fn serve(
    pt: &Passthrough,
    inspect: &Inspect,
    client: TcpStream,
    who: std::net::SocketAddr,
    hello: Vec<u8>,
    host: &Host,
    upstream: TcpStream,
) -> Result<(), String> {
    let acceptor = tokio_rustls::TlsAcceptor::from(inspect.server.clone());
    let tls = acceptor.accept(Rewind { early: hello, at: 0, inner: client }).await.map_err(|e| format!("TLS: {e}"))?;
    let name = rustls::pki_types::ServerName::try_from(host.as_str().to_owned()).map_err(|e| e.to_string())?;
    let connector = tokio_rustls::TlsConnector::from(inspect.client.clone());
    let up = connector.connect(name, upstream).await.map_err(|e| format!("endpoint TLS: {e}"))?;
    let (sender, conn) = hyper::client::conn::http1::handshake::<_, Body>(TokioIo::new(up))
        .await
        .map_err(|e| format!("endpoint: {e}"))?;
    let upstream_conn = tokio::spawn(conn);
    let sender = Arc::new(tokio::sync::Mutex::new(sender));
    let peer = who.to_string();
    let service = hyper::service::service_fn(|req| {
        let (sender, peer) = (sender.clone(), peer.clone());
        async move { Ok::<_, std::convert::Infallible>(request(pt, inspect, host, peer, req, &sender).await) }
    });
    let served = hyper::server::conn::http1::Builder::new()
        .keep_alive(true)
        .serve_connection(TokioIo::new(tls), service)
        .await
        .map_err(|e| format!("client: {e}"));
    upstream_conn.abort();
    served
}

/// One request: classify, check, forward, audit.
async fn request(
    pt: &Passthrough,
    inspect: &Inspect,
    host: &Host,
    peer: String,
    req: Request<Incoming>,
    sender: &tokio::sync::Mutex<SendRequest<Body>>,
) -> Response<Body> {
    let request_id = format!("{:016X}", rand::random::<u64>());
    let head = req.method() == http::Method::HEAD;
    let domain = match bucket_of(host.as_str()) {
        Some(b) => host.as_str()[b.len() + 1..].to_owned(),
        None => host.as_str().to_owned(),
    };
    let uri = req.uri().clone();
    let classified =
        crate::s3_request::classify(req.method(), host.as_str(), uri.path(), uri.query(), req.headers(), &[domain]);
    let mut audit = Audit::new(pt, peer, request_id.clone(), access_key_id(&req));
    let s3 = match classified {
        Ok(s3) => s3,
        Err(e) => {
            audit.reason = Some(e.to_string());
            return audit.finish(S3Error::invalid_request(e.to_string()).into_response(&request_id, head));
        }
    };
    audit.action = s3.action.to_owned();
    audit.operation = s3.operation().to_owned();
    (audit.bucket, audit.key) = (s3.bucket.clone(), s3.key.clone());
    let names = &pt.config.names;
    let bucket_ok = match &s3.bucket {
        Some(b) => names.bucket_allowed(b),
        None => names.buckets.is_empty(),
    };
    let action_ok =
        std::iter::once(s3.action).chain(s3.also_requires.iter().copied()).all(|a| inspect.action_allowed(a));
    if !bucket_ok || !action_ok {
        let why = if bucket_ok { "action" } else { "bucket" };
        pt.metrics.network_denied(Mode::Transparent, why);
        audit.reason = Some(format!("{why} not allowed"));
        return audit.finish(S3Error::access_denied().into_response(&request_id, head));
    }
    let (mut parts, incoming) = req.into_parts();
    // Origin form, as it came; Host and every other header unchanged, so the signature holds.
    parts.uri = uri
        .path_and_query()
        .map_or_else(|| "/".parse().unwrap_or_default(), |pq| pq.as_str().parse().unwrap_or_default());
    let counted = MeteredBody::new(incoming, audit.traffic.clone(), Direction::Up, ());
    let outgoing = Request::from_parts(parts, body::boxed(counted));
    let mut sender = sender.lock().await;
    let answer = match sender.ready().await {
        Ok(()) => sender.send_request(outgoing).await,
        Err(e) => Err(e),
    };
    drop(sender);
    let resp = match answer {
        Ok(resp) => resp.map(body::boxed),
        Err(e) => {
            pt.metrics.upstream_error("other");
            audit.reason = Some(format!("endpoint: {e}"));
            S3Error::service_unavailable("The endpoint did not answer.").into_response(&request_id, head)
        }
    };
    audit.finish(resp)
}

/// The access key id the client signed with: the header's `Credential=AKID/...`, or a
/// presigned URL's `X-Amz-Credential`. Only the id, never the signature.
fn access_key_id(req: &Request<Incoming>) -> Option<String> {
    let from_header = req.headers().get(http::header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| {
        let cred = v.split("Credential=").nth(1)?;
        Some(cred.split('/').next()?.to_owned())
    });
    let from_query = || {
        let q = req.uri().query()?;
        let v = q.split('&').find_map(|kv| kv.strip_prefix("X-Amz-Credential="))?;
        let decoded = percent_encoding::percent_decode_str(v).decode_utf8().ok()?;
        Some(decoded.split('/').next()?.to_owned())
    };
    from_header.or_else(from_query).filter(|id| id.len() <= 128 && id.bytes().all(|b| b.is_ascii_alphanumeric()))
}

/// One inspected request's audit record and metrics, written when it is dropped: with the
/// response body, once that has been sent, so the bytes and the duration are the real ones.
struct Audit {
    peer: String,
    request_id: String,
    akid: Option<String>,
    action: String,
    operation: String,
    bucket: Option<String>,
    key: Option<String>,
    reason: Option<String>,
    status: u16,
    /// Request body bytes (up) and response body bytes (down), counted as they stream.
    traffic: Arc<Traffic>,
    started: Instant,
    metrics: Metrics,
    log: Option<crate::audit::AuditLog>,
}

impl Audit {
    fn new(pt: &Passthrough, peer: String, request_id: String, akid: Option<String>) -> Audit {
        Audit {
            peer,
            request_id,
            akid,
            action: String::new(),
            operation: String::new(),
            bucket: None,
            key: None,
            reason: None,
            status: 0,
            traffic: Arc::new(Traffic::default()),
            started: Instant::now(),
            metrics: pt.metrics.clone(),
            log: pt.audit.clone(),
        }
    }

    /// The response, its body counted and carrying this record to its end.
    fn finish(mut self, resp: Response<Body>) -> Response<Body> {
        self.status = resp.status().as_u16();
        let traffic = self.traffic.clone();
        resp.map(|b| body::boxed(MeteredBody::new(b, traffic, Direction::Down, self)))
    }
}

impl Drop for Audit {
    fn drop(&mut self) {
        if self.status == 0 && self.reason.is_none() {
            // Dropped before `finish`: hyper gave up on the request, as when the client left.
            self.reason = Some("closed before the answer".into());
        }
        let action = if self.action.is_empty() { "transparent:inspect" } else { self.action.as_str() };
        let (up, down) = (self.traffic.up(), self.traffic.down());
        let duration = self.started.elapsed();
        self.metrics.request_finished(Mode::Transparent, action, self.status, duration, up, down);
        if let Some(log) = &self.log {
            log.record(&crate::audit::AuditRecord {
                time: crate::audit::now_rfc3339(),
                request_id: std::mem::take(&mut self.request_id),
                client: std::mem::take(&mut self.peer),
                access_key_id: self.akid.take(),
                action: action.to_owned(),
                operation: std::mem::take(&mut self.operation),
                bucket: self.bucket.take(),
                key: self.key.take(),
                status: self.status,
                error_code: self.reason.take(),
                bytes_in: up,
                bytes_out: down,
                duration_ms: duration.as_millis() as u64,
                route: None,
                mode: Mode::Transparent.as_str().to_owned(),
                user: None,
                destination: None,
                session: None,
            });
        }
    }
}

/// The client's stream with the bytes already read from it (its ClientHello) in front, so the
/// TLS acceptor reads the connection from its first byte.
struct Rewind {
    early: Vec<u8>,
    at: usize,
    inner: TcpStream,
}

impl AsyncRead for Rewind {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        if self.at < self.early.len() {
            let n = (self.early.len() - self.at).min(buf.remaining());
            let at = self.at;
            buf.put_slice(&self.early[at..at + n]);
            self.at += n;
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Rewind {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
