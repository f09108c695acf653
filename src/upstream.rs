//! The upstream side: one pooled HTTP/1.1 client (rustls for HTTPS), where a bucket's requests
//! go, and the credentials they are signed with.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_credential_types::provider::ProvideCredentials;
use aws_credential_types::Credentials;
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tokio::sync::Mutex;

use crate::body::Body;
use crate::config::{UpstreamAddressing, UpstreamConfig, UpstreamCredentials};
use crate::s3_request::encode_key;

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
    client: Client<HttpsConnector<HttpConnector>, Body>,
    scheme: http::uri::Scheme,
    host: String,
    port: Option<u16>,
    pub region: String,
    addressing: UpstreamAddressing,
    credentials: CredentialSource,
}

enum CredentialSource {
    Static(Credentials),
    Chain {
        provider: Mutex<Option<aws_config::default_provider::credentials::DefaultCredentialsChain>>,
        cached: Mutex<Option<Credentials>>,
    },
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
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(Duration::from_secs(50))
            .pool_max_idle_per_host(256)
            .build(connector);
        let scheme = cfg.url.scheme().cloned().unwrap_or(http::uri::Scheme::HTTPS);
        let host = cfg.url.host().unwrap_or_default().to_owned();
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
            client,
            scheme,
            host,
            port: cfg.url.port_u16(),
            region: cfg.region.clone(),
            addressing: cfg.addressing,
            credentials,
        })
    }

    /// The upstream URI for a bucket and decoded key, with an already encoded query.
    pub fn uri_for(&self, bucket: Option<&str>, key: Option<&str>, query: &str) -> Result<http::Uri, UpstreamError> {
        let port = self.port.map(|p| format!(":{p}")).unwrap_or_default();
        let mut path = String::with_capacity(64);
        let authority = match (self.addressing, bucket) {
            (UpstreamAddressing::Virtual, Some(b)) if !b.contains('.') || self.scheme == http::uri::Scheme::HTTP => {
                path.push('/');
                format!("{b}.{}{port}", self.host)
            }
            (_, Some(b)) => {
                path.push('/');
                path.push_str(b);
                path.push('/');
                format!("{}{port}", self.host)
            }
            (_, None) => {
                path.push('/');
                format!("{}{port}", self.host)
            }
        };
        if let Some(k) = key {
            path.push_str(&encode_key(k));
        } else if bucket.is_some() && path.len() > 1 && self.addressing == UpstreamAddressing::Path {
            // `/bucket/` -> `/bucket`: how SDKs address a bucket.
            path.pop();
        }
        if !query.is_empty() {
            path.push('?');
            path.push_str(query);
        }
        http::Uri::builder()
            .scheme(self.scheme.clone())
            .authority(authority)
            .path_and_query(path)
            .build()
            .map_err(|e| UpstreamError::Uri(e.to_string()))
    }

    /// Credentials to sign with now; chain credentials are cached and refreshed before expiry.
    pub async fn credentials(&self) -> Result<Credentials, UpstreamError> {
        match &self.credentials {
            CredentialSource::Static(c) => Ok(c.clone()),
            CredentialSource::Chain { provider, cached } => {
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
        }
    }

    pub async fn send(
        &self,
        req: http::Request<Body>,
    ) -> Result<http::Response<Incoming>, hyper_util::client::legacy::Error> {
        self.client.request(req).await
    }
}

/// Native roots plus the operator's private CA, if any.
fn client_tls_config(ca_file: Option<&std::path::Path>) -> Result<rustls::ClientConfig, UpstreamError> {
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
    fn dotted_buckets_stay_path_style_over_https() {
        // A wildcard certificate for *.s3.amazonaws.com does not cover a.b.s3.amazonaws.com.
        let u = upstream("https://s3.amazonaws.com", UpstreamAddressing::Virtual);
        assert_eq!(u.uri_for(Some("a.b"), Some("k"), "").unwrap().to_string(), "https://s3.amazonaws.com/a.b/k");
    }
}
