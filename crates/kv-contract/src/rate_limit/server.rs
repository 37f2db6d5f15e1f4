//! [`ServerRateLimiter`]: the rate limiter on a Redis-protocol server, over any
//! [`Connection`](crate::Connection): one `EVALSHA` of the algorithm's script per
//! decision, touching exactly one key.
//!
//! Both backends get it for free: the script, its key and its arguments are built here,
//! and `rustauth-redis` or `rustauth-fred` only carry them.

use async_trait::async_trait;
use bytes::Bytes;

use crate::error::{KvError, KvResult};
use crate::rate_limit::algorithm::{RateLimitAlgorithm, Verdict};
use crate::rate_limit::decision::RateLimitDecision;
use crate::rate_limit::options::{Call, Front, RateLimiterOptions};
use crate::rate_limit::rule::RateLimitRule;
use crate::rate_limit::RateLimiter;
use crate::script::{self, Script};
use crate::server::SharedConnection;
use crate::wire::{eval, Command};

/// A rate limiter on a Redis or Valkey server. Clones share the connection and the
/// blocked cache.
#[derive(Clone)]
pub struct ServerRateLimiter {
    conn: SharedConnection,
    front: Front,
}

impl std::fmt::Debug for ServerRateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerRateLimiter")
            .field("options", &self.front.options)
            .finish_non_exhaustive()
    }
}

/// The script of an algorithm.
pub fn script_of(algorithm: RateLimitAlgorithm) -> &'static Script {
    match algorithm {
        RateLimitAlgorithm::FixedWindow => &script::RATE_LIMIT_FIXED_WINDOW,
        RateLimitAlgorithm::SlidingWindow => &script::RATE_LIMIT_SLIDING_WINDOW,
        RateLimitAlgorithm::Gcra { .. } => &script::RATE_LIMIT_GCRA,
        RateLimitAlgorithm::LastRequest => &script::RATE_LIMIT_LAST_REQUEST,
    }
}

fn number(n: u64) -> Bytes {
    Bytes::from(n.to_string())
}

/// The script's `ARGV` for `call` at `now` (`None` = the server's `TIME`).
pub(crate) fn script_args(
    algorithm: RateLimitAlgorithm,
    call: &Call,
    now: Option<u64>,
) -> Vec<Bytes> {
    let mut args = vec![
        now.map_or(Bytes::from_static(b"-1"), number),
        number(call.window),
        number(call.limit),
        number(call.cost),
        Bytes::from_static(if call.commit { b"1" } else { b"0" }),
    ];
    if let RateLimitAlgorithm::Gcra { .. } = algorithm {
        args.push(number(call.capacity));
    }
    args
}

/// Decodes `{allowed, remaining, retry_after_ms, reset_after_ms}`.
fn verdict(reply: crate::Reply) -> KvResult<Verdict> {
    let parts = reply.into_array()?;
    let ints = parts
        .into_iter()
        .map(|p| p.into_int())
        .collect::<KvResult<Vec<i64>>>()?;
    let [allowed, remaining, retry, reset] = ints[..] else {
        return Err(KvError::unexpected(format!(
            "rate-limit script replied {ints:?}, expected 4 integers"
        )));
    };
    let non_negative = |n: i64| {
        u64::try_from(n).map_err(|_| {
            KvError::unexpected(format!(
                "rate-limit script replied a negative number: {ints:?}"
            ))
        })
    };
    Ok(Verdict {
        allowed: allowed == 1,
        remaining: non_negative(remaining)?,
        retry_after_ms: non_negative(retry)?,
        reset_after_ms: non_negative(reset)?,
    })
}

impl ServerRateLimiter {
    /// A limiter over `conn` with `options`.
    pub fn new(conn: SharedConnection, options: RateLimiterOptions) -> Self {
        ServerRateLimiter {
            conn,
            front: Front::new(options),
        }
    }

    /// The options.
    pub fn options(&self) -> &RateLimiterOptions {
        &self.front.options
    }

    async fn run(&self, call: &Call) -> KvResult<Verdict> {
        let algorithm = self.front.options.algorithm;
        let args = script_args(algorithm, call, self.front.caller_now());
        let reply = eval(&*self.conn, script_of(algorithm), &[&call.key], args).await?;
        verdict(reply)
    }
}

#[async_trait]
impl RateLimiter for ServerRateLimiter {
    async fn consume(
        &self,
        bucket: &str,
        rule: &RateLimitRule,
        cost: u64,
    ) -> KvResult<RateLimitDecision> {
        let call = self.front.call(bucket, rule, cost, true)?;
        self.front.decide(&call, self.run(&call)).await
    }

    async fn peek(&self, bucket: &str, rule: &RateLimitRule) -> KvResult<RateLimitDecision> {
        let call = self.front.call(bucket, rule, 1, false)?;
        self.front.decide(&call, self.run(&call)).await
    }

    async fn reset(&self, bucket: &str) -> KvResult<bool> {
        let key = self.front.key(bucket)?;
        self.front.forget(&key);
        let deleted = self.conn.execute(Command::new("DEL").key(key)).await?;
        Ok(deleted.into_int()? > 0)
    }
}
