//! s3gate: one binary that gives a private network a safe, fast path to S3.
//!
//! The binary (`main.rs`) only parses the command line and calls into this library, so tests,
//! benches and the embedded demo use exactly the code that runs in production.

pub mod admin;
pub mod audit;
pub mod body;
pub mod checksum;
pub mod config;
pub mod credentials;
pub mod error;
pub mod forward;
pub mod forward_rules;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
pub mod glob;
pub mod hop_by_hop;
pub mod listener;
pub mod metrics;
pub mod net;
pub mod policy;
pub mod presign;
pub mod proxy;
pub mod proxy_protocol;
pub mod s3_request;
pub mod s3_xml;
pub mod shutdown;
pub mod sigv4;
pub mod store;
pub mod telemetry;
pub mod upstream;

use std::net::SocketAddr;
use std::sync::Arc;

use config::Config;
use error::{S3Error, S3ErrorCode};
use listener::{ConnInfo, Handler, ListenError, ListenOptions};
use metrics::Mode;
use proxy::Gateway;
use shutdown::Shutdown;

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Listen(#[from] ListenError),
    #[error(transparent)]
    Upstream(#[from] upstream::UpstreamError),
    #[error("audit log: {0}")]
    Audit(std::io::Error),
    #[error("nothing to serve: listen is none and forward-listen is not set")]
    NoListener,
}

#[derive(Clone)]
struct EndpointHandler(Arc<Gateway>);

impl Handler for EndpointHandler {
    fn call(
        &self,
        req: http::Request<hyper::body::Incoming>,
        conn: ConnInfo,
    ) -> impl std::future::Future<Output = http::Response<body::Body>> + Send {
        self.0.clone().handle(req, conn)
    }

    /// What S3 says when it wants clients to back off: SDKs retry it.
    fn refusal(&self, req: &http::Request<hyper::body::Incoming>) -> http::Response<body::Body> {
        let request_id = format!("{:016X}", rand::random::<u64>());
        S3Error::new(S3ErrorCode::SlowDown, "Please reduce your request rate.")
            .into_response(&request_id, req.method() == http::Method::HEAD)
    }
}

/// A gateway that is listening: where, and how to stop it.
pub struct Running {
    pub addr: SocketAddr,
    /// The Prometheus listener, when `--metrics-listen` is set.
    pub metrics_addr: Option<SocketAddr>,
    pub metrics: metrics::Metrics,
    /// The forward proxy's listener, when `--forward-listen` is set.
    pub forward_addr: Option<SocketAddr>,
    pub shutdown: Shutdown,
    /// The endpoint's and the forward proxy's accept loops.
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Running {
    /// Stops accepting, drains requests in flight (up to the grace period) and returns.
    pub async fn stop(self) {
        self.shutdown.trigger();
        self.wait().await;
    }

    /// Waits until the servers stop (after `shutdown.trigger()`).
    pub async fn wait(self) {
        for task in self.tasks {
            let _ = task.await;
        }
    }
}

/// Binds the listeners and starts serving in the background.
pub async fn start(config: Config) -> Result<Running, RunError> {
    let config = Arc::new(config);
    let metrics = metrics::Metrics::new();
    let shutdown = Shutdown::default();
    let audit = match &config.audit_log {
        Some(target) => {
            let log = audit::AuditLog::open(target).map_err(RunError::Audit)?;
            audit::spawn_sighup_reopen(log.clone());
            Some(log)
        }
        None => None,
    };
    let router = upstream::Router::new(&config, &metrics)?;
    let tls = match &config.tls {
        Some(files) => Some(listener::tls_acceptor(&files.cert, &files.key)?),
        None => None,
    };
    // Both listeners are bound before either serves, so a failed bind leaves nothing running.
    let forward_listener = match &config.forward {
        Some(fc) => Some((listener::bind(fc.listen).await?, fc.clone())),
        None => None,
    };
    let endpoint_tcp = if config.endpoint { Some(listener::bind(config.listen).await?) } else { None };
    let mut tasks = Vec::new();
    let mut forward_addr = None;
    if let Some((l, fc)) = forward_listener {
        forward_addr = Some(l.local_addr().map_err(|source| ListenError::Bind { addr: fc.listen, source })?);
        let grace = config.shutdown_grace;
        tasks.push(tokio::spawn(forward::serve(
            l,
            fc,
            config.access.clone(),
            metrics.clone(),
            audit.clone(),
            shutdown.clone(),
            grace,
        )));
    }
    // With `listen = none` only the forward proxy runs, and `addr` is its address.
    let addr = match &endpoint_tcp {
        Some(l) => l.local_addr().map_err(|source| ListenError::Bind { addr: config.listen, source })?,
        None => forward_addr.ok_or(RunError::NoListener)?,
    };
    let metrics_addr = match config.metrics_listen {
        Some(at) => {
            let l = listener::bind(at).await?;
            let bound = l.local_addr().map_err(|source| ListenError::Bind { addr: at, source })?;
            tokio::spawn(admin::serve(l, metrics.clone(), shutdown.clone()));
            Some(bound)
        }
        None => None,
    };
    let gateway = Gateway::new(config.clone(), router, metrics.clone(), audit);
    let options = ListenOptions {
        name: "endpoint",
        tls,
        trusted_proxies: config.access.trusted_proxies.clone(),
        grace: config.shutdown_grace,
        metrics: Some((metrics.clone(), Mode::Endpoint)),
        max_connections: config.max_connections,
        ..ListenOptions::default()
    };
    if let Some(tcp) = endpoint_tcp {
        tasks.push(tokio::spawn(listener::serve(tcp, options, EndpointHandler(Arc::new(gateway)), shutdown.clone())));
    }
    Ok(Running { addr, metrics_addr, metrics, forward_addr, shutdown, tasks })
}

/// Serves until SIGTERM or Ctrl-C, then drains.
pub async fn run(config: Config) -> Result<(), RunError> {
    let scheme = if config.tls.is_some() { "https" } else { "http" };
    let upstream = config.upstream.url.clone();
    let endpoint = config.endpoint;
    let running = start(config).await?;
    if endpoint {
        tracing::info!(listen = %running.addr, %upstream, "s3gate endpoint listening on {scheme}://{}", running.addr);
    }
    if let Some(at) = running.forward_addr {
        tracing::info!(forward_listen = %at, "s3gate forward proxy listening on {at}");
    }
    let shutdown = running.shutdown.clone();
    tokio::spawn(async move {
        shutdown::signal().await;
        tracing::info!("shutting down: draining connections");
        shutdown.trigger();
    });
    running.wait().await;
    Ok(())
}
