//! The Redis/Valkey layer of a Rust auth stack, in one crate: secondary storage (Better
//! Auth's contract, with `take`, `set_if_not_exists`, `compare_and_set`), rate limits,
//! a per-user session index and locks with fencing tokens — from one connection and one
//! prefix, with the backend picked by cargo feature.
//!
//! | feature | what it adds |
//! |---|---|
//! | `redis` (default) | the redis-rs backend ([`RedisConnection`], re-exports `redis`) |
//! | `fred` | the fred backend ([`FredConnection`], re-exports `fred`) |
//! | `tls-rustls` | `rediss://` / `valkeys://` with rustls, for every enabled backend |
//! | `tls-native-tls` | the same with the platform's TLS library |
//! | `opentelemetry` | `otel`: the stores' metrics into an OpenTelemetry `Meter`, the span bridge re-exported |
//!
//! With no backend feature (`default-features = false`) the crate still works: every
//! store runs in process memory ([`Kv::memory`]), the embedded default for tests and
//! single-instance apps. With both backends, `redis` is the default and
//! [`KvOptionsBuilder::backend`] (or `RUSTAUTH_KV_BACKEND=fred`) picks fred. Both send
//! the same bytes: data written by one is read by the other.
//!
//! ```toml
//! [dependencies]
//! rustauth-kv = "0.1"                                            # redis-rs
//! # rustauth-kv = { version = "0.1", default-features = false, features = ["fred"] }
//! tokio = { version = "1", features = ["macros", "rt-multi-thread"] }
//! ```
//!
//! ```
//! use std::time::Duration;
//! use rustauth_kv::{Kv, RateLimitRule, SecondaryStorage};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), rustauth_kv::KvError> {
//! // Kv::from_env() reads REDIS_URL; Kv::connect("redis://127.0.0.1:6379") takes a URL.
//! let kv = Kv::memory();
//!
//! // A one-time code: readable once, gone after five minutes anyway.
//! let codes = kv.storage();
//! codes.set("otp:alice", "123456".into(), Some(Duration::from_secs(300))).await?;
//! assert_eq!(codes.take("otp:alice").await?.as_deref(), Some(&b"123456"[..]));
//! assert_eq!(codes.take("otp:alice").await?, None);
//!
//! // Three sign-in attempts per minute per address.
//! let rule = RateLimitRule::new(Duration::from_secs(60), 3)?;
//! for _ in 0..3 {
//!     assert!(kv.rate_limiter().consume("203.0.113.7|/sign-in", &rule, 1).await?.allowed);
//! }
//! assert!(!kv.rate_limiter().consume("203.0.113.7|/sign-in", &rule, 1).await?.allowed);
//! kv.close().await?;
//! # Ok(())
//! # }
//! ```
//!
//! Servers: Redis ≥ 6.2 or Valkey ≥ 7.2. Everything of [`kv_contract`] is re-exported here;
//! `docs/` in the repository has the wire format, the TTL table and the operations guide.

#![cfg_attr(docsrs, feature(doc_auto_cfg))]

mod availability;
mod backend;
mod bundle;
mod env;
mod options;
#[cfg(feature = "opentelemetry")]
pub mod otel;

pub use availability::Health;
pub use backend::Backend;
pub use bundle::Kv;
pub use env::{BACKEND_VAR, PREFIX_VAR, REDIS_URL, URL_VAR};
pub use options::{KvOptions, KvOptionsBuilder, MEMORY_URL};

/// The client-agnostic core: traits, options, errors, memory stores.
pub use kv_contract;
pub use kv_contract::*;

/// The redis-rs client crate, at the version the backend uses.
#[cfg(feature = "redis")]
pub use redis;
#[cfg(feature = "redis")]
pub use rustauth_redis::RedisConnection;

/// The fred client crate, at the version the backend uses.
#[cfg(feature = "fred")]
pub use fred;
#[cfg(feature = "fred")]
pub use rustauth_fred::FredConnection;

/// The workspace README's example, compiled as a doctest so it cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
struct WorkspaceReadme;

/// This crate's README, compiled as a doctest too.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct CrateReadme;
