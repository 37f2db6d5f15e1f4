//! The Redis Cluster side of [`RedisConnection`]: redis-rs's async cluster client
//! (`cluster_async::ClusterConnection`) built from the seed nodes of a
//! `redis-cluster://` address, with the standalone connection's timeouts, ACL user, TLS
//! and version check.
//!
//! Routing is by kv-contract's routing key ([`Command::routing_key`]): the slot of the
//! command's first key, to that slot's primary; a command without a key (`INFO`, `PING`)
//! goes to a random primary. Every multi-key command kv-contract sends already names one
//! slot, so redis-rs never splits one. `SCAN` walks every primary through
//! [`kv_contract::cluster::scan_page`].
//!
//! Redirections: `route_command` hands `MOVED`/`ASK` replies back (measured: a slot
//! migration under load returned `ASK` to the caller), so this module follows them
//! itself — `ASK` with `ASKING` + the command in one pipeline to the importing node,
//! `MOVED` to the named node — at most [`RETRIES`] times within the command timeout; a
//! redirected command did not run, so the resend is safe. redis-rs's own retries are off
//! (`retries(0)`): its budget also covers a command whose connection dropped while in
//! flight, which kv-contract's invariant 4 forbids (an increment could count twice), and
//! redis-rs 1.8 has no setting that separates the two. `TRYAGAIN` and `CLUSTERDOWN`
//! therefore reach the caller as errors (during a failover, until the replica is
//! promoted). See `docs/operations.md` ("Redis Cluster").

use std::sync::RwLock;
use std::time::Duration;

use kv_contract::cluster::ClusterShape;
use kv_contract::wire::{ScanCursor, ScanPage};
use kv_contract::{Command, ConnectionOptions, ErrorKind, KvError, KvResult, NodeAddress, Reply};
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};
use redis::{ConnectionAddr, ConnectionInfo, IntoConnectionInfo, RedisConnectionInfo};

use crate::{into_reply, map_error};

/// How many `MOVED`/`ASK` redirections one call may follow (a key being migrated costs
/// one `ASK`, a slot that moved one `MOVED`).
const RETRIES: u32 = 6;

/// What a cluster [`RedisConnection`](crate::RedisConnection) holds. `None` once closed.
pub(crate) struct ClusterLink {
    conn: RwLock<Option<ClusterConnection>>,
    pub(crate) server: String,
    command_timeout: Duration,
}

fn seed_info(node: &NodeAddress, options: &ConnectionOptions) -> KvResult<ConnectionInfo> {
    let addr = if options.server.tls {
        ConnectionAddr::TcpTls {
            host: node.host.clone(),
            port: node.port,
            insecure: false,
            tls_params: None,
        }
    } else {
        ConnectionAddr::Tcp(node.host.clone(), node.port)
    };
    let mut redis_info = RedisConnectionInfo::default();
    if let Some(user) = &options.server.username {
        redis_info = redis_info.set_username(user);
    }
    if let Some(password) = &options.server.password {
        redis_info = redis_info.set_password(password.expose());
    }
    Ok(addr
        .into_connection_info()
        .map_err(|e| map_error(e, &options.server.to_string()))?
        .set_redis_settings(redis_info))
}

/// Where one attempt of a command goes.
enum Route2 {
    /// By redis-rs's routing (slot, random primary, address).
    Info(RoutingInfo),
    /// To the node of an `ASK` reply, after `ASKING`.
    Asking(String, u16),
}

/// The `host:port` of a `MOVED <slot> <host:port>` or `ASK <slot> <host:port>` reply.
fn redirect_address(message: &str) -> Option<(String, u16)> {
    let addr = message.split_whitespace().nth(2)?;
    let (host, port) = addr.rsplit_once(':')?;
    Some((host.to_owned(), port.parse().ok()?))
}

impl ClusterLink {
    /// Connects to the cluster of `options` (its endpoint is `Endpoint::Cluster`): reads
    /// the slot map from the first seed that answers. The caller bounds the whole connect.
    pub(crate) async fn connect(
        options: &ConnectionOptions,
        nodes: &[NodeAddress],
        server: &str,
    ) -> KvResult<ClusterLink> {
        let seeds = nodes
            .iter()
            .map(|n| seed_info(n, options))
            .collect::<KvResult<Vec<_>>>()?;
        let reconnect = options.reconnect;
        let builder = ClusterClientBuilder::new(seeds)
            .connection_timeout(options.connect_timeout)
            .response_timeout(options.command_timeout)
            .overall_response_timeout(Some(options.command_timeout))
            // No resend by redis-rs: its retry budget also covers a command whose
            // connection dropped in flight (invariant 4). Redirections are followed here;
            // the slot map is still refreshed on MOVED and on connection errors.
            .retries(0)
            .min_retry_wait(reconnect.min_delay.as_millis() as u64)
            .max_retry_wait(reconnect.max_delay.as_millis() as u64);
        #[cfg(any(feature = "tls-rustls", feature = "tls-native-tls"))]
        let builder = match &options.tls_root_certificates {
            Some(pem) => builder.certs(redis::TlsCertificates {
                client_tls: None,
                root_cert: Some(pem.clone()),
            }),
            None => builder,
        };
        let client = builder.build().map_err(|e| map_error(e, server))?;
        let conn = client
            .get_async_connection()
            .await
            .map_err(|e| map_error(e, server))?;
        Ok(ClusterLink {
            conn: RwLock::new(Some(conn)),
            server: server.to_owned(),
            command_timeout: options.command_timeout,
        })
    }

    fn handle(&self) -> KvResult<ClusterConnection> {
        let guard = self.conn.read().unwrap_or_else(|p| p.into_inner());
        guard
            .clone()
            .ok_or_else(|| kv_contract::wire::closed_error(&self.server))
    }

    fn packed(command: &Command) -> redis::Cmd {
        let mut cmd = redis::cmd(command.name());
        for arg in command.args() {
            cmd.arg(&arg[..]);
        }
        cmd
    }

    async fn route_once(
        &self,
        conn: &mut ClusterConnection,
        command: &Command,
        routing: &Route2,
    ) -> KvResult<Reply> {
        let result = match routing {
            Route2::Info(info) => {
                conn.route_command(Self::packed(command), info.clone())
                    .await
            }
            Route2::Asking(host, port) => {
                // `ASK`: this one command goes to the importing node, after `ASKING`, on
                // the same connection.
                let mut pipe = redis::pipe();
                pipe.cmd("ASKING").add_command(Self::packed(command));
                let node = SingleNodeRoutingInfo::ByAddress {
                    host: host.clone(),
                    port: *port,
                };
                conn.route_pipeline(pipe, 1, 1, node)
                    .await
                    .map(|mut v| v.pop().unwrap_or(redis::Value::Nil))
            }
        };
        match result {
            Ok(value) => into_reply(value),
            Err(e) => Err(map_error(e, &self.server)),
        }
    }

    /// Sends `command` by `routing`, following `MOVED`/`ASK` replies (the command did not
    /// run: resending it is safe) at most [`RETRIES`] times, all within the command
    /// timeout. redis-rs hands these replies back from `route_command` instead of
    /// following them itself.
    async fn route(&self, command: &Command, routing: RoutingInfo) -> KvResult<Reply> {
        let mut conn = self.handle()?;
        let calls = async {
            let mut routing = Route2::Info(routing);
            let mut redirects = 0;
            loop {
                let result = self.route_once(&mut conn, command, &routing).await;
                let Err(e) = &result else { return result };
                let code = e.server_code();
                if redirects >= RETRIES || !matches!(code, Some("MOVED" | "ASK")) {
                    return result;
                }
                let Some((host, port)) = redirect_address(e.message()) else {
                    return result;
                };
                redirects += 1;
                routing = if code == Some("ASK") {
                    Route2::Asking(host, port)
                } else {
                    Route2::Info(RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress {
                        host,
                        port,
                    }))
                };
            }
        };
        match tokio::time::timeout(self.command_timeout, calls).await {
            Ok(result) => result,
            Err(_) => Err(KvError::new(
                ErrorKind::Timeout,
                format!(
                    "{} did not answer within {:?}",
                    self.server, self.command_timeout
                ),
            )),
        }
    }

    /// Sends `command` to the primary of its routing key's slot, or to a random primary.
    pub(crate) async fn execute(&self, command: Command) -> KvResult<Reply> {
        let routing = match command.routing_key() {
            Some(key) => SingleNodeRoutingInfo::SpecificNode(Route::new(
                kv_contract::slot::key_slot(key),
                SlotAddr::Master,
            )),
            None => SingleNodeRoutingInfo::RandomPrimary,
        };
        self.route(&command, RoutingInfo::SingleNode(routing)).await
    }

    /// One page of a SCAN over every primary.
    pub(crate) async fn scan_page(
        &self,
        from: ScanCursor,
        pattern: &[u8],
        count: u32,
    ) -> KvResult<ScanPage> {
        kv_contract::cluster::scan_page(
            from,
            pattern,
            count,
            || async {
                ClusterShape::from_reply(
                    self.execute(kv_contract::cluster::cluster_nodes_command())
                        .await?,
                )
            },
            |primary, scan| async move {
                // By a slot the primary serves, not by its address: redis-rs holds
                // connections only to the primaries it knows, and a replica promoted
                // since (measured: a failover mid-walk) has none yet ("Requested
                // connection not found"); routing by slot lets it refresh and connect.
                let routing = match primary.first_slot {
                    Some(slot) => {
                        SingleNodeRoutingInfo::SpecificNode(Route::new(slot, SlotAddr::Master))
                    }
                    None => SingleNodeRoutingInfo::ByAddress {
                        host: primary.host.clone(),
                        port: primary.port,
                    },
                };
                self.route(&scan, RoutingInfo::SingleNode(routing)).await
            },
        )
        .await
    }

    /// Drops the cluster connection: its sockets close once no call holds a handle.
    pub(crate) fn close(&self) {
        let taken = self.conn.write().unwrap_or_else(|p| p.into_inner()).take();
        drop(taken);
    }
}
