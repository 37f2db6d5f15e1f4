//! Rate-limited sign-in through better-auth-rs's middleware, both ways the adapter
//! offers: better-auth-rs's own counter in secondary storage (`increment`) and our
//! limiter (`custom_storage`). Two instances share one limit: of the requests from one
//! client to either, exactly Better Auth's sign-in `max` (3 per 10 s) pass.

use serde_json::json;
use tests_conformance::context::Topology;
use tests_conformance::probe::Pttl;

use crate::support::{auth, per_topology, request, Limits, Pair};

async fn limited_sign_in(topology: Topology, limits: Limits, case: &str) {
    let pair = Pair::new(topology, case).await;
    let app_a = auth(&pair.a, limits).await;
    let app_b = auth(&pair.b, limits).await;
    let credentials =
        json!({"email": "bob@example.com", "name": "Bob", "password": "a long enough password"});
    // Sign-up is limited too (its own bucket, same rule): one request of three.
    let up = request(&app_a, "/sign-up/email", Some(credentials.clone()), "").await;
    assert_eq!(up.status, 200, "sign-up: {}", up.body);

    let mut statuses = Vec::new();
    let mut retry = None;
    for i in 0..6 {
        let app = if i % 2 == 0 { &app_a } else { &app_b };
        let reply = request(app, "/sign-in/email", Some(credentials.clone()), "").await;
        if reply.status == 429 {
            retry = reply.header("x-retry-after").map(str::to_owned);
            assert_eq!(
                reply.body["message"], "Too many requests. Please try again later.",
                "{}",
                reply.body
            );
        }
        statuses.push(reply.status);
    }
    // A accepts (200); B has no user table of its own (401); then only 429s.
    assert_eq!(statuses, [200, 401, 200, 429, 429, 429], "{limits:?}");
    let retry: f64 = retry.expect("x-retry-after").parse().expect("seconds");
    // At most window + 1 ms (our limiter's boundary rule, docs/rate-limit.md).
    assert!(retry > 0.0 && retry <= 10.001, "x-retry-after {retry}");

    let bucket = "203.0.113.7|/sign-in/email";
    let (key, stored) = match limits {
        // Better Auth's counter counts denials too.
        Limits::Increment => (pair.key(&format!("secondary:{bucket}")), Some(&b"6"[..])),
        Limits::Limiter => (pair.key(&format!("rate-limit:{bucket}")), None),
        Limits::Off => unreachable!("a limited case"),
    };
    if let Some(stored) = stored {
        assert_eq!(pair.probe.get(&key).await.as_deref(), Some(stored));
    }
    match pair.probe.pttl(&key).await {
        Pttl::Ms(ms) => assert!(ms <= 10_001, "PTTL {ms}"),
        other => panic!("bucket {:?}: {other:?}", String::from_utf8_lossy(&key)),
    }
}

async fn sign_in_limited_by_increment(topology: Topology) {
    limited_sign_in(topology, Limits::Increment, "bars-rl-incr").await;
}

async fn sign_in_limited_by_our_limiter(topology: Topology) {
    limited_sign_in(topology, Limits::Limiter, "bars-rl-limiter").await;
}

per_topology!(sign_in_limited_by_increment, sign_in_limited_by_our_limiter);
