//! Signing keys kept for reuse: a key depends only on the secret, the date, the region and the
//! service, so every request a client signs on one day with one secret derives the same key.
//! Deriving it is four HMAC-SHA-256 rounds; on small requests, done for the client's signature
//! and again for the upstream's, that was a measurable share of the work.
//!
//! A key is as good as the secret for that day and scope, so the cache holds it as carefully as
//! the secret: [`SigningKey`] wipes itself on drop, which covers eviction and replacement. The
//! cache is bounded; when full it is emptied at once (a cold start for each credential costs one
//! derivation, which is what every request cost before).

use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher, RandomState};
use std::sync::atomic::{AtomicU64, Ordering};
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
    scope: Scope,
    key: SigningKey,
}

impl Entry {
    fn new(secret: &str, scope: &Scope, key: &SigningKey) -> Self {
        Self { secret: Zeroizing::new(secret.to_owned()), scope: scope.clone(), key: key.clone() }
    }

    fn matches(&self, secret: &str, scope: &Scope) -> bool {
        let same_secret: bool = self.secret.as_bytes().ct_eq(secret.as_bytes()).into();
        same_secret && self.scope == *scope
    }
}

/// A key from [`KeyCache::find`], and whether it came from the cache.
pub struct Found {
    pub key: SigningKey,
    pub cached: bool,
}

/// Derived signing keys by (secret, date, region, service).
pub struct KeyCache {
    /// Tells this cache's entries in a thread's [`RECENT`] from another cache's (tests make
    /// their own).
    id: u64,
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
        static NEXT_ID: AtomicU64 = AtomicU64::new(0);
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        Self { id, hasher: RandomState::new(), entries: Mutex::new(HashMap::default()) }
    }
}

/// How many keys each thread keeps at hand.
const RECENT_PER_THREAD: usize = 4;

thread_local! {
    /// The keys this thread found in the cache last, by cache. A serving thread signs with a
    /// handful of keys (its clients' and the upstream's): comparing against these few costs a
    /// fraction of hashing the secret and scope and taking the cache's lock, twice a request.
    /// Only keys the cache holds come here, so a forged scope never does; each is as well kept
    /// as in the cache (wiped when replaced and when the thread ends).
    static RECENT: RefCell<Vec<(u64, Entry)>> = const { RefCell::new(Vec::new()) };
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
        if let Some(key) = self.recent(secret, scope) {
            return Found { key, cached: true };
        }
        let cached =
            self.lock().get(&self.slot(secret, scope)).filter(|e| e.matches(secret, scope)).map(|e| e.key.clone());
        match cached {
            Some(key) => {
                self.remember(secret, scope, &key);
                Found { key, cached: true }
            }
            None => Found { key: SigningKey::derive(secret, scope), cached: false },
        }
    }

    fn recent(&self, secret: &str, scope: &Scope) -> Option<SigningKey> {
        RECENT.with(|recent| {
            let recent = recent.try_borrow().ok()?;
            recent.iter().find(|(id, e)| *id == self.id && e.matches(secret, scope)).map(|(_, e)| e.key.clone())
        })
    }

    fn remember(&self, secret: &str, scope: &Scope, key: &SigningKey) {
        RECENT.with(|recent| {
            if let Ok(mut recent) = recent.try_borrow_mut() {
                if recent.len() >= RECENT_PER_THREAD {
                    recent.remove(0);
                }
                recent.push((self.id, Entry::new(secret, scope, key)));
            }
        });
    }

    /// Keeps a key for reuse: for a client's scope, once a signature made with it has matched.
    pub fn keep(&self, secret: &str, scope: &Scope, key: &SigningKey) {
        let slot = self.slot(secret, scope);
        let mut entries = self.lock();
        if entries.len() >= CAPACITY {
            entries.clear();
        }
        entries.insert(slot, Entry::new(secret, scope, key));
    }

    /// The process-random hasher keeps the table's layout from telling anything about the
    /// secrets; the entry's own comparison decides.
    fn slot(&self, secret: &str, scope: &Scope) -> u64 {
        self.hasher.hash_one((secret, scope.as_str()))
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
        Scope::new(date, region, "s3")
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
        let other_service = Scope::new("20130524", "us-east-1", "sts");
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
    fn a_threads_recent_keys_are_kept_keys_of_its_own_cache_only() {
        std::thread::spawn(|| {
            let cache = KeyCache::default();
            let s = scope("20130524", "us-east-1");
            // Derived for an unverified scope: not kept, so not at hand either.
            assert!(!cache.find("secret", &s).cached);
            assert!(!cache.find("secret", &s).cached);
            cache.keep("secret", &s, &SigningKey::derive("secret", &s));
            assert!(cache.find("secret", &s).cached, "from the cache, and now at hand");
            cache.lock().clear();
            let found = cache.find("secret", &s);
            assert!(found.cached, "at hand without the cache");
            assert_eq!(bytes(&found.key), bytes(&SigningKey::derive("secret", &s)));
            // Neither another secret, nor another scope, nor another cache's lookup matches it.
            assert!(!cache.find("secret2", &s).cached);
            assert!(!cache.find("secret", &scope("20130525", "us-east-1")).cached);
            assert!(!KeyCache::default().find("secret", &s).cached);
            // Bounded: after more keys than a thread holds, the first is gone from hand.
            for region in ["r1", "r2", "r3", "r4"] {
                let other = scope("20130524", region);
                cache.keep("secret", &other, &SigningKey::derive("secret", &other));
                assert!(cache.find("secret", &other).cached);
            }
            assert_eq!(RECENT.with(|r| r.borrow().len()), RECENT_PER_THREAD);
            assert!(!cache.find("secret", &s).cached, "pushed out, and the cache was emptied");
        })
        .join()
        .expect("thread");
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
