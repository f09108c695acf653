//! TLS to clients (rustls): the server configuration from PEM files, and a handshake that
//! cannot hold a connection open forever.
//!
//! ALPN offers `h2` and `http/1.1`, so HTTP/2 clients get HTTP/2 over TLS without a second
//! round trip; the ring provider and the safe default protocol versions (TLS 1.2 and 1.3) are
//! what the upstream client uses too.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

use super::ListenError;

/// A client that has not finished its handshake by then is closed: a slow or silent client
/// would otherwise hold a connection's place before it ever sends a request.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Loads a PEM certificate chain and key into a rustls server config offering h2 and http/1.1.
pub fn acceptor(cert: &Path, key: &Path) -> Result<TlsAcceptor, ListenError> {
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
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ListenError::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key_der)
        .map_err(|e| ListenError::Tls(e.to_string()))?;
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
