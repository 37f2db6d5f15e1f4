//! The Redis Cluster side of [`FredConnection`](crate::FredConnection): fred's clustered
//! client (`ServerConfig::Clustered`) from the seed nodes of a `redis-cluster://`
//! address, with the standalone connection's timeouts, reconnect policy, ACL user, TLS
//! and version check.
//!
//! fred routes each custom command by the slot kv-contract computed from the command's
//! routing key (keyless commands to a random primary) and follows `MOVED`/`ASK` up to
//! `max_redirections` times.
//!
//! `max_command_attempts` stays 1, so a command whose connection broke in flight is
//! never resent.
//!
//! Redirections (fred 10.1.0, measured by `cluster_slot_migration_under_load`): fred's
//! own `ASK` handling is broken — `process_ask` (`router/commands.rs`) sends `ASKING` to
//! the importing node but routes the command by its slot again, to the migrating node;
//! with `max_command_attempts` 1 the `ASKING` fails ("Max attempts reached.") and the
//! client stopped answering altogether (every call timed out, still 15 s after the
//! migration ended; raising the attempts did not help). So on a cluster fred follows no
//! redirection (`max_redirections` 0: a `MOVED` still refreshes its slot map first, then
//! fails the call with "Too many redirections.") and [`execute`] resends the command —
//! which did not run — after a short pause, within the command timeout. A key in a slot
//! being migrated that already moved keeps getting `ASK` until `SETSLOT NODE` ends the
//! migration: those calls wait, and fail with a timeout if the migration outlasts the
//! command timeout.

use fred::interfaces::ClientLike;
use fred::types::config::{ClusterDiscoveryPolicy, Options, Server, ServerConfig};
use fred::types::{ClusterHash, CustomCommand, Value};
use kv_contract::cluster::ClusterShape;
use kv_contract::wire::{ScanCursor, ScanPage};
use kv_contract::{Connection, KvResult, NodeAddress};

use crate::{into_reply, map_error, tcp_server, FredConnection};

/// How long to wait before resending a redirected command.
const REDIRECT_PAUSE: std::time::Duration = std::time::Duration::from_millis(10);

/// Sends a custom command on a cluster client, resending it while fred reports a
/// redirection it did not follow (see the module docs); bounded by the command timeout.
pub(crate) async fn execute(
    conn: &FredConnection,
    cmd: CustomCommand,
    args: Vec<Value>,
) -> KvResult<kv_contract::Reply> {
    let inner = &*conn.inner;
    let deadline = tokio::time::Instant::now() + inner.quit_timeout;
    loop {
        match inner.client.custom_raw(cmd.clone(), args.clone()).await {
            Ok(frame) => return into_reply(frame),
            Err(e)
                if *e.kind() == fred::error::ErrorKind::Routing
                    && e.details() == "Too many redirections."
                    && tokio::time::Instant::now() + REDIRECT_PAUSE < deadline =>
            {
                tokio::time::sleep(REDIRECT_PAUSE).await;
            }
            Err(e) => return Err(map_error(e, &inner.server)),
        }
    }
}

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
            // By a slot the primary serves, not by its address: fred holds connections
            // only to the primaries it knows, and a replica promoted since has none yet
            // (measured: "Failed to route command." after a failover mid-walk).
            let (hash, node) = match primary.first_slot {
                Some(slot) => (ClusterHash::Custom(slot), None),
                None => (
                    ClusterHash::FirstKey,
                    Some(Server::new(primary.host.as_str(), primary.port)),
                ),
            };
            let options = Options {
                cluster_node: node,
                ..Options::default()
            };
            let cmd = CustomCommand::new_static(scan.name(), hash, false);
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
