//! Through HTTP: an axum app on a real socket, driven by a hyper client with 64 requests
//! in flight. A rate-limited route (our tower layer) and a session load (our
//! tower-sessions store) against the same app's route with neither, and our session load
//! against `tower-sessions-redis-store`'s on tower-sessions 0.14 ([`crate::http_peer`]),
//! interleaved in rounds like the store workloads.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::routing::get;
use axum::Router;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use rustauth_kv::rate_limit::RateLimitRule;
use rustauth_kv::{Backend, Kv, KvOptions};
use rustauth_kv_tower::{KvSessionStore, RateLimitLayer, AXUM_LOGIN_KEY};
use tower_sessions::{Session, SessionManagerLayer};

use crate::report::{quantile_us, Row};
use crate::Progress;

/// Requests in flight.
const IN_FLIGHT: usize = 64;
/// The configuration label of these rows.
const CONFIG: &str = "HTTP, 64 requests in flight";
/// The baseline every HTTP row is divided by.
const BASELINE: &str = "axum route, no store";

/// Our store on tower-sessions 0.14, and the published peer on it.
const OURS_014: &str = "session load, tower-sessions 0.14 (rustauth-fred)";
const PEER: &str = "session load, tower-sessions-redis-store 0.16 (fred)";

/// Progress steps this module reports (its rounds).
pub(crate) const STEPS: usize = 1;

type HttpClient = Client<HttpConnector, Empty<bytes::Bytes>>;

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// The app: `/plain`, `/limited` (the layer, a rule no run exhausts) and `/me` (a
/// session read through the store) per backend, plus `/login` to make the session.
async fn app(url: &str, backend: Backend, prefix: &str, coalesce: bool) -> Result<Router, String> {
    let connection = rustauth_kv::ConnectionOptions::builder(url)
        .coalesce_writes(coalesce)
        .build()
        .map_err(err)?;
    let options = KvOptions::builder()
        .connection(connection)
        .backend(backend)
        .prefix(prefix)
        .build()
        .map_err(err)?;
    let kv = Kv::connect_with(options).await.map_err(err)?;
    let limit = RateLimitLayer::builder(kv.rate_limiter())
        .rule(RateLimitRule::from_secs(600, 1_000_000_000).map_err(err)?)
        .build()
        .map_err(err)?;
    Ok(Router::new()
        .route(
            "/login",
            get(|s: Session| async move {
                s.insert(AXUM_LOGIN_KEY, serde_json::json!({"user_id": "bench"}))
                    .await
                    .map(|()| "ok")
                    .map_err(|e| e.to_string())
            }),
        )
        .route(
            "/me",
            get(|s: Session| async move {
                match s.get::<serde_json::Value>(AXUM_LOGIN_KEY).await {
                    Ok(Some(_)) => Ok("me"),
                    Ok(None) => Err("no session".to_owned()),
                    Err(e) => Err(e.to_string()),
                }
            }),
        )
        .layer(SessionManagerLayer::new(KvSessionStore::new(&kv)).with_secure(false))
        .merge(
            Router::new()
                .route("/limited", get(|| async { "ok" }))
                .layer(limit),
        )
        .route("/plain", get(|| async { "ok" })))
}

async fn serve(app: Router) -> Result<SocketAddr, String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(err)?;
    let addr = listener.local_addr().map_err(err)?;
    tokio::spawn(async move {
        let _ = axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await;
    });
    Ok(addr)
}

async fn get_ok(client: &HttpClient, url: &str, cookie: &str) -> Result<Option<String>, String> {
    let mut req = http::Request::get(url);
    if !cookie.is_empty() {
        req = req.header("cookie", cookie);
    }
    let res = client
        .request(req.body(Empty::new()).map_err(err)?)
        .await
        .map_err(err)?;
    let status = res.status();
    let set_cookie = res
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(str::to_owned);
    let body = res.into_body().collect().await.map_err(err)?.to_bytes();
    if status != http::StatusCode::OK {
        return Err(format!(
            "GET {url}: {status} {}",
            String::from_utf8_lossy(&body)
        ));
    }
    Ok(set_cookie)
}

/// `IN_FLIGHT` tasks sending `GET url` for `duration`: requests per second and latencies.
async fn drive(
    client: &HttpClient,
    url: &str,
    cookie: &str,
    duration: Duration,
) -> Result<(f64, Vec<u32>), String> {
    let started = Instant::now();
    let deadline = started + duration;
    let mut tasks = Vec::new();
    for _ in 0..IN_FLIGHT {
        let (client, url, cookie) = (client.clone(), url.to_owned(), cookie.to_owned());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            loop {
                let t0 = Instant::now();
                get_ok(&client, &url, &cookie).await?;
                let t1 = Instant::now();
                latencies.push(u32::try_from((t1 - t0).as_nanos()).unwrap_or(u32::MAX));
                if t1 >= deadline {
                    return Ok::<_, String>(latencies);
                }
            }
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.map_err(err)??);
    }
    Ok((all.len() as f64 / started.elapsed().as_secs_f64(), all))
}

/// The HTTP rows, on their own 2-worker runtime.
pub(crate) fn run(url: &str, quick: bool, progress: &mut Progress) -> Result<Vec<Row>, String> {
    let (rounds, duration) = if quick {
        (3, Duration::from_millis(200))
    } else {
        (5, Duration::from_millis(500))
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(err)?;
    let rows = rt.block_on(async {
        let client: HttpClient = Client::builder(TokioExecutor::new()).build_http();
        // (name, url, cookie)
        let mut targets: Vec<(&'static str, String, String)> = Vec::new();
        for (backend, tag, coalesce) in [
            (Backend::Redis, "rustauth-redis", false),
            (Backend::Redis, "rustauth-redis-coalesced", true),
            (Backend::Fred, "rustauth-fred", false),
        ] {
            let app = app(url, backend, &format!("bench-http-{tag}:"), coalesce).await?;
            let addr = serve(app).await?;
            let cookie = get_ok(&client, &format!("http://{addr}/login"), "")
                .await?
                .ok_or("/login set no cookie")?;
            if targets.is_empty() {
                targets.push((BASELINE, format!("http://{addr}/plain"), String::new()));
            }
            let (limited, session) = match tag {
                "rustauth-redis" => (
                    "rate-limited route (rustauth-redis)",
                    "session load (rustauth-redis)",
                ),
                "rustauth-redis-coalesced" => (
                    "rate-limited route (rustauth-redis, coalesced writes)",
                    "session load (rustauth-redis, coalesced writes)",
                ),
                _ => (
                    "rate-limited route (rustauth-fred)",
                    "session load (rustauth-fred)",
                ),
            };
            targets.push((limited, format!("http://{addr}/limited"), String::new()));
            targets.push((session, format!("http://{addr}/me"), cookie));
        }
        // The published peer and our store on the same tower-sessions version (0.14).
        for (name, app) in [
            (OURS_014, crate::http_peer::ours(url).await?),
            (PEER, crate::http_peer::peer(url).await?),
        ] {
            let addr = serve(app).await?;
            let cookie = get_ok(&client, &format!("http://{addr}/login"), "")
                .await?
                .ok_or("/login set no cookie")?;
            targets.push((name, format!("http://{addr}/me"), cookie));
        }
        for (_, url, cookie) in &targets {
            drive(&client, url, cookie, duration / 4).await?;
        }
        let mut per_round = vec![Vec::new(); targets.len()];
        let mut latencies = vec![Vec::new(); targets.len()];
        for round in 0..rounds {
            for k in 0..targets.len() {
                let idx = (k + round) % targets.len();
                let (_, url, cookie) = &targets[idx];
                let (rps, lat) = drive(&client, url, cookie, duration).await?;
                per_round[idx].push(rps);
                latencies[idx].extend(lat);
            }
        }
        let mut rows = Vec::new();
        for (idx, (name, _, _)) in targets.iter().enumerate() {
            latencies[idx].sort_unstable();
            // Our 0.14 row is divided by the peer's; every other row by the baseline.
            let base = if *name == OURS_014 {
                targets.iter().position(|t| t.0 == PEER)
            } else {
                (*name != BASELINE).then_some(0)
            };
            let vs = base.map(|b| {
                let ratios = per_round[idx]
                    .iter()
                    .zip(&per_round[b])
                    .map(|(ours, base)| ours / base)
                    .collect();
                (targets[b].0, ratios)
            });
            rows.push(Row {
                workload: if *name == OURS_014 || *name == PEER {
                    "http session load vs peer"
                } else if name.starts_with("session") {
                    "http session load"
                } else if name.starts_with("rate") {
                    "http rate-limited"
                } else {
                    "http baseline"
                },
                config: CONFIG,
                contender: name,
                rounds: per_round[idx].clone(),
                p50_us: quantile_us(&latencies[idx], 0.5),
                p99_us: quantile_us(&latencies[idx], 0.99),
                vs_raw: vs,
                ceiling_rps: None,
                commands: Default::default(),
            });
        }
        Ok::<_, String>(rows)
    })?;
    progress.tick("HTTP");
    Ok(rows)
}
