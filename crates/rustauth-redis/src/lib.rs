//! rustauth-kv on [redis-rs](https://docs.rs/redis): a [`Connection`] for kv-contract's
//! stores, built on redis-rs's `ConnectionManager`.
//!
//! This crate is glue only. It turns a kv-contract [`Command`] into a `redis::Cmd`, sends
//! it on one multiplexed connection that reconnects by itself, and turns the reply or
//! error back into kv-contract's types. Keys, values, TTLs and Lua all come from
//! kv-contract, so this backend and `rustauth-fred` write the same bytes.
//!
//! ```no_run
//! use std::sync::Arc;
//! use kv_contract::{ConnectionOptions, SecondaryStorage, ServerStorage, StorageOptions};
//!
//! # async fn run() -> Result<(), kv_contract::KvError> {
//! let options = ConnectionOptions::from_url("redis://127.0.0.1:6379")?;
//! let conn = rustauth_redis::RedisConnection::connect(&options).await?;
//! // One connection, shared by every store of the deployment.
//! let store = ServerStorage::new(Arc::new(conn), StorageOptions::builder().build()?);
//! store.set("greeting", "hello".into(), None).await?;
//! # Ok(())
//! # }
//! ```
//!
//! A `redis-cluster://host:port?node=host:port` URL (also `rediss-`, `valkey-`,
//! `valkeys-cluster://`) connects to a Redis or Valkey Cluster instead: commands go to
//! their slot's primary, `SCAN` walks every primary, and the stores split their batches
//! per slot (`docs/operations.md`, "Redis Cluster").
//!
//! | feature | effect |
//! |---|---|
//! | `tls-rustls` | `rediss://` with rustls (ring provider installed if none is) |
//! | `tls-native-tls` | `rediss://` with the platform TLS library |
//!
//! With [`ConnectionOptions::coalesce_writes`] on, the commands that concurrent tasks issue
//! in the same moment are written as one pipeline (`docs/operations.md`, "Write
//! coalescing").
//!
//! A `redis-sentinel://` URL connects through Sentinel and follows a failover without a
//! new client (`docs/operations.md`, section Sentinel).
//!
//! Without a TLS feature, a `rediss://` URL is refused with
//! [`ErrorKind::InvalidConfig`].

mod cluster;
mod coalesce;

use std::sync::{Arc, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use kv_contract::config::Endpoint;
use kv_contract::observe::LinkMonitor;
use kv_contract::{Command, Connection, ConnectionOptions, ErrorKind, KvError, KvResult, Reply};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{ConnectionAddr, IntoConnectionInfo, RedisConnectionInfo, Value};

mod sentinel;

/// The redis-rs version this crate is built on, re-exported.
pub use redis;

const TLS_COMPILED: bool = cfg!(any(feature = "tls-rustls", feature = "tls-native-tls"));

/// A shared, self-reconnecting connection to one Redis or Valkey server. Cheap to clone;
/// clones share the connection, which closes when the last clone is dropped or
/// [`Connection::close`] is called.
#[derive(Clone)]
pub struct RedisConnection {
    inner: Arc<Inner>,
}

/// What the clones share. `None` once closed: dropping the manager closes its socket.
struct Inner {
    manager: RwLock<Option<ConnectionManager>>,
    server: String,
    /// Every call is bounded by this, reconnects included: redis-rs's response timeout
    /// does not cover the wait for a reconnect in progress.
    command_timeout: Duration,
    /// Through Sentinel: how the primary is found again after a failover.
    sentinel: Option<Arc<sentinel::Failover>>,
    /// Set for a `redis-cluster://` address: every call goes there instead.
    cluster: Option<cluster::ClusterLink>,
    /// The connection lost and back, as the commands' results show it
    /// (`ConnectionManager` has no reconnect hook).
    link: LinkMonitor,
    /// Set when writes are coalesced: standalone commands go through it.
    coalescer: Option<coalesce::Coalescer>,
}

impl Inner {
    fn manager(&self) -> Option<ConnectionManager> {
        // A poisoned lock only means a panic elsewhere while it was held; the Option
        // inside is still whole.
        let guard = self.manager.read().unwrap_or_else(|p| p.into_inner());
        guard.clone()
    }
}

impl std::fmt::Debug for RedisConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisConnection")
            .field("server", &self.inner.server)
            .finish_non_exhaustive()
    }
}

impl RedisConnection {
    /// Connects to the server of `options`, waiting at most its connect timeout, and
    /// checks that it is Redis >= 6.2 or Valkey >= 7.2 (not a Sentinel). The connect
    /// timeout bounds all of it; an error names the server and the database.
    ///
    /// The connection reconnects by itself (exponential backoff within the options'
    /// reconnect delays); a command that fails because the connection broke is returned
    /// as an error, never replayed.
    ///
    /// With [`ConnectionOptions::coalesce_writes`], the commands that concurrent tasks
    /// issue together are written as one pipeline (`coalesce` module).
    pub async fn connect(options: &ConnectionOptions) -> KvResult<Self> {
        let server = options.server.to_string();
        options
            .server
            .check_tls_support("rustauth-redis", TLS_COMPILED)?;
        #[cfg(feature = "tls-rustls")]
        {
            // redis-rs's rustls needs a process-wide crypto provider; install ring's unless
            // the application installed one already.
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
        if let Endpoint::Cluster { nodes } = &options.server.endpoint {
            return Self::connect_cluster(options, nodes, server).await;
        }
        let addr = match &options.server.endpoint {
            Endpoint::Tcp { host, port } => tcp_addr(host, *port, options.server.tls),
            Endpoint::Unix { path } => ConnectionAddr::Unix(path.clone()),
            Endpoint::Sentinel { .. } => return sentinel::connect(options).await,
            other => {
                return Err(KvError::invalid_config(format!(
                    "rustauth-redis does not support endpoint {other:?}"
                )))
            }
        };
        let client = data_client(addr, options).map_err(|e| map_error(e, &server))?;
        let config = manager_config(options);
        let command_timeout = options.command_timeout;
        let coalesce = options.coalesce_writes;
        let conn =
            kv_contract::connect::connect_within(&options.server, options.connect_timeout, async {
                let manager = ConnectionManager::new_with_config(client, config)
                    .await
                    .map_err(|e| map_error(e, &server))?;
                let conn = RedisConnection {
                    inner: Arc::new(Inner {
                        manager: RwLock::new(Some(manager)),
                        server: server.clone(),
                        command_timeout,
                        sentinel: None,
                        cluster: None,
                        link: LinkMonitor::new(server),
                        coalescer: coalesce.then(coalesce::Coalescer::default),
                    }),
                };
                kv_contract::health::ensure_supported_server(&conn, &conn.inner.server).await?;
                Ok(conn)
            })
            .await?;
        tracing::debug!(server = %conn.inner.server, "rustauth-redis connected");
        Ok(conn)
    }

    /// [`connect`](Self::connect) for `redis-cluster://`: redis-rs's cluster client.
    async fn connect_cluster(
        options: &ConnectionOptions,
        nodes: &[kv_contract::NodeAddress],
        server: String,
    ) -> KvResult<Self> {
        let conn =
            kv_contract::connect::connect_within(&options.server, options.connect_timeout, async {
                let link = cluster::ClusterLink::connect(options, nodes, &server).await?;
                let conn = RedisConnection {
                    inner: Arc::new(Inner {
                        manager: RwLock::new(None),
                        server: server.clone(),
                        command_timeout: options.command_timeout,
                        sentinel: None,
                        cluster: Some(link),
                        link: LinkMonitor::new(server),
                        coalescer: None,
                    }),
                };
                kv_contract::health::ensure_supported_server(&conn, &conn.inner.server).await?;
                Ok(conn)
            })
            .await?;
        tracing::debug!(server = %conn.inner.server, "rustauth-redis connected to a cluster");
        Ok(conn)
    }

    /// A handle on the underlying redis-rs connection manager (for commands rustauth-kv
    /// does not wrap); `None` after [`Connection::close`], and on a cluster connection
    /// (its redis-rs cluster client is not a `ConnectionManager`). A handle kept keeps the
    /// socket open.
    pub fn client(&self) -> Option<ConnectionManager> {
        self.manager()
    }

    fn manager(&self) -> Option<ConnectionManager> {
        self.inner.manager()
    }

    /// One command on the standalone (or Sentinel-found) server.
    async fn execute_standalone(&self, command: Command) -> KvResult<Reply> {
        let args = command.args();
        let size = command.name().len() + args.iter().map(|a| a.len()).sum::<usize>();
        let mut cmd = redis::Cmd::with_capacity(args.len() + 1, size);
        cmd.arg(command.name());
        for arg in args {
            cmd.arg(&arg[..]);
        }
        let inner = &*self.inner;
        let sent = match &inner.coalescer {
            Some(coalescer) => {
                tokio::time::timeout(inner.command_timeout, async {
                    match coalescer.send(cmd, || inner.manager()).await {
                        Some(result) => Ok(result),
                        None => Err(kv_contract::wire::closed_error(&inner.server)),
                    }
                })
                .await
            }
            None => {
                let Some(mut manager) = self.manager() else {
                    return Err(kv_contract::wire::closed_error(&inner.server));
                };
                tokio::time::timeout(inner.command_timeout, async {
                    Ok(manager.send_packed_command(&cmd).await)
                })
                .await
            }
        };
        let result = match sent {
            Ok(Err(closed)) => Err(closed),
            Ok(Ok(Ok(value))) => into_reply(value),
            Ok(Ok(Err(e))) => Err(map_error(e, &inner.server)),
            Err(_) => Err(KvError::new(
                ErrorKind::Timeout,
                format!(
                    "{} did not answer within {:?}",
                    inner.server, inner.command_timeout
                ),
            )),
        };
        if let (Some(failover), Err(e)) = (&inner.sentinel, &result) {
            if sentinel::means_primary_lost(e) {
                // In the background: this call returns its own error now, and the command
                // is never resent (invariant 4).
                failover.resolve_in_background(&self.inner);
            }
        }
        result
    }
}

#[async_trait]
impl Connection for RedisConnection {
    async fn execute(&self, command: Command) -> KvResult<Reply> {
        let result = match &self.inner.cluster {
            Some(cluster) => cluster.execute(command).await,
            None => self.execute_standalone(command).await,
        };
        self.inner.link.observe(&result);
        result
    }

    fn is_cluster(&self) -> bool {
        self.inner.cluster.is_some()
    }

    async fn scan_page(
        &self,
        from: kv_contract::wire::ScanCursor,
        pattern: &[u8],
        count: u32,
    ) -> KvResult<kv_contract::wire::ScanPage> {
        match &self.inner.cluster {
            Some(cluster) => cluster.scan_page(from, pattern, count).await,
            None => kv_contract::wire::single_node_scan_page(self, from, pattern, count).await,
        }
    }

    async fn close(&self) -> KvResult<()> {
        self.inner.link.close();
        if let Some(cluster) = &self.inner.cluster {
            cluster.close();
            return Ok(());
        }
        let taken = self
            .inner
            .manager
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        // Dropping the manager closes its connection and stops its reconnects.
        drop(taken);
        Ok(())
    }
}

fn tcp_addr(host: &str, port: u16, tls: bool) -> ConnectionAddr {
    if tls {
        ConnectionAddr::TcpTls {
            host: host.to_owned(),
            port,
            insecure: false,
            tls_params: None,
        }
    } else {
        ConnectionAddr::Tcp(host.to_owned(), port)
    }
}

/// A client for a data node at `addr` with the options' credentials, database and TLS roots.
fn data_client(
    addr: ConnectionAddr,
    options: &ConnectionOptions,
) -> Result<redis::Client, redis::RedisError> {
    let mut redis_info = RedisConnectionInfo::default().set_db(options.server.database.into());
    if let Some(user) = &options.server.username {
        redis_info = redis_info.set_username(user);
    }
    if let Some(password) = &options.server.password {
        redis_info = redis_info.set_password(password.expose());
    }
    client_with(addr, redis_info, options)
}

fn client_with(
    addr: ConnectionAddr,
    redis_info: RedisConnectionInfo,
    options: &ConnectionOptions,
) -> Result<redis::Client, redis::RedisError> {
    let info = addr.into_connection_info()?.set_redis_settings(redis_info);
    match &options.tls_root_certificates {
        #[cfg(any(feature = "tls-rustls", feature = "tls-native-tls"))]
        Some(pem) => redis::Client::build_with_tls(
            info,
            redis::TlsCertificates {
                client_tls: None,
                root_cert: Some(pem.clone()),
            },
        ),
        _ => redis::Client::open(info),
    }
}

/// The connection manager's timeouts and reconnect delays; one retry, so a command is
/// never resent after a broken connection.
fn manager_config(options: &ConnectionOptions) -> ConnectionManagerConfig {
    let reconnect = options.reconnect;
    ConnectionManagerConfig::new()
        .set_connection_timeout(Some(options.connect_timeout))
        .set_response_timeout(Some(options.command_timeout))
        .set_min_delay(reconnect.min_delay)
        .set_max_delay(reconnect.max_delay)
        .set_number_of_retries(1)
}

fn into_reply(value: Value) -> KvResult<Reply> {
    Ok(match value {
        Value::Nil => Reply::Nil,
        Value::Int(n) => Reply::Int(n),
        Value::BulkString(b) => Reply::Data(Bytes::from(b)),
        Value::SimpleString(s) => Reply::Status(s),
        Value::Okay => Reply::Status("OK".to_owned()),
        Value::Array(items) | Value::Set(items) => {
            Reply::Array(items.into_iter().map(into_reply).collect::<KvResult<_>>()?)
        }
        Value::Map(pairs) => {
            let mut flat = Vec::with_capacity(pairs.len() * 2);
            for (k, v) in pairs {
                flat.push(into_reply(k)?);
                flat.push(into_reply(v)?);
            }
            Reply::Array(flat)
        }
        Value::Attribute { data, .. } => into_reply(*data)?,
        Value::Double(d) => Reply::Double(d),
        Value::Boolean(b) => Reply::Bool(b),
        Value::VerbatimString { text, .. } => Reply::Data(Bytes::from(text)),
        Value::ServerError(e) => {
            let text = match e.details() {
                Some(d) => format!("{} {d}", e.code()),
                None => e.code().to_owned(),
            };
            return Err(KvError::server_reply(text, None));
        }
        other => {
            return Err(KvError::unexpected(format!(
                "unsupported reply type from the server: {other:?}"
            )))
        }
    })
}

/// Converts a redis-rs error into kv-contract's error, keeping it as `source()`.
fn map_error(e: redis::RedisError, server: &str) -> KvError {
    if e.is_timeout() {
        return KvError::with_source(
            ErrorKind::Timeout,
            format!("{server} did not answer in time"),
            e,
        );
    }
    if let Some(code) = e.code() {
        let text = match e.detail() {
            Some(d) => format!("{code} {d}"),
            None => code.to_owned(),
        };
        return KvError::server_reply(text, Some(Box::new(e)));
    }
    let kind = match e.kind() {
        redis::ErrorKind::InvalidClientConfig => ErrorKind::InvalidConfig,
        // A reply redis-rs cannot parse ends its connection (the byte stream is out of
        // step): most often a reply cut short by a broken connection. As for any broken
        // connection, the call's outcome is unknown and a reconnect follows.
        redis::ErrorKind::Parse => ErrorKind::Unavailable,
        redis::ErrorKind::UnexpectedReturnType => ErrorKind::UnexpectedData,
        redis::ErrorKind::AuthenticationFailed => ErrorKind::Server,
        _ => ErrorKind::Unavailable,
    };
    let message = match kind {
        ErrorKind::Unavailable => format!("cannot reach {server}"),
        _ => format!("{server}: {}", e.category()),
    };
    KvError::with_source(kind, message, e)
}
