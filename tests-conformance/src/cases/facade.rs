//! The `rustauth-kv` facade on a real server: one `Kv` bundle puts every store under one
//! prefix on one connection, reports availability within the command timeout, and
//! `close()` ends every store at once.

use std::time::{Duration, Instant, SystemTime};

use kv_contract::rate_limit::{DecisionSource, RateLimitRule};
use kv_contract::ErrorKind;
use rustauth_kv::{Backend, Kv, KvOptions};

use super::connection::start;
use crate::context::{unique_prefix, BackendKind};
use crate::probe::Probe;
use crate::server::ServerConfig;

const TIMEOUT: Duration = Duration::from_millis(300);
/// Scheduling slack on a loaded 2-core machine.
const SLACK: Duration = Duration::from_millis(150);

fn backend(kind: BackendKind) -> Backend {
    kind.facade_backend()
}

/// Every store of one bundle writes under the bundle's prefix through one connection;
/// `is_available` turns false within the command timeout on a hung server and true
/// again after; `close()` fails every store with `Unavailable` (the limiter fails closed) and is
/// idempotent.
pub async fn bundle_shares_one_connection_and_prefix(kind: BackendKind) {
    let server = start(ServerConfig::default()).await;
    let probe = Probe::connect(&server.url()).await;
    let clients_before = connected_clients(&probe).await;
    let prefix = unique_prefix("bundle");
    let options = KvOptions::builder()
        .url(server.url())
        .backend(backend(kind))
        .prefix(prefix.clone())
        .command_timeout(TIMEOUT)
        .connect_timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let kv = Kv::connect_with(options).await.unwrap();
    assert_eq!(kv.backend(), backend(kind));
    assert_eq!(kv.prefix().as_str(), prefix);
    assert!(
        kv.server()
            .is_some_and(|s| s.contains(&server.port().to_string())),
        "{:?}",
        kv.server()
    );

    kv.storage()
        .set("otp:alice", "123456".into(), None)
        .await
        .unwrap();
    let rule = RateLimitRule::new(Duration::from_secs(60), 5).unwrap();
    assert!(
        kv.rate_limiter()
            .consume("ip|/sign-in", &rule, 1)
            .await
            .unwrap()
            .allowed
    );
    let expires = SystemTime::now() + Duration::from_secs(600);
    kv.sessions()
        .create("alice", "token-1", "{}".into(), expires)
        .await
        .unwrap();
    let held = kv
        .lock()
        .acquire("nightly", Duration::from_secs(60))
        .await
        .unwrap();
    assert!(held.is_acquired());
    let clone = kv.clone();
    assert_eq!(
        clone.storage().get("otp:alice").await.unwrap().as_deref(),
        Some(&b"123456"[..]),
        "a clone shares the stores"
    );

    let keys: Vec<String> = probe
        .keys_with_prefix(prefix.as_bytes())
        .await
        .into_iter()
        .map(|k| String::from_utf8_lossy(&k).into_owned())
        .collect();
    for namespace in [
        "secondary:",
        "rate-limit:",
        "lock:",
        "session:",
        "user_sessions:",
    ] {
        let want = format!("{prefix}{namespace}");
        assert!(
            keys.iter().any(|k| k.starts_with(&want)),
            "no key under {want:?} in {keys:?}"
        );
    }
    let added = connected_clients(&probe).await - clients_before;
    assert_eq!(
        added, 1,
        "the bundle's stores share one connection, saw {added} new clients"
    );

    assert!(kv.is_available().await);
    assert!(kv.health().ping().await.unwrap() < TIMEOUT);
    let info = kv
        .health()
        .server_info()
        .await
        .unwrap()
        .expect("a server has INFO");
    info.check_supported().unwrap();

    server.signal("STOP");
    let started = Instant::now();
    let available = kv.is_available().await;
    let took = started.elapsed();
    server.signal("CONT");
    assert!(!available, "a hung server is not available");
    assert!(
        took <= TIMEOUT + SLACK,
        "is_available waited {took:?}, more than the {TIMEOUT:?} command timeout"
    );
    let recovered = Instant::now();
    while !kv.is_available().await {
        assert!(
            recovered.elapsed() < Duration::from_secs(10),
            "still unavailable 10 s after the server resumed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    kv.close().await.unwrap();
    kv.close().await.unwrap();
    let errors = [
        kv.storage().get("otp:alice").await.map(|_| ()).unwrap_err(),
        kv.sessions().list("alice").await.map(|_| ()).unwrap_err(),
        kv.lock()
            .acquire("other", Duration::from_secs(1))
            .await
            .map(|_| ())
            .unwrap_err(),
    ];
    for e in errors {
        assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}");
    }
    let denied = clone
        .rate_limiter()
        .consume("ip|/sign-in", &rule, 1)
        .await
        .unwrap();
    assert!(
        !denied.allowed && denied.source == DecisionSource::FailedClosed,
        "a closed bundle's limiter fails closed by default: {denied:?}"
    );
    assert!(!kv.is_available().await, "a closed bundle is not available");
}

async fn connected_clients(probe: &Probe) -> i64 {
    let info: String = probe.command(redis::cmd("INFO").arg("clients")).await;
    info.lines()
        .find_map(|l| l.strip_prefix("connected_clients:"))
        .and_then(|n| n.trim().parse().ok())
        .expect("connected_clients in INFO")
}
