//! [`MemoryLock`]: the lock contract over a [`MemoryKeyspace`], each operation one
//! transaction mirroring its Lua script line for line (same keys, same values, same
//! expiry), so the memory store is the executable spec of what the scripts do.

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

use super::ReleaseOutcome;
use super::{ms, new_token, ttl_ms, Acquisition, ExtendOutcome, Lock, LockGuard, LockOptions};
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

/// `INCR` as a script sees it: the counter plus one, keeping the key's expiry (none).
fn incr(tx: &mut Tx<'_>, key: &[u8], script: &str) -> KvResult<i64> {
    let not_an_integer = || {
        KvError::new(
            ErrorKind::Script,
            format!("ERR value is not an integer or out of range (script {script})"),
        )
    };
    let current = match get_string(tx, key, script)? {
        None => 0,
        Some(b) => std::str::from_utf8(&b)
            .ok()
            .and_then(|s| s.parse::<i64>().ok())
            .ok_or_else(not_an_integer)?,
    };
    let next = current.checked_add(1).ok_or_else(not_an_integer)?;
    tx.set_keep_ttl(key.to_vec(), Value::String(Bytes::from(next.to_string())));
    Ok(next)
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
            let fence = incr(tx, &keys.fence, "lock_acquire")?;
            tx.set(
                keys.lock,
                Value::String(Bytes::from(token.clone())),
                Some(ttl_ms),
            );
            Ok(Acquisition::Acquired(LockGuard {
                name: name.to_owned(),
                token,
                fence: fence as u64,
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
        assert_eq!(a.fence(), 1);
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
        assert_eq!(b.fence(), 2);
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
            (Value::String("2".into()), None),
            "the counter outlives the lock, without expiry"
        );
    }

    #[tokio::test]
    async fn a_bad_counter_fails_without_writing_the_lock() {
        let (lock, _) = lock_at(0);
        lock.keyspace()
            .insert_raw(b"rustauth:lock:{job}:fence", "x".into(), None);
        let e = lock
            .acquire("job", Duration::from_secs(1))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Script, "{e}");
        assert!(lock.keyspace().inspect(b"rustauth:lock:{job}").is_none());
    }
}
