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
use super::connection::{options, start};
use crate::context::{unique_prefix, BackendHandle, BackendKind, Ctx};
use crate::probe::{Probe, Pttl};
use crate::report;
use crate::server::ServerConfig;

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

/// The fencing tokens a fresh counter may start at when its acquire runs between the data
/// side's clock readings `before_ms` and `after_ms`: the clock in µs.
fn floor_window(before_ms: u64, after_ms: u64) -> std::ops::RangeInclusive<u64> {
    before_ms * 1000..=after_ms * 1000 + 999
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
    let before_ms = ctx.probe.now_ms().await;
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
    let floor = floor_window(before_ms, ctx.probe.now_ms().await);
    assert!(
        floor.contains(&owner.fence()),
        "first acquire of a fresh name starts at the clock in µs: {} not in {floor:?}",
        owner.fence()
    );
    let (token, pttl) = raw_lock(&ctx, "cleanup").await;
    assert_eq!(token.as_deref(), Some(owner.token().as_bytes()));
    assert!(in_range(pttl, 55_000..=60_000), "{pttl:?}");
    assert_fence(&ctx, "cleanup", owner.fence()).await;
    let [a, b] = &sides;
    assert_eq!(b.release(owner).await.unwrap(), ReleaseOutcome::Released);
    assert_eq!(raw_lock(&ctx, "cleanup").await.1, Pttl::Missing);
    assert_eq!(a.release(owner).await.unwrap(), ReleaseOutcome::Lost);
}

/// 100 acquire/release cycles alternating sides: every fencing token is greater than the
/// one before, a refused acquire (from the other side, while held) draws none, and the
/// counter ends at the last token drawn, without expiry.
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
            ctx.probe.get(&keys(&ctx, "fenced").fence).await,
            Some(last.to_string().into_bytes()),
            "cycle {i}: a refused acquire draws no token"
        );
        assert_eq!(
            other.release(&guard).await.unwrap(),
            ReleaseOutcome::Released
        );
    }
    assert_fence(&ctx, "fenced", last).await;
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
/// nothing is written. (A fencing counter that is not an integer: see
/// `lock_corrupt_fence_counters_restart_at_the_floor`.)
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
}

/// A fencing counter Redis's `INCR` would refuse or misread (`007`, `+5`, ` 5`, `x`, a
/// negative `-5`, a hash), planted raw, reads as lost on every topology: `acquire`
/// succeeds (never an error after the lock is written, so no lock is left held by
/// nobody) with the clock floor as its token, rewrites the counter to that token without
/// expiry, and the guard releases normally, leaving no lock key behind.
pub async fn lock_corrupt_fence_counters_restart_at_the_floor(ctx: Ctx) {
    let [a, b] = locks(&ctx);
    let ttl = Duration::from_secs(30);
    for (i, raw) in ["007", "+5", "-5", " 5", "x", "hash"].iter().enumerate() {
        let name = format!("broken{i}");
        let k = keys(&ctx, &name);
        if *raw == "hash" {
            ctx.probe.set_hash(&k.fence, &[("f", b"v")], None).await;
        } else {
            ctx.probe.set(&k.fence, raw.as_bytes(), None).await;
        }
        let before_ms = ctx.probe.now_ms().await;
        let guard = a
            .acquire(&name, ttl)
            .await
            .unwrap_or_else(|e| panic!("counter {raw:?}: {e}"))
            .into_guard()
            .unwrap_or_else(|| panic!("counter {raw:?}: the lock is free"));
        let floor = floor_window(before_ms, ctx.probe.now_ms().await);
        assert!(
            floor.contains(&guard.fence()),
            "counter {raw:?}: token {} not in {floor:?}",
            guard.fence()
        );
        assert_fence(&ctx, &name, guard.fence()).await;
        let (token, pttl) = raw_lock(&ctx, &name).await;
        assert_eq!(token.as_deref(), Some(guard.token().as_bytes()), "{raw:?}");
        assert!(in_range(pttl, 25_000..=30_000), "{raw:?}: {pttl:?}");
        assert_eq!(b.release(&guard).await.unwrap(), ReleaseOutcome::Released);
        assert_eq!(raw_lock(&ctx, &name).await.1, Pttl::Missing, "{raw:?}");
        let next = b.acquire(&name, ttl).await.unwrap().into_guard().unwrap();
        assert!(next.fence() > guard.fence(), "{raw:?}: counting goes on");
        assert_eq!(a.release(&next).await.unwrap(), ReleaseOutcome::Released);
    }
}

/// `run_exclusive` from 20 tasks on both sides at once: the closure runs exactly once,
/// under the first fencing token of the name, the other 19 are skipped, and the lock is
/// released afterwards.
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
                ran.push((output.0, fence));
            }
            ExclusiveRun::Skipped { .. } => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(ran.len(), 1, "exactly one run: {ran:?}");
    assert_eq!(skipped.load(Ordering::SeqCst), TASKS - 1);
    assert_eq!(raw_lock(&ctx, "cleanup").await.1, Pttl::Missing);
    assert_fence(&ctx, "cleanup", ran[0].1).await;
}

/// Acquires and releases `name` once, returning the token (retrying for up to 15 s while
/// the server is coming back).
async fn cycle(lock: &ServerLock, name: &str) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        match lock.acquire(name, Duration::from_secs(30)).await {
            Ok(Acquisition::Acquired(guard)) => {
                assert_eq!(
                    lock.release(&guard).await.unwrap(),
                    ReleaseOutcome::Released
                );
                return guard.fence();
            }
            Ok(other) => panic!("{name} should be free: {other:?}"),
            Err(e) if e.is_unavailable() && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("acquire {name}: {e}"),
        }
    }
}

/// Fencing tokens never go back, even when the counter is lost: a few acquires, then
/// `FLUSHDB` (the same as an eviction of the counter or a `clear` of a flat layout), then
/// a restart of the server, which has no persistence (the counter is gone with
/// everything else); each time the next token is strictly greater than every earlier
/// one, because tokens never fall below the server's clock in µs.
pub async fn fencing_tokens_survive_flushdb_and_restart(kind: BackendKind) {
    let server = start(ServerConfig::default()).await;
    let conn = kind
        .connect(&options(&server.url(), Duration::from_millis(500)))
        .await
        .unwrap();
    let lock_options = LockOptions::builder()
        .prefix(unique_prefix("fence-restart"))
        .build()
        .unwrap();
    let lock = ServerLock::new(conn, lock_options.clone());
    let name = "nightly";
    let fence_key = lock_options.codec.lock_keys(name).unwrap().fence;
    let mut seen = Vec::new();
    for _ in 0..3 {
        seen.push(cycle(&lock, name).await);
    }
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "{seen:?}");

    let probe = Probe::connect(&server.url()).await;
    let _: () = probe.command(&redis::cmd("FLUSHDB")).await;
    assert_eq!(probe.get(&fence_key).await, None, "the counter is gone");
    let after_flush = cycle(&lock, name).await;
    assert!(
        after_flush > *seen.iter().max().unwrap(),
        "after FLUSHDB: token {after_flush}, earlier {seen:?}"
    );
    seen.push(after_flush);
    seen.push(cycle(&lock, name).await);

    let config = tokio::task::spawn_blocking(move || server.kill())
        .await
        .unwrap();
    let server = start(config).await;
    let after_restart = cycle(&lock, name).await;
    assert!(
        after_restart > *seen.iter().max().unwrap(),
        "after a restart without persistence: token {after_restart}, earlier {seen:?}; \
         server log:\n{}",
        server.log_tail(20)
    );
    let probe = Probe::connect(&server.url()).await;
    assert_eq!(
        probe.get(&fence_key).await,
        Some(after_restart.to_string().into_bytes())
    );
    assert_eq!(probe.pttl(&fence_key).await, Pttl::Persistent);
    report::metric(format!(
        "fencing_tokens_survive_flushdb_and_restart [{}]: tokens {seen:?}, then \
         {after_restart} after the restart",
        kind.name()
    ));
}
