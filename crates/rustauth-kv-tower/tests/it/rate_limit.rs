//! The rate-limit layer over real HTTP (an axum server on a real socket, hyper-util's
//! client) on every topology: two app instances, one per side of the topology, share
//! Better Auth's sign-in limit; trusted proxies, IPv6 grouping and custom keys decide
//! the bucket; the headers and the 429 are what clients read; and with Redis down the
//! limiter's policy or the in-process fallback answers, until Redis is back.

use std::sync::Arc;
use std::time::Duration;

use axum::routing::{get, post};
use axum::Router;
use http::{Method, StatusCode};
use rustauth_kv::rate_limit::RateLimitRule;
use rustauth_kv::{Backend, Kv, KvOptions, RateLimiter};
use rustauth_kv_tower::RateLimitLayer;
use tests_conformance::context::{unique_prefix, Topology};
use tests_conformance::probe::{Probe, Pttl};
use tests_conformance::server::RedisServer;

use crate::http::{serve, HttpClient};
use crate::support::{per_topology, Pair};

fn app(layer: RateLimitLayer) -> Router {
    Router::new()
        .route("/api/auth/sign-in/email", post(|| async { "signed in" }))
        .route("/api/auth/get-session", get(|| async { "{}" }))
        .route("/health", get(|| async { "ok" }))
        .layer(layer)
}

async fn sign_in_limit_is_shared_over_http(topology: Topology) {
    let pair = Pair::new(topology, "rl-http").await;
    let layer = |kv: &Kv| {
        RateLimitLayer::builder(kv.rate_limiter())
            .base_path("/api/auth")
            .build()
            .unwrap()
    };
    let a = serve(app(layer(&pair.a))).await;
    let b = serve(app(layer(&pair.b))).await;
    let client = HttpClient::new();
    let mut admitted = 0;
    for i in 0..6 {
        let addr = if i % 2 == 0 { a } else { b };
        let r = client
            .send(
                Method::POST,
                &format!("http://{addr}/api/auth/sign-in/email?x=1"),
                &[],
                "",
            )
            .await;
        assert_eq!(r.header("ratelimit-limit"), Some("3"));
        assert_eq!(r.header("ratelimit-policy"), Some(r#""rustauth";q=3;w=10"#));
        if r.status == StatusCode::OK {
            admitted += 1;
            assert_eq!(
                r.header("ratelimit-remaining"),
                Some((3 - admitted).to_string().as_str())
            );
            assert!(r.header("retry-after").is_none());
        } else {
            assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{r:?}");
            assert_eq!(
                r.body,
                r#"{"message":"Too many requests. Please try again later."}"#
            );
            assert_eq!(r.header("content-type"), Some("application/json"));
            let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
            assert!((1..=10).contains(&retry), "retry-after {retry}");
            assert_eq!(r.header("x-retry-after"), r.header("retry-after"));
            assert!(r
                .header("ratelimit")
                .unwrap()
                .starts_with(r#""rustauth";r=0;t="#));
        }
    }
    assert_eq!(admitted, 3, "exactly max admitted across both instances");
    // Golden key: Better Auth's bucket, path without base or query.
    let key = pair.key("rate-limit:127.0.0.1|/sign-in/email");
    match pair.probe.pttl(&key).await {
        Pttl::Ms(ms) => assert!(ms <= 10_000, "pttl {ms}"),
        other => panic!("bucket {other:?}"),
    }
    // Other paths: the default rule inside the base path, nothing outside it.
    let r = client
        .send(
            Method::GET,
            &format!("http://{b}/api/auth/get-session"),
            &[],
            "",
        )
        .await;
    assert_eq!(
        (r.status, r.header("ratelimit-limit")),
        (StatusCode::OK, Some("100"))
    );
    let r = client
        .send(Method::GET, &format!("http://{a}/health"), &[], "")
        .await;
    assert_eq!(
        (r.status, r.header("ratelimit-limit")),
        (StatusCode::OK, None)
    );
}

async fn trusted_proxies_ipv6_and_custom_keys(topology: Topology) {
    let pair = Pair::new(topology, "rl-proxy").await;
    let one = RateLimitRule::from_secs(60, 1).unwrap();
    let layer = RateLimitLayer::builder(pair.a.rate_limiter())
        .rule(one)
        .trusted_proxies(["127.0.0.1/32", "10.0.0.0/8"])
        .ipv6_prefix(56)
        .key(|req| {
            let key = req.headers.get("x-api-key")?.to_str().ok()?;
            Some(format!("api:{key}"))
        })
        .build()
        .unwrap();
    let addr = serve(
        Router::new()
            .route("/x", get(|| async { "x" }))
            .layer(layer),
    )
    .await;
    let client = HttpClient::new();
    let url = format!("http://{addr}/x");
    let status = |headers: Vec<(&'static str, &'static str)>| {
        let client = client.clone();
        let url = url.clone();
        async move { client.send(Method::GET, &url, &headers, "").await.status }
    };
    let ok = StatusCode::OK;
    let no = StatusCode::TOO_MANY_REQUESTS;
    let xff = |v| vec![("x-forwarded-for", v)];
    assert_eq!(status(xff("203.0.113.1")).await, ok);
    assert_eq!(
        status(xff("203.0.113.1")).await,
        no,
        "same client behind the proxy"
    );
    assert_eq!(status(xff("203.0.113.2")).await, ok, "another client");
    // A spoofed left entry is ignored: the rightmost untrusted hop is the client.
    assert_eq!(status(xff("203.0.113.1, 198.51.100.9, 10.1.1.1")).await, ok);
    assert_eq!(status(xff("203.0.113.2, 198.51.100.9")).await, no);
    // IPv6 grouped by /56: ...:12ab:: and ...:1234:: share 2001:db8:0:1200::/56.
    assert_eq!(
        status(vec![("forwarded", r#"for="[2001:db8:0:12ab::1]:443""#)]).await,
        ok
    );
    assert_eq!(status(xff("2001:db8:0:1234::9")).await, no);
    assert_eq!(status(xff("2001:db8:0:1334::9")).await, ok, "another /56");
    // Custom keys: one bucket per API key, whatever the address.
    assert_eq!(status(vec![("x-api-key", "k1")]).await, ok);
    assert_eq!(
        status(vec![("x-api-key", "k1"), ("x-forwarded-for", "192.0.2.1")]).await,
        no
    );
    assert_eq!(status(vec![("x-api-key", "k2")]).await, ok);
    // What was counted, as keys in the store.
    for bucket in [
        "203.0.113.1|/x",
        "198.51.100.9|/x",
        "2001:0db8:0000:1200:0000:0000:0000:0000|/x",
        "api:k1|/x",
    ] {
        let key = pair.key(&format!("rate-limit:{bucket}"));
        assert!(
            matches!(pair.probe.pttl(&key).await, Pttl::Ms(_)),
            "{bucket}"
        );
    }
}

per_topology!(
    sign_in_limit_is_shared_over_http,
    trusted_proxies_ipv6_and_custom_keys
);

/// Redis killed under a running app: the limiter's fail-closed policy answers (429), or,
/// with the in-process fallback, the fallback counts; Redis restarted on its port: the
/// same app counts in Redis again, without a restart of its own.
async fn redis_down_then_back(backend: Backend) {
    let server = RedisServer::start().unwrap_or_else(|e| panic!("needs redis-server: {e}"));
    let prefix = unique_prefix("rl-down");
    let options = KvOptions::builder()
        .url(server.url())
        .backend(backend)
        .prefix(&prefix)
        .command_timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let kv = Kv::connect_with(options).await.unwrap();
    let rule = RateLimitRule::from_secs(60, 2).unwrap();
    let fallback: Arc<dyn RateLimiter> = Kv::memory().rate_limiter();
    let plain = RateLimitLayer::builder(kv.rate_limiter())
        .rule(rule)
        .build()
        .unwrap();
    let with_fallback = RateLimitLayer::builder(kv.rate_limiter())
        .rule(rule)
        .fallback(fallback)
        .build()
        .unwrap();
    let route = |layer| {
        Router::new()
            .route("/x", get(|| async { "x" }))
            .layer(layer)
    };
    let a = serve(route(plain)).await;
    let b = serve(route(with_fallback)).await;
    let client = HttpClient::new();
    let get = |addr| {
        let client = client.clone();
        async move {
            client
                .send(Method::GET, &format!("http://{addr}/x"), &[], "")
                .await
        }
    };
    assert_eq!(get(a).await.status, StatusCode::OK, "Redis up");

    let config = server.kill();
    let r = get(a).await;
    assert_eq!(
        r.status,
        StatusCode::TOO_MANY_REQUESTS,
        "fail closed while Redis is down"
    );
    assert_eq!(r.header("retry-after"), Some("60"), "one window");
    let statuses = [
        get(b).await.status,
        get(b).await.status,
        get(b).await.status,
    ];
    assert_eq!(
        statuses,
        [
            StatusCode::OK,
            StatusCode::OK,
            StatusCode::TOO_MANY_REQUESTS
        ],
        "the fallback counts"
    );

    let server = RedisServer::start_with(config).expect("restart on the same port");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let r = get(a).await;
        if r.status == StatusCode::OK {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no recovery: {r:?}\n{}",
            server.log_tail(20)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let probe = Probe::connect(&server.url()).await;
    let key = format!("{prefix}rate-limit:127.0.0.1|/x").into_bytes();
    assert!(
        matches!(probe.pttl(&key).await, Pttl::Ms(_)),
        "counted in Redis again"
    );
}

#[tokio::test]
async fn redis_down_then_back_redis() {
    redis_down_then_back(Backend::Redis).await
}

#[tokio::test]
async fn redis_down_then_back_fred() {
    redis_down_then_back(Backend::Fred).await
}
