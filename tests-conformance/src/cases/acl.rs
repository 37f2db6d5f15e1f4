//! The least-privilege ACL of `kv_contract::acl` on a real server: a user created with
//! `app_user_rule(prefix)` can use every store under its prefix, and the server refuses
//! it any key outside the prefix and every command outside the list — proof that the
//! crates touch nothing else. (Every storage case also runs as such a user: see
//! `context::app_url`.)

use std::time::{Duration, SystemTime};

use kv_contract::lock::ReleaseOutcome;
use kv_contract::rate_limit::RateLimitRule;
use kv_contract::{
    acl, Command, ErrorKind, KvError, Prefix, ServerHealth, ServerLock, ServerRateLimiter,
    ServerSessionIndex, ServerStorage,
};
use kv_contract::{Lock, SharedConnection};
use kv_contract::{
    LockOptions, RateLimiter, RateLimiterOptions, SecondaryStorage, SessionIndex,
    SessionIndexOptions, StorageOptions,
};

use super::connection::{options, start};
use crate::context::BackendKind;
use crate::probe::Probe;
use crate::server::ServerConfig;

const PREFIX: &str = "acl-app:";

/// Every store works for a user with exactly the documented rule; keys outside the
/// prefix, `INFO`, `FLUSHDB` and `KEYS` are refused with `NOPERM`; no granted command is
/// in the server's `@dangerous` category.
pub async fn acl_user_is_confined_to_its_prefix(kind: BackendKind) {
    let server = start(ServerConfig::default()).await;
    let probe = Probe::connect(&server.url()).await;
    let prefix = Prefix::new(PREFIX).unwrap();
    let mut setuser = redis::cmd("ACL");
    setuser
        .arg("SETUSER")
        .arg("app")
        .arg("reset")
        .arg(">app-secret");
    for rule in acl::app_user_rule(&prefix) {
        setuser.arg(rule);
    }
    let _: () = probe.command(&setuser).await;
    let dangerous: Vec<String> = probe
        .command(redis::cmd("ACL").arg("CAT").arg("dangerous"))
        .await;
    for c in acl::commands() {
        let base = c.split('|').next().unwrap_or(c);
        assert!(
            !dangerous.iter().any(|d| d == base),
            "{c} is @dangerous on this server"
        );
    }

    let url = format!("redis://app:app-secret@127.0.0.1:{}", server.port());
    let conn: SharedConnection = kind
        .connect(&options(&url, Duration::from_secs(2)))
        .await
        .expect("connects as the least-privilege user (INFO refused is only a warning)");
    conn.ping().await.unwrap();

    let storage = ServerStorage::new(
        conn.clone(),
        StorageOptions::builder().prefix(PREFIX).build().unwrap(),
    );
    storage
        .set("otp", "1".into(), Some(Duration::from_secs(60)))
        .await
        .unwrap();
    assert!(storage.take("otp").await.unwrap().is_some());
    assert_eq!(storage.list_keys().await.unwrap(), Vec::<String>::new());
    let limiter = ServerRateLimiter::new(
        conn.clone(),
        RateLimiterOptions::builder()
            .prefix(PREFIX)
            .build()
            .unwrap(),
    );
    let rule = RateLimitRule::new(Duration::from_secs(60), 2).unwrap();
    assert!(limiter.consume("ip", &rule, 1).await.unwrap().allowed);
    let sessions = ServerSessionIndex::new(
        conn.clone(),
        SessionIndexOptions::builder()
            .prefix(PREFIX)
            .build()
            .unwrap(),
    );
    let expires = SystemTime::now() + Duration::from_secs(600);
    sessions
        .create("u", "tok", "{}".into(), expires)
        .await
        .unwrap();
    assert_eq!(sessions.list("u").await.unwrap().len(), 1);
    assert_eq!(sessions.revoke_all("u").await.unwrap(), 1);
    let lock = ServerLock::new(
        conn.clone(),
        LockOptions::builder().prefix(PREFIX).build().unwrap(),
    );
    let guard = lock
        .acquire("job", Duration::from_secs(10))
        .await
        .unwrap()
        .into_guard()
        .expect("acquired");
    assert_eq!(
        lock.release(&guard).await.unwrap(),
        ReleaseOutcome::Released
    );

    let refused = |e: KvError, what: &str| {
        assert_eq!(e.kind(), ErrorKind::Server, "{what}: {e}");
        assert_eq!(e.server_code(), Some("NOPERM"), "{what}: {e}");
    };
    let other = ServerStorage::new(
        conn.clone(),
        StorageOptions::builder()
            .prefix("other-app:")
            .build()
            .unwrap(),
    );
    refused(
        other.set("k", "v".into(), None).await.unwrap_err(),
        "a store of another prefix",
    );
    refused(
        conn.execute(Command::new("GET").key("acl-ap"))
            .await
            .unwrap_err(),
        "a key that is not under the prefix",
    );
    for cmd in [
        Command::new("INFO"),
        Command::new("FLUSHDB"),
        Command::new("KEYS").arg("*"),
        Command::new("CONFIG").arg("GET").arg("maxmemory"),
    ] {
        let name = cmd.name();
        refused(conn.execute(cmd).await.unwrap_err(), name);
    }
    let foreign: Vec<Vec<u8>> = probe.keys_with_prefix(b"other-app:").await;
    assert!(foreign.is_empty(), "a refused write left {foreign:?}");
}
