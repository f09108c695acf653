//! Live reload (SIGHUP): the configuration read again and swapped in for new requests.
//!
//! A reload is the start-up reading done again ([`Config::load`]: the config file, the
//! credentials file, secret and policy files), then everything built that can fail (the
//! routes' upstream clients, the TLS certificate) before anything is replaced. Only then is a
//! new [`Gateway`] stored for new requests to take; a request in flight keeps the one it
//! started with and finishes under the rules it was admitted by. A configuration that does not
//! load changes nothing: the old one keeps serving, the error is logged and counted
//! (`s3gate_config_reload_total{result="error"}`).
//!
//! What is reloaded: client credentials (`--credentials`, the credentials file, `[[client]]`),
//! their policies, routes and the upstream, allowed source subnets and endpoints, domains,
//! and the TLS certificate and key (handshakes from then on present the new one), and
//! `--drain-delay`; the transparent listener's `[transparent]` settings and source networks and
//! the DNS responder's `[dns]` settings, for the connections and questions after the reload.
//! What a listener was built with is kept until a restart, and a reload that changes it says
//! so, naming the key: the addresses (`listen`, `metrics_listen`, `forward_listen`,
//! `transparent_listen`, `dns_listen`, each turned on or off too), turning TLS on or off,
//! `max_connections`, `serving_threads`, `shutdown_grace`, `trusted_proxy`, `audit_log` and the `[forward]` table.

use std::sync::{Arc, Mutex, PoisonError};

use arc_swap::ArcSwap;

use crate::audit::AuditLog;
use crate::config::{Config, ConfigError, Env, ServeArgs};
use crate::health::Readiness;
use crate::listener::{self, Certificate, ListenError};
use crate::metrics::Metrics;
use crate::proxy::Gateway;
use crate::upstream::{Router, UpstreamError};

#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
    #[error(transparent)]
    Tls(#[from] ListenError),
    #[error("inspect mode: {0}")]
    Inspect(String),
}

/// The listeners outside the endpoint whose settings a reload replaces; `None` when the
/// listener does not run.
#[derive(Default)]
pub struct Listeners {
    pub transparent: Option<crate::transparent::Settings>,
    pub dns: Option<crate::dns::Settings>,
}

/// What a reload that went through left for a restart.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Reloaded {
    /// Keys whose new values wait for a restart.
    pub needs_restart: Vec<&'static str>,
}

/// What serves now, and what a reload replaces.
pub struct Live {
    config: Mutex<Arc<Config>>,
    gateway: ArcSwap<Gateway>,
    routes: Arc<ArcSwap<Router>>,
    /// The endpoint's certificate, when it speaks TLS.
    certificate: Option<Arc<Certificate>>,
    listeners: Listeners,
    metrics: Metrics,
    audit: Option<AuditLog>,
    readiness: Readiness,
}

impl Live {
    pub(crate) fn new(
        config: Arc<Config>,
        routes: Arc<ArcSwap<Router>>,
        certificate: Option<Arc<Certificate>>,
        listeners: Listeners,
        metrics: Metrics,
        audit: Option<AuditLog>,
        readiness: Readiness,
    ) -> Self {
        let gateway =
            Gateway::new(config.clone(), routes.load_full(), metrics.clone(), audit.clone(), readiness.clone(), None);
        Self {
            config: Mutex::new(config),
            gateway: ArcSwap::from_pointee(gateway),
            routes,
            certificate,
            listeners,
            metrics,
            audit,
            readiness,
        }
    }

    /// The gateway a new request is served by.
    pub fn gateway(&self) -> Arc<Gateway> {
        self.gateway.load_full()
    }

    /// The configuration in use.
    pub fn config(&self) -> Arc<Config> {
        self.config.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Reads the configuration again from `args`, `env` and the files they name, and applies
    /// it; logs and counts the outcome either way.
    pub fn reload(&self, args: &ServeArgs, env: &Env) -> Result<Reloaded, ReloadError> {
        let outcome = Config::load(args, env).map_err(ReloadError::from).and_then(|config| self.apply(config));
        self.metrics.config_reloaded(outcome.is_ok());
        match &outcome {
            Ok(done) => {
                for key in &done.needs_restart {
                    tracing::warn!(key, "configuration reloaded, but a change to {key} takes a restart");
                }
                tracing::info!("configuration reloaded");
            }
            Err(e) => tracing::error!(error = %e, "configuration reload refused; the running configuration stays"),
        }
        outcome
    }

    /// Swaps `new` in for new requests, once everything it needs has been built.
    pub fn apply(&self, mut new: Config) -> Result<Reloaded, ReloadError> {
        // One reload at a time: two SIGHUPs in a row must not interleave their swaps.
        let mut current = self.config.lock().unwrap_or_else(PoisonError::into_inner);
        let needs_restart = needs_restart(&current, &new);
        // The listeners read who may send a PROXY protocol header; the gateway must believe the
        // same peers for X-Forwarded-For until they are rebuilt.
        new.access.trusted_proxies = current.access.trusted_proxies.clone();
        let router = Arc::new(Router::new(&new, &self.metrics)?);
        let certificate = match (&self.certificate, &new.tls) {
            (Some(_), Some(files)) => Some(listener::read_certificate(&files.cert, &files.key)?),
            _ => None,
        };
        // A listener turned off keeps its rules until the restart that stops it.
        let passthrough = match &self.listeners.transparent {
            Some(_) => crate::transparent::Passthrough::from_config(&new, &self.metrics, &self.audit)
                .map_err(ReloadError::Inspect)?,
            None => None,
        };
        let new = Arc::new(new);
        let previous = self.gateway.load();
        let gateway = Gateway::new(
            new.clone(),
            router.clone(),
            self.metrics.clone(),
            self.audit.clone(),
            self.readiness.clone(),
            Some(&previous),
        );
        if let (Some(in_use), Some(key)) = (&self.certificate, certificate) {
            in_use.replace(key);
        }
        self.routes.store(router);
        self.gateway.store(Arc::new(gateway));
        if let (Some(settings), Some(passthrough)) = (&self.listeners.transparent, passthrough) {
            settings.replace(passthrough);
        }
        if let (Some(settings), Some(dns)) = (&self.listeners.dns, &new.dns) {
            settings.replace(dns.clone());
        }
        *current = new;
        Ok(Reloaded { needs_restart })
    }
}

/// The keys whose change a running process cannot take up.
fn needs_restart(old: &Config, new: &Config) -> Vec<&'static str> {
    let mut keys = Vec::new();
    let mut check = |changed: bool, key: &'static str| {
        if changed {
            keys.push(key);
        }
    };
    check(old.endpoint != new.endpoint || (old.endpoint && old.listen != new.listen), "listen");
    check(old.tls.is_some() != new.tls.is_some(), "tls_cert");
    check(old.metrics_listen != new.metrics_listen, "metrics_listen");
    check(old.max_connections != new.max_connections, "max_connections");
    check(old.serving_threads != new.serving_threads, "serving_threads");
    check(old.shutdown_grace != new.shutdown_grace, "shutdown_grace");
    check(old.access.trusted_proxies != new.access.trusted_proxies, "trusted_proxy");
    check(old.audit_log != new.audit_log, "audit_log");
    let transparent_listen = |c: &Config| c.transparent.as_ref().map(|t| t.listen);
    check(transparent_listen(old) != transparent_listen(new), "transparent_listen");
    let dns_listen = |c: &Config| c.dns.as_ref().map(|d| d.listen);
    check(dns_listen(old) != dns_listen(new), "dns_listen");
    let forward_listen = |c: &Config| c.forward.as_ref().map(|f| f.listen);
    check(forward_listen(old) != forward_listen(new), "forward_listen");
    // The forward proxy keeps the table it started with; its Debug form shows every setting
    // (secrets redacted), which is what a change is looked for in.
    let forward = |c: &Config| c.forward.as_ref().map(|f| format!("{f:?}"));
    check(forward_listen(old) == forward_listen(new) && forward(old) != forward(new), "forward");
    keys
}
