//! Observability: OpenTelemetry-named `tracing` spans, `metrics` counters and histograms,
//! and loud `warn` events when the stores degrade. Nothing here ever records a key, token,
//! value or password: only command names, script names, counts, error kinds and the
//! server's address.
//!
//! | piece | what it does |
//! |---|---|
//! | [`ObservedConnection`] | one client span per command (`db.*`, `server.*` attributes), `db.client.operation.duration` |
//! | [`ObservedStorage`], [`ObservedRateLimiter`], [`ObservedSessionIndex`], [`ObservedLock`] | one parent span per store operation, decision/session counters, fail-open warnings |
//! | [`LinkMonitor`] | a backend's connection lost and back: one `warn` event and one count each per outage |
//! | [`degraded`] | the one `warn` event (target [`DEGRADED_TARGET`]) and counter of every degradation |
//!
//! With no `tracing` subscriber and no `metrics` recorder installed, all of it costs a
//! few relaxed atomic loads per call. `rustauth-kv`'s `Kv` bundle applies every wrapper;
//! users of the parts wrap their connection and stores themselves. `docs/observability.md`
//! lists every span, attribute, metric and event.

#[cfg(any(test, feature = "capture"))]
pub mod capture;
mod connection;
mod link;
mod static_keys;
mod stores;

pub use connection::ObservedConnection;
pub use link::LinkMonitor;
pub use stores::{ObservedLock, ObservedRateLimiter, ObservedSessionIndex, ObservedStorage};

/// The `tracing` target of every degradation event (stable: filter or alert on it).
pub const DEGRADED_TARGET: &str = "rustauth_kv::degraded";

/// Metric names (stable).
pub mod names {
    /// Histogram, seconds: one command's duration (OpenTelemetry's name).
    pub const OPERATION_DURATION: &str = "db.client.operation.duration";
    /// The bucket boundaries (seconds) OpenTelemetry recommends for
    /// [`OPERATION_DURATION`]; configure your exporter with them.
    pub const OPERATION_DURATION_BUCKETS: [f64; 9] =
        [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0];
    /// Counter: store operations, by `operation`.
    pub const OPERATIONS: &str = "rustauth_kv.operations";
    /// Counter: failed store operations, by `operation` and `error.type`.
    pub const ERRORS: &str = "rustauth_kv.errors";
    /// Counter: rate-limit decisions, by `outcome` (`allowed`/`denied`) and `source`.
    pub const RATE_LIMIT_DECISIONS: &str = "rustauth_kv.rate_limit.decisions";
    /// Counter: sessions created.
    pub const SESSIONS_CREATED: &str = "rustauth_kv.sessions.created";
    /// Counter: sessions revoked (deleted, revoked by user), by `operation`.
    pub const SESSIONS_REVOKED: &str = "rustauth_kv.sessions.revoked";
    /// Counter: sessions evicted by the per-user cap.
    pub const SESSIONS_EVICTED: &str = "rustauth_kv.sessions.evicted";
    /// Counter: circuit-breaker transitions, by `state` (`open`, `half_open`, `closed`).
    pub const BREAKER_TRANSITIONS: &str = "rustauth_kv.breaker.transitions";
    /// Counter: scripts re-sent with `EVAL` after `NOSCRIPT`, by `script`.
    pub const SCRIPT_RELOADS: &str = "rustauth_kv.scripts.reloaded";
    /// Counter: connections lost, as the backend saw them ([`LinkMonitor`](super::LinkMonitor)):
    /// one per outage, however many commands fail in it.
    pub const CONNECTION_LOST: &str = "rustauth_kv.connection.lost";
    /// Counter: connections back after a loss (the backend reconnected).
    pub const RECONNECTS: &str = "rustauth_kv.reconnects";
    /// Counter: degraded answers, by `policy` (`failed_open`, `failed_closed`, `skip`,
    /// `fallback`) and `operation`.
    pub const DEGRADED: &str = "rustauth_kv.degraded";
}

/// Records one degradation: the `warn` event on [`DEGRADED_TARGET`] and the
/// [`names::DEGRADED`] counter. `policy` and `operation` are static, low-cardinality
/// names; `error` is the cause's message (which never holds a key or value: errors name
/// servers, commands and scripts).
pub fn degraded(policy: &'static str, operation: &'static str, error: Option<&str>) {
    tracing::warn!(
        target: DEGRADED_TARGET,
        policy,
        operation,
        error = error.unwrap_or(""),
        "rustauth-kv degraded: {operation} answered by policy {policy}"
    );
    metrics::counter!(names::DEGRADED, "policy" => policy, "operation" => operation).increment(1);
}

/// Records a circuit-breaker opening or closing: the `warn` event and the counter.
pub(crate) fn breaker_transition(state: &'static str, why: &'static str) {
    tracing::warn!(
        target: DEGRADED_TARGET,
        state,
        why,
        "rustauth-kv circuit breaker is now {state}: {why}"
    );
    breaker_counted(state);
}

/// Counts a circuit-breaker transition (`half_open` is counted, not warned about).
pub(crate) fn breaker_counted(state: &'static str) {
    metrics::counter!(names::BREAKER_TRANSITIONS, "state" => state).increment(1);
}

/// Records a script re-sent with `EVAL` after `NOSCRIPT`.
pub(crate) fn script_reloaded(script: &'static str) {
    tracing::warn!(
        target: DEGRADED_TARGET,
        script,
        "rustauth-kv script {script} was not loaded on the server: sent with EVAL"
    );
    metrics::counter!(names::SCRIPT_RELOADS, "script" => script).increment(1);
}

#[cfg(test)]
mod tests;
