//! Quick start: one `Kv` bundle from the environment, then a one-time code, a rate-limited
//! sign-in, a session in the per-user index and a health check — the four stores an auth
//! server uses, over one connection.
//!
//! ```sh
//! REDIS_URL=redis://127.0.0.1:6379 cargo run -p rustauth-kv --example quick_start
//! REDIS_URL=redis://127.0.0.1:6379 RUSTAUTH_KV_BACKEND=fred \
//!     cargo run -p rustauth-kv --features fred --example quick_start
//! REDIS_URL=memory:// cargo run -p rustauth-kv --example quick_start   # no server
//! ```
//!
//! `RUSTAUTH_KV_PREFIX` (default `rustauth:`) keeps the example's keys apart from an
//! app's. A new project needs only `rustauth-kv` and
//! `tokio = { version = "1", features = ["macros", "rt-multi-thread"] }` to run this file
//! as its `main.rs`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustauth_kv::rate_limit::{bucket_key, PathRules, RateLimiterExt};
use rustauth_kv::{Kv, KvError};

#[tokio::main]
async fn main() -> Result<(), KvError> {
    // REDIS_URL (or RUSTAUTH_KV_URL), RUSTAUTH_KV_BACKEND, RUSTAUTH_KV_PREFIX.
    let kv = Kv::from_env().await?;
    println!(
        "connected: {} {}",
        kv.backend(),
        kv.server().unwrap_or("(in process)")
    );

    // A one-time code: readable exactly once, gone after five minutes anyway.
    let storage = kv.storage();
    storage
        .set(
            "otp:alice@example.com",
            "428193".into(),
            Some(Duration::from_secs(300)),
        )
        .await?;
    let code = storage.take("otp:alice@example.com").await?;
    assert_eq!(code.as_deref(), Some(&b"428193"[..]));
    assert_eq!(storage.take("otp:alice@example.com").await?, None);
    println!("one-time code: taken once, then gone");

    // Better Auth's path rules: /sign-in/* allows 3 requests per 10 s per address.
    let rules = PathRules::default();
    let ip = Some("198.51.100.23");
    // (An empty bucket first, so the example can be re-run at once.)
    kv.rate_limiter()
        .reset(&bucket_key(ip, "/sign-in/email"))
        .await?;
    let first = kv
        .rate_limiter()
        .check_request(&rules, ip, "/sign-in/email")
        .await?;
    let first = first.expect("/sign-in is rate limited");
    assert!(first.allowed);
    println!(
        "sign-in allowed: {} of {} left",
        first.remaining, first.limit
    );

    // A session in the user's index: listable per device, revocable one by one or all.
    let token = format!("session-{}", unique());
    let user = format!("user-{}", unique());
    let expires_at = SystemTime::now() + Duration::from_secs(7 * 86_400);
    kv.sessions()
        .create(&user, &token, r#"{"device":"laptop"}"#.into(), expires_at)
        .await?;
    assert_eq!(kv.sessions().count(&user).await?, 1);
    assert_eq!(kv.sessions().revoke_all(&user).await?, 1);
    println!("session: created, counted, revoked");

    assert!(kv.is_available().await);
    let ping = kv.health().ping().await?;
    println!("ping: {ping:?}");
    kv.close().await?;
    println!("ok: quick start on {}", kv.backend());
    Ok(())
}

/// A per-run suffix, so a second run never meets the first one's session.
fn unique() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}
