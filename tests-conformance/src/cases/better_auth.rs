//! Better Auth 1.7's storage contract and rate-limit record: `increment` on every
//! topology (raw bytes, `PTTL` set on creation only, errors, exact totals under races
//! from both backends) and [`BetterAuthRateLimiter`] sharing one record with another
//! writer.

use std::sync::Arc;
use std::time::Duration;

use kv_contract::rate_limit::{bucket_key, BetterAuthRateLimiter, RateLimitRule, RateLimiter};
use kv_contract::storage::StorageOptions;
use kv_contract::ErrorKind;
use tokio::task::JoinSet;

use crate::cases::assert_stored;
use crate::context::Ctx;
use crate::probe::Pttl;

/// `increment`: decimal string bytes, TTL on creation only, whole-second TTLs, and
/// INCR's errors (nothing written) for a non-integer, another type, an overflow.
pub async fn increment_sets_ttl_on_creation_only(ctx: Ctx) {
    let (a, b) = (&ctx.a, &ctx.b);
    assert_eq!(a.increment("c", Duration::from_secs(10)).await.unwrap(), 1);
    assert_stored(&ctx, "c", b"1", Some(9_000..=10_000)).await;
    // The second call's TTL is ignored: the window was fixed by the first.
    assert_eq!(b.increment("c", Duration::from_secs(100)).await.unwrap(), 2);
    assert_stored(&ctx, "c", b"2", Some(9_000..=10_000)).await;
    assert_eq!(b.get("c").await.unwrap().as_deref(), Some(&b"2"[..]));

    // An existing counter without expiry keeps having none.
    ctx.probe.set(&ctx.physical("p"), b"41", None).await;
    assert_eq!(a.increment("p", Duration::from_secs(10)).await.unwrap(), 42);
    assert_stored(&ctx, "p", b"42", None).await;
    // ...unless INCR makes it 1 (it was 0): then EXPIRE runs, as upstream.
    ctx.probe.set(&ctx.physical("z"), b"0", None).await;
    assert_eq!(b.increment("z", Duration::from_secs(5)).await.unwrap(), 1);
    assert_stored(&ctx, "z", b"1", Some(4_000..=5_000)).await;
    ctx.probe.set(&ctx.physical("neg"), b"-3", None).await;
    assert_eq!(
        a.increment("neg", Duration::from_secs(5)).await.unwrap(),
        -2
    );

    // TTLs Better Auth throws on: rejected before I/O, nothing created.
    for bad in [
        Duration::ZERO,
        Duration::from_millis(1500),
        Duration::from_millis(10),
    ] {
        let e = a.increment("fresh", bad).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "{bad:?}: {e}");
    }
    assert_eq!(ctx.probe.pttl(&ctx.physical("fresh")).await, Pttl::Missing);

    // Values INCR refuses: a script error, the value left as it was.
    for (key, raw) in [
        ("json", &br#"{"key":"x","count":1,"lastRequest":1}"#[..]),
        ("lead", b"007"),
        ("space", b" 1"),
        ("plus", b"+1"),
        ("big", b"9223372036854775808"),
        ("max", b"9223372036854775807"),
        ("empty", b""),
    ] {
        ctx.probe
            .set(&ctx.physical(key), raw, Some(Duration::from_secs(60)))
            .await;
        let e = b.increment(key, Duration::from_secs(10)).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Script, "{key}: {e}");
        assert_stored(&ctx, key, raw, Some(50_000..=60_000)).await;
    }
    ctx.probe
        .set_hash(&ctx.physical("hash"), &[("count", b"1")], None)
        .await;
    let e = a
        .increment("hash", Duration::from_secs(10))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Script, "{e}");
    assert!(e.to_string().contains("WRONGTYPE"), "{e}");
    assert_eq!(ctx.probe.key_type(&ctx.physical("hash")).await, "hash");
}

/// 200 concurrent increments, half from each side: every value 1..=200 returned once,
/// the stored total exact, the TTL from the first.
pub async fn increment_concurrent_from_both_sides_is_exact(ctx: Ctx) {
    const N: i64 = 200;
    let start = Arc::new(tokio::sync::Barrier::new(N as usize));
    let mut set = JoinSet::new();
    for i in 0..N {
        let side = if i % 2 == 0 {
            ctx.a.clone()
        } else {
            ctx.b.clone()
        };
        let start = start.clone();
        set.spawn(async move {
            start.wait().await;
            side.increment("race", Duration::from_secs(3600))
                .await
                .unwrap()
        });
    }
    let mut seen = Vec::new();
    while let Some(n) = set.join_next().await {
        seen.push(n.expect("racer panicked"));
    }
    seen.sort_unstable();
    assert_eq!(seen, (1..=N).collect::<Vec<_>>());
    assert_stored(
        &ctx,
        "race",
        N.to_string().as_bytes(),
        Some(3_590_000..=3_600_000),
    )
    .await;
}

/// Two limiters, one on each side (standing for a Rust service and a Node Better Auth
/// service), on one record `{prefix}{ip}|{path}`: of 40 concurrent requests exactly
/// `max` are admitted, every request is counted, and a denial says the full window.
pub async fn better_auth_limiter_shares_one_record(ctx: Ctx) {
    let prefix = format!("{}ba-", ctx.prefix().as_str());
    let opts = StorageOptions::builder()
        .better_auth_compatible()
        .prefix(prefix.clone())
        .build()
        .unwrap();
    let a = BetterAuthRateLimiter::new(ctx.store_a(opts.clone()));
    let b = BetterAuthRateLimiter::new(ctx.store_b(opts));
    let rule = RateLimitRule::from_secs(10, 3).unwrap();
    let ip6 = "2001:0db8:abcd:0012:0000:0000:0000:0000";
    let bucket = bucket_key(Some(ip6), "/sign-in/email");
    assert_eq!(bucket, format!("{ip6}|/sign-in/email"));
    const N: usize = 40;
    let start = Arc::new(tokio::sync::Barrier::new(N));
    let mut set = JoinSet::new();
    for i in 0..N {
        let side = if i % 2 == 0 { a.clone() } else { b.clone() };
        let (start, bucket) = (start.clone(), bucket.clone());
        set.spawn(async move {
            start.wait().await;
            side.consume(&bucket, &rule, 1).await.unwrap()
        });
    }
    let mut admitted = 0;
    while let Some(d) = set.join_next().await {
        let d = d.expect("racer panicked");
        if d.allowed {
            admitted += 1;
        } else {
            assert!(
                d.headers().contains(&("X-Retry-After", "10".to_owned())),
                "{d:?}"
            );
        }
    }
    assert_eq!(admitted, 3);
    let raw = format!("{prefix}{bucket}").into_bytes();
    assert_eq!(
        ctx.probe.get(&raw).await.as_deref(),
        Some(N.to_string().as_bytes())
    );
    assert_eq!(ctx.probe.key_type(&raw).await, "string");
    assert!(matches!(ctx.probe.pttl(&raw).await, Pttl::Ms(ms) if (9_000..=10_000).contains(&ms)));
    assert!(!a.peek(&bucket, &rule).await.unwrap().allowed);

    // A record another writer created (Better Auth's `INCR` + `EXPIRE 10` on 1, by raw
    // commands) is counted by ours, and ours by it.
    let other = format!("{prefix}198.51.100.1|/sign-up/email").into_bytes();
    ctx.probe
        .set(&other, b"2", Some(Duration::from_secs(10)))
        .await;
    let d = b
        .consume("198.51.100.1|/sign-up/email", &rule, 1)
        .await
        .unwrap();
    assert!(d.allowed && d.remaining == 0);
    assert!(
        !a.consume("198.51.100.1|/sign-up/email", &rule, 1)
            .await
            .unwrap()
            .allowed
    );
    assert_eq!(ctx.probe.get(&other).await.as_deref(), Some(&b"4"[..]));
    // Better Auth 1.6's JSON record is not a counter: an error, never a reset.
    ctx.probe
        .set(
            &other,
            br#"{"key":"k","count":1,"lastRequest":1}"#,
            Some(Duration::from_secs(10)),
        )
        .await;
    let e = a
        .consume("198.51.100.1|/sign-up/email", &rule, 1)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Script, "{e}");
}
