//! Decorators that give every store operation a parent span (`storage.get`,
//! `rate_limit.consume`, `session.revoke_all`, `lock.acquire`, ...) with low-cardinality
//! attributes, count operations, errors, decisions and sessions, and warn on fail-open
//! and fail-closed decisions. They hold any implementation of the trait (server, memory,
//! resilient), so no store carries observability code.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use bytes::Bytes;
use tracing::{field::Empty, Instrument, Span};

use super::connection::error_type;
use super::names;
use super::static_keys::{decision_key, operation, Operation, METADATA};
use crate::error::KvResult;
use crate::lock::{Acquisition, ExtendOutcome, Lock, LockGuard, ReleaseOutcome};
use crate::rate_limit::{DecisionSource, RateLimitDecision, RateLimitRule, RateLimiter};
use crate::session::{CreateOutcome, Session, SessionIndex};
use crate::storage::SecondaryStorage;

/// A parent span with the attributes every store operation has.
macro_rules! op_span {
    ($name:literal, $namespace:literal) => {
        tracing::info_span!(
            $name,
            otel.kind = "internal",
            rustauth.namespace = $namespace,
            rustauth.outcome = Empty,
            error.type = Empty,
        )
    };
}

/// Runs `fut` in `span`, counting the operation and its error, and records `outcome` of
/// a success on the span.
async fn observed<T>(
    span: Span,
    operation: Operation,
    fut: impl Future<Output = KvResult<T>>,
    outcome: impl FnOnce(&T) -> &'static str,
) -> KvResult<T> {
    let result = fut.instrument(span.clone()).await;
    metrics::with_recorder(|r| r.register_counter(operation.counted, &METADATA)).increment(1);
    let operation = operation.name;
    match &result {
        Ok(value) => {
            span.record("rustauth.outcome", outcome(value));
        }
        Err(e) => {
            let kind = error_type(e);
            span.record("error.type", kind.as_str());
            metrics::counter!(names::ERRORS, "operation" => operation, "error.type" => kind)
                .increment(1);
        }
    }
    result
}

fn found<T>(v: &Option<T>) -> &'static str {
    if v.is_some() {
        "hit"
    } else {
        "miss"
    }
}

fn applied(v: &bool) -> &'static str {
    if *v {
        "applied"
    } else {
        "not_applied"
    }
}

fn done<T>(_: &T) -> &'static str {
    "ok"
}

/// [`SecondaryStorage`] with spans and counters.
#[derive(Clone)]
pub struct ObservedStorage {
    inner: Arc<dyn SecondaryStorage>,
}

impl ObservedStorage {
    /// Observes `inner`.
    pub fn new(inner: Arc<dyn SecondaryStorage>) -> Self {
        ObservedStorage { inner }
    }
}

#[async_trait]
impl SecondaryStorage for ObservedStorage {
    async fn get(&self, key: &str) -> KvResult<Option<Bytes>> {
        let span = op_span!("storage.get", "secondary");
        observed(span, operation!("storage.get"), self.inner.get(key), found).await
    }
    async fn set(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> KvResult<()> {
        let span = op_span!("storage.set", "secondary");
        observed(
            span,
            operation!("storage.set"),
            self.inner.set(key, value, ttl),
            done,
        )
        .await
    }
    async fn set_keep_ttl(&self, key: &str, value: Bytes) -> KvResult<()> {
        let span = op_span!("storage.set_keep_ttl", "secondary");
        observed(
            span,
            operation!("storage.set_keep_ttl"),
            self.inner.set_keep_ttl(key, value),
            done,
        )
        .await
    }
    async fn delete(&self, key: &str) -> KvResult<bool> {
        let span = op_span!("storage.delete", "secondary");
        observed(
            span,
            operation!("storage.delete"),
            self.inner.delete(key),
            applied,
        )
        .await
    }
    async fn set_if_not_exists(
        &self,
        key: &str,
        value: Bytes,
        ttl: Option<Duration>,
    ) -> KvResult<bool> {
        let span = op_span!("storage.set_if_not_exists", "secondary");
        let fut = self.inner.set_if_not_exists(key, value, ttl);
        observed(span, operation!("storage.set_if_not_exists"), fut, applied).await
    }
    async fn take(&self, key: &str) -> KvResult<Option<Bytes>> {
        let span = op_span!("storage.take", "secondary");
        observed(
            span,
            operation!("storage.take"),
            self.inner.take(key),
            found,
        )
        .await
    }
    async fn increment(&self, key: &str, ttl: Duration) -> KvResult<i64> {
        let span = op_span!("storage.increment", "secondary");
        observed(
            span,
            operation!("storage.increment"),
            self.inner.increment(key, ttl),
            done,
        )
        .await
    }
    async fn compare_and_set(
        &self,
        key: &str,
        expected: Option<&[u8]>,
        value: Bytes,
        ttl: Option<Duration>,
    ) -> KvResult<bool> {
        let span = op_span!("storage.compare_and_set", "secondary");
        let fut = self.inner.compare_and_set(key, expected, value, ttl);
        observed(span, operation!("storage.compare_and_set"), fut, applied).await
    }
    async fn delete_if_value(&self, key: &str, expected: &[u8]) -> KvResult<bool> {
        let span = op_span!("storage.delete_if_value", "secondary");
        let fut = self.inner.delete_if_value(key, expected);
        observed(span, operation!("storage.delete_if_value"), fut, applied).await
    }
    async fn get_many(&self, keys: &[&str]) -> KvResult<Vec<Option<Bytes>>> {
        let span = op_span!("storage.get_many", "secondary");
        observed(
            span,
            operation!("storage.get_many"),
            self.inner.get_many(keys),
            done,
        )
        .await
    }
    async fn delete_many(&self, keys: &[&str]) -> KvResult<u64> {
        let span = op_span!("storage.delete_many", "secondary");
        observed(
            span,
            operation!("storage.delete_many"),
            self.inner.delete_many(keys),
            done,
        )
        .await
    }
    async fn list_keys(&self) -> KvResult<Vec<String>> {
        let span = op_span!("storage.list_keys", "secondary");
        observed(
            span,
            operation!("storage.list_keys"),
            self.inner.list_keys(),
            done,
        )
        .await
    }
    async fn clear(&self) -> KvResult<u64> {
        let span = op_span!("storage.clear", "secondary");
        observed(span, operation!("storage.clear"), self.inner.clear(), done).await
    }
}

/// [`RateLimiter`] with spans, decision counters and a warning on every decision made
/// by the failure policy.
#[derive(Clone)]
pub struct ObservedRateLimiter {
    inner: Arc<dyn RateLimiter>,
    algorithm: &'static str,
}

impl ObservedRateLimiter {
    /// Observes `inner`, whose algorithm is named `algorithm` on its spans.
    pub fn new(inner: Arc<dyn RateLimiter>, algorithm: &'static str) -> Self {
        ObservedRateLimiter { inner, algorithm }
    }

    fn decided(operation: &'static str, d: &RateLimitDecision) -> &'static str {
        let outcome = if d.allowed { "allowed" } else { "denied" };
        let source = match d.source {
            DecisionSource::Store => "server",
            DecisionSource::BlockedCache => "cache",
            DecisionSource::FailedOpen => "failed_open",
            DecisionSource::FailedClosed => "failed_closed",
        };
        metrics::with_recorder(|r| {
            r.register_counter(decision_key(d.allowed, d.source), &METADATA)
        })
        .increment(1);
        if matches!(
            d.source,
            DecisionSource::FailedOpen | DecisionSource::FailedClosed
        ) {
            super::degraded(source, operation, None);
        }
        outcome
    }
}

macro_rules! limit_span {
    ($name:literal, $algorithm:expr) => {
        tracing::info_span!(
            $name,
            otel.kind = "internal",
            rustauth.namespace = "rate-limit",
            rustauth.algorithm = $algorithm,
            rustauth.outcome = Empty,
            rustauth.decision.source = Empty,
            error.type = Empty,
        )
    };
}

#[async_trait]
impl RateLimiter for ObservedRateLimiter {
    async fn consume(
        &self,
        bucket: &str,
        rule: &RateLimitRule,
        cost: u64,
    ) -> KvResult<RateLimitDecision> {
        let span = limit_span!("rate_limit.consume", self.algorithm);
        let fut = self.inner.consume(bucket, rule, cost);
        let record = span.clone();
        observed(span, operation!("rate_limit.consume"), fut, move |d| {
            record.record(
                "rustauth.decision.source",
                format!("{:?}", d.source).as_str(),
            );
            Self::decided("rate_limit.consume", d)
        })
        .await
    }
    async fn peek(&self, bucket: &str, rule: &RateLimitRule) -> KvResult<RateLimitDecision> {
        let span = limit_span!("rate_limit.peek", self.algorithm);
        let fut = self.inner.peek(bucket, rule);
        observed(span, operation!("rate_limit.peek"), fut, |d| {
            if d.allowed {
                "allowed"
            } else {
                "denied"
            }
        })
        .await
    }
    async fn reset(&self, bucket: &str) -> KvResult<bool> {
        let span = limit_span!("rate_limit.reset", self.algorithm);
        observed(
            span,
            operation!("rate_limit.reset"),
            self.inner.reset(bucket),
            applied,
        )
        .await
    }
}

/// [`SessionIndex`] with spans and session counters (created, revoked, evicted).
#[derive(Clone)]
pub struct ObservedSessionIndex {
    inner: Arc<dyn SessionIndex>,
}

impl ObservedSessionIndex {
    /// Observes `inner`.
    pub fn new(inner: Arc<dyn SessionIndex>) -> Self {
        ObservedSessionIndex { inner }
    }
}

fn revoked(operation: &'static str, n: u64) {
    if n > 0 {
        metrics::counter!(names::SESSIONS_REVOKED, "operation" => operation).increment(n);
    }
}

#[async_trait]
impl SessionIndex for ObservedSessionIndex {
    async fn create(
        &self,
        user_id: &str,
        token: &str,
        value: Bytes,
        expires_at: SystemTime,
    ) -> KvResult<CreateOutcome> {
        let span = op_span!("session.create", "session");
        let fut = self.inner.create(user_id, token, value, expires_at);
        observed(span, operation!("session.create"), fut, |o| match o {
            CreateOutcome::Created { evicted } => {
                metrics::counter!(names::SESSIONS_CREATED).increment(1);
                if *evicted > 0 {
                    metrics::counter!(names::SESSIONS_EVICTED).increment(*evicted);
                }
                "created"
            }
            CreateOutcome::AlreadyExpired => "already_expired",
            CreateOutcome::TokenInUse => "token_in_use",
        })
        .await
    }
    async fn get(&self, token: &str) -> KvResult<Option<Session>> {
        let span = op_span!("session.get", "session");
        observed(
            span,
            operation!("session.get"),
            self.inner.get(token),
            found,
        )
        .await
    }
    async fn refresh(
        &self,
        token: &str,
        expires_at: SystemTime,
        value: Option<Bytes>,
    ) -> KvResult<bool> {
        let span = op_span!("session.refresh", "session");
        let fut = self.inner.refresh(token, expires_at, value);
        observed(span, operation!("session.refresh"), fut, applied).await
    }
    async fn delete(&self, token: &str) -> KvResult<bool> {
        let span = op_span!("session.delete", "session");
        observed(
            span,
            operation!("session.delete"),
            self.inner.delete(token),
            |d| {
                revoked("session.delete", u64::from(*d));
                applied(d)
            },
        )
        .await
    }
    async fn delete_by_id(&self, id: &str) -> KvResult<bool> {
        let span = op_span!("session.delete_by_id", "session");
        observed(
            span,
            operation!("session.delete_by_id"),
            self.inner.delete_by_id(id),
            |d| {
                revoked("session.delete_by_id", u64::from(*d));
                applied(d)
            },
        )
        .await
    }
    async fn list(&self, user_id: &str) -> KvResult<Vec<Session>> {
        let span = op_span!("session.list", "session");
        observed(
            span,
            operation!("session.list"),
            self.inner.list(user_id),
            done,
        )
        .await
    }
    async fn revoke_all(&self, user_id: &str) -> KvResult<u64> {
        let span = op_span!("session.revoke_all", "session");
        observed(
            span,
            operation!("session.revoke_all"),
            self.inner.revoke_all(user_id),
            |n| {
                revoked("session.revoke_all", *n);
                "ok"
            },
        )
        .await
    }
    async fn revoke_all_except(&self, user_id: &str, token: &str) -> KvResult<u64> {
        let span = op_span!("session.revoke_all_except", "session");
        let fut = self.inner.revoke_all_except(user_id, token);
        observed(span, operation!("session.revoke_all_except"), fut, |n| {
            revoked("session.revoke_all_except", *n);
            "ok"
        })
        .await
    }
    async fn count(&self, user_id: &str) -> KvResult<u64> {
        let span = op_span!("session.count", "session");
        observed(
            span,
            operation!("session.count"),
            self.inner.count(user_id),
            done,
        )
        .await
    }
    fn session_id(&self, token: &str) -> KvResult<String> {
        self.inner.session_id(token)
    }
}

/// [`Lock`] with spans and counters.
#[derive(Clone)]
pub struct ObservedLock {
    inner: Arc<dyn Lock>,
}

impl ObservedLock {
    /// Observes `inner`.
    pub fn new(inner: Arc<dyn Lock>) -> Self {
        ObservedLock { inner }
    }
}

#[async_trait]
impl Lock for ObservedLock {
    async fn acquire(&self, name: &str, ttl: Duration) -> KvResult<Acquisition> {
        let span = op_span!("lock.acquire", "lock");
        observed(
            span,
            operation!("lock.acquire"),
            self.inner.acquire(name, ttl),
            |a| {
                if a.is_acquired() {
                    "acquired"
                } else {
                    "held"
                }
            },
        )
        .await
    }
    async fn release(&self, guard: &LockGuard) -> KvResult<ReleaseOutcome> {
        let span = op_span!("lock.release", "lock");
        observed(
            span,
            operation!("lock.release"),
            self.inner.release(guard),
            |r| match r {
                ReleaseOutcome::Released => "released",
                _ => "lost",
            },
        )
        .await
    }
    async fn extend(&self, guard: &LockGuard, ttl: Duration) -> KvResult<ExtendOutcome> {
        let span = op_span!("lock.extend", "lock");
        observed(
            span,
            operation!("lock.extend"),
            self.inner.extend(guard, ttl),
            |r| match r {
                ExtendOutcome::Extended => "extended",
                _ => "lost",
            },
        )
        .await
    }
}
