//! [`BetterAuthSessions`]: reads and writes sessions in Better Auth's flat layout, so a
//! Rust service and a Node Better Auth service share one set of sessions.
//!
//! Every read honours the 1.7.16 revocation watermark: a session whose `createdAt` is
//! before `revoked-sessions-before-<userId>` does not exist, whatever is cached. Where
//! Better Auth reads then writes (the per-user index, the watermark), this writes with
//! [`SecondaryStorage::compare_and_set`] and retries, so concurrent Rust writers never
//! lose a sign-in or lower a watermark (a Node writer racing us can still, as it can
//! race itself). A watermark that is not a decimal integer fails the read
//! ([`ErrorKind::UnexpectedData`]) instead of admitting the session, as upstream would.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use crate::better_auth::session::{ActiveSessionRef, SessionValue};
use crate::error::{ErrorKind, KvError, KvResult};
use crate::memory::{Clock, SystemClock};
use crate::storage::SecondaryStorage;

const DAY: Duration = Duration::from_secs(86_400);
const CAS_ATTEMPTS: usize = 32;

/// Options of [`BetterAuthSessions`]. `Default`: Better Auth's defaults.
#[non_exhaustive]
#[derive(Clone)]
pub struct BetterAuthSessionOptions {
    /// Better Auth's `session.expiresIn` (default 7 days): part of the watermark's TTL.
    pub session_expiration: Duration,
    /// The admin plugin's `impersonationSessionDuration`, if the plugin is used.
    pub impersonation_duration: Option<Duration>,
    /// The clock that decides expiry and stamps revocations (default: the system clock).
    pub clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for BetterAuthSessionOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BetterAuthSessionOptions")
            .field("session_expiration", &self.session_expiration)
            .field("impersonation_duration", &self.impersonation_duration)
            .finish_non_exhaustive()
    }
}

impl Default for BetterAuthSessionOptions {
    fn default() -> Self {
        BetterAuthSessionOptions {
            session_expiration: 7 * DAY,
            impersonation_duration: None,
            clock: Arc::new(SystemClock),
        }
    }
}

impl BetterAuthSessionOptions {
    /// Sets `session.expiresIn`.
    pub fn session_expiration(mut self, d: Duration) -> Self {
        self.session_expiration = d;
        self
    }

    /// Sets the admin plugin's impersonation duration.
    pub fn impersonation_duration(mut self, d: Duration) -> Self {
        self.impersonation_duration = Some(d);
        self
    }

    /// Sets the clock.
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The watermark's TTL: the largest of the session lifetime, one day and the
    /// impersonation duration, in whole seconds.
    pub fn watermark_ttl(&self) -> Duration {
        let d = self
            .session_expiration
            .max(DAY)
            .max(self.impersonation_duration.unwrap_or_default());
        Duration::from_secs(d.as_secs())
    }
}

/// What [`BetterAuthSessions::write`] did.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteOutcome {
    /// Indexed and written, expiring after this many whole seconds.
    Written {
        /// The TTL given to the value.
        ttl_secs: u64,
    },
    /// Less than a second was left (Better Auth's `getTTLSeconds` is 0): nothing written.
    AlreadyExpired,
}

/// Better Auth's session layout over a store built with `better_auth_compatible()`.
#[derive(Clone)]
pub struct BetterAuthSessions {
    storage: Arc<dyn SecondaryStorage>,
    options: BetterAuthSessionOptions,
}

impl std::fmt::Debug for BetterAuthSessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BetterAuthSessions")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

/// `active-sessions-<userId>`.
pub fn index_key(user_id: &str) -> String {
    format!("active-sessions-{user_id}")
}

/// `revoked-sessions-before-<userId>`.
pub fn watermark_key(user_id: &str) -> String {
    format!("revoked-sessions-before-{user_id}")
}

fn parse_index(raw: Option<&[u8]>) -> Vec<ActiveSessionRef> {
    // Better Auth: `safeJSONParse(list) || []`.
    raw.and_then(|r| serde_json::from_slice(r).ok())
        .unwrap_or_default()
}

fn parse_value(token: &str, raw: &[u8]) -> KvResult<SessionValue> {
    serde_json::from_slice(raw).map_err(|e| {
        KvError::with_source(
            ErrorKind::UnexpectedData,
            format!(
                "session value of token {:?} is not Better Auth's JSON",
                redact(token)
            ),
            e,
        )
    })
}

/// The first 4 characters of a token, for messages.
fn redact(token: &str) -> String {
    format!("{}…", token.chars().take(4).collect::<String>())
}

fn check_id(what: &str, id: &str) -> KvResult<()> {
    if id.is_empty() {
        return Err(KvError::invalid_input(format!("empty {what}")));
    }
    Ok(())
}

impl BetterAuthSessions {
    /// Sessions in `storage` (Better Auth's flat layout and `keyPrefix`).
    pub fn new(storage: Arc<dyn SecondaryStorage>, options: BetterAuthSessionOptions) -> Self {
        BetterAuthSessions { storage, options }
    }

    fn now(&self) -> i64 {
        self.options.clock.now_ms() as i64
    }

    /// The watermark of `user_id` (ms), 0 when none.
    pub async fn watermark(&self, user_id: &str) -> KvResult<i64> {
        check_id("user id", user_id)?;
        let key = watermark_key(user_id);
        match self.storage.get(&key).await? {
            None => Ok(0),
            Some(raw) => crate::wire::parse_integer(&raw).ok_or_else(|| {
                KvError::unexpected(format!("{key} does not hold a millisecond timestamp"))
            }),
        }
    }

    /// The live session of `token`: `None` when absent, expired, or created before its
    /// user's watermark.
    pub async fn read(&self, token: &str) -> KvResult<Option<SessionValue>> {
        check_id("session token", token)?;
        let Some(raw) = self.storage.get(token).await? else {
            return Ok(None);
        };
        let value = parse_value(token, &raw)?;
        if value.session.expires_at.as_millis() <= self.now() {
            return Ok(None);
        }
        let wm = self.watermark(&value.session.user_id).await?;
        Ok((value.session.created_at.as_millis() >= wm).then_some(value))
    }

    /// The session of a signed cookie value: [`cookie::verify_cookie`](super::cookie::verify_cookie),
    /// then [`Self::read`]. `None` for a bad signature.
    pub async fn read_cookie(&self, cookie: &str, secret: &[u8]) -> KvResult<Option<SessionValue>> {
        match super::cookie::verify_cookie(cookie, secret) {
            Some(token) => self.read(&token).await,
            None => Ok(None),
        }
    }

    /// The user's index, as stored (not pruned).
    pub async fn index(&self, user_id: &str) -> KvResult<Vec<ActiveSessionRef>> {
        check_id("user id", user_id)?;
        let raw = self.storage.get(&index_key(user_id)).await?;
        Ok(parse_index(raw.as_deref()))
    }

    /// Rewrites the user's index with `change`, sorted by expiry, with the furthest
    /// member's TTL (deleted when nothing is left): a compare-and-set loop.
    async fn update_index(
        &self,
        user_id: &str,
        change: impl Fn(&mut Vec<ActiveSessionRef>, i64),
    ) -> KvResult<()> {
        let key = index_key(user_id);
        for _ in 0..CAS_ATTEMPTS {
            let raw = self.storage.get(&key).await?;
            let mut list = parse_index(raw.as_deref());
            let now = self.now();
            change(&mut list, now);
            list.sort_by_key(|r| r.expires_at);
            let ttl_secs = list
                .last()
                .map_or(0, |r| (r.expires_at - now).div_euclid(1000).max(0));
            let applied = if ttl_secs == 0 {
                match &raw {
                    None => true,
                    Some(r) => self.storage.delete_if_value(&key, r).await?,
                }
            } else {
                let json = serde_json::to_vec(&list).expect("index entries serialise");
                self.storage
                    .compare_and_set(
                        &key,
                        raw.as_deref(),
                        Bytes::from(json),
                        Some(Duration::from_secs(ttl_secs as u64)),
                    )
                    .await?
            };
            if applied {
                return Ok(());
            }
        }
        Err(KvError::unexpected(format!(
            "{key} changed on each of {CAS_ATTEMPTS} attempts to update it"
        )))
    }

    /// Writes `value` as Better Auth's sign-in does: the index gains the token (expired
    /// members and an older entry of the same token dropped), then the value is stored
    /// with TTL floor(seconds until `expiresAt`) — not at all when that is 0.
    pub async fn write(&self, value: &SessionValue) -> KvResult<WriteOutcome> {
        let s = &value.session;
        check_id("session token", &s.token)?;
        check_id("user id", &s.user_id)?;
        let ttl_secs = (s.expires_at.as_millis() - self.now()).div_euclid(1000);
        if ttl_secs <= 0 {
            return Ok(WriteOutcome::AlreadyExpired);
        }
        let entry = ActiveSessionRef {
            token: s.token.clone(),
            expires_at: s.expires_at.as_millis(),
        };
        self.update_index(&s.user_id, |list, now| {
            list.retain(|r| r.expires_at > now && r.token != entry.token);
            list.push(entry.clone());
        })
        .await?;
        let json = serde_json::to_vec(value).expect("session values serialise");
        self.storage
            .set(
                &s.token,
                Bytes::from(json),
                Some(Duration::from_secs(ttl_secs as u64)),
            )
            .await?;
        Ok(WriteOutcome::Written {
            ttl_secs: ttl_secs as u64,
        })
    }

    /// The user's live sessions, soonest-expiring first: the index's members whose value
    /// exists, has not expired and was created at or after the watermark.
    pub async fn list(&self, user_id: &str) -> KvResult<Vec<SessionValue>> {
        let refs = self.index(user_id).await?;
        if refs.is_empty() {
            return Ok(Vec::new());
        }
        let wm = self.watermark(user_id).await?;
        let tokens: Vec<&str> = refs.iter().map(|r| r.token.as_str()).collect();
        let values = self.storage.get_many(&tokens).await?;
        let now = self.now();
        let mut live = Vec::new();
        for (token, raw) in tokens.iter().zip(values) {
            let Some(raw) = raw else { continue };
            // Better Auth's findSessions skips values it cannot parse.
            let Ok(v) = parse_value(token, &raw) else {
                continue;
            };
            if v.session.expires_at.as_millis() > now
                && v.session.created_at.as_millis() >= wm
                && v.session.user_id == user_id
            {
                live.push(v);
            }
        }
        live.sort_by_key(|v| v.session.expires_at);
        Ok(live)
    }

    /// Revokes one session: deletes its value, then its index entry. True when the value
    /// existed.
    pub async fn revoke(&self, token: &str) -> KvResult<bool> {
        check_id("session token", token)?;
        let Some(raw) = self.storage.take(token).await? else {
            return Ok(false);
        };
        if let Ok(v) = parse_value(token, &raw) {
            self.update_index(&v.session.user_id, |list, now| {
                list.retain(|r| r.expires_at > now && r.token != token);
            })
            .await?;
        }
        Ok(true)
    }

    /// Revokes every session of `user_id` as Better Auth 1.7.16 does: first the watermark
    /// is raised to now (never lowered, TTL [`BetterAuthSessionOptions::watermark_ttl`]),
    /// so every session created before it is rejected by every reader even if a delete
    /// below fails or a Node instance re-caches one; then the indexed values are deleted
    /// and the index emptied. Returns the number of values deleted.
    pub async fn revoke_all(&self, user_id: &str) -> KvResult<u64> {
        check_id("user id", user_id)?;
        let key = watermark_key(user_id);
        let ttl = self.options.watermark_ttl();
        let mut raised = false;
        for _ in 0..CAS_ATTEMPTS {
            let raw = self.storage.get(&key).await?;
            let current = raw
                .as_deref()
                .and_then(crate::wire::parse_integer)
                .unwrap_or(0);
            let new = current.max(self.now());
            if self
                .storage
                .compare_and_set(
                    &key,
                    raw.as_deref(),
                    Bytes::from(new.to_string()),
                    Some(ttl),
                )
                .await?
            {
                raised = true;
                break;
            }
        }
        if !raised {
            return Err(KvError::unexpected(format!(
                "{key} changed on each of {CAS_ATTEMPTS} attempts to raise it"
            )));
        }
        let refs = self.index(user_id).await?;
        let tokens: Vec<&str> = refs.iter().map(|r| r.token.as_str()).collect();
        let deleted = if tokens.is_empty() {
            0
        } else {
            self.storage.delete_many(&tokens).await?
        };
        let gone: std::collections::HashSet<String> =
            refs.iter().map(|r| r.token.clone()).collect();
        self.update_index(user_id, |list, now| {
            list.retain(|r| r.expires_at > now && !gone.contains(&r.token));
        })
        .await?;
        Ok(deleted)
    }
}
