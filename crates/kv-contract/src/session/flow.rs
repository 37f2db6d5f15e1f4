//! The order of the steps of every session operation, written once for both
//! implementations.
//!
//! A [`Steps`] implementation provides the single-key steps — each atomic on its own (a
//! Lua script or one command on a server, one transaction in memory) — and the functions
//! here chain them. Every chain keeps the invariant of the module docs: a live session
//! whose create returned is a member of its user's index with a score no lower than its
//! expiry. Concretely:
//!
//! - the session key is written **before** its index member is added (create), and
//!   deleted **before** its member is removed (delete, revoke, eviction, clean-up);
//! - a refresh raises the index score **before** it extends the session, and the
//!   extension is conditional on the session still existing.
//!
//! So a crash between two steps can leave only a member without a session (removed by
//! the next `list` or revoke, or when its score passes) or a session without a member
//! whose create never returned (its token was never handed out; it expires on its TTL).

use async_trait::async_trait;
use bytes::Bytes;
use std::time::SystemTime;

use super::{epoch_ms, from_epoch_ms, CreateOutcome, Session, SessionIndexOptions};
use crate::error::{KvError, KvResult};
use crate::storage::check_value;

/// A session hash as read: `user_id`, `expires_at`, `value` (all `None` when the key is
/// absent).
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct RawSession {
    pub(crate) user_id: Option<Bytes>,
    pub(crate) expires_at: Option<Bytes>,
    pub(crate) value: Option<Bytes>,
}

/// The reply of the session-write steps (`session_create`, `session_refresh`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Write {
    /// Written.
    Done,
    /// Nothing written: the key is absent (refresh) or another user's session.
    Refused,
    /// The given expiry is not after the server's clock: nothing written (create), or the
    /// session ended and its key was deleted (refresh).
    Expired,
}

impl Write {
    /// Decodes the scripts' integer reply: 1, 0, -1.
    pub(crate) fn from_reply(n: i64) -> KvResult<Write> {
        match n {
            1 => Ok(Write::Done),
            0 => Ok(Write::Refused),
            -1 => Ok(Write::Expired),
            other => Err(KvError::unexpected(format!(
                "session script replied {other}, expected 1, 0 or -1"
            ))),
        }
    }
}

/// The single-key steps; see the Lua sources for each one's exact semantics.
#[async_trait]
pub(crate) trait Steps: Send + Sync {
    /// `session_create.lua`.
    async fn session_create(
        &self,
        key: Bytes,
        user_id: Bytes,
        expires_at: u64,
        value: Bytes,
    ) -> KvResult<Write>;
    /// `HMGET key user_id expires_at value`.
    async fn session_get(&self, key: Bytes) -> KvResult<RawSession>;
    /// `HGET key user_id`.
    async fn session_owner(&self, key: Bytes) -> KvResult<Option<Bytes>>;
    /// `session_refresh.lua`.
    async fn session_refresh(
        &self,
        key: Bytes,
        user_id: Bytes,
        expires_at: u64,
        value: Option<Bytes>,
    ) -> KvResult<Write>;
    /// `session_delete.lua`: the owner of the deleted session.
    async fn session_delete(&self, key: Bytes) -> KvResult<Option<Bytes>>;
    /// `session_get_many.lua`, one call per hash slot in a cluster.
    async fn sessions_get(&self, keys: Vec<Bytes>) -> KvResult<Vec<RawSession>>;
    /// `DEL keys...`, one call per hash slot in a cluster: how many existed.
    async fn sessions_delete(&self, keys: Vec<Bytes>) -> KvResult<u64>;
    /// `index_add.lua`: the members to evict (not yet removed).
    async fn index_add(
        &self,
        key: Bytes,
        member: Bytes,
        expires_at: u64,
        cap: u32,
    ) -> KvResult<Vec<Bytes>>;
    /// `index_touch.lua`: whether the member is in the index.
    async fn index_touch(&self, key: Bytes, member: Bytes, expires_at: u64) -> KvResult<bool>;
    /// `index_members.lua`.
    async fn index_members(&self, key: Bytes) -> KvResult<Vec<Bytes>>;
    /// `index_remove.lua`.
    async fn index_remove(&self, key: Bytes, members: Vec<Bytes>) -> KvResult<u64>;
    /// `index_count.lua`.
    async fn index_count(&self, key: Bytes) -> KvResult<u64>;
}

fn utf8(what: &str, bytes: &[u8]) -> KvResult<String> {
    String::from_utf8(bytes.to_vec())
        .map_err(|_| KvError::unexpected(format!("stored {what} is not UTF-8")))
}

fn index_key(opts: &SessionIndexOptions, user_id: &str) -> KvResult<Bytes> {
    opts.user_sessions_key(user_id).map(Bytes::from)
}

fn session_key(opts: &SessionIndexOptions, id: &str) -> KvResult<Bytes> {
    opts.session_key(id).map(Bytes::from)
}

/// The session under `id`, or `None` when its key is absent. A hash without all three
/// fields was not written by this crate.
fn decode(id: String, raw: RawSession) -> KvResult<Option<Session>> {
    let (user_id, expires_at, value) = match (raw.user_id, raw.expires_at, raw.value) {
        (None, None, None) => return Ok(None),
        (Some(u), Some(e), Some(v)) => (u, e, v),
        _ => {
            return Err(KvError::unexpected(format!(
                "session {id:?} lacks one of the fields user_id, expires_at, value"
            )))
        }
    };
    let expires_at = crate::wire::parse_integer(&expires_at)
        .and_then(|n| u64::try_from(n).ok())
        .ok_or_else(|| {
            KvError::unexpected(format!("session {id:?} has a non-numeric expires_at"))
        })?;
    Ok(Some(Session {
        id,
        user_id: utf8("user_id", &user_id)?,
        value,
        expires_at: from_epoch_ms(expires_at),
    }))
}

/// Deletes the sessions `ids` of the index `index`, then removes them from it: how many
/// sessions existed.
async fn remove(
    steps: &impl Steps,
    opts: &SessionIndexOptions,
    index: Bytes,
    ids: Vec<Bytes>,
) -> KvResult<u64> {
    if ids.is_empty() {
        return Ok(0);
    }
    let keys = ids
        .iter()
        .map(|id| session_key(opts, &utf8("session id", id)?))
        .collect::<KvResult<Vec<_>>>()?;
    // Sessions first: were we to stop after this step, the index would keep members
    // without sessions (harmless, cleaned later), never sessions without members.
    let deleted = steps.sessions_delete(keys).await?;
    steps.index_remove(index, ids).await?;
    Ok(deleted)
}

pub(crate) async fn create(
    steps: &impl Steps,
    opts: &SessionIndexOptions,
    user_id: &str,
    token: &str,
    value: Bytes,
    expires_at: SystemTime,
) -> KvResult<CreateOutcome> {
    let id = opts.session_id(token)?;
    let key = session_key(opts, &id)?;
    let index = index_key(opts, user_id)?;
    check_value("session value", &value)?;
    let at = epoch_ms(expires_at)?;
    let user = Bytes::copy_from_slice(user_id.as_bytes());
    match steps.session_create(key, user, at, value).await? {
        Write::Done => {}
        Write::Refused => return Ok(CreateOutcome::TokenInUse),
        Write::Expired => return Ok(CreateOutcome::AlreadyExpired),
    }
    let cap = opts.max_sessions_per_user().unwrap_or(0);
    let victims = steps
        .index_add(index.clone(), Bytes::from(id), at, cap)
        .await?;
    let evicted = remove(steps, opts, index, victims).await?;
    Ok(CreateOutcome::Created { evicted })
}

pub(crate) async fn get(
    steps: &impl Steps,
    opts: &SessionIndexOptions,
    token: &str,
) -> KvResult<Option<Session>> {
    let id = opts.session_id(token)?;
    let raw = steps.session_get(session_key(opts, &id)?).await?;
    decode(id, raw)
}

pub(crate) async fn refresh(
    steps: &impl Steps,
    opts: &SessionIndexOptions,
    token: &str,
    expires_at: SystemTime,
    value: Option<Bytes>,
) -> KvResult<bool> {
    let id = opts.session_id(token)?;
    let key = session_key(opts, &id)?;
    if let Some(v) = &value {
        check_value("session value", v)?;
    }
    let at = epoch_ms(expires_at)?;
    let Some(owner) = steps.session_owner(key.clone()).await? else {
        return Ok(false);
    };
    let index = index_key(opts, &utf8("user_id", &owner)?)?;
    // Raise the index score first: the index must never promise less than the session
    // lives. A member that is gone means the session was revoked (or its create has not
    // returned): refresh nothing.
    if !steps.index_touch(index, Bytes::from(id), at).await? {
        return Ok(false);
    }
    // Conditional on the key still existing and still being this user's: a revoke that
    // deleted it since is final.
    Ok(steps.session_refresh(key, owner, at, value).await? == Write::Done)
}

pub(crate) async fn delete_by_id(
    steps: &impl Steps,
    opts: &SessionIndexOptions,
    id: &str,
) -> KvResult<bool> {
    let key = session_key(opts, id)?;
    let Some(owner) = steps.session_delete(key).await? else {
        return Ok(false);
    };
    let index = index_key(opts, &utf8("user_id", &owner)?)?;
    steps
        .index_remove(index, vec![Bytes::copy_from_slice(id.as_bytes())])
        .await?;
    Ok(true)
}

pub(crate) async fn list(
    steps: &impl Steps,
    opts: &SessionIndexOptions,
    user_id: &str,
) -> KvResult<Vec<Session>> {
    let index = index_key(opts, user_id)?;
    let members = steps.index_members(index.clone()).await?;
    if members.is_empty() {
        return Ok(Vec::new());
    }
    let ids = members
        .iter()
        .map(|m| utf8("session id", m))
        .collect::<KvResult<Vec<_>>>()?;
    let keys = ids
        .iter()
        .map(|id| session_key(opts, id))
        .collect::<KvResult<Vec<_>>>()?;
    let raws = steps.sessions_get(keys).await?;
    if raws.len() != ids.len() {
        return Err(KvError::unexpected(format!(
            "read {} sessions, got {} replies",
            ids.len(),
            raws.len()
        )));
    }
    let mut sessions = Vec::with_capacity(ids.len());
    let mut gone = Vec::new();
    for ((id, raw), member) in ids.into_iter().zip(raws).zip(members) {
        match decode(id, raw)? {
            Some(s) if s.user_id == user_id => sessions.push(s),
            // Deleted or expired (a crash between two steps, or a delete in flight), or a
            // token of another user: not this index's session any more.
            _ => gone.push(member),
        }
    }
    if !gone.is_empty() {
        steps.index_remove(index, gone).await?;
    }
    sessions.sort_by(|a, b| (a.expires_at, &a.id).cmp(&(b.expires_at, &b.id)));
    Ok(sessions)
}

pub(crate) async fn revoke(
    steps: &impl Steps,
    opts: &SessionIndexOptions,
    user_id: &str,
    keep_token: Option<&str>,
) -> KvResult<u64> {
    let index = index_key(opts, user_id)?;
    let keep = keep_token.map(|t| opts.session_id(t)).transpose()?;
    let mut members = steps.index_members(index.clone()).await?;
    if let Some(keep) = keep {
        members.retain(|m| m[..] != *keep.as_bytes());
    }
    remove(steps, opts, index, members).await
}

pub(crate) async fn count(
    steps: &impl Steps,
    opts: &SessionIndexOptions,
    user_id: &str,
) -> KvResult<u64> {
    steps.index_count(index_key(opts, user_id)?).await
}

/// Implements [`SessionIndex`](super::SessionIndex) for a type that has `opts` and
/// implements [`Steps`], by calling the functions above.
macro_rules! impl_session_index {
    ($ty:ty) => {
        #[async_trait::async_trait]
        impl $crate::session::SessionIndex for $ty {
            async fn create(
                &self,
                user_id: &str,
                token: &str,
                value: bytes::Bytes,
                expires_at: std::time::SystemTime,
            ) -> $crate::KvResult<$crate::session::CreateOutcome> {
                flow::create(self, &self.opts, user_id, token, value, expires_at).await
            }

            async fn get(&self, token: &str) -> $crate::KvResult<Option<$crate::session::Session>> {
                flow::get(self, &self.opts, token).await
            }

            async fn refresh(
                &self,
                token: &str,
                expires_at: std::time::SystemTime,
                value: Option<bytes::Bytes>,
            ) -> $crate::KvResult<bool> {
                flow::refresh(self, &self.opts, token, expires_at, value).await
            }

            async fn delete(&self, token: &str) -> $crate::KvResult<bool> {
                let id = self.opts.session_id(token)?;
                flow::delete_by_id(self, &self.opts, &id).await
            }

            async fn delete_by_id(&self, id: &str) -> $crate::KvResult<bool> {
                flow::delete_by_id(self, &self.opts, id).await
            }

            async fn list(&self, user_id: &str) -> $crate::KvResult<Vec<$crate::session::Session>> {
                flow::list(self, &self.opts, user_id).await
            }

            async fn revoke_all(&self, user_id: &str) -> $crate::KvResult<u64> {
                flow::revoke(self, &self.opts, user_id, None).await
            }

            async fn revoke_all_except(&self, user_id: &str, token: &str) -> $crate::KvResult<u64> {
                flow::revoke(self, &self.opts, user_id, Some(token)).await
            }

            async fn count(&self, user_id: &str) -> $crate::KvResult<u64> {
                flow::count(self, &self.opts, user_id).await
            }

            fn session_id(&self, token: &str) -> $crate::KvResult<String> {
                self.opts.session_id(token)
            }
        }
    };
}
pub(crate) use impl_session_index;
