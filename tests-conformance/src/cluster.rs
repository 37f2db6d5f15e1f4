//! A real Redis Cluster for tests: 3 primaries with one replica each, every node a
//! [`RedisServer`] of [`server`](crate::server) (free loopback port, own temp dir and
//! `nodes.conf`, snapshots off, killed on drop and by its watchdog if this process dies),
//! joined with `redis-cli --cluster create ... --cluster-replicas 1`.
//!
//! `cluster-node-timeout` is short ([`NODE_TIMEOUT_MS`]) so a failover takes about a
//! second or two; the binary is [`crate::server::server_binary`]'s (so `RUSTAUTH_REDIS_SERVER`
//! selects Redis or Valkey; Debian's `redis-cli` drives either). Storage cases share one
//! cluster per process ([`shared`]); cases that kill or reshard start their own.

use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use kv_contract::cluster::ClusterShape;

use crate::server::{RedisServer, ServerConfig};

/// `cluster-node-timeout` of every node, in ms: how long a primary may be unreachable
/// before its replica is promoted.
pub const NODE_TIMEOUT_MS: u64 = 1000;

/// A cluster of [`RedisServer`]s, torn down (every node killed) on drop.
pub struct RedisCluster {
    nodes: Vec<Option<RedisServer>>,
}

impl std::fmt::Debug for RedisCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RedisCluster({:?})", self.ports())
    }
}

/// A synchronous connection to one node (harness set-up only; cases use async clients).
fn node_conn(port: u16) -> Result<redis::Connection, String> {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}"))
        .map_err(|e| format!("node {port}: {e}"))?;
    client
        .get_connection_with_timeout(Duration::from_secs(2))
        .map_err(|e| format!("node {port}: {e}"))
}

/// Sends `args` to the node on `port` and returns the reply as text (harness only).
pub fn node_command(port: u16, args: &[&str]) -> Result<String, String> {
    let mut conn = node_conn(port)?;
    let mut cmd = redis::cmd(args[0]);
    for a in &args[1..] {
        cmd.arg(*a);
    }
    let v: redis::Value = cmd
        .query(&mut conn)
        .map_err(|e| format!("{} on {port}: {e}", args.join(" ")))?;
    Ok(match v {
        redis::Value::BulkString(b) => String::from_utf8_lossy(&b).into_owned(),
        redis::Value::SimpleString(s) => s,
        redis::Value::VerbatimString { text, .. } => text,
        redis::Value::Okay => "OK".into(),
        other => format!("{other:?}"),
    })
}

impl RedisCluster {
    /// Starts 3 primaries and 3 replicas and waits until every node says
    /// `cluster_state:ok`.
    pub fn start() -> Result<Self, String> {
        let mut nodes = Vec::new();
        for _ in 0..6 {
            let node = RedisServer::start_with(ServerConfig {
                cluster: true,
                ..ServerConfig::default()
            })?;
            node_command(
                node.port(),
                &[
                    "CONFIG",
                    "SET",
                    "cluster-node-timeout",
                    &NODE_TIMEOUT_MS.to_string(),
                ],
            )?;
            nodes.push(Some(node));
        }
        let cluster = RedisCluster { nodes };
        let addrs: Vec<String> = cluster
            .ports()
            .iter()
            .map(|p| format!("127.0.0.1:{p}"))
            .collect();
        let out = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(&addrs)
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .output()
            .map_err(|e| format!("cannot run redis-cli (apt-get install redis-tools): {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "redis-cli --cluster create failed: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        cluster.wait_ok(Duration::from_secs(30))?;
        cluster.wait_replicas_synced(Duration::from_secs(30))?;
        Ok(cluster)
    }

    /// The ports of the nodes still running.
    pub fn ports(&self) -> Vec<u16> {
        self.nodes.iter().flatten().map(|n| n.port()).collect()
    }

    /// The running node on `port`.
    pub fn node(&self, port: u16) -> Option<&RedisServer> {
        self.nodes.iter().flatten().find(|n| n.port() == port)
    }

    /// `redis-cluster://127.0.0.1:p1?node=127.0.0.1:p2&...`: every running node a seed.
    pub fn url(&self) -> String {
        let ports = self.ports();
        let mut url = format!("redis-cluster://127.0.0.1:{}", ports[0]);
        for (i, p) in ports[1..].iter().enumerate() {
            url.push(if i == 0 { '?' } else { '&' });
            url.push_str(&format!("node=127.0.0.1:{p}"));
        }
        url
    }

    /// `redis://127.0.0.1:{port}` of every running node.
    pub fn node_urls(&self) -> Vec<String> {
        self.ports()
            .iter()
            .map(|p| format!("redis://127.0.0.1:{p}"))
            .collect()
    }

    /// The slot map as the first running node that answers sees it.
    pub fn shape(&self) -> Result<ClusterShape, String> {
        let mut last = String::from("no node running");
        for port in self.ports() {
            match node_command(port, &["CLUSTER", "NODES"]) {
                Ok(text) => return ClusterShape::parse(&text).map_err(|e| e.to_string()),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    /// The ports of the primaries serving slots.
    pub fn primary_ports(&self) -> Result<Vec<u16>, String> {
        Ok(self.shape()?.primaries.iter().map(|p| p.port).collect())
    }

    /// The port of the primary serving `slot`, from `CLUSTER SLOTS`-equivalent data.
    pub fn owner_of(&self, slot: u16) -> Result<u16, String> {
        for port in self.ports() {
            let Ok(text) = node_command(port, &["CLUSTER", "NODES"]) else {
                continue;
            };
            for line in text.lines() {
                let f: Vec<&str> = line.split_whitespace().collect();
                if f.len() < 9 || !f[2].contains("master") || f[2].contains("fail") {
                    continue;
                }
                for range in &f[8..] {
                    if range.starts_with('[') {
                        continue;
                    }
                    let (a, b) = range.split_once('-').unwrap_or((range, range));
                    let (a, b): (u16, u16) = (a.parse().unwrap_or(1), b.parse().unwrap_or(0));
                    if (a..=b).contains(&slot) {
                        let addr = f[1].split('@').next().unwrap_or_default();
                        return addr
                            .rsplit_once(':')
                            .and_then(|(_, p)| p.parse().ok())
                            .ok_or_else(|| format!("bad address {addr}"));
                    }
                }
            }
            return Err(format!("no primary serves slot {slot}"));
        }
        Err("no node answers".into())
    }

    /// The node id of the node on `port` (`CLUSTER MYID`).
    pub fn node_id(&self, port: u16) -> Result<String, String> {
        node_command(port, &["CLUSTER", "MYID"])
    }

    /// Waits until every running node reports `cluster_state:ok` and all 16384 slots
    /// assigned and served.
    pub fn wait_ok(&self, limit: Duration) -> Result<(), String> {
        let start = Instant::now();
        loop {
            let mut all = true;
            let mut last = String::new();
            for port in self.ports() {
                match node_command(port, &["CLUSTER", "INFO"]) {
                    Ok(info)
                        if info.contains("cluster_state:ok")
                            && info.contains("cluster_slots_ok:16384") => {}
                    Ok(info) => {
                        all = false;
                        last = format!("node {port}: {}", info.lines().next().unwrap_or(""));
                    }
                    Err(e) => {
                        all = false;
                        last = e;
                    }
                }
            }
            if all {
                return Ok(());
            }
            if start.elapsed() > limit {
                return Err(format!(
                    "the cluster is not ok after {limit:?}: {last}\n{}",
                    self.log_tail()
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until every replica's link to its primary is up (a failover needs a synced
    /// replica).
    pub fn wait_replicas_synced(&self, limit: Duration) -> Result<(), String> {
        let start = Instant::now();
        loop {
            let mut all = true;
            for port in self.ports() {
                let info = node_command(port, &["INFO", "replication"])?;
                if info.contains("role:slave") && !info.contains("master_link_status:up") {
                    all = false;
                }
            }
            if all {
                return Ok(());
            }
            if start.elapsed() > limit {
                return Err(format!("replicas not synced after {limit:?}"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGKILLs the node on `port` (its replica is promoted after the node timeout).
    pub fn kill(&mut self, port: u16) {
        for slot in &mut self.nodes {
            if slot.as_ref().is_some_and(|n| n.port() == port) {
                if let Some(node) = slot.take() {
                    node.kill();
                }
            }
        }
    }

    /// The last log lines of every running node.
    pub fn log_tail(&self) -> String {
        self.nodes
            .iter()
            .flatten()
            .map(|n| format!("--- node {} ---\n{}", n.port(), n.log_tail(10)))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

static SHARED: OnceLock<Result<RedisCluster, String>> = OnceLock::new();

/// The cluster shared by every cluster-topology storage case of this process, started on
/// first use. Panics saying how to provide a server when it cannot start one.
pub fn shared() -> &'static RedisCluster {
    match SHARED.get_or_init(RedisCluster::start) {
        Ok(c) => c,
        Err(e) => panic!("this test needs a Redis Cluster and could not start one: {e}"),
    }
}

/// The shared cluster's log tail, if it was started.
pub fn shared_log_tail() -> Option<String> {
    SHARED.get()?.as_ref().ok().map(RedisCluster::log_tail)
}
