//! Rate limiting on every topology: exact admission under 1000 concurrent consumes,
//! window boundaries against the stored `PTTL`, byte-for-byte agreement between the two
//! sides and the memory spec, recovery from `SCRIPT FLUSH`, skew resistance, peek, cost
//! and reset, the blocked cache, and buckets written by the earlier rustauth limiter.
//!
//! Every case ends by checking, through the raw probe, that no key under the case's
//! `rate-limit:` namespace is left without a TTL.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use kv_contract::memory::{ManualClock, MemoryKeyspace};
use kv_contract::rate_limit::{
    DecisionSource, MemoryRateLimiter, RateLimitAlgorithm, RateLimitDecision, RateLimitRule,
    RateLimiter, RateLimiterOptions, RateLimiterOptionsBuilder, ServerRateLimiter,
};
use kv_contract::wire::{ScanCursor, ScanPage};
use kv_contract::SharedConnection;
use kv_contract::{async_trait, Command, Connection, ErrorKind, KvResult, Namespace, Reply};
use tokio::task::JoinSet;

use crate::context::{BackendHandle, Ctx};
use crate::probe::{Pttl, Stored};

/// Concurrent consumers in the race case.
const RACERS: usize = 1000;
/// How far a real `PTTL` may lag behind the TTL just set, on a loaded machine.
const SLACK_MS: u64 = 5_000;

fn limiter(handle: BackendHandle, options: RateLimiterOptions) -> Arc<dyn RateLimiter> {
    match handle {
        BackendHandle::Memory(ks) => Arc::new(MemoryRateLimiter::new(ks, options)),
        BackendHandle::Server(conn) => Arc::new(ServerRateLimiter::new(conn, options)),
    }
}

fn options(ctx: &Ctx, algorithm: RateLimitAlgorithm) -> RateLimiterOptionsBuilder {
    RateLimiterOptions::builder()
        .codec(ctx.codec())
        .algorithm(algorithm)
}

/// A limiter on each side of the topology, with the same options.
fn pair(ctx: &Ctx, options: RateLimiterOptions) -> (Arc<dyn RateLimiter>, Arc<dyn RateLimiter>) {
    (
        limiter(ctx.backend_a(), options.clone()),
        limiter(ctx.backend_b(), options),
    )
}

fn key(ctx: &Ctx, bucket: &str) -> Vec<u8> {
    ctx.codec()
        .key(Namespace::RateLimit, bucket)
        .expect("valid bucket")
}

fn rule(window_ms: u64, max: u64) -> RateLimitRule {
    RateLimitRule::from_millis(window_ms, max).expect("valid rule")
}

/// A fresh caller clock reading `at`.
fn clock(at: u64) -> (ManualClock, Arc<ManualClock>) {
    let c = ManualClock::new(at);
    (c.clone(), Arc::new(c))
}

fn wall_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as u64
}

fn field(stored: &Option<Stored>, name: &str) -> Option<u64> {
    match stored {
        Some(Stored::Hash(h)) => h
            .get(name.as_bytes())
            .map(|v| String::from_utf8_lossy(v).parse().expect("numeric field")),
        _ => None,
    }
}

async fn pttl_ms(ctx: &Ctx, bucket: &str) -> u64 {
    match ctx.probe.pttl(&key(ctx, bucket)).await {
        Pttl::Ms(ms) => ms,
        other => panic!("bucket {bucket}: PTTL {other:?}, expected a TTL"),
    }
}

/// Every key under this case's `rate-limit:` namespace has a TTL; returns how many there
/// are (so a case can also check it wrote what it expected).
pub async fn assert_rate_limit_keys_have_ttl(ctx: &Ctx) -> usize {
    let ns = ctx.codec().namespace(Namespace::RateLimit);
    let keys = ctx.probe.keys_with_prefix(ns.as_bytes()).await;
    for k in &keys {
        match ctx.probe.pttl(k).await {
            Pttl::Ms(_) | Pttl::Missing => {}
            Pttl::Persistent => panic!("rate-limit key {} has no TTL", String::from_utf8_lossy(k)),
        }
    }
    keys.len()
}

/// 1000 consumes of one bucket at once, half through each side: exactly `max` are
/// admitted, for every algorithm, and the stored state counts exactly those.
pub async fn rate_limit_concurrent_consumes_admit_exactly_max(ctx: Ctx) {
    const MAX: u64 = 37;
    const WINDOW: u64 = 3_600_000;
    let r = rule(WINDOW, MAX);
    for algorithm in RateLimitAlgorithm::ALL {
        let (a, b) = pair(&ctx, options(&ctx, algorithm).build().unwrap());
        let bucket = format!("race-{}", algorithm.name());
        let start = Arc::new(tokio::sync::Barrier::new(RACERS));
        let mut set = JoinSet::new();
        for i in 0..RACERS {
            let side = if i % 2 == 0 { a.clone() } else { b.clone() };
            let (bucket, start) = (bucket.clone(), start.clone());
            set.spawn(async move {
                start.wait().await;
                side.consume(&bucket, &r, 1).await.unwrap()
            });
        }
        let mut decisions = Vec::with_capacity(RACERS);
        while let Some(d) = set.join_next().await {
            decisions.push(d.expect("racer panicked"));
        }
        let allowed = decisions.iter().filter(|d| d.allowed).count() as u64;
        assert_eq!(allowed, MAX, "{}: admitted", algorithm.name());
        for d in decisions.iter().filter(|d| !d.allowed) {
            assert!(
                d.remaining == 0 && d.retry_after_ms > 0 && d.source == DecisionSource::Store,
                "{}: denial {d:?}",
                algorithm.name()
            );
        }
        let stored = ctx.probe.value(&key(&ctx, &bucket)).await;
        let ttl = pttl_ms(&ctx, &bucket).await;
        match algorithm {
            RateLimitAlgorithm::FixedWindow => {
                assert_eq!(stored, Some(Stored::String(MAX.to_string().into_bytes())));
                assert!(ttl <= WINDOW && ttl + SLACK_MS >= WINDOW, "PTTL {ttl}");
            }
            RateLimitAlgorithm::LastRequest => {
                assert_eq!(field(&stored, "count"), Some(MAX));
                assert!(ttl <= WINDOW && ttl + SLACK_MS >= WINDOW, "PTTL {ttl}");
            }
            RateLimitAlgorithm::SlidingWindow => {
                assert_eq!(field(&stored, "current"), Some(MAX));
                assert_eq!(field(&stored, "previous"), Some(0));
                assert!(ttl <= 2 * WINDOW && ttl + SLACK_MS >= WINDOW, "PTTL {ttl}");
            }
            _ => {
                // GCRA: 37 units of a 37-unit burst put the TAT one full window ahead.
                let now = ctx.probe.now_ms().await;
                let tat = field(&stored, "tat").expect("tat");
                assert_eq!(field(&stored, "tat_rem"), Some(0));
                assert!(
                    tat <= now + WINDOW && tat + SLACK_MS >= now + WINDOW,
                    "tat {tat}"
                );
                assert!(ttl <= WINDOW && ttl + SLACK_MS >= WINDOW, "PTTL {ttl}");
            }
        }
    }
    assert_eq!(assert_rate_limit_keys_have_ttl(&ctx).await, 4);
}

/// Window edges, against the stored `PTTL`: a fixed window on the server's clock (short
/// window, real time) and exact millisecond boundaries of the other algorithms on a
/// caller clock. A denial never moves the expiry.
pub async fn rate_limit_window_boundaries_follow_pttl(ctx: Ctx) {
    // Fixed window, 300 ms, on the data side's own clock.
    let (a, b) = pair(
        &ctx,
        options(&ctx, RateLimitAlgorithm::FixedWindow)
            .build()
            .unwrap(),
    );
    const FIXED: u64 = 300;
    let r = rule(FIXED, 2);
    let d1 = a.consume("fixed", &r, 1).await.unwrap();
    assert_eq!(
        (d1.allowed, d1.remaining, d1.reset_after_ms),
        (true, 1, FIXED + 1)
    );
    let p0 = pttl_ms(&ctx, "fixed").await;
    assert!(p0 <= FIXED, "PTTL {p0}");
    assert!(b.consume("fixed", &r, 1).await.unwrap().allowed);
    let p1 = pttl_ms(&ctx, "fixed").await;
    let denied = a.consume("fixed", &r, 1).await.unwrap();
    let p2 = ctx.probe.pttl(&key(&ctx, "fixed")).await;
    assert!(!denied.allowed);
    assert_eq!(denied.retry_after_ms, denied.reset_after_ms);
    if let Pttl::Ms(p2) = p2 {
        assert!(
            p2 <= p1 && p2 < denied.retry_after_ms && denied.retry_after_ms <= p1 + 1,
            "retry {} should be PTTL + 1 (PTTL {p1} before, {p2} after)",
            denied.retry_after_ms
        );
        assert_eq!(
            ctx.probe.value(&key(&ctx, "fixed")).await,
            Some(Stored::String(b"2".to_vec())),
            "a denial writes nothing"
        );
    }
    tokio::time::sleep(Duration::from_millis(denied.retry_after_ms + 20)).await;
    assert_eq!(ctx.probe.pttl(&key(&ctx, "fixed")).await, Pttl::Missing);
    let fresh = b.consume("fixed", &r, 1).await.unwrap();
    assert_eq!((fresh.allowed, fresh.remaining), (true, 1));
    assert!(pttl_ms(&ctx, "fixed").await <= FIXED);

    // The other algorithms, on a caller clock: admitted exactly at now + retry_after,
    // denied one millisecond before; after an admission PTTL matches reset_after.
    const W: u64 = 60_000;
    let r = rule(W, 3);
    let base = wall_ms() / W * W + 15_000;
    for algorithm in [
        RateLimitAlgorithm::LastRequest,
        RateLimitAlgorithm::SlidingWindow,
        RateLimitAlgorithm::Gcra { burst: None },
    ] {
        let name = algorithm.name();
        let (manual, c) = clock(base);
        let (a, b) = pair(
            &ctx,
            options(&ctx, algorithm).caller_clock(c).build().unwrap(),
        );
        let bucket = format!("edge-{name}");
        let mut last = None;
        for i in 0..3 {
            let side = if i % 2 == 0 { &a } else { &b };
            let d = side.consume(&bucket, &r, 1).await.unwrap();
            assert!(d.allowed, "{name}: unit {i}");
            last = Some(d);
        }
        let last = last.expect("three decisions");
        let ttl = pttl_ms(&ctx, &bucket).await;
        assert!(
            last.reset_after_ms >= ttl && last.reset_after_ms <= ttl + SLACK_MS + 1,
            "{name}: reset {} vs PTTL {ttl}",
            last.reset_after_ms
        );
        let before = ctx.probe.value(&key(&ctx, &bucket)).await;
        let denied = a.consume(&bucket, &r, 1).await.unwrap();
        assert!(
            !denied.allowed && denied.retry_after_ms >= 1,
            "{name}: {denied:?}"
        );
        assert!(
            denied.retry_after_ms <= denied.reset_after_ms,
            "{name}: {denied:?}"
        );
        assert_eq!(
            ctx.probe.value(&key(&ctx, &bucket)).await,
            before,
            "{name}: denial wrote"
        );
        assert!(
            pttl_ms(&ctx, &bucket).await <= ttl,
            "{name}: denial moved the expiry"
        );
        manual.set_ms(base + denied.retry_after_ms - 1);
        let early = b.consume(&bucket, &r, 1).await.unwrap();
        assert!(!early.allowed, "{name}: 1 ms early: {early:?}");
        assert_eq!(early.retry_after_ms, 1, "{name}");
        manual.set_ms(base + denied.retry_after_ms);
        let on_time = a.consume(&bucket, &r, 1).await.unwrap();
        assert!(on_time.allowed, "{name}: on time: {on_time:?}");
        let ttl = pttl_ms(&ctx, &bucket).await;
        assert!(
            on_time.reset_after_ms >= ttl && on_time.reset_after_ms <= ttl + SLACK_MS + 1,
            "{name}: reset {} vs PTTL {ttl}",
            on_time.reset_after_ms
        );
    }
    assert_eq!(assert_rate_limit_keys_have_ttl(&ctx).await, 4);
}

/// A tiny deterministic generator for the step sequence.
struct Steps(u64);

impl Steps {
    fn next(&mut self, below: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % below
    }
}

fn same_decision(
    algorithm: RateLimitAlgorithm,
    x: &RateLimitDecision,
    y: &RateLimitDecision,
) -> bool {
    let exact =
        (x.allowed, x.limit, x.remaining, x.source) == (y.allowed, y.limit, y.remaining, y.source);
    let close = |p: u64, q: u64| p.abs_diff(q) <= SLACK_MS;
    match algorithm {
        // The fixed window's times are its key's PTTL: real time, not the caller clock.
        RateLimitAlgorithm::FixedWindow => {
            exact
                && close(x.retry_after_ms, y.retry_after_ms)
                && close(x.reset_after_ms, y.reset_after_ms)
        }
        _ => exact && x == y,
    }
}

/// One bucket driven alternately through the two sides, another through side `a` only,
/// and a third through a memory limiter on its own keyspace (the spec), on the same
/// caller clock: every step gives the same decision and leaves the same bytes.
pub async fn rate_limit_sides_agree_byte_for_byte(ctx: Ctx) {
    const W: u64 = 60_000;
    let r = rule(W, 3);
    let spec_keyspace = MemoryKeyspace::new();
    for algorithm in RateLimitAlgorithm::ALL {
        let name = algorithm.name();
        let (manual, c) = clock(wall_ms() / W * W);
        let opts = options(&ctx, algorithm).caller_clock(c).build().unwrap();
        let (a, b) = pair(&ctx, opts.clone());
        let spec = MemoryRateLimiter::new(spec_keyspace.clone(), opts);
        let (x, y) = (format!("mixed-{name}"), format!("single-{name}"));
        let mut steps = Steps(0x5eed ^ name.len() as u64);
        for i in 0..30 {
            let jump = match steps.next(6) {
                0 => W + steps.next(W),
                _ => steps.next(W / 3),
            };
            manual.advance(Duration::from_millis(jump));
            let cost = 1 + steps.next(2);
            let peek = steps.next(5) == 0;
            let mixed_side = if i % 2 == 0 { &a } else { &b };
            let (dx, dy, ds) = if peek {
                (
                    mixed_side.peek(&x, &r).await.unwrap(),
                    a.peek(&y, &r).await.unwrap(),
                    spec.peek(&x, &r).await.unwrap(),
                )
            } else {
                (
                    mixed_side.consume(&x, &r, cost).await.unwrap(),
                    a.consume(&y, &r, cost).await.unwrap(),
                    spec.consume(&x, &r, cost).await.unwrap(),
                )
            };
            assert!(
                same_decision(algorithm, &dx, &dy) && same_decision(algorithm, &dx, &ds),
                "{name} step {i} (peek {peek}, cost {cost}): mixed {dx:?}, single {dy:?}, spec {ds:?}"
            );
            let sx = ctx.probe.value(&key(&ctx, &x)).await;
            let sy = ctx.probe.value(&key(&ctx, &y)).await;
            let ss = spec_keyspace
                .inspect(&key(&ctx, &x))
                .map(|e| match e.value {
                    kv_contract::memory::Value::String(b) => Stored::String(b.to_vec()),
                    kv_contract::memory::Value::Hash(h) => Stored::Hash(
                        h.into_iter()
                            .map(|(k, v)| (k.to_vec(), v.to_vec()))
                            .collect(),
                    ),
                    other => Stored::Other(other.type_name().to_owned()),
                });
            assert!(sx.is_some(), "{name} step {i}: nothing stored");
            assert_eq!(sx, sy, "{name} step {i}: mixed vs single bytes");
            assert_eq!(sx, ss, "{name} step {i}: backend vs memory spec bytes");
            let (px, py) = (pttl_ms(&ctx, &x).await, pttl_ms(&ctx, &y).await);
            assert!(
                px.abs_diff(py) <= SLACK_MS,
                "{name} step {i}: PTTL {px} vs {py}"
            );
        }
    }
    assert_eq!(assert_rate_limit_keys_have_ttl(&ctx).await, 8);
}

/// `SCRIPT FLUSH` between calls: each next call reloads the script and succeeds, and no
/// call is counted twice.
pub async fn rate_limit_script_flush_recovers(ctx: Ctx) {
    let r = rule(3_600_000, 5);
    for algorithm in RateLimitAlgorithm::ALL {
        let (a, b) = pair(&ctx, options(&ctx, algorithm).build().unwrap());
        let bucket = format!("flush-{}", algorithm.name());
        assert_eq!(a.consume(&bucket, &r, 1).await.unwrap().remaining, 4);
        ctx.probe.script_flush().await;
        assert_eq!(b.consume(&bucket, &r, 2).await.unwrap().remaining, 2);
        ctx.probe.script_flush().await;
        let peek = a.peek(&bucket, &r).await.unwrap();
        assert_eq!((peek.allowed, peek.remaining), (true, 2));
        ctx.probe.script_flush().await;
        let d = b.consume(&bucket, &r, 2).await.unwrap();
        assert_eq!((d.allowed, d.remaining), (true, 0), "{}", algorithm.name());
        ctx.probe.script_flush().await;
        assert!(!a.consume(&bucket, &r, 1).await.unwrap().allowed);
    }
    assert_eq!(assert_rate_limit_keys_have_ttl(&ctx).await, 4);
}

/// Two app instances whose clocks differ by three windows. With caller clocks, the
/// algorithms whose state holds a time over-admit (each instance sees the other's state
/// as expired); with the default server clock the same interleaving admits exactly
/// `max`, for every algorithm.
pub async fn rate_limit_server_clock_resists_skew(ctx: Ctx) {
    const W: u64 = 60_000;
    const MAX: u64 = 3;
    let r = rule(W, MAX);
    let now = wall_ms();
    for algorithm in RateLimitAlgorithm::ALL {
        let name = algorithm.name();
        let admitted = |a: Arc<dyn RateLimiter>, b: Arc<dyn RateLimiter>, bucket: String| async move {
            let mut n = 0;
            for i in 0..4 * MAX {
                let side = if i % 2 == 0 { &a } else { &b };
                n += u64::from(side.consume(&bucket, &r, 1).await.unwrap().allowed);
            }
            n
        };
        let (_, behind) = clock(now);
        let (_, ahead) = clock(now + 3 * W);
        let with_app_clocks = admitted(
            limiter(
                ctx.backend_a(),
                options(&ctx, algorithm)
                    .caller_clock(behind)
                    .build()
                    .unwrap(),
            ),
            limiter(
                ctx.backend_b(),
                options(&ctx, algorithm)
                    .caller_clock(ahead)
                    .build()
                    .unwrap(),
            ),
            format!("skew-app-{name}"),
        )
        .await;
        let (a, b) = pair(&ctx, options(&ctx, algorithm).build().unwrap());
        let with_server_clock = admitted(a, b, format!("skew-server-{name}")).await;
        assert_eq!(with_server_clock, MAX, "{name}: server clock");
        if algorithm == RateLimitAlgorithm::FixedWindow {
            assert_eq!(
                with_app_clocks, MAX,
                "{name}: the fixed window stores no time"
            );
        } else {
            assert!(
                with_app_clocks > MAX,
                "{name}: skewed app clocks should over-admit ({with_app_clocks}), or this \
                 case proves nothing"
            );
        }
    }
    assert_eq!(assert_rate_limit_keys_have_ttl(&ctx).await, 8);
}

/// `peek` reads without writing, `cost` consumes several units (and a denied cost
/// consumes none), invalid input fails before I/O, and `reset` empties a bucket.
pub async fn rate_limit_peek_cost_and_reset(ctx: Ctx) {
    let r = rule(3_600_000, 3);
    for algorithm in RateLimitAlgorithm::ALL {
        let name = algorithm.name();
        let (a, b) = pair(&ctx, options(&ctx, algorithm).build().unwrap());
        let bucket = format!("peek-{name}");
        let k = key(&ctx, &bucket);
        let empty = a.peek(&bucket, &r).await.unwrap();
        assert_eq!(
            (
                empty.allowed,
                empty.limit,
                empty.remaining,
                empty.reset_after_ms
            ),
            (true, 3, 3, 0),
            "{name}"
        );
        assert_eq!(
            ctx.probe.value(&k).await,
            None,
            "{name}: peek created the bucket"
        );
        assert_eq!(
            a.consume(&bucket, &r, 2).await.unwrap().remaining,
            1,
            "{name}"
        );
        let stored = ctx.probe.value(&k).await;
        let ttl = pttl_ms(&ctx, &bucket).await;
        let p = b.peek(&bucket, &r).await.unwrap();
        assert_eq!((p.allowed, p.remaining), (true, 1), "{name}");
        let too_much = b.consume(&bucket, &r, 2).await.unwrap();
        assert_eq!((too_much.allowed, too_much.remaining), (false, 1), "{name}");
        assert!(too_much.retry_after_ms > 0);
        assert_eq!(
            ctx.probe.value(&k).await,
            stored,
            "{name}: peek or denial wrote"
        );
        assert!(pttl_ms(&ctx, &bucket).await <= ttl, "{name}: expiry moved");
        assert!(a.consume(&bucket, &r, 1).await.unwrap().allowed, "{name}");
        let blocked = b.peek(&bucket, &r).await.unwrap();
        assert!(
            !blocked.allowed && blocked.retry_after_ms > 0,
            "{name}: {blocked:?}"
        );
        for (bad_bucket, cost) in [(bucket.as_str(), 0), (bucket.as_str(), 4), ("", 1)] {
            let e = a.consume(bad_bucket, &r, cost).await.unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidInput, "{name}: {e}");
        }
        assert!(b.reset(&bucket).await.unwrap(), "{name}");
        assert_eq!(ctx.probe.value(&k).await, None);
        assert!(!a.reset(&bucket).await.unwrap(), "{name}: second reset");
        assert_eq!(a.consume(&bucket, &r, 1).await.unwrap().remaining, 2);
    }
    assert_eq!(assert_rate_limit_keys_have_ttl(&ctx).await, 4);
}

/// Counts the commands sent through a connection.
#[derive(Debug)]
struct Counting {
    inner: SharedConnection,
    calls: AtomicUsize,
}

#[async_trait]
impl Connection for Counting {
    async fn execute(&self, command: Command) -> KvResult<Reply> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.inner.execute(command).await
    }

    async fn scan_page(&self, from: ScanCursor, pattern: &[u8], count: u32) -> KvResult<ScanPage> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.inner.scan_page(from, pattern, count).await
    }
}

/// With the blocked cache on, a flood against a blocked bucket is denied locally (no
/// round trip) until the retry time, a limiter without the cache still asks the store,
/// `reset` clears the cache, and after the retry time the store decides again.
pub async fn rate_limit_blocked_cache_skips_round_trips(ctx: Ctx) {
    let counting = match ctx.backend_a() {
        BackendHandle::Server(inner) => Some(Arc::new(Counting {
            inner,
            calls: AtomicUsize::new(0),
        })),
        BackendHandle::Memory(_) => None,
    };
    let handle = match &counting {
        Some(c) => BackendHandle::Server(c.clone() as SharedConnection),
        None => ctx.backend_a(),
    };
    let calls = || counting.as_ref().map(|c| c.calls.load(Ordering::SeqCst));
    let opts = options(&ctx, RateLimitAlgorithm::FixedWindow)
        .blocked_cache(100)
        .build()
        .unwrap();
    let cached = limiter(handle, opts);
    let plain = limiter(
        ctx.backend_b(),
        options(&ctx, RateLimitAlgorithm::FixedWindow)
            .build()
            .unwrap(),
    );
    let r = rule(60_000, 2);
    for _ in 0..2 {
        assert!(cached.consume("flood", &r, 1).await.unwrap().allowed);
    }
    let first = cached.consume("flood", &r, 1).await.unwrap();
    assert_eq!(
        (first.allowed, first.source),
        (false, DecisionSource::Store)
    );
    let before = calls();
    for _ in 0..200 {
        let d = cached.consume("flood", &r, 1).await.unwrap();
        assert_eq!((d.allowed, d.source), (false, DecisionSource::BlockedCache));
        assert!(d.retry_after_ms > 0 && d.retry_after_ms <= first.retry_after_ms);
    }
    assert_eq!(
        cached.peek("flood", &r).await.unwrap().source,
        DecisionSource::BlockedCache
    );
    assert_eq!(calls(), before, "cached denials made no round trip");
    if let Some(n) = before {
        // Two admissions and one denial; more only if a concurrent SCRIPT FLUSH made
        // one of them reload its script.
        assert!(n >= 3, "{n} commands for three decisions");
    }
    let other = plain.consume("flood", &r, 1).await.unwrap();
    assert_eq!(
        (other.allowed, other.source),
        (false, DecisionSource::Store)
    );
    assert!(cached.reset("flood").await.unwrap());
    let after_reset = cached.consume("flood", &r, 1).await.unwrap();
    assert_eq!(
        (after_reset.allowed, after_reset.source),
        (true, DecisionSource::Store)
    );

    // A short window: once the cached retry time has passed, the store decides again.
    let short = rule(150, 1);
    assert!(cached.consume("short", &short, 1).await.unwrap().allowed);
    let blocked = cached.consume("short", &short, 1).await.unwrap();
    assert_eq!(blocked.source, DecisionSource::Store);
    assert_eq!(
        cached.consume("short", &short, 1).await.unwrap().source,
        DecisionSource::BlockedCache
    );
    tokio::time::sleep(Duration::from_millis(blocked.retry_after_ms + 20)).await;
    let later = cached.consume("short", &short, 1).await.unwrap();
    assert_eq!((later.allowed, later.source), (true, DecisionSource::Store));
    assert!(assert_rate_limit_keys_have_ttl(&ctx).await >= 1);
}

/// Buckets in the layout of the earlier rustauth limiter keep working with
/// `LastRequest` (a full bucket stays blocked, with no write; a stale one restarts at 1;
/// one without a TTL gets one), and values of another layout under a bucket's key are
/// replaced by every algorithm, with a TTL.
pub async fn rate_limit_reads_existing_buckets(ctx: Ctx) {
    const W: u64 = 60_000;
    let r = rule(W, 3);
    let (a, b) = pair(
        &ctx,
        options(&ctx, RateLimitAlgorithm::LastRequest)
            .build()
            .unwrap(),
    );
    let now = ctx.probe.now_ms().await;
    let legacy = |count: &str, last: u64| {
        [
            ("count", count.as_bytes().to_vec()),
            ("last_request", last.to_string().into_bytes()),
        ]
    };
    let write = |bucket: &'static str, fields: [(&'static str, Vec<u8>); 2], ttl: Option<u64>| {
        let ctx = ctx.clone();
        async move {
            let f: Vec<(&str, &[u8])> = fields.iter().map(|(n, v)| (*n, &v[..])).collect();
            ctx.probe
                .set_hash(&key(&ctx, bucket), &f, ttl.map(Duration::from_millis))
                .await;
        }
    };

    write("legacy-full", legacy("3", now), Some(W)).await;
    let before = ctx.probe.value(&key(&ctx, "legacy-full")).await;
    let d = a.consume("legacy-full", &r, 1).await.unwrap();
    assert!(
        !d.allowed && d.retry_after_ms <= W + 1 && d.retry_after_ms + SLACK_MS > W,
        "{d:?}"
    );
    assert_eq!(
        ctx.probe.value(&key(&ctx, "legacy-full")).await,
        before,
        "denial wrote"
    );

    write("legacy-stale", legacy("3", now - W - 5_000), Some(10_000)).await;
    let d = b.consume("legacy-stale", &r, 1).await.unwrap();
    assert_eq!((d.allowed, d.remaining), (true, 2));
    let stored = ctx.probe.value(&key(&ctx, "legacy-stale")).await;
    assert_eq!(field(&stored, "count"), Some(1));
    let last = field(&stored, "last_request").expect("last_request");
    assert!(
        last >= now && last < now + SLACK_MS,
        "last_request {last}, now {now}"
    );
    assert!(pttl_ms(&ctx, "legacy-stale").await + SLACK_MS > W);

    write("legacy-no-ttl", legacy("3", now), None).await;
    assert!(!a.consume("legacy-no-ttl", &r, 1).await.unwrap().allowed);
    let ttl = pttl_ms(&ctx, "legacy-no-ttl").await;
    assert!(ttl <= W, "repaired TTL {ttl}");

    for algorithm in RateLimitAlgorithm::ALL {
        let name = algorithm.name();
        let (a, _) = pair(&ctx, options(&ctx, algorithm).build().unwrap());
        let string_bucket = format!("foreign-string-{name}");
        let json = br#"{"key":"1.2.3.4/sign-in","count":9,"lastRequest":1}"#;
        ctx.probe.set(&key(&ctx, &string_bucket), json, None).await;
        let hash_bucket = format!("foreign-hash-{name}");
        ctx.probe
            .set_hash(
                &key(&ctx, &hash_bucket),
                &[("other", b"x"), ("count", b"nine")],
                None,
            )
            .await;
        for bucket in [&string_bucket, &hash_bucket] {
            let d = a.consume(bucket, &r, 1).await.unwrap();
            assert_eq!((d.allowed, d.remaining), (true, 2), "{name} {bucket}");
            let stored = ctx.probe.value(&key(&ctx, bucket)).await;
            let expected_fields: &[&str] = match algorithm {
                RateLimitAlgorithm::FixedWindow => &[],
                RateLimitAlgorithm::LastRequest => &["count", "last_request"],
                RateLimitAlgorithm::SlidingWindow => &["current", "previous", "start"],
                _ => &["tat", "tat_rem"],
            };
            match &stored {
                Some(Stored::String(v)) => {
                    assert!(
                        expected_fields.is_empty() && v == b"1",
                        "{name}: {stored:?}"
                    )
                }
                Some(Stored::Hash(h)) => {
                    let names: Vec<&[u8]> = h.keys().map(|k| &k[..]).collect();
                    let want: Vec<&[u8]> = expected_fields.iter().map(|f| f.as_bytes()).collect();
                    assert_eq!(names, want, "{name}: only this algorithm's fields remain");
                }
                other => panic!("{name}: {other:?}"),
            }
            pttl_ms(&ctx, bucket).await;
        }
    }
    assert_eq!(assert_rate_limit_keys_have_ttl(&ctx).await, 11);
}

/// Auth endpoints end to end, the way an auth server calls the limiter: Better Auth's
/// path table (sign-in: 3 per 10 s), a custom rule that disables a path, IPv6 clients
/// bucketed by their /64, and the 429 headers — checked against the stored key and PTTL.
pub async fn rate_limit_auth_paths_end_to_end(ctx: Ctx) {
    use kv_contract::rate_limit::{PathRules, RateLimiterExt};

    let rules = PathRules::builder().disable("/health/*").build().unwrap();
    let (a, b) = pair(
        &ctx,
        options(&ctx, RateLimitAlgorithm::FixedWindow)
            .build()
            .unwrap(),
    );
    // Two addresses of one /64, through the two sides.
    let (ip1, ip2) = ("2001:db8:abcd:12::1", "2001:db8:abcd:12:ffff::9");
    let mut decisions = Vec::new();
    for i in 0..4 {
        let (limiter, ip) = if i % 2 == 0 { (&a, ip1) } else { (&b, ip2) };
        let d = limiter
            .check_request(&rules, Some(ip), "/sign-in/email?callbackURL=/")
            .await
            .unwrap()
            .expect("sign-in is limited");
        decisions.push(d);
    }
    let allowed: Vec<bool> = decisions.iter().map(|d| d.allowed).collect();
    assert_eq!(
        allowed,
        [true, true, true, false],
        "3 per 10 s for the whole /64"
    );
    let denied = &decisions[3];
    assert_eq!(denied.limit, 3);
    let headers = denied.headers();
    let header = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.clone())
    };
    let retry: u64 = header("X-Retry-After")
        .expect("X-Retry-After")
        .parse()
        .unwrap();
    // Whole seconds, rounded up from an exact ms wait: a key set with `PX 10000` lives
    // through its last millisecond, so a fresh window can report 10 001 ms → 11 s.
    assert!((1..=11).contains(&retry), "X-Retry-After {retry}");
    assert_eq!(header("Retry-After"), header("X-Retry-After"));
    assert_eq!(header("RateLimit-Limit").as_deref(), Some("3"));
    assert_eq!(header("RateLimit-Remaining").as_deref(), Some("0"));
    // One physical key, fully expanded /64, with the window's TTL.
    let bucket = "2001:0db8:abcd:0012:0000:0000:0000:0000|/sign-in/email";
    assert!(
        ctx.probe.pttl(&key(&ctx, bucket)).await != Pttl::Missing,
        "bucket {bucket}"
    );
    let ttl = pttl_ms(&ctx, bucket).await;
    assert!(ttl <= 10_000, "PTTL {ttl} within the 10 s window");
    // A disabled path is not limited and writes nothing; no IP shares one bucket.
    assert!(a
        .check_request(&rules, Some(ip1), "/health/live")
        .await
        .unwrap()
        .is_none());
    let d = b
        .check_request(&rules, None, "/sign-up/email")
        .await
        .unwrap()
        .unwrap();
    assert!(d.allowed);
    assert!(
        ctx.probe
            .pttl(&key(&ctx, "no-trusted-ip|/sign-up/email"))
            .await
            != Pttl::Missing
    );
    assert_eq!(
        assert_rate_limit_keys_have_ttl(&ctx).await,
        2,
        "exactly two buckets written"
    );
}

/// A fixed-window counter planted raw without TTL that Redis's `INCRBY` would refuse
/// (`007`, `+5`, ` 5`) or that is negative (`-5`) is not a bucket: on every topology a
/// `peek` reads it as empty and writes nothing, the next consume is admitted and replaces
/// it with a count of 1 and the window's TTL (never an error, never a key left without a
/// TTL), and counting goes on from there.
pub async fn rate_limit_corrupt_counters_are_replaced(ctx: Ctx) {
    let (a, b) = pair(
        &ctx,
        options(&ctx, RateLimitAlgorithm::FixedWindow)
            .build()
            .unwrap(),
    );
    let r = rule(60_000, 3);
    let corrupt = ["007", "+5", "-5", " 5"];
    for (i, raw) in corrupt.iter().enumerate() {
        let bucket = format!("corrupt{i}");
        let k = key(&ctx, &bucket);
        ctx.probe.set(&k, raw.as_bytes(), None).await;
        let p = b
            .peek(&bucket, &r)
            .await
            .unwrap_or_else(|e| panic!("{raw:?}: {e}"));
        assert!(p.allowed && p.remaining == 3, "{raw:?} reads empty: {p:?}");
        assert_eq!(ctx.probe.get(&k).await.as_deref(), Some(raw.as_bytes()));
        let d = a
            .consume(&bucket, &r, 1)
            .await
            .unwrap_or_else(|e| panic!("{raw:?}: {e}"));
        assert!(d.allowed && d.remaining == 2, "{raw:?}: {d:?}");
        assert_eq!(
            ctx.probe.get(&k).await.as_deref(),
            Some(&b"1"[..]),
            "{raw:?}"
        );
        let ttl = pttl_ms(&ctx, &bucket).await;
        assert!(
            (60_000 - SLACK_MS..=60_000).contains(&ttl),
            "{raw:?}: PTTL {ttl}"
        );
        let d = b.consume(&bucket, &r, 1).await.unwrap();
        assert!(d.allowed && d.remaining == 1, "{raw:?}: {d:?}");
        assert_eq!(
            ctx.probe.get(&k).await.as_deref(),
            Some(&b"2"[..]),
            "{raw:?}"
        );
    }
    assert_eq!(assert_rate_limit_keys_have_ttl(&ctx).await, corrupt.len());
}
