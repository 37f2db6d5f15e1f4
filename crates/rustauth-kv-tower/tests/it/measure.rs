//! Not a check, a measurement: median latency and throughput of a session load and of a
//! rate-limited request through the whole stack (real socket, real HTTP client, real
//! Redis), 2000 requests, 16 in flight, on each backend. Printed, never asserted; run
//! with `--nocapture` to read it (and `--release` for numbers worth quoting).

use std::time::{Duration, Instant};

use axum::routing::get;
use axum::Router;
use http::{Method, StatusCode};
use rustauth_kv::rate_limit::RateLimitRule;
use rustauth_kv::{Backend, Kv, KvOptions};
use rustauth_kv_tower::{KvSessionStore, RateLimitLayer, AXUM_LOGIN_KEY};
use serde_json::json;
use tests_conformance::context::{app_url, unique_prefix};
use tower_sessions::{Session, SessionManagerLayer};

use crate::http::{serve, HttpClient};

const REQUESTS: usize = 2000;
const IN_FLIGHT: usize = 16;

async fn run(client: &HttpClient, url: &str, cookie: &str) -> (Duration, f64, Duration) {
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..IN_FLIGHT {
        let (client, url, cookie) = (client.clone(), url.to_owned(), cookie.to_owned());
        tasks.push(tokio::spawn(async move {
            let mut times = Vec::new();
            for _ in 0..REQUESTS / IN_FLIGHT {
                let t = Instant::now();
                let r = client
                    .send(Method::GET, &url, &[("cookie", &cookie)], "")
                    .await;
                assert_eq!(r.status, StatusCode::OK, "{r:?}");
                times.push(t.elapsed());
            }
            times
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let total = started.elapsed();
    all.sort();
    (
        all[all.len() / 2],
        all.len() as f64 / total.as_secs_f64(),
        all[all.len() * 99 / 100],
    )
}

async fn measure(backend: Backend) {
    let options = KvOptions::builder()
        .url(app_url().await)
        .backend(backend)
        .prefix(unique_prefix("measure"))
        .build()
        .unwrap();
    let kv = Kv::connect_with(options).await.unwrap();
    let limit = RateLimitLayer::builder(kv.rate_limiter())
        .rule(RateLimitRule::from_secs(60, 1_000_000).unwrap())
        .build()
        .unwrap();
    let app = Router::new()
        .route(
            "/login",
            get(|s: Session| async move {
                s.insert(AXUM_LOGIN_KEY, json!({"user_id": "bench"}))
                    .await
                    .unwrap();
                "ok"
            }),
        )
        .route(
            "/me",
            get(|s: Session| async move {
                let d: Option<serde_json::Value> = s.get(AXUM_LOGIN_KEY).await.unwrap();
                assert!(d.is_some());
                "me"
            }),
        )
        .layer(SessionManagerLayer::new(KvSessionStore::new(&kv)).with_secure(false))
        .merge(
            Router::new()
                .route("/limited", get(|| async { "ok" }))
                .layer(limit),
        )
        .route("/plain", get(|| async { "ok" }));
    let addr = serve(app).await;
    let client = HttpClient::new();
    let login = client
        .send(Method::GET, &format!("http://{addr}/login"), &[], "")
        .await;
    let cookie = login
        .header("set-cookie")
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    for (what, path) in [
        ("no store (HTTP only)", "/plain"),
        ("session load", "/me"),
        ("rate-limited request", "/limited"),
    ] {
        let (median, rps, p99) = run(&client, &format!("http://{addr}{path}"), &cookie).await;
        eprintln!(
            "measure {backend:?} {what}: median {median:?}, p99 {p99:?}, {rps:.0} req/s \
             ({REQUESTS} requests, {IN_FLIGHT} in flight)"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn measure_redis() {
    measure(Backend::Redis).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn measure_fred() {
    measure(Backend::Fred).await
}
