//! The in-memory implementation: the executable spec of the contract and the embedded
//! default for single-instance deployments and tests.
//!
//! A [`MemoryKeyspace`] plays the part of one Redis server: it holds physical keys
//! (`{prefix}secondary:{key}`) with millisecond expiries read from a [`Clock`], expired
//! exactly when Redis would expire them (`now > expires_at`). [`MemoryStorage`] is a
//! store over a keyspace, the way `ServerStorage` is a store over a connection, so
//! several prefixes can share one keyspace and be checked for isolation.

mod clock;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

pub use clock::{Clock, ManualClock, SystemClock};

use crate::error::KvResult;
use crate::keys::Namespace;
use crate::storage::{check_value, SecondaryStorage, StorageOptions};
use crate::ttl::Expiry;

#[derive(Debug, Clone)]
struct Entry {
    value: Bytes,
    /// Absolute expiry in ms since the epoch; `None` = no expiry.
    expires_at: Option<u64>,
}

#[derive(Debug, Default)]
struct Keys {
    map: HashMap<Vec<u8>, Entry>,
    writes_since_sweep: usize,
    len_after_sweep: usize,
}

/// A shared in-memory keyspace: the memory counterpart of one Redis server. Clones share
/// the same keys.
#[derive(Debug, Clone)]
pub struct MemoryKeyspace {
    keys: Arc<Mutex<Keys>>,
    clock: Arc<dyn Clock>,
}

impl Default for MemoryKeyspace {
    fn default() -> Self {
        Self::new()
    }
}

/// What the keyspace holds under one physical key: what a raw `GET` + `PTTL` would show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawEntry {
    /// The stored bytes.
    pub value: Bytes,
    /// Milliseconds left before expiry, or `None` when the key has no expiry.
    pub pttl_ms: Option<u64>,
}

impl MemoryKeyspace {
    /// An empty keyspace on the system clock.
    pub fn new() -> Self {
        Self::with_clock(Arc::new(SystemClock))
    }

    /// An empty keyspace on `clock`.
    pub fn with_clock(clock: Arc<dyn Clock>) -> Self {
        MemoryKeyspace {
            keys: Arc::new(Mutex::new(Keys::default())),
            clock,
        }
    }

    fn lock(&self) -> (MutexGuard<'_, Keys>, u64) {
        // A panic while holding the lock cannot leave an entry half-written (every
        // mutation is a single map operation), so a poisoned lock is safe to reuse.
        let guard = self.keys.lock().unwrap_or_else(|p| p.into_inner());
        (guard, self.clock.now_ms())
    }

    /// The live entry under a physical key, like a raw `GET` and `PTTL` on a server.
    pub fn inspect(&self, physical: &[u8]) -> Option<RawEntry> {
        let (mut keys, now) = self.lock();
        live(&mut keys, physical, now).map(|e| RawEntry {
            value: e.value.clone(),
            pttl_ms: e.expires_at.map(|at| at - now),
        })
    }

    /// Writes a physical key directly, like a raw `SET` on a server (tests use it to
    /// place keys outside a store's namespace).
    pub fn insert_raw(&self, physical: &[u8], value: Bytes, ttl: Option<Duration>) {
        let (mut keys, now) = self.lock();
        let expires_at = ttl.map(|t| now + t.as_millis() as u64);
        keys.map
            .insert(physical.to_vec(), Entry { value, expires_at });
    }

    /// Every live physical key, in no particular order.
    pub fn physical_keys(&self) -> Vec<Vec<u8>> {
        let (mut keys, now) = self.lock();
        keys.map.retain(|_, e| !expired(e, now));
        keys.map.keys().cloned().collect()
    }
}

fn expired(e: &Entry, now: u64) -> bool {
    matches!(e.expires_at, Some(at) if now > at)
}

/// The live entry under `key`, removing it first if it has expired (lazy expiry, as Redis
/// does on access).
fn live<'a>(keys: &'a mut Keys, key: &[u8], now: u64) -> Option<&'a mut Entry> {
    if keys.map.get(key).is_some_and(|e| expired(e, now)) {
        keys.map.remove(key);
    }
    keys.map.get_mut(key)
}

impl Keys {
    /// Stores an entry. After as many writes as there were keys at the last sweep (at
    /// least 1024), sweeps expired keys, so keys never read again do not accumulate; the
    /// sweep's cost is amortised over those writes (O(1) each).
    fn store(&mut self, key: Vec<u8>, entry: Entry, now: u64) {
        self.map.insert(key, entry);
        self.writes_since_sweep += 1;
        if self.writes_since_sweep > self.len_after_sweep.max(1024) {
            self.map.retain(|_, e| !expired(e, now));
            self.writes_since_sweep = 0;
            self.len_after_sweep = self.map.len();
        }
    }
}

/// Secondary storage in memory, with the same semantics as the Redis backends.
#[derive(Debug, Clone)]
pub struct MemoryStorage {
    keyspace: MemoryKeyspace,
    options: StorageOptions,
}

impl Default for MemoryStorage {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryStorage {
    /// A store with default options on its own keyspace and the system clock.
    pub fn new() -> Self {
        Self::with_keyspace(MemoryKeyspace::new(), StorageOptions::default())
    }

    /// A store over a (possibly shared) keyspace.
    pub fn with_keyspace(keyspace: MemoryKeyspace, options: StorageOptions) -> Self {
        MemoryStorage { keyspace, options }
    }

    /// The keyspace, for inspection.
    pub fn keyspace(&self) -> &MemoryKeyspace {
        &self.keyspace
    }

    fn key(&self, key: &str) -> KvResult<Vec<u8>> {
        self.options.codec.key(Namespace::Secondary, key)
    }

    fn namespace_keys(&self, keys: &mut Keys, now: u64) -> Vec<Vec<u8>> {
        let ns = self.options.codec.namespace(Namespace::Secondary);
        keys.map
            .iter()
            .filter(|(k, e)| k.starts_with(ns.as_bytes()) && !expired(e, now))
            .map(|(k, _)| k.clone())
            .collect()
    }
}

fn entry(value: Bytes, expiry: Expiry, now: u64) -> Entry {
    let expires_at = match expiry {
        Expiry::AfterMs(ms) => Some(now + ms),
        _ => None,
    };
    Entry { value, expires_at }
}

#[async_trait]
impl SecondaryStorage for MemoryStorage {
    async fn get(&self, key: &str) -> KvResult<Option<Bytes>> {
        let key = self.key(key)?;
        let (mut keys, now) = self.keyspace.lock();
        Ok(live(&mut keys, &key, now).map(|e| e.value.clone()))
    }

    async fn set(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> KvResult<()> {
        check_value(key, &value)?;
        let expiry = Expiry::from_ttl(ttl)?;
        let key = self.key(key)?;
        let (mut keys, now) = self.keyspace.lock();
        match expiry {
            Expiry::Immediately => {
                keys.map.remove(&key);
            }
            _ => keys.store(key, entry(value, expiry, now), now),
        }
        Ok(())
    }

    async fn set_keep_ttl(&self, key: &str, value: Bytes) -> KvResult<()> {
        check_value(key, &value)?;
        let key = self.key(key)?;
        let (mut keys, now) = self.keyspace.lock();
        let expires_at = live(&mut keys, &key, now).and_then(|e| e.expires_at);
        keys.store(key, Entry { value, expires_at }, now);
        Ok(())
    }

    async fn delete(&self, key: &str) -> KvResult<bool> {
        let key = self.key(key)?;
        let (mut keys, now) = self.keyspace.lock();
        let existed = live(&mut keys, &key, now).is_some();
        keys.map.remove(&key);
        Ok(existed)
    }

    async fn set_if_not_exists(
        &self,
        key: &str,
        value: Bytes,
        ttl: Option<Duration>,
    ) -> KvResult<bool> {
        check_value(key, &value)?;
        let expiry = Expiry::from_ttl(ttl)?;
        let key = self.key(key)?;
        if expiry == Expiry::Immediately {
            return Ok(false);
        }
        let (mut keys, now) = self.keyspace.lock();
        if live(&mut keys, &key, now).is_some() {
            return Ok(false);
        }
        keys.store(key, entry(value, expiry, now), now);
        Ok(true)
    }

    async fn take(&self, key: &str) -> KvResult<Option<Bytes>> {
        let key = self.key(key)?;
        let (mut keys, now) = self.keyspace.lock();
        let value = live(&mut keys, &key, now).map(|e| e.value.clone());
        keys.map.remove(&key);
        Ok(value)
    }

    async fn compare_and_set(
        &self,
        key: &str,
        expected: Option<&[u8]>,
        value: Bytes,
        ttl: Option<Duration>,
    ) -> KvResult<bool> {
        check_value(key, &value)?;
        let expiry = Expiry::from_ttl(ttl)?;
        let key = self.key(key)?;
        let (mut keys, now) = self.keyspace.lock();
        let current = live(&mut keys, &key, now).map(|e| e.value.clone());
        if current.as_deref() != expected {
            return Ok(false);
        }
        match expiry {
            Expiry::Immediately => {
                keys.map.remove(&key);
            }
            _ => keys.store(key, entry(value, expiry, now), now),
        }
        Ok(true)
    }

    async fn delete_if_value(&self, key: &str, expected: &[u8]) -> KvResult<bool> {
        let key = self.key(key)?;
        let (mut keys, now) = self.keyspace.lock();
        let matches = live(&mut keys, &key, now).is_some_and(|e| e.value[..] == *expected);
        if matches {
            keys.map.remove(&key);
        }
        Ok(matches)
    }

    async fn get_many(&self, keys_in: &[&str]) -> KvResult<Vec<Option<Bytes>>> {
        let physical = keys_in
            .iter()
            .map(|k| self.key(k))
            .collect::<KvResult<Vec<_>>>()?;
        let (mut keys, now) = self.keyspace.lock();
        Ok(physical
            .iter()
            .map(|k| live(&mut keys, k, now).map(|e| e.value.clone()))
            .collect())
    }

    async fn delete_many(&self, keys_in: &[&str]) -> KvResult<u64> {
        let physical = keys_in
            .iter()
            .map(|k| self.key(k))
            .collect::<KvResult<Vec<_>>>()?;
        let (mut keys, now) = self.keyspace.lock();
        let mut deleted = 0;
        for k in &physical {
            if live(&mut keys, k, now).is_some() {
                keys.map.remove(k);
                deleted += 1;
            }
        }
        Ok(deleted)
    }

    async fn list_keys(&self) -> KvResult<Vec<String>> {
        let (mut keys, now) = self.keyspace.lock();
        let codec = &self.options.codec;
        Ok(self
            .namespace_keys(&mut keys, now)
            .iter()
            .filter_map(|k| codec.logical(Namespace::Secondary, k))
            .filter_map(|l| std::str::from_utf8(l).ok().map(str::to_owned))
            .collect())
    }

    async fn clear(&self) -> KvResult<u64> {
        let (mut keys, now) = self.keyspace.lock();
        let doomed = self.namespace_keys(&mut keys, now);
        for k in &doomed {
            keys.map.remove(k);
        }
        Ok(doomed.len() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store_at(start: u64) -> (MemoryStorage, ManualClock) {
        let clock = ManualClock::new(start);
        let ks = MemoryKeyspace::with_clock(Arc::new(clock.clone()));
        (
            MemoryStorage::with_keyspace(ks, StorageOptions::default()),
            clock,
        )
    }

    #[tokio::test]
    async fn expiry_follows_redis_boundary() {
        let (s, clock) = store_at(1_000);
        s.set("k", "v".into(), Some(Duration::from_millis(100)))
            .await
            .unwrap();
        let raw = s.keyspace().inspect(b"rustauth:secondary:k").unwrap();
        assert_eq!(raw.pttl_ms, Some(100));
        clock.advance(Duration::from_millis(100));
        assert_eq!(
            s.get("k").await.unwrap().as_deref(),
            Some(&b"v"[..]),
            "alive at 0 ms left"
        );
        clock.advance(Duration::from_millis(1));
        assert_eq!(s.get("k").await.unwrap(), None);
        assert!(s.keyspace().inspect(b"rustauth:secondary:k").is_none());
    }

    #[tokio::test]
    async fn keep_ttl_keeps_and_plain_set_drops() {
        let (s, clock) = store_at(0);
        s.set("k", "a".into(), Some(Duration::from_secs(10)))
            .await
            .unwrap();
        clock.advance(Duration::from_secs(4));
        s.set_keep_ttl("k", "b".into()).await.unwrap();
        let raw = s.keyspace().inspect(b"rustauth:secondary:k").unwrap();
        assert_eq!((raw.value.as_ref(), raw.pttl_ms), (&b"b"[..], Some(6000)));
        s.set("k", "c".into(), None).await.unwrap();
        assert_eq!(
            s.keyspace()
                .inspect(b"rustauth:secondary:k")
                .unwrap()
                .pttl_ms,
            None
        );
    }

    #[tokio::test]
    async fn sweep_removes_expired_keys_never_read_again() {
        let (s, clock) = store_at(0);
        for i in 0..2000 {
            s.set(
                &format!("old{i}"),
                "v".into(),
                Some(Duration::from_millis(1)),
            )
            .await
            .unwrap();
        }
        clock.advance(Duration::from_millis(5));
        for i in 0..2100 {
            s.set(&format!("new{i}"), "v".into(), None).await.unwrap();
        }
        let (keys, _) = s.keyspace().lock();
        assert!(
            keys.map.len() < 4000,
            "expired keys were swept: {}",
            keys.map.len()
        );
    }
}
