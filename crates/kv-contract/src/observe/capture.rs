//! A capturing `tracing` subscriber and `metrics` recorder, for tests of what the stores
//! emit (feature `capture`, and this crate's own tests): everything emitted inside
//! [`observed`] (on a runtime of its own) or [`observed_sync`] is returned.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

/// A span or an event: its name, target, level and fields (values as text).
#[derive(Debug, Clone)]
pub struct Captured {
    /// `span` or `event`.
    pub kind: &'static str,
    /// The span's name.
    pub name: String,
    /// The callsite's target.
    pub target: String,
    /// The level.
    pub level: tracing::Level,
    /// Field name → value.
    pub fields: BTreeMap<String, String>,
}

/// A recorded metric: name, labels, value (a histogram's value is its sample count).
pub type Metric = (String, Vec<(String, String)>, f64);

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<Captured>>>);

struct Fields<'a>(&'a mut BTreeMap<String, String>);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let text = format!("{value:?}");
        self.0
            .insert(field.name().to_owned(), text.trim_matches('"').to_owned());
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
}

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Capture {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, _: Context<'_, S>) {
        let mut fields = BTreeMap::new();
        attrs.record(&mut Fields(&mut fields));
        fields.insert("#id".into(), id.into_u64().to_string());
        let meta = attrs.metadata();
        self.0.lock().unwrap().push(Captured {
            kind: "span",
            name: meta.name().to_owned(),
            target: meta.target().to_owned(),
            level: *meta.level(),
            fields,
        });
    }
    fn on_record(&self, id: &Id, values: &Record<'_>, _: Context<'_, S>) {
        let id = id.into_u64().to_string();
        let mut all = self.0.lock().unwrap();
        if let Some(span) = all
            .iter_mut()
            .rev()
            .find(|c| c.kind == "span" && c.fields.get("#id") == Some(&id))
        {
            values.record(&mut Fields(&mut span.fields));
        }
    }
    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        let mut fields = BTreeMap::new();
        event.record(&mut Fields(&mut fields));
        let meta = event.metadata();
        self.0.lock().unwrap().push(Captured {
            kind: "event",
            name: meta.name().to_owned(),
            target: meta.target().to_owned(),
            level: *meta.level(),
            fields,
        });
    }
}

/// Runs `work` on its own current-thread runtime (on a blocking thread) with the
/// capturing subscriber and a debugging recorder installed; returns what they saw.
pub async fn observed<F, Fut>(work: F) -> (Vec<Captured>, Vec<Metric>)
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()>,
{
    tokio::task::spawn_blocking(move || observed_sync(work))
        .await
        .expect("the observed work panicked")
}

/// [`observed`] from synchronous code: blocks this thread until `work` is done.
pub fn observed_sync<F, Fut>(work: F) -> (Vec<Captured>, Vec<Metric>)
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    {
        let capture = Capture::default();
        let subscriber = tracing_subscriber::registry().with(capture.clone());
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        tracing::subscriber::with_default(subscriber, || {
            metrics::with_local_recorder(&recorder, || {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("a runtime")
                    .block_on(work())
            })
        });
        let metrics = snapshotter
            .snapshot()
            .into_vec()
            .into_iter()
            .map(|(key, _, _, value)| {
                let labels = key
                    .key()
                    .labels()
                    .map(|l| (l.key().to_owned(), l.value().to_owned()))
                    .collect();
                let v = match value {
                    DebugValue::Counter(n) => n as f64,
                    DebugValue::Gauge(g) => g.into_inner(),
                    DebugValue::Histogram(h) => h.len() as f64,
                };
                (key.key().name().to_owned(), labels, v)
            })
            .collect();
        let seen = capture.0.lock().unwrap().clone();
        (seen, metrics)
    }
}

/// The sum of the metric `name` over series whose labels include `labels`.
pub fn metric(metrics: &[Metric], name: &str, labels: &[(&str, &str)]) -> f64 {
    metrics
        .iter()
        .filter(|(n, l, _)| {
            n == name
                && labels
                    .iter()
                    .all(|(k, v)| l.iter().any(|(lk, lv)| lk == k && lv == v))
        })
        .map(|(_, _, v)| v)
        .sum()
}
