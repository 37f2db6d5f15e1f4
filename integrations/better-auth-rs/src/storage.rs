//! [`KvSecondaryStorage`]: better-auth-rs's `SecondaryStorage` over rustauth-kv's
//! [`SecondaryStorage`](rustauth_kv::SecondaryStorage). Each method converts its
//! arguments (`convert`) and makes exactly one call on our store; the keys, TTL rules,
//! atomicity and bytes on the wire are the store's (`docs/wire-format.md`).

use std::sync::Arc;

use async_trait::async_trait;
use better_auth_core::store::SecondaryStorage as BaSecondaryStorage;
use better_auth_core::{AuthResult, FieldValue};
use rustauth_kv::{Kv, SecondaryStorage};

use crate::convert::{auth_error, increment_ttl, key_text, set_ttl, value_bytes, value_text};

/// better-auth-rs's secondary storage (sessions, the `active-sessions-<userId>` lists,
/// verification values, rate-limit counters) over one of our secondary stores.
///
/// Keys live under the store's namespace, `{prefix}secondary:{key}` by default. Values
/// are better-auth-rs's strings (its JSON), stored as UTF-8 bytes and read back as
/// `FieldValue::String`.
///
/// | better-auth-rs | rustauth-kv | Redis |
/// |---|---|---|
/// | `get` / `get_native` | `get` | `GET` |
/// | `set_native(k, v, None)` | `set(k, v, None)` | `SET` |
/// | `set_native(k, v, Some(s))` | `set(k, v, Some(s rounded up to ms))` | `SET … PX` |
/// | `delete` / `delete_native` | `delete` | `DEL` |
/// | `get_and_delete` (atomic) | `take` | `GETDEL` |
/// | `increment(k, s)` | `increment(k, s rounded up to whole seconds)` | one script: `INCR`, `EXPIRE` when new |
///
/// A TTL that is zero, negative, NaN, infinite or above 2^53 − 1 ms, a value that is not
/// a string, and a key that is not a string, number or boolean are rejected before any
/// I/O (better-auth-rs's own `RedisAdapter` fails on the same input, at the server).
/// Errors are better-auth-rs `AuthError::Database` errors whose `source()` chain ends
/// in the [`KvError`](rustauth_kv::KvError). The adapter's own errors never contain a
/// key (keys are session tokens); of rustauth-kv's, only a value above 512 MiB names
/// its key.
#[derive(Clone)]
pub struct KvSecondaryStorage {
    store: Arc<dyn SecondaryStorage>,
}

impl std::fmt::Debug for KvSecondaryStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KvSecondaryStorage").finish_non_exhaustive()
    }
}

impl KvSecondaryStorage {
    /// The bundle's secondary store ([`Kv::storage`]): its connection and prefix.
    pub fn new(kv: &Kv) -> Self {
        Self::from_storage(kv.storage())
    }

    /// Any secondary store, e.g. one built with other
    /// [`StorageOptions`](rustauth_kv::StorageOptions) or wrapped in
    /// [`ResilientStorage`](rustauth_kv::resilient::ResilientStorage).
    pub fn from_storage(store: Arc<dyn SecondaryStorage>) -> Self {
        KvSecondaryStorage { store }
    }

    /// This adapter in the `Arc` better-auth-rs's builder takes
    /// (`BetterAuth::….secondary_storage(kv_storage.into_arc())`).
    pub fn into_arc(self) -> Arc<dyn BaSecondaryStorage> {
        Arc::new(self)
    }

    async fn read(&self, key: &FieldValue) -> AuthResult<Option<String>> {
        let key = key_text(key).map_err(auth_error)?;
        match self.store.get(&key).await.map_err(auth_error)? {
            None => Ok(None),
            Some(bytes) => value_text(bytes).map(Some).map_err(auth_error),
        }
    }

    async fn take(&self, key: &FieldValue) -> AuthResult<Option<String>> {
        let key = key_text(key).map_err(auth_error)?;
        match self.store.take(&key).await.map_err(auth_error)? {
            None => Ok(None),
            Some(bytes) => value_text(bytes).map(Some).map_err(auth_error),
        }
    }
}

#[async_trait]
impl BaSecondaryStorage for KvSecondaryStorage {
    async fn get(&self, key: &str) -> AuthResult<Option<serde_json::Value>> {
        Ok(self.read(&key.into()).await?.map(serde_json::Value::String))
    }

    async fn get_native(&self, key: &FieldValue) -> AuthResult<Option<FieldValue>> {
        Ok(self.read(key).await?.map(FieldValue::String))
    }

    async fn set_native(
        &self,
        key: &FieldValue,
        value: &FieldValue,
        ttl_seconds: Option<f64>,
    ) -> AuthResult<()> {
        let ttl = ttl_seconds.map(set_ttl).transpose().map_err(auth_error)?;
        let value = value_bytes(value).map_err(auth_error)?;
        let key = key_text(key).map_err(auth_error)?;
        self.store.set(&key, value, ttl).await.map_err(auth_error)
    }

    async fn delete(&self, key: &str) -> AuthResult<()> {
        self.delete_native(&key.into()).await
    }

    async fn delete_native(&self, key: &FieldValue) -> AuthResult<()> {
        let key = key_text(key).map_err(auth_error)?;
        self.store.delete(&key).await.map_err(auth_error)?;
        Ok(())
    }

    async fn get_and_delete(&self, key: &str) -> AuthResult<Option<serde_json::Value>> {
        Ok(self.take(&key.into()).await?.map(serde_json::Value::String))
    }

    async fn get_and_delete_native(&self, key: &FieldValue) -> AuthResult<Option<FieldValue>> {
        Ok(self.take(key).await?.map(FieldValue::String))
    }

    async fn increment(&self, key: &str, ttl_seconds: f64) -> AuthResult<f64> {
        let ttl = increment_ttl(ttl_seconds).map_err(auth_error)?;
        let count = self.store.increment(key, ttl).await.map_err(auth_error)?;
        // A count is at most i64::MAX; as f64 it is exact up to 2^53, which no counter of
        // a rate-limit window reaches.
        Ok(count as f64)
    }
}
