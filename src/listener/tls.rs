//! TLS to clients (rustls): the server configuration from PEM files, and a handshake that
//! cannot hold a connection open forever.
//!
//! ALPN offers `h2` and `http/1.1`, so HTTP/2 clients get HTTP/2 over TLS without a second
//! round trip; the ring provider and the safe default protocol versions (TLS 1.2 and 1.3) are
//! what the upstream client uses too.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

use super::ListenError;

/// A client that has not finished its handshake by then is closed: a slow or silent client
/// would otherwise hold a connection's place before it ever sends a request.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The certificate a TLS listener presents. A reload replaces it ([`Certificate::reload`]):
/// handshakes from then on present the new one, connections already open keep theirs, and
/// nothing restarts. That is how a certificate renewed on disk (cert-manager, certbot) is
/// taken up.
#[derive(Debug)]
pub struct Certificate(ArcSwap<CertifiedKey>);

impl Certificate {
    pub fn load(cert: &Path, key: &Path) -> Result<Self, ListenError> {
        Ok(Self(ArcSwap::new(read_certificate(cert, key)?)))
    }

    /// Presents `key` from the next handshake on (read it with [`read_certificate`]).
    pub fn replace(&self, key: Arc<CertifiedKey>) {
        self.0.store(key);
    }

    /// The DER of the leaf certificate presented now.
    pub fn leaf(&self) -> Option<Vec<u8>> {
        self.0.load().cert.first().map(|c| c.to_vec())
    }
}

impl ResolvesServerCert for Certificate {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.load_full())
    }
}

/// A PEM certificate chain and its key, checked to belong together.
pub fn read_certificate(cert: &Path, key: &Path) -> Result<Arc<CertifiedKey>, ListenError> {
    let in_file = |path: &Path, e: &dyn std::fmt::Display| ListenError::Tls(format!("{}: {e}", path.display()));
    let cert_pem = std::fs::read(cert).map_err(|e| in_file(cert, &e))?;
    let key_pem = std::fs::read(key).map_err(|e| in_file(key, &e))?;
    let certs = rustls_pemfile::certs(&mut cert_pem.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| in_file(cert, &e))?;
    if certs.is_empty() {
        return Err(in_file(cert, &"no certificate found"));
    }
    let key_der = rustls_pemfile::private_key(&mut key_pem.as_slice())
        .map_err(|e| in_file(key, &e))?
        .ok_or_else(|| in_file(key, &"no private key found"))?;
    let certified = CertifiedKey::from_der(certs, key_der, &provider())
        .map_err(|e| ListenError::Tls(format!("{} with {}: {e}", cert.display(), key.display())))?;
    Ok(Arc::new(certified))
}

fn provider() -> rustls::crypto::CryptoProvider {
    rustls::crypto::ring::default_provider()
}

/// Loads a PEM certificate chain and key into a rustls server config offering h2 and http/1.1.
pub fn acceptor(cert: &Path, key: &Path) -> Result<TlsAcceptor, ListenError> {
    reloadable_acceptor(Arc::new(Certificate::load(cert, key)?))
}

/// A server config offering h2 and http/1.1 that presents whatever `certificate` holds.
pub fn reloadable_acceptor(certificate: Arc<Certificate>) -> Result<TlsAcceptor, ListenError> {
    let mut cfg = rustls::ServerConfig::builder_with_provider(Arc::new(provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| ListenError::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_cert_resolver(certificate);
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(cfg)))
}

/// The server side of the handshake; `None` (logged at debug: scanners and clients that give
/// up are common) when it fails or takes longer than [`HANDSHAKE_TIMEOUT`].
pub async fn handshake(acceptor: &TlsAcceptor, stream: TcpStream) -> Option<TlsStream<TcpStream>> {
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
        Ok(Ok(tls)) => Some(tls),
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "TLS handshake failed");
            None
        }
        Err(_) => {
            tracing::debug!("TLS handshake timed out");
            None
        }
    }
}
