//! [`MemoryLock`]: the lock contract over a [`MemoryKeyspace`], each operation one
//! transaction mirroring its Lua script line for line (same keys, same values, same
//! expiry), so the memory store is the executable spec of what the scripts do.

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

use super::ReleaseOutcome;
use super::{
    ms, new_token, next_fence, ttl_ms, Acquisition, ExtendOutcome, Lock, LockGuard, LockOptions,
};
use crate::error::{ErrorKind, KvError, KvResult};
use crate::memory::{MemoryKeyspace, Tx, Value};

/// Locks in a [`MemoryKeyspace`]: exclusive among the users of that keyspace (one
/// process), with the same keys and semantics as [`super::ServerLock`].
#[derive(Debug, Clone)]
pub struct MemoryLock {
    keyspace: MemoryKeyspace,
    options: LockOptions,
}

impl MemoryLock {
    /// Locks over a (possibly shared) keyspace.
    pub fn new(keyspace: MemoryKeyspace, options: LockOptions) -> Self {
        MemoryLock { keyspace, options }
    }

    /// The keyspace, for inspection.
    pub fn keyspace(&self) -> &MemoryKeyspace {
        &self.keyspace
    }
}

/// `GET` as a script sees it: a string, nothing, or a `WRONGTYPE` error.
fn get_string(tx: &mut Tx<'_>, key: &[u8], script: &str) -> KvResult<Option<Bytes>> {
    match tx.get(key) {
        None => Ok(None),
        Some(Value::String(b)) => Ok(Some(b.clone())),
        Some(_) => Err(KvError::new(
            ErrorKind::Script,
            format!(
                "WRONGTYPE Operation against a key holding the wrong kind of value \
                 (script {script})"
            ),
        )),
    }
}

/// The fencing step of `lock_acquire.lua`: `max(counter + 1, clock in µs)`, a counter
/// that is not a valid integer read as lost ([`super::next_fence`]), written back with
/// `SET` (any type replaced, no expiry). It cannot fail, so the lock written after it is
/// never left behind by an error.
fn draw_fence(tx: &mut Tx<'_>, key: &[u8]) -> u64 {
    let counter = match tx.get(key) {
        Some(Value::String(b)) => Some(b.clone()),
        _ => None,
    };
    // The keyspace clock has ms resolution: its floor is ms × 1000.
    let fence = next_fence(counter.as_deref(), tx.now_ms().saturating_mul(1000));
    tx.set(
        key.to_vec(),
        Value::String(Bytes::from(fence.to_string())),
        None,
    );
    fence
}

#[async_trait]
impl Lock for MemoryLock {
    async fn acquire(&self, name: &str, ttl: Duration) -> KvResult<Acquisition> {
        let keys = self.options.codec.lock_keys(name)?;
        let ttl_ms = ttl_ms(ttl)?;
        let token = new_token()?;
        self.keyspace.transaction(|tx| {
            if let Some(pttl) = tx.pttl(&keys.lock) {
                return Ok(Acquisition::Held {
                    expires_in: pttl.and_then(|p| ms(p as i64)),
                });
            }
            let fence = draw_fence(tx, &keys.fence);
            tx.set(
                keys.lock,
                Value::String(Bytes::from(token.clone())),
                Some(ttl_ms),
            );
            Ok(Acquisition::Acquired(LockGuard {
                name: name.to_owned(),
                token,
                fence,
            }))
        })
    }

    async fn release(&self, guard: &LockGuard) -> KvResult<ReleaseOutcome> {
        let keys = self.options.codec.lock_keys(&guard.name)?;
        self.keyspace.transaction(|tx| {
            let held = get_string(tx, &keys.lock, "delete_if_value")?;
            if held.as_deref() == Some(guard.token.as_bytes()) {
                tx.delete(&keys.lock);
                return Ok(ReleaseOutcome::Released);
            }
            Ok(ReleaseOutcome::Lost)
        })
    }

    async fn extend(&self, guard: &LockGuard, ttl: Duration) -> KvResult<ExtendOutcome> {
        let keys = self.options.codec.lock_keys(&guard.name)?;
        let ttl_ms = ttl_ms(ttl)?;
        self.keyspace.transaction(|tx| {
            let held = get_string(tx, &keys.lock, "lock_extend")?;
            if held.as_deref() == Some(guard.token.as_bytes()) {
                tx.pexpire(&keys.lock, ttl_ms);
                return Ok(ExtendOutcome::Extended);
            }
            Ok(ExtendOutcome::Lost)
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::memory::ManualClock;

    fn lock_at(start: u64) -> (MemoryLock, ManualClock) {
        let clock = ManualClock::new(start);
        let ks = MemoryKeyspace::with_clock(Arc::new(clock.clone()));
        (MemoryLock::new(ks, LockOptions::default()), clock)
    }

    #[tokio::test]
    async fn acquire_release_extend_on_a_manual_clock() {
        let (lock, clock) = lock_at(1_000);
        let ttl = Duration::from_millis(100);
        let a = lock
            .acquire("job", ttl)
            .await
            .unwrap()
            .into_guard()
            .unwrap();
        assert_eq!(
            a.fence(),
            1_000_000,
            "a fresh counter starts at the clock in µs"
        );
        let raw = lock.keyspace().inspect(b"rustauth:lock:{job}").unwrap();
        assert_eq!(raw.value, Value::String(Bytes::from(a.token().to_owned())));
        assert_eq!(raw.pttl_ms, Some(100));
        assert_eq!(
            lock.acquire("job", ttl).await.unwrap(),
            Acquisition::Held {
                expires_in: Some(Duration::from_millis(100))
            }
        );
        clock.advance(Duration::from_millis(60));
        assert_eq!(lock.extend(&a, ttl).await.unwrap(), ExtendOutcome::Extended);
        clock.advance(Duration::from_millis(60));
        assert!(
            !lock.acquire("job", ttl).await.unwrap().is_acquired(),
            "extended"
        );
        clock.advance(Duration::from_millis(41));
        // Expired: someone else takes it; the first owner can neither extend nor release.
        let b = lock
            .acquire("job", ttl)
            .await
            .unwrap()
            .into_guard()
            .unwrap();
        assert_eq!(
            b.fence(),
            1_161_000,
            "the clock moved on by more than one µs"
        );
        assert_eq!(lock.extend(&a, ttl).await.unwrap(), ExtendOutcome::Lost);
        assert_eq!(lock.release(&a).await.unwrap(), ReleaseOutcome::Lost);
        assert_eq!(lock.release(&b).await.unwrap(), ReleaseOutcome::Released);
        assert!(lock.keyspace().inspect(b"rustauth:lock:{job}").is_none());
        let fence = lock
            .keyspace()
            .inspect(b"rustauth:lock:{job}:fence")
            .unwrap();
        assert_eq!(
            (fence.value, fence.pttl_ms),
            (Value::String("1161000".into()), None),
            "the counter outlives the lock, without expiry"
        );
    }

    /// Tokens are max(counter + 1, clock in µs): quick acquires count up by one, and a
    /// lost counter (restart without persistence, FLUSHDB, eviction, clear) restarts at
    /// the clock, above every token drawn before.
    #[tokio::test]
    async fn fencing_tokens_never_go_back_after_the_counter_is_lost() {
        let (lock, clock) = lock_at(1_700_000_000_000);
        let ttl = Duration::from_secs(1);
        let mut seen = Vec::new();
        for _ in 0..5 {
            let g = lock
                .acquire("job", ttl)
                .await
                .unwrap()
                .into_guard()
                .unwrap();
            seen.push(g.fence());
            assert_eq!(lock.release(&g).await.unwrap(), ReleaseOutcome::Released);
        }
        let floor = 1_700_000_000_000 * 1000;
        assert_eq!(
            seen,
            (floor..floor + 5).collect::<Vec<_>>(),
            "same ms: +1 each"
        );
        lock.keyspace().transaction(|tx| {
            tx.delete(b"rustauth:lock:{job}:fence");
        });
        clock.advance(Duration::from_millis(1));
        let g = lock
            .acquire("job", ttl)
            .await
            .unwrap()
            .into_guard()
            .unwrap();
        assert!(
            g.fence() > *seen.last().unwrap(),
            "{} after {seen:?}",
            g.fence()
        );
        assert_eq!(g.fence(), floor + 1000);
    }

    /// A counter that is not an integer as Redis parses it, is out of Lua's exact range or
    /// is not a string reads as lost: the token is the clock floor and the counter is
    /// rewritten (no error, so no lock is ever left written by a failing acquire); a
    /// negative counter is below the floor anyway, and a counter above the floor counts on.
    #[tokio::test]
    async fn corrupt_counters_restart_at_the_floor() {
        let floor = 5_000 * 1000;
        for (raw, want) in [
            ("007", floor),
            ("+5", floor),
            ("-5", floor),
            (" 5", floor),
            ("x", floor),
            ("9007199254740991", floor),
            ("-9007199254740991", floor),
            ("9007199254740990", 9_007_199_254_740_991),
            ("6000000", 6_000_001),
        ] {
            let (lock, _) = lock_at(5_000);
            lock.keyspace()
                .insert_raw(b"rustauth:lock:{job}:fence", Bytes::from(raw), None);
            let g = lock
                .acquire("job", Duration::from_secs(1))
                .await
                .unwrap_or_else(|e| panic!("{raw:?}: {e}"))
                .into_guard()
                .unwrap();
            assert_eq!(g.fence(), want, "{raw:?}");
            let fence = lock
                .keyspace()
                .inspect(b"rustauth:lock:{job}:fence")
                .unwrap();
            assert_eq!(
                (fence.value, fence.pttl_ms),
                (Value::String(want.to_string().into()), None),
                "{raw:?}"
            );
            assert_eq!(lock.release(&g).await.unwrap(), ReleaseOutcome::Released);
        }
        let (lock, _) = lock_at(5_000);
        lock.keyspace().transaction(|tx| {
            tx.set(
                b"rustauth:lock:{job}:fence".to_vec(),
                Value::Hash([(Bytes::from("f"), Bytes::from("v"))].into()),
                Some(10),
            )
        });
        let g = lock.acquire("job", Duration::from_secs(1)).await.unwrap();
        assert_eq!(g.into_guard().unwrap().fence(), floor, "a hash counter too");
        let fence = lock
            .keyspace()
            .inspect(b"rustauth:lock:{job}:fence")
            .unwrap();
        assert_eq!(fence.pttl_ms, None, "the rewritten counter has no expiry");
    }
}
