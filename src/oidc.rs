//! The identity providers whose ID tokens s3gate's STS accepts: discovery, their signing keys
//! (JWKS) fetched over HTTPS and cached, and token verification (`verify`).
//!
//! Keys are fetched when first needed, kept for an hour, and fetched again early when a token
//! names a key id the cached set lacks (the provider rotated its keys), at most once every
//! [`REFRESH_INTERVAL`] so that a stream of tokens with made-up key ids cannot make s3gate
//! hammer the provider.

pub mod verify;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use jsonwebtoken::jwk::Jwk;

use crate::config::OidcProvider;
pub use verify::{IdToken, TokenError};

/// How long a fetched key set is used before it is fetched again.
const KEYS_TTL: Duration = Duration::from_secs(3600);
/// The shortest time between two fetches prompted by an unknown key id.
pub const REFRESH_INTERVAL: Duration = Duration::from_secs(30);
/// Discovery documents and key sets are small; a provider that sends more is refused.
const MAX_DOCUMENT: usize = 1024 * 1024;
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a token could not be checked or was refused.
#[derive(Debug, Clone, thiserror::Error)]
pub enum OidcError {
    #[error("no identity provider is configured for issuer {0:?}")]
    UnknownIssuer(String),
    /// The provider's discovery document or keys could not be fetched: STS's
    /// `IDPCommunicationError`, which clients retry.
    #[error("could not reach the identity provider: {0}")]
    Unreachable(String),
    #[error(transparent)]
    Token(#[from] TokenError),
}

type HttpsClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

struct Provider {
    issuer: String,
    client: HttpsClient,
    /// Held across a fetch, so concurrent requests wait for one fetch instead of each making one.
    state: tokio::sync::Mutex<KeyState>,
}

#[derive(Default)]
struct KeyState {
    keys: Arc<Vec<Jwk>>,
    fetched: Option<Instant>,
}

/// Every configured provider, by issuer.
#[derive(Clone, Default)]
pub struct Providers {
    by_issuer: Arc<HashMap<String, Arc<Provider>>>,
}

impl Providers {
    pub fn new(providers: &[OidcProvider]) -> Result<Self, OidcError> {
        let mut by_issuer = HashMap::new();
        for p in providers {
            let tls = crate::upstream::client_tls_config(p.ca_file.as_deref())
                .map_err(|e| OidcError::Unreachable(e.to_string()))?;
            let connector =
                hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(tls).https_only().enable_http1().build();
            let client = Client::builder(hyper_util::rt::TokioExecutor::new()).build(connector);
            let provider = Provider { issuer: p.issuer.clone(), client, state: Default::default() };
            by_issuer.insert(p.issuer.clone(), Arc::new(provider));
        }
        Ok(Self { by_issuer: Arc::new(by_issuer) })
    }

    /// Verifies `token` as an ID token of `issuer`, at `now` (unix seconds).
    pub async fn verify(&self, issuer: &str, token: &str, now: i64) -> Result<IdToken, OidcError> {
        let provider = self.by_issuer.get(issuer).ok_or_else(|| OidcError::UnknownIssuer(issuer.to_owned()))?;
        // Refuse what can be refused without the keys, so a junk token costs no fetch.
        let (alg, kid) = verify::header(token)?;
        let keys = provider.keys(false).await?;
        match verify::verify(token, &keys, &provider.issuer, now) {
            Err(TokenError::UnknownKey) if verify::candidates(&keys, alg, kid.as_deref()).is_empty() => {
                // The provider may have rotated its keys since they were fetched.
                let keys = provider.keys(true).await?;
                Ok(verify::verify(token, &keys, &provider.issuer, now)?)
            }
            other => Ok(other?),
        }
    }
}

impl Provider {
    /// The cached keys, fetched first when stale, or with `unknown_kid` when the last fetch is
    /// older than [`REFRESH_INTERVAL`]. The lock is held only to read or fetch, not while a
    /// token is checked, so tokens are verified concurrently.
    async fn keys(&self, unknown_kid: bool) -> Result<Arc<Vec<Jwk>>, OidcError> {
        let mut state = self.state.lock().await;
        let age = state.fetched.map(|t| t.elapsed());
        let refetch = match age {
            None => true,
            Some(age) => age > KEYS_TTL || (unknown_kid && age >= REFRESH_INTERVAL),
        };
        if refetch {
            self.refresh(&mut state).await?;
        }
        Ok(state.keys.clone())
    }
    async fn refresh(&self, state: &mut KeyState) -> Result<(), OidcError> {
        let discovery_url = format!("{}/.well-known/openid-configuration", self.issuer.trim_end_matches('/'));
        let discovery = self.get_json::<Discovery>(&discovery_url).await?;
        // A discovery document for another issuer is a misconfiguration or an attack.
        if discovery.issuer != self.issuer {
            return Err(OidcError::Unreachable(format!("discovery names another issuer: {:?}", discovery.issuer)));
        }
        if !discovery.jwks_uri.starts_with("https://") {
            return Err(OidcError::Unreachable("jwks_uri is not an https:// URL".into()));
        }
        let doc = self.get(&discovery.jwks_uri).await?;
        state.keys = Arc::new(verify::parse_jwks(&doc).map_err(OidcError::Unreachable)?);
        state.fetched = Some(Instant::now());
        tracing::info!(issuer = %self.issuer, keys = state.keys.len(), "fetched the identity provider's keys");
        Ok(())
    }

    async fn get_json<T: serde::de::DeserializeOwned>(&self, url: &str) -> Result<T, OidcError> {
        let doc = self.get(url).await?;
        serde_json::from_slice(&doc).map_err(|e| OidcError::Unreachable(format!("{url}: {e}")))
    }

    async fn get(&self, url: &str) -> Result<Bytes, OidcError> {
        let fail = |why: String| OidcError::Unreachable(format!("{url}: {why}"));
        let uri: http::Uri = url.parse().map_err(|_| fail("not a URL".into()))?;
        let req = http::Request::get(uri).body(Full::new(Bytes::new())).map_err(|e| fail(e.to_string()))?;
        let fetch = async {
            let resp = self.client.request(req).await.map_err(|e| fail(e.to_string()))?;
            if !resp.status().is_success() {
                return Err(fail(format!("status {}", resp.status())));
            }
            let body = Limited::new(resp.into_body(), MAX_DOCUMENT).collect().await.map_err(|e| fail(e.to_string()))?;
            Ok(body.to_bytes())
        };
        tokio::time::timeout(FETCH_TIMEOUT, fetch).await.map_err(|_| fail("timed out".into()))?
    }
}

#[derive(serde::Deserialize)]
struct Discovery {
    issuer: String,
    jwks_uri: String,
}
