//! The published peer: a session load through `tower-sessions-redis-store` 0.16 (fred, on
//! tower-sessions 0.14, the newest it supports) against the same load through our store
//! on tower-sessions 0.14, both on the bench's server, in the same app shape as
//! [`crate::http`]'s `/me`.

use axum::routing::get;
use axum::Router;
use fred::interfaces::ClientLike;
use rustauth_kv::{Backend, Kv, KvOptions};
use rustauth_kv_tower::{KvSessionStore, AXUM_LOGIN_KEY};
use tower_sessions_014::{Session, SessionManagerLayer, SessionStore};

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// `/login` (makes the session) and `/me` (reads it) over `store`.
fn routes<S: SessionStore + Clone>(store: S) -> Router {
    Router::new()
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
        .layer(SessionManagerLayer::new(store).with_secure(false))
}

/// Our store (rustauth-fred, the same client as the peer) on tower-sessions 0.14.
pub(crate) async fn ours(url: &str) -> Result<Router, String> {
    let options = KvOptions::builder()
        .url(url)
        .backend(Backend::Fred)
        .prefix("bench-http-014:")
        .build()
        .map_err(err)?;
    let kv = Kv::connect_with(options).await.map_err(err)?;
    Ok(routes(KvSessionStore::new(&kv)))
}

/// `tower_sessions_redis_store::RedisStore` on a fred client of its own.
pub(crate) async fn peer(url: &str) -> Result<Router, String> {
    let config = fred::types::config::Config::from_url(url).map_err(err)?;
    let client = fred::clients::Client::new(config, None, None, None);
    client.init().await.map_err(err)?;
    Ok(routes(tower_sessions_redis_store::RedisStore::new(client)))
}
