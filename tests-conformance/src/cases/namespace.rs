//! Namespaces: `list_keys` and `clear` see exactly `{prefix}secondary:` — not a sibling
//! prefix, not `rate-limit:`, not a key an unescaped glob would have matched.

use std::time::Instant;

use kv_contract::{Bytes, Namespace};

use crate::context::Ctx;
use crate::report;

/// Keys outside the namespace that must survive: a sibling prefix that shares our prefix
/// as a string prefix, and our own `rate-limit:` namespace.
async fn place_neighbours(ctx: &Ctx, n: usize) -> Vec<Vec<u8>> {
    let prefix = ctx.prefix().as_str();
    let mut keys = Vec::new();
    for i in 0..n {
        keys.push(format!("{}x:secondary:n{i}", prefix.trim_end_matches(':')).into_bytes());
        keys.push(format!("{prefix}rate-limit:10.0.0.{i}|/sign-in").into_bytes());
    }
    ctx.probe
        .set_many(keys.iter().map(|k| (k.clone(), b"keep".to_vec())))
        .await;
    keys.sort();
    keys
}

async fn assert_neighbours_intact(ctx: &Ctx, neighbours: &[Vec<u8>]) {
    let base = ctx.prefix().as_str().trim_end_matches(':').as_bytes();
    let mut found = ctx.probe.keys_with_prefix(base).await;
    found.retain(|k| !k.starts_with(ctx.codec().namespace(Namespace::Secondary).as_bytes()));
    assert_eq!(
        found.len(),
        neighbours.len(),
        "keys outside the namespace were touched"
    );
    assert_eq!(found, neighbours);
}

/// `list_keys` returns each logical key once, prefix stripped literally (keys keep their
/// colons and glob characters), and nothing from outside the namespace.
pub async fn list_keys_sees_only_namespace(ctx: Ctx) {
    let neighbours = place_neighbours(&ctx, 3).await;
    let mut want = vec![
        "plain".to_owned(),
        "with:colons:2001:0db8:0000|/sign-in".to_owned(),
        "glob*?[x]\\chars".to_owned(),
        "ünïcödé".to_owned(),
    ];
    for k in &want {
        ctx.a.set(k, "v".into(), None).await.unwrap();
    }
    let mut got = ctx.b.list_keys().await.unwrap();
    got.sort();
    want.sort();
    assert_eq!(got, want);
    assert_neighbours_intact(&ctx, &neighbours).await;
}

/// `clear` deletes exactly the namespace and reports how many; on an empty namespace it
/// returns 0 (no zero-argument `DEL`).
pub async fn clear_only_namespace(ctx: Ctx) {
    assert_eq!(ctx.b.clear().await.unwrap(), 0, "empty namespace");
    let neighbours = place_neighbours(&ctx, 5).await;
    for i in 0..25 {
        ctx.a.set(&format!("k{i}"), "v".into(), None).await.unwrap();
    }
    assert_eq!(ctx.b.clear().await.unwrap(), 25);
    assert!(ctx.a.list_keys().await.unwrap().is_empty());
    assert_neighbours_intact(&ctx, &neighbours).await;
    assert_eq!(ctx.a.clear().await.unwrap(), 0);
}

/// A prefix full of glob characters is matched literally: a key that the unescaped
/// pattern would match is neither listed nor cleared.
pub async fn glob_prefix_is_literal(ctx: Ctx) {
    let base = ctx.prefix().as_str().to_owned();
    let globby = ctx.options_with_prefix(&format!("{base}[ab]*?\\:"));
    let store_a = ctx.store_a(globby.clone());
    let store_b = ctx.store_b(globby);
    // `{base}[ab]*?\:secondary:*` unescaped would match this key.
    let decoy = format!("{base}azz\\:secondary:decoy").into_bytes();
    ctx.probe.set(&decoy, b"keep", None).await;
    store_a.set("mine", "v".into(), None).await.unwrap();
    assert_eq!(store_b.list_keys().await.unwrap(), vec!["mine".to_owned()]);
    assert_eq!(store_b.clear().await.unwrap(), 1);
    assert_eq!(ctx.probe.get(&decoy).await.as_deref(), Some(&b"keep"[..]));
}

/// Two stores with different prefixes on one server do not see each other's keys.
pub async fn prefixes_are_isolated(ctx: Ctx) {
    let other = ctx.options_with_prefix(&format!("{}other:", ctx.prefix().as_str()));
    let other_a = ctx.store_a(other.clone());
    let other_b = ctx.store_b(other);
    ctx.a.set("same", "mine".into(), None).await.unwrap();
    other_a.set("same", "theirs".into(), None).await.unwrap();
    assert_eq!(ctx.b.get("same").await.unwrap(), Some(Bytes::from("mine")));
    assert_eq!(
        other_b.get("same").await.unwrap(),
        Some(Bytes::from("theirs"))
    );
    assert_eq!(other_b.clear().await.unwrap(), 1);
    assert_eq!(ctx.b.get("same").await.unwrap(), Some(Bytes::from("mine")));
}

/// `clear` of 200 000 keys deletes them all page by page and touches nothing outside the
/// namespace. Its time and the process's memory growth are recorded for the report.
pub async fn clear_200k_keys(ctx: Ctx) {
    const N: usize = 200_000;
    let neighbours = place_neighbours(&ctx, 500).await;
    let ns = ctx.codec().namespace(Namespace::Secondary);
    ctx.probe
        .set_many((0..N).map(|i| (format!("{ns}key-{i:06}").into_bytes(), b"v".to_vec())))
        .await;
    let rss_before = report::rss_kib();
    let started = Instant::now();
    let deleted = ctx.b.clear().await.unwrap();
    let took = started.elapsed();
    let rss_after = report::rss_kib();
    assert_eq!(deleted, N as u64);
    assert!(ctx.probe.keys_with_prefix(ns.as_bytes()).await.is_empty());
    assert_neighbours_intact(&ctx, &neighbours).await;
    report::metric(format!(
        "clear_200k_keys [{}]: {N} keys in {:.0} ms; RSS {} KiB -> {} KiB",
        ctx.topology.name(),
        took.as_secs_f64() * 1000.0,
        rss_before.unwrap_or(0),
        rss_after.unwrap_or(0),
    ));
}

/// Better Auth compatibility: a store built with `better_auth_compatible()` reads keys
/// written the way `@better-auth/redis-storage` writes them (`{prefix}{key}`, `SETEX`),
/// stores a TTL of 0 without expiry as Better Auth does, and lists/clears its flat prefix.
pub async fn better_auth_compat_flat_layout(ctx: Ctx) {
    use kv_contract::storage::StorageOptions;
    use std::time::Duration;

    let prefix = format!("{}ba-", ctx.prefix().as_str());
    let compat = StorageOptions::builder()
        .better_auth_compatible()
        .prefix(prefix.clone())
        .build()
        .unwrap();
    let (a, b) = (ctx.store_a(compat.clone()), ctx.store_b(compat));
    // What Better Auth wrote: a session under its raw token, and the per-user index.
    let session = br#"{"session":{"token":"tok1","userId":"u1"},"user":{"id":"u1"}}"#;
    ctx.probe
        .set(
            format!("{prefix}tok1").as_bytes(),
            session,
            Some(Duration::from_secs(3600)),
        )
        .await;
    ctx.probe
        .set(
            format!("{prefix}active-sessions-u1").as_bytes(),
            br#"[{"token":"tok1","expiresAt":1}]"#,
            None,
        )
        .await;
    assert_eq!(b.get("tok1").await.unwrap().as_deref(), Some(&session[..]));
    let mut keys = b.list_keys().await.unwrap();
    keys.sort();
    assert_eq!(
        keys,
        vec!["active-sessions-u1".to_owned(), "tok1".to_owned()]
    );

    // Better Auth's TTL rule: 0 means "no expiry", not "delete".
    a.set("verification:x", "v".into(), Some(Duration::ZERO))
        .await
        .unwrap();
    let raw = format!("{prefix}verification:x").into_bytes();
    assert_eq!(ctx.probe.get(&raw).await.as_deref(), Some(&b"v"[..]));
    assert_eq!(ctx.probe.pttl(&raw).await, crate::probe::Pttl::Persistent);
    a.set("verification:y", "v".into(), Some(Duration::from_secs(10)))
        .await
        .unwrap();
    assert!(matches!(
        ctx.probe.pttl(format!("{prefix}verification:y").as_bytes()).await,
        crate::probe::Pttl::Ms(ms) if ms <= 10_000
    ));
    assert_eq!(b.clear().await.unwrap(), 4);
    assert!(ctx
        .probe
        .keys_with_prefix(prefix.as_bytes())
        .await
        .is_empty());
}
