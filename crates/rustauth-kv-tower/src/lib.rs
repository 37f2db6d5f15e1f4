//! tower and axum integrations of [`rustauth_kv`]: thin adapters over its traits, no
//! store logic of their own.
//!
//! - [`KvSessionStore`] — a tower-sessions `SessionStore` (0.15 with feature
//!   `tower-sessions-015`, the default; 0.14 with `tower-sessions-014`; both can be on at
//!   once) over [`SecondaryStorage`](rustauth_kv::SecondaryStorage) and
//!   [`SessionIndex`](rustauth_kv::SessionIndex). Signed-in sessions go into the per-user
//!   index, so an app can list a user's devices and revoke one, the others or all.
//! - [`RateLimitLayer`] (feature `rate-limit`, default) — a tower `Layer` over any
//!   [`RateLimiter`](rustauth_kv::RateLimiter): Better Auth's path table or one rule, the
//!   client from the peer address or trusted proxies' headers, 429 with `Retry-After`.
//!
//! | feature | what | pulls in |
//! |---|---|---|
//! | `tower-sessions-015` (default) | `SessionStore` for tower-sessions 0.15 | `tower-sessions-core` 0.15, `serde_json` |
//! | `tower-sessions-014` | `SessionStore` for tower-sessions 0.14 (axum-login 0.18) | `tower-sessions-core` 0.14, `serde_json` |
//! | `rate-limit` (default) | [`RateLimitLayer`] | `tower-layer`, `tower-service`, `http` |
//! | `axum` | the layer also reads axum's `ConnectInfo<SocketAddr>` | `axum` (no default features) |
//!
//! ```
//! # #[cfg(feature = "tower-sessions-015")]
//! # {
//! use rustauth_kv::Kv;
//! use rustauth_kv_tower::KvSessionStore;
//!
//! let kv = Kv::memory(); // or Kv::connect("redis://127.0.0.1:6379").await?
//! let store = KvSessionStore::new(&kv);
//! // tower_sessions::SessionManagerLayer::new(store) ...
//! # let _ = store;
//! # }
//! ```

#[cfg(feature = "sessions")]
mod session_store;
#[cfg(feature = "sessions")]
pub use session_store::{KvSessionStore, UserIdSource, ANONYMOUS_KEY_PREFIX, AXUM_LOGIN_KEY};

#[cfg(feature = "rate-limit")]
mod rate_limit;
#[cfg(feature = "rate-limit")]
pub use rate_limit::{
    Cidr, ClientIp, RateLimit, RateLimitLayer, RateLimitLayerBuilder, RequestInfo,
};

/// The tower-sessions 0.14 core crate this store implements (re-exported).
#[cfg(feature = "tower-sessions-014")]
pub use tower_sessions_core_014;
/// The tower-sessions 0.15 core crate this store implements (re-exported).
#[cfg(feature = "tower-sessions-015")]
pub use tower_sessions_core_015;

pub use rustauth_kv;

/// `docs/integrations.md`, compiled as a doctest so its programs cannot rot.
#[cfg(all(doctest, feature = "tower-sessions-015", feature = "axum"))]
#[doc = include_str!("../../../docs/integrations.md")]
struct IntegrationsDoc;

/// This crate's README, compiled as a doctest too.
#[cfg(all(doctest, feature = "tower-sessions-015", feature = "axum"))]
#[doc = include_str!("../README.md")]
struct CrateReadme;
