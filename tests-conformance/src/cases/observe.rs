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
