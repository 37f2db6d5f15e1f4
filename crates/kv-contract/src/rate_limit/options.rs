//! [`RateLimiterOptions`] and the part of a decision both limiters share: validating a
//! call before any I/O, the blocked cache, and the failure policy.
//!
//! A limiter (server or memory) only supplies "decide this step in one atomic round
//! trip"; [`Front::decide`] wraps that with everything else, so the two implementations
//! cannot drift apart on validation, caching or failure handling.

use std::future::Future;
use std::sync::Arc;

use crate::breaker::CircuitBreaker;
use crate::error::{KvError, KvResult};
use crate::keys::{KeyCodec, Namespace, Prefix};
use crate::memory::Clock;
use crate::rate_limit::algorithm::{RateLimitAlgorithm, Verdict};
use crate::rate_limit::cache::BlockedCache;
use crate::rate_limit::decision::{DecisionSource, RateLimitDecision};
use crate::rate_limit::rule::RateLimitRule;

/// Where a decision's "now" comes from.
#[non_exhaustive]
#[derive(Debug, Clone, Default)]
pub enum RateLimitClock {
    /// The server's clock, read inside the script with `TIME` (for the memory limiter:
    /// the keyspace's clock). App instances with skewed clocks then agree on every
    /// bucket. The default.
    #[default]
    Server,
    /// A clock supplied by the caller, sent with each call: for servers that refuse
    /// `TIME` in scripts, and for tests that move time by hand. Instances must then keep
    /// their clocks in sync: a skew larger than the window lets them over-admit.
    Caller(Arc<dyn Clock>),
}

/// What a decision is when the store cannot be reached or does not answer in time.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UnavailablePolicy {
    /// Deny, with a retry time of one window ([`DecisionSource::FailedClosed`]). The
    /// default: an auth endpoint is not left unprotected while Redis is down.
    #[default]
    FailClosed,
    /// Admit without counting ([`DecisionSource::FailedOpen`]).
    FailOpen,
}

/// Options of a rate limiter. Build with [`RateLimiterOptions::builder`].
#[non_exhaustive]
#[derive(Debug, Clone)]
pub struct RateLimiterOptions {
    /// The key codec (prefix); buckets live under `{prefix}rate-limit:`.
    pub codec: KeyCodec,
    /// How buckets count.
    pub algorithm: RateLimitAlgorithm,
    /// Where "now" comes from.
    pub clock: RateLimitClock,
    /// What to answer while the store is unavailable.
    pub on_unavailable: UnavailablePolicy,
    /// Capacity of the local cache of blocked buckets; `None` (the default) = no cache.
    pub blocked_cache: Option<usize>,
    /// A circuit breaker in front of the store (share the one of the deployment's other
    /// wrappers): while it is open, decisions follow [`Self::on_unavailable`] at once,
    /// without a round trip. `None` (the default) = every decision tries the store.
    pub breaker: Option<CircuitBreaker>,
}

impl Default for RateLimiterOptions {
    fn default() -> Self {
        RateLimiterOptions {
            codec: KeyCodec::default(),
            algorithm: RateLimitAlgorithm::default(),
            clock: RateLimitClock::Server,
            on_unavailable: UnavailablePolicy::FailClosed,
            blocked_cache: None,
            breaker: None,
        }
    }
}

impl RateLimiterOptions {
    /// The largest blocked-cache capacity accepted.
    pub const MAX_BLOCKED_CACHE: usize = 10_000_000;

    /// Starts options with the default prefix `rustauth:`, the fixed-window algorithm,
    /// the server clock, fail-closed and no blocked cache.
    pub fn builder() -> RateLimiterOptionsBuilder {
        RateLimiterOptionsBuilder {
            prefix: crate::keys::DEFAULT_PREFIX.to_owned(),
            options: RateLimiterOptions::default(),
        }
    }
}

/// Builder for [`RateLimiterOptions`].
#[derive(Debug, Clone)]
pub struct RateLimiterOptionsBuilder {
    prefix: String,
    options: RateLimiterOptions,
}

impl RateLimiterOptionsBuilder {
    /// Sets the key prefix (default `rustauth:`); validated by `build()`.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Uses the prefix of `codec` (e.g. a secondary store's, so both share a prefix).
    pub fn codec(self, codec: &KeyCodec) -> Self {
        self.prefix(codec.prefix().as_str())
    }

    /// Sets the algorithm (default [`RateLimitAlgorithm::FixedWindow`]). Deployments
    /// upgrading from the earlier `rustauth-redis`/`rustauth-fred` limiter pick
    /// [`RateLimitAlgorithm::LastRequest`] to keep their buckets.
    pub fn algorithm(mut self, algorithm: RateLimitAlgorithm) -> Self {
        self.options.algorithm = algorithm;
        self
    }

    /// Uses `clock` instead of the server's clock; see [`RateLimitClock::Caller`].
    pub fn caller_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.options.clock = RateLimitClock::Caller(clock);
        self
    }

    /// Puts `breaker` in front of the store (default: none). After its threshold of
    /// consecutive unavailability errors, decisions follow the unavailable policy (deny,
    /// or [`Self::fail_open`]) at once for the cool-down, then one probe goes through.
    pub fn circuit_breaker(mut self, breaker: CircuitBreaker) -> Self {
        self.options.breaker = Some(breaker);
        self
    }

    /// Admits without counting while the store is unavailable (default: deny).
    pub fn fail_open(mut self) -> Self {
        self.options.on_unavailable = UnavailablePolicy::FailOpen;
        self
    }

    /// Keeps up to `capacity` blocked buckets in a local cache, so requests for them are
    /// denied without a round trip until their retry time. Trade-off: a `reset` made
    /// through another limiter (another process) is not seen by this one until the
    /// cached retry time passes.
    pub fn blocked_cache(mut self, capacity: usize) -> Self {
        self.options.blocked_cache = Some(capacity);
        self
    }

    /// Validates and builds the options.
    pub fn build(self) -> KvResult<RateLimiterOptions> {
        let prefix = Prefix::new(self.prefix)?;
        self.options.algorithm.validate()?;
        if let Some(c) = self.options.blocked_cache {
            if c == 0 || c > RateLimiterOptions::MAX_BLOCKED_CACHE {
                return Err(KvError::invalid_config(format!(
                    "blocked-cache capacity {c} is out of range 1..={}",
                    RateLimiterOptions::MAX_BLOCKED_CACHE
                )));
            }
        }
        Ok(RateLimiterOptions {
            codec: KeyCodec::new(prefix),
            ..self.options
        })
    }
}

/// One validated call: the physical key and the script's numeric inputs except "now".
#[derive(Debug, Clone)]
pub(crate) struct Call {
    pub key: Vec<u8>,
    pub window: u64,
    pub limit: u64,
    pub cost: u64,
    pub commit: bool,
    pub capacity: u64,
}

/// The shared front of both limiters.
#[derive(Debug, Clone)]
pub(crate) struct Front {
    pub options: RateLimiterOptions,
    cache: Option<Arc<BlockedCache>>,
}

impl Front {
    pub(crate) fn new(options: RateLimiterOptions) -> Self {
        let cache = options
            .blocked_cache
            .map(|c| Arc::new(BlockedCache::new(c)));
        Front { options, cache }
    }

    /// The physical key of `bucket`; an empty or oversized bucket is rejected.
    pub(crate) fn key(&self, bucket: &str) -> KvResult<Vec<u8>> {
        self.options.codec.key(Namespace::RateLimit, bucket)
    }

    /// Validates a call before any I/O: the bucket, and a cost between 1 and the
    /// bucket's capacity (more could never be admitted).
    pub(crate) fn call(
        &self,
        bucket: &str,
        rule: &RateLimitRule,
        cost: u64,
        commit: bool,
    ) -> KvResult<Call> {
        let key = self.key(bucket)?;
        let capacity = self
            .options
            .algorithm
            .capacity(rule.max(), rule.window_ms())
            .map_err(|e| KvError::invalid_input(e.message().to_owned()))?;
        if cost == 0 || cost > capacity {
            return Err(KvError::invalid_input(format!(
                "rate-limit cost {cost} for bucket {bucket:?} is out of range 1..={capacity} \
                 (rule {rule}, {}); use peek to read a bucket without consuming",
                self.options.algorithm.name()
            )));
        }
        Ok(Call {
            key,
            window: rule.window_ms(),
            limit: rule.max(),
            cost,
            commit,
            capacity,
        })
    }

    /// Answers `call`: from the blocked cache if it knows the bucket is blocked,
    /// otherwise by awaiting `store` (the one round trip), applying the failure policy
    /// when the store is unavailable. `store` is not polled when the cache answers.
    pub(crate) async fn decide(
        &self,
        call: &Call,
        store: impl Future<Output = KvResult<Verdict>>,
    ) -> KvResult<RateLimitDecision> {
        if let Some(cache) = &self.cache {
            if let Some(hit) =
                cache.lookup(&call.key, call.window, call.limit, call.capacity, call.cost)
            {
                return Ok(hit);
            }
        }
        let result = match &self.options.breaker {
            Some(breaker) => breaker.call(|| store).await,
            None => store.await,
        };
        match result {
            Ok(v) => {
                let decision = RateLimitDecision {
                    allowed: v.allowed,
                    limit: call.capacity,
                    remaining: v.remaining,
                    retry_after_ms: v.retry_after_ms,
                    reset_after_ms: v.reset_after_ms,
                    source: DecisionSource::Store,
                };
                if let Some(cache) = &self.cache {
                    cache.record(&call.key, call.window, call.limit, call.cost, &decision);
                }
                Ok(decision)
            }
            Err(e) if e.is_unavailable() => {
                tracing::warn!(
                    error = %e,
                    policy = ?self.options.on_unavailable,
                    "rate-limit store unavailable"
                );
                Ok(match self.options.on_unavailable {
                    UnavailablePolicy::FailClosed => RateLimitDecision {
                        allowed: false,
                        limit: call.capacity,
                        remaining: 0,
                        retry_after_ms: call.window,
                        reset_after_ms: call.window,
                        source: DecisionSource::FailedClosed,
                    },
                    UnavailablePolicy::FailOpen => RateLimitDecision {
                        allowed: true,
                        limit: call.capacity,
                        remaining: call.capacity - if call.commit { call.cost } else { 0 },
                        retry_after_ms: 0,
                        reset_after_ms: 0,
                        source: DecisionSource::FailedOpen,
                    },
                })
            }
            Err(e) => Err(e),
        }
    }

    /// Forgets what the blocked cache knows about a bucket (after `reset`).
    pub(crate) fn forget(&self, key: &[u8]) {
        if let Some(cache) = &self.cache {
            cache.forget(key);
        }
    }

    /// The caller's clock reading, or `None` for the server clock.
    pub(crate) fn caller_now(&self) -> Option<u64> {
        match &self.options.clock {
            RateLimitClock::Server => None,
            RateLimitClock::Caller(c) => Some(c.now_ms()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    #[test]
    fn build_validates() {
        let o = RateLimiterOptions::builder().build().unwrap();
        assert_eq!(o.codec.prefix().as_str(), "rustauth:");
        assert_eq!(o.algorithm, RateLimitAlgorithm::FixedWindow);
        assert_eq!(o.on_unavailable, UnavailablePolicy::FailClosed);
        assert!(matches!(o.clock, RateLimitClock::Server));
        let errors = [
            RateLimiterOptions::builder().prefix("").build(),
            RateLimiterOptions::builder()
                .algorithm(RateLimitAlgorithm::gcra_with_burst(0))
                .build(),
            RateLimiterOptions::builder().blocked_cache(0).build(),
        ];
        for e in errors {
            assert_eq!(e.unwrap_err().kind(), ErrorKind::InvalidConfig);
        }
    }

    #[test]
    fn calls_are_validated() {
        let front = Front::new(RateLimiterOptions::default());
        let rule = RateLimitRule::from_secs(10, 3).unwrap();
        let c = front.call("1.2.3.4|/sign-in", &rule, 3, true).unwrap();
        assert_eq!(c.key, b"rustauth:rate-limit:1.2.3.4|/sign-in");
        assert_eq!((c.window, c.limit, c.capacity), (10_000, 3, 3));
        for (bucket, cost, needle) in [
            ("b", 0, "cost 0"),
            ("b", 4, "cost 4 for bucket \"b\" is out of range 1..=3"),
            ("", 1, "empty rate-limit key"),
        ] {
            let e = front.call(bucket, &rule, cost, true).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidInput);
            assert!(e.message().contains(needle), "{e}");
        }
        let gcra = Front::new(
            RateLimiterOptions::builder()
                .algorithm(RateLimitAlgorithm::gcra_with_burst(1 << 40))
                .build()
                .unwrap(),
        );
        let e = gcra.call("b", &rule, 1, true).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
        assert!(e.message().contains("burst"), "{e}");
    }
}
