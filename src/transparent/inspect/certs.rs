//! Inspect mode's certificates: one per server name, issued on first use by the enterprise CA
//! that clients already trust (`--inspect-ca-cert`, `--inspect-ca-key`), and kept in a bounded
//! cache so a client cannot make s3gate hold one for every name it can think of (the names are
//! the allow list's in any case).

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use rcgen::{CertificateParams, KeyPair};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// Certificates kept; past it the cache starts over (issuing one takes a millisecond or two).
const CACHE: usize = 1024;
/// How long an issued certificate is valid: past any connection, short if one leaks.
const VALIDITY: time::Duration = time::Duration::days(7);

/// The issuing CA and its cache.
pub struct Issuer {
    ca: rcgen::Certificate,
    key: KeyPair,
    provider: Arc<rustls::crypto::CryptoProvider>,
    cache: Mutex<HashMap<String, Arc<CertifiedKey>>>,
}

impl std::fmt::Debug for Issuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issuer").finish_non_exhaustive()
    }
}

impl Issuer {
    /// Reads the CA certificate and key (PEM). The CA is rebuilt from its own fields and key,
    /// so what it signs names the same subject and key identifier as the certificate clients
    /// trust.
    pub fn load(cert: &Path, key: &Path) -> Result<Issuer, String> {
        let read = |p: &Path| std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()));
        refuse_readable_by_others(key)?;
        let key = KeyPair::from_pem(&read(key)?).map_err(|e| format!("inspect CA key: {e}"))?;
        let params =
            CertificateParams::from_ca_cert_pem(&read(cert)?).map_err(|e| format!("inspect CA certificate: {e}"))?;
        let ca = params.self_signed(&key).map_err(|e| format!("inspect CA: {e}"))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        Ok(Issuer { ca, key, provider, cache: Mutex::new(HashMap::new()) })
    }

    /// The certificate for `name`, from the cache or issued now.
    pub fn certificate(&self, name: &str) -> Result<Arc<CertifiedKey>, String> {
        if let Some(found) = self.lock().get(name) {
            return Ok(found.clone());
        }
        let issued = Arc::new(self.issue(name)?);
        let mut cache = self.lock();
        if cache.len() >= CACHE {
            cache.clear();
        }
        cache.insert(name.to_owned(), issued.clone());
        Ok(issued)
    }

    fn issue(&self, name: &str) -> Result<CertifiedKey, String> {
        let key = KeyPair::generate().map_err(|e| e.to_string())?;
        let mut params = CertificateParams::new(vec![name.to_owned()]).map_err(|e| e.to_string())?;
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::hours(1);
        params.not_after = now + VALIDITY;
        params.distinguished_name.push(rcgen::DnType::CommonName, name);
        let cert = params.signed_by(&key, &self.ca, &self.key).map_err(|e| e.to_string())?;
        let der = rustls::pki_types::PrivateKeyDer::try_from(key.serialize_der()).map_err(|e| e.to_string())?;
        let signing = self.provider.key_provider.load_private_key(der).map_err(|e| e.to_string())?;
        Ok(CertifiedKey::new(vec![cert.der().clone()], signing))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<CertifiedKey>>> {
        self.cache.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    #[cfg(test)]
    pub fn cached(&self) -> usize {
        self.lock().len()
    }
}

/// The CA key signs certificates every client trusts: a copy others can read is refused.
fn refuse_readable_by_others(path: &Path) -> Result<(), String> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?.permissions().mode();
        if mode & 0o077 != 0 {
            return Err(format!("{}: readable by others (chmod 600)", path.display()));
        }
    }
    Ok(())
}

impl ResolvesServerCert for Issuer {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let name = hello.server_name()?;
        match self.certificate(name) {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::warn!(target: "s3gate::transparent", server_name = name, error = %e, "cannot issue a certificate");
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ca_files(dir: &Path, mode: u32) -> (std::path::PathBuf, std::path::PathBuf) {
        let key = KeyPair::generate().expect("key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca = params.self_signed(&key).expect("ca");
        let (c, k) = (dir.join("ca.pem"), dir.join("ca.key"));
        std::fs::write(&c, ca.pem()).expect("write");
        std::fs::write(&k, key.serialize_pem()).expect("write");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&k, std::fs::Permissions::from_mode(mode)).expect("chmod");
        }
        (c, k)
    }

    #[test]
    fn certificates_are_issued_once_per_name_and_cached() {
        let dir = tempfile::tempdir().expect("dir");
        let (c, k) = ca_files(dir.path(), 0o600);
        let issuer = Issuer::load(&c, &k).expect("loads");
        let a = issuer.certificate("a.s3.us-east-1.amazonaws.com").expect("issued");
        let again = issuer.certificate("a.s3.us-east-1.amazonaws.com").expect("cached");
        assert!(Arc::ptr_eq(&a, &again), "issued twice");
        issuer.certificate("s3.us-east-1.amazonaws.com").expect("issued");
        assert_eq!(issuer.cached(), 2);
    }

    #[cfg(unix)]
    #[test]
    fn a_ca_key_others_can_read_is_refused() {
        let dir = tempfile::tempdir().expect("dir");
        let (c, k) = ca_files(dir.path(), 0o644);
        let err = Issuer::load(&c, &k).expect_err("world-readable key");
        assert!(err.contains("readable by others"), "{err}");
    }
}
