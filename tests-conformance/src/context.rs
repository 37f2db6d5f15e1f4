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
    /// rustauth-fred (fred).
    Fred,
}

impl BackendKind {
    /// The backend's short name.
    pub fn name(self) -> &'static str {
        match self {
            BackendKind::Memory => "memory",
            BackendKind::Redis => "redis",
            BackendKind::Fred => "fred",
        }
    }

    /// Connects this backend (a server backend) with `options`.
    pub async fn connect(
        self,
        options: &ConnectionOptions,
    ) -> kv_contract::KvResult<SharedConnection> {
        Ok(match self {
            BackendKind::Redis => {
                Arc::new(rustauth_redis::RedisConnection::connect(options).await?)
            }
            BackendKind::Fred => Arc::new(rustauth_fred::FredConnection::connect(options).await?),
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

    /// redis-rs only, on a Redis Cluster.
    pub const REDIS_CLUSTER: Topology = Topology::REDIS.on_cluster();
    /// fred only, on a Redis Cluster.
    pub const FRED_CLUSTER: Topology = Topology::FRED.on_cluster();
    /// redis-rs writes, fred reads, on a Redis Cluster.
    pub const REDIS_FRED_CLUSTER: Topology = Topology::REDIS_FRED.on_cluster();
    /// fred writes, redis-rs reads, on a Redis Cluster.
    pub const FRED_REDIS_CLUSTER: Topology = Topology::FRED_REDIS.on_cluster();

    /// Every topology, in table order.
    pub const ALL: [Topology; 9] = [
        Topology::MEMORY,
        Topology::REDIS,
        Topology::FRED,
        Topology::REDIS_FRED,
        Topology::FRED_REDIS,
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

    /// Whether this topology needs a Redis server.
    pub fn needs_server(self) -> bool {
        self.a != BackendKind::Memory || self.b != BackendKind::Memory
    }
}

static NEXT: AtomicU64 = AtomicU64::new(0);

/// A prefix no other case (in this or another process on the same server) uses.
pub fn unique_prefix(case: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "ct{}x{}x{}:{case}:",
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

impl Ctx {
    /// Builds the stores of `topology` for the case named `case`.
    pub async fn new(topology: Topology, case: &str) -> Ctx {
        let options = StorageOptions::builder()
            .prefix(unique_prefix(case))
            .build()
            .expect("valid test prefix");
        let (place, probe) = if topology.needs_server() {
            let url = if topology.cluster {
                crate::cluster::shared().url()
            } else {
                server::shared().url()
            };
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
            let probe = if topology.cluster {
                Probe::connect_cluster(&crate::cluster::shared().node_urls()).await
            } else {
                Probe::connect(&url).await
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
            Place::Server { .. } if self.topology.cluster => crate::cluster::shared_log_tail(),
            Place::Server { .. } => server::shared().log_tail(),
            Place::Memory(_) => None,
        }
    }
}
