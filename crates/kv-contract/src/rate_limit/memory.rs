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
