//! The wrappers against a primary that can be switched off, on a manual clock.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use bytes::Bytes;

use super::*;
use crate::breaker::{is_circuit_open, BreakerOptions, BreakerState};
use crate::error::{ErrorKind, KvError};
use crate::lock::{Acquisition, ExtendOutcome, Lock, LockGuard, LockOptions, ReleaseOutcome};
use crate::memory::ManualClock;
use crate::session::{CreateOutcome, Session, SessionIndex};
use crate::{MemoryKeyspace, MemoryLock, MemoryStorage, SecondaryStorage};

/// A memory store that answers `Timeout` while switched off, counting the calls it gets.
#[derive(Default)]
struct Switchable {
    store: MemoryStorage,
    down: AtomicBool,
    calls: AtomicU64,
}

impl Switchable {
    fn check(&self) -> KvResult<()> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if self.down.load(Ordering::SeqCst) {
            return Err(KvError::new(ErrorKind::Timeout, "no answer"));
        }
        Ok(())
    }
}

#[async_trait]
impl SecondaryStorage for Switchable {
    async fn get(&self, key: &str) -> KvResult<Option<Bytes>> {
        self.check()?;
        self.store.get(key).await
    }
    async fn set(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> KvResult<()> {
        self.check()?;
        self.store.set(key, value, ttl).await
    }
    async fn set_keep_ttl(&self, key: &str, value: Bytes) -> KvResult<()> {
        self.check()?;
        self.store.set_keep_ttl(key, value).await
    }
    async fn delete(&self, key: &str) -> KvResult<bool> {
        self.check()?;
        self.store.delete(key).await
    }
    async fn set_if_not_exists(&self, k: &str, v: Bytes, t: Option<Duration>) -> KvResult<bool> {
        self.check()?;
        self.store.set_if_not_exists(k, v, t).await
    }
    async fn take(&self, key: &str) -> KvResult<Option<Bytes>> {
        self.check()?;
        self.store.take(key).await
    }
    async fn increment(&self, key: &str, ttl: Duration) -> KvResult<i64> {
        self.check()?;
        self.store.increment(key, ttl).await
    }
    async fn compare_and_set(
        &self,
        k: &str,
        e: Option<&[u8]>,
        v: Bytes,
        t: Option<Duration>,
    ) -> KvResult<bool> {
        self.check()?;
        self.store.compare_and_set(k, e, v, t).await
    }
    async fn delete_if_value(&self, key: &str, expected: &[u8]) -> KvResult<bool> {
        self.check()?;
        self.store.delete_if_value(key, expected).await
    }
    async fn get_many(&self, keys: &[&str]) -> KvResult<Vec<Option<Bytes>>> {
        self.check()?;
        self.store.get_many(keys).await
    }
    async fn delete_many(&self, keys: &[&str]) -> KvResult<u64> {
        self.check()?;
        self.store.delete_many(keys).await
    }
    async fn list_keys(&self) -> KvResult<Vec<String>> {
        self.check()?;
        self.store.list_keys().await
    }
    async fn clear(&self) -> KvResult<u64> {
        self.check()?;
        self.store.clear().await
    }
}

fn breaker(clock: &ManualClock) -> CircuitBreaker {
    let options = BreakerOptions::builder()
        .failure_threshold(2)
        .cool_down(Duration::from_millis(100))
        .build()
        .unwrap();
    CircuitBreaker::with_clock(options, Arc::new(clock.clone()))
}

fn setup(
    policy: OnUnavailable<Arc<dyn SecondaryStorage>>,
) -> (Arc<Switchable>, ResilientStorage, ManualClock) {
    let clock = ManualClock::new(0);
    let primary = Arc::new(Switchable::default());
    let store = ResilientStorage::new(primary.clone(), breaker(&clock), policy);
    (primary, store, clock)
}

#[tokio::test]
async fn fail_returns_errors_then_stops_calling_then_recovers() {
    let (primary, store, clock) = setup(OnUnavailable::Fail);
    store.set("k", "v".into(), None).await.unwrap();
    primary.down.store(true, Ordering::SeqCst);
    for _ in 0..2 {
        let e = store.get("k").await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Timeout);
    }
    assert_eq!(store.breaker().state(), BreakerState::Open);
    let before = primary.calls.load(Ordering::SeqCst);
    let e = store.get("k").await.unwrap_err();
    assert!(is_circuit_open(&e), "{e}");
    assert_eq!(
        primary.calls.load(Ordering::SeqCst),
        before,
        "no call while open"
    );

    primary.down.store(false, Ordering::SeqCst);
    clock.advance(Duration::from_millis(100));
    assert_eq!(store.get("k").await.unwrap().as_deref(), Some(&b"v"[..]));
    let s = store.breaker().stats();
    assert_eq!(s.state, BreakerState::Closed);
    assert_eq!(
        (s.opened, s.closed, s.rejected, s.skipped, s.fallbacks),
        (1, 1, 1, 0, 0)
    );
}

#[tokio::test]
async fn skip_reads_miss_and_writes_report_nothing_done() {
    let (primary, store, _) = setup(OnUnavailable::Skip);
    store.set("k", "v".into(), None).await.unwrap();
    primary.down.store(true, Ordering::SeqCst);
    assert_eq!(store.get("k").await.unwrap(), None);
    store.set("k", "w".into(), None).await.unwrap();
    store.set_keep_ttl("k", "w".into()).await.unwrap();
    assert!(!store.delete("k").await.unwrap());
    assert!(!store
        .set_if_not_exists("n", "v".into(), None)
        .await
        .unwrap());
    assert_eq!(store.take("k").await.unwrap(), None);
    assert!(!store
        .compare_and_set("k", Some(b"v"), "x".into(), None)
        .await
        .unwrap());
    assert!(!store.delete_if_value("k", b"v").await.unwrap());
    assert_eq!(store.get_many(&["k", "n"]).await.unwrap(), vec![None, None]);
    assert_eq!(store.delete_many(&["k"]).await.unwrap(), 0);
    assert!(store.list_keys().await.unwrap().is_empty());
    assert_eq!(store.clear().await.unwrap(), 0);
    assert_eq!(store.breaker().stats().skipped, 12);
    primary.down.store(false, Ordering::SeqCst);
    assert_eq!(
        primary.store.get("k").await.unwrap().as_deref(),
        Some(&b"v"[..]),
        "nothing was written or deleted while skipped"
    );
}

#[tokio::test]
async fn fallback_serves_from_the_fallback_store() {
    let fallback = Arc::new(MemoryStorage::new());
    let (primary, store, _) = setup(OnUnavailable::Fallback(fallback.clone()));
    primary.down.store(true, Ordering::SeqCst);
    store.set("k", "v".into(), None).await.unwrap();
    assert_eq!(store.get("k").await.unwrap().as_deref(), Some(&b"v"[..]));
    assert_eq!(fallback.get("k").await.unwrap().as_deref(), Some(&b"v"[..]));
    assert_eq!(primary.store.get("k").await.unwrap(), None);
    let s = store.breaker().stats();
    assert_eq!((s.fallbacks, s.failures, s.rejected), (2, 2, 0));
    store.get("k").await.unwrap();
    assert_eq!(
        store.breaker().stats().rejected,
        1,
        "open: served without calling"
    );
}

#[tokio::test]
async fn errors_that_are_not_unavailability_pass_through() {
    let (_, store, _) = setup(OnUnavailable::Skip);
    let e = store.get("").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    assert_eq!(store.breaker().stats().skipped, 0);
}

fn locks(policy: impl FnOnce(Arc<dyn Lock>) -> OnUnavailable<Arc<dyn Lock>>) -> ResilientLock {
    let clock = ManualClock::new(0);
    let primary = Arc::new(DownLock);
    let fallback: Arc<dyn Lock> = Arc::new(MemoryLock::new(
        MemoryKeyspace::new(),
        LockOptions::default(),
    ));
    ResilientLock::new(primary, breaker(&clock), policy(fallback))
}

/// A lock whose server is always down.
struct DownLock;

#[async_trait]
impl Lock for DownLock {
    async fn acquire(&self, _: &str, _: Duration) -> KvResult<Acquisition> {
        Err(KvError::new(ErrorKind::Unavailable, "refused"))
    }
    async fn release(&self, _: &LockGuard) -> KvResult<ReleaseOutcome> {
        Err(KvError::new(ErrorKind::Unavailable, "refused"))
    }
    async fn extend(&self, _: &LockGuard, _: Duration) -> KvResult<ExtendOutcome> {
        Err(KvError::new(ErrorKind::Unavailable, "refused"))
    }
}

#[tokio::test]
async fn lock_skip_fails_safe() {
    let lock = locks(|_| OnUnavailable::Skip);
    let ttl = Duration::from_secs(1);
    assert_eq!(
        lock.acquire("job", ttl).await.unwrap(),
        Acquisition::Held { expires_in: None }
    );
    let guard = MemoryLock::new(MemoryKeyspace::new(), LockOptions::default())
        .acquire("job", ttl)
        .await
        .unwrap()
        .into_guard()
        .unwrap();
    assert_eq!(lock.release(&guard).await.unwrap(), ReleaseOutcome::Lost);
    assert_eq!(lock.extend(&guard, ttl).await.unwrap(), ExtendOutcome::Lost);
}

#[tokio::test]
async fn lock_fallback_guards_stay_with_the_fallback() {
    let lock = locks(OnUnavailable::Fallback);
    let ttl = Duration::from_secs(1);
    let guard = lock
        .acquire("job", ttl)
        .await
        .unwrap()
        .into_guard()
        .unwrap();
    assert!(!lock.acquire("job", ttl).await.unwrap().is_acquired());
    assert_eq!(
        lock.extend(&guard, ttl).await.unwrap(),
        ExtendOutcome::Extended
    );
    assert_eq!(
        lock.release(&guard).await.unwrap(),
        ReleaseOutcome::Released
    );
    assert_eq!(lock.release(&guard).await.unwrap(), ReleaseOutcome::Lost);
    assert!(lock.acquire("job", ttl).await.unwrap().is_acquired());
}

/// A connection to a server that never answers: every command times out, counted.
#[derive(Debug, Default)]
struct DeadServer {
    calls: AtomicU64,
}

#[async_trait]
impl crate::Connection for DeadServer {
    async fn execute(&self, _: crate::Command) -> KvResult<crate::Reply> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        Err(KvError::new(ErrorKind::Timeout, "no answer"))
    }
}

#[tokio::test]
async fn rate_limiter_behind_the_breaker_fails_closed_without_calling() {
    use crate::rate_limit::{
        DecisionSource, RateLimitRule, RateLimiter, RateLimiterOptions, ServerRateLimiter,
    };
    let clock = ManualClock::new(0);
    let dead = Arc::new(DeadServer::default());
    let rule = RateLimitRule::from_millis(10_000, 3).unwrap();
    for (fail_open, source) in [
        (false, DecisionSource::FailedClosed),
        (true, DecisionSource::FailedOpen),
    ] {
        let mut options = RateLimiterOptions::builder().circuit_breaker(breaker(&clock));
        if fail_open {
            options = options.fail_open();
        }
        let limiter = ServerRateLimiter::new(dead.clone(), options.build().unwrap());
        let before = dead.calls.load(Ordering::SeqCst);
        for _ in 0..5 {
            let d = limiter
                .consume("10.0.0.1|/sign-in", &rule, 1)
                .await
                .unwrap();
            assert_eq!((d.source, d.allowed), (source, fail_open));
        }
        assert_eq!(
            dead.calls.load(Ordering::SeqCst) - before,
            2,
            "the breaker opened after 2 failures; 3 decisions cost no round trip"
        );
    }
}

/// A session index whose server never answers.
struct DeadIndex;

#[async_trait]
impl SessionIndex for DeadIndex {
    async fn create(&self, _: &str, _: &str, _: Bytes, _: SystemTime) -> KvResult<CreateOutcome> {
        Err(KvError::new(ErrorKind::Timeout, "no answer"))
    }
    async fn get(&self, _: &str) -> KvResult<Option<Session>> {
        Err(KvError::new(ErrorKind::Timeout, "no answer"))
    }
    async fn refresh(&self, _: &str, _: SystemTime, _: Option<Bytes>) -> KvResult<bool> {
        Err(KvError::new(ErrorKind::Timeout, "no answer"))
    }
    async fn delete(&self, _: &str) -> KvResult<bool> {
        Err(KvError::new(ErrorKind::Timeout, "no answer"))
    }
    async fn delete_by_id(&self, _: &str) -> KvResult<bool> {
        Err(KvError::new(ErrorKind::Timeout, "no answer"))
    }
    async fn list(&self, _: &str) -> KvResult<Vec<Session>> {
        Err(KvError::new(ErrorKind::Timeout, "no answer"))
    }
    async fn revoke_all(&self, _: &str) -> KvResult<u64> {
        Err(KvError::new(ErrorKind::Timeout, "no answer"))
    }
    async fn revoke_all_except(&self, _: &str, _: &str) -> KvResult<u64> {
        Err(KvError::new(ErrorKind::Timeout, "no answer"))
    }
    async fn count(&self, _: &str) -> KvResult<u64> {
        Err(KvError::new(ErrorKind::Timeout, "no answer"))
    }
    fn session_id(&self, token: &str) -> KvResult<String> {
        Ok(token.to_owned())
    }
}

#[tokio::test]
async fn session_index_skip_misses_reads_but_never_fakes_sign_in_or_out() {
    let clock = ManualClock::new(0);
    let index =
        ResilientSessionIndex::new(Arc::new(DeadIndex), breaker(&clock), OnUnavailable::Skip);
    let later = SystemTime::now() + Duration::from_secs(60);
    assert_eq!(index.get("t").await.unwrap(), None);
    assert!(index.list("u").await.unwrap().is_empty());
    assert_eq!(index.count("u").await.unwrap(), 0);
    assert!(!index.refresh("t", later, None).await.unwrap());
    for e in [
        index
            .create("u", "t", "v".into(), later)
            .await
            .map(|_| ())
            .unwrap_err(),
        index.delete("t").await.map(|_| ()).unwrap_err(),
        index.delete_by_id("t").await.map(|_| ()).unwrap_err(),
        index.revoke_all("u").await.map(|_| ()).unwrap_err(),
        index
            .revoke_all_except("u", "t")
            .await
            .map(|_| ())
            .unwrap_err(),
    ] {
        assert!(e.is_unavailable(), "{e}");
    }
    let stats = index.breaker().stats();
    assert_eq!(
        stats.skipped, 4,
        "only the four reads were answered by Skip"
    );
}

#[tokio::test]
async fn session_index_fallback_serves_from_memory() {
    use crate::session::{MemorySessionIndex, SessionIndexOptions};
    let clock = ManualClock::new(0);
    let fallback: Arc<dyn SessionIndex> = Arc::new(MemorySessionIndex::new(
        SessionIndexOptions::builder().build().unwrap(),
    ));
    let index = ResilientSessionIndex::new(
        Arc::new(DeadIndex),
        breaker(&clock),
        OnUnavailable::Fallback(fallback),
    );
    let later = SystemTime::now() + Duration::from_secs(60);
    let created = index.create("u", "tok", "v".into(), later).await.unwrap();
    assert!(
        matches!(created, CreateOutcome::Created { .. }),
        "{created:?}"
    );
    assert_eq!(
        index.get("tok").await.unwrap().unwrap().value,
        Bytes::from("v")
    );
    assert_eq!(index.revoke_all("u").await.unwrap(), 1);
    assert_eq!(index.breaker().stats().fallbacks, 3);
}
