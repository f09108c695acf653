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
pub mod dns;
pub mod error;
pub mod forward;
pub mod forward_rules;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
pub mod glob;
pub mod health;
pub mod hop_by_hop;
pub mod listener;
pub mod metrics;
pub mod net;
pub mod oidc;
pub mod policy;
pub mod presign;
pub mod proxy;
pub mod proxy_protocol;
pub mod reload;
pub mod s3_request;
pub mod s3_xml;
pub mod session;
pub mod shutdown;
pub mod sigv4;
pub mod store;
pub mod sts;
pub mod telemetry;
pub mod transparent;
pub mod upstream;

use std::net::SocketAddr;
use std::sync::Arc;

use arc_swap::ArcSwap;

use config::{Config, ConfigError, Env, ServeArgs};
use error::{S3Error, S3ErrorCode};
use health::Readiness;
use listener::{ConnInfo, Handler, ListenError, ListenOptions};
use metrics::Mode;
use reload::{Live, ReloadError, Reloaded};
use shutdown::Shutdown;

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Listen(#[from] ListenError),
    #[error(transparent)]
    Upstream(#[from] upstream::UpstreamError),
    #[error("audit log: {0}")]
    Audit(std::io::Error),
    #[error("nothing to serve: listen is none and no other listener is set")]
    NoListener,
    #[error(transparent)]
    Dns(#[from] dns::DnsError),
    #[error("inspect mode: {0}")]
    Inspect(String),
    #[error(transparent)]
    Config(#[from] ConfigError),
}

/// The endpoint: each request is served by the gateway in use when it arrives (see [`reload`]).
#[derive(Clone)]
struct EndpointHandler(Arc<Live>);

impl Handler for EndpointHandler {
    fn call(
        &self,
        req: http::Request<hyper::body::Incoming>,
        conn: ConnInfo,
    ) -> impl std::future::Future<Output = http::Response<body::Body>> + Send {
        // Boxed: the whole request's state machine is many kilobytes, and hyper moves the
        // future it is given into its connection state for every request; a pointer moves for
        // free (the profile showed those copies at about 5% of a small request).
        Box::pin(self.0.gateway().handle(req, conn))
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
    /// The transparent (SNI passthrough) listener, when `--transparent-listen` is set.
    pub transparent_addr: Option<SocketAddr>,
    /// The DNS responder (UDP and TCP on the same port), when `--dns-listen` is set.
    pub dns_addr: Option<SocketAddr>,
    pub shutdown: Shutdown,
    /// What a reload replaces.
    live: Arc<Live>,
    /// The endpoint's and the forward proxy's accept loops.
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Running {
    /// Reads the configuration again and swaps it in for new requests (what SIGHUP does).
    /// On an error the running configuration stays.
    pub fn reload(&self, args: &ServeArgs, env: &Env) -> Result<Reloaded, ReloadError> {
        self.live.reload(args, env)
    }

    /// Starts a zero-loss drain (what SIGTERM does): readiness fails at once, the listeners
    /// close after `--drain-delay`. [`Running::wait`] returns when it is over.
    pub fn drain(&self) {
        let shutdown = self.shutdown.clone();
        let delay = self.live.config().drain_delay;
        tokio::spawn(async move { shutdown.drain_after(delay).await });
    }

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
    if !listener::workers::configure(config.serving_threads) {
        tracing::warn!(
            serving_threads = ?config.serving_threads,
            running = listener::workers::count(),
            "serving threads are set once per process; keeping those running"
        );
    }
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
    let routes = Arc::new(ArcSwap::from_pointee(upstream::Router::new(&config, &metrics)?));
    let readiness = Readiness::new(shutdown.clone(), routes.clone());
    let certificate = match &config.tls {
        Some(files) => Some(Arc::new(listener::Certificate::load(&files.cert, &files.key)?)),
        None => None,
    };
    let tls = certificate.clone().map(listener::reloadable_acceptor).transpose()?;
    // Both listeners are bound before either serves, so a failed bind leaves nothing running.
    let forward_listener = match &config.forward {
        Some(fc) => Some((listener::bind(fc.listen).await?, fc.clone())),
        None => None,
    };
    let endpoint_tcp = if config.endpoint { Some(listener::bind(config.listen).await?) } else { None };
    let transparent_tcp = match &config.transparent {
        Some(tc) => Some(listener::bind(tc.listen).await?),
        None => None,
    };
    let dns_sockets = match &config.dns {
        Some(dc) => Some(dns::Sockets::bind(dc.listen).await?),
        None => None,
    };
    let mut tasks = Vec::new();
    let transparent = start_transparent(&config, transparent_tcp, &metrics, &audit, &shutdown, &mut tasks)?;
    let transparent_addr = transparent.as_ref().map(|(at, _)| *at);
    let mut dns = None;
    if let (Some(sockets), Some(dc)) = (dns_sockets, &config.dns) {
        let at = sockets.local_addr().map_err(|source| ListenError::Bind { addr: dc.listen, source })?;
        let settings = dns::Settings::new(dc.clone());
        tasks.push(tokio::spawn(dns::serve(sockets, settings.clone(), shutdown.clone())));
        dns = Some((at, settings));
    }
    let dns_addr = dns.as_ref().map(|(at, _)| *at);
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
    // With `listen = none` the other listeners run, and `addr` is the first one's address.
    let addr = match &endpoint_tcp {
        Some(l) => l.local_addr().map_err(|source| ListenError::Bind { addr: config.listen, source })?,
        None => forward_addr.or(transparent_addr).or(dns_addr).ok_or(RunError::NoListener)?,
    };
    let metrics_addr = match config.metrics_listen {
        Some(at) => {
            let l = listener::bind(at).await?;
            let bound = l.local_addr().map_err(|source| ListenError::Bind { addr: at, source })?;
            tokio::spawn(admin::serve(l, metrics.clone(), readiness.clone(), shutdown.clone()));
            Some(bound)
        }
        None => None,
    };
    let listeners = reload::Listeners { transparent: transparent.map(|(_, s)| s), dns: dns.map(|(_, s)| s) };
    let live = Arc::new(Live::new(config.clone(), routes, certificate, listeners, metrics.clone(), audit, readiness));
    let announced = shutdown.announced();
    let gauge = metrics.clone();
    tokio::spawn(async move {
        announced.await;
        gauge.draining();
    });
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
        tasks.push(tokio::spawn(listener::serve(tcp, options, EndpointHandler(live.clone()), shutdown.clone())));
    }
    Ok(Running { addr, metrics_addr, metrics, forward_addr, transparent_addr, dns_addr, shutdown, live, tasks })
}

/// Starts the transparent listener on its bound socket, if there is one; returns its address
/// and the rules a reload replaces.
fn start_transparent(
    config: &Config,
    tcp: Option<tokio::net::TcpListener>,
    metrics: &metrics::Metrics,
    audit: &Option<audit::AuditLog>,
    shutdown: &Shutdown,
    tasks: &mut Vec<tokio::task::JoinHandle<()>>,
) -> Result<Option<(SocketAddr, transparent::Settings)>, RunError> {
    let (Some(tcp), Some(tc)) = (tcp, &config.transparent) else { return Ok(None) };
    let at = tcp.local_addr().map_err(|source| ListenError::Bind { addr: tc.listen, source })?;
    let Some(passthrough) = transparent::Passthrough::from_config(config, metrics, audit).map_err(RunError::Inspect)?
    else {
        return Ok(None);
    };
    let settings = transparent::Settings::new(passthrough);
    tasks.push(tokio::spawn(transparent::serve(tcp, settings.clone(), shutdown.clone(), config.shutdown_grace)));
    Ok(Some((at, settings)))
}

/// Loads the configuration, serves until SIGTERM or Ctrl-C, then drains: readiness fails at
/// once, the listeners close `--drain-delay` later, requests in flight get `--shutdown-grace`.
/// A second signal skips what is left of the delay. SIGHUP reloads the configuration.
pub async fn run(args: ServeArgs, env: Env) -> Result<(), RunError> {
    let config = Config::load(&args, &env)?;
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
    if let Some(at) = running.transparent_addr {
        tracing::info!(transparent_listen = %at, "s3gate transparent listener (TLS passthrough) on {at}");
    }
    if let Some(at) = running.dns_addr {
        tracing::info!(dns_listen = %at, "s3gate DNS responder on {at} (UDP and TCP)");
    }
    let shutdown = running.shutdown.clone();
    let live = running.live.clone();
    tokio::spawn(async move {
        shutdown::signal().await;
        let delay = live.config().drain_delay;
        tracing::info!(drain_delay = ?delay, "shutting down: not ready from now, closing the listeners after the drain delay");
        tokio::spawn(shutdown.clone().drain_after_owned(delay));
        shutdown::signal().await;
        tracing::info!("second signal: closing the listeners now");
        shutdown.trigger();
    });
    spawn_sighup_reload(running.live.clone(), args, env);
    running.wait().await;
    Ok(())
}

/// Reloads on every SIGHUP until the process ends.
fn spawn_sighup_reload(live: Arc<Live>, args: ServeArgs, env: Env) {
    #[cfg(unix)]
    tokio::spawn(async move {
        use tokio::signal::unix::{signal, SignalKind};
        let mut hup = match signal(SignalKind::hangup()) {
            Ok(hup) => hup,
            Err(e) => {
                tracing::warn!(error = %e, "cannot watch SIGHUP: configuration reload is off");
                return;
            }
        };
        while hup.recv().await.is_some() {
            tracing::info!("SIGHUP: reloading the configuration");
            // The outcome is logged and counted by `reload`.
            let _ = live.reload(&args, &env);
        }
    });
    #[cfg(not(unix))]
    drop((live, args, env));
}
