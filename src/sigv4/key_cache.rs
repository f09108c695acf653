//! Signing keys kept for reuse: a key depends only on the secret, the date, the region and the
//! service, so every request a client signs on one day with one secret derives the same key.
//! Deriving it is four HMAC-SHA-256 rounds; on small requests, done for the client's signature
//! and again for the upstream's, that was a measurable share of the work.
//!
//! A key is as good as the secret for that day and scope, so the cache holds it as carefully as
//! the secret: [`SigningKey`] wipes itself on drop, which covers eviction and replacement. The
//! cache is bounded; when full it is emptied at once (a cold start for each credential costs one
//! derivation, which is what every request cost before).

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::Mutex;

use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use super::{Scope, SigningKey};

/// More distinct (secret, scope) pairs than any site has credentials times regions in a day.
const CAPACITY: usize = 4096;

/// One cached key with what it was derived from, so that a hash collision or a secret that
/// changed under the same access key id (a reload) never returns a wrong key.
struct Entry {
    secret: Zeroizing<String>,
    date: String,
    region: String,
    service: String,
    key: SigningKey,
}

impl Entry {
    fn matches(&self, secret: &str, scope: &Scope) -> bool {
        let same_secret: bool = self.secret.as_bytes().ct_eq(secret.as_bytes()).into();
        same_secret && self.date == scope.date && self.region == scope.region && self.service == scope.service
    }
}

/// Derived signing keys by (secret, date, region, service).
pub struct KeyCache {
    hasher: RandomState,
    entries: Mutex<HashMap<u64, Entry>>,
}

impl Default for KeyCache {
    fn default() -> Self {
        Self { hasher: RandomState::new(), entries: Mutex::new(HashMap::new()) }
    }
}

impl KeyCache {
    /// The signing key for `secret` and `scope`, derived once and then reused.
    pub fn get(&self, secret: &str, scope: &Scope) -> SigningKey {
        // The process-random hasher keeps the table's layout from telling anything about the
        // secrets; the entry's own comparison decides.
        let slot = self.hasher.hash_one((secret, &scope.date, &scope.region, &scope.service));
        if let Some(entry) = self.lock().get(&slot) {
            if entry.matches(secret, scope) {
                return entry.key.clone();
            }
        }
        let key = SigningKey::derive(secret, scope);
        let mut entries = self.lock();
        if entries.len() >= CAPACITY {
            entries.clear();
        }
        entries.insert(
            slot,
            Entry {
                secret: Zeroizing::new(secret.to_owned()),
                date: scope.date.clone(),
                region: scope.region.clone(),
                service: scope.service.clone(),
                key: key.clone(),
            },
        );
        key
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Entry>> {
        // A panic while holding the lock cannot leave an entry half-written (inserts are whole
        // values), so a poisoned map is still a correct one.
        self.entries.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().len()
    }
}

/// The process's one cache, shared by verification and upstream signing.
pub(crate) fn global() -> &'static KeyCache {
    static CACHE: std::sync::OnceLock<KeyCache> = std::sync::OnceLock::new();
    CACHE.get_or_init(KeyCache::default)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope(date: &str, region: &str) -> Scope {
        Scope { date: date.to_owned(), region: region.to_owned(), service: "s3".to_owned() }
    }

    fn bytes(key: &SigningKey) -> [u8; 32] {
        key.sign("probe")
    }

    #[test]
    fn a_cached_key_is_the_derived_key() {
        let cache = KeyCache::default();
        let s = scope("20130524", "us-east-1");
        let first = cache.get("secret", &s);
        let again = cache.get("secret", &s);
        assert_eq!(bytes(&first), bytes(&SigningKey::derive("secret", &s)));
        assert_eq!(bytes(&again), bytes(&first));
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn each_part_of_the_scope_and_the_secret_gives_its_own_key() {
        let cache = KeyCache::default();
        let base = scope("20130524", "us-east-1");
        let other_service = Scope { service: "sts".to_owned(), ..base.clone() };
        let cases = [
            ("secret", base.clone()),
            ("secret2", base.clone()),
            ("secret", scope("20130525", "us-east-1")),
            ("secret", scope("20130524", "eu-west-1")),
            ("secret", other_service),
        ];
        for (secret, s) in &cases {
            assert_eq!(bytes(&cache.get(secret, s)), bytes(&SigningKey::derive(secret, s)), "{secret} {s:?}");
        }
        assert_eq!(cache.len(), cases.len());
    }

    #[test]
    fn the_cache_stays_bounded() {
        let cache = KeyCache::default();
        for i in 0..CAPACITY + 10 {
            let s = scope("20130524", "us-east-1");
            let secret = format!("secret-{i}");
            assert_eq!(bytes(&cache.get(&secret, &s)), bytes(&SigningKey::derive(&secret, &s)));
        }
        assert!(cache.len() <= CAPACITY, "{} entries", cache.len());
    }
}
