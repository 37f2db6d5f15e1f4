//! An axum app with sign-in against an in-process user table, sessions in Redis through
//! `rustauth_kv_tower::KvSessionStore`, a "your devices" page with revoke, and sign-in
//! limited by `rustauth_kv_tower::RateLimitLayer` (Better Auth's table: 3 per 10 s).
//!
//! Every instance started with the same `REDIS_URL` and `RUSTAUTH_KV_PREFIX` shares the
//! sessions and the limits: sign in on one, use the cookie on another, revoke anywhere.
//! `RUSTAUTH_KV_BACKEND` picks redis-rs or fred. The instance prints
//! `listening on ADDR` once it accepts connections (`LISTEN`, default `127.0.0.1:0`).
//! Requests from 127.0.0.1 may name their client in `X-Forwarded-For` (a trusted proxy).
//!
//! Routes: `POST /sign-in` (JSON `{"user","password"}`), `GET /me`, `GET /devices`,
//! `POST /devices/{id}/revoke`, `POST /devices/revoke-others`, `POST /sign-out`.

use std::net::SocketAddr;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use rustauth_kv::Kv;
use rustauth_kv_tower::{KvSessionStore, RateLimitLayer, AXUM_LOGIN_KEY};
use serde_json::{json, Value};
use tower_sessions::{Session, SessionManagerLayer};

/// The in-process user table: (user, password).
const USERS: [(&str, &str); 2] = [("alice", "wonderland"), ("bob", "builder")];

#[derive(Clone)]
struct App {
    store: KvSessionStore,
}

type Reply = Result<Response, StatusCode>;

fn internal<E: std::fmt::Display>(e: E) -> StatusCode {
    eprintln!("error: {e}");
    StatusCode::INTERNAL_SERVER_ERROR
}

/// The signed-in user of the request's session.
async fn user(session: &Session) -> Result<String, StatusCode> {
    let data: Option<Value> = session.get(AXUM_LOGIN_KEY).await.map_err(internal)?;
    data.and_then(|d| d["user_id"].as_str().map(str::to_owned))
        .ok_or(StatusCode::UNAUTHORIZED)
}

async fn sign_in(session: Session, headers: HeaderMap, Json(body): Json<Value>) -> Reply {
    let (name, password) = (body["user"].as_str(), body["password"].as_str());
    let Some((user, _)) = USERS
        .iter()
        .find(|(u, p)| Some(*u) == name && Some(*p) == password)
    else {
        return Err(StatusCode::UNAUTHORIZED);
    };
    // A new id on sign-in (as axum-login does): the pre-sign-in id is worthless.
    session.cycle_id().await.map_err(internal)?;
    session
        .insert(AXUM_LOGIN_KEY, json!({ "user_id": user }))
        .await
        .map_err(internal)?;
    let device = headers
        .get("user-agent")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("unknown");
    session.insert("device", device).await.map_err(internal)?;
    // Save now, so the cookie is for a stored session (and errors surface here).
    session.save().await.map_err(internal)?;
    Ok(Json(json!({ "user": user })).into_response())
}

async fn me(session: Session) -> Reply {
    let user = user(&session).await?;
    Ok(Json(json!({ "user": user })).into_response())
}

async fn devices(State(app): State<App>, session: Session) -> Reply {
    let user = user(&session).await?;
    let current = session.id().map(|id| id.to_string()).unwrap_or_default();
    let current = app.store.device_id(&current).map_err(internal)?;
    let list = app.store.devices(&user).await.map_err(internal)?;
    let list: Vec<Value> = list
        .iter()
        .map(|s| {
            let record: Value = serde_json::from_slice(&s.value).unwrap_or_default();
            json!({
                "id": s.id,
                "device": record["data"]["device"],
                "current": s.id == current,
            })
        })
        .collect();
    Ok(Json(json!({ "user": user, "devices": list })).into_response())
}

async fn revoke(State(app): State<App>, session: Session, Path(id): Path<String>) -> Reply {
    let user = user(&session).await?;
    let revoked = app
        .store
        .revoke_device(&user, &id)
        .await
        .map_err(internal)?;
    Ok(Json(json!({ "revoked": u64::from(revoked) })).into_response())
}

async fn revoke_others(State(app): State<App>, session: Session) -> Reply {
    let user = user(&session).await?;
    let current = session.id().map(|id| id.to_string()).unwrap_or_default();
    let n = app
        .store
        .revoke_other_devices(&user, &current)
        .await
        .map_err(internal)?;
    Ok(Json(json!({ "revoked": n })).into_response())
}

async fn sign_out(session: Session) -> Reply {
    session.flush().await.map_err(internal)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// The app over `kv`.
fn router(kv: &Kv) -> Router {
    let store = KvSessionStore::new(kv);
    let sessions = SessionManagerLayer::new(store.clone()).with_secure(false);
    let limit = RateLimitLayer::builder(kv.rate_limiter())
        .trusted_proxies(["127.0.0.1"])
        .build()
        .expect("a valid layer");
    let limited = Router::new()
        .route("/sign-in", post(sign_in))
        .route_layer(limit);
    Router::new()
        .merge(limited)
        .route("/me", get(me))
        .route("/devices", get(devices))
        .route("/devices/revoke-others", post(revoke_others))
        .route("/devices/{id}/revoke", post(revoke))
        .route("/sign-out", post(sign_out))
        .route("/health", get(|| async { "ok" }))
        .layer(sessions)
        .with_state(App { store })
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let kv = Kv::from_env().await?;
    let listen = std::env::var("LISTEN").unwrap_or_else(|_| "127.0.0.1:0".to_owned());
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    println!("listening on {}", listener.local_addr()?);
    let app = router(&kv).into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    kv.close().await?;
    Ok(())
}
