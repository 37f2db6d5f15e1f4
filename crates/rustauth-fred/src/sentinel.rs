//! Sentinel for the fred backend: fred's own `ServerConfig::Sentinel`, plus a watch.
//!
//! fred asks the sentinels (in order) for the primary of the service, checks `ROLE`, and
//! does that again on every reconnect, so once the old primary's connection drops — it
//! dies, or the sentinels demote it and kill its clients — the next connection goes to
//! the new primary. The data nodes get the URL's credentials; the sentinels their own
//! (`sentinelUsername`/`sentinelPassword`, fred's `sentinel-auth` feature). Timeouts,
//! reconnect policy and `max_command_attempts = 1` are the standalone ones (set by the
//! caller on the builder).
//!
//! After a graceful failover the sentinels demote the old primary only about ten seconds
//! after naming the new one; until then fred's connection to it stays up and every write
//! it acknowledges is lost (measured in the conformance suite). So a [`Watch`] asks one
//! sentinel every [`WATCH_PERIOD`] where the primary is and forces a reconnection when it
//! is not the server fred is connected to. A forced reconnection fails the commands in
//! flight (`max_command_attempts = 1`: never resent).

use std::sync::atomic::Ordering;
use std::sync::Weak;
use std::time::Duration;

use fred::clients::Client;
use fred::interfaces::ClientLike;
use fred::types::config::{Config, ServerConfig};
use fred::types::{ClusterHash, CustomCommand, Value};
use kv_contract::config::{Endpoint, NodeAddress, ServerAddress};
use kv_contract::{KvError, KvResult};

use crate::Inner;

/// How often the watch asks a sentinel where the primary is.
pub(crate) const WATCH_PERIOD: Duration = Duration::from_millis(250);

/// fred's server configuration for a `redis-sentinel://` address.
pub(crate) fn server_config(address: &ServerAddress) -> KvResult<ServerConfig> {
    let Endpoint::Sentinel {
        nodes,
        service,
        sentinel_username,
        sentinel_password,
    } = &address.endpoint
    else {
        return Err(KvError::invalid_config("not a sentinel address"));
    };
    Ok(ServerConfig::Sentinel {
        hosts: nodes
            .iter()
            .map(|n| crate::tcp_server(&n.host, n.port, address.tls))
            .collect(),
        service_name: service.clone(),
        username: sentinel_username.clone(),
        password: sentinel_password.as_ref().map(|p| p.expose().to_owned()),
    })
}

/// Asks the sentinels where the primary is and moves the client when it moved.
pub(crate) struct Watch {
    sentinels: Vec<NodeAddress>,
    service: String,
    /// The data client's configuration with a sentinel's server and credentials.
    base: Config,
    command_timeout: Duration,
    connect_timeout: Duration,
}

impl Watch {
    /// A watch for a sentinel address; `None` for any other.
    pub(crate) fn new(
        address: &ServerAddress,
        config: &Config,
        command_timeout: Duration,
        connect_timeout: Duration,
    ) -> Option<Watch> {
        let ServerConfig::Sentinel {
            username, password, ..
        } = &config.server
        else {
            return None;
        };
        let Endpoint::Sentinel { nodes, service, .. } = &address.endpoint else {
            return None;
        };
        let base = Config {
            username: username.clone(),
            password: password.clone(),
            database: None,
            ..config.clone()
        };
        Some(Watch {
            sentinels: nodes.clone(),
            service: service.clone(),
            base,
            command_timeout,
            connect_timeout,
        })
    }

    /// Runs the watch until the connection is dropped or closed.
    pub(crate) fn spawn(self, weak: Weak<Inner>) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        runtime.spawn(async move {
            let mut next = 0usize;
            let mut sentinel: Option<Client> = None;
            loop {
                tokio::time::sleep(WATCH_PERIOD).await;
                let Some(inner) = weak.upgrade() else {
                    break;
                };
                if inner.closed.load(Ordering::Acquire) {
                    break;
                }
                let client = match sentinel.take() {
                    Some(c) => c,
                    None => match self.connect(&self.sentinels[next % self.sentinels.len()]).await
                    {
                        Some(c) => c,
                        None => {
                            next += 1;
                            continue;
                        }
                    },
                };
                let Some(named) = self.ask(&client).await else {
                    // This sentinel stopped answering: the next one next time.
                    quit(client, self.command_timeout);
                    next += 1;
                    continue;
                };
                sentinel = Some(client);
                let connected = inner.client.active_connections();
                let on_named = connected
                    .iter()
                    .any(|s| *s.host == *named.host && s.port == named.port);
                if !connected.is_empty() && !on_named {
                    tracing::info!(server = %inner.server, to = %named, "sentinel: new primary, reconnecting");
                    let client = inner.client.clone();
                    drop(inner);
                    let _ = tokio::time::timeout(self.connect_timeout, client.force_reconnection())
                        .await;
                }
            }
            if let Some(c) = sentinel {
                quit(c, self.command_timeout);
            }
        });
    }

    async fn connect(&self, node: &NodeAddress) -> Option<Client> {
        // The sentinel's `Server` as built for fred's sentinel config (TLS name included).
        let config = Config {
            server: ServerConfig::Centralized {
                server: self.sentinel_server(node),
            },
            ..self.base.clone()
        };
        let client = fred::types::Builder::from_config(config)
            .with_connection_config(|c| {
                c.connection_timeout = self.command_timeout;
                c.internal_command_timeout = self.command_timeout;
                c.max_command_attempts = 1;
            })
            .with_performance_config(|p| p.default_command_timeout = self.command_timeout)
            .build()
            .ok()?;
        match tokio::time::timeout(self.command_timeout, client.init()).await {
            Ok(Ok(_)) => Some(client),
            _ => {
                quit(client, self.command_timeout);
                None
            }
        }
    }

    fn sentinel_server(&self, node: &NodeAddress) -> fred::types::config::Server {
        match &self.base.server {
            ServerConfig::Sentinel { hosts, .. } => hosts
                .iter()
                .find(|h| *h.host == *node.host && h.port == node.port)
                .cloned()
                .unwrap_or_else(|| fred::types::config::Server::new(node.host.clone(), node.port)),
            _ => fred::types::config::Server::new(node.host.clone(), node.port),
        }
    }

    /// `SENTINEL GET-MASTER-ADDR-BY-NAME` on `client`.
    async fn ask(&self, client: &Client) -> Option<NodeAddress> {
        let cmd = CustomCommand::new_static("SENTINEL", ClusterHash::Random, false);
        let args = vec![
            Value::from("GET-MASTER-ADDR-BY-NAME"),
            Value::from(self.service.as_str()),
        ];
        let reply: Value = client.custom(cmd, args).await.ok()?;
        let Value::Array(items) = reply else {
            return None;
        };
        let host = items.first()?.as_string()?;
        let port = items.get(1)?.as_string()?.parse().ok()?;
        Some(NodeAddress { host, port })
    }
}

fn quit(client: Client, timeout: Duration) {
    crate::quit_in_background(client, timeout);
}
