//! Graceful degradation: wrappers that put a [`CircuitBreaker`] in front of a store and
//! answer by the user's policy while Redis is unavailable.
//!
//! The policy is an [`OnUnavailable`], chosen per wrapper:
//!
//! | policy | answer while the server is unavailable (error, timeout, or breaker open) |
//! |---|---|
//! | [`OnUnavailable::Fail`] (default) | the error, [`ErrorKind::Unavailable`](crate::ErrorKind::Unavailable) or `Timeout` |
//! | [`OnUnavailable::Skip`] | the operation's "nothing there" answer: reads miss, writes are dropped |
//! | [`OnUnavailable::Fallback`] | the same call on a fallback store (usually in memory) |
//!
//! [`Degradation::run`] is the whole mechanism, shared by every wrapper: one call per
//! operation, naming the primary call, the skipped answer and the fallback call. A
//! wrapper for another contract (a rate limiter, a session index) is a struct holding the
//! primary and a `Degradation`, and one such line per method; `docs/operations.md` shows
//! how, and which answers fail open or closed.
//!
//! ```
//! use std::sync::Arc;
//! use kv_contract::resilient::{OnUnavailable, ResilientStorage};
//! use kv_contract::{BreakerOptions, CircuitBreaker, MemoryStorage, SecondaryStorage};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), kv_contract::KvError> {
//! # let primary: Arc<dyn SecondaryStorage> = Arc::new(MemoryStorage::new());
//! // `primary` is normally a ServerStorage on a Redis connection.
//! let breaker = CircuitBreaker::new(BreakerOptions::default());
//! let store = ResilientStorage::new(primary, breaker.clone(), OnUnavailable::Skip);
//! store.set("k", "v".into(), None).await?;
//! assert_eq!(breaker.stats().failures, 0);
//! # Ok(())
//! # }
//! ```

mod lock;
mod session;
mod storage;

use std::future::Future;

pub use lock::ResilientLock;
pub use session::ResilientSessionIndex;
pub use storage::ResilientStorage;

use crate::breaker::CircuitBreaker;
use crate::error::KvResult;

/// What a wrapper answers while the server is unavailable. `F` is the fallback store's
/// type (for [`ResilientStorage`], `Arc<dyn SecondaryStorage>`).
#[non_exhaustive]
#[derive(Debug, Clone, Default)]
pub enum OnUnavailable<F> {
    /// Return the error (the default): the caller decides, nothing is pretended.
    #[default]
    Fail,
    /// Answer as if nothing were stored and drop writes: `get` misses, `set` succeeds
    /// without storing, conditional writes report "not applied", a lock is reported held
    /// by someone else. For a rate limiter this would mean "allow": fail-open.
    Skip,
    /// Send the same call to this store instead. Data written there is not copied back
    /// when the server returns, and a fallback in memory is per process: a lock or a
    /// limit there holds only within one instance.
    Fallback(F),
}

/// A breaker plus a policy: the engine of every resilient wrapper.
#[derive(Debug, Clone)]
pub struct Degradation<F> {
    breaker: CircuitBreaker,
    on_unavailable: OnUnavailable<F>,
}

impl<F> Degradation<F> {
    /// Calls through `breaker`, answering by `on_unavailable` while it is open or the
    /// server fails.
    pub fn new(breaker: CircuitBreaker, on_unavailable: OnUnavailable<F>) -> Self {
        Degradation {
            breaker,
            on_unavailable,
        }
    }

    /// The breaker (for its [`stats`](CircuitBreaker::stats)).
    pub fn breaker(&self) -> &CircuitBreaker {
        &self.breaker
    }

    /// The policy.
    pub fn on_unavailable(&self) -> &OnUnavailable<F> {
        &self.on_unavailable
    }

    /// The fallback store, under [`OnUnavailable::Fallback`].
    pub fn fallback(&self) -> Option<&F> {
        match &self.on_unavailable {
            OnUnavailable::Fallback(f) => Some(f),
            _ => None,
        }
    }

    /// Runs one operation: `primary` through the breaker; if the breaker is open, or
    /// `primary` fails with an unavailability error, answers by the policy —
    /// the error, `skipped()`, or `fallback(store)`. Every other result of `primary`
    /// (success, invalid input, a server error) is returned as it is.
    ///
    /// The call returns within the connection's command timeout while the breaker is
    /// closed, and at once while it is open.
    pub async fn run<'f, T, P, PFut, S, B, BFut>(
        &'f self,
        primary: P,
        skipped: S,
        fallback: B,
    ) -> KvResult<T>
    where
        P: FnOnce() -> PFut,
        PFut: Future<Output = KvResult<T>>,
        S: FnOnce() -> T,
        B: FnOnce(&'f F) -> BFut,
        BFut: Future<Output = KvResult<T>>,
    {
        self.run_inner(primary, Some(skipped), fallback).await
    }

    /// [`Self::run`] for an operation that must never look done when it was not (a
    /// sign-in, a sign-out): under [`OnUnavailable::Skip`] it returns the error too.
    pub async fn run_unskippable<'f, T, P, PFut, B, BFut>(
        &'f self,
        primary: P,
        fallback: B,
    ) -> KvResult<T>
    where
        P: FnOnce() -> PFut,
        PFut: Future<Output = KvResult<T>>,
        B: FnOnce(&'f F) -> BFut,
        BFut: Future<Output = KvResult<T>>,
    {
        self.run_inner(primary, None::<fn() -> T>, fallback).await
    }

    async fn run_inner<'f, T, P, PFut, S, B, BFut>(
        &'f self,
        primary: P,
        skipped: Option<S>,
        fallback: B,
    ) -> KvResult<T>
    where
        P: FnOnce() -> PFut,
        PFut: Future<Output = KvResult<T>>,
        S: FnOnce() -> T,
        B: FnOnce(&'f F) -> BFut,
        BFut: Future<Output = KvResult<T>>,
    {
        let unavailable = match self.breaker.try_acquire() {
            Ok(permit) => {
                let result = primary().await;
                permit.record(&result);
                match result {
                    Err(e) if e.is_unavailable() => e,
                    other => return other,
                }
            }
            Err(open) => open,
        };
        match (&self.on_unavailable, skipped) {
            (OnUnavailable::Skip, Some(skipped)) => {
                self.breaker.note_skipped();
                crate::observe::degraded("skip", "resilient", Some(unavailable.message()));
                Ok(skipped())
            }
            (OnUnavailable::Fallback(store), _) => {
                self.breaker.note_fallback();
                crate::observe::degraded("fallback", "resilient", Some(unavailable.message()));
                fallback(store).await
            }
            _ => Err(unavailable),
        }
    }
}

#[cfg(test)]
mod tests;
