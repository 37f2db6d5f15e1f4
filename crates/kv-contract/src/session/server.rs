//! [`ServerSessionIndex`]: the session index on a Redis-protocol server, over any
//! [`Connection`](crate::Connection) — so both backends get it, sending the same bytes.
//!
//! Each step is one command or one Lua script touching one key, except the batch reads
//! and deletes of `list` and the revokes, which name several session keys: on a cluster
//! connection ([`Connection::is_cluster`](crate::Connection::is_cluster)) they are split
//! into one command per hash slot and sent concurrently.

use async_trait::async_trait;
use bytes::Bytes;

use super::flow::{self, impl_session_index, RawSession, Steps, Write};
use super::SessionIndexOptions;
use crate::error::{KvError, KvResult};
use crate::script::{self, Script};
use crate::server::SharedConnection;
use crate::slot::{self, GroupFuture};
use crate::wire::{eval, Command, Reply};

/// The session index on a Redis or Valkey server.
#[derive(Clone)]
pub struct ServerSessionIndex {
    conn: SharedConnection,
    opts: SessionIndexOptions,
}

impl std::fmt::Debug for ServerSessionIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerSessionIndex")
            .field("options", &self.opts)
            .finish_non_exhaustive()
    }
}

impl ServerSessionIndex {
    /// A session index over `conn` with `options`.
    pub fn new(conn: SharedConnection, options: SessionIndexOptions) -> Self {
        ServerSessionIndex {
            conn,
            opts: options,
        }
    }

    /// The options.
    pub fn options(&self) -> &SessionIndexOptions {
        &self.opts
    }

    async fn run(&self, script: &Script, key: &Bytes, args: Vec<Bytes>) -> KvResult<Reply> {
        eval(&*self.conn, script, &[key], |c| {
            c.args_from(args.iter().cloned())
        })
        .await
    }
}

fn ms(n: u64) -> Bytes {
    Bytes::from(n.to_string())
}

fn members(reply: Reply) -> KvResult<Vec<Bytes>> {
    reply
        .into_array()?
        .into_iter()
        .map(|m| {
            m.into_opt_bytes()?
                .ok_or_else(|| KvError::unexpected("nil member in a session index reply"))
        })
        .collect()
}

fn raw_session(reply: Reply) -> KvResult<RawSession> {
    let mut fields = reply.into_array()?.into_iter();
    let (Some(user_id), Some(expires_at), Some(value), None) =
        (fields.next(), fields.next(), fields.next(), fields.next())
    else {
        return Err(KvError::unexpected(
            "a session read did not reply [user_id, expires_at, value]",
        ));
    };
    Ok(RawSession {
        user_id: user_id.into_opt_bytes()?,
        expires_at: expires_at.into_opt_bytes()?,
        value: value.into_opt_bytes()?,
    })
}

fn count(reply: Reply) -> KvResult<u64> {
    Ok(reply.into_int()?.max(0) as u64)
}

#[async_trait]
impl Steps for ServerSessionIndex {
    async fn session_create(
        &self,
        key: Bytes,
        user_id: Bytes,
        expires_at: u64,
        value: Bytes,
    ) -> KvResult<Write> {
        let reply = self
            .run(
                &script::SESSION_CREATE,
                &key,
                vec![user_id, ms(expires_at), value],
            )
            .await?;
        Write::from_reply(reply.into_int()?)
    }

    async fn session_get(&self, key: Bytes) -> KvResult<RawSession> {
        let cmd = Command::new("HMGET")
            .key(key)
            .arg("user_id")
            .arg("expires_at")
            .arg("value");
        raw_session(self.conn.execute(cmd).await?)
    }

    async fn session_owner(&self, key: Bytes) -> KvResult<Option<Bytes>> {
        let cmd = Command::new("HGET").key(key).arg("user_id");
        self.conn.execute(cmd).await?.into_opt_bytes()
    }

    async fn session_refresh(
        &self,
        key: Bytes,
        user_id: Bytes,
        expires_at: u64,
        value: Option<Bytes>,
    ) -> KvResult<Write> {
        let (mode, value) = match value {
            Some(v) => (Bytes::from_static(b"1"), v),
            None => (Bytes::from_static(b"0"), Bytes::new()),
        };
        let reply = self
            .run(
                &script::SESSION_REFRESH,
                &key,
                vec![user_id, ms(expires_at), mode, value],
            )
            .await?;
        Write::from_reply(reply.into_int()?)
    }

    async fn session_delete(&self, key: Bytes) -> KvResult<Option<Bytes>> {
        self.run(&script::SESSION_DELETE, &key, Vec::new())
            .await?
            .into_opt_bytes()
    }

    async fn sessions_get(&self, keys: Vec<Bytes>) -> KvResult<Vec<RawSession>> {
        let groups = slot::batches(&keys, self.conn.is_cluster(), slot::MAX_KEYS_PER_COMMAND);
        let futures: Vec<GroupFuture<'_, Vec<RawSession>>> = groups
            .iter()
            .map(|group| {
                let group_keys: Vec<&[u8]> = group.iter().map(|&i| &keys[i][..]).collect();
                let fut: GroupFuture<'_, Vec<RawSession>> = Box::pin(async move {
                    let reply =
                        eval(&*self.conn, &script::SESSION_GET_MANY, &group_keys, |c| c).await?;
                    let items = reply.into_array()?;
                    if items.len() != group_keys.len() {
                        return Err(KvError::unexpected(format!(
                            "session_get_many of {} keys replied {} items",
                            group_keys.len(),
                            items.len()
                        )));
                    }
                    items.into_iter().map(raw_session).collect()
                });
                fut
            })
            .collect();
        let results = slot::join_all(futures).await?;
        let mut out = vec![RawSession::default(); keys.len()];
        for (group, sessions) in groups.iter().zip(results) {
            for (&i, s) in group.iter().zip(sessions) {
                out[i] = s;
            }
        }
        Ok(out)
    }

    async fn sessions_delete(&self, keys: Vec<Bytes>) -> KvResult<u64> {
        let groups = slot::batches(&keys, self.conn.is_cluster(), slot::MAX_KEYS_PER_COMMAND);
        let futures: Vec<GroupFuture<'_, u64>> = groups
            .iter()
            .map(|group| {
                let mut cmd = Command::new("DEL");
                for &i in group {
                    cmd = cmd.key(keys[i].clone());
                }
                let fut: GroupFuture<'_, u64> =
                    Box::pin(async move { count(self.conn.execute(cmd).await?) });
                fut
            })
            .collect();
        Ok(slot::join_all(futures).await?.into_iter().sum())
    }

    async fn index_add(
        &self,
        key: Bytes,
        member: Bytes,
        expires_at: u64,
        cap: u32,
    ) -> KvResult<Vec<Bytes>> {
        let args = vec![member, ms(expires_at), ms(cap.into())];
        members(self.run(&script::SESSION_INDEX_ADD, &key, args).await?)
    }

    async fn index_touch(&self, key: Bytes, member: Bytes, expires_at: u64) -> KvResult<bool> {
        let args = vec![member, ms(expires_at)];
        let reply = self.run(&script::SESSION_INDEX_TOUCH, &key, args).await?;
        Ok(reply.into_int()? == 1)
    }

    async fn index_members(&self, key: Bytes) -> KvResult<Vec<Bytes>> {
        members(
            self.run(&script::SESSION_INDEX_MEMBERS, &key, Vec::new())
                .await?,
        )
    }

    async fn index_remove(&self, key: Bytes, members: Vec<Bytes>) -> KvResult<u64> {
        count(
            self.run(&script::SESSION_INDEX_REMOVE, &key, members)
                .await?,
        )
    }

    async fn index_count(&self, key: Bytes) -> KvResult<u64> {
        count(
            self.run(&script::SESSION_INDEX_COUNT, &key, Vec::new())
                .await?,
        )
    }
}

impl_session_index!(ServerSessionIndex);
