//! The client-agnostic core of rustauth-kv: the Redis/Valkey layer of a Rust auth stack.
//!
//! This crate owns everything that is not "send these bytes with this client":
//!
//! | module | what it owns |
//! |---|---|
//! | [`acl`] | the least-privilege ACL rule of an app user: its key pattern and commands |
//! | [`keys`] | the key codec `{prefix}secondary:{key}`, prefix validation |
//! | [`ttl`] | the TTL table (`None` = no expiry, `Some(0)` = delete) |
//! | [`glob`] | SCAN `MATCH` escaping |
//! | [`slot`] | Redis Cluster hash slots (to prove multi-key scripts stay in one slot) |
//! | [`script`] | the Lua sources and their SHA1s |
//! | [`wire`] | [`Command`], [`Reply`] and the [`Connection`] trait backends implement |
//! | [`config`] | URL parsing, timeouts, reconnect policy, password redaction |
//! | [`lock`] | distributed locks with fencing tokens ([`Lock`], [`ServerLock`], [`MemoryLock`]) |
//! | [`storage`] | the [`SecondaryStorage`] trait and its options |
//! | [`server`] | [`ServerStorage`]: the trait on any Redis connection |
//! | [`memory`] | [`MemoryStorage`]: the executable spec and embedded default |
//! | [`observe`] | OpenTelemetry-named spans, `metrics` counters, loud degradation events |
//! | [`health`] | `PING` latency, `INFO server` (Redis/Valkey, version, mode), the minimum-version check |
//! | [`breaker`] | [`CircuitBreaker`]: stop calling an unavailable server, probe, recover |
//! | [`resilient`] | wrappers that degrade by policy (fail, skip, fall back) while Redis is down |
//! | [`rate_limit`] | [`RateLimiter`]: atomic, skew-free rate limits, four algorithms |
//! | [`session`] | the per-user [`SessionIndex`]: memory and server implementations |
//! | [`slot`] | Redis Cluster hash slots, for splitting batches by slot |
//! | [`error`] | [`KvError`] and its [`ErrorKind`]s |
//! | [`better_auth`] | Better Auth's session layout (value, index, revocation watermark) and signed cookie |
//! | [`admin`] | operator operations: namespaces of a prefix, `inspect` (keys and memory), `clear_namespace` |
//!
//! It never depends on a Redis client: `rustauth-redis` (redis-rs) and `rustauth-fred`
//! (fred) implement [`Connection`] and nothing else, so both put the same bytes in Redis.
//!
//! ```
//! use std::time::Duration;
//! use kv_contract::{MemoryStorage, SecondaryStorage, SecondaryStorageExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), kv_contract::KvError> {
//! let store = MemoryStorage::new();
//! store.set_string("otp:alice", "123456", Some(Duration::from_secs(300))).await?;
//! assert_eq!(store.take("otp:alice").await?.as_deref(), Some(&b"123456"[..]));
//! assert_eq!(store.take("otp:alice").await?, None); // one-time: gone after the first take
//! # Ok(())
//! # }
//! ```
//!
//! Minimum server version: Redis 6.2 or Valkey 7.2 (`GETDEL`, `SET ... KEEPTTL`).

pub mod acl;
pub mod admin;
pub mod better_auth;
pub mod breaker;
pub mod cluster;
pub mod config;
pub mod connect;
pub mod error;
pub mod glob;
pub mod health;
pub mod keys;
pub mod lock;
pub mod memory;
pub mod observe;
pub mod rate_limit;
pub mod resilient;
pub mod script;
pub mod server;
pub mod session;
pub mod slot;
pub mod storage;
pub mod ttl;
pub mod wire;

pub use breaker::{BreakerOptions, CircuitBreaker};
pub use config::{ConnectionOptions, Endpoint, NodeAddress, Password, ServerAddress};
pub use error::{ErrorKind, KvError, KvResult};
pub use health::{ServerHealth, ServerInfo};
pub use keys::{KeyCodec, LockKeys, Namespace, NamespaceName, Prefix, DEFAULT_PREFIX};
pub use lock::{Lock, LockExt, LockOptions, MemoryLock, ServerLock};
pub use memory::{MemoryKeyspace, MemoryStorage};
pub use rate_limit::{
    MemoryRateLimiter, RateLimitDecision, RateLimitRule, RateLimiter, RateLimiterExt,
    RateLimiterOptions, ServerRateLimiter,
};
pub use resilient::{OnUnavailable, ResilientLock, ResilientSessionIndex, ResilientStorage};
pub use server::{ServerStorage, SharedConnection};
pub use session::{MemorySessionIndex, ServerSessionIndex, SessionIndex, SessionIndexOptions};
pub use storage::{SecondaryStorage, SecondaryStorageExt, StorageOptions};
pub use wire::{Command, Connection, Reply};

/// Re-exported so backends and users name one version.
pub use async_trait::async_trait;
pub use bytes::Bytes;
