//! The conformance cases: plain async functions, listed once in [`crate::for_each_storage_case`]
//! and [`crate::for_each_connection_case`].
//!
//! [`Ctx`]: crate::Ctx
//! [`BackendKind`]: crate::BackendKind
//!
//! Storage cases take a [`Ctx`] and run on every topology (memory, redis-rs,
//! fred, and both mixes). Connection cases take a [`BackendKind`],
//! start the servers they need, and run on the two server backends.

pub mod acl;
pub mod atomic;
pub mod basic;
pub mod better_auth;
pub mod cluster;
pub mod concurrency;
pub mod connection;
pub mod facade;
pub mod faults;
pub mod health;
pub mod lock;
pub mod namespace;
pub mod observe;
pub mod rate_limit;
pub mod resilience;
pub mod sentinel;
pub mod sessions;

use std::ops::RangeInclusive;

use crate::context::Ctx;
use crate::probe::Pttl;

/// Asserts the physical state of a logical key: exact value bytes, `TYPE string`, and a
/// `PTTL` in `pttl` (`None` = no expiry).
pub async fn assert_stored(
    ctx: &Ctx,
    logical: &str,
    value: &[u8],
    pttl: Option<RangeInclusive<u64>>,
) {
    let key = ctx.physical(logical);
    let shown = String::from_utf8_lossy(&key).into_owned();
    assert_eq!(
        ctx.probe.get(&key).await.as_deref(),
        Some(value),
        "raw value of {shown}"
    );
    assert_eq!(ctx.probe.key_type(&key).await, "string", "TYPE of {shown}");
    match (ctx.probe.pttl(&key).await, pttl) {
        (Pttl::Persistent, None) => {}
        (Pttl::Ms(ms), Some(range)) if range.contains(&ms) => {}
        (got, want) => panic!("PTTL of {shown}: got {got:?}, want {want:?}"),
    }
}

/// Asserts that a logical key is physically absent.
pub async fn assert_absent(ctx: &Ctx, logical: &str) {
    let key = ctx.physical(logical);
    assert_eq!(
        ctx.probe.pttl(&key).await,
        Pttl::Missing,
        "{} should not exist",
        String::from_utf8_lossy(&key)
    );
}

/// Asserts that nothing at all is stored under this case's prefix.
pub async fn assert_prefix_empty(ctx: &Ctx) {
    let keys = ctx
        .probe
        .keys_with_prefix(ctx.prefix().as_str().as_bytes())
        .await;
    assert!(
        keys.is_empty(),
        "expected no keys under the prefix, found {keys:?}"
    );
}
