//! [`KvRateLimitStorage`]: better-auth-rs's `RateLimitStorage` (its `custom_storage`
//! slot) over rustauth-kv's [`RateLimiter`](rustauth_kv::RateLimiter): one `consume` of
//! one unit per request, decided atomically on the server by our limiter's script.

use std::sync::Arc;

use async_trait::async_trait;
use better_auth_core::{AuthResult, EndpointRateLimit, RateLimitDecision, RateLimitStorage};
use rustauth_kv::{Kv, RateLimiter};

use crate::convert::{auth_error, rule};

/// better-auth-rs's rate-limit storage over one of our rate limiters.
///
/// better-auth-rs gives each request a key `{ip}|{path}` and a rule `{window, max}`;
/// this consumes one unit of the bucket `{ip}|{path}` (our key
/// `{prefix}rate-limit:{ip}|{path}`) under the rule `max` per `window`, with our
/// limiter's algorithm (fixed window unless configured otherwise), failure policy and
/// breaker. A denial answers `retry_after` = the limiter's exact wait, in seconds.
///
/// The window is rounded up to whole milliseconds and `max` down (Better Auth admits
/// while `count <= max`); a window or `max` that is not a finite positive number
/// (`max` below 1) is rejected with an error naming it.
///
/// The other way to limit through rustauth-kv is to leave `custom_storage` unset: with
/// [`KvSecondaryStorage`](crate::KvSecondaryStorage) installed, better-auth-rs counts in
/// secondary storage with `increment` (Better Auth 1.7's own counter, shareable with
/// Node services on the same keys).
#[derive(Clone)]
pub struct KvRateLimitStorage {
    limiter: Arc<dyn RateLimiter>,
}

impl std::fmt::Debug for KvRateLimitStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KvRateLimitStorage").finish_non_exhaustive()
    }
}

impl KvRateLimitStorage {
    /// The bundle's rate limiter ([`Kv::rate_limiter`]).
    pub fn new(kv: &Kv) -> Self {
        Self::from_limiter(kv.rate_limiter())
    }

    /// Any rate limiter, e.g. a `ServerRateLimiter` with other
    /// [`RateLimiterOptions`](rustauth_kv::rate_limit::RateLimiterOptions).
    pub fn from_limiter(limiter: Arc<dyn RateLimiter>) -> Self {
        KvRateLimitStorage { limiter }
    }

    /// This adapter in the `Arc` `RateLimitConfig::custom_storage` takes.
    pub fn into_arc(self) -> Arc<dyn RateLimitStorage> {
        Arc::new(self)
    }
}

#[async_trait]
impl RateLimitStorage for KvRateLimitStorage {
    async fn consume(&self, key: &str, limit: EndpointRateLimit) -> AuthResult<RateLimitDecision> {
        let rule = rule(limit.window, limit.max_requests).map_err(auth_error)?;
        let decision = self
            .limiter
            .consume(key, &rule, 1)
            .await
            .map_err(auth_error)?;
        Ok(RateLimitDecision {
            allowed: decision.allowed,
            retry_after: (!decision.allowed).then(|| decision.retry_after_ms as f64 / 1000.0),
        })
    }
}
