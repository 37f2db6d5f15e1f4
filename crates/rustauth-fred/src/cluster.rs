//! The Redis Cluster side of [`FredConnection`](crate::FredConnection): fred's clustered
//! client (`ServerConfig::Clustered`) from the seed nodes of a `redis-cluster://`
//! address, with the standalone connection's timeouts, reconnect policy, ACL user, TLS
//! and version check.
//!
//! fred routes each custom command by the slot kv-contract computed from the command's
//! routing key (keyless commands to a random primary) and follows `MOVED`/`ASK` up to
//! `max_redirections` times; `max_command_attempts` stays 1, so a command whose
//! connection broke in flight is never resent. `SCAN` walks every primary through
//! [`kv_contract::cluster::scan_page`], each page sent to one node with fred's
//! per-command `cluster_node` option.

use fred::interfaces::ClientLike;
use fred::types::config::{ClusterDiscoveryPolicy, Options, Server, ServerConfig};
use fred::types::{ClusterHash, CustomCommand, Value};
use kv_contract::cluster::ClusterShape;
use kv_contract::wire::{ScanCursor, ScanPage};
use kv_contract::{Connection, KvResult, NodeAddress};

use crate::{into_reply, map_error, tcp_server, FredConnection};

/// fred's server configuration for the seed nodes of a cluster address.
pub(crate) fn server_config(nodes: &[NodeAddress], tls: bool) -> ServerConfig {
    ServerConfig::Clustered {
        hosts: nodes
            .iter()
            .map(|n| tcp_server(&n.host, n.port, tls))
            .collect(),
        policy: ClusterDiscoveryPolicy::default(),
    }
}

/// One page of a SCAN over every primary.
pub(crate) async fn scan_page(
    conn: &FredConnection,
    from: ScanCursor,
    pattern: &[u8],
    count: u32,
) -> KvResult<ScanPage> {
    let inner = &*conn.inner;
    kv_contract::cluster::scan_page(
        from,
        pattern,
        count,
        || async {
            ClusterShape::from_reply(
                conn.execute(kv_contract::cluster::cluster_nodes_command())
                    .await?,
            )
        },
        |primary, scan| async move {
            let options = Options {
                cluster_node: Some(Server::new(primary.host.as_str(), primary.port)),
                ..Options::default()
            };
            let cmd = CustomCommand::new_static(scan.name(), ClusterHash::FirstKey, false);
            let args: Vec<Value> = scan.args().iter().cloned().map(Value::Bytes).collect();
            match inner
                .client
                .with_options(&options)
                .custom_raw(cmd, args)
                .await
            {
                Ok(frame) => into_reply(frame),
                Err(e) => Err(map_error(e, &inner.server)),
            }
        },
    )
    .await
}
