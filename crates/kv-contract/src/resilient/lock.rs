//! [`ResilientLock`]: any [`Lock`] behind a circuit breaker, answering by an
//! [`OnUnavailable`] policy while the server is unavailable.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use super::{Degradation, OnUnavailable};
use crate::breaker::CircuitBreaker;
use crate::error::KvResult;
use crate::lock::{Acquisition, ExtendOutcome, Lock, LockGuard, ReleaseOutcome};

/// A lock that degrades instead of hanging on an unavailable server.
///
/// - [`OnUnavailable::Skip`] fails safe: `acquire` reports the lock held (nobody runs the
///   job), `release` and `extend` report [`ReleaseOutcome::Lost`] /
///   [`ExtendOutcome::Lost`] (ownership cannot be confirmed; the server-side lock expires
///   after its TTL).
/// - [`OnUnavailable::Fallback`] with a [`MemoryLock`](crate::MemoryLock) excludes only
///   within this process: instances no longer exclude each other, and its fencing tokens
///   restart from the fallback's own counter (a fenced resource refuses them as stale, as
///   it should). Guards from the fallback are released and extended there, also after
///   the server is back.
#[derive(Clone)]
pub struct ResilientLock {
    primary: Arc<dyn Lock>,
    degradation: Degradation<Arc<dyn Lock>>,
}

impl std::fmt::Debug for ResilientLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResilientLock")
            .field("breaker", self.degradation.breaker())
            .finish_non_exhaustive()
    }
}

impl ResilientLock {
    /// Wraps `primary`; calls go through `breaker` (share it with the other wrappers on
    /// the same Redis), and `on_unavailable` answers while it is unavailable.
    pub fn new(
        primary: Arc<dyn Lock>,
        breaker: CircuitBreaker,
        on_unavailable: OnUnavailable<Arc<dyn Lock>>,
    ) -> Self {
        ResilientLock {
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
impl Lock for ResilientLock {
    async fn acquire(&self, name: &str, ttl: Duration) -> KvResult<Acquisition> {
        let p = &self.primary;
        self.degradation
            .run(
                || p.acquire(name, ttl),
                || Acquisition::Held { expires_in: None },
                |f| f.acquire(name, ttl),
            )
            .await
    }

    async fn release(&self, guard: &LockGuard) -> KvResult<ReleaseOutcome> {
        // A guard taken from the fallback is released there, whatever the server's state.
        if let Some(f) = self.degradation.fallback() {
            if f.release(guard).await? == ReleaseOutcome::Released {
                return Ok(ReleaseOutcome::Released);
            }
        }
        let p = &self.primary;
        self.degradation
            .run(
                || p.release(guard),
                || ReleaseOutcome::Lost,
                |_| async { Ok(ReleaseOutcome::Lost) },
            )
            .await
    }

    async fn extend(&self, guard: &LockGuard, ttl: Duration) -> KvResult<ExtendOutcome> {
        if let Some(f) = self.degradation.fallback() {
            if f.extend(guard, ttl).await? == ExtendOutcome::Extended {
                return Ok(ExtendOutcome::Extended);
            }
        }
        let p = &self.primary;
        self.degradation
            .run(
                || p.extend(guard, ttl),
                || ExtendOutcome::Lost,
                |_| async { Ok(ExtendOutcome::Lost) },
            )
            .await
    }
}
