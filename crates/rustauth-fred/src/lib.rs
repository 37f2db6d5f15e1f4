//! rustauth-kv on [fred](https://docs.rs/fred): a [`Connection`] for kv-contract's stores,
//! built on one fred `Client` with an explicit reconnect policy and command timeout.
//!
//! This crate is glue only. It sends each kv-contract [`Command`] as a fred custom
//! command and turns the reply frame or error back into kv-contract's types. Keys,
//! values, TTLs and Lua all come from kv-contract, so this backend and `rustauth-redis`
//! write the same bytes.
//!
//! ```no_run
//! use std::sync::Arc;
//! use kv_contract::{ConnectionOptions, SecondaryStorage, ServerStorage, StorageOptions};
//!
//! # async fn run() -> Result<(), kv_contract::KvError> {
//! let options = ConnectionOptions::from_url("redis://127.0.0.1:6379")?;
//! let conn = rustauth_fred::FredConnection::connect(&options).await?;
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
//! A `redis-sentinel://` URL connects through Sentinel and follows a failover without a
//! new client (`docs/operations.md`, section Sentinel).
//!
//! Without a TLS feature, a `rediss://` URL is refused with
//! [`ErrorKind::InvalidConfig`]: fred itself would
//! silently connect in plaintext.

mod cluster;
mod typed;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use fred::clients::Client;
use fred::error::{Error as FredError, ErrorKind as FredKind};
use fred::interfaces::{ClientLike, EventInterface};
use fred::types::config::{Config, ReconnectPolicy, Server, ServerConfig};
use fred::types::{ClusterHash, CustomCommand, Resp3Frame, Value};
use kv_contract::config::Endpoint;
use kv_contract::observe::LinkMonitor;
use kv_contract::{Command, Connection, ConnectionOptions, ErrorKind, KvError, KvResult, Reply};

mod sentinel;

/// The fred version this crate is built on, re-exported.
pub use fred;

const TLS_COMPILED: bool = cfg!(any(feature = "tls-rustls", feature = "tls-native-tls"));

/// A shared, self-reconnecting connection to one Redis or Valkey server. Cheap to clone;
/// clones share the connection. When the last clone is dropped (or [`Connection::close`]
/// is called) the client quits: its socket closes and it stops reconnecting.
#[derive(Clone)]
pub struct FredConnection {
    inner: Arc<Inner>,
}

/// What the clones share; dropping it quits the client.
struct Inner {
    client: Client,
    server: String,
    closed: AtomicBool,
    /// How long a `QUIT` may take before the client is left to the runtime.
    quit_timeout: Duration,
    /// The connection lost and back, from fred's error and reconnect events and the
    /// commands' results.
    link: Arc<LinkMonitor>,
    /// The tasks that feed `link` from fred's events; aborted with the connection.
    listeners: std::sync::Mutex<Vec<tokio::task::JoinHandle<Result<(), FredError>>>>,
}

impl Inner {
    fn stop_listening(&self) {
        self.link.close();
        for task in self
            .listeners
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain(..)
        {
            task.abort();
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.stop_listening();
        if !self.closed.swap(true, Ordering::AcqRel) {
            quit_in_background(self.client.clone(), self.quit_timeout);
        }
    }
}

/// Quits `client` without waiting: a fred client left alone keeps its socket and
/// reconnects forever. Outside a tokio runtime there is nothing to stop (fred's tasks
/// end with their runtime).
fn quit_in_background(client: Client, timeout: Duration) {
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        runtime.spawn(async move {
            let _ = tokio::time::timeout(timeout, client.quit()).await;
        });
    }
}

impl std::fmt::Debug for FredConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FredConnection")
            .field("server", &self.inner.server)
            .finish_non_exhaustive()
    }
}

impl FredConnection {
    /// Connects to the server of `options`, waiting at most its connect timeout, and
    /// checks that it is Redis >= 6.2 or Valkey >= 7.2 (not a Sentinel). The connect
    /// timeout bounds all of it; an error names the server and the database.
    ///
    /// The client reconnects forever with exponential backoff within the options'
    /// reconnect delays; `max_command_attempts` is 1, so a command in flight when the
    /// connection breaks fails instead of being replayed.
    pub async fn connect(options: &ConnectionOptions) -> KvResult<Self> {
        let server = options.server.to_string();
        let address = &options.server;
        address.check_tls_support("rustauth-fred", TLS_COMPILED)?;
        let server_config = match &address.endpoint {
            Endpoint::Tcp { host, port } => ServerConfig::Centralized {
                server: tcp_server(host, *port, address.tls),
            },
            Endpoint::Unix { path } => ServerConfig::Unix { path: path.clone() },
            Endpoint::Sentinel { .. } => sentinel::server_config(address)?,
            Endpoint::Cluster { nodes } => cluster::server_config(nodes, address.tls),
            other => {
                return Err(KvError::invalid_config(format!(
                    "rustauth-fred does not support endpoint {other:?}"
                )))
            }
        };
        let config = Config {
            server: server_config.clone(),
            username: address.username.clone(),
            password: address.password.as_ref().map(|p| p.expose().to_owned()),
            // A cluster has database 0 only and refuses SELECT of another (the URL
            // parser already refused one).
            database: (!server_config.is_clustered()).then_some(address.database),
            fail_fast: true,
            #[cfg(any(feature = "tls-rustls", feature = "tls-native-tls"))]
            tls: tls_config(address.tls, options.tls_root_certificates.as_deref())
                .map_err(|e| map_error(e, &server))?,
            ..Config::default()
        };
        let reconnect = options.reconnect;
        let command_timeout = options.command_timeout;
        let connect_timeout = options.connect_timeout;
        let watch = sentinel::Watch::new(address, &config, command_timeout, connect_timeout);
        let clustered = config.server.is_clustered();
        let client = fred::types::Builder::from_config(config)
            .with_connection_config(|c| {
                c.connection_timeout = connect_timeout;
                c.internal_command_timeout = connect_timeout;
                c.max_command_attempts = 1;
                // fred follows no redirection itself on a cluster (its ASK handling
                // wedges the client, see `cluster`); rustauth-fred resends instead.
                if clustered {
                    c.max_redirections = 0;
                }
            })
            .with_performance_config(|p| {
                p.default_command_timeout = command_timeout;
            })
            .set_policy(ReconnectPolicy::new_exponential(
                0, // unlimited attempts
                reconnect.min_delay.as_millis() as u32,
                reconnect.max_delay.as_millis() as u32,
                2,
            ))
            .build()
            .map_err(|e| map_error(e, &server))?;
        let conn = FredConnection {
            inner: Arc::new(Inner {
                client,
                server: server.clone(),
                closed: AtomicBool::new(false),
                quit_timeout: command_timeout,
                link: Arc::new(LinkMonitor::new(server)),
                listeners: std::sync::Mutex::default(),
            }),
        };
        // On any failure `conn` is dropped here, which quits the client in the background:
        // the caller waits for the connect timeout and no longer.
        kv_contract::connect::connect_within(address, connect_timeout, async {
            conn.inner
                .client
                .init()
                .await
                .map_err(|e| map_error(e, &conn.inner.server))?;
            kv_contract::health::ensure_supported_server(&conn, &conn.inner.server).await
        })
        .await?;
        if let Some(watch) = watch {
            watch.spawn(Arc::downgrade(&conn.inner));
        }
        conn.listen_for_link_events();
        tracing::debug!(server = %conn.inner.server, "rustauth-fred connected");
        Ok(conn)
    }

    /// Feeds the link monitor from fred's events: a connection error (the reader's, or a
    /// failed reconnect) is a loss, a (re)connection is the link back, even with no
    /// command in flight.
    fn listen_for_link_events(&self) {
        let inner = &*self.inner;
        let (link, server) = (inner.link.clone(), inner.server.clone());
        let errors = inner.client.on_error(move |(e, _)| {
            link.lost(&map_error(e, &server));
            async { Ok(()) }
        });
        let link = inner.link.clone();
        let reconnects = inner.client.on_reconnect(move |_| {
            link.up();
            async { Ok(()) }
        });
        inner
            .listeners
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend([errors, reconnects]);
    }

    /// The underlying fred client (for commands rustauth-kv does not wrap). It quits when
    /// the last `FredConnection` clone is dropped or closed.
    pub fn client(&self) -> &Client {
        &self.inner.client
    }
}

pub(crate) fn tcp_server(host: &str, port: u16, tls: bool) -> Server {
    #[cfg(any(feature = "tls-rustls", feature = "tls-native-tls"))]
    if tls {
        return Server::new_with_tls(host, port, Some(host.to_owned()));
    }
    let _ = tls;
    Server::new(host, port)
}

/// fred's TLS configuration: the system's roots, or only `root_pem` when given.
#[cfg(any(feature = "tls-rustls", feature = "tls-native-tls"))]
fn tls_config(
    tls: bool,
    root_pem: Option<&[u8]>,
) -> Result<Option<fred::types::config::TlsConfig>, FredError> {
    use fred::types::config::TlsConnector;
    if !tls {
        return Ok(None);
    }
    let bad_pem = |e: &dyn std::fmt::Display| {
        FredError::new(FredKind::Config, format!("TLS root certificates: {e}"))
    };
    #[cfg(feature = "tls-rustls")]
    {
        use rustls::pki_types::{pem::PemObject, CertificateDer};
        let _ = rustls::crypto::ring::default_provider().install_default();
        let Some(pem) = root_pem else {
            return Ok(Some(TlsConnector::default_rustls()?.into()));
        };
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(pem) {
            roots
                .add(cert.map_err(|e| bad_pem(&e))?)
                .map_err(|e| bad_pem(&e))?;
        }
        let config = rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Some(TlsConnector::from(config).into()))
    }
    #[cfg(not(feature = "tls-rustls"))]
    {
        let Some(pem) = root_pem else {
            return Ok(Some(TlsConnector::default_native_tls()?.into()));
        };
        let cert = native_tls::Certificate::from_pem(pem).map_err(|e| bad_pem(&e))?;
        let connector = native_tls::TlsConnector::builder()
            .add_root_certificate(cert)
            .build()
            .map_err(|e| bad_pem(&e))?;
        Ok(Some(TlsConnector::from(connector).into()))
    }
}

impl FredConnection {
    /// One command, on the server or the cluster.
    async fn execute_inner(&self, command: Command) -> KvResult<Reply> {
        let inner = &*self.inner;
        if inner.closed.load(Ordering::Acquire) {
            return Err(kv_contract::wire::closed_error(&inner.server));
        }
        if inner.client.is_clustered() {
            let hash = match command.routing_key() {
                Some(key) => ClusterHash::Custom(fred::util::redis_keyslot(key)),
                None => ClusterHash::Random,
            };
            let (name, args) = command.into_parts();
            let cmd = CustomCommand::new_static(name, hash, false);
            return cluster::execute(self, cmd, args.into_iter().map(Value::Bytes).collect()).await;
        }
        // One server: no key slot to compute, and the hot commands go typed (see `typed`).
        let (name, args) = command.into_parts();
        let args = match typed::classify(name, args) {
            Ok(command) => {
                return typed::send(&inner.client, command)
                    .await
                    .unwrap_or_else(|e| Err(map_error(e, &inner.server)))
            }
            Err(args) => args,
        };
        let cmd = CustomCommand::new_static(name, ClusterHash::Random, false);
        let args: Vec<Value> = args.into_iter().map(Value::Bytes).collect();
        match inner.client.custom_raw(cmd, args).await {
            Ok(frame) => into_reply(frame),
            Err(e) => Err(map_error(e, &inner.server)),
        }
    }
}

#[async_trait]
impl Connection for FredConnection {
    async fn execute(&self, command: Command) -> KvResult<Reply> {
        let result = self.execute_inner(command).await;
        self.inner.link.observe(&result);
        result
    }

    fn is_cluster(&self) -> bool {
        self.inner.client.is_clustered()
    }

    async fn scan_page(
        &self,
        from: kv_contract::wire::ScanCursor,
        pattern: &[u8],
        count: u32,
    ) -> KvResult<kv_contract::wire::ScanPage> {
        if self.is_cluster() {
            return cluster::scan_page(self, from, pattern, count).await;
        }
        kv_contract::wire::single_node_scan_page(self, from, pattern, count).await
    }

    async fn close(&self) -> KvResult<()> {
        let inner = &*self.inner;
        inner.stop_listening();
        if inner.closed.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        match tokio::time::timeout(inner.quit_timeout, inner.client.quit()).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(map_error(e, &inner.server)),
            // The server did not answer QUIT in time: the router already has the command
            // and closes the connection; the caller is not held longer.
            Err(_) => Ok(()),
        }
    }
}

fn into_reply(frame: Resp3Frame) -> KvResult<Reply> {
    Ok(match frame {
        Resp3Frame::Null => Reply::Nil,
        Resp3Frame::Number { data, .. } => Reply::Int(data),
        Resp3Frame::BlobString { data, .. } | Resp3Frame::VerbatimString { data, .. } => {
            Reply::Data(data)
        }
        Resp3Frame::SimpleString { data, .. } => {
            Reply::Status(String::from_utf8_lossy(&data).into_owned())
        }
        Resp3Frame::Array { data, .. } | Resp3Frame::Push { data, .. } => {
            Reply::Array(data.into_iter().map(into_reply).collect::<KvResult<_>>()?)
        }
        Resp3Frame::Set { data, .. } => {
            Reply::Array(data.into_iter().map(into_reply).collect::<KvResult<_>>()?)
        }
        Resp3Frame::Map { data, .. } => {
            let mut flat = Vec::with_capacity(data.len() * 2);
            for (k, v) in data {
                flat.push(into_reply(k)?);
                flat.push(into_reply(v)?);
            }
            Reply::Array(flat)
        }
        Resp3Frame::Double { data, .. } => Reply::Double(data),
        Resp3Frame::Boolean { data, .. } => Reply::Bool(data),
        Resp3Frame::BigNumber { data, .. } => Reply::Data(data),
        Resp3Frame::SimpleError { data, .. } => {
            return Err(KvError::server_reply(data.to_string(), None))
        }
        Resp3Frame::BlobError { data, .. } => {
            return Err(KvError::server_reply(
                String::from_utf8_lossy(&data).into_owned(),
                None,
            ))
        }
        other => {
            return Err(KvError::unexpected(format!(
                "unsupported reply frame from the server: {other:?}"
            )))
        }
    })
}

/// Converts a fred error into kv-contract's error, keeping it as `source()`.
fn map_error(e: FredError, server: &str) -> KvError {
    let kind = match e.kind() {
        FredKind::Timeout => ErrorKind::Timeout,
        FredKind::IO | FredKind::Canceled | FredKind::Backpressure | FredKind::Cluster => {
            ErrorKind::Unavailable
        }
        FredKind::Config | FredKind::Url => ErrorKind::InvalidConfig,
        FredKind::Protocol | FredKind::Parse => ErrorKind::UnexpectedData,
        // Error replies from the server arrive as these kinds with the reply as details;
        // fred also reports its own failures ("Failed to route command.", "Too many failed
        // write attempts.") as `Unknown`: those are outages, not answers.
        FredKind::Unknown
        | FredKind::InvalidArgument
        | FredKind::InvalidCommand
        | FredKind::Auth
            if KvError::is_server_reply_text(e.details()) =>
        {
            let details = e.details().to_owned();
            return KvError::server_reply(details, Some(Box::new(e)));
        }
        FredKind::InvalidArgument | FredKind::InvalidCommand => ErrorKind::InvalidInput,
        _ => ErrorKind::Unavailable,
    };
    let message = match kind {
        ErrorKind::Timeout => format!("{server} did not answer in time"),
        ErrorKind::Unavailable => format!("cannot reach {server}: {}", e.details()),
        _ => format!("{server}: {}", e.details()),
    };
    KvError::with_source(kind, message, e)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One row per fred error kind a command can fail with: client failures are outages,
    /// server replies are answers.
    #[test]
    fn fred_errors_are_classified_by_origin() {
        let table = [
            (
                FredKind::Unknown,
                "Failed to route command.",
                ErrorKind::Unavailable,
            ),
            (
                FredKind::Unknown,
                "Too many failed write attempts.",
                ErrorKind::Unavailable,
            ),
            (
                FredKind::Unknown,
                "Failed to send command to router.",
                ErrorKind::Unavailable,
            ),
            (
                FredKind::Routing,
                "Failed to route command.",
                ErrorKind::Unavailable,
            ),
            (
                FredKind::IO,
                "Connection reset by peer",
                ErrorKind::Unavailable,
            ),
            (FredKind::Canceled, "Canceled.", ErrorKind::Unavailable),
            (FredKind::Timeout, "Request timed out.", ErrorKind::Timeout),
            (
                FredKind::Unknown,
                "ERR unknown command 'X'",
                ErrorKind::Server,
            ),
            (
                FredKind::Unknown,
                "OOM command not allowed",
                ErrorKind::Server,
            ),
            (
                FredKind::Unknown,
                "LOADING Redis is loading",
                ErrorKind::Unavailable,
            ),
            (
                FredKind::InvalidArgument,
                "WRONGTYPE Operation",
                ErrorKind::Server,
            ),
            (
                FredKind::Auth,
                "NOAUTH Authentication required.",
                ErrorKind::Server,
            ),
            (
                FredKind::Auth,
                "WRONGPASS invalid username-password pair",
                ErrorKind::Server,
            ),
            (FredKind::Config, "bad config", ErrorKind::InvalidConfig),
            (FredKind::Protocol, "bad frame", ErrorKind::UnexpectedData),
        ];
        for (fred_kind, details, want) in table {
            let e = map_error(FredError::new(fred_kind.clone(), details), "127.0.0.1:6379");
            assert_eq!(e.kind(), want, "{fred_kind:?} {details:?}: {e}");
        }
    }
}
