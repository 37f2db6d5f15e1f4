//! The fault matrix: each fault applied under a bounded concurrent workload, then
//! cleared, on one backend. Per cell it asserts the slowest call against the command
//! timeout, the error kinds seen, that a fail-open limiter never errs, that its breaker
//! opened and closed, that no consume was applied twice, and it records the time from the
//! fault clearing to the first success. Also the connect-time cases: the connect timeout
//! kept on a hung server, errors that say where, and connections released on drop and
//! `close()`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kv_contract::breaker::{BreakerOptions, CircuitBreaker};
use kv_contract::lock::Acquisition;
use kv_contract::rate_limit::{
    DecisionSource, RateLimitRule, RateLimiter, RateLimiterOptions, ServerRateLimiter,
};
use kv_contract::{
    ConnectionOptions, ErrorKind, Lock, LockOptions, SecondaryStorage, ServerLock,
    ServerSessionIndex, ServerStorage, SessionIndex, SessionIndexOptions,
};

use super::connection::{options, start, store};
use crate::context::{unique_prefix, BackendKind};
use crate::fault::{Fault, FaultProxy};
use crate::probe::Probe;
use crate::report;
use crate::server::{RedisServer, ServerConfig};

/// The command timeout of the matrix.
const TIMEOUT: Duration = Duration::from_millis(300);
/// How far past the timeout a call may return (scheduling on a loaded 2-core machine).
const SLACK: Duration = Duration::from_millis(50);
/// Tasks in the workload.
const TASKS: usize = 16;
/// How long the fault stays on.
const FAULT_FOR: Duration = Duration::from_millis(1500);

/// The stores the workload drives, all on the one connection.
struct Stores {
    storage: ServerStorage,
    limiter: ServerRateLimiter,
    lock: ServerLock,
    sessions: ServerSessionIndex,
}

/// What a workload saw.
#[derive(Debug, Default)]
struct Seen {
    slowest: Duration,
    kinds: BTreeMap<String, u64>,
    /// The first error of each kind, for the failure message.
    first: BTreeMap<String, String>,
    calls: u64,
    limiter_errors: Vec<String>,
}

/// The fault of one cell.
#[derive(Debug, Clone, Copy)]
enum Cell {
    Net(Fault),
    /// The connection is reset, then the network black-holes (a reconnect that hangs).
    ResetThenBlackHole,
    Stop,
    Restart,
    ClientKillStorm,
    ScriptFlush,
    Oom,
}

impl Cell {
    fn name(self) -> String {
        match self {
            Cell::Net(f) => f.name(),
            Cell::ResetThenBlackHole => "reset, then black hole".into(),
            Cell::Stop => "SIGSTOP".into(),
            Cell::Restart => "SIGKILL + restart".into(),
            Cell::ClientKillStorm => "CLIENT KILL storm".into(),
            Cell::ScriptFlush => "SCRIPT FLUSH".into(),
            Cell::Oom => "OOM (maxmemory, noeviction)".into(),
        }
    }

    /// Whether every call may fail for the whole fault (the breaker must open).
    fn is_outage(self) -> bool {
        matches!(
            self,
            Cell::Net(Fault::Reset | Fault::BlackHole)
                | Cell::ResetThenBlackHole
                | Cell::Stop
                | Cell::Restart
        )
    }

    /// Whether calls must all succeed through it.
    fn is_harmless(self) -> bool {
        matches!(self, Cell::Net(Fault::Latency(_)) | Cell::ScriptFlush)
    }
}

const CELLS: [Cell; 10] = [
    Cell::Net(Fault::Reset),
    Cell::Net(Fault::BlackHole),
    Cell::ResetThenBlackHole,
    // Per chunk and direction, chunks of one direction in series: a call waits about
    // twice this each way under load, still well inside the timeout.
    Cell::Net(Fault::Latency(Duration::from_millis(50))),
    Cell::Net(Fault::CutReply),
    Cell::Stop,
    Cell::Restart,
    Cell::ClientKillStorm,
    Cell::ScriptFlush,
    Cell::Oom,
];

/// Every fault of the matrix (reset, black hole, latency, cut reply, SIGSTOP, restart,
/// `CLIENT KILL` storm, `SCRIPT FLUSH`, OOM) on `kind`, one after the other on one
/// connection (through a [`FaultProxy`]) that is never recreated.
pub async fn fault_matrix(kind: BackendKind) {
    let mut server = Some(start(ServerConfig::default()).await);
    let port = server.as_ref().unwrap().port();
    let proxy = FaultProxy::start(port).await.expect("proxy");
    let conn = kind.connect(&options(&proxy.url(), TIMEOUT)).await.unwrap();
    let storage = store(conn.clone(), "faults");
    let breaker = CircuitBreaker::new(
        BreakerOptions::builder()
            .failure_threshold(3)
            .cool_down(Duration::from_millis(200))
            .build()
            .unwrap(),
    );
    let limiter = ServerRateLimiter::new(
        conn.clone(),
        RateLimiterOptions::builder()
            .prefix(unique_prefix("faults-rl"))
            .fail_open()
            .circuit_breaker(breaker.clone())
            .build()
            .unwrap(),
    );
    let lock = ServerLock::new(
        conn.clone(),
        LockOptions::builder()
            .prefix(unique_prefix("faults-mutex"))
            .build()
            .unwrap(),
    );
    let sessions = ServerSessionIndex::new(
        conn.clone(),
        SessionIndexOptions::builder()
            .prefix(unique_prefix("faults-sessions"))
            .build()
            .unwrap(),
    );
    let stores = Arc::new(Stores {
        storage,
        limiter,
        lock,
        sessions,
    });
    let rule = RateLimitRule::from_secs(600, 1_000_000).unwrap();
    let direct = format!("redis://127.0.0.1:{port}");
    let mut failures = Vec::new();
    for (n, cell) in CELLS.into_iter().enumerate() {
        let bucket = format!("cell-{n}");
        let attempted = Arc::new(AtomicU64::new(0));
        let acked = Arc::new(AtomicU64::new(0));
        let before = breaker.stats();
        let seen = Arc::new(Mutex::new(Seen::default()));
        let deadline = Instant::now() + FAULT_FOR;
        let load = workload(
            stores.clone(),
            rule,
            bucket.clone(),
            deadline,
            seen.clone(),
            attempted.clone(),
            acked.clone(),
        );
        let apply = async {
            tokio::time::sleep(Duration::from_millis(100)).await;
            match cell {
                Cell::Net(f) => proxy.set(f),
                Cell::ResetThenBlackHole => {
                    proxy.set(Fault::Reset);
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    proxy.set(Fault::BlackHole);
                }
                Cell::Stop => server.as_ref().unwrap().signal("STOP"),
                Cell::Restart => {
                    let s = server.take().unwrap();
                    let config = tokio::task::spawn_blocking(move || s.kill()).await.unwrap();
                    // Down for over three command timeouts: a sustained outage even when a
                    // loaded machine delays the calls that meet it (a 300 ms gap let fred
                    // buffer every call across the restart once in ~15 loaded runs).
                    tokio::time::sleep(Duration::from_millis(1000)).await;
                    server = Some(start(config).await);
                }
                Cell::ClientKillStorm => {
                    let probe = Probe::connect(&direct).await;
                    for _ in 0..40 {
                        let _: redis::Value = probe
                            .command(redis::cmd("CLIENT").arg("KILL").arg("TYPE").arg("normal"))
                            .await;
                        tokio::time::sleep(Duration::from_millis(15)).await;
                    }
                }
                Cell::ScriptFlush => {
                    let probe = Probe::connect(&direct).await;
                    for _ in 0..10 {
                        probe.script_flush().await;
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
                Cell::Oom => {
                    let probe = Probe::connect(&direct).await;
                    let _: () = probe
                        .command(
                            redis::cmd("CONFIG")
                                .arg("SET")
                                .arg("maxmemory-policy")
                                .arg("noeviction"),
                        )
                        .await;
                    let _: () = probe
                        .command(redis::cmd("CONFIG").arg("SET").arg("maxmemory").arg("1"))
                        .await;
                }
            }
            tokio::time::sleep_until(deadline.into()).await;
            // Clear the fault.
            match cell {
                Cell::Net(_) | Cell::ResetThenBlackHole => proxy.set(Fault::Pass),
                Cell::Stop => server.as_ref().unwrap().signal("CONT"),
                Cell::Oom => {
                    let probe = Probe::connect(&direct).await;
                    let _: () = probe
                        .command(redis::cmd("CONFIG").arg("SET").arg("maxmemory").arg("0"))
                        .await;
                }
                _ => {}
            }
        };
        tokio::join!(load, apply);
        let recovery = first_success(&stores, &rule).await;
        let seen = std::mem::take(&mut *seen.lock().unwrap());
        let after = breaker.stats();
        let used = {
            let d = stores.limiter.peek(&bucket, &rule).await.unwrap();
            assert_eq!(
                d.source,
                DecisionSource::Store,
                "peek after recovery: {d:?}"
            );
            d.limit - d.remaining
        };
        let (attempted, acked) = (
            attempted.load(Ordering::SeqCst),
            acked.load(Ordering::SeqCst),
        );
        let kinds: Vec<String> = seen.kinds.iter().map(|(k, n)| format!("{k}×{n}")).collect();
        let line = format!(
            "fault {:<28} [{}]: {} calls, slowest {} ms, errors {}, breaker opened {} closed {}, \
             consumes acked {acked}, applied {used}, sent {attempted}, first success {} after clearing",
            cell.name(),
            kind.name(),
            seen.calls,
            seen.slowest.as_millis(),
            if kinds.is_empty() { "none".into() } else { kinds.join(" ") },
            after.opened - before.opened,
            after.closed - before.closed,
            match recovery {
                Some(d) => format!("{} ms", d.as_millis()),
                None => "NEVER (10 s)".into(),
            },
        );
        report::metric(line.clone());
        let mut problems = Vec::new();
        if seen.slowest > TIMEOUT + SLACK {
            problems.push(format!(
                "slowest call {:?} > {:?}",
                seen.slowest,
                TIMEOUT + SLACK
            ));
        }
        let allowed_kinds: &[&str] = match cell {
            _ if cell.is_harmless() => &[],
            Cell::Oom => &["server error", "script error"],
            _ => &["server unavailable", "timeout"],
        };
        for k in seen.kinds.keys() {
            if !allowed_kinds.contains(&k.as_str()) {
                problems.push(format!(
                    "error kind {k} (allowed: {allowed_kinds:?}), first: {}",
                    seen.first[k]
                ));
            }
        }
        if !matches!(cell, Cell::Oom) && !seen.limiter_errors.is_empty() {
            problems.push(format!(
                "fail-open limiter returned {} errors, first: {}",
                seen.limiter_errors.len(),
                seen.limiter_errors[0]
            ));
        }
        if cell.is_outage() && (after.opened == before.opened || after.closed == before.closed) {
            problems.push(format!(
                "the breaker did not open and close (before {before:?}, after {after:?})"
            ));
        }
        // A restart of a server without persistence loses the counter: only "never more
        // than sent" holds there.
        let lost_by_design = matches!(cell, Cell::Restart);
        if used > attempted || (!lost_by_design && acked > used) {
            problems.push(format!(
                "consumes: acked {acked}, applied {used}, sent {attempted}"
            ));
        }
        if recovery.is_none() {
            problems.push("no success within 10 s of clearing".into());
        }
        if !problems.is_empty() {
            failures.push(format!("{}: {}", cell.name(), problems.join("; ")));
        }
    }
    drop(server);
    assert!(
        failures.is_empty(),
        "fault matrix [{}]:\n{}",
        kind.name(),
        failures.join("\n")
    );
}

/// `TASKS` tasks until `deadline`, each writing, reading, consuming, taking a lock and
/// listing a user's sessions in a loop.
async fn workload(
    stores: Arc<Stores>,
    rule: RateLimitRule,
    bucket: String,
    deadline: Instant,
    seen: Arc<Mutex<Seen>>,
    attempted: Arc<AtomicU64>,
    acked: Arc<AtomicU64>,
) {
    let mut tasks = tokio::task::JoinSet::new();
    for t in 0..TASKS {
        let (stores, seen) = (stores.clone(), seen.clone());
        let (attempted, acked, bucket) = (attempted.clone(), acked.clone(), bucket.clone());
        tasks.spawn(async move {
            let key = format!("k{t}");
            let note = |took: Duration, e: Option<&kv_contract::KvError>| {
                let mut s = seen.lock().unwrap();
                s.calls += 1;
                s.slowest = s.slowest.max(took);
                if let Some(e) = e {
                    *s.kinds.entry(e.kind().to_string()).or_default() += 1;
                    s.first
                        .entry(e.kind().to_string())
                        .or_insert_with(|| format!("{e:?}"));
                }
            };
            while Instant::now() < deadline {
                let Stores {
                    storage,
                    limiter,
                    lock,
                    sessions,
                } = &*stores;
                let started = Instant::now();
                let r = storage
                    .set(&key, "v".into(), Some(Duration::from_secs(60)))
                    .await;
                note(started.elapsed(), r.as_ref().err());
                let started = Instant::now();
                let r = storage.get(&key).await;
                note(started.elapsed(), r.as_ref().err());
                let started = Instant::now();
                attempted.fetch_add(1, Ordering::SeqCst);
                let r = limiter.consume(&bucket, &rule, 1).await;
                note(started.elapsed(), r.as_ref().err());
                // Only decisions the store counted are acknowledged; a fail-open answer
                // counts nothing (though its call may have reached the server).
                match r {
                    Ok(d) if d.source == DecisionSource::Store => {
                        acked.fetch_add(1, Ordering::SeqCst);
                    }
                    Ok(_) => {}
                    Err(e) => seen.lock().unwrap().limiter_errors.push(e.to_string()),
                }
                let started = Instant::now();
                let r = lock.acquire(&key, Duration::from_secs(5)).await;
                note(started.elapsed(), r.as_ref().err());
                if let Ok(Acquisition::Acquired(guard)) = r {
                    let started = Instant::now();
                    let r = lock.release(&guard).await;
                    note(started.elapsed(), r.as_ref().err());
                }
                let started = Instant::now();
                let r = sessions.list(&key).await;
                note(started.elapsed(), r.as_ref().err());
            }
        });
    }
    while tasks.join_next().await.is_some() {}
}

/// Time until a read and a counted consume both succeed again (10 s at most).
async fn first_success(stores: &Stores, rule: &RateLimitRule) -> Option<Duration> {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(10) {
        if stores.storage.get("probe").await.is_ok() {
            if let Ok(d) = stores.limiter.consume("recovery", rule, 1).await {
                if d.source == DecisionSource::Store {
                    return Some(started.elapsed());
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    None
}

/// A connect to a server that accepts TCP but never answers returns within the connect
/// timeout (plus scheduling), as a timeout naming the server.
pub async fn connect_timeout_is_kept_on_a_hung_server(kind: BackendKind) {
    let server = start(ServerConfig::default()).await;
    server.signal("STOP");
    let connect_timeout = Duration::from_secs(1);
    // The default command timeout (2 s), longer than the connect timeout: the version
    // check run at connect must not get its own budget.
    let options = ConnectionOptions::builder(server.url())
        .connect_timeout(connect_timeout)
        .build()
        .unwrap();
    let started = Instant::now();
    let result = kind.connect(&options).await;
    let took = started.elapsed();
    server.signal("CONT");
    let e = result.expect_err("a stopped server cannot complete a connect");
    assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
    assert!(e.message().contains(&server.port().to_string()), "{e}");
    report::metric(format!(
        "connect_timeout_is_kept_on_a_hung_server [{}]: 1 s connect timeout returned after {} ms",
        kind.name(),
        took.as_millis()
    ));
    assert!(
        took <= connect_timeout + SLACK,
        "connect took {took:?} for a 1 s timeout"
    );
}

/// NOAUTH, WRONGPASS and a database out of range name the server and the database, and
/// never the password.
pub async fn connect_errors_say_where(kind: BackendKind) {
    let password = "s3cret/pw+x";
    let server = start(ServerConfig {
        password: Some(password.into()),
        ..ServerConfig::default()
    })
    .await;
    let port = server.port();
    let place = format!("127.0.0.1:{port}");
    let cases = [
        (
            format!("redis://127.0.0.1:{port}/2"),
            "database 2",
            "uthentication required",
        ),
        (
            format!("redis://:wrong-pass@127.0.0.1:{port}/0"),
            "database 0",
            "WRONGPASS|authentication failed",
        ),
        (
            format!("redis://:s3cret%2Fpw%2Bx@127.0.0.1:{port}/200"),
            "database 200",
            "out of range",
        ),
    ];
    for (url, database, why) in cases {
        let e = kind
            .connect(&options(&url, TIMEOUT))
            .await
            .expect_err("this connect must fail");
        let text = format!("{e} {e:?}");
        assert!(text.contains(&place), "{e} does not name {place}");
        assert!(text.contains(database), "{e} does not name {database}");
        assert!(
            why.split('|').any(|w| text.contains(w)),
            "{e} does not say {why}"
        );
        assert!(
            !text.contains(password) && !text.contains("wrong-pass"),
            "{e:?}"
        );
    }
}

/// Connected clients of `server`, from `INFO clients`, minus the probe itself.
async fn clients(server: &RedisServer) -> u64 {
    let probe = Probe::connect(&server.url()).await;
    let info: String = probe.command(redis::cmd("INFO").arg("clients")).await;
    let n: u64 = info
        .lines()
        .find_map(|l| l.strip_prefix("connected_clients:"))
        .and_then(|n| n.trim().parse().ok())
        .expect("connected_clients in INFO");
    n - 1
}

async fn clients_become(server: &RedisServer, want: u64) -> u64 {
    let started = Instant::now();
    loop {
        let n = clients(server).await;
        if n == want || started.elapsed() > Duration::from_secs(3) {
            return n;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Dropping the last handle closes the connection for good (even across a server
/// restart), and `close()` closes it for every clone, after which calls are
/// `Unavailable`.
pub async fn connections_close_on_drop_and_close(kind: BackendKind) {
    let server = start(ServerConfig::default()).await;
    let url = server.url();
    let conn = kind.connect(&options(&url, TIMEOUT)).await.unwrap();
    let s = store(conn.clone(), "close");
    s.set("k", "v".into(), None).await.unwrap();
    assert!(clients(&server).await >= 1, "the connection is listed");
    drop(s);
    drop(conn);
    let left = clients_become(&server, 0).await;
    assert_eq!(
        left, 0,
        "a dropped connection still has {left} client(s) on the server"
    );
    let config = tokio::task::spawn_blocking(move || server.kill())
        .await
        .unwrap();
    let server = start(config).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        clients(&server).await,
        0,
        "a dropped connection reconnected after a restart"
    );

    let conn = kind.connect(&options(&url, TIMEOUT)).await.unwrap();
    let s = store(conn.clone(), "close");
    s.set("k", "v".into(), None).await.unwrap();
    conn.close().await.unwrap();
    conn.close().await.unwrap();
    let e = s.get("k").await.expect_err("a closed connection");
    assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}");
    assert!(e.message().contains("close()"), "{e}");
    let left = clients_become(&server, 0).await;
    assert_eq!(
        left, 0,
        "a closed connection still has {left} client(s) on the server"
    );
}
