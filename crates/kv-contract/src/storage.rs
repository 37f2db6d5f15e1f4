//! The secondary-storage contract: the trait every implementation (memory, redis-rs,
//! fred) satisfies, its options, and string conveniences.
//!
//! Keys are logical (`"session-token"`); implementations map them into the
//! `{prefix}secondary:` namespace with the [`KeyCodec`]. Values are binary-safe
//! [`Bytes`]. TTLs follow the table in [`crate::ttl`].

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

use crate::error::{KvError, KvResult};
use crate::glob;
use crate::keys::{KeyCodec, Namespace, Prefix};
use crate::ttl::Expiry;

/// The largest value accepted, in bytes: Redis's own limit for a string (512 MiB).
pub const MAX_VALUE_LEN: usize = 512 * 1024 * 1024;

/// Short-lived key-value storage for an auth server (sessions, verification values,
/// one-time codes), namespaced under `{prefix}secondary:`.
///
/// Every method is one round trip to the server, except `list_keys` and `clear`, which
/// walk the namespace with `SCAN` page by page.
#[async_trait]
pub trait SecondaryStorage: Send + Sync {
    /// The value of `key`, or `None`.
    async fn get(&self, key: &str) -> KvResult<Option<Bytes>>;

    /// Stores `value` under `key`. `ttl`: `None` stores without expiry (dropping any
    /// expiry the key had), `Some(0)` deletes the key, otherwise the key expires after it.
    async fn set(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> KvResult<()>;

    /// Stores `value` under `key`, keeping the key's current expiry (none if it had none
    /// or did not exist): `SET key value KEEPTTL`.
    async fn set_keep_ttl(&self, key: &str, value: Bytes) -> KvResult<()>;

    /// Deletes `key`; true when it existed.
    async fn delete(&self, key: &str) -> KvResult<bool>;

    /// Stores `value` only if `key` does not exist; true when it created the key.
    /// With `ttl` `Some(0)` it creates nothing and returns false, without I/O.
    async fn set_if_not_exists(
        &self,
        key: &str,
        value: Bytes,
        ttl: Option<Duration>,
    ) -> KvResult<bool>;

    /// Atomically reads and deletes `key` (`GETDEL`): of concurrent callers, exactly one
    /// gets the value. This is Better Auth's `getAndDelete` (published in
    /// `@better-auth/redis-storage` from 1.6.11; required by 1.7's `SecondaryStorage`),
    /// which consumes single-use verification values.
    async fn take(&self, key: &str) -> KvResult<Option<Bytes>>;

    /// Atomically adds 1 to the decimal integer under `key` and returns the new value:
    /// Better Auth 1.7's `increment(key, ttl)`. A missing key counts from 0, and only
    /// then (the result is 1) gets the expiry `ttl`; an existing key keeps its expiry,
    /// or its lack of one. One script (`increment.lua`: `INCR`, then `EXPIRE` when the
    /// result is 1), so concurrent callers on any backend never lose a count.
    ///
    /// `ttl` must be a whole number of seconds, at least 1 (Better Auth throws on a
    /// non-positive or fractional TTL): anything else is
    /// [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) before any I/O. A
    /// value that is not a decimal integer in `i64` range (as Redis parses it), a key of
    /// another type or an overflow is an [`ErrorKind::Script`](crate::ErrorKind::Script)
    /// error and writes nothing.
    async fn increment(&self, key: &str, ttl: Duration) -> KvResult<i64>;

    /// Atomically writes `value` only if `key` currently holds `expected` (or, with
    /// `expected` `None`, does not exist). True when the condition held and the write was
    /// applied; with `ttl` `Some(0)` the write is a delete.
    async fn compare_and_set(
        &self,
        key: &str,
        expected: Option<&[u8]>,
        value: Bytes,
        ttl: Option<Duration>,
    ) -> KvResult<bool>;

    /// Atomically deletes `key` only if it holds `expected`; true when it did.
    async fn delete_if_value(&self, key: &str, expected: &[u8]) -> KvResult<bool>;

    /// The values of `keys`, in order, in one round trip (`MGET`).
    async fn get_many(&self, keys: &[&str]) -> KvResult<Vec<Option<Bytes>>>;

    /// Deletes `keys` in one round trip (`DEL`); the number that existed.
    async fn delete_many(&self, keys: &[&str]) -> KvResult<u64>;

    /// Every logical key of the namespace, each once, in no particular order.
    async fn list_keys(&self) -> KvResult<Vec<String>>;

    /// Deletes every key of the namespace, page by page; the number deleted. Keys under
    /// other prefixes or namespaces are never touched.
    async fn clear(&self) -> KvResult<u64>;
}

/// String conveniences over any [`SecondaryStorage`].
#[async_trait]
pub trait SecondaryStorageExt: SecondaryStorage {
    /// [`SecondaryStorage::get`], decoded as UTF-8; a stored value that is not UTF-8 is an
    /// [`ErrorKind::UnexpectedData`](crate::ErrorKind::UnexpectedData) error.
    async fn get_string(&self, key: &str) -> KvResult<Option<String>> {
        match self.get(key).await? {
            None => Ok(None),
            Some(bytes) => String::from_utf8(bytes.into()).map(Some).map_err(|e| {
                KvError::unexpected(format!(
                    "value of key {key:?} is not UTF-8 (byte {} is invalid)",
                    e.utf8_error().valid_up_to()
                ))
            }),
        }
    }

    /// [`SecondaryStorage::set`] with a string value.
    async fn set_string(&self, key: &str, value: &str, ttl: Option<Duration>) -> KvResult<()> {
        self.set(key, Bytes::copy_from_slice(value.as_bytes()), ttl)
            .await
    }
}

impl<T: SecondaryStorage + ?Sized> SecondaryStorageExt for T {}

/// Where secondary-storage keys live under the prefix.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KeyLayout {
    /// `{prefix}secondary:{key}`: rustauth's layout (default). `clear` cannot touch other
    /// namespaces (rate limits) under the same prefix.
    #[default]
    Namespaced,
    /// `{prefix}{key}`: Better Auth's `@better-auth/redis-storage` layout. `list_keys` and
    /// `clear` cover everything under the prefix, so give such a store a prefix of its own.
    Flat,
}

/// What a TTL of zero means on writes.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ZeroTtl {
    /// Already expired: the write deletes the key (rustauth's rule, default).
    #[default]
    Delete,
    /// Stored without expiry: Better Auth's rule (`SETEX` only for a TTL above 0).
    NoExpiry,
}

/// Options of a secondary store. Build with [`StorageOptions::builder`].
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageOptions {
    /// The key codec (prefix).
    pub codec: KeyCodec,
    /// `COUNT` hint of each `SCAN` page, and so the largest `DEL` batch of `clear`.
    pub scan_count: u32,
    /// The key layout.
    pub layout: KeyLayout,
    /// What a TTL of zero means.
    pub zero_ttl: ZeroTtl,
    /// The bytes every key of this store starts with (derived from codec and layout).
    key_space: String,
}

impl Default for StorageOptions {
    fn default() -> Self {
        StorageOptions::builder()
            .build()
            .expect("the default options are valid")
    }
}

impl StorageOptions {
    /// Default `SCAN COUNT`: 1000 keys a page.
    pub const DEFAULT_SCAN_COUNT: u32 = 1000;
    /// Largest `SCAN COUNT` accepted.
    pub const MAX_SCAN_COUNT: u32 = 100_000;

    /// Starts options with the default prefix `rustauth:`.
    pub fn builder() -> StorageOptionsBuilder {
        StorageOptionsBuilder {
            prefix: crate::keys::DEFAULT_PREFIX.to_owned(),
            scan_count: Self::DEFAULT_SCAN_COUNT,
            layout: KeyLayout::default(),
            zero_ttl: ZeroTtl::default(),
        }
    }

    /// The physical key of a logical key, in this store's layout.
    pub fn key(&self, logical: &str) -> KvResult<Vec<u8>> {
        match self.layout {
            KeyLayout::Namespaced => self.codec.key(Namespace::Secondary, logical),
            KeyLayout::Flat => self.codec.flat_key(logical),
        }
    }

    /// The bytes every key of this store starts with: `{prefix}secondary:` (or `{prefix}`
    /// in the flat layout).
    pub fn key_space(&self) -> &str {
        &self.key_space
    }

    /// The escaped SCAN `MATCH` pattern of [`Self::key_space`].
    pub fn scan_pattern(&self) -> Vec<u8> {
        let mut pattern = glob::escape(self.key_space.as_bytes());
        pattern.push(b'*');
        pattern
    }

    /// The logical key of a physical key, or `None` when it is not this store's
    /// (stripped literally).
    pub fn logical<'a>(&self, physical: &'a [u8]) -> Option<&'a [u8]> {
        physical.strip_prefix(self.key_space.as_bytes())
    }

    /// Validates one write before any I/O — value size, TTL, key — and returns the
    /// physical key and the expiry to apply. Both implementations call this, so they
    /// reject exactly the same input.
    pub fn write_plan(
        &self,
        key: &str,
        value: &[u8],
        ttl: Option<Duration>,
    ) -> KvResult<(Vec<u8>, Expiry)> {
        check_value(key, value)?;
        let expiry = self.expiry(ttl)?;
        Ok((self.key(key)?, expiry))
    }

    /// The TTL table applied to `ttl`, with this store's [`ZeroTtl`] rule.
    pub fn expiry(&self, ttl: Option<Duration>) -> KvResult<Expiry> {
        match (Expiry::from_ttl(ttl)?, self.zero_ttl) {
            (Expiry::Immediately, ZeroTtl::NoExpiry) => Ok(Expiry::Never),
            (e, _) => Ok(e),
        }
    }
}

/// Builder for [`StorageOptions`].
#[derive(Debug, Clone)]
pub struct StorageOptionsBuilder {
    prefix: String,
    scan_count: u32,
    layout: KeyLayout,
    zero_ttl: ZeroTtl,
}

impl StorageOptionsBuilder {
    /// Sets the key prefix (default `rustauth:`); validated by `build()`.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Sets the `SCAN COUNT` hint (default 1000, 1 to 100 000).
    pub fn scan_count(mut self, count: u32) -> Self {
        self.scan_count = count;
        self
    }

    /// Sets the key layout (default [`KeyLayout::Namespaced`]).
    pub fn layout(mut self, layout: KeyLayout) -> Self {
        self.layout = layout;
        self
    }

    /// Sets what a TTL of zero means (default [`ZeroTtl::Delete`]).
    pub fn zero_ttl(mut self, zero_ttl: ZeroTtl) -> Self {
        self.zero_ttl = zero_ttl;
        self
    }

    /// Reads and writes data the way Better Auth's `@better-auth/redis-storage` does:
    /// prefix `better-auth:`, flat keys `{prefix}{key}`, a TTL of zero stores without
    /// expiry. Call [`Self::prefix`] afterwards if you configured another `keyPrefix`.
    pub fn better_auth_compatible(self) -> Self {
        self.prefix("better-auth:")
            .layout(KeyLayout::Flat)
            .zero_ttl(ZeroTtl::NoExpiry)
    }

    /// Validates and builds the options.
    pub fn build(self) -> KvResult<StorageOptions> {
        let prefix = Prefix::new(self.prefix)?;
        if self.scan_count == 0 || self.scan_count > StorageOptions::MAX_SCAN_COUNT {
            return Err(KvError::invalid_config(format!(
                "scan count {} is out of range 1..={}",
                self.scan_count,
                StorageOptions::MAX_SCAN_COUNT
            )));
        }
        let codec = KeyCodec::new(prefix);
        let key_space = match self.layout {
            KeyLayout::Namespaced => codec.namespace(Namespace::Secondary),
            KeyLayout::Flat => codec.prefix().as_str().to_owned(),
        };
        Ok(StorageOptions {
            codec,
            scan_count: self.scan_count,
            layout: self.layout,
            zero_ttl: self.zero_ttl,
            key_space,
        })
    }
}

/// Validates the TTL of [`SecondaryStorage::increment`]: whole seconds, at least 1, at
/// most [`MAX_TTL`](crate::ttl::MAX_TTL). Returns the seconds, the `EXPIRE` argument.
pub fn increment_ttl_secs(key: &str, ttl: Duration) -> KvResult<u64> {
    if ttl.is_zero() || ttl.subsec_nanos() != 0 || ttl > crate::ttl::MAX_TTL {
        return Err(KvError::invalid_input(format!(
            "increment of key {key:?}: TTL {ttl:?} is not a positive whole number of seconds \
             (at most {:?})",
            crate::ttl::MAX_TTL
        )));
    }
    Ok(ttl.as_secs())
}

/// Rejects a value larger than [`MAX_VALUE_LEN`] before any I/O.
pub fn check_value(key: &str, value: &[u8]) -> KvResult<()> {
    if value.len() > MAX_VALUE_LEN {
        return Err(KvError::invalid_input(format!(
            "value for key {key:?} is {} bytes; the limit is {MAX_VALUE_LEN}",
            value.len()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts_build_keys_and_patterns() {
        let ns = StorageOptions::builder().prefix("a*:").build().unwrap();
        assert_eq!(ns.key("k").unwrap(), b"a*:secondary:k");
        assert_eq!(ns.scan_pattern(), b"a\\*:secondary:*");
        assert_eq!(ns.logical(b"a*:secondary:k"), Some(&b"k"[..]));
        assert_eq!(ns.logical(b"a*:rate-limit:k"), None);

        let flat = StorageOptions::builder()
            .better_auth_compatible()
            .build()
            .unwrap();
        assert_eq!(
            flat.key("active-sessions-1").unwrap(),
            b"better-auth:active-sessions-1"
        );
        assert_eq!(flat.scan_pattern(), b"better-auth:*");
        assert_eq!(flat.logical(b"better-auth:x:y"), Some(&b"x:y"[..]));
        assert_eq!(flat.expiry(Some(Duration::ZERO)).unwrap(), Expiry::Never);
        assert_eq!(
            ns.expiry(Some(Duration::ZERO)).unwrap(),
            Expiry::Immediately
        );
        assert!(flat.key("").is_err());
    }

    #[test]
    fn increment_ttl_is_whole_positive_seconds() {
        assert_eq!(
            increment_ttl_secs("k", Duration::from_secs(10)).unwrap(),
            10
        );
        for bad in [
            Duration::ZERO,
            Duration::from_millis(1500),
            Duration::from_millis(999),
            Duration::from_nanos(1),
            crate::ttl::MAX_TTL + Duration::from_secs(1),
        ] {
            let e = increment_ttl_secs("k", bad).unwrap_err();
            assert_eq!(e.kind(), crate::ErrorKind::InvalidInput, "{bad:?}");
            assert!(e.message().contains("\"k\""), "{e}");
        }
    }

    #[test]
    fn scan_count_is_validated() {
        let e = StorageOptions::builder().scan_count(0).build().unwrap_err();
        assert!(e.message().contains("scan count 0"), "{e}");
    }
}
