//! Sentinel for the redis-rs backend: a connection that follows a failover.
//!
//! redis-rs's own sentinel client hands out plain connections; nothing follows a failover.
//! Here a [`RedisConnection`] made from a `redis-sentinel://` address holds a
//! `ConnectionManager` to the primary, found by asking the sentinels in turn
//! (`SENTINEL GET-MASTER-ADDR-BY-NAME`) and confirmed with `ROLE`. The primary is looked up
//! again, in the background, when
//!
//! - a call fails with a connection error, a timeout or a `READONLY` reply (the old
//!   primary, demoted, answers writes with it), and
//! - a watcher, asking one sentinel every [`WATCH_PERIOD`], sees the sentinels name
//!   another primary (a primary that was demoted but whose connections stay up would
//!   otherwise be used until its first `READONLY`).
//!
//! One lookup runs at a time (single flight); no lock is held across an `.await`, so calls
//! go on meanwhile on the current manager and fail or time out within `command_timeout` as
//! any call does. The new manager is swapped in under a short write lock. A failed call is
//! never resent (ARCHITECTURE invariant 4); the lookup only changes where the *next* call
//! goes.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::Duration;

use kv_contract::config::{Endpoint, NodeAddress};
use kv_contract::{ConnectionOptions, ErrorKind, KvError, KvResult};
use redis::aio::{ConnectionManager, MultiplexedConnection};
use redis::{AsyncConnectionConfig, RedisConnectionInfo, Value};

use crate::{map_error, Inner, RedisConnection};

/// How often the watcher asks a sentinel where the primary is.
pub(crate) const WATCH_PERIOD: Duration = Duration::from_millis(250);

/// Whether a call's error means the primary may have moved: an outage or timeout, which
/// includes the `READONLY` reply of a demoted primary (kv-contract classifies it as
/// unavailable), or a script stopped by `READONLY`.
pub(crate) fn means_primary_lost(e: &KvError) -> bool {
    e.is_unavailable() || e.message().contains("READONLY")
}

/// What a sentinel-backed connection needs to find its primary again.
pub(crate) struct Failover {
    options: ConnectionOptions,
    sentinels: Vec<NodeAddress>,
    service: String,
    sentinel_info: RedisConnectionInfo,
    /// The primary the current manager talks to.
    primary: Mutex<NodeAddress>,
    /// Set while a lookup runs: the single flight.
    resolving: AtomicBool,
    /// What `Display` shows for the connection (no password).
    server: String,
}

impl std::fmt::Debug for Failover {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Failover")
            .field("service", &self.service)
            .field("sentinels", &self.sentinels)
            .finish_non_exhaustive()
    }
}

/// Connects through the sentinels of `options` (a `redis-sentinel://` address).
pub(crate) async fn connect(options: &ConnectionOptions) -> KvResult<RedisConnection> {
    let Endpoint::Sentinel {
        nodes,
        service,
        sentinel_username,
        sentinel_password,
    } = &options.server.endpoint
    else {
        return Err(KvError::invalid_config("not a sentinel address"));
    };
    let mut sentinel_info = RedisConnectionInfo::default();
    if let Some(user) = sentinel_username {
        sentinel_info = sentinel_info.set_username(user);
    }
    if let Some(password) = sentinel_password {
        sentinel_info = sentinel_info.set_password(password.expose());
    }
    let failover = Arc::new(Failover {
        options: options.clone(),
        sentinels: nodes.clone(),
        service: service.clone(),
        sentinel_info,
        primary: Mutex::new(nodes[0].clone()),
        resolving: AtomicBool::new(false),
        server: options.server.to_string(),
    });
    let conn = kv_contract::connect::connect_within(&options.server, options.connect_timeout, {
        let failover = failover.clone();
        async move {
            let (primary, manager) = failover.resolve().await?;
            *failover.primary.lock().unwrap_or_else(|p| p.into_inner()) = primary;
            let conn = RedisConnection {
                inner: Arc::new(Inner {
                    manager: RwLock::new(Some(manager)),
                    server: failover.server.clone(),
                    command_timeout: failover.options.command_timeout,
                    sentinel: Some(failover.clone()),
                    cluster: None,
                    link: kv_contract::observe::LinkMonitor::new(failover.server.clone()),
                    coalescer: failover
                        .options
                        .coalesce_writes
                        .then(crate::coalesce::Coalescer::default),
                }),
            };
            kv_contract::health::ensure_supported_server(&conn, &conn.inner.server).await?;
            Ok(conn)
        }
    })
    .await?;
    failover.watch(Arc::downgrade(&conn.inner));
    tracing::debug!(server = %conn.inner.server, "rustauth-redis connected through sentinel");
    Ok(conn)
}

impl Failover {
    /// Asks the sentinels, in order, for the primary, connects to it and checks `ROLE`:
    /// the first primary that says `master`, with a manager to it. Each sentinel gets an
    /// equal share of the connect timeout.
    async fn resolve(&self) -> KvResult<(NodeAddress, ConnectionManager)> {
        let share = (self.options.connect_timeout / self.sentinels.len() as u32)
            .max(Duration::from_millis(100));
        let mut errors = Vec::new();
        for sentinel in &self.sentinels {
            let attempt = async {
                let primary = self
                    .ask(sentinel, share)
                    .await
                    .map_err(|e| format!("sentinel {sentinel}: {e}"))?;
                let manager = self
                    .connect_primary(&primary)
                    .await
                    .map_err(|e| format!("sentinel {sentinel} named {primary}: {e}"))?;
                Ok::<_, String>((primary, manager))
            };
            match tokio::time::timeout(share, attempt).await {
                Ok(Ok(found)) => return Ok(found),
                Ok(Err(e)) => errors.push(e),
                Err(_) => errors.push(format!("{sentinel}: no answer within {share:?}")),
            }
        }
        Err(KvError::new(
            ErrorKind::Unavailable,
            format!(
                "found no primary for service {:?} through the sentinels ({})",
                self.service,
                errors.join("; ")
            ),
        ))
    }

    /// `SENTINEL GET-MASTER-ADDR-BY-NAME` on one sentinel, on a connection of its own.
    async fn ask(&self, sentinel: &NodeAddress, within: Duration) -> KvResult<NodeAddress> {
        let mut conn = self.sentinel_connection(sentinel, within).await?;
        self.ask_on(&mut conn, sentinel).await
    }

    /// A connection to one sentinel, with its own credentials.
    async fn sentinel_connection(
        &self,
        sentinel: &NodeAddress,
        within: Duration,
    ) -> KvResult<MultiplexedConnection> {
        let shown = sentinel.to_string();
        let client = crate::client_with(
            crate::tcp_addr(&sentinel.host, sentinel.port, self.options.server.tls),
            self.sentinel_info.clone(),
            &self.options,
        )
        .map_err(|e| map_error(e, &shown))?;
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(within))
            .set_response_timeout(Some(within));
        client
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .map_err(|e| map_error(e, &shown))
    }

    /// `SENTINEL GET-MASTER-ADDR-BY-NAME` on `conn`, a connection to `sentinel`.
    async fn ask_on(
        &self,
        conn: &mut MultiplexedConnection,
        sentinel: &NodeAddress,
    ) -> KvResult<NodeAddress> {
        let shown = sentinel.to_string();
        let reply: Option<(String, u16)> = redis::cmd("SENTINEL")
            .arg("GET-MASTER-ADDR-BY-NAME")
            .arg(&self.service)
            .query_async(conn)
            .await
            .map_err(|e| map_error(e, &shown))?;
        let (host, port) = reply.ok_or_else(|| {
            KvError::new(
                ErrorKind::Unavailable,
                format!("sentinel {shown} knows no service {:?}", self.service),
            )
        })?;
        Ok(NodeAddress { host, port })
    }

    /// A manager to `primary`, once `ROLE` says it is `master`.
    async fn connect_primary(&self, primary: &NodeAddress) -> KvResult<ConnectionManager> {
        let shown = primary.to_string();
        let addr = crate::tcp_addr(&primary.host, primary.port, self.options.server.tls);
        let client = crate::data_client(addr, &self.options).map_err(|e| map_error(e, &shown))?;
        let mut manager =
            ConnectionManager::new_with_config(client, crate::manager_config(&self.options))
                .await
                .map_err(|e| map_error(e, &shown))?;
        let role: Vec<Value> = redis::cmd("ROLE")
            .query_async(&mut manager)
            .await
            .map_err(|e| map_error(e, &shown))?;
        let is_master = matches!(
            role.first(),
            Some(Value::BulkString(b)) if b == b"master"
        ) || matches!(role.first(), Some(Value::SimpleString(s)) if s == "master");
        if !is_master {
            return Err(KvError::new(
                ErrorKind::Unavailable,
                format!("{shown}, named primary by the sentinels, is not a master (yet)"),
            ));
        }
        Ok(manager)
    }

    /// Starts a lookup in the background unless one is running. It retries (within the
    /// reconnect delays) until a primary is found or the connection is gone or closed.
    pub(crate) fn resolve_in_background(self: &Arc<Self>, inner: &Arc<Inner>) {
        if self.resolving.swap(true, Ordering::AcqRel) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            self.resolving.store(false, Ordering::Release);
            return;
        };
        let this = self.clone();
        let weak = Arc::downgrade(inner);
        runtime.spawn(async move {
            let mut delay = this.options.reconnect.min_delay;
            loop {
                if !alive(&weak) {
                    break;
                }
                match this.resolve().await {
                    Ok((primary, manager)) => {
                        this.install(&weak, primary, manager);
                        break;
                    }
                    Err(e) => {
                        tracing::debug!(server = %this.server, error = %e, "sentinel lookup failed");
                        tokio::time::sleep(delay).await;
                        delay = (delay * 2).min(this.options.reconnect.max_delay);
                    }
                }
            }
            this.resolving.store(false, Ordering::Release);
        });
    }

    /// Swaps in a manager to `primary` unless it is the one in use, or the connection was
    /// closed meanwhile.
    fn install(&self, weak: &Weak<Inner>, primary: NodeAddress, manager: ConnectionManager) {
        let Some(inner) = weak.upgrade() else {
            return;
        };
        let mut current = self.primary.lock().unwrap_or_else(|p| p.into_inner());
        if *current == primary {
            // Same primary: its manager reconnects by itself; the new one is dropped.
            return;
        }
        let mut slot = inner.manager.write().unwrap_or_else(|p| p.into_inner());
        if slot.is_some() {
            tracing::info!(server = %self.server, from = %current, to = %primary, "sentinel: new primary");
            *slot = Some(manager);
            *current = primary;
        }
    }

    /// Asks a sentinel where the primary is every [`WATCH_PERIOD`] and starts a lookup
    /// when it names another one. Ends with the connection.
    fn watch(self: &Arc<Self>, weak: Weak<Inner>) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let this = self.clone();
        runtime.spawn(async move {
            let mut next = 0usize;
            let within = this.options.command_timeout;
            // The connection to the sentinel being asked, kept between rounds.
            let mut asking: Option<MultiplexedConnection> = None;
            loop {
                tokio::time::sleep(WATCH_PERIOD).await;
                if !alive(&weak) {
                    return;
                }
                let sentinel = &this.sentinels[next % this.sentinels.len()];
                let round = async {
                    let mut conn = match asking.take() {
                        Some(c) => c,
                        None => this.sentinel_connection(sentinel, within).await?,
                    };
                    let named = this.ask_on(&mut conn, sentinel).await?;
                    Ok::<_, KvError>((conn, named))
                };
                let Ok(Ok((conn, named))) = tokio::time::timeout(within, round).await else {
                    // This sentinel is unreachable: ask the next one next time.
                    next += 1;
                    continue;
                };
                asking = Some(conn);
                let moved = *this.primary.lock().unwrap_or_else(|p| p.into_inner()) != named;
                if moved {
                    if let Some(inner) = weak.upgrade() {
                        this.resolve_in_background(&inner);
                    }
                }
            }
        });
    }
}

/// Whether the connection still exists and is not closed.
fn alive(weak: &Weak<Inner>) -> bool {
    weak.upgrade().is_some_and(|inner| {
        inner
            .manager
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .is_some()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_triggers_a_lookup() {
        let readonly = KvError::server_reply(
            "READONLY You can't write against a read only replica.",
            None,
        );
        assert!(means_primary_lost(&readonly));
        assert!(means_primary_lost(&KvError::new(
            ErrorKind::Unavailable,
            "x"
        )));
        assert!(means_primary_lost(&KvError::new(ErrorKind::Timeout, "x")));
        assert!(!means_primary_lost(&KvError::server_reply(
            "WRONGTYPE Operation",
            None
        )));
        assert!(!means_primary_lost(&KvError::invalid_input("x")));
    }
}
