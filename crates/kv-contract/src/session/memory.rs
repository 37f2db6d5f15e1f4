//! [`MemorySessionIndex`]: the session index on a [`MemoryKeyspace`], the executable spec
//! of the server implementation.
//!
//! Each step is one [`MemoryKeyspace::transaction`] that does what the Lua script (or
//! command) of the same name does, on the same physical layout — a hash per session, a
//! sorted set per user, the same expiries — so a raw probe sees the same data in memory
//! as on a server, and the ordering code in `flow` is exercised on both.
//!
//! Each step first yields to the executor once, as a network round trip would: concurrent
//! operations then interleave *between* steps as they do on a server, so the races the
//! conformance suite runs (a refresh against a revoke, creates against a cap) explore the
//! same orders in memory as on Redis.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use async_trait::async_trait;
use bytes::Bytes;

use super::flow::{self, impl_session_index, RawSession, Steps, Write};
use super::SessionIndexOptions;
use crate::error::{KvError, KvResult};
use crate::memory::{MemoryKeyspace, Tx, Value};

/// The session index in memory.
#[derive(Debug, Clone)]
pub struct MemorySessionIndex {
    keyspace: MemoryKeyspace,
    opts: SessionIndexOptions,
}

impl MemorySessionIndex {
    /// A session index on its own keyspace and the system clock.
    pub fn new(options: SessionIndexOptions) -> Self {
        Self::with_keyspace(MemoryKeyspace::new(), options)
    }

    /// A session index over a (possibly shared) keyspace.
    pub fn with_keyspace(keyspace: MemoryKeyspace, options: SessionIndexOptions) -> Self {
        MemorySessionIndex {
            keyspace,
            opts: options,
        }
    }

    /// The keyspace, for inspection.
    pub fn keyspace(&self) -> &MemoryKeyspace {
        &self.keyspace
    }

    /// The options.
    pub fn options(&self) -> &SessionIndexOptions {
        &self.opts
    }
}

fn wrong_type() -> KvError {
    KvError::server_reply(
        "WRONGTYPE Operation against a key holding the wrong kind of value",
        None,
    )
}

/// Returns `Pending` once (waking itself), then `Ready`: lets other tasks run, like
/// `tokio::task::yield_now` without depending on a runtime.
struct YieldOnce(bool);

impl Future for YieldOnce {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            Poll::Ready(())
        } else {
            self.0 = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }
}

/// The memory counterpart of sending a step to the server.
fn round_trip() -> YieldOnce {
    YieldOnce(false)
}

type Hash = BTreeMap<Bytes, Bytes>;
type ZSet = BTreeMap<Bytes, f64>;

/// The hash under `key` (`None` when absent), as `HGET`/`HMGET` see it.
fn hash(tx: &mut Tx<'_>, key: &[u8]) -> KvResult<Option<Hash>> {
    match tx.get(key) {
        None => Ok(None),
        Some(Value::Hash(h)) => Ok(Some(h.clone())),
        Some(_) => Err(wrong_type()),
    }
}

fn field(h: &Option<Hash>, name: &str) -> Option<Bytes> {
    h.as_ref().and_then(|h| h.get(name.as_bytes()).cloned())
}

/// `HSET key field value ...` (creating the hash, with no expiry, when absent).
fn hset(tx: &mut Tx<'_>, key: &[u8], fields: &[(&str, &Bytes)]) -> KvResult<()> {
    let mut h = hash(tx, key)?;
    let created = h.is_none();
    let h = h.get_or_insert_with(BTreeMap::new);
    for (name, value) in fields {
        h.insert(Bytes::copy_from_slice(name.as_bytes()), (*value).clone());
    }
    if created {
        tx.set(key.to_vec(), Value::Hash(h.clone()), None);
    } else if let Some(Value::Hash(stored)) = tx.get_mut(key) {
        *stored = h.clone();
    }
    Ok(())
}

fn zset(tx: &mut Tx<'_>, key: &[u8]) -> KvResult<Option<ZSet>> {
    match tx.get(key) {
        None => Ok(None),
        Some(Value::SortedSet(z)) => Ok(Some(z.clone())),
        Some(_) => Err(wrong_type()),
    }
}

/// Stores `z` under `key`, keeping the key's expiry; an empty set deletes the key, as
/// Redis does.
fn store_zset(tx: &mut Tx<'_>, key: &[u8], z: ZSet) {
    if z.is_empty() {
        tx.delete(key);
    } else if let Some(Value::SortedSet(stored)) = tx.get_mut(key) {
        *stored = z;
    } else {
        tx.set(key.to_vec(), Value::SortedSet(z), None);
    }
}

/// Members in `ZRANGE` order: by score, then bytewise.
fn ordered(z: &ZSet) -> Vec<(Bytes, f64)> {
    let mut v: Vec<(Bytes, f64)> = z.iter().map(|(m, s)| (m.clone(), *s)).collect();
    v.sort_by(|a, b| a.1.total_cmp(&b.1).then_with(|| a.0.cmp(&b.0)));
    v
}

/// `ZREMRANGEBYSCORE key -inf (now`.
fn prune(z: &mut ZSet, now: u64) {
    z.retain(|_, s| *s >= now as f64);
}

/// The scripts' expiry rule: the key expires with its highest score (`PEXPIREAT`), or
/// 1 ms from now when that score is now (a `PEXPIREAT` of now would delete it).
fn fit_expiry(tx: &mut Tx<'_>, key: &[u8], z: &ZSet) {
    let now = tx.now_ms();
    if let Some(max) = z.values().copied().reduce(f64::max) {
        if max > now as f64 {
            tx.pexpire_at(key, max as u64);
        } else {
            tx.pexpire(key, 1);
        }
    }
}

#[async_trait]
impl Steps for MemorySessionIndex {
    async fn session_create(
        &self,
        key: Bytes,
        user_id: Bytes,
        expires_at: u64,
        value: Bytes,
    ) -> KvResult<Write> {
        round_trip().await;
        self.keyspace.transaction(|tx| {
            if expires_at <= tx.now_ms() {
                return Ok(Write::Expired);
            }
            if tx.get(&key).is_some() {
                return Ok(Write::Refused);
            }
            let at = Bytes::from(expires_at.to_string());
            hset(
                tx,
                &key,
                &[
                    ("user_id", &user_id),
                    ("expires_at", &at),
                    ("value", &value),
                ],
            )?;
            tx.pexpire_at(&key, expires_at);
            Ok(Write::Done)
        })
    }

    async fn session_get(&self, key: Bytes) -> KvResult<RawSession> {
        round_trip().await;
        self.keyspace.transaction(|tx| {
            let h = hash(tx, &key)?;
            Ok(RawSession {
                user_id: field(&h, "user_id"),
                expires_at: field(&h, "expires_at"),
                value: field(&h, "value"),
            })
        })
    }

    async fn session_owner(&self, key: Bytes) -> KvResult<Option<Bytes>> {
        round_trip().await;
        self.keyspace
            .transaction(|tx| Ok(field(&hash(tx, &key)?, "user_id")))
    }

    async fn session_refresh(
        &self,
        key: Bytes,
        user_id: Bytes,
        expires_at: u64,
        value: Option<Bytes>,
    ) -> KvResult<Write> {
        round_trip().await;
        self.keyspace.transaction(|tx| {
            if field(&hash(tx, &key)?, "user_id") != Some(user_id) {
                return Ok(Write::Refused);
            }
            if expires_at <= tx.now_ms() {
                tx.delete(&key);
                return Ok(Write::Expired);
            }
            let at = Bytes::from(expires_at.to_string());
            match &value {
                Some(v) => hset(tx, &key, &[("expires_at", &at), ("value", v)])?,
                None => hset(tx, &key, &[("expires_at", &at)])?,
            }
            tx.pexpire_at(&key, expires_at);
            Ok(Write::Done)
        })
    }

    async fn session_delete(&self, key: Bytes) -> KvResult<Option<Bytes>> {
        round_trip().await;
        self.keyspace.transaction(|tx| {
            let owner = field(&hash(tx, &key)?, "user_id");
            if owner.is_some() {
                tx.delete(&key);
            }
            Ok(owner)
        })
    }

    async fn sessions_get(&self, keys: Vec<Bytes>) -> KvResult<Vec<RawSession>> {
        round_trip().await;
        self.keyspace.transaction(|tx| {
            keys.iter()
                .map(|k| {
                    let h = hash(tx, k)?;
                    Ok(RawSession {
                        user_id: field(&h, "user_id"),
                        expires_at: field(&h, "expires_at"),
                        value: field(&h, "value"),
                    })
                })
                .collect()
        })
    }

    async fn sessions_delete(&self, keys: Vec<Bytes>) -> KvResult<u64> {
        round_trip().await;
        Ok(self
            .keyspace
            .transaction(|tx| keys.iter().filter(|k| tx.delete(k)).count() as u64))
    }

    async fn index_add(
        &self,
        key: Bytes,
        member: Bytes,
        expires_at: u64,
        cap: u32,
    ) -> KvResult<Vec<Bytes>> {
        round_trip().await;
        self.keyspace.transaction(|tx| {
            let now = tx.now_ms();
            let mut z = zset(tx, &key)?.unwrap_or_default();
            let score = expires_at as f64;
            let entry = z.entry(member.clone()).or_insert(score);
            *entry = entry.max(score); // ZADD GT
            prune(&mut z, now);
            let mut victims = Vec::new();
            let excess = z.len().saturating_sub(cap as usize);
            if cap > 0 && excess > 0 {
                victims = ordered(&z)
                    .into_iter()
                    .map(|(m, _)| m)
                    .take(excess + 1)
                    .filter(|m| *m != member)
                    .take(excess)
                    .collect();
            }
            store_zset(tx, &key, z.clone());
            fit_expiry(tx, &key, &z);
            Ok(victims)
        })
    }

    async fn index_touch(&self, key: Bytes, member: Bytes, expires_at: u64) -> KvResult<bool> {
        round_trip().await;
        self.keyspace.transaction(|tx| {
            let now = tx.now_ms();
            let Some(mut z) = zset(tx, &key)? else {
                return Ok(false);
            };
            prune(&mut z, now);
            let present = match z.get_mut(&member) {
                Some(s) => {
                    *s = s.max(expires_at as f64); // ZADD XX GT
                    true
                }
                None => false,
            };
            store_zset(tx, &key, z.clone());
            if present {
                fit_expiry(tx, &key, &z);
            }
            Ok(present)
        })
    }

    async fn index_members(&self, key: Bytes) -> KvResult<Vec<Bytes>> {
        round_trip().await;
        self.keyspace.transaction(|tx| {
            let now = tx.now_ms();
            let Some(mut z) = zset(tx, &key)? else {
                return Ok(Vec::new());
            };
            prune(&mut z, now);
            let members = ordered(&z).into_iter().map(|(m, _)| m).collect();
            store_zset(tx, &key, z);
            Ok(members)
        })
    }

    async fn index_remove(&self, key: Bytes, members: Vec<Bytes>) -> KvResult<u64> {
        round_trip().await;
        self.keyspace.transaction(|tx| {
            let now = tx.now_ms();
            let Some(mut z) = zset(tx, &key)? else {
                return Ok(0);
            };
            let mut removed = 0;
            for m in &members {
                removed += u64::from(z.remove(m).is_some());
            }
            prune(&mut z, now);
            store_zset(tx, &key, z.clone());
            fit_expiry(tx, &key, &z);
            Ok(removed)
        })
    }

    async fn index_count(&self, key: Bytes) -> KvResult<u64> {
        round_trip().await;
        self.keyspace.transaction(|tx| {
            let now = tx.now_ms();
            let Some(mut z) = zset(tx, &key)? else {
                return Ok(0);
            };
            prune(&mut z, now);
            let n = z.len() as u64;
            store_zset(tx, &key, z);
            Ok(n)
        })
    }
}

impl_session_index!(MemorySessionIndex);

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;
    use crate::memory::ManualClock;
    use crate::session::{CreateOutcome, SessionIndex, TokenHashing};

    const T0: u64 = 1_700_000_000_000;

    fn at(ms: u64) -> std::time::SystemTime {
        UNIX_EPOCH + Duration::from_millis(T0 + ms)
    }

    fn index(opts: SessionIndexOptions) -> (MemorySessionIndex, ManualClock) {
        let clock = ManualClock::new(T0);
        let ks = MemoryKeyspace::with_clock(Arc::new(clock.clone()));
        (MemorySessionIndex::with_keyspace(ks, opts), clock)
    }

    /// The index's members with scores, and its PTTL.
    type RawIndex = (Vec<(Bytes, f64)>, Option<u64>);

    fn zscores(s: &MemorySessionIndex, user: &str) -> Option<RawIndex> {
        let key = s.opts.user_sessions_key(user).unwrap();
        s.keyspace().inspect(&key).map(|e| match e.value {
            Value::SortedSet(z) => (ordered(&z), e.pttl_ms),
            other => panic!("index is a {}", other.type_name()),
        })
    }

    #[tokio::test]
    async fn layout_and_expiry_follow_the_clock() {
        let (s, clock) = index(SessionIndexOptions::default());
        let created = s.create("u", "t1", "v1".into(), at(100)).await.unwrap();
        assert_eq!(created, CreateOutcome::Created { evicted: 0 });
        s.create("u", "t2", "v2".into(), at(300)).await.unwrap();
        let raw = s.keyspace().inspect(b"rustauth:session:t1").unwrap();
        assert_eq!(raw.pttl_ms, Some(100));
        let Value::Hash(h) = raw.value else {
            panic!("session is not a hash")
        };
        assert_eq!(h.len(), 3);
        assert_eq!(h[&b"user_id"[..]], "u");
        assert_eq!(h[&b"expires_at"[..]], (T0 + 100).to_string());
        assert_eq!(h[&b"value"[..]], "v1");
        let (z, pttl) = zscores(&s, "u").unwrap();
        assert_eq!(
            z,
            vec![
                (Bytes::from("t1"), (T0 + 100) as f64),
                (Bytes::from("t2"), (T0 + 300) as f64)
            ]
        );
        assert_eq!(
            pttl,
            Some(300),
            "the index lives as long as its last member"
        );

        clock.advance(Duration::from_millis(100));
        assert!(s.get("t1").await.unwrap().is_some(), "alive at 0 ms left");
        clock.advance(Duration::from_millis(1));
        assert!(s.get("t1").await.unwrap().is_none());
        let listed = s.list("u").await.unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].id, "t2");
        assert_eq!(listed[0].expires_at, at(300));
        assert_eq!(zscores(&s, "u").unwrap().0.len(), 1, "t1 pruned by list");
        clock.advance(Duration::from_millis(200));
        assert!(
            zscores(&s, "u").is_none(),
            "the index expired with its last member"
        );
        assert_eq!(s.count("u").await.unwrap(), 0);
    }

    #[tokio::test]
    async fn create_rules() {
        let (s, _clock) = index(SessionIndexOptions::default());
        assert_eq!(
            s.create("u", "t", "v".into(), at(0)).await.unwrap(),
            CreateOutcome::AlreadyExpired
        );
        assert!(s.keyspace().physical_keys().is_empty());
        s.create("u", "t", "v".into(), at(10)).await.unwrap();
        // A live token is never overwritten, whoever asks.
        for user in ["other", "u"] {
            assert_eq!(
                s.create(user, "t", "w".into(), at(20)).await.unwrap(),
                CreateOutcome::TokenInUse
            );
        }
        let got = s.get("t").await.unwrap().unwrap();
        assert_eq!((got.value, got.expires_at), (Bytes::from("v"), at(10)));
        assert_eq!(s.count("u").await.unwrap(), 1);
        assert_eq!(s.count("other").await.unwrap(), 0);
    }

    #[tokio::test]
    async fn refresh_never_recreates() {
        let (s, clock) = index(SessionIndexOptions::default());
        s.create("u", "t", "v".into(), at(100)).await.unwrap();
        assert!(s.refresh("t", at(500), Some("v2".into())).await.unwrap());
        let got = s.get("t").await.unwrap().unwrap();
        assert_eq!((got.value, got.expires_at), (Bytes::from("v2"), at(500)));
        assert_eq!(zscores(&s, "u").unwrap().1, Some(500));
        // Shorter: the session shrinks, the index score stays (it only rises).
        assert!(s.refresh("t", at(200), None).await.unwrap());
        assert_eq!(s.get("t").await.unwrap().unwrap().expires_at, at(200));
        assert_eq!(zscores(&s, "u").unwrap().0[0].1, (T0 + 500) as f64);
        // Revoked: gone for good.
        assert_eq!(s.revoke_all("u").await.unwrap(), 1);
        assert!(!s.refresh("t", at(900), None).await.unwrap());
        assert!(s.keyspace().physical_keys().is_empty());
        // Expired: gone for good.
        s.create("u", "t2", "v".into(), at(300)).await.unwrap();
        clock.advance(Duration::from_millis(301));
        assert!(!s.refresh("t2", at(900), None).await.unwrap());
        assert!(s.keyspace().physical_keys().is_empty());
        // A past expiry ends the session.
        s.create("u", "t3", "v".into(), at(1_000)).await.unwrap();
        assert!(!s.refresh("t3", at(0), None).await.unwrap());
        assert!(s.get("t3").await.unwrap().is_none());
    }

    #[tokio::test]
    async fn a_session_missing_from_its_index_is_not_refreshed() {
        let (s, _clock) = index(SessionIndexOptions::default());
        s.create("u", "t", "v".into(), at(100)).await.unwrap();
        let index = s.opts.user_sessions_key("u").unwrap();
        s.keyspace().transaction(|tx| tx.delete(&index));
        assert!(!s.refresh("t", at(500), None).await.unwrap());
        assert_eq!(s.get("t").await.unwrap().unwrap().expires_at, at(100));
    }

    #[tokio::test]
    async fn list_cleans_members_without_sessions() {
        let (s, _clock) = index(SessionIndexOptions::default());
        for (t, ms) in [("a", 300), ("b", 100), ("c", 200)] {
            s.create("u", t, t.into(), at(ms)).await.unwrap();
        }
        // A crash between the two steps of a delete: the session is gone, the member stays.
        s.keyspace()
            .transaction(|tx| tx.delete(b"rustauth:session:c"));
        assert_eq!(s.count("u").await.unwrap(), 3);
        let ids: Vec<String> = s
            .list("u")
            .await
            .unwrap()
            .into_iter()
            .map(|x| x.id)
            .collect();
        assert_eq!(ids, ["b", "a"], "soonest expiry first");
        assert_eq!(s.count("u").await.unwrap(), 2);
        assert!(s.delete("a").await.unwrap());
        assert!(!s.delete("a").await.unwrap());
        assert_eq!(
            zscores(&s, "u").unwrap().1,
            Some(100),
            "expiry shrank to fit"
        );
    }

    #[tokio::test]
    async fn cap_evicts_the_soonest_expiring() {
        let opts = SessionIndexOptions::builder()
            .max_sessions_per_user(2)
            .build()
            .unwrap();
        let (s, _clock) = index(opts);
        s.create("u", "a", "".into(), at(300)).await.unwrap();
        s.create("u", "b", "".into(), at(100)).await.unwrap();
        assert_eq!(
            s.create("u", "c", "".into(), at(200)).await.unwrap(),
            CreateOutcome::Created { evicted: 1 }
        );
        assert!(s.get("b").await.unwrap().is_none());
        // The new session is never its own victim, even when it expires first.
        assert_eq!(
            s.create("u", "d", "".into(), at(50)).await.unwrap(),
            CreateOutcome::Created { evicted: 1 }
        );
        let ids: Vec<String> = s
            .list("u")
            .await
            .unwrap()
            .into_iter()
            .map(|x| x.id)
            .collect();
        assert_eq!(ids, ["d", "a"]);
    }

    #[tokio::test]
    async fn revoke_all_except_and_hashing() {
        let opts = SessionIndexOptions::builder()
            .token_hashing(TokenHashing::Sha256)
            .build()
            .unwrap();
        let (s, _clock) = index(opts);
        for t in ["keep", "x", "y"] {
            s.create("u", t, "v".into(), at(100)).await.unwrap();
        }
        for key in s.keyspace().physical_keys() {
            let key = String::from_utf8(key).unwrap();
            assert!(
                !key.contains("keep") && !key.ends_with(":x") && !key.ends_with(":y"),
                "{key}"
            );
        }
        let listed = s.list("u").await.unwrap();
        assert!(listed.iter().all(|x| x.id.len() == 64));
        assert_eq!(s.revoke_all_except("u", "keep").await.unwrap(), 2);
        let left = s.list("u").await.unwrap();
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].id, s.session_id("keep").unwrap());
        assert!(s.delete_by_id(&left[0].id).await.unwrap());
        assert!(s.keyspace().physical_keys().is_empty());
        assert_eq!(
            s.delete_by_id("keep").await.unwrap_err().kind(),
            crate::ErrorKind::InvalidInput
        );
    }
}
