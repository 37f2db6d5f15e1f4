//! [`ResilientSessionIndex`]: any [`SessionIndex`] behind a circuit breaker, answering by
//! an [`OnUnavailable`] policy while the server is unavailable.

use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;
use bytes::Bytes;

use super::{Degradation, OnUnavailable};
use crate::breaker::CircuitBreaker;
use crate::error::KvResult;
use crate::session::{CreateOutcome, Session, SessionIndex};

/// A session index that degrades instead of hanging on an unavailable server.
///
/// Under [`OnUnavailable::Skip`] it fails safe for an auth server:
/// - reads miss: `get` finds no session (the request is treated as signed out), `list`
///   is empty, `count` is 0;
/// - `refresh` reports "not applied" (false), as for a session that is gone;
/// - `create`, `delete`, `delete_by_id`, `revoke_all` and `revoke_all_except` still
///   return the error: a sign-in that stored nothing, or a sign-out that revoked nothing,
///   must not look done.
///
/// Under [`OnUnavailable::Fallback`] every call goes to the fallback index (usually a
/// `MemorySessionIndex`): sessions created there exist only in this process and are not
/// copied back.
#[derive(Clone)]
pub struct ResilientSessionIndex {
    primary: Arc<dyn SessionIndex>,
    degradation: Degradation<Arc<dyn SessionIndex>>,
}

impl std::fmt::Debug for ResilientSessionIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResilientSessionIndex")
            .field("breaker", self.degradation.breaker())
            .finish_non_exhaustive()
    }
}

impl ResilientSessionIndex {
    /// Wraps `primary`; calls go through `breaker` (share it with the other wrappers on
    /// the same Redis), and `on_unavailable` answers while it is unavailable.
    pub fn new(
        primary: Arc<dyn SessionIndex>,
        breaker: CircuitBreaker,
        on_unavailable: OnUnavailable<Arc<dyn SessionIndex>>,
    ) -> Self {
        ResilientSessionIndex {
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
impl SessionIndex for ResilientSessionIndex {
    async fn create(
        &self,
        user_id: &str,
        token: &str,
        value: Bytes,
        expires_at: SystemTime,
    ) -> KvResult<CreateOutcome> {
        let p = &self.primary;
        let v = value.clone();
        self.degradation
            .run_unskippable(
                || p.create(user_id, token, value, expires_at),
                |f| f.create(user_id, token, v, expires_at),
            )
            .await
    }

    async fn get(&self, token: &str) -> KvResult<Option<Session>> {
        let p = &self.primary;
        self.degradation
            .run(|| p.get(token), || None, |f| f.get(token))
            .await
    }

    async fn refresh(
        &self,
        token: &str,
        expires_at: SystemTime,
        value: Option<Bytes>,
    ) -> KvResult<bool> {
        let p = &self.primary;
        let v = value.clone();
        self.degradation
            .run(
                || p.refresh(token, expires_at, value),
                || false,
                |f| f.refresh(token, expires_at, v),
            )
            .await
    }

    async fn delete(&self, token: &str) -> KvResult<bool> {
        let p = &self.primary;
        self.degradation
            .run_unskippable(|| p.delete(token), |f| f.delete(token))
            .await
    }

    async fn delete_by_id(&self, id: &str) -> KvResult<bool> {
        let p = &self.primary;
        self.degradation
            .run_unskippable(|| p.delete_by_id(id), |f| f.delete_by_id(id))
            .await
    }

    async fn list(&self, user_id: &str) -> KvResult<Vec<Session>> {
        let p = &self.primary;
        self.degradation
            .run(|| p.list(user_id), Vec::new, |f| f.list(user_id))
            .await
    }

    async fn revoke_all(&self, user_id: &str) -> KvResult<u64> {
        let p = &self.primary;
        self.degradation
            .run_unskippable(|| p.revoke_all(user_id), |f| f.revoke_all(user_id))
            .await
    }

    async fn revoke_all_except(&self, user_id: &str, token: &str) -> KvResult<u64> {
        let p = &self.primary;
        self.degradation
            .run_unskippable(
                || p.revoke_all_except(user_id, token),
                |f| f.revoke_all_except(user_id, token),
            )
            .await
    }

    async fn count(&self, user_id: &str) -> KvResult<u64> {
        let p = &self.primary;
        self.degradation
            .run(|| p.count(user_id), || 0, |f| f.count(user_id))
            .await
    }

    fn session_id(&self, token: &str) -> KvResult<String> {
        self.primary.session_id(token)
    }
}
