//! The cost of observability, in the same run: the stores bare, the `rustauth_kv::Kv`
//! bundle's observed stores with nothing installed, the same with a `tracing` registry
//! (every span created and closed) and a `metrics` debugging recorder installed, and the
//! same with the OpenTelemetry SDK through feature `opentelemetry` (the
//! `tracing-opentelemetry` layer batching every span to an exporter that discards them,
//! `rustauth_kv::otel::OtelRecorder` aggregating every metric): a production pipeline
//! without the network.
//!
//! On tokio's current-thread runtime, so that the thread-local subscriber and recorder
//! see every task.

use std::sync::Arc;
use std::time::Duration;

use kv_contract::ConnectionOptions;
use opentelemetry::metrics::MeterProvider as _;
use opentelemetry::trace::TracerProvider as _;
use rustauth_kv::{Backend, Kv, KvOptions};
use tracing_subscriber::layer::SubscriberExt as _;

use crate::contender::Stores;
use crate::driver::{drive, RunResult};
use crate::report::{quantile_us, Row};
use crate::workload::Workload;
use crate::Progress;

/// The configuration label of these rows.
const CONFIG: &str = "64 tasks, 1 worker: observability (rustauth-redis)";
const BARE: &str = "stores, no observing wrappers";
const OFF: &str = "Kv bundle, nothing installed";
const ON: &str = "Kv bundle + tracing registry + metrics recorder";
const OTEL: &str = "Kv bundle + OpenTelemetry SDK (spans batched, metrics aggregated)";
const CONTENDERS: [&str; 4] = [BARE, OFF, ON, OTEL];

/// A span exporter that drops every batch: the SDK does all its work but the network's.
#[derive(Debug)]
struct Discard;

impl opentelemetry_sdk::trace::SpanExporter for Discard {
    fn export(
        &self,
        _: Vec<opentelemetry_sdk::trace::SpanData>,
    ) -> impl std::future::Future<Output = opentelemetry_sdk::error::OTelSdkResult> + Send {
        std::future::ready(Ok(()))
    }
}
/// The workloads measured here.
pub(crate) const WORKLOADS: [Workload; 3] =
    [Workload::Get, Workload::FixedHot, Workload::SessionGet];

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// The observability rows.
pub(crate) fn run(
    url: &str,
    rounds: usize,
    duration: Duration,
    progress: &mut Progress,
) -> Result<Vec<Row>, String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(err)?;
    let (bare, observed) = rt.block_on(async {
        let options = ConnectionOptions::from_url(url).map_err(err)?;
        let conn = rustauth_redis::RedisConnection::connect(&options)
            .await
            .map_err(err)?;
        let bare = Arc::new(Stores::server(Arc::new(conn), "bench-observe-bare:"));
        let kv = Kv::connect_with(
            KvOptions::builder()
                .url(url)
                .backend(Backend::Redis)
                .prefix("bench-observe:")
                .build()
                .map_err(err)?,
        )
        .await
        .map_err(err)?;
        let observed = Arc::new(Stores::bundle(&kv));
        bare.setup().await?;
        observed.setup().await?;
        Ok::<_, String>((bare, observed))
    })?;
    let tracers = opentelemetry_sdk::trace::SdkTracerProvider::builder()
        .with_batch_exporter(Discard)
        .build();
    let meters = opentelemetry_sdk::metrics::SdkMeterProvider::builder()
        .with_reader(
            opentelemetry_sdk::metrics::PeriodicReader::builder(
                opentelemetry_sdk::metrics::InMemoryMetricExporter::default(),
            )
            .with_interval(Duration::from_secs(3600))
            .build(),
        )
        .build();
    let otel_recorder = rustauth_kv::otel::OtelRecorder::new(meters.meter("rustauth-kv-bench"));
    let mut rows = Vec::new();
    let mut run_id = 1_000_000u32;
    let n = CONTENDERS.len();
    for w in WORKLOADS {
        let mut per: Vec<Vec<f64>> = vec![Vec::new(); n];
        let mut lat: Vec<Vec<u32>> = vec![Vec::new(); n];
        for round in 0..rounds + 1 {
            for k in 0..n {
                let idx = (k + round) % n;
                run_id += 1;
                let once = |d: Duration| -> Result<RunResult, String> {
                    match idx {
                        0 => rt.block_on(drive(&bare, w, run_id, 64, d)),
                        1 => rt.block_on(drive(&observed, w, run_id, 64, d)),
                        3 => {
                            let layer = rustauth_kv::otel::tracing_opentelemetry::layer()
                                .with_tracer(tracers.tracer("rustauth-kv-bench"));
                            let _subscriber = tracing::subscriber::set_default(
                                tracing_subscriber::registry().with(layer),
                            );
                            metrics::with_local_recorder(&otel_recorder, || {
                                rt.block_on(drive(&observed, w, run_id, 64, d))
                            })
                        }
                        _ => {
                            let _subscriber =
                                tracing::subscriber::set_default(tracing_subscriber::registry());
                            let recorder = metrics_util::debugging::DebuggingRecorder::new();
                            metrics::with_local_recorder(&recorder, || {
                                rt.block_on(drive(&observed, w, run_id, 64, d))
                            })
                        }
                    }
                };
                // Round 0 is the warm-up.
                if round == 0 {
                    once(duration / 4)?;
                    continue;
                }
                let result = once(duration)?;
                per[idx].push(result.ops_per_sec());
                lat[idx].extend(result.latencies_ns);
            }
        }
        for (idx, name) in CONTENDERS.into_iter().enumerate() {
            lat[idx].sort_unstable();
            // Each installed pipeline is divided by nothing installed.
            let base = match idx {
                0 => None,
                1 => Some(0),
                _ => Some(1),
            };
            rows.push(Row {
                workload: w.name(),
                config: CONFIG,
                contender: name,
                rounds: per[idx].clone(),
                p50_us: quantile_us(&lat[idx], 0.5),
                p99_us: quantile_us(&lat[idx], 0.99),
                vs_raw: base.map(|b| {
                    let ratios = per[idx].iter().zip(&per[b]).map(|(x, y)| x / y).collect();
                    (CONTENDERS[b], ratios)
                }),
                ceiling_rps: None,
                commands: Default::default(),
            });
        }
        progress.tick(&format!("observability · {}", w.name()));
    }
    Ok(rows)
}
