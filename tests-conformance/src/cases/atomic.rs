//! Concurrency: 1000 operations racing on one key, half through each store (so, in the
//! mixed topologies, half through each client). Exactly one may win.

use std::sync::Arc;
use std::time::Duration;

use kv_contract::{Bytes, SecondaryStorage};
use tokio::task::JoinSet;

use super::assert_stored;
use crate::context::Ctx;

const RACERS: usize = 1000;

async fn race<T, F, Fut>(ctx: &Ctx, op: F) -> Vec<(usize, T)>
where
    T: Send + 'static,
    F: Fn(Arc<dyn SecondaryStorage>, usize) -> Fut,
    Fut: std::future::Future<Output = T> + Send + 'static,
{
    let mut set = JoinSet::new();
    let start = Arc::new(tokio::sync::Barrier::new(RACERS));
    for i in 0..RACERS {
        let store = if i % 2 == 0 {
            ctx.a.clone()
        } else {
            ctx.b.clone()
        };
        let fut = op(store, i);
        let start = start.clone();
        set.spawn(async move {
            start.wait().await;
            (i, fut.await)
        });
    }
    let mut out = Vec::with_capacity(RACERS);
    while let Some(r) = set.join_next().await {
        out.push(r.expect("racer panicked"));
    }
    out
}

/// 1000 concurrent `set_if_not_exists` on one key: exactly one creates it, and the
/// stored value is the winner's.
pub async fn concurrent_set_if_not_exists_creates_once(ctx: Ctx) {
    let results = race(&ctx, |s, i| async move {
        s.set_if_not_exists(
            "k",
            Bytes::from(format!("v{i}")),
            Some(Duration::from_secs(60)),
        )
        .await
        .unwrap()
    })
    .await;
    let winners: Vec<usize> = results
        .iter()
        .filter(|(_, won)| *won)
        .map(|(i, _)| *i)
        .collect();
    assert_eq!(winners.len(), 1, "exactly one creator, got {winners:?}");
    assert_stored(
        &ctx,
        "k",
        format!("v{}", winners[0]).as_bytes(),
        Some(50_000..=60_000),
    )
    .await;
}

/// 1000 concurrent `take`s of one value: exactly one gets it.
pub async fn concurrent_take_returns_once(ctx: Ctx) {
    ctx.a.set("k", "secret".into(), None).await.unwrap();
    let results = race(&ctx, |s, _| async move { s.take("k").await.unwrap() }).await;
    let got: Vec<_> = results.iter().filter_map(|(_, v)| v.clone()).collect();
    assert_eq!(got, vec![Bytes::from("secret")], "exactly one taker");
}

/// 1000 concurrent `compare_and_set` from the same expected value: exactly one applies.
pub async fn concurrent_compare_and_set_applies_once(ctx: Ctx) {
    ctx.a.set("k", "v0".into(), None).await.unwrap();
    let results = race(&ctx, |s, i| async move {
        s.compare_and_set("k", Some(b"v0"), Bytes::from(format!("v{}", i + 1)), None)
            .await
            .unwrap()
    })
    .await;
    let winners: Vec<usize> = results
        .iter()
        .filter(|(_, won)| *won)
        .map(|(i, _)| *i)
        .collect();
    assert_eq!(winners.len(), 1, "exactly one swap, got {winners:?}");
    assert_stored(&ctx, "k", format!("v{}", winners[0] + 1).as_bytes(), None).await;
}
