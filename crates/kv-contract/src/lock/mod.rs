//! Distributed locks with fencing tokens: "only one instance runs the cleanup".
//!
//! A [`Lock`] is acquired by name for a time to live. The holder gets a [`LockGuard`]
//! carrying a random owner token and a *fencing token*, a number that strictly increases
//! with every successful acquire of that name. Release and extend are compare-and-act on
//! the owner token, atomically on the server: a holder whose lock expired and was taken
//! by someone else is told it lost the lock, and never deletes or extends the new owner's
//! lock. A lock only bounds *when* work starts; a paused holder can outlive its TTL, so
//! writes to other systems should carry the fencing token and be refused when it is
//! older than one already seen.
//!
//! Layout (built by [`KeyCodec::lock_keys`]): the lock is the string
//! `{prefix}lock:{<name>}` holding the owner token with the lock's expiry; the counter is
//! the integer `{prefix}lock:{<name>}:fence`, **without expiry**, so tokens keep
//! increasing after the lock expires or is released; and no token is below the data
//! side's clock in µs, so they keep increasing when the counter is lost (restart,
//! `FLUSHDB`, eviction): see [`MAX_FENCE`] and `docs/operations.md`. The literal braces are a Redis
//! Cluster hash tag: both keys share a slot, so the acquire script may touch both.
//!
//! [`ServerLock`] runs this over any [`Connection`](crate::Connection) with the Lua scripts
//! in `lua/lock_*.lua` (release reuses `delete_if_value.lua`); [`MemoryLock`] is the same
//! contract over a [`MemoryKeyspace`](crate::MemoryKeyspace), one transaction per script.
//!
//! ```
//! use std::time::Duration;
//! use kv_contract::lock::{ExclusiveRun, LockExt, LockOptions, MemoryLock};
//! use kv_contract::MemoryKeyspace;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), kv_contract::KvError> {
//! let lock = MemoryLock::new(MemoryKeyspace::new(), LockOptions::default());
//! let run = lock
//!     .run_exclusive("nightly-cleanup", Duration::from_secs(60), |guard| async move {
//!         // ... delete expired rows, passing guard.fence() to the database ...
//!         guard.fence()
//!     })
//!     .await?;
//! match run {
//!     // The first token of a name is the clock in µs (~1.8e15), never a small number.
//!     ExclusiveRun::Ran { output, .. } => assert!(output > 1_600_000_000_000_000),
//!     _ => unreachable!("nobody else holds the lock"),
//! }
//! # Ok(())
//! # }
//! ```

mod memory;
mod server;

use std::fmt;
use std::future::Future;
use std::time::Duration;

use async_trait::async_trait;

pub use memory::MemoryLock;
pub use server::ServerLock;

use crate::error::{KvError, KvResult};
use crate::keys::{KeyCodec, Prefix};
use crate::ttl::Expiry;

/// Options of a lock store. Build with [`LockOptions::builder`].
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LockOptions {
    /// The key codec (prefix); its prefix passed [`KeyCodec::check_lock_prefix`].
    pub codec: KeyCodec,
}

impl LockOptions {
    /// Starts options with the default prefix `rustauth:`.
    pub fn builder() -> LockOptionsBuilder {
        LockOptionsBuilder {
            prefix: crate::keys::DEFAULT_PREFIX.to_owned(),
        }
    }
}

/// Builder for [`LockOptions`].
#[derive(Debug, Clone)]
pub struct LockOptionsBuilder {
    prefix: String,
}

impl LockOptionsBuilder {
    /// Sets the key prefix (default `rustauth:`); validated by `build()`.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Validates and builds the options: the prefix rules of [`Prefix::new`], and no
    /// empty hash tag `{}` ([`KeyCodec::check_lock_prefix`]).
    pub fn build(self) -> KvResult<LockOptions> {
        let codec = KeyCodec::new(Prefix::new(self.prefix)?);
        codec.check_lock_prefix()?;
        Ok(LockOptions { codec })
    }
}

/// Proof of holding a lock: its name, the random owner token stored in the lock key, and
/// the fencing token drawn when it was acquired.
///
/// Dropping a guard does not release the lock (release is I/O): call
/// [`Lock::release`], or let the lock expire after its TTL.
#[must_use = "a lock stays held until released or expired"]
#[derive(Clone, PartialEq, Eq)]
pub struct LockGuard {
    name: String,
    token: String,
    fence: u64,
}

impl LockGuard {
    /// The lock's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The random owner token stored in the lock key.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// The fencing token: greater than that of every earlier acquire of this name, also
    /// across a loss of the counter (it is at least the data side's clock in µs; see
    /// `docs/operations.md` for the assumptions: no clock going back, under one acquire
    /// per µs). At most [`MAX_FENCE`].
    pub fn fence(&self) -> u64 {
        self.fence
    }
}

impl fmt::Debug for LockGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The owner token is the capability to release the lock: keep it out of logs.
        f.debug_struct("LockGuard")
            .field("name", &self.name)
            .field("fence", &self.fence)
            .finish_non_exhaustive()
    }
}

/// The result of [`Lock::acquire`].
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Acquisition {
    /// The caller now holds the lock.
    Acquired(LockGuard),
    /// Someone else holds it.
    Held {
        /// How long the current holder's lock has left (`None`: it has no expiry, which
        /// only a key written outside this crate can have).
        expires_in: Option<Duration>,
    },
}

impl Acquisition {
    /// The guard, when acquired.
    pub fn into_guard(self) -> Option<LockGuard> {
        match self {
            Acquisition::Acquired(g) => Some(g),
            Acquisition::Held { .. } => None,
        }
    }

    /// True when acquired.
    pub fn is_acquired(&self) -> bool {
        matches!(self, Acquisition::Acquired(_))
    }
}

/// The result of [`Lock::release`].
#[must_use = "a lost lock means another owner may have run concurrently"]
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReleaseOutcome {
    /// The caller still owned the lock; it is now free.
    Released,
    /// The caller no longer owned it (it expired, and perhaps someone else took it);
    /// nothing was deleted.
    Lost,
}

/// The result of [`Lock::extend`].
#[must_use = "a lost lock means another owner may be running"]
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExtendOutcome {
    /// The caller still owned the lock; it now expires after the new TTL.
    Extended,
    /// The caller no longer owned it; nothing was changed.
    Lost,
}

/// A named, expiring, mutually exclusive lock shared by every instance on one store.
#[async_trait]
pub trait Lock: Send + Sync {
    /// Takes the lock `name` for `ttl` if nobody holds it. Each success draws a fencing
    /// token greater than every earlier one for `name`. A zero or too large `ttl`, and a
    /// bad name, are rejected before any I/O.
    async fn acquire(&self, name: &str, ttl: Duration) -> KvResult<Acquisition>;

    /// Frees the lock if `guard` still owns it (atomic compare-and-delete); reports
    /// [`ReleaseOutcome::Lost`] otherwise, without touching another owner's lock.
    async fn release(&self, guard: &LockGuard) -> KvResult<ReleaseOutcome>;

    /// Resets the lock's expiry to `ttl` from now if `guard` still owns it; reports
    /// [`ExtendOutcome::Lost`] otherwise, without touching another owner's lock.
    async fn extend(&self, guard: &LockGuard, ttl: Duration) -> KvResult<ExtendOutcome>;
}

/// The result of [`LockExt::run_exclusive`].
#[non_exhaustive]
#[derive(Debug)]
pub enum ExclusiveRun<T> {
    /// This caller held the lock and ran the closure.
    Ran {
        /// What the closure returned.
        output: T,
        /// The fencing token the closure ran under.
        fence: u64,
        /// How the release went: [`ReleaseOutcome::Lost`] means the lock expired while
        /// the closure ran (another owner may have run too); an error means the release
        /// could not be sent, and the lock will expire after its TTL.
        release: KvResult<ReleaseOutcome>,
    },
    /// Someone else held the lock; the closure did not run.
    Skipped {
        /// How long the holder's lock has left, if it expires.
        expires_in: Option<Duration>,
    },
}

/// Running a closure under a lock, for any [`Lock`].
#[async_trait]
pub trait LockExt: Lock {
    /// Runs `f` only if the lock `name` can be acquired for `ttl`, then releases it:
    /// of every instance calling this at once, one runs `f`, the others get
    /// [`ExclusiveRun::Skipped`].
    ///
    /// The lock is not extended while `f` runs: choose a `ttl` longer than the work, or
    /// call [`Lock::extend`] with the guard from inside `f`. If `f` panics the lock is not
    /// released and expires after `ttl`. Errors of `acquire` are returned as they are.
    async fn run_exclusive<F, Fut, T>(
        &self,
        name: &str,
        ttl: Duration,
        f: F,
    ) -> KvResult<ExclusiveRun<T>>
    where
        F: FnOnce(LockGuard) -> Fut + Send,
        Fut: Future<Output = T> + Send,
        T: Send,
    {
        let guard = match self.acquire(name, ttl).await? {
            Acquisition::Acquired(guard) => guard,
            Acquisition::Held { expires_in } => return Ok(ExclusiveRun::Skipped { expires_in }),
        };
        let output = f(guard.clone()).await;
        let release = self.release(&guard).await;
        Ok(ExclusiveRun::Ran {
            output,
            fence: guard.fence,
            release,
        })
    }
}

impl<L: Lock + ?Sized> LockExt for L {}

/// A lock TTL in whole milliseconds (rounded up); zero and above [`crate::ttl::MAX_TTL`]
/// are rejected before any I/O.
/// The largest fencing token: 2^53 − 1, the last integer Lua's numbers hold exactly.
/// Tokens start near the clock in µs (~1.8·10^15 in 2027); the bound is reached in the
/// year 2255, or after 7·10^15 acquires of one name.
pub const MAX_FENCE: u64 = (1 << 53) - 1;

/// The next fencing token, given the counter's stored value (`None`: no counter, or not
/// a string) and the data side's clock in µs since the epoch: `max(counter + 1, floor)`.
///
/// The counter counts as lost — the token is the floor — when it is not an integer as
/// Redis parses one ([`crate::wire::parse_integer`]) or `counter + 1` would leave
/// `-MAX_FENCE..=MAX_FENCE`; no acquire fails on a bad counter. This is the spec of
/// `lock_acquire.lua`, whose `fence` computes the same.
///
/// Why the floor: the counter never expires, but can be lost (a restart without
/// persistence, `FLUSHDB`, an `allkeys-*` eviction, a flat-layout `clear`). Every token
/// is at most the clock at its acquire plus the counter's *lead* over the clock, which
/// grows by one per acquire within one µs and shrinks by one per µs; so after a loss the
/// floor is above every earlier token unless the clock went back or the lead (more than
/// one acquire per µs, sustained) exceeds the time from the last acquire before the
/// loss to the first one after it.
pub(crate) fn next_fence(counter: Option<&[u8]>, floor_us: u64) -> u64 {
    let max = MAX_FENCE as i64;
    let next = counter
        .and_then(crate::wire::parse_integer)
        .filter(|n| (-max..max).contains(n))
        .map_or(0, |n| n + 1);
    floor_us.max(u64::try_from(next).unwrap_or(0))
}

fn ttl_ms(ttl: Duration) -> KvResult<u64> {
    match Expiry::from_ttl(Some(ttl))? {
        Expiry::AfterMs(ms) => Ok(ms),
        _ => Err(KvError::invalid_input(format!(
            "lock TTL {ttl:?} must be above zero: a lock without expiry outlives a crashed \
             holder forever"
        ))),
    }
}

/// A fresh owner token: 128 bits from the operating system's CSPRNG, as 32 hex digits.
/// Unguessable, so no other client can forge a release; unique without coordination.
fn new_token() -> KvResult<String> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| {
        KvError::invalid_config(format!(
            "the operating system's random number generator failed ({e}); no lock owner \
             token can be made"
        ))
    })?;
    // A table, not `format!` per byte: 16 `format!` calls cost 3× the whole token.
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut token = String::with_capacity(32);
    for b in bytes {
        token.push(char::from(HEX[usize::from(b >> 4)]));
        token.push(char::from(HEX[usize::from(b & 0x0f)]));
    }
    Ok(token)
}

fn ms(ms: i64) -> Option<Duration> {
    u64::try_from(ms).ok().map(Duration::from_millis)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_hex() {
        let a = new_token().unwrap();
        let b = new_token().unwrap();
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }

    #[test]
    fn ttl_rules() {
        assert_eq!(ttl_ms(Duration::from_micros(1)).unwrap(), 1, "rounded up");
        assert_eq!(ttl_ms(Duration::from_secs(2)).unwrap(), 2000);
        let e = ttl_ms(Duration::ZERO).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::InvalidInput);
        assert!(e.message().contains("0ns"), "{e}");
        assert!(ttl_ms(crate::ttl::MAX_TTL + Duration::from_millis(1)).is_err());
    }

    #[test]
    fn options_reject_an_empty_hash_tag() {
        assert!(LockOptions::builder().prefix("app:").build().is_ok());
        let e = LockOptions::builder().prefix("a{}:").build().unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::InvalidConfig);
        // `lock:` alone is not nesting (every lock key continues `lock:{`); `lock:{` is.
        assert!(LockOptions::builder().prefix("x:lock:").build().is_ok());
        let e = LockOptions::builder()
            .prefix("x:lock:{t:")
            .build()
            .unwrap_err();
        assert!(e.message().contains("\"lock:{\""), "{e}");
    }

    #[test]
    fn guard_debug_hides_the_token() {
        let g = LockGuard {
            name: "job".into(),
            token: "0123456789abcdef".into(),
            fence: 7,
        };
        let shown = format!("{g:?}");
        assert!(shown.contains("job") && shown.contains('7'), "{shown}");
        assert!(!shown.contains("0123456789abcdef"), "{shown}");
    }
}
