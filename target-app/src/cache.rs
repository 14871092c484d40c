//! An in-process cache for the catalogue: fresh entries for `cache_ttl`, and the last good
//! answer kept afterwards as a stale fallback for when the database fails.
//!
//! Hand-written (a mutex around a map) because the catalogue is small and fixed: entries are
//! only added for products the database returned, so the map cannot grow without bound, and
//! eviction would throw away exactly the fallback the `stale-cache` protection needs.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub struct Cache<K, V> {
    entries: Mutex<HashMap<K, (Instant, V)>>,
}

impl<K: Eq + Hash, V: Clone> Cache<K, V> {
    pub fn new() -> Self {
        Cache {
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// The entry for `key` if it is younger than `ttl`.
    pub fn fresh(&self, key: &K, ttl: Duration) -> Option<V> {
        let entries = self.lock();
        let (at, v) = entries.get(key)?;
        (at.elapsed() < ttl).then(|| v.clone())
    }

    /// The entry for `key`, however old.
    pub fn stale(&self, key: &K) -> Option<V> {
        self.lock().get(key).map(|(_, v)| v.clone())
    }

    pub fn put(&self, key: K, value: V) {
        self.lock().insert(key, (Instant::now(), value));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<K, (Instant, V)>> {
        // A map of plain values stays valid even if a holder panicked.
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl<K: Eq + Hash, V: Clone> Default for Cache<K, V> {
    fn default() -> Self {
        Cache::new()
    }
}
