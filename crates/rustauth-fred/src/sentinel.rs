//! Sentinel for the fred backend: fred's own `ServerConfig::Sentinel`.
//!
//! fred asks the sentinels (in order) for the primary of the service, checks `ROLE`, and
//! does that again on every reconnect, so after a failover — the old primary's clients
//! are killed by the sentinels when it is demoted, or it dies — the next connection goes
//! to the new primary. The data nodes get the URL's credentials; the sentinels their own
//! (`sentinelUsername`/`sentinelPassword`, fred's `sentinel-auth` feature). Timeouts,
//! reconnect policy and `max_command_attempts = 1` are the standalone ones (set by the
//! caller on the builder).

use fred::types::config::ServerConfig;
use kv_contract::config::{Endpoint, ServerAddress};
use kv_contract::{KvError, KvResult};

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
