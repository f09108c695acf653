//! The identity providers whose ID tokens s3gate's STS accepts: discovery, their signing keys
//! (JWKS) fetched over HTTPS and cached, and token verification (`verify`).
//!
//! Keys are fetched when first needed and kept for `jwks_cache_seconds` (an hour by default).
//! They are fetched again early when a token names a key id the cached set lacks (the provider
//! rotated its keys), and at most once every `jwks_min_refresh_seconds` (30 s) whatever tokens
//! arrive, so that a stream of tokens with made-up key ids cannot make s3gate hammer the
//! provider. Concurrent verifications share one fetch.
//!
//! An identity provider that goes down must not take every web identity with it: while fetching
//! fails, the last keys fetched are still used for the key ids they hold, for up to
//! `jwks_max_stale_seconds` (a day) past their freshness. A token naming a key id they lack
//! cannot be checked then, and is answered `IDPCommunicationError`, which clients retry.

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
    config: OidcProvider,
    client: HttpsClient,
    /// Shared with the provider of the same issuer in the configuration a reload replaces, so
    /// that a reload during an outage keeps the keys.
    cache: Arc<KeyCache>,
}

#[derive(Default)]
struct KeyCache {
    /// The keys and what became of the last fetch; held only to read or update, never across
    /// a fetch, so that verifications with usable keys never wait for one.
    state: std::sync::Mutex<KeyState>,
    /// Held across a fetch: one fetch at a time, and those who need its result wait for it.
    fetching: tokio::sync::Mutex<()>,
}

#[derive(Default)]
struct KeyState {
    keys: Arc<Vec<Jwk>>,
    /// When `keys` were fetched; `None`: never.
    fetched: Option<Instant>,
    /// When the last fetch ended, and why it failed (`None`: it succeeded).
    attempt: Option<(Instant, Option<String>)>,
    /// Counts fetches, so that one who waited for the lock knows whether a fetch ended meanwhile.
    generation: u64,
}

/// What the cache can do for a verification right now.
enum Cached {
    /// These keys are the ones to check the token with.
    Use(Arc<Vec<Jwk>>),
    /// The keys must be fetched (again) first.
    Fetch,
    /// Fetching failed too recently to try again, and no usable keys are left.
    Fail(OidcError),
}

/// Every configured provider, by issuer.
#[derive(Clone, Default)]
pub struct Providers {
    by_issuer: Arc<HashMap<String, Arc<Provider>>>,
}

impl Providers {
    /// `previous`: the providers of the configuration this one replaces; the key cache of an
    /// issuer in both carries over.
    pub fn new(providers: &[OidcProvider], previous: Option<&Providers>) -> Result<Self, OidcError> {
        let mut by_issuer = HashMap::new();
        for p in providers {
            let tls = crate::upstream::client_tls_config(p.ca_file.as_deref())
                .map_err(|e| OidcError::Unreachable(e.to_string()))?;
            let connector =
                hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(tls).https_only().enable_http1().build();
            let client = Client::builder(hyper_util::rt::TokioExecutor::new()).build(connector);
            let cache = previous.and_then(|old| old.by_issuer.get(&p.issuer)).map(|old| old.cache.clone());
            let provider = Provider { config: p.clone(), client, cache: cache.unwrap_or_default() };
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
        match verify::verify(token, &keys, &provider.config.issuer, now) {
            Err(TokenError::UnknownKey) if verify::candidates(&keys, alg, kid.as_deref()).is_empty() => {
                // The provider may have rotated its keys since they were fetched.
                let keys = provider.keys(true).await?;
                Ok(verify::verify(token, &keys, &provider.config.issuer, now)?)
            }
            other => Ok(other?),
        }
    }
}

impl Provider {
    /// Keys to check a token with: the cached ones while fresh, else fetched again, or with
    /// `unknown_kid` fetched again when the last fetch is older than `jwks_min_refresh`. When
    /// a fetch fails, keys within `jwks_max_stale` past their freshness are used for the key
    /// ids they hold; a token naming another cannot be checked.
    async fn keys(&self, unknown_kid: bool) -> Result<Arc<Vec<Jwk>>, OidcError> {
        let generation = match self.cached(unknown_kid, Instant::now()) {
            (Cached::Use(keys), _) => return Ok(keys),
            (Cached::Fail(e), _) => return Err(e),
            (Cached::Fetch, generation) => generation,
        };
        let flight = match self.cache.fetching.try_lock() {
            Ok(flight) => flight,
            Err(_) => {
                // A fetch is under way. Old keys that may still be used do for a known key id
                // rather than waiting out a provider that may be slow to fail.
                if let (false, Some(keys)) = (unknown_kid, self.stale_keys(Instant::now())) {
                    return Ok(keys);
                }
                self.cache.fetching.lock().await
            }
        };
        if self.state().generation != generation {
            // A fetch ended since the cache was asked: its result is the one this needed.
            drop(flight);
            return self.after_fetch(unknown_kid);
        }
        let fetched = self.fetch().await;
        let mut state = self.state();
        state.generation += 1;
        match fetched {
            Ok(keys) => {
                tracing::info!(issuer = %self.config.issuer, keys = keys.len(), "fetched the identity provider's keys");
                state.keys = Arc::new(keys);
                state.fetched = Some(Instant::now());
                state.attempt = Some((Instant::now(), None));
            }
            Err(e) => {
                tracing::warn!(issuer = %self.config.issuer, error = %e, "fetching the identity provider's keys failed");
                state.attempt = Some((Instant::now(), Some(e.to_string())));
            }
        }
        drop(state);
        drop(flight);
        self.after_fetch(unknown_kid)
    }

    /// The outcome for one who needed a fetch, once one has ended.
    fn after_fetch(&self, unknown_kid: bool) -> Result<Arc<Vec<Jwk>>, OidcError> {
        let now = Instant::now();
        let state = self.state();
        match &state.attempt {
            Some((_, None)) => Ok(state.keys.clone()),
            Some((_, Some(why))) => {
                let why = why.clone();
                drop(state);
                match self.stale_keys(now) {
                    Some(keys) if !unknown_kid => {
                        tracing::warn!(issuer = %self.config.issuer, "using the identity provider's last keys while it cannot be reached");
                        Ok(keys)
                    }
                    _ => Err(OidcError::Unreachable(why)),
                }
            }
            None => Err(OidcError::Unreachable("the keys were never fetched".into())),
        }
    }

    /// What the cache offers now, and the fetch generation it saw.
    fn cached(&self, unknown_kid: bool, now: Instant) -> (Cached, u64) {
        let state = self.state();
        let (c, generation) = (&self.config, state.generation);
        let fresh = state.fetched.is_some_and(|t| now.duration_since(t) <= c.jwks_cache);
        if fresh && !unknown_kid {
            return (Cached::Use(state.keys.clone()), generation);
        }
        let recent = state.attempt.as_ref().filter(|(at, _)| now.duration_since(*at) < c.jwks_min_refresh);
        let failed = match recent {
            None => return (Cached::Fetch, generation),
            // The keys were just fetched: an unknown key id is unknown to the provider too.
            Some((_, None)) => return (Cached::Use(state.keys.clone()), generation),
            Some((_, Some(why))) => why.clone(),
        };
        drop(state);
        match self.stale_keys(now) {
            Some(keys) if !unknown_kid => (Cached::Use(keys), generation),
            _ => (Cached::Fail(OidcError::Unreachable(failed)), generation),
        }
    }

    /// The last keys fetched, if they are fresh or within `jwks_max_stale` past it.
    fn stale_keys(&self, now: Instant) -> Option<Arc<Vec<Jwk>>> {
        let state = self.state();
        let limit = self.config.jwks_cache + self.config.jwks_max_stale;
        state.fetched.filter(|t| now.duration_since(*t) <= limit).map(|_| state.keys.clone())
    }

    fn state(&self) -> std::sync::MutexGuard<'_, KeyState> {
        self.cache.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Discovery, then the key set it names.
    async fn fetch(&self) -> Result<Vec<Jwk>, OidcError> {
        let issuer = &self.config.issuer;
        let discovery_url = format!("{}/.well-known/openid-configuration", issuer.trim_end_matches('/'));
        let discovery = self.get_json::<Discovery>(&discovery_url).await?;
        // A discovery document for another issuer is a misconfiguration or an attack.
        if &discovery.issuer != issuer {
            return Err(OidcError::Unreachable(format!("discovery names another issuer: {:?}", discovery.issuer)));
        }
        if !discovery.jwks_uri.starts_with("https://") {
            return Err(OidcError::Unreachable("jwks_uri is not an https:// URL".into()));
        }
        let doc = self.get(&discovery.jwks_uri).await?;
        verify::parse_jwks(&doc).map_err(OidcError::Unreachable)
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
