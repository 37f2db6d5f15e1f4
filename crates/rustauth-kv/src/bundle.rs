//! [`Kv`]: one connection, one validated prefix, every store — secondary storage, rate
//! limiter, session index, lock — plus health and an explicit close.

use std::sync::Arc;
use std::time::Duration;

use kv_contract::observe::{
    ObservedConnection, ObservedLock, ObservedRateLimiter, ObservedSessionIndex, ObservedStorage,
};
use kv_contract::{
    ConnectionOptions, KvResult, Lock, MemoryKeyspace, MemoryLock, MemoryRateLimiter,
    MemorySessionIndex, MemoryStorage, Prefix, RateLimiter, SecondaryStorage, ServerLock,
    ServerRateLimiter, ServerSessionIndex, ServerStorage, SessionIndex, SharedConnection,
};

use crate::{backend, Backend, Health, KvOptions, KvOptionsBuilder};

/// Every store of a deployment over one connection and one prefix. Cheap to clone: clones
/// share the connection and the stores.
///
/// ```
/// use std::time::Duration;
/// use rustauth_kv::{Kv, SecondaryStorage};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), rustauth_kv::KvError> {
/// let kv = Kv::memory(); // or Kv::connect("redis://127.0.0.1:6379").await?, or Kv::from_env()
/// kv.storage().set("otp:alice", "123456".into(), Some(Duration::from_secs(300))).await?;
/// assert_eq!(kv.storage().take("otp:alice").await?.as_deref(), Some(&b"123456"[..]));
/// assert!(kv.is_available().await);
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Kv {
    inner: Arc<Inner>,
}

struct Inner {
    backend: Backend,
    prefix: Prefix,
    server: Option<String>,
    connection: Option<SharedConnection>,
    keyspace: Option<MemoryKeyspace>,
    health: Health,
    storage: Arc<dyn SecondaryStorage>,
    rate_limiter: Arc<dyn RateLimiter>,
    sessions: Arc<dyn SessionIndex>,
    lock: Arc<dyn Lock>,
}

impl std::fmt::Debug for Kv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kv")
            .field("backend", &self.inner.backend)
            .field("server", &self.inner.server)
            .field("prefix", &self.inner.prefix.as_str())
            .finish_non_exhaustive()
    }
}

impl Kv {
    /// Connects to `url` with the compiled-in backend and every default (prefix
    /// `rustauth:`); `memory://` gives in-process stores.
    pub async fn connect(url: &str) -> KvResult<Kv> {
        Kv::connect_with(KvOptions::builder().url(url).build()?).await
    }

    /// Connects as configured by `REDIS_URL` (or `RUSTAUTH_KV_URL`), `RUSTAUTH_KV_BACKEND`
    /// and `RUSTAUTH_KV_PREFIX`; see [`KvOptionsBuilder::from_env`].
    pub async fn from_env() -> KvResult<Kv> {
        Kv::connect_with(KvOptionsBuilder::from_env()?.build()?).await
    }

    /// Connects with `options`: opens the one server connection (bounded by its connect
    /// timeout, version checked) and builds every store over it.
    pub async fn connect_with(options: KvOptions) -> KvResult<Kv> {
        match options.connection() {
            Some(connection) => {
                let conn = backend::connect(options.backend(), connection).await?;
                Ok(Kv::over_connection(conn, options))
            }
            None => Ok(Kv::memory_with(options)),
        }
    }

    /// In-process stores with every default: for tests and single-instance apps.
    pub fn memory() -> Kv {
        let options = KvOptions::builder()
            .memory()
            .build()
            .unwrap_or_else(|e| unreachable!("the memory defaults are valid: {e}"));
        Kv::memory_with(options)
    }

    /// In-process stores with `options` (their server settings, if any, are ignored):
    /// one [`MemoryKeyspace`] shared by every store, as one Redis is.
    pub fn memory_with(options: KvOptions) -> Kv {
        let keyspace = MemoryKeyspace::new();
        let storage = MemoryStorage::with_keyspace(keyspace.clone(), options.storage().clone());
        let rate_limiter = MemoryRateLimiter::new(keyspace.clone(), options.rate_limiter().clone());
        let sessions =
            MemorySessionIndex::with_keyspace(keyspace.clone(), options.sessions().clone());
        let lock = MemoryLock::new(keyspace.clone(), options.lock().clone());
        Kv {
            inner: Arc::new(Inner {
                backend: Backend::Memory,
                prefix: options.prefix().clone(),
                server: None,
                connection: None,
                keyspace: Some(keyspace),
                health: Health::new(None, Duration::from_secs(1)),
                storage: Arc::new(ObservedStorage::new(Arc::new(storage))),
                rate_limiter: Arc::new(ObservedRateLimiter::new(
                    Arc::new(rate_limiter),
                    options.rate_limiter().algorithm.name(),
                )),
                sessions: Arc::new(ObservedSessionIndex::new(Arc::new(sessions))),
                lock: Arc::new(ObservedLock::new(Arc::new(lock))),
            }),
        }
    }

    /// Builds every store over a connection you opened (any [`kv_contract::Connection`],
    /// e.g. one you wrapped), with `options`' prefix and store options. `is_available`
    /// waits at most `options`' command timeout (the default 2 s for memory options).
    pub fn with_connection(conn: SharedConnection, options: KvOptions) -> Kv {
        Kv::over_connection(conn, options)
    }

    fn over_connection(conn: SharedConnection, options: KvOptions) -> Kv {
        let server = options.connection().map(|c| c.server.to_string());
        let timeout = options
            .connection()
            .map_or(ConnectionOptions::DEFAULT_COMMAND_TIMEOUT, |c| {
                c.command_timeout
            });
        // Every command gets its client span and duration (see `kv_contract::observe`).
        let conn: SharedConnection = match options.connection() {
            Some(c) => Arc::new(ObservedConnection::new(conn, &c.server)),
            None => conn,
        };
        Kv {
            inner: Arc::new(Inner {
                backend: options.backend(),
                prefix: options.prefix().clone(),
                server,
                connection: Some(conn.clone()),
                keyspace: None,
                health: Health::new(Some(conn.clone()), timeout),
                storage: Arc::new(ObservedStorage::new(Arc::new(ServerStorage::new(
                    conn.clone(),
                    options.storage().clone(),
                )))),
                rate_limiter: Arc::new(ObservedRateLimiter::new(
                    Arc::new(ServerRateLimiter::new(
                        conn.clone(),
                        options.rate_limiter().clone(),
                    )),
                    options.rate_limiter().algorithm.name(),
                )),
                sessions: Arc::new(ObservedSessionIndex::new(Arc::new(
                    ServerSessionIndex::new(conn.clone(), options.sessions().clone()),
                ))),
                lock: Arc::new(ObservedLock::new(Arc::new(ServerLock::new(
                    conn,
                    options.lock().clone(),
                )))),
            }),
        }
    }

    /// Secondary storage (Better Auth 1.7's `SecondaryStorage` — `get`, `set`, `delete`,
    /// `take` as `getAndDelete`, `increment` — plus `set_if_not_exists`,
    /// `compare_and_set`, ...), keys `{prefix}secondary:{key}`.
    pub fn storage(&self) -> Arc<dyn SecondaryStorage> {
        self.inner.storage.clone()
    }

    /// The rate limiter, buckets `{prefix}rate-limit:{bucket}`.
    pub fn rate_limiter(&self) -> Arc<dyn RateLimiter> {
        self.inner.rate_limiter.clone()
    }

    /// The per-user session index.
    pub fn sessions(&self) -> Arc<dyn SessionIndex> {
        self.inner.sessions.clone()
    }

    /// Locks with fencing tokens, keys `{prefix}lock:{<name>}`.
    pub fn lock(&self) -> Arc<dyn Lock> {
        self.inner.lock.clone()
    }

    /// Health checks of the server.
    pub fn health(&self) -> Health {
        self.inner.health.clone()
    }

    /// Whether the server answers a `PING` within the command timeout (always `true` on
    /// memory). Never fails, never waits longer than the command timeout.
    pub async fn is_available(&self) -> bool {
        self.inner.health.is_available().await
    }

    /// Closes the connection: calls still in flight finish or fail, later calls on any
    /// store of this bundle (and its clones) fail at once with `Unavailable`. Idempotent.
    /// A no-op on memory.
    pub async fn close(&self) -> KvResult<()> {
        match &self.inner.connection {
            Some(c) => c.close().await,
            None => Ok(()),
        }
    }

    /// The backend serving the stores.
    pub fn backend(&self) -> Backend {
        self.inner.backend
    }

    /// The bundle's key prefix.
    pub fn prefix(&self) -> &Prefix {
        &self.inner.prefix
    }

    /// The server, as `redis://host:port/db` with any password redacted; `None` on memory.
    pub fn server(&self) -> Option<&str> {
        self.inner.server.as_deref()
    }

    /// The shared server connection, for commands of your own; `None` on memory.
    pub fn connection(&self) -> Option<SharedConnection> {
        self.inner.connection.clone()
    }

    /// The in-process keyspace of a memory bundle; `None` on a server.
    pub fn memory_keyspace(&self) -> Option<&MemoryKeyspace> {
        self.inner.keyspace.as_ref()
    }
}
