//! The in-memory implementation: the executable spec of the contract and the embedded
//! default for single-instance deployments and tests.
//!
//! A [`MemoryKeyspace`] plays the part of one Redis server: it holds physical keys
//! (`{prefix}secondary:{key}`) with millisecond expiries read from a [`Clock`], expired
//! exactly when Redis would expire them (`now > expires_at`). [`MemoryStorage`] is a
//! store over a keyspace, the way `ServerStorage` is a store over a connection, so
//! several prefixes can share one keyspace and be checked for isolation.

mod clock;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

pub use clock::{Clock, ManualClock, SystemClock};

use crate::error::{ErrorKind, KvError, KvResult};
use crate::storage::{check_value, increment_ttl_secs, SecondaryStorage, StorageOptions};
use crate::ttl::Expiry;

/// A stored value, of one of the Redis types rustauth-kv uses.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A string (`GET`/`SET`).
    String(Bytes),
    /// A hash (`HGET`/`HSET`).
    Hash(BTreeMap<Bytes, Bytes>),
    /// A sorted set: member to score (`ZADD`/`ZRANGE`).
    SortedSet(BTreeMap<Bytes, f64>),
}

impl Value {
    /// The name `TYPE` reports for this value.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::String(_) => "string",
            Value::Hash(_) => "hash",
            Value::SortedSet(_) => "zset",
        }
    }
}

#[derive(Debug, Clone)]
struct Entry {
    value: Value,
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

/// What the keyspace holds under one physical key: what a raw `TYPE`, `GET`/`HGETALL`
/// and `PTTL` would show.
#[derive(Debug, Clone, PartialEq)]
pub struct RawEntry {
    /// The stored value.
    pub value: Value,
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

    /// The keyspace's clock: the memory counterpart of the server's `TIME`.
    pub fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }

    fn lock(&self) -> (MutexGuard<'_, Keys>, u64) {
        // A panic while holding the lock cannot leave an entry half-written (every
        // mutation is a single map operation), so a poisoned lock is safe to reuse.
        let guard = self.keys.lock().unwrap_or_else(|p| p.into_inner());
        (guard, self.clock.now_ms())
    }

    /// Runs `f` atomically on the keyspace, at one instant: the memory counterpart of a
    /// Lua script. Every memory implementation of a scripted operation is written as one
    /// transaction, so it is atomic the way the script is.
    pub fn transaction<R>(&self, f: impl FnOnce(&mut Tx<'_>) -> R) -> R {
        let (mut keys, now) = self.lock();
        f(&mut Tx {
            keys: &mut keys,
            now,
        })
    }

    /// The live entry under a physical key, like a raw `TYPE`/`GET`/`PTTL` on a server.
    pub fn inspect(&self, physical: &[u8]) -> Option<RawEntry> {
        self.transaction(|tx| {
            let pttl_ms = tx.pttl(physical)?;
            tx.get(physical).map(|value| RawEntry {
                value: value.clone(),
                pttl_ms,
            })
        })
    }

    /// Writes a physical string key directly, like a raw `SET` on a server (tests use it
    /// to place keys outside a store's namespace).
    pub fn insert_raw(&self, physical: &[u8], value: Bytes, ttl: Option<Duration>) {
        self.transaction(|tx| {
            tx.set(
                physical.to_vec(),
                Value::String(value),
                ttl.map(|t| t.as_millis() as u64),
            )
        })
    }

    /// Every live physical key, in no particular order.
    pub fn physical_keys(&self) -> Vec<Vec<u8>> {
        self.transaction(|tx| tx.keys_with_prefix(b""))
    }
}

/// Atomic access to a [`MemoryKeyspace`] at one instant; see
/// [`MemoryKeyspace::transaction`]. Expired keys are invisible (and removed on access),
/// exactly as on a server.
pub struct Tx<'a> {
    keys: &'a mut Keys,
    now: u64,
}

impl Tx<'_> {
    /// The keyspace clock's reading for this transaction (ms since the epoch).
    pub fn now_ms(&self) -> u64 {
        self.now
    }

    fn live(&mut self, key: &[u8]) -> Option<&mut Entry> {
        let now = self.now;
        if self.keys.map.get(key).is_some_and(|e| expired(e, now)) {
            self.keys.map.remove(key);
        }
        self.keys.map.get_mut(key)
    }

    /// The live value under `key`.
    pub fn get(&mut self, key: &[u8]) -> Option<&Value> {
        self.live(key).map(|e| &e.value)
    }

    /// The live value under `key`, for changing in place (its expiry is kept).
    pub fn get_mut(&mut self, key: &[u8]) -> Option<&mut Value> {
        self.live(key).map(|e| &mut e.value)
    }

    /// `GET` as Redis answers it: the live string under `key`, `None` if absent, and a
    /// [`ErrorKind::Server`] `WRONGTYPE` error (what [`KvError::server_reply`] makes of
    /// the server's reply) if the key holds another type.
    pub fn get_checked(&mut self, key: &[u8]) -> KvResult<Option<Bytes>> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(b)) => Ok(Some(b.clone())),
            Some(_) => Err(wrong_type()),
        }
    }

    /// The live string under `key`; `None` if absent or not a string (what `MGET` answers).
    pub fn get_string(&mut self, key: &[u8]) -> Option<Bytes> {
        match self.get(key) {
            Some(Value::String(b)) => Some(b.clone()),
            _ => None,
        }
    }

    /// `PTTL`: `None` if the key is absent, `Some(None)` if it has no expiry, else the
    /// milliseconds left.
    pub fn pttl(&mut self, key: &[u8]) -> Option<Option<u64>> {
        let now = self.now;
        self.live(key)
            .map(|e| e.expires_at.map(|at| at.saturating_sub(now)))
    }

    /// `SET` (with `PX ttl_ms` when given): replaces the value and its expiry.
    pub fn set(&mut self, key: Vec<u8>, value: Value, ttl_ms: Option<u64>) {
        let expires_at = ttl_ms.map(|ms| self.now + ms);
        self.keys.store(key, Entry { value, expires_at }, self.now);
    }

    /// `SET ... KEEPTTL`: replaces the value, keeping the key's expiry (none if new).
    pub fn set_keep_ttl(&mut self, key: Vec<u8>, value: Value) {
        let expires_at = self.live(&key).and_then(|e| e.expires_at);
        self.keys.store(key, Entry { value, expires_at }, self.now);
    }

    /// `PEXPIRE key ms`: true when the key exists. `ms` of 0 deletes the key, as Redis does.
    pub fn pexpire(&mut self, key: &[u8], ms: u64) -> bool {
        if ms == 0 {
            return self.delete(key);
        }
        let at = self.now + ms;
        match self.live(key) {
            Some(e) => {
                e.expires_at = Some(at);
                true
            }
            None => false,
        }
    }

    /// `PERSIST key`: removes the expiry; true when the key had one.
    pub fn persist(&mut self, key: &[u8]) -> bool {
        self.live(key)
            .is_some_and(|e| e.expires_at.take().is_some())
    }

    /// `DEL key`: true when the key existed.
    pub fn delete(&mut self, key: &[u8]) -> bool {
        let existed = self.live(key).is_some();
        self.keys.map.remove(key);
        existed
    }

    /// `PEXPIREAT key at_ms`: true when the key exists. A time not after now deletes the
    /// key, as Redis does (`at_ms <= now`).
    pub fn pexpire_at(&mut self, key: &[u8], at_ms: u64) -> bool {
        if at_ms <= self.now {
            return self.delete(key);
        }
        match self.live(key) {
            Some(e) => {
                e.expires_at = Some(at_ms);
                true
            }
            None => false,
        }
    }

    /// Every live key starting with `prefix`.
    pub fn keys_with_prefix(&mut self, prefix: &[u8]) -> Vec<Vec<u8>> {
        let now = self.now;
        self.keys
            .map
            .iter()
            .filter(|(k, e)| k.starts_with(prefix) && !expired(e, now))
            .map(|(k, _)| k.clone())
            .collect()
    }
}

/// The error reply of Redis for a command on a key of another type.
pub(crate) const WRONGTYPE: &str =
    "WRONGTYPE Operation against a key holding the wrong kind of value";

/// [`WRONGTYPE`] as a backend reports it: [`KvError::server_reply`] of the reply.
pub(crate) fn wrong_type() -> KvError {
    KvError::server_reply(WRONGTYPE, None)
}

/// The error reply of `INCR` on a string that is not a decimal integer in `i64` range.
pub(crate) const NOT_AN_INTEGER: &str = "ERR value is not an integer or out of range";

/// The error reply of `INCR` past `i64::MAX`.
pub(crate) const INCR_OVERFLOW: &str = "ERR increment or decrement would overflow";

/// An error raised inside the memory counterpart of a script, as [`crate::wire::eval`]
/// reports a script's error: [`ErrorKind::Script`], `(script name)` appended.
pub(crate) fn in_script(e: KvError, script: &str) -> KvError {
    match e.kind() {
        ErrorKind::Server => KvError::with_source(
            ErrorKind::Script,
            format!("{} (script {script})", e.message()),
            e,
        ),
        _ => e,
    }
}

fn expired(e: &Entry, now: u64) -> bool {
    matches!(e.expires_at, Some(at) if now > at)
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
        self.options.key(key)
    }

    fn keys(&self, keys: &[&str]) -> KvResult<Vec<Vec<u8>>> {
        keys.iter().map(|k| self.key(k)).collect()
    }
}

/// A write under the TTL table: delete for "already expired", else `SET` (with `PX`).
fn write(tx: &mut Tx<'_>, key: Vec<u8>, value: Bytes, expiry: Expiry) {
    match expiry {
        Expiry::Immediately => {
            tx.delete(&key);
        }
        Expiry::Never => tx.set(key, Value::String(value), None),
        Expiry::AfterMs(ms) => tx.set(key, Value::String(value), Some(ms)),
    }
}

#[async_trait]
impl SecondaryStorage for MemoryStorage {
    async fn get(&self, key: &str) -> KvResult<Option<Bytes>> {
        let key = self.key(key)?;
        self.keyspace.transaction(|tx| tx.get_checked(&key))
    }

    async fn set(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> KvResult<()> {
        let (key, expiry) = self.options.write_plan(key, &value, ttl)?;
        self.keyspace
            .transaction(|tx| write(tx, key, value, expiry));
        Ok(())
    }

    async fn set_keep_ttl(&self, key: &str, value: Bytes) -> KvResult<()> {
        check_value(key, &value)?;
        let key = self.key(key)?;
        self.keyspace
            .transaction(|tx| tx.set_keep_ttl(key, Value::String(value)));
        Ok(())
    }

    async fn delete(&self, key: &str) -> KvResult<bool> {
        let key = self.key(key)?;
        Ok(self.keyspace.transaction(|tx| tx.delete(&key)))
    }

    async fn set_if_not_exists(
        &self,
        key: &str,
        value: Bytes,
        ttl: Option<Duration>,
    ) -> KvResult<bool> {
        let (key, expiry) = self.options.write_plan(key, &value, ttl)?;
        if expiry == Expiry::Immediately {
            return Ok(false);
        }
        Ok(self.keyspace.transaction(|tx| {
            if tx.get(&key).is_some() {
                return false;
            }
            write(tx, key, value, expiry);
            true
        }))
    }

    async fn take(&self, key: &str) -> KvResult<Option<Bytes>> {
        let key = self.key(key)?;
        // GETDEL: WRONGTYPE (nothing deleted) for another type.
        self.keyspace.transaction(|tx| {
            let value = tx.get_checked(&key)?;
            if value.is_some() {
                tx.delete(&key);
            }
            Ok(value)
        })
    }

    async fn increment(&self, key: &str, ttl: Duration) -> KvResult<i64> {
        let secs = increment_ttl_secs(key, ttl)?;
        let key = self.key(key)?;
        // increment.lua: INCR (fails the script, writing nothing, on another type, a
        // non-integer or an overflow), then EXPIRE when the result is 1.
        self.keyspace.transaction(|tx| {
            let fail = |reply| in_script(KvError::server_reply(reply, None), "increment");
            let current = match tx.get_checked(&key) {
                Ok(v) => v,
                Err(e) => return Err(in_script(e, "increment")),
            };
            let n = match current {
                None => 1,
                Some(raw) => crate::wire::parse_integer(&raw)
                    .ok_or_else(|| fail(NOT_AN_INTEGER))?
                    .checked_add(1)
                    .ok_or_else(|| fail(INCR_OVERFLOW))?,
            };
            tx.set_keep_ttl(key.clone(), Value::String(Bytes::from(n.to_string())));
            if n == 1 {
                tx.pexpire(&key, secs * 1000);
            }
            Ok(n)
        })
    }

    async fn compare_and_set(
        &self,
        key: &str,
        expected: Option<&[u8]>,
        value: Bytes,
        ttl: Option<Duration>,
    ) -> KvResult<bool> {
        let (key, expiry) = self.options.write_plan(key, &value, ttl)?;
        // The script's first command is GET: another type fails it before any write.
        self.keyspace.transaction(|tx| {
            let current = tx
                .get_checked(&key)
                .map_err(|e| in_script(e, "compare_and_set"))?;
            if current.as_deref() != expected {
                return Ok(false);
            }
            write(tx, key, value, expiry);
            Ok(true)
        })
    }

    async fn delete_if_value(&self, key: &str, expected: &[u8]) -> KvResult<bool> {
        let key = self.key(key)?;
        self.keyspace.transaction(|tx| {
            let current = tx
                .get_checked(&key)
                .map_err(|e| in_script(e, "delete_if_value"))?;
            let matches = current.is_some_and(|v| v[..] == *expected);
            if matches {
                tx.delete(&key);
            }
            Ok(matches)
        })
    }

    async fn get_many(&self, keys: &[&str]) -> KvResult<Vec<Option<Bytes>>> {
        let physical = self.keys(keys)?;
        Ok(self
            .keyspace
            .transaction(|tx| physical.iter().map(|k| tx.get_string(k)).collect()))
    }

    async fn delete_many(&self, keys: &[&str]) -> KvResult<u64> {
        let physical = self.keys(keys)?;
        Ok(self
            .keyspace
            .transaction(|tx| physical.iter().filter(|k| tx.delete(k)).count() as u64))
    }

    async fn list_keys(&self) -> KvResult<Vec<String>> {
        let space = self.options.key_space().as_bytes();
        let physical = self.keyspace.transaction(|tx| tx.keys_with_prefix(space));
        Ok(physical
            .iter()
            .filter_map(|k| self.options.logical(k))
            .filter_map(|l| std::str::from_utf8(l).ok().map(str::to_owned))
            .collect())
    }

    async fn clear(&self) -> KvResult<u64> {
        let space = self.options.key_space().as_bytes();
        Ok(self.keyspace.transaction(|tx| {
            let doomed = tx.keys_with_prefix(space);
            doomed.iter().filter(|k| tx.delete(k)).count() as u64
        }))
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
        assert_eq!(
            (raw.value, raw.pttl_ms),
            (Value::String("b".into()), Some(6000))
        );
        s.set("k", "c".into(), None).await.unwrap();
        assert_eq!(
            s.keyspace()
                .inspect(b"rustauth:secondary:k")
                .unwrap()
                .pttl_ms,
            None
        );
    }

    /// Like Redis, reading a key of another type as a string is a `WRONGTYPE` error, and
    /// the foreign key is left as it was: a plain command's error is `Server`, a
    /// script's (`compare_and_set`, `delete_if_value`) is `Script`, as `eval` reports it.
    #[tokio::test]
    async fn wrong_type_keys_are_wrongtype_errors_and_left_untouched() {
        use crate::error::ErrorKind;
        let (s, _) = store_at(0);
        let hash = Value::Hash([(Bytes::from("f"), Bytes::from("v"))].into());
        let zset = Value::SortedSet([(Bytes::from("m"), 1.0)].into());
        for foreign in [hash, zset] {
            s.keyspace().transaction(|tx| {
                tx.set(
                    b"rustauth:secondary:k".to_vec(),
                    foreign.clone(),
                    Some(5000),
                )
            });
            let results = [
                (s.get("k").await.map(|_| ()), ErrorKind::Server),
                (s.take("k").await.map(|_| ()), ErrorKind::Server),
                (
                    s.delete_if_value("k", b"v").await.map(|_| ()),
                    ErrorKind::Script,
                ),
                (
                    s.compare_and_set("k", None, "new".into(), None)
                        .await
                        .map(|_| ()),
                    ErrorKind::Script,
                ),
                (
                    s.compare_and_set("k", Some(b"v"), "new".into(), None)
                        .await
                        .map(|_| ()),
                    ErrorKind::Script,
                ),
            ];
            for (i, (result, kind)) in results.into_iter().enumerate() {
                let e = result.expect_err(&format!("call {i} on a {}", foreign.type_name()));
                assert_eq!(e.kind(), kind, "call {i}: {e}");
                assert_eq!(e.server_code(), Some("WRONGTYPE"), "call {i}: {e}");
            }
            let raw = s.keyspace().inspect(b"rustauth:secondary:k").unwrap();
            assert_eq!((raw.value, raw.pttl_ms), (foreign, Some(5000)));
            // MGET reads another type as nil, SET NX sees the key, DEL and SET replace it.
            assert_eq!(s.get_many(&["k"]).await.unwrap(), vec![None]);
            assert!(!s.set_if_not_exists("k", "x".into(), None).await.unwrap());
            assert!(s.delete("k").await.unwrap());
        }
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
