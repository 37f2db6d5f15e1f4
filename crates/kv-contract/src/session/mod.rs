//! The per-user session index: multi-device sessions that are never lost, never
//! resurrected, and never outlive their TTL — in memory and on Redis/Valkey, standalone
//! or Cluster.
//!
//! Each session is a hash under its own key, `{prefix}session:{id}`, expiring exactly at
//! its `expires_at`; each user has a sorted set `{prefix}user_sessions:{user_id}` of
//! session ids scored by expiry (ms since the epoch), whose own expiry is that of its
//! longest-lived member. The id is the token, or its SHA-256/HMAC digest when
//! [`TokenHashing`] is on.
//!
//! A session key and its user's index hash to different Cluster slots, so no operation
//! touches both atomically. Correctness comes from the *order* of the single-key steps,
//! which keeps one invariant: **a live session whose `create` returned is always a member
//! of its user's index, with a score no lower than its expiry.** Hence `revoke_all`
//! always finds every session to delete, and a refresh can never write a session that a
//! revoke deleted (the refresh's write is conditional on the key existing). The steps,
//! what a crash between two of them leaves behind, and how it is cleaned, are in
//! `docs/sessions.md`.
//!
//! [`ServerSessionIndex`] runs the steps as Lua scripts and plain commands over any
//! [`Connection`](crate::Connection); [`MemorySessionIndex`] runs the same steps as
//! [`MemoryKeyspace`](crate::MemoryKeyspace) transactions. Both share the ordering code
//! (`flow`), so the order argued in the docs is the order of both.
//!
//! ```
//! use std::time::{Duration, SystemTime};
//! use kv_contract::session::{MemorySessionIndex, SessionIndex, SessionIndexOptions};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), kv_contract::KvError> {
//! let sessions = MemorySessionIndex::new(SessionIndexOptions::default());
//! let in_a_day = SystemTime::now() + Duration::from_secs(86_400);
//! sessions.create("user-1", "token-laptop", "{}".into(), in_a_day).await?;
//! sessions.create("user-1", "token-phone", "{}".into(), in_a_day).await?;
//! assert_eq!(sessions.count("user-1").await?, 2);
//! assert_eq!(sessions.revoke_all_except("user-1", "token-laptop").await?, 1);
//! assert!(sessions.get("token-phone").await?.is_none());
//! # Ok(())
//! # }
//! ```

mod flow;
mod memory;
mod options;
mod server;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use bytes::Bytes;

use crate::error::{KvError, KvResult};
use crate::ttl::MAX_TTL_MS;

pub use memory::MemorySessionIndex;
pub use options::{HashKey, SessionIndexOptions, SessionIndexOptionsBuilder, TokenHashing};
pub use server::ServerSessionIndex;

/// One live session, as stored.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// The session id: the token, or its digest when token hashing is on. Pass it to
    /// [`SessionIndex::delete_by_id`] to sign out this one device from a list.
    pub id: String,
    /// The user the session belongs to.
    pub user_id: String,
    /// The application's session data, byte for byte as written.
    pub value: Bytes,
    /// When the session ends, to the millisecond.
    pub expires_at: SystemTime,
}

/// What [`SessionIndex::create`] did.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CreateOutcome {
    /// The session is stored and indexed. `evicted` sessions of the same user were
    /// revoked to keep within [`max_sessions_per_user`](SessionIndexOptionsBuilder::max_sessions_per_user).
    Created {
        /// How many older sessions the cap revoked.
        evicted: u64,
    },
    /// Nothing was stored: `expires_at` is not after the server's clock.
    AlreadyExpired,
    /// Nothing was stored: the token is already the key of a live session (of any
    /// user). Tokens must be unique: generate a new one.
    TokenInUse,
}

/// A store of sessions with a per-user index.
///
/// Times are absolute (`expires_at`), truncated to the millisecond, and compared with the
/// *server's* clock (the keyspace clock in memory): a session is live while the server's
/// time is not past its `expires_at`, exactly as long as Redis keeps its key.
///
/// Tokens must be unique and never reused after their session ends (random session
/// tokens are): the index's clean-up removes a member whose session it found gone, and a
/// re-created token racing that clean-up could be left out of the index.
#[async_trait]
pub trait SessionIndex: Send + Sync {
    /// Stores a new session of `user_id` under `token` until `expires_at`, and indexes
    /// it. A live session is never overwritten ([`CreateOutcome::TokenInUse`]): an
    /// overwrite could extend a session beyond what its index records. A create that
    /// failed half-way (an error after the session was written) is not retried with the
    /// same token; its session was never handed out and expires on its own.
    ///
    /// With a per-user cap, a create that takes the user beyond it revokes the sessions
    /// that **expire first** (ties broken by the lowest session id, bytewise), never the
    /// new session itself. Concurrent creates may leave the user above the cap until the
    /// next create, which evicts down to it; a refresh racing an eviction can make it
    /// evict one session too many (see `docs/sessions.md`).
    async fn create(
        &self,
        user_id: &str,
        token: &str,
        value: Bytes,
        expires_at: SystemTime,
    ) -> KvResult<CreateOutcome>;

    /// The live session under `token`.
    async fn get(&self, token: &str) -> KvResult<Option<Session>>;

    /// Moves the session's expiry to `expires_at` and, with `value`, replaces its data —
    /// only while the session exists and is in its user's index. A revoked, deleted or
    /// expired session is never re-created: the refresh returns false and writes nothing.
    /// An `expires_at` already past on the server's clock ends the session (false).
    ///
    /// The index score only ever rises: after a refresh to an *earlier* time the index
    /// keeps the later score (and TTL) until that passes. Lowering it could let the index
    /// forget a session a concurrent refresh had just extended.
    async fn refresh(
        &self,
        token: &str,
        expires_at: SystemTime,
        value: Option<Bytes>,
    ) -> KvResult<bool>;

    /// Deletes the session under `token` and removes it from its user's index; true when
    /// it existed.
    async fn delete(&self, token: &str) -> KvResult<bool>;

    /// [`SessionIndex::delete`] by session id ([`Session::id`]), for signing out a device
    /// picked from [`SessionIndex::list`] when tokens are hashed.
    async fn delete_by_id(&self, id: &str) -> KvResult<bool>;

    /// The user's live sessions, soonest expiry first (ties by id), in a fixed number of
    /// round trips whatever their number. Expired members are pruned from the index, and
    /// members whose session is gone (left by a crash between two steps) are removed.
    async fn list(&self, user_id: &str) -> KvResult<Vec<Session>>;

    /// Deletes every session of the user; how many live sessions were deleted. Once it
    /// returns, no session whose `create` had returned before the call started is
    /// readable, whatever refreshes ran concurrently.
    async fn revoke_all(&self, user_id: &str) -> KvResult<u64>;

    /// [`SessionIndex::revoke_all`] except the session under `token` ("sign out my other
    /// devices").
    async fn revoke_all_except(&self, user_id: &str, token: &str) -> KvResult<u64>;

    /// How many unexpired members the user's index has (expired ones are pruned). Exact
    /// except just after a crash between two steps of a delete or revoke, until the next
    /// `list` or revoke of the user cleans the leftover member.
    async fn count(&self, user_id: &str) -> KvResult<u64>;

    /// The session id of `token` under these options (the token, or its digest).
    fn session_id(&self, token: &str) -> KvResult<String>;
}

/// `t` as milliseconds since the epoch, truncated (a session never outlives the time it
/// was given). Before the epoch or beyond [`MAX_TTL_MS`] is invalid input.
fn epoch_ms(t: SystemTime) -> KvResult<u64> {
    let ms = t
        .duration_since(UNIX_EPOCH)
        .map_err(|_| KvError::invalid_input(format!("expires_at {t:?} is before 1970")))?
        .as_millis();
    if ms > u128::from(MAX_TTL_MS) {
        return Err(KvError::invalid_input(format!(
            "expires_at {t:?} is too far in the future: the limit is {MAX_TTL_MS} ms after \
             the epoch (2^53 - 1)"
        )));
    }
    Ok(ms as u64)
}

fn from_epoch_ms(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epoch_ms_truncates_and_bounds() {
        assert_eq!(
            epoch_ms(UNIX_EPOCH + Duration::from_micros(1_999)).unwrap(),
            1
        );
        assert!(epoch_ms(UNIX_EPOCH - Duration::from_millis(1)).is_err());
        assert!(epoch_ms(UNIX_EPOCH + Duration::from_millis(MAX_TTL_MS)).is_ok());
        let e = epoch_ms(UNIX_EPOCH + Duration::from_millis(MAX_TTL_MS + 1)).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::InvalidInput);
        assert_eq!(
            from_epoch_ms(1_500),
            UNIX_EPOCH + Duration::from_millis(1_500)
        );
    }
}
