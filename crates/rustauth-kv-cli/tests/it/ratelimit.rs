//! `ratelimit peek|reset` over buckets consumed through the library.

use std::time::Duration;

use rustauth_kv::{Kv, KvOptions, RateLimitRule};

use crate::support::Env;

#[tokio::test]
async fn peek_reads_without_consuming_and_reset_empties() {
    let env = Env::new("ratelimit");
    let options = KvOptions::builder()
        .url(env.url.clone())
        .prefix(env.prefix.clone())
        .build()
        .unwrap();
    let kv = Kv::connect_with(options).await.unwrap();
    let rule = RateLimitRule::new(Duration::from_secs(60), 3).unwrap();
    let bucket = "203.0.113.7|/sign-in";
    for _ in 0..3 {
        assert!(
            kv.rate_limiter()
                .consume(bucket, &rule, 1)
                .await
                .unwrap()
                .allowed
        );
    }
    let args = ["ratelimit", "peek", bucket, "--window", "60", "--max", "3"];
    for _ in 0..2 {
        let doc = env.json(&args);
        assert_eq!(doc["allowed"], false, "{doc}");
        assert_eq!(doc["remaining"], 0, "{doc}");
        assert_eq!(doc["limit"], 3, "{doc}");
        assert!(doc["retry_after_ms"].as_u64().unwrap() > 0, "{doc}");
    }
    let run = env.run(&args);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains("denied"), "{run:?}");

    let doc = env.json(&["ratelimit", "reset", bucket]);
    assert_eq!(doc["reset"], true, "{doc}");
    let doc = env.json(&["ratelimit", "reset", bucket]);
    assert_eq!(doc["reset"], false, "{doc}");
    let doc = env.json(&args);
    assert_eq!(doc["allowed"], true, "{doc}");
    assert_eq!(doc["remaining"], 3, "{doc}");

    // An invalid rule (window 0) fails before I/O with exit 2.
    let run = env.run(&[
        "--json",
        "ratelimit",
        "peek",
        bucket,
        "--window",
        "0",
        "--max",
        "3",
    ]);
    assert_eq!(run.code, 2, "{run:?}");
    assert_eq!(run.json()["error"]["kind"], "invalid_config", "{run:?}");
    kv.close().await.unwrap();
}
