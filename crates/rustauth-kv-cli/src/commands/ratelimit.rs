//! `ratelimit peek|reset`, through the bundle's rate limiter.

use std::time::Duration;

use rustauth_kv::rate_limit::RateLimitAlgorithm;
use rustauth_kv::{Kv, KvOptionsBuilder, RateLimitRule};
use serde_json::json;

use crate::cli::{AlgorithmArg, RatelimitCmd};
use crate::exit::CliError;
use crate::Outcome;

/// The limiter's algorithm for `peek` (it decides how the bucket's state is read).
pub(crate) fn configure(builder: KvOptionsBuilder, command: &RatelimitCmd) -> KvOptionsBuilder {
    let RatelimitCmd::Peek { algorithm, .. } = command else {
        return builder;
    };
    let algorithm = match algorithm {
        AlgorithmArg::FixedWindow => RateLimitAlgorithm::FixedWindow,
        AlgorithmArg::SlidingWindow => RateLimitAlgorithm::SlidingWindow,
        AlgorithmArg::Gcra => RateLimitAlgorithm::Gcra { burst: None },
        AlgorithmArg::LastRequest => RateLimitAlgorithm::LastRequest,
    };
    builder.rate_limiter(move |b| b.algorithm(algorithm))
}

/// Runs a `ratelimit` command.
pub(crate) async fn run(kv: &Kv, command: RatelimitCmd) -> Result<Outcome, CliError> {
    let limiter = kv.rate_limiter();
    match command {
        RatelimitCmd::Peek {
            bucket,
            window,
            max,
            ..
        } => {
            let rule = RateLimitRule::new(Duration::from_secs(window), max)?;
            let d = limiter.peek(&bucket, &rule).await?;
            let text = format!(
                "{bucket}: {} — {} of {} remaining, retry after {} ms, full again after {} ms",
                if d.allowed { "allowed" } else { "denied" },
                d.remaining,
                d.limit,
                d.retry_after_ms,
                d.reset_after_ms
            );
            Ok(Outcome::new(
                json!({
                    "bucket": bucket,
                    "allowed": d.allowed,
                    "limit": d.limit,
                    "remaining": d.remaining,
                    "retry_after_ms": d.retry_after_ms,
                    "reset_after_ms": d.reset_after_ms,
                }),
                text,
            ))
        }
        RatelimitCmd::Reset { bucket } => {
            let existed = limiter.reset(&bucket).await?;
            let text = if existed {
                format!("{bucket}: reset")
            } else {
                format!("{bucket}: no such bucket (nothing to reset)")
            };
            Ok(Outcome::new(
                json!({ "bucket": bucket, "reset": existed }),
                text,
            ))
        }
    }
}
