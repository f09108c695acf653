//! The upstream side: one pooled HTTP/1.1 client (rustls for HTTPS), where a bucket's requests
//! go, and the credentials they are signed with.

pub mod assume;
pub mod pool;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_credential_types::provider::ProvideCredentials;
use aws_credential_types::Credentials;
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use tokio::sync::Mutex;

use crate::body::Body;
use crate::config::{UpstreamAddressing, UpstreamConfig, UpstreamCredentials};

#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("cannot load upstream CA {0}: {1}")]
    Ca(String, String),
    #[error("TLS setup: {0}")]
    Tls(String),
    #[error("upstream credentials unavailable: {0}")]
    Credentials(String),
    #[error("bad upstream URI: {0}")]
    Uri(String),
}

/// Refresh cached chain credentials this long before they expire, so no request is signed with
/// a key that dies in flight.
const REFRESH_BEFORE_EXPIRY: Duration = Duration::from_secs(300);

pub struct Upstream {
    /// Connections kept per serving thread (`listener::workers`), and for every other thread at
    /// index 0: a connection is driven by the thread that opened it, so a request must take one
    /// of its own thread's, or each of its reads and writes wakes another thread.
    pool: pool::Pool,
    /// Regions learned from the upstream's redirects, by bucket.
    learned_regions: std::sync::RwLock<std::collections::HashMap<String, String>>,
    /// Whether any region was ever learned: until then no request takes the lock, which every
    /// serving thread would otherwise write to (a reader count) for every request.
    any_learned: std::sync::atomic::AtomicBool,
    /// `host[:port]` as configured, parsed once: the authority of every path-style request.
    authority: http::uri::Authority,
    /// The Host header for that authority, made once: cloning it costs a reference count,
    /// making it per request an allocation and a format.
    host_header: Option<http::HeaderValue>,
    scheme: http::uri::Scheme,
    host: String,
    port: Option<u16>,
    pub region: String,
    addressing: UpstreamAddressing,
    credentials: CredentialSource,
    metrics: Option<crate::metrics::Metrics>,
}

enum CredentialSource {
    Static(Credentials),
    Chain {
        provider: Mutex<Option<aws_config::default_provider::credentials::DefaultCredentialsChain>>,
        cached: Mutex<Option<Credentials>>,
    },
}

/// `host[:port]` as an URI authority.
fn authority(host: &str, port: Option<u16>) -> Result<http::uri::Authority, UpstreamError> {
    let text = match port {
        Some(p) => format!("{host}:{p}"),
        None => host.to_owned(),
    };
    text.parse().map_err(|e: http::uri::InvalidUri| UpstreamError::Uri(e.to_string()))
}

impl Upstream {
    pub fn new(cfg: &UpstreamConfig) -> Result<Self, UpstreamError> {
        let tls = client_tls_config(cfg.ca_file.as_deref())?;
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(cfg.connect_timeout));
        http.set_nodelay(true);
        http.set_keepalive(Some(Duration::from_secs(60)));
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        // A list of connections per serving thread, and one for other threads.
        let pool = pool::Pool::new(connector, crate::listener::workers::count() + 1);
        let scheme = cfg.url.scheme().cloned().unwrap_or(http::uri::Scheme::HTTPS);
        let host = cfg.url.host().unwrap_or_default().to_owned();
        let port = cfg.url.port_u16();
        let authority = authority(&host, port)?;
        let host_header = http::Uri::builder()
            .scheme(scheme.clone())
            .authority(authority.clone())
            .path_and_query("/")
            .build()
            .ok()
            .and_then(|uri| crate::sigv4::host_from_uri(&uri));
        let credentials = match &cfg.credentials {
            UpstreamCredentials::Static(c) => CredentialSource::Static(Credentials::new(
                c.access_key_id.clone(),
                c.secret.expose().to_owned(),
                None,
                None,
                "s3gate-static",
            )),
            UpstreamCredentials::DefaultChain => {
                CredentialSource::Chain { provider: Mutex::new(None), cached: Mutex::new(None) }
            }
        };
        Ok(Self {
            pool,
            learned_regions: Default::default(),
            any_learned: Default::default(),
            authority,
            host_header,
            scheme,
            host,
            port,
            region: cfg.region.clone(),
            addressing: cfg.addressing,
            credentials,
            metrics: None,
        })
    }

    /// The upstream URI for a bucket and decoded key, with an already encoded query.
    pub fn uri_for(&self, bucket: Option<&str>, key: Option<&str>, query: &str) -> Result<http::Uri, UpstreamError> {
        let learned = self.learned_region(bucket);
        let mut path = String::with_capacity(2 + bucket.map_or(0, str::len) + key.map_or(0, str::len) + query.len());
        path.push('/');
        let virtual_host = match (self.addressing, bucket) {
            (UpstreamAddressing::Virtual, Some(b)) if !b.contains('.') || self.scheme == http::uri::Scheme::HTTP => {
                Some(b)
            }
            (_, Some(b)) => {
                path.push_str(b);
                path.push('/');
                None
            }
            (_, None) => None,
        };
        let authority = match (virtual_host, learned) {
            (None, None) => self.authority.clone(),
            (virtual_host, learned) => {
                let host = self.host_in(learned.as_deref());
                let host = match virtual_host {
                    Some(b) => format!("{b}.{host}"),
                    None => host.into_owned(),
                };
                authority(&host, self.port)?
            }
        };
        if let Some(k) = key {
            crate::s3_request::push_encoded_key(&mut path, k);
        } else if bucket.is_some() && path.len() > 1 && self.addressing == UpstreamAddressing::Path {
            // `/bucket/` -> `/bucket`: how SDKs address a bucket.
            path.pop();
        }
        if !query.is_empty() {
            path.push('?');
            path.push_str(query);
        }
        let mut parts = http::uri::Parts::default();
        parts.scheme = Some(self.scheme.clone());
        parts.authority = Some(authority);
        parts.path_and_query =
            Some(path.try_into().map_err(|e: http::uri::InvalidUri| UpstreamError::Uri(e.to_string()))?);
        http::Uri::from_parts(parts).map_err(|e| UpstreamError::Uri(e.to_string()))
    }

    /// The Host header for `uri`, when it goes to the configured authority (path-style, no
    /// learned region): the value [`crate::sigv4::host_from_uri`] gives, made once.
    pub fn host_header(&self, uri: &http::Uri) -> Option<http::HeaderValue> {
        (uri.authority() == Some(&self.authority) && uri.scheme() == Some(&self.scheme))
            .then(|| self.host_header.clone())
            .flatten()
    }

    /// The region a redirect taught for this bucket, if any.
    fn learned_region(&self, bucket: Option<&str>) -> Option<String> {
        if !self.any_learned.load(std::sync::atomic::Ordering::Acquire) {
            return None;
        }
        bucket.and_then(|b| self.learned_regions.read().ok().and_then(|m| m.get(b).cloned()))
    }

    /// The region to sign a bucket's requests for: learned from a redirect, else configured.
    pub fn region_for(&self, bucket: Option<&str>) -> String {
        self.learned_region(bucket).unwrap_or_else(|| self.region.clone())
    }

    /// Remembers that `bucket` lives in `region` (the upstream said so). Returns whether this
    /// changed anything, i.e. whether a retry can succeed.
    pub fn learn_region(&self, bucket: &str, region: &str) -> bool {
        if region.is_empty() || !region.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            return false;
        }
        if self.region_for(Some(bucket)) == region {
            return false;
        }
        if let Ok(mut m) = self.learned_regions.write() {
            // Bounded: a flood of made-up bucket names must not grow memory without end.
            if m.len() >= 10_000 {
                m.clear();
            }
            m.insert(bucket.to_owned(), region.to_owned());
            self.any_learned.store(true, std::sync::atomic::Ordering::Release);
        }
        tracing::info!(bucket, region, "learned the bucket's region from the upstream");
        true
    }

    /// AWS endpoints name their region (`s3.eu-west-1.amazonaws.com`); a bucket in another
    /// region is reached through that region's name.
    /// The host to reach a bucket in `learned` (a region a redirect named) at, or the
    /// configured host.
    fn host_in(&self, learned: Option<&str>) -> std::borrow::Cow<'_, str> {
        let Some(region) = learned.filter(|r| *r != self.region) else {
            return std::borrow::Cow::Borrowed(&self.host);
        };
        let labels: Vec<&str> = self.host.split('.').collect();
        if labels.contains(&self.region.as_str()) {
            labels.iter().map(|l| if *l == self.region { region } else { l }).collect::<Vec<_>>().join(".").into()
        } else if self.host == "s3.amazonaws.com" {
            format!("s3.{region}.amazonaws.com").into()
        } else {
            std::borrow::Cow::Borrowed(&self.host)
        }
    }

    /// Credentials to sign with now; chain credentials are cached and refreshed before expiry.
    ///
    /// Static credentials are answered without awaiting anything. The chain's path is boxed:
    /// building the default chain is a future of several kilobytes, and inline it would make
    /// every request's future that large, copied in full at each of its await points
    /// (`docs/benchmarks.md`, "Where a small request's time goes").
    pub async fn credentials(&self) -> Result<Credentials, UpstreamError> {
        match &self.credentials {
            CredentialSource::Static(c) => Ok(c.clone()),
            CredentialSource::Chain { provider, cached } => Box::pin(self.chain_credentials(provider, cached)).await,
        }
    }

    async fn chain_credentials(
        &self,
        provider: &Mutex<Option<aws_config::default_provider::credentials::DefaultCredentialsChain>>,
        cached: &Mutex<Option<Credentials>>,
    ) -> Result<Credentials, UpstreamError> {
        let mut cached = cached.lock().await;
        if let Some(c) = cached.as_ref() {
            let fresh = c.expiry().is_none_or(|exp| exp > SystemTime::now() + REFRESH_BEFORE_EXPIRY);
            if fresh {
                return Ok(c.clone());
            }
        }
        let mut provider = provider.lock().await;
        if provider.is_none() {
            let region = aws_config::Region::new(self.region.clone());
            *provider = Some(
                aws_config::default_provider::credentials::DefaultCredentialsChain::builder()
                    .region(region)
                    .build()
                    .await,
            );
        }
        let chain = provider.as_ref().ok_or_else(|| UpstreamError::Credentials("no provider".into()))?;
        let creds = chain.provide_credentials().await.map_err(|e| UpstreamError::Credentials(e.to_string()))?;
        tracing::info!(expiry = ?creds.expiry(), "upstream credentials refreshed");
        *cached = Some(creds.clone());
        Ok(creds)
    }

    pub async fn send(&self, req: http::Request<Body>) -> Result<http::Response<Incoming>, pool::SendError> {
        self.pool.send(req).await
    }
}

/// One route: where a set of buckets goes.
pub struct Route {
    pub name: String,
    pattern: Option<String>,
    pub upstream: Upstream,
    pub alias: Option<String>,
    pub storage_class: Option<String>,
    /// The IAM role this route's requests reach the upstream as (see `proxy/send.rs`).
    pub upstream_role: Option<crate::config::UpstreamRole>,
}

impl Route {
    /// The upstream's name for a client-facing bucket.
    pub fn upstream_bucket<'a>(&'a self, bucket: &'a str) -> &'a str {
        self.alias.as_deref().unwrap_or(bucket)
    }
}

/// The configured routes, first match wins, and the default route.
pub struct Router {
    routes: Vec<Route>,
    default: Route,
}

impl Router {
    pub fn new(config: &crate::config::Config, metrics: &crate::metrics::Metrics) -> Result<Self, UpstreamError> {
        let with_metrics = |cfg| -> Result<Upstream, UpstreamError> {
            let mut u = Upstream::new(cfg)?;
            u.metrics = Some(metrics.clone());
            Ok(u)
        };
        let mut routes = Vec::new();
        for r in &config.routes {
            routes.push(Route {
                name: r.name.clone(),
                pattern: Some(r.bucket.clone()),
                upstream: with_metrics(&r.upstream)?,
                alias: r.alias.clone(),
                storage_class: r.storage_class.clone().or_else(|| config.storage_class.clone()),
                upstream_role: r.upstream_role.clone(),
            });
        }
        let default = Route {
            name: "default".into(),
            pattern: None,
            upstream: with_metrics(&config.upstream)?,
            alias: None,
            storage_class: config.storage_class.clone(),
            upstream_role: None,
        };
        Ok(Self { routes, default })
    }

    /// Every upstream a request may go to: the routes' and the default.
    pub fn upstreams(&self) -> impl Iterator<Item = &Upstream> {
        self.routes.iter().map(|r| &r.upstream).chain([&self.default.upstream])
    }

    pub fn route(&self, bucket: Option<&str>) -> &Route {
        let Some(bucket) = bucket else { return &self.default };
        self.routes
            .iter()
            .find(|r| r.pattern.as_deref().is_some_and(|p| crate::glob::matches(p, bucket)))
            .unwrap_or(&self.default)
    }
}

/// Native roots plus the operator's private CA, if any.
pub(crate) fn client_tls_config(ca_file: Option<&std::path::Path>) -> Result<rustls::ClientConfig, UpstreamError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    for cert in native.certs {
        let _ = roots.add(cert);
    }
    if let Some(path) = ca_file {
        let pem = std::fs::read(path).map_err(|e| UpstreamError::Ca(path.display().to_string(), e.to_string()))?;
        let mut n = 0;
        for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
            let cert = cert.map_err(|e| UpstreamError::Ca(path.display().to_string(), e.to_string()))?;
            roots.add(cert).map_err(|e| UpstreamError::Ca(path.display().to_string(), e.to_string()))?;
            n += 1;
        }
        if n == 0 {
            return Err(UpstreamError::Ca(path.display().to_string(), "no PEM certificate found".into()));
        }
    }
    let cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| UpstreamError::Tls(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(cfg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::credentials::Credential;

    fn upstream(url: &str, addressing: UpstreamAddressing) -> Upstream {
        Upstream::new(&UpstreamConfig {
            url: url.parse().unwrap(),
            region: "us-east-1".into(),
            addressing,
            ca_file: None,
            credentials: UpstreamCredentials::Static(Credential::new("A", "B")),
            connect_timeout: Duration::from_secs(1),
            idle_timeout: Duration::from_secs(1),
        })
        .unwrap()
    }

    #[test]
    fn path_style_puts_the_bucket_in_the_path() {
        let u = upstream("https://s3.eu-west-1.amazonaws.com", UpstreamAddressing::Path);
        assert_eq!(
            u.uri_for(Some("b"), Some("a b/c+d"), "x=1").unwrap().to_string(),
            "https://s3.eu-west-1.amazonaws.com/b/a%20b/c%2Bd?x=1"
        );
        assert_eq!(u.uri_for(Some("b"), None, "").unwrap().to_string(), "https://s3.eu-west-1.amazonaws.com/b");
        assert_eq!(u.uri_for(None, None, "").unwrap().to_string(), "https://s3.eu-west-1.amazonaws.com/");
    }

    #[test]
    fn virtual_style_puts_the_bucket_in_the_host_and_keeps_the_port() {
        let u = upstream("http://store.internal:9000", UpstreamAddressing::Virtual);
        assert_eq!(u.uri_for(Some("b"), Some("k//x"), "").unwrap().to_string(), "http://b.store.internal:9000/k//x");
        assert_eq!(
            u.uri_for(Some("b"), None, "list-type=2").unwrap().to_string(),
            "http://b.store.internal:9000/?list-type=2"
        );
    }

    #[test]
    fn globs_match_bucket_names() {
        assert!(crate::glob::matches("logs-*", "logs-2026"));
        assert!(crate::glob::matches("*", "anything"));
        assert!(crate::glob::matches("a?c", "abc"));
        assert!(!crate::glob::matches("a?c", "abbc"));
        assert!(crate::glob::matches("*-eu-*", "data-eu-west"));
        assert!(!crate::glob::matches("logs-*", "log"));
    }

    #[test]
    fn a_learned_region_changes_the_aws_host_and_the_signing_region() {
        let u = upstream("https://s3.us-east-1.amazonaws.com", UpstreamAddressing::Path);
        assert!(u.learn_region("far", "eu-west-1"));
        assert!(!u.learn_region("far", "eu-west-1"), "nothing new to learn");
        assert_eq!(u.region_for(Some("far")), "eu-west-1");
        assert_eq!(
            u.uri_for(Some("far"), Some("k"), "").unwrap().to_string(),
            "https://s3.eu-west-1.amazonaws.com/far/k"
        );
        assert_eq!(u.region_for(Some("near")), "us-east-1");
        assert_eq!(
            u.uri_for(Some("near"), Some("k"), "").unwrap().to_string(),
            "https://s3.us-east-1.amazonaws.com/near/k"
        );
    }

    /// A request takes the upstream pool of the serving thread it runs on. Seen from the
    /// upstream: requests made one after another, each after the previous one's connection went
    /// back to its pool, open one connection per serving thread and reuse it. One pool shared by
    /// every thread would have served them all on a single connection; no pool at all, on one
    /// connection each.
    #[tokio::test]
    async fn each_serving_thread_keeps_its_own_upstream_connections() {
        use std::sync::atomic::Ordering;
        use std::sync::Arc;

        use crate::listener::workers;

        let (url, accepted) = pool::tests::origin(None).await;
        let up = Arc::new(upstream(&url, UpstreamAddressing::Path));
        let threads = workers::count();
        let mut requests_on = vec![0usize; threads + 1];
        // Jobs go to the serving threads in turn, shared with other tests running at the same
        // time, so which thread a request lands on is read back rather than assumed.
        for _ in 0..100 * threads {
            let (tx, rx) = tokio::sync::oneshot::channel();
            let (up, url) = (up.clone(), url.clone());
            workers::spawn(Box::new(move || {
                Box::pin(async move {
                    let req = http::Request::get(format!("{url}/b/k")).body(crate::body::empty()).expect("request");
                    let body = match up.send(req).await {
                        Ok(resp) => http_body_util::BodyExt::collect(resp.into_body()).await.ok().map(|b| b.to_bytes()),
                        Err(_) => None,
                    };
                    let _ = tx.send((workers::index(), body));
                })
            }));
            let (index, body) = rx.await.expect("the job ran");
            assert_eq!(body.as_deref(), Some(&b"ok"[..]), "the upstream answered on thread {index}");
            requests_on[index] += 1;
            // Time for the finished connection to go back to its thread's pool.
            tokio::time::sleep(Duration::from_millis(20)).await;
            if requests_on[1..].iter().all(|&n| n >= 3) {
                break;
            }
        }
        assert!(requests_on[1..].iter().all(|&n| n >= 3), "every serving thread made requests: {requests_on:?}");
        assert_eq!(
            accepted.load(Ordering::SeqCst),
            threads,
            "one upstream connection per serving thread, each reused ({requests_on:?} requests by thread)"
        );
    }

    #[test]
    fn the_host_header_made_once_is_the_one_the_signer_would_make() {
        for url in ["https://s3.eu-west-1.amazonaws.com", "https://s3.example:443", "http://store.internal:9000"] {
            let u = upstream(url, UpstreamAddressing::Path);
            let uri = u.uri_for(Some("b"), Some("k"), "").unwrap();
            assert_eq!(u.host_header(&uri), crate::sigv4::host_from_uri(&uri), "{url}");
            assert!(u.host_header(&uri).is_some());
        }
        // Another authority (a virtual-hosted bucket) gets no cached header: the signer makes it.
        let u = upstream("http://store.internal:9000", UpstreamAddressing::Virtual);
        let uri = u.uri_for(Some("b"), Some("k"), "").unwrap();
        assert_eq!(u.host_header(&uri), None);
    }

    #[test]
    fn dotted_buckets_stay_path_style_over_https() {
        // A wildcard certificate for *.s3.amazonaws.com does not cover a.b.s3.amazonaws.com.
        let u = upstream("https://s3.amazonaws.com", UpstreamAddressing::Virtual);
        assert_eq!(u.uri_for(Some("a.b"), Some("k"), "").unwrap().to_string(), "https://s3.amazonaws.com/a.b/k");
    }
}
