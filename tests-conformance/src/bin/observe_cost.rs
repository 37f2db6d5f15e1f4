//! The cost of observability, measured: GETs and rate-limit consumes per second through
//! the `Kv` bundle with no subscriber and no recorder installed, with a `tracing`
//! registry subscriber (every span created and closed) and a `metrics` debugging recorder
//! installed, and without the observing wrappers at all — interleaved in rounds against a
//! `redis-server` this binary starts. Printed as the median and range of per-round ratios;
//! never asserted.
//!
//! Usage: `cargo run --release -p tests-conformance --bin observe_cost [-- ROUNDS N TASKS]`
//! (defaults: 7 rounds of 20000 operations by 64 tasks, per contender).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kv_contract::rate_limit::RateLimitRule;
use kv_contract::{
    ConnectionOptions, RateLimiter, RateLimiterOptions, SecondaryStorage, ServerRateLimiter,
    ServerStorage, StorageOptions,
};
use rustauth_kv::{Backend, Kv, KvOptions};
use tests_conformance::server::RedisServer;

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Bare,
    Off,
    On,
}

struct Target {
    storage: Arc<dyn SecondaryStorage>,
    limiter: Arc<dyn RateLimiter>,
}

async fn run(target: &Target, consume: bool, n: usize, tasks: usize) -> f64 {
    let next = Arc::new(AtomicUsize::new(0));
    let rule =
        RateLimitRule::new(Duration::from_secs(600), 10_000_000).expect("a rule no run exhausts");
    let started = Instant::now();
    let mut handles = Vec::new();
    for _ in 0..tasks {
        let (storage, limiter, next) =
            (target.storage.clone(), target.limiter.clone(), next.clone());
        handles.push(tokio::spawn(async move {
            while next.fetch_add(1, Ordering::Relaxed) < n {
                if consume {
                    limiter.consume("bucket", &rule, 1).await.expect("consume");
                } else {
                    storage.get("hot").await.expect("get");
                }
            }
        }));
    }
    for h in handles {
        h.await.expect("task");
    }
    n as f64 / started.elapsed().as_secs_f64()
}

fn median(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_by(f64::total_cmp);
    (v[v.len() / 2], v[0], v[v.len() - 1])
}

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let rounds = args.first().copied().unwrap_or(7);
    let n = args.get(1).copied().unwrap_or(20_000);
    let tasks = args.get(2).copied().unwrap_or(64);
    let server = RedisServer::start().unwrap_or_else(|e| panic!("needs a redis-server: {e}"));
    println!(
        "observe_cost: {rounds} rounds × {n} ops × {tasks} tasks per contender, {}",
        server.url()
    );
    for backend in [Backend::Redis, Backend::Fred] {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .unwrap();
        let (observed, bare) = rt.block_on(async {
            let options = KvOptions::builder()
                .url(server.url())
                .backend(backend)
                .prefix("observe-cost:")
                .build()
                .unwrap();
            let kv = Kv::connect_with(options).await.unwrap();
            kv.storage()
                .set("hot", vec![b'x'; 200].into(), None)
                .await
                .unwrap();
            let raw = match backend {
                Backend::Fred => Arc::new(
                    rustauth_kv::FredConnection::connect(
                        &ConnectionOptions::from_url(&server.url()).unwrap(),
                    )
                    .await
                    .unwrap(),
                ) as kv_contract::SharedConnection,
                _ => Arc::new(
                    rustauth_kv::RedisConnection::connect(
                        &ConnectionOptions::from_url(&server.url()).unwrap(),
                    )
                    .await
                    .unwrap(),
                ),
            };
            let prefix = "observe-cost:";
            let bare = Target {
                storage: Arc::new(ServerStorage::new(
                    raw.clone(),
                    StorageOptions::builder().prefix(prefix).build().unwrap(),
                )),
                limiter: Arc::new(ServerRateLimiter::new(
                    raw,
                    RateLimiterOptions::builder()
                        .prefix(prefix)
                        .build()
                        .unwrap(),
                )),
            };
            let observed = Target {
                storage: kv.storage(),
                limiter: kv.rate_limiter(),
            };
            (observed, bare)
        });
        for (label, consume) in [("GET", false), ("consume", true)] {
            let mut off_vs_bare = Vec::new();
            let mut on_vs_off = Vec::new();
            for _ in 0..rounds {
                let mut per = [0.0; 3];
                for (i, mode) in [Mode::Bare, Mode::Off, Mode::On].into_iter().enumerate() {
                    let target = if mode == Mode::Bare { &bare } else { &observed };
                    per[i] = if mode == Mode::On {
                        let subscriber = tracing_subscriber::registry();
                        let recorder = metrics_util::debugging::DebuggingRecorder::new();
                        let _guard = tracing::subscriber::set_default(subscriber);
                        metrics::with_local_recorder(&recorder, || {
                            // Current-thread: the thread-local subscriber and recorder see
                            // every task.
                            tokio::runtime::Builder::new_current_thread()
                                .enable_all()
                                .build()
                                .unwrap()
                                .block_on(run(target, consume, n, tasks))
                        })
                    } else {
                        tokio::runtime::Builder::new_current_thread()
                            .enable_all()
                            .build()
                            .unwrap()
                            .block_on(run(target, consume, n, tasks))
                    };
                }
                off_vs_bare.push(per[1] / per[0]);
                on_vs_off.push(per[2] / per[1]);
            }
            let (m1, lo1, hi1) = median(off_vs_bare);
            let (m2, lo2, hi2) = median(on_vs_off);
            println!(
                "{backend} {label}: wrappers, nothing installed ÷ no wrappers = {m1:.3} ({lo1:.3}–{hi1:.3}); \
                 subscriber + recorder installed ÷ nothing installed = {m2:.3} ({lo2:.3}–{hi2:.3})"
            );
        }
        drop(rt);
    }
}
