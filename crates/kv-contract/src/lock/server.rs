//! [`ServerLock`]: the lock contract on a Redis-protocol server, over any
//! [`Connection`](crate::Connection), with the scripts `lock_acquire.lua`,
//! `delete_if_value.lua` (release) and `lock_extend.lua`. Each script is one atomic step
//! on the server, so two clients can never both see the lock free.

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

use super::ReleaseOutcome;
use super::{ms, new_token, ttl_ms, Acquisition, ExtendOutcome, Lock, LockGuard, LockOptions};
use crate::error::{KvError, KvResult};
use crate::script;
use crate::server::SharedConnection;
use crate::wire::{eval, Command};

/// Locks on a Redis or Valkey server.
#[derive(Clone)]
pub struct ServerLock {
    conn: SharedConnection,
    options: LockOptions,
}

impl std::fmt::Debug for ServerLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerLock")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl ServerLock {
    /// Locks over `conn` with `options`.
    pub fn new(conn: SharedConnection, options: LockOptions) -> Self {
        ServerLock { conn, options }
    }

    /// The options.
    pub fn options(&self) -> &LockOptions {
        &self.options
    }
}

#[async_trait]
impl Lock for ServerLock {
    async fn acquire(&self, name: &str, ttl: Duration) -> KvResult<Acquisition> {
        let keys = self.options.codec.lock_keys(name)?;
        let ttl_ms = ttl_ms(ttl)?;
        let token = new_token()?;
        let args = |c: Command| {
            c.arg(Bytes::copy_from_slice(token.as_bytes()))
                .arg(Bytes::from(ttl_ms.to_string()))
        };
        let reply = eval(
            &*self.conn,
            &script::LOCK_ACQUIRE,
            &[&keys.lock, &keys.fence],
            args,
        )
        .await?;
        let mut parts = reply.into_array()?.into_iter();
        let (Some(flag), Some(n), None) = (parts.next(), parts.next(), parts.next()) else {
            return Err(KvError::unexpected(
                "lock_acquire reply is not [flag, number]",
            ));
        };
        let n = n.into_int()?;
        Ok(match flag.into_int()? {
            1 => Acquisition::Acquired(LockGuard {
                name: name.to_owned(),
                token,
                fence: u64::try_from(n).map_err(|_| {
                    KvError::unexpected(format!("fencing counter of lock {name:?} is {n}"))
                })?,
            }),
            _ => Acquisition::Held { expires_in: ms(n) },
        })
    }

    async fn release(&self, guard: &LockGuard) -> KvResult<ReleaseOutcome> {
        let keys = self.options.codec.lock_keys(&guard.name)?;
        let args = |c: Command| c.arg(Bytes::copy_from_slice(guard.token.as_bytes()));
        let reply = eval(&*self.conn, &script::DELETE_IF_VALUE, &[&keys.lock], args).await?;
        Ok(match reply.into_int()? {
            1 => ReleaseOutcome::Released,
            _ => ReleaseOutcome::Lost,
        })
    }

    async fn extend(&self, guard: &LockGuard, ttl: Duration) -> KvResult<ExtendOutcome> {
        let keys = self.options.codec.lock_keys(&guard.name)?;
        let ttl_ms = ttl_ms(ttl)?;
        let args = |c: Command| {
            c.arg(Bytes::copy_from_slice(guard.token.as_bytes()))
                .arg(Bytes::from(ttl_ms.to_string()))
        };
        let reply = eval(&*self.conn, &script::LOCK_EXTEND, &[&keys.lock], args).await?;
        Ok(match reply.into_int()? {
            1 => ExtendOutcome::Extended,
            _ => ExtendOutcome::Lost,
        })
    }
}
