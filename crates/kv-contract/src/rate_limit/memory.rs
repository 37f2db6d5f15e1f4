//! [`MemoryRateLimiter`]: the rate limiter over a [`MemoryKeyspace`], each decision one
//! keyspace transaction (the memory counterpart of the Lua script).
//!
//! It reads the bucket the way the script does (`TYPE`, the fields, `PTTL`), runs the
//! same algorithm function, and applies the same write, so the conformance suite can
//! compare its bytes with the server's.

use std::collections::BTreeMap;

use async_trait::async_trait;
use bytes::Bytes;

use crate::error::KvResult;
use crate::memory::{MemoryKeyspace, Tx, Value};
use crate::rate_limit::algorithm::{
    self, stored_int, Counter, GcraState, LastRequestState, RateLimitAlgorithm, SlidingState, Step,
    Verdict, Write,
};
use crate::rate_limit::decision::RateLimitDecision;
use crate::rate_limit::options::{Call, Front, RateLimiterOptions};
use crate::rate_limit::rule::RateLimitRule;
use crate::rate_limit::RateLimiter;

/// A rate limiter in memory: for single-instance deployments and tests. Clones share
/// the keyspace and the blocked cache.
#[derive(Debug, Clone)]
pub struct MemoryRateLimiter {
    keyspace: MemoryKeyspace,
    front: Front,
}

impl MemoryRateLimiter {
    /// A limiter over `keyspace` (shared with other stores or limiters, or its own).
    /// With [`RateLimitClock::Server`](crate::rate_limit::RateLimitClock::Server), "now"
    /// is the keyspace's clock.
    pub fn new(keyspace: MemoryKeyspace, options: RateLimiterOptions) -> Self {
        MemoryRateLimiter {
            keyspace,
            front: Front::new(options),
        }
    }

    /// The options.
    pub fn options(&self) -> &RateLimiterOptions {
        &self.front.options
    }

    /// The keyspace, for inspection.
    pub fn keyspace(&self) -> &MemoryKeyspace {
        &self.keyspace
    }

    fn run(&self, call: &Call) -> Verdict {
        let caller_now = self.front.caller_now();
        let algorithm = self.front.options.algorithm;
        self.keyspace.transaction(|tx| {
            let step = Step {
                now: caller_now.unwrap_or_else(|| tx.now_ms()),
                window: call.window,
                limit: call.limit,
                cost: call.cost,
                commit: call.commit,
                burst: call.capacity,
            };
            decide(tx, &call.key, algorithm, &step)
        })
    }
}

/// The hash fields `names` of `key` as stored numbers, when the key is a hash holding
/// all of them; whether the key holds something else (`foreign`); its `PTTL`.
fn read_hash(tx: &mut Tx<'_>, key: &[u8], names: &[&str]) -> (Option<Vec<u64>>, bool, Option<u64>) {
    let fields = match tx.get(key) {
        None => return (None, false, None),
        Some(Value::Hash(map)) => names
            .iter()
            .map(|n| map.get(n.as_bytes()).and_then(|v| stored_int(v)))
            .collect::<Option<Vec<u64>>>(),
        Some(_) => None,
    };
    let pttl = tx.pttl(key).flatten();
    let foreign = fields.is_none();
    (fields, foreign, pttl)
}

fn decide(tx: &mut Tx<'_>, key: &[u8], algorithm: RateLimitAlgorithm, s: &Step) -> Verdict {
    let (verdict, write) = match algorithm {
        RateLimitAlgorithm::FixedWindow => {
            let state = match tx.get(key) {
                Some(Value::String(v)) => stored_int(v),
                _ => None,
            }
            .map(|count| Counter {
                count,
                pttl: tx.pttl(key).flatten(),
            });
            algorithm::fixed_window(state, s)
        }
        RateLimitAlgorithm::LastRequest => {
            let (f, foreign, pttl) = read_hash(tx, key, &["count", "last_request"]);
            let state = f.map(|f| LastRequestState {
                count: f[0],
                last: f[1],
                pttl,
            });
            algorithm::last_request(state, foreign, s)
        }
        RateLimitAlgorithm::SlidingWindow => {
            let (f, foreign, pttl) = read_hash(tx, key, &["start", "current", "previous"]);
            let state = f.map(|f| SlidingState {
                start: f[0],
                current: f[1],
                previous: f[2],
                pttl,
            });
            algorithm::sliding_window(state, foreign, s)
        }
        RateLimitAlgorithm::Gcra { .. } => {
            let (f, foreign, pttl) = read_hash(tx, key, &["tat", "tat_rem"]);
            let state = f.map(|f| GcraState {
                tat: f[0],
                rem: f[1],
                pttl,
            });
            algorithm::gcra(state, foreign, s)
        }
    };
    if let Some(write) = write {
        apply(tx, key, write);
    }
    verdict
}

fn number(n: u64) -> Bytes {
    Bytes::from(n.to_string())
}

/// Applies a write the way the script's commands do.
fn apply(tx: &mut Tx<'_>, key: &[u8], write: Write) {
    match write {
        Write::Counter { value, ttl } => {
            tx.set(key.to_vec(), Value::String(number(value)), Some(ttl));
        }
        Write::Increment { by, ttl } => {
            let current = match tx.get(key) {
                Some(Value::String(v)) => stored_int(v).unwrap_or(0),
                _ => 0,
            };
            tx.set_keep_ttl(key.to_vec(), Value::String(number(current + by)));
            if let Some(ttl) = ttl {
                tx.pexpire(key, ttl);
            }
        }
        Write::Fields {
            fields,
            replace,
            ttl,
        } => {
            if replace {
                tx.delete(key);
            }
            let values = fields
                .into_iter()
                .map(|(name, v)| (Bytes::from_static(name.as_bytes()), number(v)));
            match tx.get_mut(key) {
                Some(Value::Hash(map)) => map.extend(values),
                _ => tx.set(
                    key.to_vec(),
                    Value::Hash(values.collect::<BTreeMap<_, _>>()),
                    None,
                ),
            }
            tx.pexpire(key, ttl);
        }
        Write::Expire(ttl) => {
            tx.pexpire(key, ttl);
        }
    }
}

#[async_trait]
impl RateLimiter for MemoryRateLimiter {
    async fn consume(
        &self,
        bucket: &str,
        rule: &RateLimitRule,
        cost: u64,
    ) -> KvResult<RateLimitDecision> {
        let call = self.front.call(bucket, rule, cost, true)?;
        self.front
            .decide(&call, async { Ok(self.run(&call)) })
            .await
    }

    async fn peek(&self, bucket: &str, rule: &RateLimitRule) -> KvResult<RateLimitDecision> {
        let call = self.front.call(bucket, rule, 1, false)?;
        self.front
            .decide(&call, async { Ok(self.run(&call)) })
            .await
    }

    async fn reset(&self, bucket: &str) -> KvResult<bool> {
        let key = self.front.key(bucket)?;
        self.front.forget(&key);
        Ok(self.keyspace.transaction(|tx| tx.delete(&key)))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use proptest::prelude::*;

    use super::*;
    use crate::memory::ManualClock;

    const W: u64 = 10_000;

    fn limiter(algorithm: RateLimitAlgorithm) -> (MemoryRateLimiter, ManualClock) {
        let clock = ManualClock::new(1_700_000_000_000);
        let ks = MemoryKeyspace::with_clock(Arc::new(clock.clone()));
        let options = RateLimiterOptions::builder()
            .algorithm(algorithm)
            .build()
            .unwrap();
        (MemoryRateLimiter::new(ks, options), clock)
    }

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    const KEY: &[u8] = b"rustauth:rate-limit:b";

    /// Runs `ops` (advance ms, cost, peek?) and checks every decision's invariants; the
    /// total units admitted and the time covered.
    async fn run(algorithm: RateLimitAlgorithm, max: u64, ops: &[(u64, u64, bool)]) -> (u64, u64) {
        let (l, clock) = limiter(algorithm);
        let rule = RateLimitRule::from_millis(W, max).unwrap();
        let (mut admitted, mut elapsed) = (0, 0);
        for &(advance, cost, peek) in ops {
            let cost = cost.min(max);
            clock.advance(std::time::Duration::from_millis(advance));
            elapsed += advance;
            let before = l.keyspace().inspect(KEY);
            let d = if peek {
                l.peek("b", &rule).await.unwrap()
            } else {
                l.consume("b", &rule, cost).await.unwrap()
            };
            let after = l.keyspace().inspect(KEY);
            assert!(d.remaining <= d.limit && d.limit == max, "{d:?}");
            if let Some(e) = &after {
                assert!(e.pttl_ms.is_some(), "a bucket without TTL after {d:?}");
            }
            if d.allowed {
                assert_eq!(d.retry_after_ms, 0);
                if !peek {
                    admitted += cost;
                }
            } else {
                assert!(
                    d.retry_after_ms >= 1 && d.retry_after_ms <= d.reset_after_ms,
                    "{d:?}"
                );
            }
            if peek || !d.allowed {
                assert_eq!(before, after, "peek or denial wrote ({d:?})");
                continue;
            }
            if d.remaining < d.limit {
                assert!(d.reset_after_ms > 0, "{d:?}");
            }
        }
        (admitted, elapsed)
    }

    /// After a denial, the same request is denied 1 ms before `retry_after` and admitted
    /// exactly at it.
    async fn retry_is_exact(algorithm: RateLimitAlgorithm, max: u64, ops: &[(u64, u64)]) {
        let (l, clock) = limiter(algorithm);
        let rule = RateLimitRule::from_millis(W, max).unwrap();
        for &(advance, cost) in ops {
            let cost = cost.min(max);
            clock.advance(std::time::Duration::from_millis(advance));
            let d = l.consume("b", &rule, cost).await.unwrap();
            if d.allowed {
                continue;
            }
            clock.advance(std::time::Duration::from_millis(d.retry_after_ms - 1));
            let early = l.consume("b", &rule, cost).await.unwrap();
            assert!(!early.allowed, "1 ms before retry_after {d:?}: {early:?}");
            assert_eq!(early.retry_after_ms, 1, "{early:?}");
            clock.advance(std::time::Duration::from_millis(1));
            let on_time = l.consume("b", &rule, cost).await.unwrap();
            assert!(on_time.allowed, "at retry_after {d:?}: {on_time:?}");
        }
    }

    fn ops() -> impl Strategy<Value = Vec<(u64, u64, bool)>> {
        prop::collection::vec(
            (
                prop_oneof![0u64..50, 0u64..W, W - 2..W + 3, 0u64..3 * W],
                1u64..=4,
                prop::bool::weighted(0.2),
            ),
            1..80,
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn decisions_are_consistent_and_bounded(alg in 0usize..4, max in 1u64..6, ops in ops()) {
            let algorithm = RateLimitAlgorithm::ALL[alg];
            let (admitted, elapsed) = block_on(run(algorithm, max, &ops));
            // Every algorithm admits at most `max` per window-ish span: a fixed or
            // last-request period needs more than `window` ms to restart, aligned
            // sliding windows hold at most `max` each, GCRA refills max per window.
            let bound = max * (elapsed / W + 2);
            prop_assert!(admitted <= bound, "{} admitted {admitted} > {bound}", algorithm.name());
        }

        #[test]
        fn retry_after_is_exact(
            alg in 0usize..4,
            max in 1u64..6,
            ops in prop::collection::vec((prop_oneof![0u64..50, 0u64..2 * W], 1u64..=4), 1..40),
        ) {
            block_on(retry_is_exact(RateLimitAlgorithm::ALL[alg], max, &ops));
        }
    }

    #[tokio::test]
    async fn gcra_burst_above_max() {
        let (l, clock) = limiter(RateLimitAlgorithm::gcra_with_burst(5));
        let rule = RateLimitRule::from_millis(W, 2).unwrap();
        for i in 0..5 {
            let d = l.consume("b", &rule, 1).await.unwrap();
            assert_eq!((d.allowed, d.limit, d.remaining), (true, 5, 4 - i));
        }
        let d = l.consume("b", &rule, 1).await.unwrap();
        assert_eq!((d.allowed, d.retry_after_ms), (false, W / 2));
        clock.advance(std::time::Duration::from_millis(W / 2));
        assert!(l.consume("b", &rule, 1).await.unwrap().allowed);
    }

    #[tokio::test]
    async fn caller_clock_drives_the_state_and_keyspace_the_expiry() {
        let keyspace_clock = ManualClock::new(5_000_000);
        let ks = MemoryKeyspace::with_clock(Arc::new(keyspace_clock.clone()));
        let app = ManualClock::new(9_000_000);
        let l = MemoryRateLimiter::new(
            ks,
            RateLimiterOptions::builder()
                .algorithm(RateLimitAlgorithm::LastRequest)
                .caller_clock(Arc::new(app.clone()))
                .build()
                .unwrap(),
        );
        let rule = RateLimitRule::from_millis(W, 1).unwrap();
        assert!(l.consume("b", &rule, 1).await.unwrap().allowed);
        let entry = l.keyspace().inspect(KEY).unwrap();
        let Value::Hash(h) = entry.value else {
            panic!("a hash")
        };
        assert_eq!(
            h.get(&b"last_request"[..]).map(|v| &v[..]),
            Some(&b"9000000"[..])
        );
        assert_eq!(entry.pttl_ms, Some(W));
        app.advance(std::time::Duration::from_millis(W + 1));
        assert!(
            l.consume("b", &rule, 1).await.unwrap().allowed,
            "a new period by the app clock"
        );
    }
    /// A counter Redis's `INCRBY` would refuse (`007`, `+5`, ` 5`) or a negative one is
    /// not a fixed-window bucket: it reads as empty and is replaced, with a TTL, by the
    /// next admission, exactly as the script does. Never an error, never a key left
    /// without TTL.
    #[tokio::test]
    async fn corrupt_fixed_window_counters_are_replaced_with_a_ttl() {
        for raw in ["007", "+5", "-5", " 5", "5 ", "-0", "x"] {
            let (l, _) = limiter(RateLimitAlgorithm::FixedWindow);
            l.keyspace().insert_raw(KEY, Bytes::from(raw), None);
            let rule = RateLimitRule::from_millis(W, 3).unwrap();
            let peek = l.peek("b", &rule).await.unwrap();
            assert_eq!(peek.remaining, 3, "{raw:?} reads as an empty bucket");
            let d = l.consume("b", &rule, 1).await.unwrap();
            assert!(d.allowed && d.remaining == 2, "{raw:?}: {d:?}");
            let e = l.keyspace().inspect(KEY).unwrap();
            assert_eq!(
                (e.value, e.pttl_ms),
                (Value::String(Bytes::from("1")), Some(W)),
                "{raw:?}"
            );
        }
    }
}
