//! What a case runs against: a topology (which backend writes, which reads), the stores,
//! a raw probe, and a namespace of its own.
//!
//! Every storage case is written once over two stores, `a` and `b`, on the same data.
//! For `memory`, `redis` and `fred`, both are that backend; for `redis+fred` and
//! `fred+redis`, `a` is one client and `b` the other, so every operation is also checked
//! across backends.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use kv_contract::memory::MemoryKeyspace;
use kv_contract::{
    ConnectionOptions, KeyCodec, Namespace, SecondaryStorage, ServerStorage, SharedConnection,
    StorageOptions,
};
use kv_contract::{MemoryStorage, Prefix};

use crate::probe::Probe;
use crate::server;

/// One client implementation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BackendKind {
    /// kv-contract's in-memory store.
    Memory,
    /// rustauth-redis (redis-rs).
    Redis,
    /// rustauth-redis with write coalescing on (`ConnectionOptions::coalesce_writes`).
    RedisCoalesced,
    /// rustauth-fred (fred).
    Fred,
    /// rustauth-redis through Sentinel (`redis-sentinel://`).
    RedisSentinel,
    /// rustauth-fred through Sentinel (`redis-sentinel://`).
    FredSentinel,
}

impl BackendKind {
    /// The backend's short name.
    pub fn name(self) -> &'static str {
        match self {
            BackendKind::Memory => "memory",
            BackendKind::Redis => "redis",
            BackendKind::RedisCoalesced => "redis-coalesced",
            BackendKind::Fred => "fred",
            BackendKind::RedisSentinel => "redis-sentinel",
            BackendKind::FredSentinel => "fred-sentinel",
        }
    }

    /// The facade's backend for this kind (the URL or options say standalone, cluster,
    /// Sentinel or coalescing; the facade only picks the client).
    pub fn facade_backend(self) -> rustauth_kv::Backend {
        match self {
            BackendKind::Memory => rustauth_kv::Backend::Memory,
            BackendKind::Redis | BackendKind::RedisCoalesced | BackendKind::RedisSentinel => {
                rustauth_kv::Backend::Redis
            }
            BackendKind::Fred | BackendKind::FredSentinel => rustauth_kv::Backend::Fred,
        }
    }

    /// Whether this backend reaches its server through Sentinel.
    pub fn is_sentinel(self) -> bool {
        matches!(self, BackendKind::RedisSentinel | BackendKind::FredSentinel)
    }

    /// Connects this backend (a server backend) with `options`.
    pub async fn connect(
        self,
        options: &ConnectionOptions,
    ) -> kv_contract::KvResult<SharedConnection> {
        Ok(match self {
            BackendKind::Redis | BackendKind::RedisSentinel => {
                Arc::new(rustauth_redis::RedisConnection::connect(options).await?)
            }
            BackendKind::RedisCoalesced => {
                let mut options = options.clone();
                options.coalesce_writes = true;
                Arc::new(rustauth_redis::RedisConnection::connect(&options).await?)
            }
            BackendKind::Fred | BackendKind::FredSentinel => {
                Arc::new(rustauth_fred::FredConnection::connect(options).await?)
            }
            BackendKind::Memory => panic!("the memory backend has no connection"),
        })
    }
}

/// Which backend writes (`a`) and which reads (`b`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Topology {
    /// The first store's backend.
    pub a: BackendKind,
    /// The second store's backend.
    pub b: BackendKind,
    /// Both stores talk to a Redis Cluster (3 primaries, 1 replica each) instead of one
    /// server.
    pub cluster: bool,
}

impl Topology {
    /// Memory only.
    pub const MEMORY: Topology = Topology {
        a: BackendKind::Memory,
        b: BackendKind::Memory,
        cluster: false,
    };
    /// redis-rs only.
    pub const REDIS: Topology = Topology {
        a: BackendKind::Redis,
        b: BackendKind::Redis,
        cluster: false,
    };
    /// redis-rs with write coalescing only.
    pub const REDIS_COALESCED: Topology = Topology {
        a: BackendKind::RedisCoalesced,
        b: BackendKind::RedisCoalesced,
        cluster: false,
    };
    /// fred only.
    pub const FRED: Topology = Topology {
        a: BackendKind::Fred,
        b: BackendKind::Fred,
        cluster: false,
    };
    /// redis-rs writes, fred reads.
    pub const REDIS_FRED: Topology = Topology {
        a: BackendKind::Redis,
        b: BackendKind::Fred,
        cluster: false,
    };
    /// fred writes, redis-rs reads.
    pub const FRED_REDIS: Topology = Topology {
        a: BackendKind::Fred,
        b: BackendKind::Redis,
        cluster: false,
    };

    /// redis-rs through Sentinel.
    pub const REDIS_SENTINEL: Topology = Topology {
        a: BackendKind::RedisSentinel,
        b: BackendKind::RedisSentinel,
        cluster: false,
    };
    /// fred through Sentinel.
    pub const FRED_SENTINEL: Topology = Topology {
        a: BackendKind::FredSentinel,
        b: BackendKind::FredSentinel,
        cluster: false,
    };
    /// redis-rs writes, fred reads, both through Sentinel.
    pub const REDIS_FRED_SENTINEL: Topology = Topology {
        a: BackendKind::RedisSentinel,
        b: BackendKind::FredSentinel,
        cluster: false,
    };
    /// fred writes, redis-rs reads, both through Sentinel.
    pub const FRED_REDIS_SENTINEL: Topology = Topology {
        a: BackendKind::FredSentinel,
        b: BackendKind::RedisSentinel,
        cluster: false,
    };
    /// redis-rs only, on a Redis Cluster.
    pub const REDIS_CLUSTER: Topology = Topology::REDIS.on_cluster();
    /// fred only, on a Redis Cluster.
    pub const FRED_CLUSTER: Topology = Topology::FRED.on_cluster();
    /// redis-rs writes, fred reads, on a Redis Cluster.
    pub const REDIS_FRED_CLUSTER: Topology = Topology::REDIS_FRED.on_cluster();
    /// fred writes, redis-rs reads, on a Redis Cluster.
    pub const FRED_REDIS_CLUSTER: Topology = Topology::FRED_REDIS.on_cluster();

    /// Every topology, in table order.
    pub const ALL: [Topology; 14] = [
        Topology::MEMORY,
        Topology::REDIS,
        Topology::REDIS_COALESCED,
        Topology::FRED,
        Topology::REDIS_FRED,
        Topology::FRED_REDIS,
        Topology::REDIS_SENTINEL,
        Topology::FRED_SENTINEL,
        Topology::REDIS_FRED_SENTINEL,
        Topology::FRED_REDIS_SENTINEL,
        Topology::REDIS_CLUSTER,
        Topology::FRED_CLUSTER,
        Topology::REDIS_FRED_CLUSTER,
        Topology::FRED_REDIS_CLUSTER,
    ];

    /// The same backends on a Redis Cluster.
    pub const fn on_cluster(self) -> Topology {
        Topology {
            cluster: true,
            ..self
        }
    }

    /// `memory`, `redis`, `fred`, `redis+fred`, `fred+redis`, and with `-cluster` after
    /// the cluster ones (`redis-cluster`, `redis+fred-cluster`, ...).
    pub fn name(self) -> String {
        let base = if self.a == self.b {
            self.a.name().to_owned()
        } else {
            format!("{}+{}", self.a.name(), self.b.name())
        };
        if self.cluster {
            format!("{base}-cluster")
        } else {
            base
        }
    }

    /// Whether this topology reaches its server through Sentinel.
    pub fn is_sentinel(self) -> bool {
        self.a.is_sentinel()
    }

    /// Whether this topology needs a Redis server.
    pub fn needs_server(self) -> bool {
        self.a != BackendKind::Memory || self.b != BackendKind::Memory
    }
}

static NEXT: AtomicU64 = AtomicU64::new(0);

/// What every [`unique_prefix`] starts with: the key pattern of the test app user.
pub const PREFIX_ROOT: &str = "ct";
/// The least-privilege user the server topologies connect as (see [`app_url`]).
pub const APP_USER: &str = "rustauth-app";

/// The URL the storage cases' stores connect with: on a server this process started, as
/// [`APP_USER`], created with `kv_contract::acl::app_user_rule` for [`PREFIX_ROOT`] — so
/// every storage, rate-limit, session and lock case proves the documented ACL suffices
/// and that no key outside the prefix is touched. On an external server
/// (`RUSTAUTH_REDIS_URL`), its URL as given (we do not create users there).
pub async fn app_url() -> String {
    static URL: tokio::sync::OnceCell<String> = tokio::sync::OnceCell::const_new();
    URL.get_or_init(|| async {
        let shared = server::shared();
        let server::SharedServer::Own(own) = shared else {
            return shared.url();
        };
        let password = format!("app-{}", std::process::id());
        let probe = Probe::connect(&own.url()).await;
        let root = Prefix::new(PREFIX_ROOT).expect("a valid prefix");
        let mut cmd = redis::cmd("ACL");
        cmd.arg("SETUSER")
            .arg(APP_USER)
            .arg("reset")
            .arg(format!(">{password}"));
        for rule in kv_contract::acl::app_user_rule(&root) {
            cmd.arg(rule);
        }
        let _: () = probe.command(&cmd).await;
        format!("redis://{APP_USER}:{password}@127.0.0.1:{}", own.port())
    })
    .await
    .clone()
}

/// A prefix no other case (in this or another process on the same server) uses.
pub fn unique_prefix(case: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "{PREFIX_ROOT}{}x{}x{}:{case}:",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed),
        nanos
    )
}

/// Where a topology's data lives.
#[derive(Clone)]
enum Place {
    Memory(MemoryKeyspace),
    Server {
        a: SharedConnection,
        b: SharedConnection,
    },
}

/// One side of a topology, for building stores other than secondary storage on it.
#[derive(Clone, Debug)]
pub enum BackendHandle {
    /// The memory keyspace (shared by both sides of the memory topology).
    Memory(MemoryKeyspace),
    /// A server connection of the side's client.
    Server(SharedConnection),
}

/// Everything a storage case gets.
#[derive(Clone)]
pub struct Ctx {
    /// The topology.
    pub topology: Topology,
    /// The first store (writes, by convention).
    pub a: Arc<dyn SecondaryStorage>,
    /// The second store, on the same namespace (reads, by convention).
    pub b: Arc<dyn SecondaryStorage>,
    /// A raw view of the stored data.
    pub probe: Probe,
    /// The stores' options (their prefix is unique to this case).
    pub options: StorageOptions,
    place: Place,
}

/// Where the stores of a server `topology` connect (its shared deployment's URL) and a
/// raw probe of that deployment. Standalone: the least-privilege app user's URL, and the
/// probe as the admin. Through Sentinel: the sentinel URL, and the probe on the primary
/// the sentinels name. Cluster: the cluster URL, and a probe that asks the key's owner.
pub async fn server_target(topology: Topology) -> (String, Probe) {
    if topology.is_sentinel() {
        let deployment = crate::sentinel::shared();
        let primary = deployment.primary_url().expect("sentinel primary");
        let probe = Probe::connect_with_timeout(&primary, std::time::Duration::from_secs(10)).await;
        (deployment.url(), probe)
    } else if topology.cluster {
        let cluster = crate::cluster::shared();
        (
            cluster.url(),
            Probe::connect_cluster(&cluster.node_urls()).await,
        )
    } else {
        (
            app_url().await,
            Probe::connect(&server::shared().url()).await,
        )
    }
}

impl Ctx {
    /// Builds the stores of `topology` for the case named `case`.
    pub async fn new(topology: Topology, case: &str) -> Ctx {
        let options = StorageOptions::builder()
            .prefix(unique_prefix(case))
            .build()
            .expect("valid test prefix");
        let (place, probe) = if topology.needs_server() {
            let (url, probe) = server_target(topology).await;
            let conn_options = ConnectionOptions::from_url(&url).expect("server URL");
            let a = topology.a.connect(&conn_options).await.unwrap_or_else(|e| {
                panic!(
                    "{} cannot connect to {}: {e}",
                    topology.a.name(),
                    kv_contract::config::redact_url(&url)
                )
            });
            let b = if topology.b == topology.a {
                a.clone()
            } else {
                topology
                    .b
                    .connect(&conn_options)
                    .await
                    .unwrap_or_else(|e| panic!("{} cannot connect: {e}", topology.b.name()))
            };
            (Place::Server { a, b }, probe)
        } else {
            let ks = MemoryKeyspace::new();
            (Place::Memory(ks.clone()), Probe::Memory(ks))
        };
        let mut ctx = Ctx {
            topology,
            a: Arc::new(MemoryStorage::new()),
            b: Arc::new(MemoryStorage::new()),
            probe,
            options: options.clone(),
            place,
        };
        ctx.a = ctx.store_a(options.clone());
        ctx.b = ctx.store_b(options);
        ctx
    }

    /// Another store on `a`'s backend, with other options (another prefix).
    pub fn store_a(&self, options: StorageOptions) -> Arc<dyn SecondaryStorage> {
        match &self.place {
            Place::Memory(ks) => Arc::new(MemoryStorage::with_keyspace(ks.clone(), options)),
            Place::Server { a, .. } => Arc::new(ServerStorage::new(a.clone(), options)),
        }
    }

    /// Another store on `b`'s backend, with other options (another prefix).
    pub fn store_b(&self, options: StorageOptions) -> Arc<dyn SecondaryStorage> {
        match &self.place {
            Place::Memory(ks) => Arc::new(MemoryStorage::with_keyspace(ks.clone(), options)),
            Place::Server { b, .. } => Arc::new(ServerStorage::new(b.clone(), options)),
        }
    }

    /// Where `a` stores its data: the keyspace or `a`'s connection.
    pub fn backend_a(&self) -> BackendHandle {
        match &self.place {
            Place::Memory(ks) => BackendHandle::Memory(ks.clone()),
            Place::Server { a, .. } => BackendHandle::Server(a.clone()),
        }
    }

    /// Where `b` stores its data: the keyspace or `b`'s connection.
    pub fn backend_b(&self) -> BackendHandle {
        match &self.place {
            Place::Memory(ks) => BackendHandle::Memory(ks.clone()),
            Place::Server { b, .. } => BackendHandle::Server(b.clone()),
        }
    }

    /// The codec of this case's namespace.
    pub fn codec(&self) -> &KeyCodec {
        &self.options.codec
    }

    /// The prefix of this case.
    pub fn prefix(&self) -> &Prefix {
        self.options.codec.prefix()
    }

    /// The physical key of a logical secondary key.
    pub fn physical(&self, logical: &str) -> Vec<u8> {
        self.codec()
            .key(Namespace::Secondary, logical)
            .expect("valid key")
    }

    /// Options with another prefix (built from this case's own, so still unique).
    pub fn options_with_prefix(&self, prefix: &str) -> StorageOptions {
        StorageOptions::builder()
            .prefix(prefix)
            .build()
            .expect("valid prefix")
    }

    /// The shared server's log tail, if this process started it (for failure reports).
    pub fn server_log_tail(&self) -> Option<String> {
        match self.place {
            Place::Server { .. } if self.topology.is_sentinel() => {
                crate::sentinel::shared_log_tail()
            }
            Place::Server { .. } if self.topology.cluster => crate::cluster::shared_log_tail(),
            Place::Server { .. } => server::shared().log_tail(),
            Place::Memory(_) => None,
        }
    }
}
