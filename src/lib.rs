//! s3gate: one binary that gives a private network a safe, fast path to S3.
//!
//! The binary (`main.rs`) only parses the command line and calls into this library, so tests,
//! benches and the embedded demo use exactly the code that runs in production.

pub mod body;
pub mod checksum;
pub mod config;
pub mod credentials;
pub mod error;
pub mod policy;
pub mod proxy;
pub mod s3_request;
pub mod server;
pub mod sigv4;
pub mod store;
pub mod telemetry;
pub mod upstream;

use std::net::SocketAddr;
use std::sync::Arc;

use config::Config;
use proxy::Gateway;
use server::{Handler, Shutdown};

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Server(#[from] server::ServerError),
    #[error(transparent)]
    Upstream(#[from] upstream::UpstreamError),
}

#[derive(Clone)]
struct EndpointHandler(Arc<Gateway>);

impl Handler for EndpointHandler {
    fn call(
        &self,
        req: http::Request<hyper::body::Incoming>,
        peer: SocketAddr,
        secure: bool,
    ) -> impl std::future::Future<Output = http::Response<body::Body>> + Send {
        self.0.clone().handle(req, peer, secure)
    }
}

/// A gateway that is listening: where, and how to stop it.
pub struct Running {
    pub addr: SocketAddr,
    pub shutdown: Shutdown,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    /// Stops accepting, drains requests in flight (up to the grace period) and returns.
    pub async fn stop(self) {
        self.shutdown.trigger();
        let _ = self.task.await;
    }

    /// Waits until the server stops (after `shutdown.trigger()`).
    pub async fn wait(self) {
        let _ = self.task.await;
    }
}

/// Binds the listener and starts serving in the background.
pub async fn start(config: Config) -> Result<Running, RunError> {
    let config = Arc::new(config);
    let upstream = upstream::Upstream::new(&config.upstream)?;
    let tls = match &config.tls {
        Some(files) => Some(server::tls_acceptor(&files.cert, &files.key)?),
        None => None,
    };
    let listener = server::bind(config.listen).await?;
    let addr = listener.local_addr().map_err(|source| server::ServerError::Bind { addr: config.listen, source })?;
    let handler = EndpointHandler(Arc::new(Gateway::new(config.clone(), upstream)));
    let shutdown = Shutdown::default();
    let grace = config.shutdown_grace;
    let task = tokio::spawn(server::serve(listener, tls, handler, shutdown.clone(), grace));
    Ok(Running { addr, shutdown, task })
}

/// Serves until SIGTERM or Ctrl-C, then drains.
pub async fn run(config: Config) -> Result<(), RunError> {
    let scheme = if config.tls.is_some() { "https" } else { "http" };
    let upstream = config.upstream.url.clone();
    let running = start(config).await?;
    tracing::info!(listen = %running.addr, %upstream, "s3gate endpoint listening on {scheme}://{}", running.addr);
    let shutdown = running.shutdown.clone();
    tokio::spawn(async move {
        telemetry::shutdown_signal().await;
        tracing::info!("shutting down: draining connections");
        shutdown.trigger();
    });
    running.wait().await;
    Ok(())
}
