//! Distributed locks on every topology: one owner among 200 racers from both sides,
//! fencing tokens that only go up, and a lock taken over after expiry that the first
//! owner can neither release nor extend. Each case checks the raw lock and counter keys.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kv_contract::lock::{
    Acquisition, ExclusiveRun, ExtendOutcome, LockExt, LockOptions, ReleaseOutcome,
};
use kv_contract::{ErrorKind, Lock, LockKeys, MemoryLock, ServerLock};
use tokio::task::JoinSet;

use super::assert_prefix_empty;
use crate::context::{BackendHandle, Ctx};
use crate::probe::Pttl;

/// The lock store of one side of the topology, on this case's prefix.
fn lock_on(ctx: &Ctx, handle: BackendHandle) -> Arc<dyn Lock> {
    let options = LockOptions::builder()
        .prefix(ctx.prefix().as_str())
        .build()
        .expect("test prefix is a valid lock prefix");
    match handle {
        BackendHandle::Memory(ks) => Arc::new(MemoryLock::new(ks, options)),
        BackendHandle::Server(conn) => Arc::new(ServerLock::new(conn, options)),
    }
}

fn locks(ctx: &Ctx) -> [Arc<dyn Lock>; 2] {
    [lock_on(ctx, ctx.backend_a()), lock_on(ctx, ctx.backend_b())]
}

fn keys(ctx: &Ctx, name: &str) -> LockKeys {
    ctx.codec().lock_keys(name).expect("valid lock name")
}

/// The raw state of a lock: the token stored in its key and that key's PTTL.
async fn raw_lock(ctx: &Ctx, name: &str) -> (Option<Vec<u8>>, Pttl) {
    let k = keys(ctx, name);
    (ctx.probe.get(&k.lock).await, ctx.probe.pttl(&k.lock).await)
}

/// Asserts the fencing counter holds `n` and has no expiry.
async fn assert_fence(ctx: &Ctx, name: &str, n: u64) {
    let k = keys(ctx, name);
    assert_eq!(
        ctx.probe.get(&k.fence).await,
        Some(n.to_string().into_bytes()),
        "raw fencing counter"
    );
    assert_eq!(
        ctx.probe.pttl(&k.fence).await,
        Pttl::Persistent,
        "the fencing counter never expires"
    );
}

fn in_range(pttl: Pttl, range: std::ops::RangeInclusive<u64>) -> bool {
    matches!(pttl, Pttl::Ms(ms) if range.contains(&ms))
}

/// 200 concurrent acquires of one lock, alternating sides (so, in the mixed topologies,
/// both clients): exactly one owner; the lock key holds the winner's token with the TTL,
/// the counter holds its fencing token; every loser is told how long the lock has left.
pub async fn concurrent_acquire_has_one_owner(ctx: Ctx) {
    const RACERS: usize = 200;
    let sides = locks(&ctx);
    let start = Arc::new(tokio::sync::Barrier::new(RACERS));
    let mut set = JoinSet::new();
    for i in 0..RACERS {
        let lock = sides[i % 2].clone();
        let start = start.clone();
        set.spawn(async move {
            start.wait().await;
            lock.acquire("cleanup", Duration::from_secs(60)).await
        });
    }
    let mut owners = Vec::new();
    let mut held = 0;
    while let Some(r) = set.join_next().await {
        match r.expect("racer panicked").expect("acquire") {
            Acquisition::Acquired(g) => owners.push(g),
            Acquisition::Held { expires_in } => {
                let left = expires_in.expect("the lock has a TTL");
                assert!(left <= Duration::from_secs(60), "{left:?}");
                held += 1;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(owners.len(), 1, "exactly one owner: {owners:?}");
    assert_eq!(held, RACERS - 1);
    let owner = &owners[0];
    assert_eq!(owner.fence(), 1, "first acquire of a fresh name");
    let (token, pttl) = raw_lock(&ctx, "cleanup").await;
    assert_eq!(token.as_deref(), Some(owner.token().as_bytes()));
    assert!(in_range(pttl, 55_000..=60_000), "{pttl:?}");
    assert_fence(&ctx, "cleanup", 1).await;
    let [a, b] = &sides;
    assert_eq!(b.release(owner).await.unwrap(), ReleaseOutcome::Released);
    assert_eq!(raw_lock(&ctx, "cleanup").await.1, Pttl::Missing);
    assert_eq!(a.release(owner).await.unwrap(), ReleaseOutcome::Lost);
}

/// 100 acquire/release cycles alternating sides: every fencing token is greater than the
/// one before, a refused acquire (from the other side, while held) draws none, and the
/// counter ends at exactly the number of successful acquires, without expiry.
pub async fn fencing_tokens_strictly_increase(ctx: Ctx) {
    let sides = locks(&ctx);
    let ttl = Duration::from_secs(30);
    let mut last = 0;
    for i in 0..100 {
        let (me, other) = (&sides[i % 2], &sides[(i + 1) % 2]);
        let guard = me
            .acquire("fenced", ttl)
            .await
            .unwrap()
            .into_guard()
            .unwrap_or_else(|| panic!("cycle {i}: the lock is free"));
        assert!(
            guard.fence() > last,
            "cycle {i}: fence {} after {last}",
            guard.fence()
        );
        last = guard.fence();
        assert!(!other.acquire("fenced", ttl).await.unwrap().is_acquired());
        assert_eq!(
            other.release(&guard).await.unwrap(),
            ReleaseOutcome::Released
        );
    }
    assert_eq!(last, 100);
    assert_fence(&ctx, "fenced", 100).await;
    assert_eq!(raw_lock(&ctx, "fenced").await.1, Pttl::Missing);
}

/// A lock that expired and was taken by another owner survives the first owner's
/// `release` and `extend` (from either side): key, token and TTL are the new owner's.
pub async fn expired_lock_survives_old_owner(ctx: Ctx) {
    let [a, b] = locks(&ctx);
    let first = a
        .acquire("job", Duration::from_millis(80))
        .await
        .unwrap()
        .into_guard()
        .expect("free");
    // Bounded wait for the expiry, read from the store itself.
    let waited = Instant::now();
    while raw_lock(&ctx, "job").await.1 != Pttl::Missing {
        assert!(
            waited.elapsed() < Duration::from_secs(3),
            "an 80 ms lock still exists after 3 s"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let second = b
        .acquire("job", Duration::from_secs(30))
        .await
        .unwrap()
        .into_guard()
        .expect("expired, so free");
    assert!(second.fence() > first.fence());
    for side in [&a, &b] {
        assert_eq!(side.release(&first).await.unwrap(), ReleaseOutcome::Lost);
        assert_eq!(
            side.extend(&first, Duration::from_millis(5)).await.unwrap(),
            ExtendOutcome::Lost
        );
    }
    let (token, pttl) = raw_lock(&ctx, "job").await;
    assert_eq!(token.as_deref(), Some(second.token().as_bytes()));
    assert!(in_range(pttl, 25_000..=30_000), "untouched TTL: {pttl:?}");
    assert_eq!(
        a.extend(&second, Duration::from_secs(90)).await.unwrap(),
        ExtendOutcome::Extended,
        "the owner may extend from either side"
    );
    assert!(in_range(raw_lock(&ctx, "job").await.1, 85_000..=90_000));
    assert_eq!(a.release(&second).await.unwrap(), ReleaseOutcome::Released);
    assert_eq!(raw_lock(&ctx, "job").await.1, Pttl::Missing);
    assert_fence(&ctx, "job", second.fence()).await;
}

/// Bad names and TTLs are rejected before any I/O, with messages naming them, and
/// nothing is written. A fencing counter that is not an integer makes `acquire` fail
/// with a script error and write nothing (the script increments before it locks).
pub async fn lock_input_rejected_before_io(ctx: Ctx) {
    let [a, b] = locks(&ctx);
    let ttl = Duration::from_secs(1);
    for (name, ttl, want) in [
        ("", ttl, "empty lock name"),
        ("a{b}", ttl, "\"a{b}\""),
        ("job", Duration::ZERO, "lock TTL 0ns"),
        ("job", kv_contract::ttl::MAX_TTL * 2, "too large"),
    ] {
        let e = a.acquire(name, ttl).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
        assert!(e.to_string().contains(want), "{e}");
    }
    assert_prefix_empty(&ctx).await;
    let guard = b.acquire("job", ttl).await.unwrap().into_guard().unwrap();
    let e = a.extend(&guard, Duration::ZERO).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
    assert_eq!(a.release(&guard).await.unwrap(), ReleaseOutcome::Released);

    let k = keys(&ctx, "broken");
    ctx.probe.set(&k.fence, b"x", None).await;
    let e = b.acquire("broken", ttl).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Script, "{e}");
    assert!(e.to_string().contains("lock_acquire"), "{e}");
    assert_eq!(
        ctx.probe.pttl(&k.lock).await,
        Pttl::Missing,
        "nothing locked"
    );
    assert_eq!(ctx.probe.get(&k.fence).await.as_deref(), Some(&b"x"[..]));
}

/// `run_exclusive` from 20 tasks on both sides at once: the closure runs exactly once,
/// under fencing token 1, the other 19 are skipped, and the lock is released afterwards.
pub async fn run_exclusive_runs_once(ctx: Ctx) {
    const TASKS: usize = 20;
    let sides = locks(&ctx);
    let skipped = Arc::new(AtomicUsize::new(0));
    let start = Arc::new(tokio::sync::Barrier::new(TASKS));
    let mut set = JoinSet::new();
    for i in 0..TASKS {
        let lock = sides[i % 2].clone();
        let (skipped, start) = (skipped.clone(), start.clone());
        set.spawn(async move {
            start.wait().await;
            let waiting = skipped.clone();
            let run = lock
                .run_exclusive("cleanup", Duration::from_secs(30), |guard| async move {
                    // Hold the lock until every other task has been turned away.
                    let held = Instant::now();
                    while waiting.load(Ordering::SeqCst) < TASKS - 1 {
                        assert!(held.elapsed() < Duration::from_secs(20), "others stalled");
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                    (i, guard.fence())
                })
                .await
                .expect("run_exclusive");
            if let ExclusiveRun::Skipped { expires_in } = &run {
                assert!(expires_in.is_some(), "the holder's lock has a TTL");
                skipped.fetch_add(1, Ordering::SeqCst);
            }
            run
        });
    }
    let mut ran = Vec::new();
    while let Some(r) = set.join_next().await {
        match r.expect("task panicked") {
            ExclusiveRun::Ran {
                output,
                fence,
                release,
            } => {
                assert_eq!(output.1, fence);
                assert_eq!(release.unwrap(), ReleaseOutcome::Released);
                ran.push(output.0);
            }
            ExclusiveRun::Skipped { .. } => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(ran.len(), 1, "exactly one run: {ran:?}");
    assert_eq!(skipped.load(Ordering::SeqCst), TASKS - 1);
    assert_eq!(raw_lock(&ctx, "cleanup").await.1, Pttl::Missing);
    assert_fence(&ctx, "cleanup", 1).await;
}
