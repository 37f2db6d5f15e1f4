//! The contenders: the raw clients doing each workload the thinnest way they can, and
//! kv-contract's stores over `rustauth-redis`, `rustauth-fred` and memory.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use fred::prelude::{Client, ClientLike, Expiration, HashesInterface, KeysInterface, LuaInterface};
use fred::types::SetOptions;
use kv_contract::lock::Acquisition;
use kv_contract::rate_limit::{RateLimitAlgorithm, RateLimitRule};
use kv_contract::{
    Lock, LockOptions, MemoryKeyspace, MemoryLock, MemoryRateLimiter, MemorySessionIndex,
    MemoryStorage, RateLimiter, RateLimiterOptions, SecondaryStorage, ServerLock,
    ServerRateLimiter, ServerSessionIndex, ServerStorage, SessionIndex, SessionIndexOptions,
    SharedConnection, StorageOptions,
};

use crate::workload::{
    LimiterKind, Workload, KEYS, LIST_USERS, LOCKS, SESSIONS, SESSIONS_PER_USER, TTL_MS, VALUE_LEN,
};

/// What an operation failed with, as text (the bench stops on the first).
pub(crate) type OpResult = Result<(), String>;

/// One contender: runs operation `i` of a workload in run `run` (keys that must be new
/// are made unique by both).
pub(crate) trait Contender: Send + Sync + 'static {
    /// Whether this contender has the workload.
    fn supports(&self, workload: Workload) -> bool;
    /// One operation.
    fn op(&self, workload: Workload, run: u32, i: u64) -> impl Future<Output = OpResult> + Send;
}

/// The rule no run exhausts: the hot buckets are always admitted.
pub(crate) fn open_rule() -> RateLimitRule {
    RateLimitRule::new(Duration::from_secs(600), 1_000_000_000).expect("a valid rule")
}

/// The rule of the denied bucket: one unit per 10 minutes.
pub(crate) fn denied_rule() -> RateLimitRule {
    RateLimitRule::new(Duration::from_secs(600), 1).expect("a valid rule")
}

fn value() -> Bytes {
    Bytes::from(vec![b'v'; VALUE_LEN])
}

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

// ---------------------------------------------------------------------------------------
// Raw redis-rs: the same commands written directly with `redis::cmd`.

/// Raw redis-rs on a `MultiplexedConnection` or a `ConnectionManager`.
pub(crate) struct RawRedis<C> {
    conn: C,
    prefix: String,
    hot: String,
    value: Bytes,
}

/// The SHA-1s of the scripts the raw clients call by `EVALSHA` (loaded by `setup`).
fn sha(script: &kv_contract::script::Script) -> &str {
    script.sha1()
}

impl<C> RawRedis<C>
where
    C: redis::aio::ConnectionLike + Clone + Send + Sync + 'static,
{
    /// A raw contender whose keys start with `prefix`.
    pub(crate) fn new(conn: C, prefix: &str) -> Self {
        RawRedis {
            conn,
            prefix: prefix.to_owned(),
            hot: format!("{prefix}hot"),
            value: value(),
        }
    }

    /// Writes what the reading workloads read and loads the scripts.
    pub(crate) async fn setup(&self) -> OpResult {
        let mut c = self.conn.clone();
        let p = &self.prefix;
        redis::cmd("SET")
            .arg(&self.hot)
            .arg(&self.value[..])
            .exec_async(&mut c)
            .await
            .map_err(err)?;
        for script in [
            &kv_contract::script::RATE_LIMIT_FIXED_WINDOW,
            &kv_contract::script::LOCK_ACQUIRE,
            &kv_contract::script::DELETE_IF_VALUE,
        ] {
            redis::cmd("SCRIPT")
                .arg("LOAD")
                .arg(script.source())
                .exec_async(&mut c)
                .await
                .map_err(err)?;
        }
        for j in 0..SESSIONS {
            redis::cmd("HSET")
                .arg(format!("{p}s:t{j}"))
                .arg("user_id")
                .arg(format!("u{j}"))
                .arg("expires_at")
                .arg(4_000_000_000_000u64)
                .arg("value")
                .arg(&self.value[..])
                .exec_async(&mut c)
                .await
                .map_err(err)?;
        }
        for _ in 0..2 {
            self.fixed(&format!("{p}rl:denied"), 1).await?;
        }
        Ok(())
    }

    async fn fixed(&self, key: &str, max: u64) -> OpResult {
        let mut c = self.conn.clone();
        redis::cmd("EVALSHA")
            .arg(sha(&kv_contract::script::RATE_LIMIT_FIXED_WINDOW))
            .arg(1)
            .arg(key)
            .arg("-1")
            .arg(600_000)
            .arg(max)
            .arg(1)
            .arg(1)
            .query_async::<redis::Value>(&mut c)
            .await
            .map(drop)
            .map_err(err)
    }
}

impl<C> Contender for RawRedis<C>
where
    C: redis::aio::ConnectionLike + Clone + Send + Sync + 'static,
{
    fn supports(&self, workload: Workload) -> bool {
        workload.raw_commands().is_some()
    }

    async fn op(&self, workload: Workload, run: u32, i: u64) -> OpResult {
        {
            let mut c = self.conn.clone();
            let p = &self.prefix;
            match workload {
                Workload::Get => {
                    redis::cmd("GET")
                        .arg(&self.hot)
                        .query_async::<Option<Vec<u8>>>(&mut c)
                        .await
                        .map_err(err)?;
                }
                Workload::SetPx => {
                    redis::cmd("SET")
                        .arg(format!("{p}k{}", i % KEYS))
                        .arg(&self.value[..])
                        .arg("PX")
                        .arg(TTL_MS)
                        .exec_async(&mut c)
                        .await
                        .map_err(err)?;
                }
                Workload::SetNx | Workload::SetNxTake => {
                    let key = format!("{p}n{run}-{i}");
                    redis::cmd("SET")
                        .arg(&key)
                        .arg(&self.value[..])
                        .arg("NX")
                        .arg("PX")
                        .arg(TTL_MS)
                        .query_async::<redis::Value>(&mut c)
                        .await
                        .map_err(err)?;
                    if workload == Workload::SetNxTake {
                        redis::cmd("GETDEL")
                            .arg(&key)
                            .query_async::<Option<Vec<u8>>>(&mut c)
                            .await
                            .map_err(err)?;
                    }
                }
                Workload::FixedHot | Workload::Fixed10k => {
                    self.fixed(&format!("{p}rl:{}", workload.bucket(i)), 1_000_000_000)
                        .await?;
                }
                Workload::DeniedCached => self.fixed(&format!("{p}rl:denied"), 1).await?,
                Workload::SessionGet => {
                    redis::cmd("HMGET")
                        .arg(format!("{p}s:t{}", i % SESSIONS))
                        .arg("user_id")
                        .arg("expires_at")
                        .arg("value")
                        .query_async::<redis::Value>(&mut c)
                        .await
                        .map_err(err)?;
                }
                Workload::Lock => {
                    let name = i % LOCKS;
                    let lock = format!("{p}lock:{{{name}}}");
                    let fence = format!("{p}lock:{{{name}}}:fence");
                    let token = format!("{:016x}{:016x}", i, u64::from(run) << 32 | 0x5eed);
                    let (flag, _): (i64, i64) = redis::cmd("EVALSHA")
                        .arg(sha(&kv_contract::script::LOCK_ACQUIRE))
                        .arg(2)
                        .arg(&lock)
                        .arg(&fence)
                        .arg(&token)
                        .arg(10_000)
                        .query_async(&mut c)
                        .await
                        .map_err(err)?;
                    if flag == 1 {
                        redis::cmd("EVALSHA")
                            .arg(sha(&kv_contract::script::DELETE_IF_VALUE))
                            .arg(1)
                            .arg(&lock)
                            .arg(&token)
                            .query_async::<i64>(&mut c)
                            .await
                            .map_err(err)?;
                    }
                }
                other => return Err(format!("raw redis-rs has no {}", other.name())),
            }
            Ok(())
        }
    }
}

// ---------------------------------------------------------------------------------------
// Raw fred: the typed calls a fred user writes.

/// Raw fred, typed commands.
pub(crate) struct RawFred {
    client: Client,
    prefix: String,
    hot: String,
    value: Bytes,
}

impl RawFred {
    /// A raw contender whose keys start with `prefix`.
    pub(crate) fn new(client: Client, prefix: &str) -> Self {
        RawFred {
            client,
            prefix: prefix.to_owned(),
            hot: format!("{prefix}hot"),
            value: value(),
        }
    }

    /// Writes what the reading workloads read and loads the scripts.
    pub(crate) async fn setup(&self) -> OpResult {
        let c = &self.client;
        let p = &self.prefix;
        c.set::<(), _, _>(&self.hot, self.value.clone(), None, None, false)
            .await
            .map_err(err)?;
        for script in [
            &kv_contract::script::RATE_LIMIT_FIXED_WINDOW,
            &kv_contract::script::LOCK_ACQUIRE,
            &kv_contract::script::DELETE_IF_VALUE,
        ] {
            c.script_load::<String, _>(script.source())
                .await
                .map_err(err)?;
        }
        for j in 0..SESSIONS {
            c.hset::<(), _, _>(
                format!("{p}s:t{j}"),
                [
                    ("user_id", Bytes::from(format!("u{j}"))),
                    ("expires_at", Bytes::from_static(b"4000000000000")),
                    ("value", self.value.clone()),
                ],
            )
            .await
            .map_err(err)?;
        }
        for _ in 0..2 {
            self.fixed(format!("{p}rl:denied"), 1).await?;
        }
        Ok(())
    }

    async fn fixed(&self, key: String, max: u64) -> OpResult {
        self.client
            .evalsha::<fred::types::Value, _, _, _>(
                sha(&kv_contract::script::RATE_LIMIT_FIXED_WINDOW),
                key,
                vec![
                    "-1".to_owned(),
                    "600000".into(),
                    max.to_string(),
                    "1".into(),
                    "1".into(),
                ],
            )
            .await
            .map(drop)
            .map_err(err)
    }
}

impl Contender for RawFred {
    fn supports(&self, workload: Workload) -> bool {
        workload.raw_commands().is_some()
    }

    async fn op(&self, workload: Workload, run: u32, i: u64) -> OpResult {
        {
            let c = &self.client;
            let p = &self.prefix;
            match workload {
                Workload::Get => {
                    c.get::<Option<Bytes>, _>(&self.hot).await.map_err(err)?;
                }
                Workload::SetPx => {
                    c.set::<(), _, _>(
                        format!("{p}k{}", i % KEYS),
                        self.value.clone(),
                        Some(Expiration::PX(TTL_MS as i64)),
                        None,
                        false,
                    )
                    .await
                    .map_err(err)?;
                }
                Workload::SetNx | Workload::SetNxTake => {
                    let key = format!("{p}n{run}-{i}");
                    c.set::<fred::types::Value, _, _>(
                        &key,
                        self.value.clone(),
                        Some(Expiration::PX(TTL_MS as i64)),
                        Some(SetOptions::NX),
                        false,
                    )
                    .await
                    .map_err(err)?;
                    if workload == Workload::SetNxTake {
                        c.getdel::<Option<Bytes>, _>(&key).await.map_err(err)?;
                    }
                }
                Workload::FixedHot | Workload::Fixed10k => {
                    self.fixed(format!("{p}rl:{}", workload.bucket(i)), 1_000_000_000)
                        .await?;
                }
                Workload::DeniedCached => self.fixed(format!("{p}rl:denied"), 1).await?,
                Workload::SessionGet => {
                    c.hmget::<fred::types::Value, _, _>(
                        format!("{p}s:t{}", i % SESSIONS),
                        vec!["user_id", "expires_at", "value"],
                    )
                    .await
                    .map_err(err)?;
                }
                Workload::Lock => {
                    let name = i % LOCKS;
                    let lock = format!("{p}lock:{{{name}}}");
                    let fence = format!("{p}lock:{{{name}}}:fence");
                    let token = format!("{:016x}{:016x}", i, u64::from(run) << 32 | 0x5eed);
                    let (flag, _): (i64, i64) = c
                        .evalsha(
                            sha(&kv_contract::script::LOCK_ACQUIRE),
                            vec![lock.clone(), fence],
                            vec![token.clone(), "10000".to_owned()],
                        )
                        .await
                        .map_err(err)?;
                    if flag == 1 {
                        c.evalsha::<i64, _, _, _>(
                            sha(&kv_contract::script::DELETE_IF_VALUE),
                            lock,
                            token,
                        )
                        .await
                        .map_err(err)?;
                    }
                }
                other => return Err(format!("raw fred has no {}", other.name())),
            }
            Ok(())
        }
    }
}

/// Connects a raw fred client the way its documentation does (defaults: auto-pipelining
/// on).
pub(crate) async fn raw_fred_client(url: &str) -> Result<Client, String> {
    let config = fred::types::config::Config::from_url(url).map_err(err)?;
    let client = fred::types::Builder::from_config(config)
        .build()
        .map_err(err)?;
    client.init().await.map_err(err)?;
    Ok(client)
}

// ---------------------------------------------------------------------------------------
// Ours: kv-contract's stores over a backend connection, or in memory.

/// kv-contract's stores, one limiter per algorithm.
pub(crate) struct Stores {
    storage: Arc<dyn SecondaryStorage>,
    fixed: Arc<dyn RateLimiter>,
    sliding: Arc<dyn RateLimiter>,
    gcra: Arc<dyn RateLimiter>,
    cached: Arc<dyn RateLimiter>,
    sessions: Arc<dyn SessionIndex>,
    lock: Arc<dyn Lock>,
    open: RateLimitRule,
    denied: RateLimitRule,
    value: Bytes,
}

fn limiter_options(prefix: &str, kind: LimiterKind) -> RateLimiterOptions {
    let builder = RateLimiterOptions::builder().prefix(prefix);
    let builder = match kind {
        LimiterKind::Fixed => builder,
        LimiterKind::Sliding => builder.algorithm(RateLimitAlgorithm::SlidingWindow),
        LimiterKind::Gcra => builder.algorithm(RateLimitAlgorithm::Gcra { burst: None }),
        LimiterKind::Cached => builder.blocked_cache(1024),
    };
    builder.build().expect("valid limiter options")
}

fn session_options(prefix: &str) -> SessionIndexOptions {
    SessionIndexOptions::builder()
        .prefix(prefix)
        .build()
        .expect("valid session options")
}

impl Stores {
    /// The server stores over `conn`, keys under `prefix`.
    pub(crate) fn server(conn: SharedConnection, prefix: &str) -> Self {
        let limiter = |kind| -> Arc<dyn RateLimiter> {
            Arc::new(ServerRateLimiter::new(
                conn.clone(),
                limiter_options(prefix, kind),
            ))
        };
        Stores {
            storage: Arc::new(ServerStorage::new(
                conn.clone(),
                StorageOptions::builder()
                    .prefix(prefix)
                    .build()
                    .expect("valid storage options"),
            )),
            fixed: limiter(LimiterKind::Fixed),
            sliding: limiter(LimiterKind::Sliding),
            gcra: limiter(LimiterKind::Gcra),
            cached: limiter(LimiterKind::Cached),
            sessions: Arc::new(ServerSessionIndex::new(
                conn.clone(),
                session_options(prefix),
            )),
            lock: Arc::new(ServerLock::new(
                conn,
                LockOptions::builder()
                    .prefix(prefix)
                    .build()
                    .expect("valid lock options"),
            )),
            open: open_rule(),
            denied: denied_rule(),
            value: value(),
        }
    }

    /// The in-memory stores on one keyspace.
    pub(crate) fn memory(prefix: &str) -> Self {
        let keyspace = MemoryKeyspace::new();
        let limiter = |kind| -> Arc<dyn RateLimiter> {
            Arc::new(MemoryRateLimiter::new(
                keyspace.clone(),
                limiter_options(prefix, kind),
            ))
        };
        Stores {
            storage: Arc::new(MemoryStorage::with_keyspace(
                keyspace.clone(),
                StorageOptions::builder()
                    .prefix(prefix)
                    .build()
                    .expect("valid storage options"),
            )),
            fixed: limiter(LimiterKind::Fixed),
            sliding: limiter(LimiterKind::Sliding),
            gcra: limiter(LimiterKind::Gcra),
            cached: limiter(LimiterKind::Cached),
            sessions: Arc::new(MemorySessionIndex::with_keyspace(
                keyspace.clone(),
                session_options(prefix),
            )),
            lock: Arc::new(MemoryLock::new(
                keyspace,
                LockOptions::builder()
                    .prefix(prefix)
                    .build()
                    .expect("valid lock options"),
            )),
            open: open_rule(),
            denied: denied_rule(),
            value: value(),
        }
    }

    /// The observed stores of a `rustauth_kv::Kv` bundle (what an app gets from the
    /// facade). It has one limiter, the fixed window: only the workloads that need no
    /// other algorithm run on it.
    pub(crate) fn bundle(kv: &rustauth_kv::Kv) -> Self {
        let fixed = kv.rate_limiter();
        Stores {
            storage: kv.storage(),
            sliding: fixed.clone(),
            gcra: fixed.clone(),
            cached: fixed.clone(),
            fixed,
            sessions: kv.sessions(),
            lock: kv.lock(),
            open: open_rule(),
            denied: denied_rule(),
            value: value(),
        }
    }

    fn limiter(&self, kind: LimiterKind) -> &dyn RateLimiter {
        match kind {
            LimiterKind::Fixed => &*self.fixed,
            LimiterKind::Sliding => &*self.sliding,
            LimiterKind::Gcra => &*self.gcra,
            LimiterKind::Cached => &*self.cached,
        }
    }

    /// Writes what the reading workloads read, and exhausts the denied bucket.
    pub(crate) async fn setup(&self) -> OpResult {
        self.storage
            .set("hot", self.value.clone(), None)
            .await
            .map_err(err)?;
        let until = SystemTime::now() + Duration::from_secs(3600);
        for j in 0..SESSIONS {
            self.sessions
                .create(
                    &format!("u{j}"),
                    &format!("t{j}"),
                    self.value.clone(),
                    until,
                )
                .await
                .map_err(err)?;
        }
        for u in 0..LIST_USERS {
            for s in 0..SESSIONS_PER_USER {
                self.sessions
                    .create(
                        &format!("lu{u}"),
                        &format!("l{u}-{s}"),
                        self.value.clone(),
                        until,
                    )
                    .await
                    .map_err(err)?;
            }
        }
        for _ in 0..2 {
            self.cached
                .consume("denied", &self.denied, 1)
                .await
                .map_err(err)?;
        }
        Ok(())
    }
}

impl Contender for Stores {
    fn supports(&self, _workload: Workload) -> bool {
        true
    }

    async fn op(&self, workload: Workload, run: u32, i: u64) -> OpResult {
        {
            match workload {
                Workload::Get => {
                    self.storage.get("hot").await.map_err(err)?;
                }
                Workload::SetPx => {
                    self.storage
                        .set(
                            &format!("k{}", i % KEYS),
                            self.value.clone(),
                            Some(Duration::from_millis(TTL_MS)),
                        )
                        .await
                        .map_err(err)?;
                }
                Workload::SetNx | Workload::SetNxTake => {
                    let key = format!("n{run}-{i}");
                    self.storage
                        .set_if_not_exists(
                            &key,
                            self.value.clone(),
                            Some(Duration::from_millis(TTL_MS)),
                        )
                        .await
                        .map_err(err)?;
                    if workload == Workload::SetNxTake {
                        self.storage.take(&key).await.map_err(err)?;
                    }
                }
                Workload::SessionCreate | Workload::SessionRevokeAll => {
                    let user = format!("c{run}-{i}");
                    let until = SystemTime::now() + Duration::from_secs(60);
                    self.sessions
                        .create(&user, &format!("ct{run}-{i}"), self.value.clone(), until)
                        .await
                        .map_err(err)?;
                    if workload == Workload::SessionRevokeAll {
                        self.sessions.revoke_all(&user).await.map_err(err)?;
                    }
                }
                Workload::SessionGet => {
                    self.sessions
                        .get(&format!("t{}", i % SESSIONS))
                        .await
                        .map_err(err)?;
                }
                Workload::SessionList => {
                    self.sessions
                        .list(&format!("lu{}", i % LIST_USERS))
                        .await
                        .map_err(err)?;
                }
                Workload::Lock => {
                    let name = format!("l{}", i % LOCKS);
                    if let Acquisition::Acquired(guard) = self
                        .lock
                        .acquire(&name, Duration::from_secs(10))
                        .await
                        .map_err(err)?
                    {
                        let released = self.lock.release(&guard).await.map_err(err)?;
                        if released != kv_contract::lock::ReleaseOutcome::Released {
                            return Err(format!("lock {name} lost before its release"));
                        }
                    }
                }
                limited => {
                    let kind = limited
                        .limiter()
                        .expect("every other workload is a limiter");
                    let rule = if kind == LimiterKind::Cached {
                        &self.denied
                    } else {
                        &self.open
                    };
                    self.limiter(kind)
                        .consume(&limited.bucket(i), rule, 1)
                        .await
                        .map_err(err)?;
                }
            }
            Ok(())
        }
    }
}
