//! Many callers on one connection at once: every caller gets its own reply and its own
//! error, and a caller that gives up does not take the others' commands with it. These
//! hold for every backend; they are what write coalescing (`redis-coalesced`) must keep.

use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use kv_contract::{Command, Connection, ErrorKind, Reply, SharedConnection};

use crate::cases::connection::{options, start};
use crate::context::BackendKind;
use crate::server::ServerConfig;

const TASKS: usize = 64;
const ROUNDS: usize = 40;

async fn connect(kind: BackendKind, url: &str) -> SharedConnection {
    kind.connect(&options(url, Duration::from_secs(5)))
        .await
        .unwrap_or_else(|e| panic!("{} cannot connect to {url}: {e}", kind.name()))
}

fn data(reply: &Reply) -> Option<&[u8]> {
    match reply {
        Reply::Data(b) => Some(b),
        _ => None,
    }
}

/// 64 tasks on one connection, 40 rounds each: a `SET` and a `GET` of the task's own
/// key, and every fifth round a command the server refuses (`HSET` on a string). Each
/// `GET` must read the task's own last value, each refusal must reach the task that
/// sent it (`WRONGTYPE`), and no other command may fail. With write coalescing, the
/// server must also have read them in at most one read per 16 commands
/// (`total_reads_processed`).
pub async fn concurrent_callers_get_their_own_replies(kind: BackendKind) {
    let server = start(ServerConfig::default()).await;
    let conn = connect(kind, &server.url()).await;
    let reads_before = reads_processed(&server.url()).await;
    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let conn = conn.clone();
        tasks.push(tokio::spawn(async move {
            let key = format!("concurrency:{t}");
            for round in 0..ROUNDS {
                let value = format!("{t}:{round}");
                let set = conn
                    .execute(Command::new("SET").key(key.clone()).arg(value.clone()))
                    .await
                    .unwrap_or_else(|e| panic!("task {t} round {round}: SET failed: {e}"));
                assert_eq!(set, Reply::Status("OK".into()), "task {t} round {round}");
                if round % 5 == 4 {
                    let e = conn
                        .execute(Command::new("HSET").key(key.clone()).arg("f").arg("v"))
                        .await
                        .expect_err("HSET on a string must fail");
                    assert_eq!(
                        (e.kind(), e.server_code()),
                        (ErrorKind::Server, Some("WRONGTYPE")),
                        "task {t} round {round}: {e}"
                    );
                }
                let got = conn
                    .execute(Command::new("GET").key(key.clone()))
                    .await
                    .unwrap_or_else(|e| panic!("task {t} round {round}: GET failed: {e}"));
                assert_eq!(
                    data(&got),
                    Some(value.as_bytes()),
                    "task {t} round {round} read another caller's reply: {got:?}"
                );
            }
        }));
    }
    for task in tasks {
        task.await.expect("a caller task panicked");
    }
    let reads = reads_processed(&server.url()).await - reads_before;
    let commands = (TASKS * (ROUNDS * 2 + ROUNDS / 5)) as u64;
    eprintln!("{}: {reads} reads for {commands} commands", kind.name());
    if kind == BackendKind::RedisCoalesced {
        // Seen: 214-222 coalesced, 548-655 with the leader's yield removed (plain
        // rustauth-redis: 567-622).
        assert!(
            reads * 16 <= commands,
            "redis-coalesced: the server read {reads} times for {commands} commands from 64 \
             concurrent callers: writes are not being coalesced"
        );
    }
}

/// The server's `total_reads_processed` (`INFO stats`).
async fn reads_processed(url: &str) -> u64 {
    let crate::probe::Probe::Server(mut raw) = crate::probe::Probe::connect(url).await else {
        unreachable!("a server probe")
    };
    let info: String = redis::cmd("INFO")
        .arg("stats")
        .query_async(&mut raw)
        .await
        .expect("INFO stats");
    info.lines()
        .find_map(|l| l.strip_prefix("total_reads_processed:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("INFO stats has total_reads_processed")
}

/// A caller whose command is queued and then dropped (its future polled once, then
/// cancelled) while another command is in flight: the commands other callers queued
/// beside it are still sent and answered, not lost or failed. The connection is held
/// busy by `WAIT 1 300` (no replica: it blocks its connection for 300 ms), so that a
/// coalescing connection is gathering when the cancelled caller arrives.
pub async fn a_cancelled_caller_does_not_lose_the_others(kind: BackendKind) {
    let server = start(ServerConfig::default()).await;
    let conn: Arc<dyn Connection> = connect(kind, &server.url()).await;
    let busy = tokio::spawn({
        let conn = conn.clone();
        async move {
            conn.execute(Command::new("WAIT").arg("1").arg("300"))
                .await
                .map(|_| ())
        }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    // Polled once: queued (a coalescing connection's leader yields here), then dropped
    // below while the others wait behind it.
    let mut cancelled = Box::pin(conn.execute(Command::new("SET").key("cancelled").arg("x")));
    assert!(
        (&mut cancelled).now_or_never().is_none(),
        "{}: a SET answered while WAIT held the connection",
        kind.name()
    );
    let others: Vec<_> = (0..8)
        .map(|i| {
            let conn = conn.clone();
            tokio::spawn(async move {
                conn.execute(Command::new("SET").key(format!("other:{i}")).arg("v"))
                    .await
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(50)).await;
    drop(cancelled);
    for (i, other) in others.into_iter().enumerate() {
        let reply = tokio::time::timeout(Duration::from_secs(3), other)
            .await
            .unwrap_or_else(|_| panic!("{}: caller {i} was never answered", kind.name()))
            .expect("caller task");
        assert_eq!(
            reply.as_ref().ok(),
            Some(&Reply::Status("OK".into())),
            "{}: caller {i} lost its command: {reply:?}",
            kind.name()
        );
    }
    busy.await
        .expect("WAIT task")
        .unwrap_or_else(|e| panic!("{}: WAIT failed: {e}", kind.name()));
    // Nothing is left stuck behind the cancelled caller.
    let reply = conn
        .execute(Command::new("GET").key("other:7"))
        .await
        .unwrap();
    assert_eq!(data(&reply), Some(&b"v"[..]), "{}", kind.name());
}
