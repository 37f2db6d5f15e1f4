//! [`RateLimitRule`]: how many units a bucket admits per window, validated when it is
//! built so no call ever sends a rule the scripts cannot compute exactly.
//!
//! The scripts do their arithmetic in Lua numbers (doubles, exact for integers up to
//! 2^53) and compare products such as `max × window`; the bounds below keep every such
//! product under 2^52, so the Lua script and the memory implementation (integers) agree
//! to the millisecond.

use std::fmt;
use std::time::Duration;

use crate::error::{KvError, KvResult};

/// The longest window accepted: 2^40 ms (about 34.8 years). Longer windows are almost
/// certainly a unit mistake, and the window is added to epoch milliseconds in scripts.
pub const MAX_WINDOW_MS: u64 = 1 << 40;

/// The largest `max × window_ms` (and `burst × window_ms`) accepted: 2^50. The
/// sliding-window and GCRA scripts multiply counts by the window; this bound keeps their
/// sums below 2^52, inside the range a Lua number holds exactly.
pub const MAX_UNITS_TIMES_WINDOW: u64 = 1 << 50;

/// At most `max` units per `window`, for one bucket.
///
/// Built with [`RateLimitRule::new`] (a [`Duration`]) or [`RateLimitRule::from_secs`]
/// (signed numbers, as configuration files and Better Auth's `{ window, max }` give
/// them). Both reject, before any I/O, a zero or negative window, a zero or negative
/// `max`, a window above [`MAX_WINDOW_MS`] and a `max × window` above
/// [`MAX_UNITS_TIMES_WINDOW`]. A window that is not a whole number of milliseconds is
/// rounded up, like TTLs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RateLimitRule {
    window_ms: u64,
    max: u64,
}

impl RateLimitRule {
    /// At most `max` units per `window`.
    pub fn new(window: Duration, max: u64) -> KvResult<Self> {
        if window.is_zero() {
            return Err(KvError::invalid_config(format!(
                "rate-limit window is zero (max {max}): a window must be at least 1 ms"
            )));
        }
        let whole = window.as_millis();
        let window_ms = if Duration::from_millis(whole as u64) < window {
            whole + 1
        } else {
            whole
        };
        if window_ms > u128::from(MAX_WINDOW_MS) {
            return Err(KvError::invalid_config(format!(
                "rate-limit window {window:?} is too large: the limit is {MAX_WINDOW_MS} ms \
                 (2^40, about 34 years)"
            )));
        }
        Self::checked(window_ms as u64, max, &format!("{window:?}"))
    }

    /// At most `max` units per `window_secs` seconds; negative or zero values are
    /// rejected with an error naming them.
    pub fn from_secs(window_secs: i64, max: i64) -> KvResult<Self> {
        if window_secs <= 0 {
            return Err(KvError::invalid_config(format!(
                "rate-limit window {window_secs} s is not positive"
            )));
        }
        let max = u64::try_from(max)
            .map_err(|_| KvError::invalid_config(format!("rate-limit max {max} is negative")))?;
        Self::new(Duration::from_secs(window_secs as u64), max)
    }

    /// At most `max` units per `window_ms` milliseconds.
    pub fn from_millis(window_ms: u64, max: u64) -> KvResult<Self> {
        Self::new(Duration::from_millis(window_ms), max)
    }

    fn checked(window_ms: u64, max: u64, shown: &str) -> KvResult<Self> {
        if max == 0 {
            return Err(KvError::invalid_config(format!(
                "rate-limit max is 0 (window {shown}): a rule must admit at least 1 unit; \
                 to disable limiting for a path use PathLimit::Disabled"
            )));
        }
        check_product("max", max, window_ms)?;
        Ok(RateLimitRule { window_ms, max })
    }

    /// The window in whole milliseconds (at least 1).
    pub fn window_ms(&self) -> u64 {
        self.window_ms
    }

    /// The window.
    pub fn window(&self) -> Duration {
        Duration::from_millis(self.window_ms)
    }

    /// The units admitted per window (at least 1).
    pub fn max(&self) -> u64 {
        self.max
    }
}

impl fmt::Display for RateLimitRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} per {} ms", self.max, self.window_ms)
    }
}

/// Rejects `units × window_ms` above [`MAX_UNITS_TIMES_WINDOW`].
pub(crate) fn check_product(what: &str, units: u64, window_ms: u64) -> KvResult<()> {
    match units.checked_mul(window_ms) {
        Some(p) if p <= MAX_UNITS_TIMES_WINDOW => Ok(()),
        _ => Err(KvError::invalid_config(format!(
            "rate-limit {what} {units} × window {window_ms} ms exceeds 2^50: the scripts \
             could not compute it exactly; use a shorter window or a smaller {what}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    #[test]
    fn valid_rules() {
        let r = RateLimitRule::new(Duration::from_secs(10), 3).unwrap();
        assert_eq!((r.window_ms(), r.max()), (10_000, 3));
        assert_eq!(r.to_string(), "3 per 10000 ms");
        let r = RateLimitRule::new(Duration::from_micros(1500), 1).unwrap();
        assert_eq!(r.window_ms(), 2, "sub-millisecond parts round up");
        let r = RateLimitRule::new(Duration::from_nanos(1), 1).unwrap();
        assert_eq!(r.window_ms(), 1);
        assert_eq!(RateLimitRule::from_secs(60, 3).unwrap().window_ms(), 60_000);
        assert!(RateLimitRule::from_millis(MAX_WINDOW_MS, 1).is_ok());
        assert!(RateLimitRule::from_millis(1 << 20, 1 << 30).is_ok());
    }

    #[test]
    fn invalid_rules_name_the_value() {
        let cases: Vec<(KvResult<RateLimitRule>, &str)> = vec![
            (RateLimitRule::new(Duration::ZERO, 3), "window is zero"),
            (RateLimitRule::from_secs(0, 3), "window 0 s"),
            (RateLimitRule::from_secs(-5, 3), "window -5 s"),
            (RateLimitRule::from_secs(10, -1), "max -1"),
            (RateLimitRule::from_secs(10, 0), "max is 0"),
            (RateLimitRule::new(Duration::from_secs(10), 0), "max is 0"),
            (
                RateLimitRule::from_millis(MAX_WINDOW_MS + 1, 1),
                "too large",
            ),
            (RateLimitRule::new(Duration::MAX, 1), "too large"),
            (
                RateLimitRule::from_millis(1 << 30, 1 << 21),
                "max 2097152 × window 1073741824 ms",
            ),
            (RateLimitRule::from_millis(2, u64::MAX), "exceeds 2^50"),
        ];
        for (result, needle) in cases {
            let e = result.unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidConfig, "{e}");
            assert!(
                e.message().contains(needle),
                "{e} should mention {needle:?}"
            );
        }
    }
}
