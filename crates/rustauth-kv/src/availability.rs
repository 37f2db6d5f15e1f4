//! [`Health`]: the bundle's view of its server — `PING` latency, `INFO server`, and a
//! yes/no availability answer bounded by the command timeout.

use std::time::Duration;

use kv_contract::{KvResult, ServerHealth, ServerInfo, SharedConnection};

/// Health checks of a [`Kv`](crate::Kv) bundle's server. Cheap to clone.
///
/// They go straight to the connection, never through a circuit breaker: they report what
/// the server does now. On [`Backend::Memory`](crate::Backend::Memory) the store is always
/// there: `ping` answers zero and `server_info` `None`.
#[derive(Debug, Clone)]
pub struct Health {
    connection: Option<SharedConnection>,
    timeout: Duration,
}

impl Health {
    pub(crate) fn new(connection: Option<SharedConnection>, timeout: Duration) -> Self {
        Health {
            connection,
            timeout,
        }
    }

    /// Sends `PING`; the round-trip time.
    pub async fn ping(&self) -> KvResult<Duration> {
        match &self.connection {
            Some(c) => c.ping().await,
            None => Ok(Duration::ZERO),
        }
    }

    /// `INFO server` parsed: Redis or Valkey, version, mode. `None` on memory.
    pub async fn server_info(&self) -> KvResult<Option<ServerInfo>> {
        match &self.connection {
            Some(c) => c.server_info().await.map(Some),
            None => Ok(None),
        }
    }

    /// Whether a `PING` is answered within the command timeout. Never fails and never
    /// waits longer than that timeout, whatever the network does.
    pub async fn is_available(&self) -> bool {
        matches!(
            tokio::time::timeout(self.timeout, self.ping()).await,
            Ok(Ok(_))
        )
    }
}
