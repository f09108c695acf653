//! A real OpenID Connect issuer for the tests: HTTPS on 127.0.0.1 with a throwaway CA, a
//! discovery document, a JWKS with one RSA and one EC key, and tokens signed with them (or
//! with a key it does not publish, for the refusals). It can rotate its keys, adding one to
//! its JWKS, and go down.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

use crate::support::throwaway_tls;

/// Which key signs a token.
#[derive(Clone, Copy, Debug)]
pub enum Signer {
    /// RS256 with the published RSA key (`kid` "rsa1").
    Rsa,
    /// ES256 with the published EC key (`kid` "ec1").
    Ec,
    /// ES256 with a key the JWKS does not hold (`kid` "stranger").
    Stranger,
    /// ES256 with the key the issuer publishes once it rotates (`kid` "ec2").
    Rotated,
}

pub struct Issuer {
    /// `https://localhost:<port>`: the `iss` of its tokens.
    pub url: String,
    /// The CA that signed its certificate, for s3gate's `ca_file`.
    pub ca_file: PathBuf,
    /// How many times its JWKS was fetched.
    pub jwks_fetches: Arc<AtomicUsize>,
    rsa: EncodingKey,
    ec: EncodingKey,
    stranger: EncodingKey,
    rotated: EncodingKey,
    /// The JWKS it serves.
    jwks: Arc<Mutex<String>>,
    keys: Vec<Value>,
    rotated_jwk: Value,
    /// Set when it is down: every request is answered 503, and no connection is accepted.
    down: Arc<AtomicBool>,
    _dir: tempfile::TempDir,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Issuer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Issuer {
    pub async fn start() -> Self {
        let (dir, ca_pem, cert, key) = throwaway_tls("localhost");
        let ca_file = dir.path().join("issuer-ca.pem");
        std::fs::write(&ca_file, ca_pem).expect("write CA");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("https://localhost:{}", listener.local_addr().expect("addr").port());

        let rsa_pem = include_str!("test-rsa-key.pem");
        let rsa = EncodingKey::from_rsa_der(&pem_body(rsa_pem));
        let (ec, ec_jwk) = ec_key("ec1");
        let (stranger, _) = ec_key("stranger");
        let (rotated, rotated_jwk) = ec_key("ec2");
        let rsa_jwk = json!({
            "kty": "RSA", "kid": "rsa1", "use": "sig", "alg": "RS256",
            "n": include_str!("test-rsa-key.n").trim(), "e": "AQAB",
        });
        // A symmetric key in the set must never be used to check a token.
        let oct = json!({"kty": "oct", "kid": "rsa1", "k": URL_SAFE_NO_PAD.encode(b"not a signing key")});
        let keys = vec![rsa_jwk, ec_jwk, oct];
        let jwks = Arc::new(Mutex::new(json!({ "keys": keys }).to_string()));
        let discovery = json!({
            "issuer": url, "jwks_uri": format!("{url}/jwks"),
            "id_token_signing_alg_values_supported": ["RS256", "ES256"],
        })
        .to_string();

        let tls = server_tls(&cert, &key);
        let jwks_fetches = Arc::new(AtomicUsize::new(0));
        let fetches = jwks_fetches.clone();
        let down = Arc::new(AtomicBool::new(false));
        let (served, is_down) = (jwks.clone(), down.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else { continue };
                let (tls, discovery, fetches) = (tls.clone(), discovery.clone(), fetches.clone());
                let (jwks, down) = (served.clone(), is_down.clone());
                tokio::spawn(async move {
                    let Ok(stream) = tls.accept(tcp).await else { return };
                    let svc = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                        let (status, body) = match req.uri().path() {
                            _ if down.load(Ordering::SeqCst) => (StatusCode::SERVICE_UNAVAILABLE, String::new()),
                            "/.well-known/openid-configuration" => (StatusCode::OK, discovery.clone()),
                            "/jwks" => {
                                fetches.fetch_add(1, Ordering::SeqCst);
                                (StatusCode::OK, jwks.lock().expect("lock").clone())
                            }
                            _ => (StatusCode::NOT_FOUND, String::new()),
                        };
                        let resp = Response::builder()
                            .status(status)
                            .header("content-type", "application/json")
                            .body(Full::new(Bytes::from(body)))
                            .expect("response");
                        async move { Ok::<_, std::convert::Infallible>(resp) }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Self { url, ca_file, jwks_fetches, rsa, ec, stranger, rotated, jwks, keys, rotated_jwk, down, _dir: dir, task }
    }

    /// Publishes a new key (`kid` "ec2", [`Signer::Rotated`]) beside the others, as a
    /// provider does before it starts signing with it.
    pub fn rotate(&self) {
        let mut keys = self.keys.clone();
        keys.push(self.rotated_jwk.clone());
        *self.jwks.lock().expect("lock") = json!({ "keys": keys }).to_string();
    }

    /// Down: connections it holds answer 503, new ones are refused.
    pub fn stop(&self) {
        self.down.store(true, Ordering::SeqCst);
        self.task.abort();
    }

    /// Claims of a good token: this issuer, `sub`, audience `s3gate`, valid for ten minutes.
    pub fn claims(&self, sub: &str) -> Value {
        let now = now();
        json!({"iss": self.url, "sub": sub, "aud": "s3gate", "iat": now, "nbf": now, "exp": now + 600})
    }

    pub fn token(&self, signer: Signer, claims: &Value) -> String {
        let (alg, kid, key) = match signer {
            Signer::Rsa => (Algorithm::RS256, "rsa1", &self.rsa),
            Signer::Ec => (Algorithm::ES256, "ec1", &self.ec),
            Signer::Stranger => (Algorithm::ES256, "stranger", &self.stranger),
            Signer::Rotated => (Algorithm::ES256, "ec2", &self.rotated),
        };
        let mut header = Header::new(alg);
        header.kid = Some(kid.to_owned());
        jsonwebtoken::encode(&header, claims, key).expect("sign token")
    }
}

pub fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// An ES256 key as jsonwebtoken signs with it, and its public JWK.
fn ec_key(kid: &str) -> (EncodingKey, Value) {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("ec key");
    let point = key.public_key_raw();
    assert_eq!((point.len(), point[0]), (65, 4), "an uncompressed P-256 point");
    let jwk = json!({
        "kty": "EC", "crv": "P-256", "kid": kid, "use": "sig", "alg": "ES256",
        "x": URL_SAFE_NO_PAD.encode(&point[1..33]), "y": URL_SAFE_NO_PAD.encode(&point[33..]),
    });
    (EncodingKey::from_ec_der(&key.serialize_der()), jwk)
}

/// The DER inside a PEM block.
fn pem_body(pem: &str) -> Vec<u8> {
    let b64: String = pem
        .lines()
        .skip_while(|l| !l.starts_with("-----BEGIN"))
        .skip(1)
        .take_while(|l| !l.starts_with("-----END"))
        .collect();
    STANDARD.decode(b64).expect("PEM base64")
}

fn server_tls(cert: &std::path::Path, key: &std::path::Path) -> tokio_rustls::TlsAcceptor {
    let certs = rustls_pemfile::certs(&mut std::fs::read(cert).expect("cert").as_slice())
        .collect::<Result<Vec<_>, _>>()
        .expect("certs");
    let key =
        rustls_pemfile::private_key(&mut std::fs::read(key).expect("key").as_slice()).expect("key").expect("a key");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .expect("server config");
    tokio_rustls::TlsAcceptor::from(Arc::new(config))
}
