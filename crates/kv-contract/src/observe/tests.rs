//! Tests of the observability wrappers: span names and attributes, metric names and
//! labels, degradation events — and that no key, token, value or user id ever reaches
//! a span or an event.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::capture::{metric, Captured, Metric};
use super::*;
use crate::config::ServerAddress;
use crate::error::{ErrorKind, KvError, KvResult};
use crate::memory::MemoryKeyspace;
use crate::rate_limit::{DecisionSource, RateLimitRule, RateLimiter, RateLimiterOptions};
use crate::session::{SessionIndex, SessionIndexOptions};
use crate::storage::{SecondaryStorage, StorageOptions};
use crate::wire::{Command, Connection, Reply};
use crate::{Lock, LockOptions, MemoryLock, MemoryRateLimiter, MemorySessionIndex, MemoryStorage};
use crate::{ServerRateLimiter, ServerStorage};
use async_trait::async_trait;

fn observe<F, Fut>(work: F) -> (Vec<Captured>, Vec<Metric>)
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    super::capture::observed_sync(work)
}

/// A server that answers from a function of the command.
struct Stub<F>(F);

impl<F> std::fmt::Debug for Stub<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Stub")
    }
}

#[async_trait]
impl<F> Connection for Stub<F>
where
    F: Fn(&Command) -> KvResult<Reply> + Send + Sync + 'static,
{
    async fn execute(&self, command: Command) -> KvResult<Reply> {
        (self.0)(&command)
    }
}

fn address() -> ServerAddress {
    ServerAddress::parse("redis://:hunter2@cache.internal:6380/3").unwrap()
}

#[test]
fn every_command_has_an_otel_client_span_and_a_duration() {
    let stub = Arc::new(Stub(|c: &Command| match c.name() {
        "GET" => Ok(Reply::Nil),
        "EVALSHA" => Err(KvError::server_reply("NOSCRIPT No matching script.", None)),
        "EVAL" => Ok(Reply::Int(1)),
        "DEL" => Ok(Reply::Int(3)),
        _ => Ok(Reply::Status("OK".into())),
    }));
    let conn: Arc<dyn Connection> = Arc::new(ObservedConnection::new(stub, &address()));
    let (seen, metrics) = observe(|| async move {
        let storage = ServerStorage::new(conn.clone(), StorageOptions::default());
        assert_eq!(storage.get("k").await.unwrap(), None);
        storage.delete_many(&["a", "b", "c"]).await.unwrap();
        assert!(storage
            .compare_and_set("k", Some(b"x"), "y".into(), None)
            .await
            .unwrap());
    });
    let commands: Vec<&Captured> = seen.iter().filter(|c| c.name == "redis.command").collect();
    let get = commands
        .iter()
        .find(|c| c.fields["db.operation.name"] == "GET")
        .expect("a GET span");
    for (k, v) in [
        ("otel.kind", "client"),
        ("otel.name", "GET"),
        ("db.system.name", "redis"),
        ("db.namespace", "3"),
        ("server.address", "cache.internal"),
        ("server.port", "6380"),
    ] {
        assert_eq!(
            get.fields.get(k).map(String::as_str),
            Some(v),
            "{k} in {get:?}"
        );
    }
    let del = commands
        .iter()
        .find(|c| c.fields["db.operation.name"] == "DEL")
        .expect("a DEL span");
    assert_eq!(del.fields["db.operation.batch.size"], "3");
    let evalsha = commands
        .iter()
        .find(|c| c.fields["db.operation.name"] == "EVALSHA")
        .expect("an EVALSHA span");
    assert_eq!(
        evalsha.fields["db.stored_procedure.name"],
        "compare_and_set"
    );
    assert_eq!(evalsha.fields["error.type"], "NOSCRIPT");
    assert_eq!(evalsha.fields["db.response.status_code"], "NOSCRIPT");
    let eval = commands
        .iter()
        .find(|c| c.fields["db.operation.name"] == "EVAL")
        .expect("an EVAL span");
    assert_eq!(eval.fields["db.stored_procedure.name"], "compare_and_set");
    let reload = seen
        .iter()
        .find(|c| c.kind == "event" && c.target == DEGRADED_TARGET)
        .expect("a NOSCRIPT reload warning");
    assert_eq!(reload.level, tracing::Level::WARN);
    assert_eq!(reload.fields["script"], "compare_and_set");
    assert_eq!(
        metric(
            &metrics,
            names::SCRIPT_RELOADS,
            &[("script", "compare_and_set")]
        ),
        1.0
    );
    assert_eq!(
        metric(
            &metrics,
            names::OPERATION_DURATION,
            &[("db.operation.name", "GET")]
        ),
        1.0
    );
    assert_eq!(
        metric(
            &metrics,
            names::OPERATION_DURATION,
            &[("db.operation.name", "EVALSHA"), ("error.type", "NOSCRIPT")]
        ),
        1.0
    );
    let text = format!("{seen:?}");
    assert!(!text.contains("hunter2"), "a password in {text}");
}

fn memory_stores() -> (
    ObservedStorage,
    ObservedRateLimiter,
    ObservedSessionIndex,
    impl Lock,
) {
    let ks = MemoryKeyspace::new();
    let storage = ObservedStorage::new(Arc::new(MemoryStorage::with_keyspace(
        ks.clone(),
        StorageOptions::default(),
    )));
    let limiter = ObservedRateLimiter::new(
        Arc::new(MemoryRateLimiter::new(
            ks.clone(),
            RateLimiterOptions::default(),
        )),
        "fixed_window",
    );
    let sessions = ObservedSessionIndex::new(Arc::new(MemorySessionIndex::with_keyspace(
        ks.clone(),
        SessionIndexOptions::builder()
            .max_sessions_per_user(1)
            .build()
            .unwrap(),
    )));
    let lock = ObservedLock::new(Arc::new(MemoryLock::new(ks, LockOptions::default())));
    (storage, limiter, sessions, lock)
}

#[test]
fn store_operations_have_parent_spans_and_bounded_counters() {
    let (seen, metrics) = observe(|| async {
        let (storage, limiter, sessions, lock) = memory_stores();
        storage.set("otp", "1".into(), None).await.unwrap();
        assert!(storage.take("otp").await.unwrap().is_some());
        assert!(storage.take("otp").await.unwrap().is_none());
        let rule = RateLimitRule::new(Duration::from_secs(60), 1).unwrap();
        assert!(limiter.consume("b", &rule, 1).await.unwrap().allowed);
        assert!(!limiter.consume("b", &rule, 1).await.unwrap().allowed);
        let later = SystemTime::now() + Duration::from_secs(60);
        sessions
            .create("u", "t1", "{}".into(), later)
            .await
            .unwrap();
        sessions
            .create("u", "t2", "{}".into(), later + Duration::from_secs(1))
            .await
            .unwrap();
        assert_eq!(sessions.revoke_all("u").await.unwrap(), 1);
        let guard = lock
            .acquire("job", Duration::from_secs(5))
            .await
            .unwrap()
            .into_guard()
            .unwrap();
        let _released = lock.release(&guard).await.unwrap();
        let e = storage.get("").await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
    });
    let span = |name: &str| -> Vec<&Captured> {
        seen.iter()
            .filter(|c| c.kind == "span" && c.name == name)
            .collect()
    };
    let takes = span("storage.take");
    assert_eq!(takes.len(), 2);
    assert_eq!(takes[0].fields["rustauth.outcome"], "hit");
    assert_eq!(takes[1].fields["rustauth.outcome"], "miss");
    assert_eq!(takes[0].fields["rustauth.namespace"], "secondary");
    let consumes = span("rate_limit.consume");
    assert_eq!(consumes[0].fields["rustauth.algorithm"], "fixed_window");
    assert_eq!(consumes[0].fields["rustauth.outcome"], "allowed");
    assert_eq!(consumes[1].fields["rustauth.outcome"], "denied");
    assert_eq!(span("session.revoke_all").len(), 1);
    assert_eq!(
        span("lock.acquire")[0].fields["rustauth.outcome"],
        "acquired"
    );
    assert_eq!(span("storage.get")[0].fields["error.type"], "invalidinput");
    let decisions = |outcome| {
        metric(
            &metrics,
            names::RATE_LIMIT_DECISIONS,
            &[("outcome", outcome), ("source", "server")],
        )
    };
    assert_eq!((decisions("allowed"), decisions("denied")), (1.0, 1.0));
    assert_eq!(metric(&metrics, names::SESSIONS_CREATED, &[]), 2.0);
    assert_eq!(metric(&metrics, names::SESSIONS_EVICTED, &[]), 1.0);
    assert_eq!(
        metric(
            &metrics,
            names::SESSIONS_REVOKED,
            &[("operation", "session.revoke_all")]
        ),
        1.0
    );
    assert_eq!(
        metric(
            &metrics,
            names::OPERATIONS,
            &[("operation", "storage.take")]
        ),
        2.0
    );
    assert_eq!(
        metric(
            &metrics,
            names::ERRORS,
            &[("operation", "storage.get"), ("error.type", "invalidinput")]
        ),
        1.0
    );
}

#[test]
fn fail_open_and_the_breaker_are_loud() {
    let (seen, metrics) = observe(|| async {
        let dead = Arc::new(Stub(|_: &Command| -> KvResult<Reply> {
            Err(KvError::new(
                ErrorKind::Timeout,
                "redis://db:6379/0 did not answer",
            ))
        }));
        let breaker = crate::CircuitBreaker::new(
            crate::BreakerOptions::builder()
                .failure_threshold(2)
                .cool_down(Duration::from_secs(60))
                .build()
                .unwrap(),
        );
        let options = RateLimiterOptions::builder()
            .fail_open()
            .circuit_breaker(breaker)
            .build()
            .unwrap();
        let limiter = ObservedRateLimiter::new(
            Arc::new(ServerRateLimiter::new(dead, options)),
            "fixed_window",
        );
        let rule = RateLimitRule::new(Duration::from_secs(60), 1).unwrap();
        for _ in 0..3 {
            let d = limiter.consume("b", &rule, 1).await.unwrap();
            assert_eq!(d.source, DecisionSource::FailedOpen);
        }
    });
    let warnings: Vec<&Captured> = seen
        .iter()
        .filter(|c| c.kind == "event" && c.target == DEGRADED_TARGET)
        .collect();
    assert!(warnings.iter().all(|w| w.level == tracing::Level::WARN));
    let fail_open = warnings
        .iter()
        .filter(|w| w.fields.get("policy").map(String::as_str) == Some("failed_open"))
        .count();
    assert_eq!(fail_open, 3, "{warnings:?}");
    assert!(
        warnings
            .iter()
            .any(|w| w.fields.get("state").map(String::as_str) == Some("open")),
        "the breaker opening is a warning: {warnings:?}"
    );
    assert_eq!(
        metric(&metrics, names::BREAKER_TRANSITIONS, &[("state", "open")]),
        1.0
    );
    assert_eq!(
        metric(
            &metrics,
            names::DEGRADED,
            &[
                ("policy", "failed_open"),
                ("operation", "rate_limit.consume")
            ]
        ),
        3.0
    );
    assert_eq!(
        metric(
            &metrics,
            names::RATE_LIMIT_DECISIONS,
            &[("outcome", "allowed"), ("source", "failed_open")]
        ),
        3.0
    );
}

/// Many failures in an outage are one loss and one reconnect, warned and counted; a
/// second outage counts again; `up` without a loss emits nothing.
#[test]
fn a_lost_connection_and_its_reconnect_are_loud_once_per_outage() {
    let (seen, metrics) = observe(|| async {
        let link = LinkMonitor::new("redis://cache.internal:6380/3");
        link.up();
        for _outage in 0..2 {
            for _ in 0..5 {
                link.lost(&"cannot reach redis://cache.internal:6380/3: connection refused");
            }
            assert!(link.is_lost());
            link.up();
            link.up();
            assert!(!link.is_lost());
        }
    });
    let states: Vec<&str> = seen
        .iter()
        .filter(|c| c.kind == "event" && c.target == DEGRADED_TARGET)
        .filter_map(|c| c.fields.get("state").map(String::as_str))
        .collect();
    assert_eq!(states, ["lost", "reconnected", "lost", "reconnected"]);
    let lost = seen
        .iter()
        .find(|c| c.fields.get("state").map(String::as_str) == Some("lost"))
        .unwrap();
    assert_eq!(lost.level, tracing::Level::WARN);
    assert_eq!(lost.fields["server"], "redis://cache.internal:6380/3");
    assert!(lost.fields["error"].contains("connection refused"));
    assert_eq!(metric(&metrics, names::CONNECTION_LOST, &[]), 2.0);
    assert_eq!(metric(&metrics, names::RECONNECTS, &[]), 2.0);
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]
    /// Whatever keys, values, tokens, user ids and bucket names flow through the stores
    /// and the command layer, none of them appears in a span, an event or a label.
    #[test]
    fn no_secret_reaches_a_span_an_event_or_a_label(
        key in "[a-zA-Z0-9]{12,24}",
        value in "[a-zA-Z0-9]{12,24}",
        token in "[a-zA-Z0-9]{16,32}",
        user in "[a-zA-Z0-9]{12,24}",
        bucket in "[a-zA-Z0-9]{12,24}",
    ) {
        let secrets = [key.clone(), value.clone(), token.clone(), user.clone(), bucket.clone()];
        let (seen, metrics) = observe(|| async {
            let (storage, limiter, sessions, lock) = memory_stores();
            storage.set(&key, value.clone().into(), None).await.unwrap();
            storage.get(&key).await.unwrap();
            storage.compare_and_set(&key, Some(value.as_bytes()), value.clone().into(), None).await.unwrap();
            storage.take(&key).await.unwrap();
            let rule = RateLimitRule::new(Duration::from_secs(60), 1).unwrap();
            limiter.consume(&bucket, &rule, 1).await.unwrap();
            limiter.consume(&bucket, &rule, 1).await.unwrap();
            let later = SystemTime::now() + Duration::from_secs(60);
            sessions.create(&user, &token, value.clone().into(), later).await.unwrap();
            sessions.get(&token).await.unwrap();
            sessions.list(&user).await.unwrap();
            sessions.revoke_all_except(&user, &token).await.unwrap();
            let _ = lock.acquire(&key, Duration::from_secs(1)).await.unwrap();
            // The command layer over a server that echoes what it is sent.
            let echo = Arc::new(Stub(|c: &Command| {
                Ok(Reply::Data(c.args().first().cloned().unwrap_or_default()))
            }));
            let conn: Arc<dyn Connection> = Arc::new(ObservedConnection::new(echo, &address()));
            let server = ServerStorage::new(conn, StorageOptions::default());
            let _ = server.get(&key).await;
            let _ = server.set(&key, value.clone().into(), None).await;
            let _ = server.delete_many(&[key.as_str(), value.as_str()]).await;
        });
        let text = format!("{seen:?} {metrics:?}");
        for secret in &secrets {
            proptest::prop_assert!(!text.contains(secret.as_str()), "{secret:?} leaked");
        }
    }
}
