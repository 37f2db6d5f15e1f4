//! The adapter's contract, called as better-auth-rs calls it: native keys and values,
//! `f64` TTLs rounded up, rejections before any I/O, atomic `get_and_delete` and
//! `increment`, the limiter's `consume`; bytes and TTLs read raw from the store.

use std::sync::Arc;

use better_auth_core::store::SecondaryStorage;
use better_auth_core::{EndpointRateLimit, FieldValue, RateLimitStorage};
use rustauth_kv_better_auth_rs::{KvRateLimitStorage, KvSecondaryStorage};
use tests_conformance::context::Topology;
use tests_conformance::probe::Pttl;

use crate::support::{per_topology, Pair};

fn ms_left(pttl: Pttl) -> u64 {
    match pttl {
        Pttl::Ms(ms) => ms,
        other => panic!("expected a TTL, found {other:?}"),
    }
}

async fn values_and_ttls(topology: Topology) {
    let pair = Pair::new(topology, "bars-values").await;
    let (a, b) = (
        KvSecondaryStorage::new(&pair.a),
        KvSecondaryStorage::new(&pair.b),
    );
    let json = r#"{"session":{"token":"t1"},"user":{"email":"ann@example.com"}}"#;

    // 60.0001 s is rounded up to 60 001 ms, never down.
    a.set_native(&"t1".into(), &json.into(), Some(60.0001))
        .await
        .unwrap();
    let key = pair.key("secondary:t1");
    assert_eq!(pair.probe.get(&key).await.as_deref(), Some(json.as_bytes()));
    let left = ms_left(pair.probe.pttl(&key).await);
    assert!((59_000..=60_001).contains(&left), "PTTL {left}");
    assert_eq!(b.get("t1").await.unwrap(), Some(json.into()));
    assert_eq!(b.get_native(&"t1".into()).await.unwrap(), Some(json.into()));

    // No TTL: no expiry (and an earlier one is dropped).
    a.set("t1", json, None).await.unwrap();
    assert_eq!(pair.probe.pttl(&key).await, Pttl::Persistent);

    // A number key is its JavaScript string.
    a.set_native(&FieldValue::Number(7.0), &"seven".into(), Some(5.0))
        .await
        .unwrap();
    assert_eq!(
        pair.probe.get(&pair.key("secondary:7")).await.as_deref(),
        Some(&b"seven"[..])
    );
    assert_eq!(b.get("7").await.unwrap(), Some("seven".into()));

    // Rejected before any I/O, naming the TTL; what is stored is untouched.
    for (ttl, shown) in [
        (0.0, "TTL 0 s"),
        (-1.0, "TTL -1 s"),
        (f64::NAN, "TTL NaN s"),
        (f64::INFINITY, "TTL inf s"),
        (1e300, "too large"),
    ] {
        let e = a
            .set_native(&"t1".into(), &"other".into(), Some(ttl))
            .await
            .unwrap_err();
        assert!(e.to_string().contains(shown), "{ttl}: {e}");
        assert!(
            !e.to_string().contains("t1"),
            "the key is a credential: {e}"
        );
        let e = a.increment("t1-counter", ttl).await.unwrap_err();
        assert!(e.to_string().contains(shown), "{ttl}: {e}");
        a.set_native(&"fresh".into(), &"v".into(), Some(ttl))
            .await
            .unwrap_err();
    }
    assert!(pair.probe.get(&pair.key("secondary:fresh")).await.is_none());
    assert!(pair
        .probe
        .get(&pair.key("secondary:t1-counter"))
        .await
        .is_none());
    assert_eq!(pair.probe.get(&key).await.as_deref(), Some(json.as_bytes()));

    // A value that is not a string (what stringify_native gives for `undefined`).
    let e = a
        .set_native(&"t1".into(), &FieldValue::Undefined, None)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("value is undefined"), "{e}");
    assert_eq!(pair.probe.get(&key).await.as_deref(), Some(json.as_bytes()));
    let e = a.get_native(&FieldValue::Null).await.unwrap_err();
    assert!(e.to_string().contains("key is null"), "{e}");

    a.delete("t1").await.unwrap();
    assert!(pair.probe.get(&key).await.is_none());
    assert_eq!(b.get("t1").await.unwrap(), None);
    a.delete_native(&"t1".into()).await.unwrap(); // absent: not an error
}

async fn get_and_delete_is_atomic(topology: Topology) {
    let pair = Pair::new(topology, "bars-take").await;
    let (a, b) = (
        KvSecondaryStorage::new(&pair.a),
        KvSecondaryStorage::new(&pair.b),
    );
    a.set("verification:v1", r#"{"value":"x"}"#, Some(300))
        .await
        .unwrap();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..16 {
        let store = Arc::new(if i % 2 == 0 { a.clone() } else { b.clone() });
        tasks.spawn(async move { store.get_and_delete("verification:v1").await.unwrap() });
    }
    let mut got = Vec::new();
    while let Some(r) = tasks.join_next().await {
        got.extend(r.unwrap());
    }
    assert_eq!(
        got,
        vec![serde_json::Value::String(r#"{"value":"x"}"#.into())]
    );
    assert!(pair
        .probe
        .get(&pair.key("secondary:verification:v1"))
        .await
        .is_none());
    assert_eq!(
        b.get_and_delete_native(&"verification:v1".into())
            .await
            .unwrap(),
        None
    );
}

async fn increment_counts_and_keeps_its_ttl(topology: Topology) {
    let pair = Pair::new(topology, "bars-incr").await;
    let (a, b) = (
        KvSecondaryStorage::new(&pair.a),
        KvSecondaryStorage::new(&pair.b),
    );
    let bucket = "203.0.113.7|/sign-in/email";
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..16 {
        let store = if i % 2 == 0 { a.clone() } else { b.clone() };
        // 9.2 s: rounded up to 10 s.
        tasks.spawn(async move { store.increment(bucket, 9.2).await.unwrap() as i64 });
    }
    let mut counts = Vec::new();
    while let Some(r) = tasks.join_next().await {
        counts.push(r.unwrap());
    }
    counts.sort_unstable();
    assert_eq!(counts, (1..=16).collect::<Vec<_>>());
    let key = pair.key(&format!("secondary:{bucket}"));
    assert_eq!(pair.probe.get(&key).await.as_deref(), Some(&b"16"[..]));
    let left = ms_left(pair.probe.pttl(&key).await);
    assert!((9_000..=10_000).contains(&left), "PTTL {left}");
    // An existing counter keeps its expiry whatever TTL a later call passes.
    assert_eq!(b.increment(bucket, 3600.0).await.unwrap(), 17.0);
    assert!(ms_left(pair.probe.pttl(&key).await) <= 10_000);
}

async fn limiter_consumes_one_unit_per_request(topology: Topology) {
    let pair = Pair::new(topology, "bars-limit").await;
    let a = KvRateLimitStorage::new(&pair.a);
    let b = KvRateLimitStorage::new(&pair.b);
    let rule = EndpointRateLimit {
        window: 30.0,
        max_requests: 2.5, // Better Auth admits while count <= max: 2
    };
    let bucket = "203.0.113.7|/sign-in/email";
    assert!(a.consume(bucket, rule).await.unwrap().allowed);
    assert!(b.consume(bucket, rule).await.unwrap().allowed);
    let denied = a.consume(bucket, rule).await.unwrap();
    assert!(!denied.allowed);
    let wait = denied.retry_after.expect("a denial says how long to wait");
    // At most window + 1 ms: a fixed window counts through `t0 + window` inclusive
    // (docs/rate-limit.md, "Boundary").
    assert!(wait > 0.0 && wait <= 30.001, "retry after {wait}");
    assert!(!b.consume(bucket, rule).await.unwrap().allowed);
    let key = pair.key(&format!("rate-limit:{bucket}"));
    assert!(ms_left(pair.probe.pttl(&key).await) <= 30_001);
    let bad = EndpointRateLimit {
        window: f64::NAN,
        max_requests: 3.0,
    };
    let e = a.consume("other", bad).await.unwrap_err();
    assert!(e.to_string().contains("window NaN s"), "{e}");
}

per_topology!(
    values_and_ttls,
    get_and_delete_is_atomic,
    increment_counts_and_keeps_its_ttl,
    limiter_consumes_one_unit_per_request,
);
