//! Distributed rate limiting for auth endpoints: atomic, one round trip per decision,
//! on the server's clock, with four algorithms, on any backend.
//!
//! - [`RateLimiter`]: `consume` units of a bucket, `peek` at it, `reset` it;
//! - [`RateLimitRule`]: `max` units per `window`, validated when built;
//! - [`RateLimitDecision`]: allowed, limit, remaining, retry-after and reset (ms), and
//!   who decided ([`DecisionSource`]); [`RateLimitDecision::headers`] gives the
//!   response headers;
//! - [`RateLimitAlgorithm`]: fixed window, sliding window, GCRA, or "last request"
//!   (Better Auth 1.6's semantics in the earlier rustauth hash layout — not Better Auth
//!   1.6's JSON record, which it reads as an empty bucket and replaces);
//! - [`PathRules`]: Better Auth's per-path table with custom rules;
//! - [`ServerRateLimiter`] (any [`Connection`](crate::Connection): redis-rs, fred) and
//!   [`MemoryRateLimiter`];
//! - [`BetterAuthRateLimiter`]: Better Auth 1.7's own record (`{prefix}{ip}|{path}`,
//!   `increment`), to share one limit with Node Better Auth services.
//!
//! For the first two, every bucket is one key, `{prefix}rate-limit:{bucket}`, touched by
//! one script, and always has a TTL. `docs/rate-limit.md` states each script's KEYS, ARGV, stored
//! fields, reply and boundary rule.
//!
//! ```
//! use kv_contract::memory::MemoryKeyspace;
//! use kv_contract::rate_limit::{
//!     bucket_key, MemoryRateLimiter, PathLimit, PathRules, RateLimiter, RateLimiterOptions,
//! };
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), kv_contract::KvError> {
//! let limiter = MemoryRateLimiter::new(MemoryKeyspace::new(), RateLimiterOptions::builder().build()?);
//! let rules = PathRules::default(); // Better Auth's: sign-in is 3 per 10 s
//! let PathLimit::Limit(rule) = rules.resolve("/sign-in/email") else { unreachable!() };
//! let bucket = bucket_key(Some("203.0.113.7"), "/sign-in/email");
//! for _ in 0..3 {
//!     assert!(limiter.consume(&bucket, &rule, 1).await?.allowed);
//! }
//! let denied = limiter.consume(&bucket, &rule, 1).await?;
//! assert!(!denied.allowed);
//! assert!(denied.headers().iter().any(|(name, _)| *name == "Retry-After"));
//! # Ok(())
//! # }
//! ```

mod algorithm;
mod better_auth;
mod cache;
mod decision;
mod memory;
mod options;
mod paths;
mod rule;
mod server;
mod wildcard;

use async_trait::async_trait;

pub use algorithm::RateLimitAlgorithm;
pub use better_auth::BetterAuthRateLimiter;
pub use decision::{DecisionSource, RateLimitDecision, TOO_MANY_REQUESTS_MESSAGE};
pub use memory::MemoryRateLimiter;
pub use options::{
    RateLimitClock, RateLimiterOptions, RateLimiterOptionsBuilder, UnavailablePolicy,
};
pub use paths::{bucket_key, normalize_path, PathLimit, PathRules, PathRulesBuilder};
pub use rule::{RateLimitRule, MAX_UNITS_TIMES_WINDOW, MAX_WINDOW_MS};
pub use server::{script_of, ServerRateLimiter};

use crate::error::KvResult;

/// A rate limiter shared by every instance of an app.
///
/// Each `consume` and `peek` is one atomic decision (one script run on a server) on one
/// bucket. Invalid input (empty bucket, cost 0 or above the bucket's capacity) fails
/// before any I/O. While the store is unavailable, decisions follow the limiter's
/// [`UnavailablePolicy`] instead of failing.
#[async_trait]
pub trait RateLimiter: Send + Sync {
    /// Consumes `cost` units of `bucket` under `rule` if they fit; a denial consumes
    /// nothing.
    async fn consume(
        &self,
        bucket: &str,
        rule: &RateLimitRule,
        cost: u64,
    ) -> KvResult<RateLimitDecision>;

    /// Whether one unit would fit now, and what remains, without consuming or writing.
    async fn peek(&self, bucket: &str, rule: &RateLimitRule) -> KvResult<RateLimitDecision>;

    /// Empties `bucket` (deletes its key); true when it existed.
    async fn reset(&self, bucket: &str) -> KvResult<bool>;
}

/// Request-level conveniences over any [`RateLimiter`].
#[async_trait]
pub trait RateLimiterExt: RateLimiter {
    /// Limits one request from `ip` to `path` by `rules`: one unit of the bucket
    /// [`bucket_key`]`(ip, path)`. `None` when the path is not limited.
    async fn check_request(
        &self,
        rules: &PathRules,
        ip: Option<&str>,
        path: &str,
    ) -> KvResult<Option<RateLimitDecision>> {
        match rules.resolve(path) {
            PathLimit::Disabled => Ok(None),
            PathLimit::Limit(rule) => self
                .consume(&bucket_key(ip, path), &rule, 1)
                .await
                .map(Some),
        }
    }
}

impl<T: RateLimiter + ?Sized> RateLimiterExt for T {}
