//! Our layer's own client-side cost: each store operation over a connection that answers
//! at once with a canned reply, so no network, server or client library is in the time.
//!
//! The networked rows cannot resolve a few hundred nanoseconds per call under their
//! round-to-round noise; this section can, and it is where changes to command building
//! and reply decoding (`kv_contract::wire::eval`, the stores) show.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use kv_contract::lock::{Acquisition, ReleaseOutcome};
use kv_contract::script::{Script, LOCK_ACQUIRE, RATE_LIMIT_FIXED_WINDOW};
use kv_contract::{
    Command, Connection, KvError, KvResult, Lock, LockOptions, RateLimitRule, RateLimiter,
    RateLimiterOptions, Reply, SecondaryStorage, ServerLock, ServerRateLimiter, ServerStorage,
    SharedConnection, StorageOptions,
};

/// One operation's cost.
#[derive(Debug, Clone)]
pub(crate) struct CostRow {
    /// What was run.
    pub(crate) operation: &'static str,
    /// Nanoseconds per operation: median of the rounds.
    pub(crate) ns_per_op: f64,
    /// The fastest and slowest round.
    pub(crate) min_ns: f64,
    /// The slowest round.
    pub(crate) max_ns: f64,
}

/// The operations measured (one progress step each).
pub(crate) const OPERATIONS: [&str; 5] = [
    "rate-limit consume (fixed window)",
    "lock acquire + release",
    "storage compare_and_set",
    "storage get",
    "storage get inside tokio::time::timeout (the per-command timer)",
];

/// Answers every command at once: the reply each of our calls expects.
#[derive(Debug)]
struct Canned;

fn runs(script: &Script, command: &Command) -> bool {
    command.name() == "EVALSHA"
        && command
            .args()
            .first()
            .is_some_and(|sha| sha[..] == *script.sha1().as_bytes())
}

#[async_trait]
impl Connection for Canned {
    async fn execute(&self, command: Command) -> KvResult<Reply> {
        Ok(if runs(&RATE_LIMIT_FIXED_WINDOW, &command) {
            Reply::Array(vec![
                Reply::Int(1),
                Reply::Int(5),
                Reply::Int(0),
                Reply::Int(1000),
            ])
        } else if runs(&LOCK_ACQUIRE, &command) {
            Reply::Array(vec![Reply::Int(1), Reply::Int(7)])
        } else if command.name() == "GET" {
            Reply::Data(Bytes::from_static(b"value"))
        } else {
            Reply::Int(1)
        })
    }
}

fn options_error(e: impl std::fmt::Display) -> String {
    format!("client-cost stores: {e}")
}

/// Runs each operation `iterations` times per round for `rounds` rounds on a
/// current-thread runtime.
pub(crate) fn run(
    rounds: usize,
    iterations: u32,
    progress: &mut crate::Progress,
) -> Result<Vec<CostRow>, String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .map_err(options_error)?;
    let conn: SharedConnection = Arc::new(Canned);
    let limiter = ServerRateLimiter::new(
        conn.clone(),
        RateLimiterOptions::builder()
            .prefix("cost:")
            .build()
            .map_err(options_error)?,
    );
    let lock = ServerLock::new(
        conn.clone(),
        LockOptions::builder()
            .prefix("cost:")
            .build()
            .map_err(options_error)?,
    );
    let storage = ServerStorage::new(
        conn,
        StorageOptions::builder()
            .prefix("cost:")
            .build()
            .map_err(options_error)?,
    );
    let rule = RateLimitRule::new(Duration::from_secs(600), 1_000_000).map_err(options_error)?;
    let value = Bytes::from_static(b"value");
    let ttl = Some(Duration::from_secs(60));
    let mut rows = Vec::new();
    for (index, operation) in OPERATIONS.into_iter().enumerate() {
        let mut per_round = Vec::with_capacity(rounds);
        for _ in 0..rounds {
            let started = Instant::now();
            rt.block_on(async {
                for _ in 0..iterations {
                    match index {
                        0 => {
                            limiter.consume("hot", &rule, 1).await?;
                        }
                        1 => {
                            let Acquisition::Acquired(guard) =
                                lock.acquire("l", Duration::from_secs(10)).await?
                            else {
                                return Err(KvError::unexpected("the canned lock was held"));
                            };
                            if lock.release(&guard).await? != ReleaseOutcome::Released {
                                return Err(KvError::unexpected("the canned lock was lost"));
                            }
                        }
                        2 => {
                            storage
                                .compare_and_set("k", Some(b"old"), value.clone(), ttl)
                                .await?;
                        }
                        3 => {
                            storage.get("k").await?;
                        }
                        // What rustauth-redis adds around every call to bound it by the
                        // command timeout; the difference from "storage get" is its cost.
                        _ => {
                            tokio::time::timeout(Duration::from_secs(2), storage.get("k"))
                                .await
                                .map_err(|_| KvError::unexpected("a canned call timed out"))??;
                        }
                    }
                }
                KvResult::Ok(())
            })
            .map_err(|e| format!("{operation} over canned replies: {e}"))?;
            per_round.push(started.elapsed().as_nanos() as f64 / f64::from(iterations));
        }
        let (median, min, max) = crate::report::spread(&per_round);
        rows.push(CostRow {
            operation,
            ns_per_op: median,
            min_ns: min,
            max_ns: max,
        });
        progress.tick(&format!("client cost: {operation}"));
    }
    Ok(rows)
}
