//! A raw view of what is physically stored, independent of the backends under test: a
//! plain redis-rs connection for servers, the keyspace itself for memory.
//!
//! Cases assert through it the exact key bytes, value bytes, `TYPE` and `PTTL`, not only
//! what the API returns.

use kv_contract::memory::{MemoryKeyspace, Value as MemValue};
use kv_contract::Bytes;
use redis::aio::MultiplexedConnection;
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{MultipleNodeRoutingInfo, ResponsePolicy, RoutingInfo};
use std::collections::BTreeMap;
use std::time::Duration;

/// What a key holds, read raw: the value of a string, every field of a hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stored {
    /// A string's bytes (`GET`).
    String(Vec<u8>),
    /// A hash's fields (`HGETALL`), sorted by field.
    Hash(BTreeMap<Vec<u8>, Vec<u8>>),
    /// Another type, by its `TYPE` name.
    Other(String),
}

/// A raw connection to where a backend stores its data.
#[derive(Clone)]
pub enum Probe {
    /// A server, through redis-rs's plain multiplexed connection (no rustauth code).
    Server(MultiplexedConnection),
    /// The memory keyspace.
    Memory(MemoryKeyspace),
    /// A Redis Cluster, through redis-rs's plain cluster connection: each command goes to
    /// the primary that owns its key, so byte probes read the owning node.
    Cluster(ClusterConnection),
}

/// `PTTL` of a key: missing, no expiry, or milliseconds left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pttl {
    /// The key does not exist (`-2`).
    Missing,
    /// The key has no expiry (`-1`).
    Persistent,
    /// Milliseconds left.
    Ms(u64),
}

impl Probe {
    /// A probe on the server at `url`.
    pub async fn connect(url: &str) -> Self {
        let client = redis::Client::open(url).expect("probe URL");
        Probe::Server(
            client
                .get_multiplexed_async_connection()
                .await
                .unwrap_or_else(|e| panic!("probe cannot connect to {url}: {e}")),
        )
    }

    /// A probe on the server at `url` whose replies may take up to `response_timeout`
    /// (the default is 500 ms): a primary that replicates to two replicas while four
    /// cases load 200k keys each answers a 10k-command pipeline more slowly than that.
    pub async fn connect_with_timeout(url: &str, response_timeout: Duration) -> Self {
        let client = redis::Client::open(url).expect("probe URL");
        let config =
            redis::AsyncConnectionConfig::new().set_response_timeout(Some(response_timeout));
        Probe::Server(
            client
                .get_multiplexed_async_connection_with_config(&config)
                .await
                .unwrap_or_else(|e| panic!("probe cannot connect to {url}: {e}")),
        )
    }

    /// A probe on the cluster with seed `node_urls` (`redis://host:port` each).
    pub async fn connect_cluster(node_urls: &[String]) -> Self {
        let client = redis::cluster::ClusterClient::builder(node_urls.to_vec())
            .build()
            .expect("cluster probe URLs");
        Probe::Cluster(
            client
                .get_async_connection()
                .await
                .unwrap_or_else(|e| panic!("probe cannot connect to the cluster: {e}")),
        )
    }

    async fn query<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> T {
        match self {
            Probe::Cluster(c) => cmd
                .query_async(&mut c.clone())
                .await
                .unwrap_or_else(|e| panic!("probe command failed: {e}")),
            Probe::Server(c) => cmd
                .query_async(&mut c.clone())
                .await
                .unwrap_or_else(|e| panic!("probe command failed: {e}")),
            Probe::Memory(_) => unreachable!("server-only probe call"),
        }
    }

    /// Sends any command to the server (server probes only), e.g. `INFO commandstats`.
    pub async fn command<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> T {
        self.query(cmd).await
    }

    /// The stored bytes under a physical key.
    pub async fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        match self {
            Probe::Memory(ks) => ks.inspect(key).map(|e| match e.value {
                MemValue::String(b) => b.to_vec(),
                other => panic!("GET of a {} key: WRONGTYPE", other.type_name()),
            }),
            Probe::Server(_) | Probe::Cluster(_) => self.query(redis::cmd("GET").arg(key)).await,
        }
    }

    /// `PTTL` of a physical key.
    pub async fn pttl(&self, key: &[u8]) -> Pttl {
        let raw: i64 = match self {
            Probe::Memory(ks) => match ks.inspect(key) {
                None => -2,
                Some(e) => e.pttl_ms.map_or(-1, |ms| ms as i64),
            },
            Probe::Server(_) | Probe::Cluster(_) => self.query(redis::cmd("PTTL").arg(key)).await,
        };
        match raw {
            -2 => Pttl::Missing,
            -1 => Pttl::Persistent,
            ms => Pttl::Ms(ms as u64),
        }
    }

    /// `TYPE` of a physical key (`string`, `none`, ...).
    pub async fn key_type(&self, key: &[u8]) -> String {
        match self {
            Probe::Memory(ks) => ks
                .inspect(key)
                .map_or("none", |e| e.value.type_name())
                .to_owned(),
            Probe::Server(_) | Probe::Cluster(_) => {
                let v: redis::Value = self.query(redis::cmd("TYPE").arg(key)).await;
                match v {
                    redis::Value::SimpleString(s) => s,
                    redis::Value::Okay => "OK".into(),
                    other => format!("{other:?}"),
                }
            }
        }
    }

    /// `HGETALL` of a physical key, fields sorted (empty when the key is absent).
    pub async fn hgetall(&self, key: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
        let mut fields: Vec<(Vec<u8>, Vec<u8>)> = match self {
            Probe::Memory(ks) => match ks.inspect(key).map(|e| e.value) {
                None => Vec::new(),
                Some(MemValue::Hash(h)) => h
                    .into_iter()
                    .map(|(f, v)| (f.to_vec(), v.to_vec()))
                    .collect(),
                Some(other) => panic!("HGETALL of a {} key: WRONGTYPE", other.type_name()),
            },
            Probe::Server(_) | Probe::Cluster(_) => {
                self.query(redis::cmd("HGETALL").arg(key)).await
            }
        };
        fields.sort();
        fields
    }

    /// `ZRANGE key 0 -1 WITHSCORES` of a physical key: members with their scores, lowest
    /// score first (ties bytewise), empty when the key is absent.
    pub async fn zrange_withscores(&self, key: &[u8]) -> Vec<(Vec<u8>, f64)> {
        let mut members: Vec<(Vec<u8>, f64)> = match self {
            Probe::Memory(ks) => match ks.inspect(key).map(|e| e.value) {
                None => Vec::new(),
                Some(MemValue::SortedSet(z)) => {
                    z.into_iter().map(|(m, s)| (m.to_vec(), s)).collect()
                }
                Some(other) => panic!("ZRANGE of a {} key: WRONGTYPE", other.type_name()),
            },
            Probe::Server(_) | Probe::Cluster(_) => {
                self.query(
                    redis::cmd("ZRANGE")
                        .arg(key)
                        .arg(0)
                        .arg(-1)
                        .arg("WITHSCORES"),
                )
                .await
            }
        };
        members.sort_by(|a, b| a.1.total_cmp(&b.1).then_with(|| a.0.cmp(&b.0)));
        members
    }

    /// Writes a physical key directly (to place keys outside a store's namespace).
    pub async fn set(&self, key: &[u8], value: &[u8], ttl: Option<Duration>) {
        match self {
            Probe::Memory(ks) => ks.insert_raw(key, Bytes::copy_from_slice(value), ttl),
            Probe::Server(_) | Probe::Cluster(_) => {
                let mut cmd = redis::cmd("SET");
                cmd.arg(key).arg(value);
                if let Some(t) = ttl {
                    cmd.arg("PX").arg(t.as_millis() as u64);
                }
                let _: () = self.query(&cmd).await;
            }
        }
    }

    /// Writes many physical keys without expiry, pipelined in chunks.
    pub async fn set_many(&self, pairs: impl Iterator<Item = (Vec<u8>, Vec<u8>)>) {
        match self {
            Probe::Memory(ks) => {
                for (k, v) in pairs {
                    ks.insert_raw(&k, Bytes::from(v), None);
                }
            }
            Probe::Cluster(c) => {
                // One MSET per slot and chunk: a cluster refuses a cross-slot MSET.
                use futures::StreamExt;
                let pairs: Vec<(Vec<u8>, Vec<u8>)> = pairs.collect();
                let keys: Vec<&[u8]> = pairs.iter().map(|(k, _)| &k[..]).collect();
                let batches = kv_contract::slot::batches(&keys, true, 1000);
                futures::stream::iter(batches.into_iter().map(|batch| {
                    let mut cmd = redis::cmd("MSET");
                    for i in batch {
                        cmd.arg(&pairs[i].0).arg(&pairs[i].1);
                    }
                    let mut c = c.clone();
                    async move {
                        let _: () = cmd.query_async(&mut c).await.expect("MSET");
                    }
                }))
                .buffer_unordered(64)
                .collect::<Vec<()>>()
                .await;
            }
            Probe::Server(c) => {
                let mut pipe = redis::pipe();
                let mut n = 0;
                for (k, v) in pairs {
                    pipe.cmd("SET").arg(k).arg(v).ignore();
                    n += 1;
                    if n % 10_000 == 0 {
                        let _: () = pipe.query_async(&mut c.clone()).await.expect("pipeline");
                        pipe = redis::pipe();
                    }
                }
                if n % 10_000 != 0 {
                    let _: () = pipe.query_async(&mut c.clone()).await.expect("pipeline");
                }
            }
        }
    }

    /// Every physical key starting with `prefix` (filtered here byte by byte, so the
    /// check does not rely on the glob escaping under test).
    pub async fn keys_with_prefix(&self, prefix: &[u8]) -> Vec<Vec<u8>> {
        let mut keys = match self {
            Probe::Memory(ks) => ks.physical_keys(),
            Probe::Cluster(c) => {
                let nodes: String = redis::cmd("CLUSTER")
                    .arg("NODES")
                    .query_async(&mut c.clone())
                    .await
                    .expect("CLUSTER NODES");
                let shape = kv_contract::cluster::ClusterShape::parse(&nodes).expect("nodes");
                let mut out = Vec::new();
                for p in shape.primaries {
                    let node = Probe::connect(&format!("redis://{}:{}", p.host, p.port)).await;
                    out.extend(Box::pin(node.keys_with_prefix(prefix)).await);
                }
                out
            }
            Probe::Server(c) => {
                let mut out = Vec::new();
                let mut cursor: u64 = 0;
                // MATCH on the first byte only would still be a glob; scan everything
                // under a literal-safe pattern and filter below.
                let head: Vec<u8> = prefix
                    .iter()
                    .take_while(|b| b.is_ascii_alphanumeric())
                    .copied()
                    .collect();
                let mut pattern = head;
                pattern.push(b'*');
                loop {
                    let (next, page): (u64, Vec<Vec<u8>>) = redis::cmd("SCAN")
                        .arg(cursor)
                        .arg("MATCH")
                        .arg(&pattern)
                        .arg("COUNT")
                        .arg(5000)
                        .query_async(&mut c.clone())
                        .await
                        .expect("SCAN");
                    out.extend(page);
                    if next == 0 {
                        break;
                    }
                    cursor = next;
                }
                out
            }
        };
        keys.retain(|k| k.starts_with(prefix));
        keys.sort();
        keys.dedup();
        keys
    }

    /// What a physical key holds (`TYPE`, then `GET` or `HGETALL`); `None` if absent.
    pub async fn value(&self, key: &[u8]) -> Option<Stored> {
        match self {
            Probe::Memory(ks) => ks.inspect(key).map(|e| match e.value {
                MemValue::String(b) => Stored::String(b.to_vec()),
                MemValue::Hash(h) => Stored::Hash(
                    h.into_iter()
                        .map(|(k, v)| (k.to_vec(), v.to_vec()))
                        .collect(),
                ),
                other => Stored::Other(other.type_name().to_owned()),
            }),
            Probe::Server(_) | Probe::Cluster(_) => match self.key_type(key).await.as_str() {
                "none" => None,
                "string" => self.get(key).await.map(Stored::String),
                "hash" => {
                    let fields: BTreeMap<Vec<u8>, Vec<u8>> =
                        self.query(redis::cmd("HGETALL").arg(key)).await;
                    Some(Stored::Hash(fields))
                }
                other => Some(Stored::Other(other.to_owned())),
            },
        }
    }

    /// The data side's clock in ms since the epoch: the server's `TIME`, or the
    /// keyspace's clock.
    pub async fn now_ms(&self) -> u64 {
        match self {
            Probe::Memory(ks) => ks.now_ms(),
            Probe::Server(_) | Probe::Cluster(_) => {
                let (secs, micros): (u64, u64) = self.query(&redis::cmd("TIME")).await;
                secs * 1000 + micros / 1000
            }
        }
    }

    /// Writes a hash directly (`DEL`, then `HSET` of `fields`, then `PEXPIRE` if `ttl`).
    pub async fn set_hash(&self, key: &[u8], fields: &[(&str, &[u8])], ttl: Option<Duration>) {
        match self {
            Probe::Memory(ks) => ks.transaction(|tx| {
                let map = fields
                    .iter()
                    .map(|(f, v)| {
                        (
                            Bytes::copy_from_slice(f.as_bytes()),
                            Bytes::copy_from_slice(v),
                        )
                    })
                    .collect();
                tx.set(
                    key.to_vec(),
                    MemValue::Hash(map),
                    ttl.map(|t| t.as_millis() as u64),
                );
            }),
            Probe::Server(_) | Probe::Cluster(_) => {
                let _: () = self.query(redis::cmd("DEL").arg(key)).await;
                let mut cmd = redis::cmd("HSET");
                cmd.arg(key);
                for (f, v) in fields {
                    cmd.arg(*f).arg(*v);
                }
                let _: () = self.query(&cmd).await;
                if let Some(t) = ttl {
                    let _: () = self
                        .query(redis::cmd("PEXPIRE").arg(key).arg(t.as_millis() as u64))
                        .await;
                }
            }
        }
    }

    /// `SCRIPT FLUSH` (a no-op for memory, which has no script cache).
    pub async fn script_flush(&self) {
        if let Probe::Cluster(c) = self {
            // Every node's cache: a replica promoted later must not know the script either.
            let routing = RoutingInfo::MultiNode((
                MultipleNodeRoutingInfo::AllNodes,
                Some(ResponsePolicy::AllSucceeded),
            ));
            c.clone()
                .route_command(redis::cmd("SCRIPT").arg("FLUSH").clone(), routing)
                .await
                .expect("SCRIPT FLUSH on every node");
            return;
        }
        if let Probe::Server(_) = self {
            let _: () = self.query(redis::cmd("SCRIPT").arg("FLUSH")).await;
        }
    }

    /// Whether this probe looks at a real server.
    pub fn is_server(&self) -> bool {
        matches!(self, Probe::Server(_) | Probe::Cluster(_))
    }
}
