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

/// Appends the script's `ARGV` for `call` at `now` (`None` = the server's `TIME`).
pub(crate) fn script_args(
    algorithm: RateLimitAlgorithm,
    call: &Call,
    now: Option<u64>,
    command: Command,
) -> Command {
    let command = command
        .arg(now.map_or(Bytes::from_static(b"-1"), number))
        .arg(number(call.window))
        .arg(number(call.limit))
        .arg(number(call.cost))
        .arg(Bytes::from_static(if call.commit { b"1" } else { b"0" }));
    match algorithm {
        RateLimitAlgorithm::Gcra { .. } => command.arg(number(call.capacity)),
        _ => command,
    }
}

/// Decodes `{allowed, remaining, retry_after_ms, reset_after_ms}`.
fn verdict(reply: crate::Reply) -> KvResult<Verdict> {
    let mut parts = reply.into_array()?.into_iter();
    let (Some(a), Some(b), Some(c), Some(d), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return Err(KvError::unexpected(
            "rate-limit script replied other than 4 integers",
        ));
    };
    let [allowed, remaining, retry, reset] =
        [a.into_int()?, b.into_int()?, c.into_int()?, d.into_int()?];
    let ints = [allowed, remaining, retry, reset];
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
        let now = self.front.caller_now();
        let args = |c| script_args(algorithm, call, now, c);
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

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::memory::ManualClock;
    use crate::rate_limit::DecisionSource;
    use crate::{Connection, ErrorKind, Reply};

    /// Records every command and answers with a fixed reply (or error kind).
    #[derive(Debug)]
    struct Recording {
        sent: Mutex<Vec<Command>>,
        answer: Result<Reply, ErrorKind>,
    }

    #[async_trait]
    impl Connection for Recording {
        async fn execute(&self, command: Command) -> KvResult<Reply> {
            self.sent.lock().unwrap().push(command);
            self.answer
                .clone()
                .map_err(|kind| KvError::new(kind, "connection refused"))
        }
    }

    fn conn(answer: Result<Reply, ErrorKind>) -> Arc<Recording> {
        Arc::new(Recording {
            sent: Mutex::new(Vec::new()),
            answer,
        })
    }

    fn reply(ints: [i64; 4]) -> Reply {
        Reply::Array(ints.into_iter().map(Reply::Int).collect())
    }

    fn text(args: &[Bytes]) -> Vec<String> {
        args.iter()
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect()
    }

    #[tokio::test]
    async fn one_evalsha_with_the_documented_argv() {
        let rule = RateLimitRule::from_secs(10, 3).unwrap();
        let c = conn(Ok(reply([1, 2, 0, 10_001])));
        let limiter = ServerRateLimiter::new(c.clone(), RateLimiterOptions::default());
        let d = limiter.consume("1.2.3.4|/sign-in", &rule, 1).await.unwrap();
        assert_eq!(
            (
                d.allowed,
                d.limit,
                d.remaining,
                d.retry_after_ms,
                d.reset_after_ms,
                d.source
            ),
            (true, 3, 2, 0, 10_001, DecisionSource::Store)
        );
        let peeked = limiter.peek("1.2.3.4|/sign-in", &rule).await.unwrap();
        assert!(peeked.allowed);
        let sent = c.sent.lock().unwrap().clone();
        assert_eq!(sent.len(), 2, "one round trip per decision");
        assert_eq!(sent[0].name(), "EVALSHA");
        assert_eq!(
            text(sent[0].args()),
            [
                script::RATE_LIMIT_FIXED_WINDOW.sha1(),
                "1",
                "rustauth:rate-limit:1.2.3.4|/sign-in",
                "-1",
                "10000",
                "3",
                "1",
                "1"
            ]
        );
        assert_eq!(
            sent[0].routing_key(),
            Some(&b"rustauth:rate-limit:1.2.3.4|/sign-in"[..])
        );
        assert_eq!(text(&sent[1].args()[3..]), ["-1", "10000", "3", "1", "0"]);

        let clock = ManualClock::new(1_700_000_000_123);
        let c = conn(Ok(reply([0, 0, 5, 9])));
        let gcra = ServerRateLimiter::new(
            c.clone(),
            RateLimiterOptions::builder()
                .prefix("app:")
                .algorithm(RateLimitAlgorithm::gcra_with_burst(7))
                .caller_clock(Arc::new(clock))
                .build()
                .unwrap(),
        );
        let d = gcra.consume("k", &rule, 2).await.unwrap();
        assert_eq!((d.allowed, d.limit, d.retry_after_ms), (false, 7, 5));
        let sent = c.sent.lock().unwrap().clone();
        assert_eq!(
            text(sent[0].args()),
            [
                script::RATE_LIMIT_GCRA.sha1(),
                "1",
                "app:rate-limit:k",
                "1700000000123",
                "10000",
                "3",
                "2",
                "1",
                "7"
            ]
        );
    }

    #[tokio::test]
    async fn invalid_input_fails_before_any_io() {
        let c = conn(Ok(reply([1, 0, 0, 0])));
        let limiter = ServerRateLimiter::new(c.clone(), RateLimiterOptions::default());
        let rule = RateLimitRule::from_secs(10, 3).unwrap();
        for (bucket, cost) in [("", 1), ("b", 0), ("b", 4)] {
            let e = limiter.consume(bucket, &rule, cost).await.unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
        }
        let huge = "x".repeat(crate::KeyCodec::MAX_KEY_LEN + 1);
        assert!(limiter.peek(&huge, &rule).await.is_err());
        assert!(limiter.reset("").await.is_err());
        assert!(c.sent.lock().unwrap().is_empty(), "nothing was sent");
    }

    #[tokio::test]
    async fn unavailable_store_follows_the_policy() {
        let rule = RateLimitRule::from_secs(10, 3).unwrap();
        for kind in [ErrorKind::Unavailable, ErrorKind::Timeout] {
            let closed = ServerRateLimiter::new(conn(Err(kind)), RateLimiterOptions::default());
            let d = closed.consume("b", &rule, 1).await.unwrap();
            assert_eq!(
                (d.allowed, d.remaining, d.retry_after_ms, d.source),
                (false, 0, 10_000, DecisionSource::FailedClosed)
            );
            let open = ServerRateLimiter::new(
                conn(Err(kind)),
                RateLimiterOptions::builder().fail_open().build().unwrap(),
            );
            let d = open.consume("b", &rule, 1).await.unwrap();
            assert_eq!(
                (d.allowed, d.remaining, d.source),
                (true, 2, DecisionSource::FailedOpen)
            );
        }
        let server_error =
            ServerRateLimiter::new(conn(Err(ErrorKind::Server)), RateLimiterOptions::default());
        let e = server_error.consume("b", &rule, 1).await.unwrap_err();
        assert_eq!(
            e.kind(),
            ErrorKind::Script,
            "other errors are errors, not decisions"
        );
    }

    #[tokio::test]
    async fn malformed_replies_are_unexpected_data() {
        let rule = RateLimitRule::from_secs(10, 3).unwrap();
        for bad in [
            Reply::Int(1),
            Reply::Array(vec![Reply::Int(1)]),
            reply([1, -1, 0, 0]),
        ] {
            let l = ServerRateLimiter::new(conn(Ok(bad)), RateLimiterOptions::default());
            let e = l.consume("b", &rule, 1).await.unwrap_err();
            assert_eq!(e.kind(), ErrorKind::UnexpectedData, "{e}");
        }
    }

    #[tokio::test]
    async fn blocked_cache_skips_the_round_trip() {
        let rule = RateLimitRule::from_secs(10, 3).unwrap();
        let c = conn(Ok(reply([0, 0, 4_000, 4_000])));
        let l = ServerRateLimiter::new(
            c.clone(),
            RateLimiterOptions::builder()
                .blocked_cache(10)
                .build()
                .unwrap(),
        );
        assert_eq!(
            l.consume("b", &rule, 1).await.unwrap().source,
            DecisionSource::Store
        );
        for _ in 0..10 {
            let d = l.consume("b", &rule, 1).await.unwrap();
            assert_eq!(d.source, DecisionSource::BlockedCache);
        }
        assert_eq!(c.sent.lock().unwrap().len(), 1);
    }
}
