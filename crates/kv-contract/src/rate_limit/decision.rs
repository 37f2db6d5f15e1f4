//! [`RateLimitDecision`]: what a limiter answers, where the answer came from, and the
//! response headers it turns into.

use std::time::Duration;

/// Who decided: the store, or one of the opt-in shortcuts the limiter took instead.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DecisionSource {
    /// The server (or memory keyspace) decided, atomically, in one round trip.
    Store,
    /// The local cache of blocked buckets answered: an earlier decision said this bucket
    /// stays blocked until its retry time, so no round trip was made.
    BlockedCache,
    /// The store was unavailable (or timed out) and the limiter fails open: admitted
    /// without counting. `remaining` and the times are not from the store.
    FailedOpen,
    /// The store was unavailable (or timed out) and the limiter fails closed (the
    /// default): denied, with a retry time of one window.
    FailedClosed,
}

/// The answer to one `consume` or `peek`.
///
/// Times are in milliseconds from the decision, exact at millisecond resolution: after
/// `retry_after_ms` the same request fits (if nothing else consumes meanwhile); after
/// `reset_after_ms` the bucket is full again.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimitDecision {
    /// Whether the units were admitted (for `peek`: whether they would be).
    pub allowed: bool,
    /// The bucket's capacity: the rule's `max` (GCRA: its burst).
    pub limit: u64,
    /// Units still available after this decision.
    pub remaining: u64,
    /// 0 when allowed; otherwise the wait before the same request would fit.
    pub retry_after_ms: u64,
    /// The wait before the bucket is full again (0 when it already is).
    pub reset_after_ms: u64,
    /// Who decided.
    pub source: DecisionSource,
}

/// Better Auth's 429 body.
pub const TOO_MANY_REQUESTS_MESSAGE: &str = "Too many requests. Please try again later.";

impl RateLimitDecision {
    /// [`Self::retry_after_ms`] as a duration.
    pub fn retry_after(&self) -> Duration {
        Duration::from_millis(self.retry_after_ms)
    }

    /// [`Self::reset_after_ms`] as a duration.
    pub fn reset_after(&self) -> Duration {
        Duration::from_millis(self.reset_after_ms)
    }

    /// Whole seconds to wait, rounded up (never 0 for a denial): what `Retry-After` and
    /// `X-Retry-After` carry.
    pub fn retry_after_secs(&self) -> u64 {
        self.retry_after_ms.div_ceil(1000)
    }

    /// The response headers for this decision, as (name, value) pairs:
    ///
    /// - always `RateLimit-Limit`, `RateLimit-Remaining`, `RateLimit-Reset` (seconds until
    ///   the bucket is full, rounded up), as in the IETF `RateLimit` header fields draft;
    /// - when denied, also `Retry-After` (RFC 9110, seconds) and Better Auth's
    ///   `X-Retry-After` (seconds). Unlike Better Auth ≥ 1.7, which always sends the full
    ///   window, both carry the time actually left.
    pub fn headers(&self) -> Vec<(&'static str, String)> {
        let mut h = vec![
            ("RateLimit-Limit", self.limit.to_string()),
            ("RateLimit-Remaining", self.remaining.to_string()),
            (
                "RateLimit-Reset",
                self.reset_after_ms.div_ceil(1000).to_string(),
            ),
        ];
        if !self.allowed {
            let secs = self.retry_after_secs().to_string();
            h.push(("Retry-After", secs.clone()));
            h.push(("X-Retry-After", secs));
        }
        h
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_round_up_and_appear_only_when_denied() {
        let mut d = RateLimitDecision {
            allowed: true,
            limit: 3,
            remaining: 2,
            retry_after_ms: 0,
            reset_after_ms: 10_001,
            source: DecisionSource::Store,
        };
        assert_eq!(
            d.headers(),
            vec![
                ("RateLimit-Limit", "3".to_owned()),
                ("RateLimit-Remaining", "2".to_owned()),
                ("RateLimit-Reset", "11".to_owned()),
            ]
        );
        d.allowed = false;
        d.remaining = 0;
        d.retry_after_ms = 1;
        d.reset_after_ms = 1;
        let h = d.headers();
        assert_eq!(h[2], ("RateLimit-Reset", "1".to_owned()));
        assert_eq!(
            h[3],
            ("Retry-After", "1".to_owned()),
            "1 ms rounds up to 1 s"
        );
        assert_eq!(h[4], ("X-Retry-After", "1".to_owned()));
        assert_eq!(d.retry_after(), Duration::from_millis(1));
    }
}
