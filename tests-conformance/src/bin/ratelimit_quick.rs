//! A quick, bounded measurement of rate-limit decisions per second, per backend
//! (memory, redis-rs, fred) and algorithm, on one bucket and on many buckets, against a
//! `redis-server` this binary starts itself. Not a benchmark (that is another issue):
//! one run, no warm-up statistics, numbers printed and never asserted.
//!
//! Usage: `cargo run --release -p tests-conformance --bin ratelimit_quick [-- N CONCURRENCY]`
//! (defaults: 20000 decisions, 64 concurrent callers).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kv_contract::memory::MemoryKeyspace;
use kv_contract::rate_limit::{
    MemoryRateLimiter, RateLimitAlgorithm, RateLimitRule, RateLimiter, RateLimiterOptions,
    ServerRateLimiter,
};
use kv_contract::ConnectionOptions;
use tests_conformance::server::RedisServer;
use tests_conformance::BackendKind;

/// Buckets in the "many buckets" run: every decision of it lands on one of these.
const MANY: usize = 10_000;
/// No single run may take longer than this.
const RUN_LIMIT: Duration = Duration::from_secs(120);

struct Outcome {
    per_sec: f64,
    allowed: u64,
}

async fn measure(
    limiter: Arc<dyn RateLimiter>,
    n: usize,
    concurrency: usize,
    buckets: usize,
) -> Result<Outcome, String> {
    let rule = RateLimitRule::from_secs(10, 100).expect("valid rule");
    let next = Arc::new(AtomicU64::new(0));
    let allowed = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(concurrency);
    for _ in 0..concurrency {
        let (limiter, next, allowed) = (limiter.clone(), next.clone(), allowed.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                if i >= n {
                    return Ok::<(), String>(());
                }
                let bucket = format!("quick|{}", i % buckets);
                let d = limiter
                    .consume(&bucket, &rule, 1)
                    .await
                    .map_err(|e| e.to_string())?;
                allowed.fetch_add(u64::from(d.allowed), Ordering::Relaxed);
            }
        }));
    }
    let all = async {
        for t in tasks {
            t.await.map_err(|e| e.to_string())??;
        }
        Ok::<(), String>(())
    };
    tokio::time::timeout(RUN_LIMIT, all)
        .await
        .map_err(|_| format!("did not finish within {RUN_LIMIT:?}"))??;
    let secs = started.elapsed().as_secs_f64();
    Ok(Outcome {
        per_sec: n as f64 / secs,
        allowed: allowed.load(Ordering::Relaxed),
    })
}

fn parse_args() -> Result<(usize, usize), String> {
    let mut args = std::env::args().skip(1);
    let n = args
        .next()
        .map_or(Ok(20_000), |a| a.parse().map_err(|_| format!("N {a:?}")))?;
    let c = args.next().map_or(Ok(64), |a| {
        a.parse().map_err(|_| format!("CONCURRENCY {a:?}"))
    })?;
    if n == 0 || c == 0 || n > 10_000_000 || c > 10_000 {
        return Err("N must be 1..=10000000 and CONCURRENCY 1..=10000".into());
    }
    Ok((n, c))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> std::process::ExitCode {
    let (n, concurrency) = match parse_args() {
        Ok(v) => v,
        Err(e) => {
            eprintln!("ratelimit_quick: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let server = match tokio::task::spawn_blocking(RedisServer::start).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            eprintln!("ratelimit_quick: cannot start redis-server: {e}");
            return std::process::ExitCode::FAILURE;
        }
        Err(e) => {
            eprintln!("ratelimit_quick: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let conn_options = ConnectionOptions::from_url(&server.url()).expect("server URL");
    println!(
        "rate-limit decisions per second: {n} decisions, {concurrency} concurrent callers, \
         rule 100 per 10 s, server clock; one bucket vs {MANY} buckets"
    );
    println!(
        "{:<8} {:<15} {:>14} {:>10} {:>14} {:>10}",
        "backend", "algorithm", "one bucket/s", "admitted", "many/s", "admitted"
    );
    let mut failed = false;
    for backend in [BackendKind::Memory, BackendKind::Redis, BackendKind::Fred] {
        let conn = match backend {
            BackendKind::Memory => None,
            kind => match kind.connect(&conn_options).await {
                Ok(c) => Some(c),
                Err(e) => {
                    eprintln!("{}: cannot connect: {e}", kind.name());
                    failed = true;
                    continue;
                }
            },
        };
        for algorithm in RateLimitAlgorithm::ALL {
            let mut cells = Vec::new();
            for buckets in [1, MANY] {
                let options = RateLimiterOptions::builder()
                    .prefix(format!(
                        "quick-{}-{}-{buckets}:",
                        backend.name(),
                        algorithm.name()
                    ))
                    .algorithm(algorithm)
                    .build()
                    .expect("valid options");
                let limiter: Arc<dyn RateLimiter> = match &conn {
                    None => Arc::new(MemoryRateLimiter::new(MemoryKeyspace::new(), options)),
                    Some(c) => Arc::new(ServerRateLimiter::new(c.clone(), options)),
                };
                match measure(limiter, n, concurrency, buckets).await {
                    Ok(o) => cells.push(format!("{:>14.0} {:>10}", o.per_sec, o.allowed)),
                    Err(e) => {
                        eprintln!("{} {}: {e}", backend.name(), algorithm.name());
                        failed = true;
                        cells.push(format!("{:>14} {:>10}", "failed", "-"));
                    }
                }
            }
            println!(
                "{:<8} {:<15} {}",
                backend.name(),
                algorithm.name(),
                cells.join(" ")
            );
        }
    }
    drop(server);
    if failed {
        std::process::ExitCode::FAILURE
    } else {
        std::process::ExitCode::SUCCESS
    }
}
