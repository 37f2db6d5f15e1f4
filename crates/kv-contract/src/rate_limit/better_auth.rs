//! [`BetterAuthRateLimiter`]: Better Auth ≥ 1.7's own rate-limit record, so a Rust service
//! and a Node Better Auth service on one Redis enforce one limit together.
//!
//! Better Auth 1.7 with secondary storage counts a request with
//! `storage.increment("{ip}|{path}", window)`: through `@better-auth/redis-storage` that
//! is the key `{keyPrefix}{ip}|{path}` (default `better-auth:`), a decimal string, `INCR`
//! then `EXPIRE window` when the result is 1; the request is allowed while the count is
//! at most `max`; a denied request is still counted; a denial answers `X-Retry-After` =
//! the full window. This limiter does exactly that, through
//! [`SecondaryStorage::increment`] on a store in Better Auth's layout
//! ([`StorageOptionsBuilder::better_auth_compatible`](crate::storage::StorageOptionsBuilder::better_auth_compatible)),
//! so the bytes are those of `increment.lua` on every backend.
//!
//! It deliberately breaks two rules of the other limiters (`docs/rate-limit.md`): its key
//! is not under `rate-limit:` (it must be Better Auth's key), and a denial writes (Better
//! Auth counts it). Use it only to share limits with Better Auth; otherwise prefer
//! [`ServerRateLimiter`](super::ServerRateLimiter).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::error::{KvError, KvResult};
use crate::rate_limit::{DecisionSource, RateLimitDecision, RateLimitRule, RateLimiter};
use crate::storage::SecondaryStorage;

/// Better Auth 1.7's fixed-window limiter over a Better Auth-layout store. Buckets are
/// [`bucket_key`](super::bucket_key)s (`{ip}|{path}`); the physical key is the store's
/// `{prefix}{bucket}`.
#[derive(Clone)]
pub struct BetterAuthRateLimiter {
    storage: Arc<dyn SecondaryStorage>,
}

impl std::fmt::Debug for BetterAuthRateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BetterAuthRateLimiter")
            .finish_non_exhaustive()
    }
}

impl BetterAuthRateLimiter {
    /// A limiter counting in `storage`, which should be built with
    /// `better_auth_compatible()` and the `keyPrefix` Better Auth uses.
    pub fn new(storage: Arc<dyn SecondaryStorage>) -> Self {
        BetterAuthRateLimiter { storage }
    }

    /// The window in whole seconds, as Better Auth configures it.
    fn window_secs(bucket: &str, rule: &RateLimitRule) -> KvResult<Duration> {
        let w = rule.window();
        if w.subsec_nanos() != 0 {
            return Err(KvError::invalid_input(format!(
                "bucket {bucket:?}: Better Auth's limiter counts in whole-second windows, not {w:?}"
            )));
        }
        Ok(w)
    }

    fn check(bucket: &str, cost: u64) -> KvResult<()> {
        if bucket.is_empty() {
            return Err(KvError::invalid_input("empty rate-limit bucket"));
        }
        if cost != 1 {
            return Err(KvError::invalid_input(format!(
                "bucket {bucket:?}: Better Auth's limiter counts one request at a time, not {cost}"
            )));
        }
        Ok(())
    }
}

/// Better Auth's verdict on a count that includes this request.
fn verdict(count: u64, rule: &RateLimitRule, counted: bool) -> RateLimitDecision {
    let allowed = count <= rule.max();
    let window = rule.window_ms();
    RateLimitDecision {
        allowed,
        limit: rule.max(),
        remaining: rule.max().saturating_sub(count),
        // Better Auth answers the full window, not the time left.
        retry_after_ms: if allowed { 0 } else { window },
        // The record's PTTL is not read (one round trip, as Better Auth): at most a window.
        reset_after_ms: if counted || count > 1 { window } else { 0 },
        source: DecisionSource::Store,
    }
}

#[async_trait]
impl RateLimiter for BetterAuthRateLimiter {
    /// `increment(bucket, window)`: counts the request whether or not it is allowed.
    async fn consume(
        &self,
        bucket: &str,
        rule: &RateLimitRule,
        cost: u64,
    ) -> KvResult<RateLimitDecision> {
        Self::check(bucket, cost)?;
        let window = Self::window_secs(bucket, rule)?;
        let count = self.storage.increment(bucket, window).await?;
        Ok(verdict(count.max(0) as u64, rule, true))
    }

    /// `GET bucket`: whether one more request would be allowed; writes nothing. A value
    /// that is not a decimal count is [`ErrorKind::UnexpectedData`](crate::ErrorKind).
    async fn peek(&self, bucket: &str, rule: &RateLimitRule) -> KvResult<RateLimitDecision> {
        Self::check(bucket, 1)?;
        Self::window_secs(bucket, rule)?;
        let count = match self.storage.get(bucket).await? {
            None => 0,
            Some(raw) => crate::wire::parse_integer(&raw)
                .map(|n| n.max(0) as u64)
                .ok_or_else(|| {
                    KvError::unexpected(format!(
                        "bucket {bucket:?} does not hold a Better Auth 1.7 counter \
                         (a 1.6 JSON record?)"
                    ))
                })?,
        };
        let mut d = verdict(count + 1, rule, false);
        d.remaining = rule.max().saturating_sub(count);
        Ok(d)
    }

    /// `DEL bucket`.
    async fn reset(&self, bucket: &str) -> KvResult<bool> {
        Self::check(bucket, 1)?;
        self.storage.delete(bucket).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::{MemoryKeyspace, MemoryStorage};
    use crate::storage::StorageOptions;

    fn limiter() -> (BetterAuthRateLimiter, MemoryKeyspace) {
        let ks = MemoryKeyspace::new();
        let opts = StorageOptions::builder()
            .better_auth_compatible()
            .build()
            .unwrap();
        let store = MemoryStorage::with_keyspace(ks.clone(), opts);
        (BetterAuthRateLimiter::new(Arc::new(store)), ks)
    }

    #[tokio::test]
    async fn counts_denials_and_answers_the_full_window() {
        let (l, ks) = limiter();
        let rule = RateLimitRule::from_secs(10, 3).unwrap();
        let bucket = "203.0.113.7|/sign-in/email";
        for i in 1..=3 {
            let d = l.consume(bucket, &rule, 1).await.unwrap();
            assert!(d.allowed, "request {i}");
            assert_eq!(d.remaining, 3 - i);
        }
        let d = l.consume(bucket, &rule, 1).await.unwrap();
        assert!(!d.allowed);
        assert!(d.headers().contains(&("X-Retry-After", "10".to_owned())));
        let raw = ks
            .inspect(b"better-auth:203.0.113.7|/sign-in/email")
            .unwrap();
        assert_eq!(raw.value, crate::memory::Value::String("4".into()));
        assert!(raw.pttl_ms.is_some_and(|ms| ms <= 10_000));
        assert!(!l.peek(bucket, &rule).await.unwrap().allowed);
        assert!(l.reset(bucket).await.unwrap());
        assert!(l.peek(bucket, &rule).await.unwrap().allowed);
    }

    #[tokio::test]
    async fn input_is_checked_before_io() {
        let (l, _) = limiter();
        let rule = RateLimitRule::from_millis(1500, 3).unwrap();
        assert!(l.consume("b", &rule, 1).await.is_err());
        let rule = RateLimitRule::from_secs(10, 3).unwrap();
        assert!(l.consume("b", &rule, 2).await.is_err());
        assert!(l.consume("", &rule, 1).await.is_err());
    }
}
