//! Same bytes from both backends, on the wire: the server's `MONITOR` records every
//! command each backend sends for one fixed sequence of store operations, and the two
//! recordings must be identical (lock tokens, which are random, masked).
//!
//! This is what lets `rustauth-fred` send its hot commands as fred's typed calls (which
//! fred writes itself) rather than as custom commands built from kv-contract's bytes.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use kv_contract::lock::Acquisition;
use kv_contract::rate_limit::RateLimitRule;
use kv_contract::{
    Lock, LockOptions, RateLimiter, RateLimiterOptions, SecondaryStorage, ServerLock,
    ServerRateLimiter, ServerSessionIndex, ServerStorage, SessionIndex, SessionIndexOptions,
    SharedConnection, StorageOptions,
};
use tests_conformance::server::RedisServer;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// Every store operation that sends a command of its own, once, with fixed inputs.
async fn operations(conn: SharedConnection) {
    let prefix = "wire:";
    let storage = ServerStorage::new(
        conn.clone(),
        StorageOptions::builder().prefix(prefix).build().unwrap(),
    );
    let ttl = Some(Duration::from_millis(60_000));
    let v = |s: &str| kv_contract::Bytes::from(s.to_owned());
    storage.set("plain", v("1"), None).await.unwrap();
    storage.set("ttl", v("2"), ttl).await.unwrap();
    storage
        .set("gone", v("3"), Some(Duration::ZERO))
        .await
        .unwrap();
    storage.set_keep_ttl("ttl", v("4")).await.unwrap();
    assert!(storage.set_if_not_exists("nx", v("5"), ttl).await.unwrap());
    assert!(!storage.set_if_not_exists("nx", v("6"), ttl).await.unwrap());
    assert!(storage
        .set_if_not_exists("nx-forever", v("7"), None)
        .await
        .unwrap());
    assert_eq!(storage.get("plain").await.unwrap(), Some(v("1")));
    assert_eq!(storage.get("missing").await.unwrap(), None);
    assert_eq!(storage.take("nx").await.unwrap(), Some(v("5")));
    storage
        .get_many(&["plain", "ttl", "missing"])
        .await
        .unwrap();
    storage
        .increment("count", Duration::from_secs(60))
        .await
        .unwrap();
    storage
        .compare_and_set("plain", Some(b"1"), v("8"), ttl)
        .await
        .unwrap();
    storage.delete_if_value("plain", b"8").await.unwrap();
    storage.delete("ttl").await.unwrap();
    storage.delete_many(&["nx-forever", "count"]).await.unwrap();

    let limiter = ServerRateLimiter::new(
        conn.clone(),
        RateLimiterOptions::builder()
            .prefix(prefix)
            .build()
            .unwrap(),
    );
    let rule = RateLimitRule::new(Duration::from_secs(60), 5).unwrap();
    limiter.consume("bucket", &rule, 1).await.unwrap();
    limiter.peek("bucket", &rule).await.unwrap();
    limiter.reset("bucket").await.unwrap();

    let sessions = ServerSessionIndex::new(
        conn.clone(),
        SessionIndexOptions::builder()
            .prefix(prefix)
            .build()
            .unwrap(),
    );
    let until = SystemTime::UNIX_EPOCH + Duration::from_secs(4_000_000_000);
    sessions
        .create("user", "token-a", v("s"), until)
        .await
        .unwrap();
    sessions
        .create("user", "token-b", v("s"), until)
        .await
        .unwrap();
    sessions.get("token-a").await.unwrap();
    sessions.refresh("token-a", until, None).await.unwrap();
    sessions.list("user").await.unwrap();
    sessions.delete("token-b").await.unwrap();
    sessions.revoke_all("user").await.unwrap();

    let lock = ServerLock::new(conn, LockOptions::builder().prefix(prefix).build().unwrap());
    let Acquisition::Acquired(guard) = lock.acquire("job", Duration::from_secs(10)).await.unwrap()
    else {
        panic!("a fresh lock is free");
    };
    assert_eq!(
        lock.extend(&guard, Duration::from_secs(20)).await.unwrap(),
        kv_contract::lock::ExtendOutcome::Extended
    );
    assert_eq!(
        lock.release(&guard).await.unwrap(),
        kv_contract::lock::ReleaseOutcome::Released
    );
}

/// A `MONITOR` line of a client's command without its timestamp and client, random lock
/// tokens masked: `"SET" "k" "v"`; `None` for a script's own commands.
fn command_of(line: &str) -> Option<String> {
    let (client, command) = line.split_once("] ")?;
    // Commands a script runs (`[0 lua]`) are the script's, not the backend's, and carry
    // the server's clock.
    if client.ends_with(" lua") {
        return None;
    }
    let masked = command
        .split(' ')
        .map(|arg| {
            let inner = arg.trim_matches('"');
            if inner.len() == 32 && inner.bytes().all(|b| b.is_ascii_hexdigit()) {
                "\"<token>\"".to_owned()
            } else {
                arg.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join(" ");
    Some(masked)
}

/// What `MONITOR` saw between the `ECHO` markers sent around `operations`.
async fn recorded(url: &str, port: u16, conn: SharedConnection, label: &str) -> Vec<String> {
    let mut monitor = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect for MONITOR");
    monitor.write_all(b"MONITOR\r\n").await.unwrap();
    let mut lines = BufReader::new(monitor).lines();
    assert_eq!(lines.next_line().await.unwrap().as_deref(), Some("+OK"));
    let client = redis::Client::open(url).unwrap();
    let mut marker = client.get_multiplexed_async_connection().await.unwrap();
    // The same starting point for each backend: no keys, no cached script (the first
    // EVALSHA of each script meets NOSCRIPT and sends EVAL, for both).
    redis::cmd("FLUSHALL")
        .exec_async(&mut marker)
        .await
        .unwrap();
    redis::cmd("SCRIPT")
        .arg("FLUSH")
        .exec_async(&mut marker)
        .await
        .unwrap();
    let begin = format!("wire-begin-{label}");
    let end = format!("wire-end-{label}");
    let _: String = redis::cmd("ECHO")
        .arg(&begin)
        .query_async(&mut marker)
        .await
        .unwrap();
    // `conn` outlives the end marker: a fred client quits when its last clone drops.
    operations(conn.clone()).await;
    let _: String = redis::cmd("ECHO")
        .arg(&end)
        .query_async(&mut marker)
        .await
        .unwrap();
    drop(conn);
    let mut out = Vec::new();
    let mut inside = false;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let line = tokio::time::timeout_at(deadline, lines.next_line())
            .await
            .unwrap_or_else(|_| panic!("MONITOR did not show the end marker of {label} in 10 s"))
            .unwrap()
            .expect("MONITOR stream open");
        if line.contains(&begin) {
            inside = true;
        } else if line.contains(&end) {
            return out;
        } else if inside {
            out.extend(command_of(&line));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_backends_send_the_same_commands() {
    let server = RedisServer::start().unwrap_or_else(|e| {
        panic!(
            "this test starts its own redis-server and could not: {e}; install one \
             (apt-get install redis-server) or set RUSTAUTH_REDIS_SERVER to its path"
        )
    });
    let options = kv_contract::ConnectionOptions::from_url(&server.url()).unwrap();
    let redis: SharedConnection = Arc::new(
        rustauth_redis::RedisConnection::connect(&options)
            .await
            .unwrap(),
    );
    let fred: SharedConnection = Arc::new(
        rustauth_fred::FredConnection::connect(&options)
            .await
            .unwrap(),
    );
    let by_redis = recorded(&server.url(), server.port(), redis, "redis").await;
    let by_fred = recorded(&server.url(), server.port(), fred, "fred").await;
    // The sequence covers the typed commands and the scripts.
    for expected in [
        "\"GET\"",
        "\"SET\"",
        "\"GETDEL\"",
        "\"HMGET\"",
        "\"DEL\"",
        "\"EVALSHA\"",
    ] {
        assert!(
            by_redis.iter().any(|c| c.starts_with(expected)),
            "no {expected} recorded: {by_redis:#?}"
        );
    }
    assert!(
        by_redis
            .iter()
            .any(|c| c.contains("\"PX\" \"60000\" \"NX\"")),
        "SET ... PX ms NX not recorded: {by_redis:#?}"
    );
    assert_eq!(
        by_redis.len(),
        by_fred.len(),
        "redis-rs {by_redis:#?}\nfred {by_fred:#?}"
    );
    for (i, (r, f)) in by_redis.iter().zip(&by_fred).enumerate() {
        assert_eq!(r, f, "command {i} differs (redis-rs, then fred)");
    }
}
