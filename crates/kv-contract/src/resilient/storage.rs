//! [`ResilientStorage`]: any [`SecondaryStorage`] behind a circuit breaker, answering by
//! an [`OnUnavailable`] policy while the server is unavailable.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

use super::{Degradation, OnUnavailable};
use crate::breaker::CircuitBreaker;
use crate::error::KvResult;
use crate::storage::SecondaryStorage;

/// Secondary storage that degrades instead of hanging on an unavailable server.
///
/// Under [`OnUnavailable::Skip`]: reads miss (`get`, `take` → `None`, `get_many` → all
/// `None`, `list_keys` → empty), writes are dropped (`set`, `set_keep_ttl` succeed
/// without storing), and every conditional or counted write reports that nothing happened
/// (`set_if_not_exists`, `compare_and_set`, `delete_if_value`, `delete` → `false`;
/// `delete_many`, `clear` → 0), so no caller believes it created or consumed something.
#[derive(Clone)]
pub struct ResilientStorage {
    primary: Arc<dyn SecondaryStorage>,
    degradation: Degradation<Arc<dyn SecondaryStorage>>,
}

impl std::fmt::Debug for ResilientStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResilientStorage")
            .field("breaker", self.degradation.breaker())
            .finish_non_exhaustive()
    }
}

impl ResilientStorage {
    /// Wraps `primary`; calls go through `breaker` (share it with the other wrappers on
    /// the same Redis), and `on_unavailable` answers while it is unavailable.
    pub fn new(
        primary: Arc<dyn SecondaryStorage>,
        breaker: CircuitBreaker,
        on_unavailable: OnUnavailable<Arc<dyn SecondaryStorage>>,
    ) -> Self {
        ResilientStorage {
            primary,
            degradation: Degradation::new(breaker, on_unavailable),
        }
    }

    /// The breaker (for its stats).
    pub fn breaker(&self) -> &CircuitBreaker {
        self.degradation.breaker()
    }
}

#[async_trait]
impl SecondaryStorage for ResilientStorage {
    async fn get(&self, key: &str) -> KvResult<Option<Bytes>> {
        let p = &self.primary;
        self.degradation
            .run(|| p.get(key), || None, |f| f.get(key))
            .await
    }

    async fn set(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> KvResult<()> {
        let (p, v) = (&self.primary, value.clone());
        self.degradation
            .run(|| p.set(key, v, ttl), || (), |f| f.set(key, value, ttl))
            .await
    }

    async fn set_keep_ttl(&self, key: &str, value: Bytes) -> KvResult<()> {
        let (p, v) = (&self.primary, value.clone());
        self.degradation
            .run(
                || p.set_keep_ttl(key, v),
                || (),
                |f| f.set_keep_ttl(key, value),
            )
            .await
    }

    async fn delete(&self, key: &str) -> KvResult<bool> {
        let p = &self.primary;
        self.degradation
            .run(|| p.delete(key), || false, |f| f.delete(key))
            .await
    }

    async fn set_if_not_exists(
        &self,
        key: &str,
        value: Bytes,
        ttl: Option<Duration>,
    ) -> KvResult<bool> {
        let (p, v) = (&self.primary, value.clone());
        self.degradation
            .run(
                || p.set_if_not_exists(key, v, ttl),
                || false,
                |f| f.set_if_not_exists(key, value, ttl),
            )
            .await
    }

    async fn take(&self, key: &str) -> KvResult<Option<Bytes>> {
        let p = &self.primary;
        self.degradation
            .run(|| p.take(key), || None, |f| f.take(key))
            .await
    }

    async fn increment(&self, key: &str, ttl: Duration) -> KvResult<i64> {
        // A count must never look applied when it was not: no Skip answer exists.
        let p = &self.primary;
        self.degradation
            .run_unskippable(|| p.increment(key, ttl), |f| f.increment(key, ttl))
            .await
    }

    async fn compare_and_set(
        &self,
        key: &str,
        expected: Option<&[u8]>,
        value: Bytes,
        ttl: Option<Duration>,
    ) -> KvResult<bool> {
        let (p, v) = (&self.primary, value.clone());
        self.degradation
            .run(
                || p.compare_and_set(key, expected, v, ttl),
                || false,
                |f| f.compare_and_set(key, expected, value, ttl),
            )
            .await
    }

    async fn delete_if_value(&self, key: &str, expected: &[u8]) -> KvResult<bool> {
        let p = &self.primary;
        self.degradation
            .run(
                || p.delete_if_value(key, expected),
                || false,
                |f| f.delete_if_value(key, expected),
            )
            .await
    }

    async fn get_many(&self, keys: &[&str]) -> KvResult<Vec<Option<Bytes>>> {
        let p = &self.primary;
        self.degradation
            .run(
                || p.get_many(keys),
                || vec![None; keys.len()],
                |f| f.get_many(keys),
            )
            .await
    }

    async fn delete_many(&self, keys: &[&str]) -> KvResult<u64> {
        let p = &self.primary;
        self.degradation
            .run(|| p.delete_many(keys), || 0, |f| f.delete_many(keys))
            .await
    }

    async fn list_keys(&self) -> KvResult<Vec<String>> {
        let p = &self.primary;
        self.degradation
            .run(|| p.list_keys(), Vec::new, |f| f.list_keys())
            .await
    }

    async fn clear(&self) -> KvResult<u64> {
        let p = &self.primary;
        self.degradation
            .run(|| p.clear(), || 0, |f| f.clear())
            .await
    }
}
