//! `sessions list|revoke|revoke-id` over sessions created through the library.

use std::time::{Duration, SystemTime};

use rustauth_kv::{Kv, KvOptions};

use crate::support::Env;

async fn kv(env: &Env) -> Kv {
    let options = KvOptions::builder()
        .url(env.url.clone())
        .prefix(env.prefix.clone())
        .build()
        .unwrap();
    Kv::connect_with(options).await.unwrap()
}

#[tokio::test]
async fn list_revoke_and_revoke_one() {
    let env = Env::new("sessions");
    let kv = kv(&env).await;
    let now = SystemTime::now();
    for (token, secs) in [("tok-a", 600), ("tok-b", 300), ("tok-c", 900)] {
        kv.sessions()
            .create(
                "alice",
                token,
                "data".into(),
                now + Duration::from_secs(secs),
            )
            .await
            .unwrap();
    }
    kv.sessions()
        .create("bob", "tok-bob", "x".into(), now + Duration::from_secs(60))
        .await
        .unwrap();

    let doc = env.json(&["sessions", "list", "alice"]);
    let ids: Vec<&str> = doc["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        ["tok-b", "tok-a", "tok-c"],
        "soonest expiry first: {doc}"
    );
    assert_eq!(doc["sessions"][0]["value_bytes"], 4, "{doc}");
    assert!(doc["sessions"][0]["expires_at_ms"].as_u64().unwrap() > 0);

    let doc = env.json(&["sessions", "revoke-id", "tok-b"]);
    assert_eq!(doc["revoked"], true, "{doc}");
    let doc = env.json(&["sessions", "revoke-id", "tok-b"]);
    assert_eq!(doc["revoked"], false, "{doc}");

    let doc = env.json(&["sessions", "revoke", "alice", "--except", "tok-c"]);
    assert_eq!(doc["revoked"], 1, "{doc}");
    assert!(kv.sessions().get("tok-c").await.unwrap().is_some());
    assert!(kv.sessions().get("tok-a").await.unwrap().is_none());

    let doc = env.json(&["sessions", "revoke", "alice"]);
    assert_eq!(doc["revoked"], 1, "{doc}");
    assert_eq!(
        env.json(&["sessions", "list", "alice"])["sessions"],
        serde_json::json!([])
    );
    assert!(
        kv.sessions().get("tok-bob").await.unwrap().is_some(),
        "other users untouched"
    );

    let run = env.run(&["sessions", "list", "bob"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains("tok-bob"), "{run:?}");
    kv.close().await.unwrap();
}

#[tokio::test]
async fn revoke_except_with_hashed_tokens() {
    let env = Env::new("sessions-hashed");
    let options = KvOptions::builder()
        .url(env.url.clone())
        .prefix(env.prefix.clone())
        .sessions(|b| b.token_hashing(rustauth_kv::session::TokenHashing::Sha256))
        .build()
        .unwrap();
    let kv = Kv::connect_with(options).await.unwrap();
    let later = SystemTime::now() + Duration::from_secs(600);
    for token in ["keep-me", "drop-me"] {
        kv.sessions()
            .create("carol", token, "d".into(), later)
            .await
            .unwrap();
    }
    let doc = env.json(&[
        "sessions",
        "revoke",
        "carol",
        "--except",
        "keep-me",
        "--token-hashing",
        "sha256",
    ]);
    assert_eq!(doc["revoked"], 1, "{doc}");
    assert!(kv.sessions().get("keep-me").await.unwrap().is_some());
    kv.close().await.unwrap();
}
