//! [`KvOptions`]: where the bundle connects, with which backend, under which prefix, and
//! the per-store options, all validated once by [`KvOptionsBuilder::build`].

use std::fmt;
use std::time::Duration;

use kv_contract::config::redact_url;
use kv_contract::lock::LockOptionsBuilder;
use kv_contract::rate_limit::RateLimiterOptionsBuilder;
use kv_contract::session::SessionIndexOptionsBuilder;
use kv_contract::storage::StorageOptionsBuilder;
use kv_contract::{
    ConnectionOptions, KvError, KvResult, LockOptions, Prefix, RateLimiterOptions,
    SessionIndexOptions, StorageOptions, DEFAULT_PREFIX,
};

use crate::Backend;

/// The URL that selects the in-memory backend (`memory://`, any case).
pub const MEMORY_URL: &str = "memory://";

/// Everything a [`Kv`](crate::Kv) bundle needs. Build with [`KvOptions::builder`].
#[non_exhaustive]
#[derive(Debug, Clone)]
pub struct KvOptions {
    backend: Backend,
    connection: Option<ConnectionOptions>,
    prefix: Prefix,
    storage: StorageOptions,
    rate_limiter: RateLimiterOptions,
    sessions: SessionIndexOptions,
    lock: LockOptions,
}

impl KvOptions {
    /// Starts options with the defaults: no server yet (give one with
    /// [`KvOptionsBuilder::url`], [`KvOptionsBuilder::connection`] or
    /// [`KvOptionsBuilder::memory`]), the compiled-in backend, prefix `rustauth:`.
    pub fn builder() -> KvOptionsBuilder {
        KvOptionsBuilder {
            target: Target::None,
            backend: None,
            prefix: DEFAULT_PREFIX.to_owned(),
            connect_timeout: None,
            command_timeout: None,
            storage: None,
            rate_limiter: None,
            sessions: None,
            lock: None,
        }
    }

    /// The backend that serves the stores.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The server connection options; `None` for [`Backend::Memory`].
    pub fn connection(&self) -> Option<&ConnectionOptions> {
        self.connection.as_ref()
    }

    /// The bundle's key prefix.
    pub fn prefix(&self) -> &Prefix {
        &self.prefix
    }

    /// The secondary storage's options.
    pub fn storage(&self) -> &StorageOptions {
        &self.storage
    }

    /// The rate limiter's options.
    pub fn rate_limiter(&self) -> &RateLimiterOptions {
        &self.rate_limiter
    }

    /// The session index's options.
    pub fn sessions(&self) -> &SessionIndexOptions {
        &self.sessions
    }

    /// The lock's options.
    pub fn lock(&self) -> &LockOptions {
        &self.lock
    }
}

enum Target {
    None,
    Url(String),
    Options(Box<ConnectionOptions>),
    Memory,
}

type Customize<B> = Box<dyn FnOnce(B) -> B + Send>;

/// Builder for [`KvOptions`].
///
/// The bundle's prefix is given to every store's builder first; a per-store closure
/// ([`Self::storage`], ...) runs after that and may change anything, the prefix included
/// (for example `|b| b.better_auth_compatible()` for data Better Auth shares).
pub struct KvOptionsBuilder {
    target: Target,
    backend: Option<Backend>,
    prefix: String,
    connect_timeout: Option<Duration>,
    command_timeout: Option<Duration>,
    storage: Option<Customize<StorageOptionsBuilder>>,
    rate_limiter: Option<Customize<RateLimiterOptionsBuilder>>,
    sessions: Option<Customize<SessionIndexOptionsBuilder>>,
    lock: Option<Customize<LockOptionsBuilder>>,
}

impl fmt::Debug for KvOptionsBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let target = match &self.target {
            Target::None => "none".to_owned(),
            Target::Url(url) => redact_url(url),
            Target::Options(o) => o.server.to_string(),
            Target::Memory => MEMORY_URL.to_owned(),
        };
        f.debug_struct("KvOptionsBuilder")
            .field("target", &target)
            .field("backend", &self.backend)
            .field("prefix", &self.prefix)
            .field("connect_timeout", &self.connect_timeout)
            .field("command_timeout", &self.command_timeout)
            .finish_non_exhaustive()
    }
}

impl KvOptionsBuilder {
    /// Connects to the server at `url` (`redis://`, `rediss://`, `valkey://`,
    /// `valkeys://`, `redis+unix://`, `unix://`; see
    /// [`ServerAddress::parse`](kv_contract::ServerAddress::parse)), or uses memory for
    /// `memory://`.
    pub fn url(mut self, url: impl Into<String>) -> Self {
        let url = url.into();
        self.target = if url.trim().eq_ignore_ascii_case(MEMORY_URL) {
            Target::Memory
        } else {
            Target::Url(url)
        };
        self
    }

    /// Connects with fully built connection options (TLS roots, reconnect delays, ...).
    pub fn connection(mut self, options: ConnectionOptions) -> Self {
        self.target = Target::Options(Box::new(options));
        self
    }

    /// Serves every store from process memory ([`Backend::Memory`]).
    pub fn memory(mut self) -> Self {
        self.target = Target::Memory;
        self
    }

    /// Picks the backend (default: [`Backend::default_server`] for a server,
    /// [`Backend::Memory`] for memory). Naming one whose feature is off fails in `build`.
    pub fn backend(mut self, backend: Backend) -> Self {
        self.backend = Some(backend);
        self
    }

    /// Sets the key prefix of every store (default `rustauth:`).
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Sets the connect timeout of a [`Self::url`] connection (default 5 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = Some(timeout);
        self
    }

    /// Sets the command timeout of a [`Self::url`] connection (default 2 s).
    pub fn command_timeout(mut self, timeout: Duration) -> Self {
        self.command_timeout = Some(timeout);
        self
    }

    /// Customizes the secondary storage's options (after the bundle's prefix is set).
    pub fn storage(
        mut self,
        f: impl FnOnce(StorageOptionsBuilder) -> StorageOptionsBuilder + Send + 'static,
    ) -> Self {
        self.storage = Some(Box::new(f));
        self
    }

    /// Customizes the rate limiter's options (algorithm, breaker, fail-open, ...).
    pub fn rate_limiter(
        mut self,
        f: impl FnOnce(RateLimiterOptionsBuilder) -> RateLimiterOptionsBuilder + Send + 'static,
    ) -> Self {
        self.rate_limiter = Some(Box::new(f));
        self
    }

    /// Customizes the session index's options (per-user cap, token hashing, ...).
    pub fn sessions(
        mut self,
        f: impl FnOnce(SessionIndexOptionsBuilder) -> SessionIndexOptionsBuilder + Send + 'static,
    ) -> Self {
        self.sessions = Some(Box::new(f));
        self
    }

    /// Customizes the lock's options.
    pub fn lock(
        mut self,
        f: impl FnOnce(LockOptionsBuilder) -> LockOptionsBuilder + Send + 'static,
    ) -> Self {
        self.lock = Some(Box::new(f));
        self
    }

    /// Validates everything: the server options, the backend against the compiled
    /// features, the prefix and every store's options.
    pub fn build(self) -> KvResult<KvOptions> {
        let prefix = Prefix::new(self.prefix.clone())?;
        let timeouts_given = self.connect_timeout.is_some() || self.command_timeout.is_some();
        let connection = match self.target {
            Target::None => {
                return Err(KvError::invalid_config(
                    "no server given: call url(\"redis://host:6379\"), connection(options) \
                     or memory() on the KvOptions builder",
                ))
            }
            Target::Memory => None,
            Target::Url(url) => {
                let mut builder = ConnectionOptions::builder(url);
                if let Some(t) = self.connect_timeout {
                    builder = builder.connect_timeout(t);
                }
                if let Some(t) = self.command_timeout {
                    builder = builder.command_timeout(t);
                }
                Some(builder.build()?)
            }
            Target::Options(options) => {
                if timeouts_given {
                    return Err(KvError::invalid_config(
                        "timeouts were set on the KvOptions builder and full connection \
                         options were given: set the timeouts on the ConnectionOptions builder",
                    ));
                }
                Some(*options)
            }
        };
        let backend = match (&connection, self.backend) {
            (None, None | Some(Backend::Memory)) => Backend::Memory,
            (None, Some(other)) => {
                return Err(KvError::invalid_config(format!(
                    "backend {other} needs a server URL, but memory was selected"
                )))
            }
            (Some(c), None) => match Backend::default_server() {
                Backend::Memory => {
                    return Err(KvError::invalid_config(format!(
                        "cannot connect to {}: rustauth-kv was built without a server \
                         backend; enable its feature \"redis\" or \"fred\"",
                        c.server
                    )))
                }
                server => server,
            },
            (Some(c), Some(Backend::Memory)) => {
                return Err(KvError::invalid_config(format!(
                    "backend memory takes no server, but {} was given",
                    c.server
                )))
            }
            (Some(_), Some(server)) => {
                server.ensure_compiled()?;
                server
            }
        };
        let p = prefix.as_str();
        let storage = apply(StorageOptions::builder().prefix(p), self.storage).build()?;
        let rate_limiter =
            apply(RateLimiterOptions::builder().prefix(p), self.rate_limiter).build()?;
        let sessions = apply(SessionIndexOptions::builder().prefix(p), self.sessions).build()?;
        let lock = apply(LockOptions::builder().prefix(p), self.lock).build()?;
        Ok(KvOptions {
            backend,
            connection,
            prefix,
            storage,
            rate_limiter,
            sessions,
            lock,
        })
    }
}

fn apply<B>(builder: B, customize: Option<Customize<B>>) -> B {
    match customize {
        Some(f) => f(builder),
        None => builder,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_server_is_required_and_memory_needs_none() {
        let e = KvOptions::builder().build().unwrap_err();
        assert!(e.message().contains("no server given"), "{e}");
        let o = KvOptions::builder().memory().build().unwrap();
        assert_eq!(o.backend(), Backend::Memory);
        assert!(o.connection().is_none());
        let o = KvOptions::builder().url(" MEMORY:// ").build().unwrap();
        assert_eq!(o.backend(), Backend::Memory);
    }

    #[test]
    fn the_prefix_reaches_every_store_and_is_validated_once() {
        let o = KvOptions::builder()
            .memory()
            .prefix("myapp:")
            .build()
            .unwrap();
        assert_eq!(o.prefix().as_str(), "myapp:");
        assert_eq!(o.storage().key("k").unwrap(), b"myapp:secondary:k");
        assert_eq!(
            o.lock().codec.lock_keys("job").unwrap().lock,
            b"myapp:lock:{job}"
        );
        assert_eq!(o.sessions().codec().prefix().as_str(), "myapp:");
        assert_eq!(o.rate_limiter().codec.prefix().as_str(), "myapp:");
        let e = KvOptions::builder()
            .memory()
            .prefix("")
            .build()
            .unwrap_err();
        assert!(e.message().contains("empty"), "{e}");
    }

    #[test]
    fn prefixes_that_only_contain_a_namespace_name_reach_every_store() {
        for prefix in ["deadlock:", "block:", "api-rate-limit:", "my-secondary:"] {
            let o = KvOptions::builder().memory().prefix(prefix).build();
            let o = o.unwrap_or_else(|e| panic!("{prefix:?} refused: {e}"));
            assert_eq!(
                o.storage().key("k").unwrap(),
                format!("{prefix}secondary:k").as_bytes()
            );
        }
        let e = KvOptions::builder()
            .memory()
            .prefix("app:rate-limit:")
            .build()
            .unwrap_err();
        assert!(
            e.message().contains("rate-limit buckets of \"app:\""),
            "{e}"
        );
    }

    #[test]
    fn a_store_closure_runs_after_the_prefix() {
        let o = KvOptions::builder()
            .memory()
            .prefix("myapp:")
            .storage(|b| b.better_auth_compatible())
            .build()
            .unwrap();
        assert_eq!(o.storage().key("k").unwrap(), b"better-auth:k");
        assert_eq!(o.prefix().as_str(), "myapp:");
    }

    #[test]
    fn backend_and_target_must_agree() {
        let e = KvOptions::builder()
            .memory()
            .backend(Backend::Fred)
            .build()
            .unwrap_err();
        assert!(e.message().contains("needs a server URL"), "{e}");
        let e = KvOptions::builder()
            .url("redis://:hunter2@127.0.0.1:1")
            .backend(Backend::Memory)
            .build()
            .unwrap_err();
        assert!(e.message().contains("127.0.0.1:1"), "{e}");
        assert!(!e.to_string().contains("hunter2"), "{e}");
        let connection = ConnectionOptions::from_url("redis://127.0.0.1:1").unwrap();
        let e = KvOptions::builder()
            .connection(connection)
            .command_timeout(Duration::from_secs(1))
            .build()
            .unwrap_err();
        assert!(e.message().contains("ConnectionOptions builder"), "{e}");
    }

    #[test]
    fn a_url_gets_the_builder_timeouts_and_is_validated() {
        let o = KvOptions::builder()
            .url("redis://127.0.0.1:1/3")
            .command_timeout(Duration::from_millis(250))
            .connect_timeout(Duration::from_millis(750))
            .build();
        match Backend::default_server() {
            Backend::Memory => {
                let e = o.unwrap_err();
                assert!(e.message().contains("without a server backend"), "{e}");
            }
            server => {
                let o = o.unwrap();
                assert_eq!(o.backend(), server);
                let c = o.connection().unwrap();
                assert_eq!(c.command_timeout, Duration::from_millis(250));
                assert_eq!(c.connect_timeout, Duration::from_millis(750));
                assert_eq!(c.server.database, 3);
            }
        }
        let e = KvOptions::builder().url("http://x").build().unwrap_err();
        assert!(e.message().contains("http"), "{e}");
    }

    #[test]
    fn debug_never_shows_a_password() {
        let b = KvOptions::builder().url("redis://user:hunter2@host:6379");
        let text = format!("{b:?}");
        assert!(!text.contains("hunter2"), "{text}");
        assert!(text.contains("host:6379"), "{text}");
    }
}
