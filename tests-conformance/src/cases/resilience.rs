//! Timeouts, reconnect and the circuit breaker composed, per server backend, on servers
//! the case stops (SIGSTOP) or kills itself: every call returns within the configured
//! timeout, the breaker opens, and once the server is back it closes and calls succeed on
//! the same client, never rebuilt. The recovery times go to the report.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kv_contract::breaker::{is_circuit_open, BreakerState};
use kv_contract::lock::{LockOptions, ReleaseOutcome};
use kv_contract::{
    BreakerOptions, CircuitBreaker, ErrorKind, KvResult, Lock, MemoryStorage, OnUnavailable,
    ResilientLock, ResilientStorage, SecondaryStorage, ServerLock, SharedConnection,
};

use super::connection::{options, start, store};
use crate::context::{unique_prefix, BackendKind};
use crate::report;
use crate::server::ServerConfig;

const COMMAND_TIMEOUT: Duration = Duration::from_millis(300);
const COOL_DOWN: Duration = Duration::from_millis(200);
const THRESHOLD: u32 = 3;
/// Scheduling slack on a shared 2-core machine, on top of the timeout.
const SLACK: Duration = Duration::from_millis(700);

/// The stores of one deployment, all behind one breaker.
struct Deployment {
    breaker: CircuitBreaker,
    /// Direct, no breaker: shows when the connection itself is back.
    raw: Arc<dyn SecondaryStorage>,
    fail: ResilientStorage,
    skip: ResilientStorage,
    fallback: ResilientStorage,
    lock: ResilientLock,
}

fn deployment(conn: SharedConnection, case: &str) -> Deployment {
    let breaker = CircuitBreaker::new(
        BreakerOptions::builder()
            .failure_threshold(THRESHOLD)
            .cool_down(COOL_DOWN)
            .build()
            .unwrap(),
    );
    let raw: Arc<dyn SecondaryStorage> = Arc::new(store(conn.clone(), case));
    let wrap = |policy| ResilientStorage::new(raw.clone(), breaker.clone(), policy);
    let lock_options = LockOptions::builder()
        .prefix(unique_prefix(case))
        .build()
        .unwrap();
    Deployment {
        fail: wrap(OnUnavailable::Fail),
        skip: wrap(OnUnavailable::Skip),
        fallback: wrap(OnUnavailable::Fallback(Arc::new(MemoryStorage::new()))),
        lock: ResilientLock::new(
            Arc::new(ServerLock::new(conn, lock_options)),
            breaker.clone(),
            OnUnavailable::Fail,
        ),
        breaker,
        raw,
    }
}

/// Awaits `call`, asserting it returned within the command timeout (plus slack).
async fn timed<T>(what: &str, call: impl Future<Output = T>) -> (T, Duration) {
    let started = Instant::now();
    let out = call.await;
    let took = started.elapsed();
    assert!(
        took <= COMMAND_TIMEOUT + SLACK,
        "{what} took {took:?}; the command timeout is {COMMAND_TIMEOUT:?}"
    );
    (out, took)
}

/// Drives the breaker open with calls that each return within the timeout, then checks
/// every policy answers at once without calling the server. The slowest call to the down
/// server.
async fn trip(d: &Deployment, down_kind: &[ErrorKind]) -> Duration {
    let mut slowest = Duration::ZERO;
    for i in 0..THRESHOLD {
        let (r, took) = timed("a call to a down server", d.fail.get("k")).await;
        slowest = slowest.max(took);
        let e = r.expect_err("the server is down");
        assert!(down_kind.contains(&e.kind()), "call {i}: {e}");
        assert!(!is_circuit_open(&e), "call {i} reached the client: {e}");
    }
    assert_eq!(d.breaker.state(), BreakerState::Open);
    let (r, took) = timed("fail while open", d.fail.get("k")).await;
    assert!(is_circuit_open(&r.unwrap_err()));
    assert!(
        took < Duration::from_millis(100),
        "open: no I/O, took {took:?}"
    );
    assert_eq!(timed("skip", d.skip.get("k")).await.0.unwrap(), None);
    timed("fallback set", d.fallback.set("k", "mem".into(), None))
        .await
        .0
        .unwrap();
    let (got, _) = timed("fallback get", d.fallback.get("k")).await;
    assert_eq!(got.unwrap().as_deref(), Some(&b"mem"[..]));
    let (r, _) = timed("lock", d.lock.acquire("job", Duration::from_secs(5))).await;
    assert!(is_circuit_open(&r.unwrap_err()));
    let s = d.breaker.stats();
    assert_eq!(
        (s.opened, s.failures, s.closed),
        (1, u64::from(THRESHOLD), 0),
        "{s:?}"
    );
    assert_eq!((s.skipped, s.fallbacks), (1, 2), "{s:?}");
    assert!(s.rejected >= 5, "{s:?}");
    slowest
}

/// Polls until `probe` succeeds (each attempt within the timeout); the elapsed time.
async fn until_ok<T, F, Fut>(what: &str, limit: Duration, mut probe: F) -> (T, Duration)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = KvResult<T>>,
{
    let started = Instant::now();
    loop {
        if let Ok(v) = timed(what, probe()).await.0 {
            return (v, started.elapsed());
        }
        assert!(
            started.elapsed() < limit,
            "{what}: no success within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// After recovery: the breaker is closed, every wrapper reaches the server again.
async fn assert_recovered(d: &Deployment, opened: u64) {
    let s = d.breaker.stats();
    assert_eq!(s.state, BreakerState::Closed, "{s:?}");
    assert_eq!((s.opened, s.closed), (opened, 1), "{s:?}");
    d.skip.set("k2", "v2".into(), None).await.unwrap();
    assert_eq!(
        d.raw.get("k2").await.unwrap().as_deref(),
        Some(&b"v2"[..]),
        "writes reach the server again"
    );
    let guard = d
        .lock
        .acquire("job", Duration::from_secs(5))
        .await
        .unwrap()
        .into_guard()
        .expect("free");
    assert_eq!(
        d.lock.release(&guard).await.unwrap(),
        ReleaseOutcome::Released
    );
}

/// SIGSTOP: calls time out within the command timeout, the breaker opens, a probe after
/// the cool-down fails and reopens it; after SIGCONT it closes and the same client
/// serves calls (the data written before is still there).
pub async fn breaker_opens_on_a_hung_server_and_recovers(kind: BackendKind) {
    let server = start(ServerConfig::default()).await;
    let conn = kind
        .connect(&options(&server.url(), COMMAND_TIMEOUT))
        .await
        .unwrap();
    let d = deployment(conn, "hung");
    d.fail.set("k", "v".into(), None).await.unwrap();
    server.signal("STOP");
    let slowest = trip(&d, &[ErrorKind::Timeout]).await;
    tokio::time::sleep(COOL_DOWN).await;
    let (r, _) = timed("the half-open probe", d.fail.get("k")).await;
    assert_eq!(
        r.unwrap_err().kind(),
        ErrorKind::Timeout,
        "the probe reached the server"
    );
    assert_eq!(
        d.breaker.state(),
        BreakerState::Open,
        "a failed probe reopens"
    );
    assert_eq!(d.breaker.stats().opened, 2);
    server.signal("CONT");
    let resumed = Instant::now();
    let (raw, raw_after) = until_ok("raw get", Duration::from_secs(10), || d.raw.get("k")).await;
    let (got, _) = until_ok("get through the breaker", Duration::from_secs(10), || {
        d.fail.get("k")
    })
    .await;
    let wrapped_after = resumed.elapsed();
    assert_eq!(raw.as_deref(), Some(&b"v"[..]));
    assert_eq!(got.as_deref(), Some(&b"v"[..]), "the server kept its data");
    assert_recovered(&d, 2).await;
    report::metric(format!(
        "breaker_opens_on_a_hung_server_and_recovers [{}]: slowest call while stopped {} ms \
         (timeout {} ms); SIGCONT -> first successful call {} ms on the raw connection, {} ms \
         through the breaker (cool-down {} ms)",
        kind.name(),
        slowest.as_millis(),
        COMMAND_TIMEOUT.as_millis(),
        raw_after.as_millis(),
        wrapped_after.as_millis(),
        COOL_DOWN.as_millis()
    ));
}

/// Killed: calls fail within the timeout, the breaker opens; after a restart on the same
/// port the breaker closes and the same client serves calls. Records the time from the
/// restarted server answering PING to the first successful call, on the raw connection
/// and through the breaker.
pub async fn breaker_recovers_after_restart(kind: BackendKind) {
    let server = start(ServerConfig::default()).await;
    let conn = kind
        .connect(&options(&server.url(), COMMAND_TIMEOUT))
        .await
        .unwrap();
    let d = deployment(conn, "restart");
    d.fail.set("k", "v".into(), None).await.unwrap();
    let config = tokio::task::spawn_blocking(move || server.kill())
        .await
        .unwrap();
    let slowest = trip(&d, &[ErrorKind::Unavailable, ErrorKind::Timeout]).await;
    let server = start(config).await;
    let restarted = Instant::now();
    let (raw, raw_after) = until_ok("raw get", Duration::from_secs(15), || d.raw.get("k")).await;
    let (got, _) = until_ok("get through the breaker", Duration::from_secs(15), || {
        d.fail.get("k")
    })
    .await;
    let wrapped_after = restarted.elapsed();
    assert_eq!(
        raw, None,
        "the restarted server is empty (snapshots are off)"
    );
    assert_eq!(got, None);
    assert_recovered(&d, d.breaker.stats().opened).await;
    drop(server);
    report::metric(format!(
        "breaker_recovers_after_restart [{}]: slowest call while killed {} ms (timeout {} \
         ms); restarted server answering PING -> first successful call {} ms on the raw \
         connection, {} ms through the breaker (cool-down {} ms)",
        kind.name(),
        slowest.as_millis(),
        COMMAND_TIMEOUT.as_millis(),
        raw_after.as_millis(),
        wrapped_after.as_millis(),
        COOL_DOWN.as_millis()
    ));
}
