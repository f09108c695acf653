//! Client credentials that s3gate issues, and the secret newtype that keeps them out of logs.
//!
//! Secrets are wrapped so that a stray `{:?}` in a log line prints a placeholder, and so that
//! the bytes are wiped when the last copy is dropped.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use zeroize::Zeroizing;

use crate::policy::Policy;

/// A secret access key. `Debug` and `Display` never print it; the memory is zeroized on drop.
#[derive(Clone)]
pub struct SecretKey(Arc<Zeroizing<String>>);

impl SecretKey {
    pub fn new(secret: impl Into<String>) -> Self {
        Self(Arc::new(Zeroizing::new(secret.into())))
    }

    /// The secret itself: only for deriving signing keys, never for printing.
    pub fn expose(&self) -> &str {
        self.0.as_str()
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey(<redacted>)")
    }
}

impl fmt::Display for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// An access key id with its secret.
#[derive(Clone, Debug)]
pub struct Credential {
    pub access_key_id: String,
    pub secret: SecretKey,
}

impl Credential {
    pub fn new(access_key_id: impl Into<String>, secret: impl Into<String>) -> Self {
        Self { access_key_id: access_key_id.into(), secret: SecretKey::new(secret) }
    }

    /// Parses `AKID:SECRET`. The secret may itself contain `:`; only the first one splits.
    pub fn parse(pair: &str) -> Option<Self> {
        let (akid, secret) = pair.trim().split_once(':')?;
        if akid.is_empty() || secret.is_empty() {
            return None;
        }
        Some(Self::new(akid, secret))
    }
}

/// What s3gate knows about one client credential.
#[derive(Clone, Debug)]
struct Client {
    secret: SecretKey,
    /// `None` is full access: a credential without a policy may do anything the upstream
    /// credentials may.
    policy: Option<Arc<Policy>>,
}

/// The client credentials s3gate accepts, by access key id.
#[derive(Clone, Debug, Default)]
pub struct KeyStore {
    keys: HashMap<String, Client>,
}

impl KeyStore {
    pub fn new(credentials: impl IntoIterator<Item = Credential>) -> Self {
        let keys =
            credentials.into_iter().map(|c| (c.access_key_id, Client { secret: c.secret, policy: None })).collect();
        Self { keys }
    }

    /// Adds (or replaces) a credential with its policy.
    pub fn insert(&mut self, credential: Credential, policy: Option<Policy>) {
        let client = Client { secret: credential.secret, policy: policy.map(Arc::new) };
        self.keys.insert(credential.access_key_id, client);
    }

    pub fn secret(&self, access_key_id: &str) -> Option<SecretKey> {
        self.keys.get(access_key_id).map(|c| c.secret.clone())
    }

    /// The credential's policy; `None` when it has none (full access) or is unknown.
    pub fn policy(&self, access_key_id: &str) -> Option<Arc<Policy>> {
        self.keys.get(access_key_id).and_then(|c| c.policy.clone())
    }

    /// The credential itself, for minting presigned URLs signed with it.
    pub fn credential(&self, access_key_id: &str) -> Option<Credential> {
        self.keys
            .get(access_key_id)
            .map(|c| Credential { access_key_id: access_key_id.to_owned(), secret: c.secret.clone() })
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_never_print_the_secret() {
        let c = Credential::new("AKID", "very-secret-value");
        assert!(!format!("{c:?}").contains("very-secret-value"));
        assert!(!format!("{}", c.secret).contains("very-secret-value"));
        assert_eq!(c.secret.expose(), "very-secret-value");
    }

    #[test]
    fn parse_splits_on_first_colon_only() {
        let c = Credential::parse("AK:se:cret").expect("parses");
        assert_eq!(c.access_key_id, "AK");
        assert_eq!(c.secret.expose(), "se:cret");
        assert!(Credential::parse("nocolon").is_none());
        assert!(Credential::parse(":x").is_none());
        assert!(Credential::parse("x:").is_none());
    }

    #[test]
    fn store_looks_up_by_access_key_id() {
        let store = KeyStore::new([Credential::new("A", "1"), Credential::new("B", "2")]);
        assert_eq!(store.secret("B").map(|s| s.expose().to_owned()), Some("2".to_owned()));
        assert!(store.secret("C").is_none());
    }
}
