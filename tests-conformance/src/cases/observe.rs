//! Observability on a real server, per backend: the spans and metrics of
//! `kv_contract::observe` as the `Kv` bundle emits them, and the degradation warnings
//! while the server is hung (breaker opening, fail-open decisions).

use std::time::Duration;

use kv_contract::observe::{names, DEGRADED_TARGET};
use kv_contract::rate_limit::{DecisionSource, RateLimitRule};
use kv_contract::{BreakerOptions, CircuitBreaker};
use rustauth_kv::{Backend, Kv, KvOptions};

use super::connection::start;
use crate::context::{unique_prefix, BackendKind};
use crate::server::ServerConfig;
use kv_contract::observe::capture::{metric, observed, Captured};

/// Names and attributes of command spans (server address and port, script names), store
/// spans and metrics on a live server; then, with the server SIGSTOPped, the breaker
/// opens and fail-open decisions are warned about and counted.
pub async fn spans_metrics_and_degradation_events(kind: BackendKind) {
    let server = std::sync::Arc::new(start(ServerConfig::default()).await);
    let port = server.port();
    let url = server.url();
    let backend = match kind {
        BackendKind::Fred => Backend::Fred,
        _ => Backend::Redis,
    };
    let hung = server.clone();
    let (seen, metrics) = observed(move || async move {
        let breaker = CircuitBreaker::new(
            BreakerOptions::builder()
                .failure_threshold(2)
                .cool_down(Duration::from_secs(30))
                .build()
                .unwrap(),
        );
        let options = KvOptions::builder()
            .url(url)
            .backend(backend)
            .prefix(unique_prefix("observe"))
            .command_timeout(Duration::from_millis(300))
            .rate_limiter(move |b| b.fail_open().circuit_breaker(breaker))
            .build()
            .unwrap();
        let kv = Kv::connect_with(options).await.unwrap();
        kv.storage().set("k", "v".into(), None).await.unwrap();
        assert!(kv.storage().get("k").await.unwrap().is_some());
        let rule = RateLimitRule::new(Duration::from_secs(60), 5).unwrap();
        assert!(
            kv.rate_limiter()
                .consume("b", &rule, 1)
                .await
                .unwrap()
                .allowed
        );
        hung.signal("STOP");
        for _ in 0..3 {
            let d = kv.rate_limiter().consume("b", &rule, 1).await.unwrap();
            assert_eq!(d.source, DecisionSource::FailedOpen);
        }
        hung.signal("CONT");
        kv.close().await.unwrap();
    })
    .await;

    let spans = |name: &str| -> Vec<&Captured> {
        seen.iter()
            .filter(|c| c.kind == "span" && c.name == name)
            .collect()
    };
    let commands = spans("redis.command");
    let get = commands
        .iter()
        .find(|c| c.fields.get("db.operation.name").map(String::as_str) == Some("GET"))
        .expect("a GET command span");
    assert_eq!(get.fields["db.system.name"], "redis");
    assert_eq!(get.fields["otel.kind"], "client");
    assert_eq!(get.fields["server.address"], "127.0.0.1");
    assert_eq!(get.fields["server.port"], port.to_string());
    assert_eq!(get.fields["db.namespace"], "0");
    let script = commands
        .iter()
        .find(|c| {
            c.fields.get("db.stored_procedure.name").map(String::as_str)
                == Some("rate_limit_fixed_window")
        })
        .expect("the rate-limit script's span");
    assert!(["EVALSHA", "EVAL"].contains(&script.fields["db.operation.name"].as_str()));
    let timeouts = commands
        .iter()
        .filter(|c| c.fields.get("error.type").map(String::as_str) == Some("timeout"))
        .count();
    assert!(
        timeouts >= 2,
        "the hung server's timeouts are on their spans ({timeouts})"
    );
    assert_eq!(spans("storage.get")[0].fields["rustauth.outcome"], "hit");
    assert_eq!(spans("rate_limit.consume").len(), 4);
    let warnings: Vec<&Captured> = seen
        .iter()
        .filter(|c| c.kind == "event" && c.target == DEGRADED_TARGET)
        .collect();
    let policy = |p: &str| {
        warnings
            .iter()
            .filter(|w| w.fields.get("policy").map(String::as_str) == Some(p))
            .count()
    };
    assert_eq!(policy("failed_open"), 3, "{warnings:?}");
    assert!(
        warnings
            .iter()
            .any(|w| w.fields.get("state").map(String::as_str) == Some("open")),
        "no breaker warning in {warnings:?}"
    );
    assert!(
        metric(
            &metrics,
            names::OPERATION_DURATION,
            &[("db.operation.name", "GET")]
        ) >= 1.0
    );
    assert!(
        metric(
            &metrics,
            names::OPERATION_DURATION,
            &[("error.type", "timeout")]
        ) >= 2.0,
        "timeouts are timed with their error.type"
    );
    assert_eq!(
        metric(&metrics, names::BREAKER_TRANSITIONS, &[("state", "open")]),
        1.0
    );
    assert_eq!(
        metric(
            &metrics,
            names::RATE_LIMIT_DECISIONS,
            &[("source", "failed_open")]
        ),
        3.0
    );
    assert_eq!(
        metric(
            &metrics,
            names::RATE_LIMIT_DECISIONS,
            &[("source", "server"), ("outcome", "allowed")]
        ),
        1.0
    );
}

/// A connection lost and regained on a real server, through a proxy that resets every
/// connection: commands fail while it lasts, yet the loss is one `warn` event and one
/// count, and the reconnect after it is one "reconnected" event and one count.
pub async fn connection_loss_and_reconnect_are_counted_once(kind: BackendKind) {
    let server = start(ServerConfig::default()).await;
    let proxy = crate::fault::FaultProxy::start(server.port())
        .await
        .expect("proxy");
    let url = proxy.url();
    let backend = match kind {
        BackendKind::Fred => Backend::Fred,
        _ => Backend::Redis,
    };
    let proxy = std::sync::Arc::new(proxy);
    let faults = proxy.clone();
    let (seen, metrics) = observed(move || async move {
        let options = KvOptions::builder()
            .url(url)
            .backend(backend)
            .prefix(unique_prefix("observe-reconnect"))
            .command_timeout(Duration::from_millis(300))
            .build()
            .unwrap();
        let kv = Kv::connect_with(options).await.unwrap();
        let storage = kv.storage();
        storage.set("k", "v".into(), None).await.unwrap();
        faults.set(crate::fault::Fault::Reset);
        // A few calls fail during the outage (unavailable, or timed out while fred
        // waits for its reconnect): they must count one loss, not one per call.
        for _ in 0..4 {
            let e = storage.get("k").await.expect_err("a read through resets");
            assert!(
                matches!(
                    e.kind(),
                    kv_contract::ErrorKind::Unavailable | kv_contract::ErrorKind::Timeout
                ),
                "{e}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        faults.set(crate::fault::Fault::Pass);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            if storage.get("k").await.is_ok() {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "not reconnected 10 s after the resets stopped"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(storage.get("k").await.unwrap().as_deref(), Some(&b"v"[..]));
        kv.close().await.unwrap();
    })
    .await;
    drop(server);
    let states: Vec<&str> = seen
        .iter()
        .filter(|c| c.kind == "event" && c.target == DEGRADED_TARGET)
        .filter_map(|c| c.fields.get("state").map(String::as_str))
        .collect();
    assert_eq!(states, ["lost", "reconnected"], "{seen:?}");
    let lost = seen
        .iter()
        .find(|c| c.fields.get("state").map(String::as_str) == Some("lost"))
        .unwrap();
    assert_eq!(lost.level, tracing::Level::WARN);
    assert!(
        lost.fields["server"].contains(&format!(":{}", proxy.port())),
        "{lost:?}"
    );
    assert_eq!(metric(&metrics, names::CONNECTION_LOST, &[]), 1.0);
    assert_eq!(metric(&metrics, names::RECONNECTS, &[]), 1.0);
}

/// Feature `opentelemetry` end to end on a real server: the stores' spans through
/// `tracing-opentelemetry` and their metrics through [`rustauth_kv::otel::OtelRecorder`],
/// exported by the OpenTelemetry SDK's in-memory exporters. The command span is a
/// `Client` span named after the command, child of its `Internal` store span; the
/// duration histogram has unit `s` and OpenTelemetry's buckets; no key or value is in
/// any exported attribute.
pub async fn opentelemetry_export(kind: BackendKind) {
    use opentelemetry::metrics::MeterProvider as _;
    use opentelemetry::trace::{SpanKind, TracerProvider as _};
    use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData};
    use opentelemetry_sdk::metrics::{InMemoryMetricExporter, PeriodicReader, SdkMeterProvider};
    use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider};
    use rustauth_kv::otel::{tracing_opentelemetry, OtelRecorder, OPERATION_DURATION_BUCKETS};
    use tracing_subscriber::layer::SubscriberExt as _;

    let server = start(ServerConfig::default()).await;
    let url = server.url();
    let port = server.port().to_string();
    let backend = match kind {
        BackendKind::Fred => Backend::Fred,
        _ => Backend::Redis,
    };
    let spans = InMemorySpanExporter::default();
    let tracers = SdkTracerProvider::builder()
        .with_simple_exporter(spans.clone())
        .build();
    let exported = InMemoryMetricExporter::default();
    let meters = SdkMeterProvider::builder()
        .with_reader(PeriodicReader::builder(exported.clone()).build())
        .build();
    let recorder = OtelRecorder::new(meters.meter("rustauth-kv-test"));
    let layer = tracing_opentelemetry::layer().with_tracer(tracers.tracer("rustauth-kv-test"));
    let subscriber = tracing_subscriber::registry().with(layer);
    const KEY: &str = "otel-secret-key-7f3a";
    const VALUE: &str = "otel-secret-value-91c2";
    tokio::task::spawn_blocking(move || {
        tracing::subscriber::with_default(subscriber, || {
            metrics::with_local_recorder(&recorder, || {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap()
                    .block_on(async {
                        let options = KvOptions::builder()
                            .url(url)
                            .backend(backend)
                            .prefix(unique_prefix("observe-otel"))
                            .build()
                            .unwrap();
                        let kv = Kv::connect_with(options).await.unwrap();
                        kv.storage().set(KEY, VALUE.into(), None).await.unwrap();
                        let got = kv.storage().get(KEY).await.unwrap();
                        assert_eq!(got.as_deref(), Some(VALUE.as_bytes()));
                        kv.close().await.unwrap();
                    })
            })
        })
    })
    .await
    .unwrap();
    drop(server);
    tracers.force_flush().unwrap();
    meters.force_flush().unwrap();

    let spans = spans.get_finished_spans().unwrap();
    for span in &spans {
        for attribute in &span.attributes {
            let text = attribute.value.as_str();
            assert!(
                !text.contains(KEY) && !text.contains(VALUE),
                "{} carries a key or value: {attribute:?}",
                span.name
            );
        }
    }
    let attr = |span: &opentelemetry_sdk::trace::SpanData, key: &str| {
        span.attributes
            .iter()
            .find(|kv| kv.key.as_str() == key)
            .map(|kv| kv.value.as_str().into_owned())
    };
    let get = spans.iter().find(|s| s.name == "GET").unwrap_or_else(|| {
        panic!(
            "no GET span in {:?}",
            spans.iter().map(|s| &s.name).collect::<Vec<_>>()
        )
    });
    assert_eq!(get.span_kind, SpanKind::Client);
    assert_eq!(attr(get, "db.system.name").as_deref(), Some("redis"));
    assert_eq!(attr(get, "db.operation.name").as_deref(), Some("GET"));
    assert_eq!(attr(get, "server.address").as_deref(), Some("127.0.0.1"));
    assert_eq!(attr(get, "server.port"), Some(port));
    assert_eq!(attr(get, "db.namespace").as_deref(), Some("0"));
    let parent = spans
        .iter()
        .find(|s| s.name == "storage.get")
        .expect("the store span");
    assert_eq!(parent.span_kind, SpanKind::Internal);
    assert_eq!(get.parent_span_id, parent.span_context.span_id());
    assert_eq!(attr(parent, "rustauth.outcome").as_deref(), Some("hit"));

    let metrics = exported.get_finished_metrics().unwrap();
    let all: Vec<&opentelemetry_sdk::metrics::data::Metric> = metrics
        .iter()
        .flat_map(|r| r.scope_metrics())
        .flat_map(|s| s.metrics())
        .collect();
    let duration = all
        .iter()
        .rev()
        .find(|m| m.name() == names::OPERATION_DURATION)
        .expect("the duration histogram");
    assert_eq!(duration.unit(), "s");
    let AggregatedMetrics::F64(MetricData::Histogram(histogram)) = duration.data() else {
        panic!(
            "{} is not an f64 histogram: {:?}",
            duration.name(),
            duration.data()
        );
    };
    let get_point = histogram
        .data_points()
        .find(|p| {
            p.attributes()
                .any(|kv| kv.key.as_str() == "db.operation.name" && kv.value.as_str() == "GET")
        })
        .expect("a GET data point");
    assert!(get_point.count() >= 1);
    assert_eq!(
        get_point.bounds().collect::<Vec<_>>(),
        OPERATION_DURATION_BUCKETS.to_vec()
    );
    let operations = all
        .iter()
        .rev()
        .find(|m| m.name() == names::OPERATIONS)
        .expect("the operations counter");
    let AggregatedMetrics::U64(MetricData::Sum(sum)) = operations.data() else {
        panic!("{} is not a u64 sum", operations.name());
    };
    let gets: u64 = sum
        .data_points()
        .filter(|p| {
            p.attributes()
                .any(|kv| kv.key.as_str() == "operation" && kv.value.as_str() == "storage.get")
        })
        .map(|p| p.value())
        .sum();
    assert_eq!(gets, 1);
}

/// The server drops the idle connection (`CLIENT KILL TYPE normal`) while no command is in
/// flight. fred sees it through its error and reconnect events; redis-rs at the next
/// command, which fails as unavailable while it reconnects. Either way: one loss, one
/// reconnect, and the reads after it succeed.
pub async fn idle_connection_killed_is_one_loss_and_one_reconnect(kind: BackendKind) {
    let server = start(ServerConfig::default()).await;
    let url = server.url();
    let backend = match kind {
        BackendKind::Fred => Backend::Fred,
        _ => Backend::Redis,
    };
    let killer = crate::probe::Probe::connect(&url).await;
    let (seen, metrics) = observed(move || async move {
        let options = KvOptions::builder()
            .url(url)
            .backend(backend)
            .prefix(unique_prefix("observe-idle-kill"))
            .command_timeout(Duration::from_millis(500))
            .build()
            .unwrap();
        let kv = Kv::connect_with(options).await.unwrap();
        let storage = kv.storage();
        storage.set("k", "v".into(), None).await.unwrap();
        let killed: i64 = killer
            .command(redis::cmd("CLIENT").arg("KILL").arg("TYPE").arg("normal"))
            .await;
        assert!(killed >= 1, "CLIENT KILL killed {killed} connections");
        // Idle for a while: fred reconnects by itself in this time.
        tokio::time::sleep(Duration::from_millis(1000)).await;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        let mut failed = 0;
        loop {
            match storage.get("k").await {
                Ok(v) => {
                    assert_eq!(v.as_deref(), Some(&b"v"[..]));
                    break;
                }
                Err(e) => {
                    failed += 1;
                    assert!(
                        tokio::time::Instant::now() < deadline,
                        "not back 5 s after CLIENT KILL: {e}"
                    );
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        if backend == Backend::Fred {
            // No command failed: the loss can only have come from fred's events.
            assert_eq!(failed, 0, "fred had reconnected before the read");
        }
        storage.get("k").await.unwrap();
        kv.close().await.unwrap();
    })
    .await;
    let states: Vec<&str> = seen
        .iter()
        .filter(|c| c.kind == "event" && c.target == DEGRADED_TARGET)
        .filter_map(|c| c.fields.get("state").map(String::as_str))
        .collect();
    assert_eq!(states, ["lost", "reconnected"], "{seen:?}");
    assert_eq!(metric(&metrics, names::CONNECTION_LOST, &[]), 1.0);
    assert_eq!(metric(&metrics, names::RECONNECTS, &[]), 1.0);
}
