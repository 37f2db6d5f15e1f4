//! Rate limiting auth endpoints with Better Auth's path rules: `/sign-in/*` allows 3
//! requests per 10 s per client address, a custom rule tightens `/two-factor/*`, health
//! checks are not limited, and a denial carries the `Retry-After` headers of a 429.
//!
//! ```sh
//! REDIS_URL=redis://127.0.0.1:6379 cargo run -p rustauth-kv --example auth_rate_limit
//! REDIS_URL=redis://127.0.0.1:6379 RUSTAUTH_KV_BACKEND=fred \
//!     cargo run -p rustauth-kv --features fred --example auth_rate_limit
//! REDIS_URL=memory:// cargo run -p rustauth-kv --example auth_rate_limit
//! ```
//!
//! Every instance of the app shares the buckets, and decisions use the server's clock,
//! so instances with skewed clocks still agree.

use std::time::Duration;

use rustauth_kv::rate_limit::{bucket_key, PathRules, RateLimiterExt};
use rustauth_kv::{Kv, KvError, RateLimitRule};

#[tokio::main]
async fn main() -> Result<(), KvError> {
    let kv = Kv::from_env().await?;
    println!("connected: {}", kv.backend());
    let limiter = kv.rate_limiter();

    let rules = PathRules::builder()
        .rule(
            "/two-factor/**",
            RateLimitRule::new(Duration::from_secs(60), 5)?,
        )
        .disable("/ok")
        .build()?;

    let attacker = Some("203.0.113.7");
    let neighbour = Some("203.0.113.8");
    // Empty buckets first, so the example can be re-run at once.
    for (ip, path) in [(attacker, "/sign-in/email"), (neighbour, "/sign-in/email")] {
        limiter.reset(&bucket_key(ip, path)).await?;
    }
    limiter
        .reset(&bucket_key(attacker, "/two-factor/verify-totp"))
        .await?;

    // What a middleware does per request: one decision, one round trip.
    for attempt in 1..=3 {
        let d = limiter
            .check_request(&rules, attacker, "/sign-in/email")
            .await?;
        let d = d.expect("/sign-in is limited");
        assert!(d.allowed, "attempt {attempt} is within 3 per 10 s");
    }
    let denied = limiter
        .check_request(&rules, attacker, "/sign-in/email")
        .await?;
    let denied = denied.expect("/sign-in is limited");
    assert!(!denied.allowed);
    // At most the window plus 1 ms: the bucket empties the ms after its window ends.
    assert!(denied.retry_after_ms > 0 && denied.retry_after_ms <= 10_001);
    println!("attempt 4: 429, headers {:?}", denied.headers());

    // Buckets are per address and path: a neighbour is not blocked.
    let other = limiter
        .check_request(&rules, neighbour, "/sign-in/email")
        .await?;
    assert!(other.expect("/sign-in is limited").allowed);
    println!("another address: allowed");

    let totp = limiter
        .check_request(&rules, attacker, "/two-factor/verify-totp")
        .await?;
    assert_eq!(totp.expect("custom rule").limit, 5);
    assert!(limiter
        .check_request(&rules, attacker, "/ok")
        .await?
        .is_none());
    println!("custom rule: 5 per 60 s on /two-factor/**; /ok not limited");

    kv.close().await?;
    println!("ok: auth rate limits on {}", kv.backend());
    Ok(())
}
