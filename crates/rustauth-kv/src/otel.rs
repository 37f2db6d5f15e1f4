//! Feature `opentelemetry`: [`OtelRecorder`], a `metrics` recorder that records into an
//! OpenTelemetry [`Meter`], and the `tracing` → OpenTelemetry span bridge re-exported, for
//! apps that export with OpenTelemetry directly instead of through a `metrics` exporter.
//!
//! The stores emit through the `metrics` and `tracing` facades only (see
//! `docs/observability.md`); this module moves those into OpenTelemetry without a second
//! emission path:
//!
//! - **metrics**: install [`OtelRecorder`] as the `metrics` recorder. Every counter becomes
//!   an OpenTelemetry `u64` counter, every histogram an `f64` histogram, labels become
//!   attributes; `db.client.operation.duration` gets unit `s` and OpenTelemetry's
//!   recommended buckets ([`OPERATION_DURATION_BUCKETS`]), our counters their units and
//!   descriptions.
//! - **spans**: add [`tracing_opentelemetry`]'s layer with your tracer. Our spans already
//!   carry its conventions: `otel.name` (the command, `GET`), `otel.kind` (`client` per
//!   command, `internal` per store operation), `otel.status_code` (`ERROR` on failure).
//!
//! ```no_run
//! use opentelemetry::metrics::MeterProvider as _;
//! use opentelemetry::trace::TracerProvider as _;
//! use rustauth_kv::otel::{opentelemetry, tracing_opentelemetry, OtelRecorder};
//! use tracing_subscriber::layer::SubscriberExt as _;
//!
//! # fn run(
//! #     meters: opentelemetry_sdk::metrics::SdkMeterProvider,
//! #     tracers: opentelemetry_sdk::trace::SdkTracerProvider,
//! # ) {
//! metrics::set_global_recorder(OtelRecorder::new(meters.meter("rustauth-kv")))
//!     .expect("no other metrics recorder");
//! let layer = tracing_opentelemetry::layer().with_tracer(tracers.tracer("rustauth-kv"));
//! tracing::subscriber::set_global_default(tracing_subscriber::registry().with(layer))
//!     .expect("no other subscriber");
//! # }
//! ```
//!
//! The versions are the ones this crate is built with (re-exported here): pass a `Meter`
//! and a tracer of the same `opentelemetry` version.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use kv_contract::observe::names;
use metrics::{Counter, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit};
use opentelemetry::metrics::Meter;
use opentelemetry::KeyValue;

pub use kv_contract::observe::names::OPERATION_DURATION_BUCKETS;
/// The OpenTelemetry API this bridge is built on.
pub use opentelemetry;
/// The `tracing` layer that exports spans to an OpenTelemetry tracer.
pub use tracing_opentelemetry;

/// A `metrics` recorder that records into an OpenTelemetry [`Meter`] (see the module
/// documentation). Handles are cached per metric key, so a call site pays one read-locked
/// map lookup before the OpenTelemetry instrument records.
pub struct OtelRecorder {
    meter: Meter,
    counters: RwLock<HashMap<Key, Counter>>,
    histograms: RwLock<HashMap<Key, Histogram>>,
    gauges: RwLock<HashMap<Key, Gauge>>,
    /// `describe_*` calls: unit and description by metric name, used when the
    /// instrument is first created.
    described: Mutex<HashMap<String, (Option<Unit>, SharedString)>>,
}

impl std::fmt::Debug for OtelRecorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OtelRecorder").finish_non_exhaustive()
    }
}

impl OtelRecorder {
    /// Records into `meter`.
    pub fn new(meter: Meter) -> Self {
        OtelRecorder {
            meter,
            counters: RwLock::default(),
            histograms: RwLock::default(),
            gauges: RwLock::default(),
            described: Mutex::default(),
        }
    }

    /// The unit and description of `name`: ours from the table, others from `describe_*`.
    fn description(&self, name: &str) -> (Option<String>, Option<String>) {
        if let Some((unit, text)) = known(name) {
            return (Some(unit.to_owned()), Some(text.to_owned()));
        }
        let described = self.described.lock().unwrap_or_else(|e| e.into_inner());
        match described.get(name) {
            Some((unit, text)) => (
                unit.map(|u| otel_unit(u).to_owned()),
                Some(text.to_string()),
            ),
            None => (None, None),
        }
    }

    fn describe(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.described
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key.as_str().to_owned(), (unit, description));
    }
}

/// The handle cached for `key` in `map`, made by `make` on first use.
fn cached<H: Clone>(map: &RwLock<HashMap<Key, H>>, key: &Key, make: impl FnOnce() -> H) -> H {
    if let Some(h) = map.read().unwrap_or_else(|e| e.into_inner()).get(key) {
        return h.clone();
    }
    map.write()
        .unwrap_or_else(|e| e.into_inner())
        .entry(key.clone())
        .or_insert_with(make)
        .clone()
}

/// The labels of `key` as OpenTelemetry attributes.
fn attributes(key: &Key) -> Vec<KeyValue> {
    key.labels()
        .map(|l| KeyValue::new(l.key().to_owned(), l.value().to_owned()))
        .collect()
}

/// Units (UCUM, as OpenTelemetry writes them) and descriptions of the metrics the stores
/// emit.
fn known(name: &str) -> Option<(&'static str, &'static str)> {
    Some(match name {
        names::OPERATION_DURATION => ("s", "Duration of database client operations."),
        names::OPERATIONS => ("{operation}", "rustauth-kv store operations."),
        names::ERRORS => ("{error}", "Failed rustauth-kv store operations."),
        names::RATE_LIMIT_DECISIONS => ("{decision}", "Rate-limit decisions."),
        names::SESSIONS_CREATED => ("{session}", "Sessions created."),
        names::SESSIONS_REVOKED => ("{session}", "Sessions revoked."),
        names::SESSIONS_EVICTED => ("{session}", "Sessions evicted by the per-user cap."),
        names::BREAKER_TRANSITIONS => ("{transition}", "Circuit-breaker transitions."),
        names::SCRIPT_RELOADS => ("{reload}", "Scripts re-sent with EVAL after NOSCRIPT."),
        names::DEGRADED => ("{answer}", "Answers given by a degradation policy."),
        names::CONNECTION_LOST => ("{loss}", "Server connections seen lost."),
        names::RECONNECTS => ("{reconnect}", "Server connections seen back after a loss."),
        _ => return None,
    })
}

fn otel_unit(unit: Unit) -> &'static str {
    match unit {
        Unit::Seconds => "s",
        Unit::Milliseconds => "ms",
        Unit::Microseconds => "us",
        Unit::Nanoseconds => "ns",
        Unit::Bytes => "By",
        Unit::Percent => "%",
        _ => "1",
    }
}

/// A counter: the OpenTelemetry counter and this key's attributes. `absolute` adds the
/// difference to the last absolute value (OpenTelemetry counters only add).
struct OtelCounter {
    instrument: opentelemetry::metrics::Counter<u64>,
    attributes: Vec<KeyValue>,
    last_absolute: AtomicU64,
}

impl metrics::CounterFn for OtelCounter {
    fn increment(&self, value: u64) {
        self.instrument.add(value, &self.attributes);
    }
    fn absolute(&self, value: u64) {
        let previous = self.last_absolute.fetch_max(value, Ordering::Relaxed);
        if value > previous {
            self.instrument.add(value - previous, &self.attributes);
        }
    }
}

struct OtelHistogram {
    instrument: opentelemetry::metrics::Histogram<f64>,
    attributes: Vec<KeyValue>,
}

impl metrics::HistogramFn for OtelHistogram {
    fn record(&self, value: f64) {
        self.instrument.record(value, &self.attributes);
    }
}

/// A gauge: its value kept here (as `f64` bits) so that `increment` and `decrement`
/// record the new value; OpenTelemetry gauges only record.
struct OtelGauge {
    instrument: opentelemetry::metrics::Gauge<f64>,
    attributes: Vec<KeyValue>,
    bits: AtomicU64,
}

impl OtelGauge {
    fn update(&self, f: impl Fn(f64) -> f64) {
        let mut current = self.bits.load(Ordering::Relaxed);
        loop {
            let next = f(f64::from_bits(current));
            match self.bits.compare_exchange_weak(
                current,
                next.to_bits(),
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return self.instrument.record(next, &self.attributes),
                Err(seen) => current = seen,
            }
        }
    }
}

impl metrics::GaugeFn for OtelGauge {
    fn increment(&self, value: f64) {
        self.update(|v| v + value);
    }
    fn decrement(&self, value: f64) {
        self.update(|v| v - value);
    }
    fn set(&self, value: f64) {
        self.update(|_| value);
    }
}

impl Recorder for OtelRecorder {
    fn describe_counter(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.describe(key, unit, description);
    }
    fn describe_gauge(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.describe(key, unit, description);
    }
    fn describe_histogram(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.describe(key, unit, description);
    }

    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        cached(&self.counters, key, || {
            let (unit, description) = self.description(key.name());
            let mut builder = self.meter.u64_counter(key.name().to_owned());
            if let Some(unit) = unit {
                builder = builder.with_unit(unit);
            }
            if let Some(description) = description {
                builder = builder.with_description(description);
            }
            Counter::from_arc(Arc::new(OtelCounter {
                instrument: builder.build(),
                attributes: attributes(key),
                last_absolute: AtomicU64::new(0),
            }))
        })
    }

    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        cached(&self.gauges, key, || {
            let (unit, description) = self.description(key.name());
            let mut builder = self.meter.f64_gauge(key.name().to_owned());
            if let Some(unit) = unit {
                builder = builder.with_unit(unit);
            }
            if let Some(description) = description {
                builder = builder.with_description(description);
            }
            Gauge::from_arc(Arc::new(OtelGauge {
                instrument: builder.build(),
                attributes: attributes(key),
                bits: AtomicU64::new(0f64.to_bits()),
            }))
        })
    }

    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        cached(&self.histograms, key, || {
            let (unit, description) = self.description(key.name());
            let mut builder = self.meter.f64_histogram(key.name().to_owned());
            if key.name() == names::OPERATION_DURATION {
                builder = builder.with_boundaries(OPERATION_DURATION_BUCKETS.to_vec());
            }
            if let Some(unit) = unit {
                builder = builder.with_unit(unit);
            }
            if let Some(description) = description {
                builder = builder.with_description(description);
            }
            Histogram::from_arc(Arc::new(OtelHistogram {
                instrument: builder.build(),
                attributes: attributes(key),
            }))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::metrics::MeterProvider as _;
    use opentelemetry_sdk::metrics::data::{
        AggregatedMetrics, Metric, MetricData, ResourceMetrics,
    };
    use opentelemetry_sdk::metrics::{InMemoryMetricExporter, PeriodicReader, SdkMeterProvider};

    /// Runs `work` with an [`OtelRecorder`] installed, returns what the SDK exported.
    fn exported(work: impl FnOnce()) -> Vec<ResourceMetrics> {
        let exporter = InMemoryMetricExporter::default();
        let provider = SdkMeterProvider::builder()
            .with_reader(PeriodicReader::builder(exporter.clone()).build())
            .build();
        let recorder = OtelRecorder::new(provider.meter("test"));
        metrics::with_local_recorder(&recorder, work);
        provider.force_flush().unwrap();
        exporter.get_finished_metrics().unwrap()
    }

    fn find<'a>(all: &'a [ResourceMetrics], name: &str) -> &'a Metric {
        all.iter()
            .flat_map(|r| r.scope_metrics())
            .flat_map(|s| s.metrics())
            .filter(|m| m.name() == name)
            .last()
            .unwrap_or_else(|| panic!("{name} was not exported"))
    }

    #[test]
    fn counters_gauges_and_histograms_reach_the_meter() {
        let all = exported(|| {
            metrics::counter!(names::OPERATIONS, "operation" => "storage.get").increment(2);
            metrics::counter!(names::OPERATIONS, "operation" => "storage.get").increment(1);
            metrics::describe_counter!("app.jobs", metrics::Unit::Count, "Jobs run.");
            let jobs = metrics::counter!("app.jobs");
            jobs.absolute(5);
            jobs.absolute(3); // below the last absolute value: adds nothing
            jobs.absolute(7);
            let g = metrics::gauge!("app.queue");
            g.set(4.0);
            g.increment(2.5);
            g.decrement(1.0);
            metrics::histogram!(names::OPERATION_DURATION, "db.operation.name" => "GET")
                .record(0.002);
        });
        let ops = find(&all, names::OPERATIONS);
        assert_eq!(ops.unit(), "{operation}");
        let AggregatedMetrics::U64(MetricData::Sum(sum)) = ops.data() else {
            panic!("{:?}", ops.data())
        };
        let point = sum.data_points().next().unwrap();
        assert_eq!(point.value(), 3);
        let label = point.attributes().next().unwrap();
        assert_eq!(
            (label.key.as_str(), label.value.as_str().as_ref()),
            ("operation", "storage.get")
        );

        let jobs = find(&all, "app.jobs");
        assert_eq!(jobs.description(), "Jobs run.");
        let AggregatedMetrics::U64(MetricData::Sum(sum)) = jobs.data() else {
            panic!("{:?}", jobs.data())
        };
        assert_eq!(sum.data_points().next().unwrap().value(), 7);

        let queue = find(&all, "app.queue");
        let AggregatedMetrics::F64(MetricData::Gauge(gauge)) = queue.data() else {
            panic!("{:?}", queue.data())
        };
        assert_eq!(gauge.data_points().next().unwrap().value(), 5.5);

        let duration = find(&all, names::OPERATION_DURATION);
        assert_eq!(duration.unit(), "s");
        let AggregatedMetrics::F64(MetricData::Histogram(h)) = duration.data() else {
            panic!("{:?}", duration.data())
        };
        let point = h.data_points().next().unwrap();
        assert_eq!(point.count(), 1);
        assert_eq!(
            point.bounds().collect::<Vec<_>>(),
            OPERATION_DURATION_BUCKETS.to_vec()
        );
    }
}
