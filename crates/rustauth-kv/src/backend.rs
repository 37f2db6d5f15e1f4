//! Which implementation serves the stores: the in-memory keyspace, redis-rs or fred, and
//! opening a server connection with the backend the cargo features compiled in.

use std::fmt;
use std::str::FromStr;

use kv_contract::{ConnectionOptions, KvError, KvResult, SharedConnection};

/// The implementation behind a [`Kv`](crate::Kv) bundle.
///
/// Every variant exists whatever the features, so configuration naming a backend that was
/// not compiled in fails with an error that says which feature to enable.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Backend {
    /// In-process stores over one [`MemoryKeyspace`](kv_contract::MemoryKeyspace): tests
    /// and single-instance apps. Nothing is shared between processes.
    Memory,
    /// A Redis/Valkey server through redis-rs (`rustauth-redis`, feature `redis`).
    Redis,
    /// A Redis/Valkey server through fred (`rustauth-fred`, feature `fred`).
    Fred,
}

impl Backend {
    /// The server backend used when none is named: `Redis` when the `redis` feature is
    /// on, else `Fred` when `fred` is on, else `Memory`.
    pub const fn default_server() -> Backend {
        if cfg!(feature = "redis") {
            Backend::Redis
        } else if cfg!(feature = "fred") {
            Backend::Fred
        } else {
            Backend::Memory
        }
    }

    /// Whether this build can use the backend (its feature is on; `Memory` always).
    pub const fn is_compiled(self) -> bool {
        match self {
            Backend::Memory => true,
            Backend::Redis => cfg!(feature = "redis"),
            Backend::Fred => cfg!(feature = "fred"),
        }
    }

    /// The name used in configuration: `memory`, `redis` or `fred`.
    pub const fn name(self) -> &'static str {
        match self {
            Backend::Memory => "memory",
            Backend::Redis => "redis",
            Backend::Fred => "fred",
        }
    }

    /// Fails unless [`Backend::is_compiled`], naming the feature to enable.
    pub fn ensure_compiled(self) -> KvResult<()> {
        if self.is_compiled() {
            return Ok(());
        }
        Err(KvError::invalid_config(format!(
            "backend {:?} is not compiled in: enable the rustauth-kv feature \"{}\" \
             (e.g. rustauth-kv = {{ version = \"0.1\", features = [\"{}\"] }})",
            self.name(),
            self.name(),
            self.name()
        )))
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Backend {
    type Err = KvError;

    /// Parses `memory`, `redis` (also `redis-rs`) or `fred`, ignoring ASCII case and
    /// surrounding whitespace.
    fn from_str(s: &str) -> KvResult<Backend> {
        match s.trim().to_ascii_lowercase().as_str() {
            "memory" => Ok(Backend::Memory),
            "redis" | "redis-rs" => Ok(Backend::Redis),
            "fred" => Ok(Backend::Fred),
            _ => Err(KvError::invalid_config(format!(
                "unknown backend {s:?}: expected \"redis\", \"fred\" or \"memory\""
            ))),
        }
    }
}

/// Connects `backend` (a server backend) to the server of `options`.
pub(crate) async fn connect(
    backend: Backend,
    options: &ConnectionOptions,
) -> KvResult<SharedConnection> {
    backend.ensure_compiled()?;
    match backend {
        #[cfg(feature = "redis")]
        Backend::Redis => Ok(std::sync::Arc::new(
            rustauth_redis::RedisConnection::connect(options).await?,
        )),
        #[cfg(feature = "fred")]
        Backend::Fred => Ok(std::sync::Arc::new(
            rustauth_fred::FredConnection::connect(options).await?,
        )),
        other => {
            let _ = options;
            Err(KvError::invalid_config(format!(
                "backend {other} does not connect to a server: build the bundle with \
                 Kv::memory or a memory:// URL"
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_names_are_refused() {
        for b in [Backend::Memory, Backend::Redis, Backend::Fred] {
            assert_eq!(b.name().parse::<Backend>().unwrap(), b);
            assert_eq!(b.to_string().to_uppercase().parse::<Backend>().unwrap(), b);
        }
        assert_eq!(" redis-rs ".parse::<Backend>().unwrap(), Backend::Redis);
        let e = "valkey".parse::<Backend>().unwrap_err();
        assert!(e.message().contains("\"valkey\""), "{e}");
    }

    #[test]
    fn a_backend_not_compiled_in_names_its_feature() {
        for b in [Backend::Redis, Backend::Fred] {
            match b.ensure_compiled() {
                Ok(()) => assert!(b.is_compiled()),
                Err(e) => {
                    assert!(!b.is_compiled());
                    assert!(
                        e.message().contains(&format!("features = [\"{b}\"]")),
                        "{e}"
                    );
                }
            }
        }
        assert!(Backend::Memory.ensure_compiled().is_ok());
        assert!(Backend::default_server().is_compiled());
    }
}
