//! [`ObservedConnection`]: a [`Connection`] that wraps every command in an OpenTelemetry
//! client span and times it.

use std::time::Instant;

use async_trait::async_trait;
use tracing::Instrument;

use super::static_keys;
use crate::config::{Endpoint, ServerAddress};
use crate::error::{KvError, KvResult};
use crate::script;
use crate::wire::{Command, Connection, Reply, ScanCursor, ScanPage};

/// Commands that carry several keys, for `db.operation.batch.size`.
const MULTI_KEY: [&str; 4] = ["MGET", "DEL", "UNLINK", "EXISTS"];

/// A connection whose commands are traced and timed (see the module table of
/// [`observe`](super)). Wraps any [`Connection`]; everything else is forwarded.
pub struct ObservedConnection<C: ?Sized> {
    address: String,
    port: u16,
    namespace: String,
    inner: std::sync::Arc<C>,
}

impl<C: Connection + ?Sized> ObservedConnection<C> {
    /// Observes `inner`, which is connected to `server` (its host, port and database
    /// become `server.address`, `server.port` and `db.namespace`; never its password).
    pub fn new(inner: std::sync::Arc<C>, server: &ServerAddress) -> Self {
        let (address, port) = match &server.endpoint {
            Endpoint::Tcp { host, port } => (host.clone(), *port),
            Endpoint::Unix { path } => (path.display().to_string(), 0),
            Endpoint::Cluster { nodes } | Endpoint::Sentinel { nodes, .. } => nodes
                .first()
                .map(|n| (n.host.clone(), n.port))
                .unwrap_or_default(),
        };
        ObservedConnection {
            address,
            port,
            namespace: server.database.to_string(),
            inner,
        }
    }
}

impl<C: ?Sized> std::fmt::Debug for ObservedConnection<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObservedConnection")
            .field("server.address", &self.address)
            .field("server.port", &self.port)
            .finish_non_exhaustive()
    }
}

/// The script a command runs (`EVALSHA <sha>` or `EVAL <source>`), by name.
fn script_name(command: &Command) -> Option<&'static str> {
    let first = command.args().first()?;
    match command.name() {
        "EVALSHA" => script::all()
            .into_iter()
            .find(|s| s.sha1().as_bytes() == &first[..])
            .map(|s| s.name()),
        "EVAL" => script::all()
            .into_iter()
            .find(|s| s.source().as_bytes() == &first[..])
            .map(|s| s.name()),
        _ => None,
    }
}

/// The error's class for `error.type` and `db.response.status_code`: the server's error
/// code (`NOSCRIPT`, `WRONGTYPE`, ...) or our error kind.
pub(super) fn error_type(e: &KvError) -> String {
    match e.server_code() {
        Some(code) => code.to_owned(),
        None => format!("{:?}", e.kind()).to_lowercase(),
    }
}

#[async_trait]
impl<C: Connection + ?Sized> Connection for ObservedConnection<C> {
    async fn execute(&self, command: Command) -> KvResult<Reply> {
        let name = command.name();
        let span = tracing::info_span!(
            "redis.command",
            otel.name = name,
            otel.kind = "client",
            db.system.name = "redis",
            db.operation.name = name,
            db.stored_procedure.name = tracing::field::Empty,
            db.namespace = %self.namespace,
            server.address = %self.address,
            server.port = self.port,
            db.operation.batch.size = tracing::field::Empty,
            db.response.status_code = tracing::field::Empty,
            error.type = tracing::field::Empty,
            otel.status_code = tracing::field::Empty,
        );
        // Only an enabled span pays for the script lookup.
        if !span.is_disabled() {
            if let Some(script) = script_name(&command) {
                span.record("db.stored_procedure.name", script);
            }
            if MULTI_KEY.contains(&name) && command.args().len() > 1 {
                span.record("db.operation.batch.size", command.args().len());
            }
        }
        let started = Instant::now();
        let result = self.inner.execute(command).instrument(span.clone()).await;
        let seconds = started.elapsed().as_secs_f64();
        match &result {
            Ok(_) => {
                let histogram = match static_keys::duration_key(name) {
                    Some(key) => metrics::with_recorder(|r| {
                        r.register_histogram(key, &static_keys::METADATA)
                    }),
                    None => metrics::histogram!(
                        super::names::OPERATION_DURATION,
                        "db.system.name" => "redis",
                        "db.operation.name" => name,
                    ),
                };
                histogram.record(seconds);
            }
            Err(e) => {
                let kind = error_type(e);
                if let Some(code) = e.server_code() {
                    span.record("db.response.status_code", code);
                }
                span.record("error.type", kind.as_str());
                span.record("otel.status_code", "ERROR");
                metrics::histogram!(
                    super::names::OPERATION_DURATION,
                    "db.system.name" => "redis",
                    "db.operation.name" => name,
                    "error.type" => kind,
                )
                .record(seconds);
            }
        }
        result
    }

    async fn close(&self) -> KvResult<()> {
        self.inner.close().await
    }

    fn is_cluster(&self) -> bool {
        self.inner.is_cluster()
    }

    async fn scan_page(&self, from: ScanCursor, pattern: &[u8], count: u32) -> KvResult<ScanPage> {
        let span = tracing::info_span!(
            "redis.command",
            otel.name = "SCAN",
            otel.kind = "client",
            db.system.name = "redis",
            db.operation.name = "SCAN",
            db.namespace = %self.namespace,
            server.address = %self.address,
            server.port = self.port,
        );
        self.inner
            .scan_page(from, pattern, count)
            .instrument(span)
            .await
    }
}
