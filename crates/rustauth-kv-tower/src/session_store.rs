//! [`KvSessionStore`]: a tower-sessions `SessionStore` over a [`Kv`] bundle's secondary
//! storage and per-user session index.
//!
//! **Where a record lives.** A record whose data names a user (by default axum-login's
//! `axum-login.data` → `user_id`, see [`UserIdSource`]) is a session of the
//! [`SessionIndex`]: `{prefix}session:{id}` plus the user's index, so the user's devices
//! can be listed and revoked. Any other record (anonymous) is one secondary-storage key,
//! `{prefix}secondary:tower-session:{id}`. Both expire at the record's `expiry_date`.
//!
//! **Encoding.** The stored value is the JSON of tower-sessions' `Record` (`id`, `data`,
//! `expiry_date`): `data` already is a map of `serde_json::Value`s, so JSON round-trips
//! it exactly with no dependency beyond the `serde_json` tower-sessions itself pulls in,
//! and an operator can read a session with `redis-cli GET`. (MessagePack, which the
//! fred-based store of tower-sessions-stores uses, would be smaller but would still go
//! through `serde_json::Value` and adds a dependency.)
//!
//! **Never overwrite, never resurrect.** `create` writes only where nothing is
//! (`SessionIndex::create` / `set_if_not_exists`) and draws a new id on a collision.
//! `save` only *updates*: a signed-in session through `SessionIndex::refresh` (a no-op
//! once the session was revoked, deleted or expired); an anonymous one by
//! compare-and-set against the value it read. So a request still holding a revoked
//! session can save it as often as it likes: the session stays gone, and the next request
//! gets a new, empty session. A record that gains a user without a new id (an app that
//! does not `cycle_id` on sign-in) is moved from the anonymous key into the index, and
//! back on sign-out; the move consumes the old key first, so it can never resurrect.
//!
//! Ids are tower-sessions' 128-bit random ids: a collision between an anonymous key and
//! an indexed session of the same id is not checked (`load` would see the indexed one).

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use rustauth_kv::session::{CreateOutcome, Session};
use rustauth_kv::{ErrorKind, Kv, KvError, KvResult, SecondaryStorage, SessionIndex};

/// The data key axum-login keeps its state under; its `user_id` field is the user.
pub const AXUM_LOGIN_KEY: &str = "axum-login.data";

/// The logical secondary-storage key prefix of anonymous records.
pub const ANONYMOUS_KEY_PREFIX: &str = "tower-session:";

/// How many times an anonymous `save` retries its compare-and-set when concurrent saves
/// of the same session keep changing it.
const SAVE_ATTEMPTS: usize = 8;

type Extract = dyn Fn(&HashMap<String, serde_json::Value>) -> Option<String> + Send + Sync;

/// Where the store finds the user a record belongs to.
#[non_exhaustive]
#[derive(Clone, Default)]
pub enum UserIdSource {
    /// axum-login's layout: the `user_id` field of the value under [`AXUM_LOGIN_KEY`]
    /// (a string, or a number written in decimal). The default.
    #[default]
    AxumLogin,
    /// The value under this data key itself (a string, or a number in decimal).
    Key(String),
    /// A function of the record's data.
    Custom(Arc<Extract>),
}

impl fmt::Debug for UserIdSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UserIdSource::AxumLogin => f.write_str("AxumLogin"),
            UserIdSource::Key(k) => f.debug_tuple("Key").field(k).finish(),
            UserIdSource::Custom(_) => f.write_str("Custom(..)"),
        }
    }
}

fn id_text(v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::String(s) if !s.is_empty() => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

impl UserIdSource {
    /// The user of a record's data, if any.
    pub fn user_id(&self, data: &HashMap<String, serde_json::Value>) -> Option<String> {
        match self {
            UserIdSource::AxumLogin => data.get(AXUM_LOGIN_KEY)?.get("user_id").and_then(id_text),
            UserIdSource::Key(k) => data.get(k).and_then(id_text),
            UserIdSource::Custom(f) => f(data),
        }
    }
}

/// A tower-sessions `SessionStore` over a [`Kv`] bundle (any backend, any topology the
/// bundle supports). Cheap to clone.
#[derive(Clone)]
pub struct KvSessionStore {
    storage: Arc<dyn SecondaryStorage>,
    sessions: Arc<dyn SessionIndex>,
    user_id: UserIdSource,
}

impl fmt::Debug for KvSessionStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KvSessionStore")
            .field("user_id", &self.user_id)
            .finish_non_exhaustive()
    }
}

/// What one attempt of `create` found.
pub(crate) enum Created {
    /// Written (or nothing to write: already expired).
    Done,
    /// The id is taken: draw another.
    Collision,
}

impl KvSessionStore {
    /// A store over `kv`'s secondary storage and session index, finding users as
    /// axum-login stores them.
    pub fn new(kv: &Kv) -> Self {
        Self::from_parts(kv.storage(), kv.sessions())
    }

    /// A store over any secondary storage and session index (e.g. resilient wrappers).
    pub fn from_parts(storage: Arc<dyn SecondaryStorage>, sessions: Arc<dyn SessionIndex>) -> Self {
        KvSessionStore {
            storage,
            sessions,
            user_id: UserIdSource::default(),
        }
    }

    /// Finds the user of a record with `source` instead of axum-login's layout.
    pub fn with_user_id(mut self, source: UserIdSource) -> Self {
        self.user_id = source;
        self
    }

    /// The session index under the store: for anything the helpers below do not cover.
    pub fn session_index(&self) -> &Arc<dyn SessionIndex> {
        &self.sessions
    }

    /// The user's live sessions ("your devices"), soonest expiry first. Each
    /// [`Session::value`] is the JSON of the tower-sessions record; [`Session::id`] is
    /// what [`Self::revoke_device`] takes.
    pub async fn devices(&self, user_id: &str) -> KvResult<Vec<Session>> {
        self.sessions.list(user_id).await
    }

    /// The [`Session::id`] of the session whose tower-sessions id is `session_id` (equal
    /// to it unless the index hashes tokens): to mark "this device" in [`Self::devices`].
    pub fn device_id(&self, session_id: &str) -> KvResult<String> {
        self.sessions.session_id(session_id)
    }

    /// Signs out one of the user's devices by [`Session::id`]; false when the user has no
    /// such live session (another user's session is never touched).
    pub async fn revoke_device(&self, user_id: &str, device_id: &str) -> KvResult<bool> {
        let owned = self
            .sessions
            .list(user_id)
            .await?
            .iter()
            .any(|s| s.id == device_id);
        Ok(owned && self.sessions.delete_by_id(device_id).await?)
    }

    /// Signs out every device of the user except the session `current_session_id` (the
    /// tower-sessions id of the request's session); how many were revoked.
    pub async fn revoke_other_devices(
        &self,
        user_id: &str,
        current_session_id: &str,
    ) -> KvResult<u64> {
        self.sessions
            .revoke_all_except(user_id, current_session_id)
            .await
    }

    /// Signs out every device of the user; how many were revoked.
    pub async fn revoke_all_devices(&self, user_id: &str) -> KvResult<u64> {
        self.sessions.revoke_all(user_id).await
    }

    pub(crate) fn user_of(&self, data: &HashMap<String, serde_json::Value>) -> Option<String> {
        self.user_id.user_id(data)
    }

    /// One attempt to create the record `id` (already encoded).
    pub(crate) async fn create_encoded(
        &self,
        id: &str,
        user: Option<&str>,
        value: Bytes,
        expires_at: SystemTime,
    ) -> KvResult<Created> {
        match user {
            Some(user) => match self.sessions.create(user, id, value, expires_at).await? {
                CreateOutcome::TokenInUse => Ok(Created::Collision),
                _ => Ok(Created::Done),
            },
            None => {
                let Some(ttl) = ttl_until(expires_at) else {
                    return Ok(Created::Done);
                };
                let created = self
                    .storage
                    .set_if_not_exists(&anonymous_key(id), value, Some(ttl))
                    .await?;
                Ok(if created {
                    Created::Done
                } else {
                    Created::Collision
                })
            }
        }
    }

    /// Updates the record `id` if it still exists; never re-creates a session that is
    /// gone. True when something was written.
    pub(crate) async fn save_encoded(
        &self,
        id: &str,
        user: Option<&str>,
        value: Bytes,
        expires_at: SystemTime,
    ) -> KvResult<bool> {
        let key = anonymous_key(id);
        match user {
            Some(user) => {
                if self
                    .sessions
                    .refresh(id, expires_at, Some(value.clone()))
                    .await?
                {
                    return Ok(true);
                }
                // Not a live indexed session: an anonymous record that just signed in
                // keeps its id; anything else is gone and stays gone.
                if self.storage.take(&key).await?.is_none() {
                    return Ok(false);
                }
                let outcome = self.sessions.create(user, id, value, expires_at).await?;
                Ok(matches!(outcome, CreateOutcome::Created { .. }))
            }
            None => {
                let ttl = ttl_until(expires_at);
                for _ in 0..SAVE_ATTEMPTS {
                    match self.storage.get(&key).await? {
                        Some(current) => {
                            let Some(ttl) = ttl else {
                                return self.storage.delete(&key).await;
                            };
                            if self
                                .storage
                                .compare_and_set(&key, Some(&current), value.clone(), Some(ttl))
                                .await?
                            {
                                return Ok(true);
                            }
                        }
                        None => {
                            // A signed-in session that signed out without a new id moves
                            // back to an anonymous key; the delete decides, once.
                            if self.sessions.get(id).await?.is_none()
                                || !self.sessions.delete(id).await?
                            {
                                return Ok(false);
                            }
                            let Some(ttl) = ttl else { return Ok(false) };
                            return self.storage.set_if_not_exists(&key, value, Some(ttl)).await;
                        }
                    }
                }
                Err(KvError::new(
                    ErrorKind::Server,
                    format!(
                        "session {id}: {SAVE_ATTEMPTS} concurrent saves in a row changed it \
                     between read and write"
                    ),
                ))
            }
        }
    }

    /// The stored JSON of the record `id`.
    pub(crate) async fn load_encoded(&self, id: &str) -> KvResult<Option<Bytes>> {
        if let Some(s) = self.sessions.get(id).await? {
            return Ok(Some(s.value));
        }
        self.storage.get(&anonymous_key(id)).await
    }

    /// Deletes the record `id` wherever it is.
    pub(crate) async fn delete_encoded(&self, id: &str) -> KvResult<()> {
        self.sessions.delete(id).await?;
        self.storage.delete(&anonymous_key(id)).await?;
        Ok(())
    }
}

fn anonymous_key(id: &str) -> String {
    format!("{ANONYMOUS_KEY_PREFIX}{id}")
}

/// Time left until `expires_at` on this process's clock, rounded up to the millisecond;
/// `None` when it is already past.
fn ttl_until(expires_at: SystemTime) -> Option<Duration> {
    let left = expires_at.duration_since(SystemTime::now()).ok()?;
    let ms = left.as_micros().div_ceil(1000);
    (ms > 0).then(|| Duration::from_millis(ms as u64))
}

/// Implements one tower-sessions version's `SessionStore` over the version-independent
/// methods above: the two versions' `Record`, `Id` and `Error` have the same shape.
macro_rules! impl_session_store {
    ($core:ident) => {
        mod $core {
            use super::{Created, KvSessionStore};
            use std::time::SystemTime;
            use $core::session::{Id, Record};
            use $core::session_store::{Error, Result, SessionStore};

            fn backend(e: rustauth_kv::KvError) -> Error {
                Error::Backend(e.to_string())
            }

            fn encode(record: &Record) -> Result<bytes::Bytes> {
                serde_json::to_vec(record)
                    .map(Into::into)
                    .map_err(|e| Error::Encode(e.to_string()))
            }

            #[async_trait::async_trait]
            impl SessionStore for KvSessionStore {
                async fn create(&self, record: &mut Record) -> Result<()> {
                    let user = self.user_of(&record.data);
                    let expires_at = SystemTime::from(record.expiry_date);
                    loop {
                        let id = record.id.to_string();
                        match self
                            .create_encoded(&id, user.as_deref(), encode(record)?, expires_at)
                            .await
                            .map_err(backend)?
                        {
                            Created::Done => return Ok(()),
                            Created::Collision => record.id = Id::default(),
                        }
                    }
                }

                async fn save(&self, record: &Record) -> Result<()> {
                    let user = self.user_of(&record.data);
                    let id = record.id.to_string();
                    let written = self
                        .save_encoded(&id, user.as_deref(), encode(record)?, record.expiry_date.into())
                        .await
                        .map_err(backend)?;
                    if !written {
                        tracing::debug!(session = %id, "save of a session that is gone: not re-created");
                    }
                    Ok(())
                }

                async fn load(&self, session_id: &Id) -> Result<Option<Record>> {
                    match self
                        .load_encoded(&session_id.to_string())
                        .await
                        .map_err(backend)?
                    {
                        None => Ok(None),
                        Some(bytes) => serde_json::from_slice(&bytes)
                            .map(Some)
                            .map_err(|e| Error::Decode(e.to_string())),
                    }
                }

                async fn delete(&self, session_id: &Id) -> Result<()> {
                    self.delete_encoded(&session_id.to_string())
                        .await
                        .map_err(backend)
                }
            }
        }
    };
}

#[cfg(feature = "tower-sessions-015")]
impl_session_store!(tower_sessions_core_015);
#[cfg(feature = "tower-sessions-014")]
impl_session_store!(tower_sessions_core_014);

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn user_ids_are_found_where_axum_login_keeps_them() {
        let mut data = HashMap::new();
        assert_eq!(UserIdSource::AxumLogin.user_id(&data), None);
        data.insert(
            AXUM_LOGIN_KEY.to_owned(),
            json!({"user_id": null, "auth_hash": null}),
        );
        assert_eq!(UserIdSource::AxumLogin.user_id(&data), None);
        data.insert(
            AXUM_LOGIN_KEY.to_owned(),
            json!({"user_id": 42, "auth_hash": [1, 2]}),
        );
        assert_eq!(
            UserIdSource::AxumLogin.user_id(&data).as_deref(),
            Some("42")
        );
        data.insert(AXUM_LOGIN_KEY.to_owned(), json!({"user_id": "alice"}));
        assert_eq!(
            UserIdSource::AxumLogin.user_id(&data).as_deref(),
            Some("alice")
        );
        data.insert("uid".to_owned(), json!("bob"));
        assert_eq!(
            UserIdSource::Key("uid".into()).user_id(&data).as_deref(),
            Some("bob")
        );
        let custom = UserIdSource::Custom(Arc::new(|_| Some("carol".into())));
        assert_eq!(custom.user_id(&data).as_deref(), Some("carol"));
    }

    #[test]
    fn ttls_round_up_and_past_dates_have_none() {
        assert_eq!(ttl_until(SystemTime::now() - Duration::from_secs(1)), None);
        let ttl = ttl_until(SystemTime::now() + Duration::from_secs(10)).unwrap();
        assert!(ttl <= Duration::from_secs(10) && ttl > Duration::from_secs(9));
    }
}
