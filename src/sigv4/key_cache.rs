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
use std::hash::{BuildHasher, BuildHasherDefault, Hasher, RandomState};
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

/// A key from [`KeyCache::find`], and whether it came from the cache.
pub struct Found {
    pub key: SigningKey,
    pub cached: bool,
}

/// Derived signing keys by (secret, date, region, service).
pub struct KeyCache {
    hasher: RandomState,
    entries: Mutex<HashMap<u64, Entry, BuildHasherDefault<Slot>>>,
}

/// The map's keys are already hashes (keyed, by [`KeyCache::slot`]): hashing them again, as a
/// plain `HashMap` would, was a second SipHash on every lookup.
#[derive(Default)]
struct Slot(u64);

impl Hasher for Slot {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `u64` keys are hashed here (`write_u64`); anything else is folded in.
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

impl Default for KeyCache {
    fn default() -> Self {
        Self { hasher: RandomState::new(), entries: Mutex::new(HashMap::default()) }
    }
}

impl KeyCache {
    /// The signing key for `secret` and `scope`, derived once and then reused. Only for scopes
    /// s3gate chose itself (upstream signing); a client's scope goes through [`Self::find`].
    pub fn get(&self, secret: &str, scope: &Scope) -> SigningKey {
        let found = self.find(secret, scope);
        if !found.cached {
            self.keep(secret, scope, &found.key);
        }
        found.key
    }

    /// The cached key, or one derived now and not kept. A client's credential scope is its own
    /// text (any region, any length) until its signature is checked: kept only then
    /// ([`Self::keep`]), a forged request cannot fill the cache with scopes of its choosing.
    pub fn find(&self, secret: &str, scope: &Scope) -> Found {
        if let Some(entry) = self.lock().get(&self.slot(secret, scope)) {
            if entry.matches(secret, scope) {
                return Found { key: entry.key.clone(), cached: true };
            }
        }
        Found { key: SigningKey::derive(secret, scope), cached: false }
    }

    /// Keeps a key for reuse: for a client's scope, once a signature made with it has matched.
    pub fn keep(&self, secret: &str, scope: &Scope, key: &SigningKey) {
        let slot = self.slot(secret, scope);
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
    }

    /// The process-random hasher keeps the table's layout from telling anything about the
    /// secrets; the entry's own comparison decides.
    fn slot(&self, secret: &str, scope: &Scope) -> u64 {
        self.hasher.hash_one((secret, &scope.date, &scope.region, &scope.service))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Entry, BuildHasherDefault<Slot>>> {
        // A panic while holding the lock cannot leave an entry half-written (inserts are whole
        // values), so a poisoned map is still a correct one.
        self.entries.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether a key for this secret and scope is kept.
    #[cfg(test)]
    pub(crate) fn holds(&self, secret: &str, scope: &Scope) -> bool {
        self.lock().get(&self.slot(secret, scope)).is_some_and(|e| e.matches(secret, scope))
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
    fn find_does_not_keep_what_it_derived() {
        let cache = KeyCache::default();
        let s = scope("20130524", &"x".repeat(60_000));
        let found = cache.find("secret", &s);
        assert!(!found.cached);
        assert_eq!(bytes(&found.key), bytes(&SigningKey::derive("secret", &s)));
        assert_eq!(cache.len(), 0, "an unverified scope is not kept");
        cache.keep("secret", &s, &found.key);
        assert!(cache.find("secret", &s).cached);
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
