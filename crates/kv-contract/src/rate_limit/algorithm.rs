//! The four algorithms, as pure functions from a bucket's stored state to a verdict and
//! the write that follows it.
//!
//! These functions are the executable spec of the Lua scripts in `src/lua/rate_limit_*.lua`:
//! the memory limiter runs them inside one keyspace transaction, the scripts do the same
//! steps in the same order with the same integer arithmetic, and the conformance suite
//! checks that both leave the same bytes. Every function follows the same shape:
//!
//! 1. read the state (`None` when the key is absent or does not hold this algorithm's
//!    layout, which is then treated as an empty bucket and replaced on the next write);
//! 2. decide whether `cost` units fit;
//! 3. write only when the units are consumed (a denial writes nothing, except to give a
//!    key that somehow lost its TTL a new one: no key is ever left without a TTL).

use crate::rate_limit::rule::check_product;
use crate::{KvError, KvResult};

/// How a limiter counts. Chosen per limiter; see `docs/rate-limit.md` for each one's
/// stored layout and boundary rule.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum RateLimitAlgorithm {
    /// A counter that starts when the window opens and expires with it (Better Auth ≥ 1.7's
    /// `increment`): a string key, `PX window` set when it is created.
    #[default]
    FixedWindow,
    /// The two-bucket weighted approximation of a sliding window (windows aligned to
    /// multiples of the window since the epoch): no 2× burst across a window edge.
    SlidingWindow,
    /// The generic cell rate algorithm: `max` units per window spread evenly, with bursts
    /// of up to `burst` units (default: `max`).
    Gcra {
        /// The largest burst admitted at once; `None` = the rule's `max`.
        burst: Option<u64>,
    },
    /// Better Auth 1.6.x "last request" semantics, in the layout existing rustauth
    /// deployments wrote: a hash with `count` and `last_request`, reset after a quiet
    /// period longer than the window.
    LastRequest,
}

impl RateLimitAlgorithm {
    /// GCRA with bursts of up to `burst` units.
    pub fn gcra_with_burst(burst: u64) -> Self {
        RateLimitAlgorithm::Gcra { burst: Some(burst) }
    }

    /// A short name (`fixed-window`, `sliding-window`, `gcra`, `last-request`).
    pub fn name(self) -> &'static str {
        match self {
            RateLimitAlgorithm::FixedWindow => "fixed-window",
            RateLimitAlgorithm::SlidingWindow => "sliding-window",
            RateLimitAlgorithm::Gcra { .. } => "gcra",
            RateLimitAlgorithm::LastRequest => "last-request",
        }
    }

    /// Every algorithm (GCRA with its default burst), for tests and tooling.
    pub const ALL: [RateLimitAlgorithm; 4] = [
        RateLimitAlgorithm::FixedWindow,
        RateLimitAlgorithm::SlidingWindow,
        RateLimitAlgorithm::Gcra { burst: None },
        RateLimitAlgorithm::LastRequest,
    ];

    /// Rejects a burst of 0 (checked by the options' `build()`).
    pub(crate) fn validate(self) -> KvResult<()> {
        if let RateLimitAlgorithm::Gcra { burst: Some(0) } = self {
            return Err(KvError::invalid_config(
                "GCRA burst is 0: a burst must admit at least 1 unit",
            ));
        }
        Ok(())
    }

    /// The units a bucket holds when full under `max`: the burst for GCRA, else `max`.
    /// Also what `RateLimit-Limit` reports. Checked against the window before any I/O.
    pub(crate) fn capacity(self, max: u64, window_ms: u64) -> KvResult<u64> {
        match self {
            RateLimitAlgorithm::Gcra { burst: Some(b) } => {
                check_product("burst", b, window_ms)?;
                Ok(b)
            }
            _ => Ok(max),
        }
    }
}

/// The inputs of one decision, exactly what a script receives in `ARGV`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Step {
    /// Milliseconds since the epoch, from the server (or keyspace) clock or the caller's.
    pub now: u64,
    /// The window in milliseconds (≥ 1).
    pub window: u64,
    /// The rule's `max` (≥ 1).
    pub limit: u64,
    /// Units asked for (1..=capacity).
    pub cost: u64,
    /// `false` for `peek`: decide for `cost` but write nothing.
    pub commit: bool,
    /// GCRA's burst (the capacity); the rule's `max` for the other algorithms.
    pub burst: u64,
}

/// What a decision says, before the limiter adds `limit` and the source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Verdict {
    pub allowed: bool,
    pub remaining: u64,
    pub retry_after_ms: u64,
    pub reset_after_ms: u64,
}

/// The one write a decision makes, if any; always leaves the key with a TTL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Write {
    /// `SET key value PX ttl` (replaces whatever the key held).
    Counter { value: u64, ttl: u64 },
    /// `INCRBY key by` (keeps the TTL), then `PEXPIRE key ttl` when given.
    Increment { by: u64, ttl: Option<u64> },
    /// `DEL key` when `replace` (the key held something else), `HSET key fields...`,
    /// `PEXPIRE key ttl`.
    Fields {
        fields: Vec<(&'static str, u64)>,
        replace: bool,
        ttl: u64,
    },
    /// `PEXPIRE key ttl`: a valid bucket found without a TTL gets one.
    Expire(u64),
}

/// A stored number: an integer as Redis parses it ([`crate::wire::parse_integer`]: no
/// sign, no leading zero, no spaces), non-negative and at most 15 digits, what the
/// scripts' `stored_int` accepts; anything else reads as "not this algorithm's layout".
/// In particular a counter `INCRBY` would refuse (`007`) is never incremented.
pub(crate) fn stored_int(raw: &[u8]) -> Option<u64> {
    if raw.len() > 15 {
        return None;
    }
    crate::wire::parse_integer(raw).and_then(|n| u64::try_from(n).ok())
}

fn div_ceil(a: u64, b: u64) -> u64 {
    a.div_ceil(b)
}

/// Fixed window: `count` is the counter's value, `pttl` its `PTTL` (`None` = no TTL).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Counter {
    pub count: u64,
    pub pttl: Option<u64>,
}

/// `rate_limit_fixed_window.lua`.
///
/// Boundary: a window opened at `t0` (by the first admitted request) counts requests at
/// `t0 ..= t0 + window` (Redis keeps a key through the millisecond it expires at) and
/// the bucket is empty from `t0 + window + 1`.
pub(crate) fn fixed_window(state: Option<Counter>, s: &Step) -> (Verdict, Option<Write>) {
    let (used, life) = match state {
        None => (0, s.window),
        Some(c) => (c.count, c.pttl.unwrap_or(s.window)),
    };
    let allowed = used + s.cost <= s.limit;
    let mut write = None;
    let mut used_after = used;
    if allowed && s.commit {
        used_after = used + s.cost;
        write = Some(match state {
            None => Write::Counter {
                value: s.cost,
                ttl: s.window,
            },
            Some(c) => Write::Increment {
                by: s.cost,
                ttl: c.pttl.is_none().then_some(s.window),
            },
        });
    } else if matches!(state, Some(Counter { pttl: None, .. })) {
        write = Some(Write::Expire(s.window));
    }
    let reset = if used_after > 0 { life + 1 } else { 0 };
    let verdict = Verdict {
        allowed,
        remaining: s.limit.saturating_sub(used_after),
        retry_after_ms: if allowed { 0 } else { life + 1 },
        reset_after_ms: reset,
    };
    (verdict, write)
}

/// Last request: the hash's `count` and `last_request`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LastRequestState {
    pub count: u64,
    pub last: u64,
    pub pttl: Option<u64>,
}

/// `rate_limit_last_request.lua`.
///
/// Boundary: the bucket keeps its count while `now - last_request <= window` (a clock
/// behind `last_request` counts as 0 elapsed) and is empty from `last_request + window
/// + 1`; `last_request` moves only on admitted requests.
pub(crate) fn last_request(
    state: Option<LastRequestState>,
    foreign: bool,
    s: &Step,
) -> (Verdict, Option<Write>) {
    let used = match state {
        Some(st) if s.now.saturating_sub(st.last) <= s.window => st.count,
        _ => 0,
    };
    let allowed = used + s.cost <= s.limit;
    let mut write = None;
    let (mut used_after, mut last_after) = (used, state.map_or(s.now, |st| st.last));
    if allowed && s.commit {
        used_after = used + s.cost;
        last_after = s.now;
        write = Some(Write::Fields {
            fields: vec![("count", used_after), ("last_request", s.now)],
            replace: foreign,
            ttl: s.window,
        });
    } else if let Some(LastRequestState {
        last, pttl: None, ..
    }) = state
    {
        write = Some(Write::Expire(
            (last + s.window).saturating_sub(s.now).max(1),
        ));
    }
    let reset = if used_after > 0 {
        last_after + s.window + 1 - s.now
    } else {
        0
    };
    let verdict = Verdict {
        allowed,
        remaining: s.limit.saturating_sub(used_after),
        retry_after_ms: if allowed { 0 } else { reset },
        reset_after_ms: reset,
    };
    (verdict, write)
}

/// Sliding window: the hash's `start`, `current` and `previous`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SlidingState {
    pub start: u64,
    pub current: u64,
    pub previous: u64,
    pub pttl: Option<u64>,
}

/// `rate_limit_sliding_window.lua`.
///
/// Windows are `[k·window, (k+1)·window)` since the epoch. The estimate at `elapsed` ms
/// into the current window is `previous × (window − elapsed) / window + current`; a
/// request fits when `estimate + cost <= max`, computed multiplied by `window` so it
/// stays in integers. A stored window later than the clock's (a caller clock behind
/// another's) is used as is, with 0 elapsed: time never runs backwards for a bucket.
pub(crate) fn sliding_window(
    state: Option<SlidingState>,
    foreign: bool,
    s: &Step,
) -> (Verdict, Option<Write>) {
    let w = s.window;
    let cur_start = s.now / w * w;
    let (start, cur, prev) = match state {
        Some(st) if st.start >= cur_start => (st.start, st.current, st.previous),
        Some(st) if st.start + w == cur_start => (cur_start, 0, st.current),
        _ => (cur_start, 0, 0),
    };
    // Counts above max only appear if max was lowered; clamping keeps the products
    // within the validated bounds and still denies.
    let (cur, prev) = (cur.min(s.limit), prev.min(s.limit));
    let elapsed = s.now.saturating_sub(start);
    let weight = w - elapsed;
    let weighted = prev * weight + cur * w;
    let allowed = weighted + s.cost * w <= s.limit * w;
    let mut write = None;
    let mut cur_after = cur;
    if allowed && s.commit {
        cur_after = cur + s.cost;
        write = Some(Write::Fields {
            fields: vec![("start", start), ("current", cur_after), ("previous", prev)],
            replace: foreign,
            ttl: 2 * w - elapsed,
        });
    } else if let Some(SlidingState {
        start: stored,
        pttl: None,
        ..
    }) = state
    {
        write = Some(Write::Expire((stored + 2 * w).saturating_sub(s.now).max(1)));
    }
    let weighted_after = prev * weight + cur_after * w;
    let retry = if allowed {
        0
    } else {
        let room = s.limit - s.cost;
        if cur <= room {
            // Wait for `previous`' weight to fall: prev × (weight − t) <= (room − cur) × w.
            weight - (room - cur) * w / prev
        } else {
            // Only the next window helps: there `current` becomes `previous`, and fits
            // once cur × (w − e) <= room × w.
            weight + w - room * w / cur
        }
    };
    let reset = if cur_after > 0 {
        2 * w - elapsed
    } else if prev > 0 {
        weight
    } else {
        0
    };
    let verdict = Verdict {
        allowed,
        remaining: (s.limit * w).saturating_sub(weighted_after) / w,
        retry_after_ms: retry,
        reset_after_ms: reset,
    };
    (verdict, write)
}

/// GCRA: the hash's `tat` (theoretical arrival time, ms) and `tat_rem` (the fraction of
/// a millisecond beyond `tat`, in units of 1/max ms).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct GcraState {
    pub tat: u64,
    pub rem: u64,
    pub pttl: Option<u64>,
}

/// `rate_limit_gcra.lua`.
///
/// Time is counted in units of 1/max ms, so one unit's emission interval is exactly
/// `window` of them: `debt` = how far the TAT is ahead of now; a request fits when
/// `debt + cost × window <= burst × window`. The TAT is stored as whole ms plus the
/// remainder, so no rounding accumulates. A TAT further ahead than one full burst (a
/// caller clock behind another's) is clamped to that, so the arithmetic stays bounded.
pub(crate) fn gcra(state: Option<GcraState>, foreign: bool, s: &Step) -> (Verdict, Option<Write>) {
    let (w, m) = (s.window, s.limit);
    let cap = s.burst * w;
    let ahead_max = div_ceil(cap, m) + 1;
    let debt = match state {
        Some(st) if st.tat >= s.now => {
            let ahead = st.tat - s.now;
            if ahead > ahead_max {
                ahead_max * m
            } else {
                ahead * m + st.rem.min(m - 1)
            }
        }
        _ => 0,
    };
    let need = debt + s.cost * w;
    let allowed = need <= cap;
    let mut write = None;
    let mut debt_after = debt;
    if allowed && s.commit {
        debt_after = need;
        write = Some(Write::Fields {
            fields: vec![("tat", s.now + need / m), ("tat_rem", need % m)],
            replace: foreign,
            ttl: div_ceil(need, m),
        });
    } else if matches!(state, Some(GcraState { pttl: None, .. })) {
        write = Some(Write::Expire(div_ceil(debt, m).max(1)));
    }
    let verdict = Verdict {
        allowed,
        remaining: cap.saturating_sub(debt_after) / w,
        retry_after_ms: if allowed { 0 } else { div_ceil(need - cap, m) },
        reset_after_ms: div_ceil(debt_after, m),
    };
    (verdict, write)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(now: u64, window: u64, limit: u64, cost: u64) -> Step {
        Step {
            now,
            window,
            limit,
            cost,
            commit: true,
            burst: limit,
        }
    }

    fn v(allowed: bool, remaining: u64, retry: u64, reset: u64) -> Verdict {
        Verdict {
            allowed,
            remaining,
            retry_after_ms: retry,
            reset_after_ms: reset,
        }
    }

    #[test]
    fn stored_int_accepts_only_short_digit_strings() {
        assert_eq!(stored_int(b"0"), Some(0));
        assert_eq!(stored_int(b"7"), Some(7));
        assert_eq!(stored_int(b"999999999999999"), Some(999_999_999_999_999));
        // As Redis parses integers (INCRBY would refuse these), and non-negative.
        for bad in [
            &b""[..],
            b"007",
            b"00",
            b"+5",
            b"-5",
            b"-0",
            b"5 ",
            b"1000000000000000",
            b"-1",
            b"1.5",
            b" 1",
            b"0x10",
            b"1e3",
        ] {
            assert_eq!(stored_int(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn fixed_window_table() {
        let s = step(1_000, 10_000, 3, 1);
        assert_eq!(
            fixed_window(None, &s),
            (
                v(true, 2, 0, 10_001),
                Some(Write::Counter {
                    value: 1,
                    ttl: 10_000
                })
            )
        );
        let full = Counter {
            count: 3,
            pttl: Some(400),
        };
        assert_eq!(fixed_window(Some(full), &s), (v(false, 0, 401, 401), None));
        let two = Counter {
            count: 2,
            pttl: Some(0),
        };
        assert_eq!(
            fixed_window(Some(two), &s),
            (
                v(true, 0, 0, 1),
                Some(Write::Increment { by: 1, ttl: None })
            ),
            "PTTL 0 is the window's last live millisecond"
        );
        let lost_ttl = Counter {
            count: 3,
            pttl: None,
        };
        assert_eq!(
            fixed_window(Some(lost_ttl), &s),
            (v(false, 0, 10_001, 10_001), Some(Write::Expire(10_000)))
        );
        let peek = Step { commit: false, ..s };
        assert_eq!(fixed_window(None, &peek), (v(true, 3, 0, 0), None));
    }

    #[test]
    fn last_request_boundary_is_strict() {
        let st = LastRequestState {
            count: 3,
            last: 1_000,
            pttl: Some(10_000),
        };
        let at = |now| step(now, 10_000, 3, 1);
        // elapsed == window: still the same period, denied; one ms later: a new period.
        assert_eq!(
            last_request(Some(st), false, &at(11_000)),
            (v(false, 0, 1, 1), None)
        );
        assert_eq!(
            last_request(Some(st), false, &at(11_001)),
            (
                v(true, 2, 0, 10_001),
                Some(Write::Fields {
                    fields: vec![("count", 1), ("last_request", 11_001)],
                    replace: false,
                    ttl: 10_000
                })
            )
        );
        // A caller clock behind last_request counts as zero elapsed.
        assert_eq!(
            last_request(Some(st), false, &at(500)),
            (v(false, 0, 10_501, 10_501), None)
        );
        let two = LastRequestState { count: 2, ..st };
        assert_eq!(
            last_request(Some(two), true, &at(2_000)).1,
            Some(Write::Fields {
                fields: vec![("count", 3), ("last_request", 2_000)],
                replace: true,
                ttl: 10_000
            })
        );
    }

    #[test]
    fn sliding_window_weighs_the_previous_window() {
        // window 1000, max 10; previous window had 10, current 0, 250 ms in.
        let st = SlidingState {
            start: 9_000,
            current: 10,
            previous: 0,
            pttl: Some(1_000),
        };
        let s = step(10_250, 1_000, 10, 1);
        // estimate = 10 × 750/1000 = 7.5, so 2 more fit (9.5), a third does not.
        let (verdict, write) = sliding_window(Some(st), false, &s);
        assert_eq!(verdict, v(true, 1, 0, 1_750));
        assert_eq!(
            write,
            Some(Write::Fields {
                fields: vec![("start", 10_000), ("current", 1), ("previous", 10)],
                replace: false,
                ttl: 1_750
            })
        );
        let st2 = SlidingState {
            start: 10_000,
            current: 2,
            previous: 10,
            pttl: Some(1_750),
        };
        let (verdict, write) = sliding_window(Some(st2), false, &s);
        // 7.5 + 2 + 1 > 10: wait until 10 × (750 − t) <= (9 − 2) × 1000, t = 50.
        assert_eq!((verdict, write), (v(false, 0, 50, 1_750), None));
        let later = step(10_300, 1_000, 10, 1);
        assert!(sliding_window(Some(st2), false, &later).0.allowed);
        let just_before = step(10_299, 1_000, 10, 1);
        assert!(!sliding_window(Some(st2), false, &just_before).0.allowed);
    }

    #[test]
    fn gcra_spreads_units_exactly() {
        // 3 per 10 s, burst 3: emission interval 3333.3 ms.
        let s = |now| step(now, 10_000, 3, 1);
        let (v1, w1) = gcra(None, false, &s(0));
        assert_eq!(v1, v(true, 2, 0, 3_334));
        assert_eq!(
            w1,
            Some(Write::Fields {
                fields: vec![("tat", 3_333), ("tat_rem", 1)],
                replace: false,
                ttl: 3_334
            })
        );
        let full = GcraState {
            tat: 10_000,
            rem: 0,
            pttl: Some(10_000),
        };
        assert_eq!(
            gcra(Some(full), false, &s(0)),
            (v(false, 0, 3_334, 10_000), None)
        );
        assert!(!gcra(Some(full), false, &s(3_333)).0.allowed);
        assert!(gcra(Some(full), false, &s(3_334)).0.allowed);
    }
}
