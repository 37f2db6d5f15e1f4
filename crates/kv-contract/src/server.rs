//! [`ServerStorage`]: secondary storage on a Redis-protocol server, over any
//! [`Connection`].
//!
//! This is the whole secondary-storage logic for Redis and Valkey: which command each
//! operation sends, with which bytes, and how the reply is read. The redis-rs and fred
//! backends supply only the [`Connection`]; both therefore send identical commands.
//!
//! Multi-key commands (`get_many`'s `MGET`, `delete_many`'s and `clear`'s `DEL`) are
//! cut into batches of one hash slot on a cluster ([`Connection::is_cluster`]) and of at
//! most [`MAX_KEYS_PER_COMMAND`] keys everywhere, sent concurrently, and `MGET` replies
//! are put back in the caller's order: cluster-safe by construction, whatever the
//! backend's client would do with a cross-slot command.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

use crate::error::{KvError, KvResult};
use crate::script;
use crate::slot::{self, GroupFuture, MAX_KEYS_PER_COMMAND};
use crate::storage::{check_value, increment_ttl_secs, SecondaryStorage, StorageOptions};
use crate::ttl::Expiry;
use crate::wire::{eval, Command, Connection, ScanCursor};

/// A connection shared by every store of a deployment.
pub type SharedConnection = Arc<dyn Connection>;

/// Secondary storage on a Redis or Valkey server.
#[derive(Clone)]
pub struct ServerStorage {
    conn: SharedConnection,
    options: StorageOptions,
}

impl std::fmt::Debug for ServerStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerStorage")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl ServerStorage {
    /// A store over `conn` with `options`.
    pub fn new(conn: SharedConnection, options: StorageOptions) -> Self {
        ServerStorage { conn, options }
    }

    /// The options.
    pub fn options(&self) -> &StorageOptions {
        &self.options
    }

    /// The connection, for building other stores on it.
    pub fn connection(&self) -> &SharedConnection {
        &self.conn
    }

    fn key(&self, key: &str) -> KvResult<Bytes> {
        self.options.key(key).map(Bytes::from)
    }

    /// `DEL` of physical keys, one command per hash slot on a cluster (a cross-slot `DEL`
    /// is refused with `CROSSSLOT`) and at most [`MAX_KEYS_PER_COMMAND`] keys per command
    /// on any topology; the commands run concurrently. No key, no command.
    async fn delete_physical(&self, keys: &[Bytes]) -> KvResult<u64> {
        let batches = slot::batches(keys, self.conn.is_cluster(), MAX_KEYS_PER_COMMAND);
        let futures: Vec<GroupFuture<'_, u64>> = batches
            .iter()
            .map(|batch| {
                let mut cmd = Command::new("DEL");
                for &i in batch {
                    cmd = cmd.key(keys[i].clone());
                }
                let fut: GroupFuture<'_, u64> =
                    Box::pin(
                        async move { Ok(self.conn.execute(cmd).await?.into_int()?.max(0) as u64) },
                    );
                fut
            })
            .collect();
        Ok(slot::join_all(futures).await?.into_iter().sum())
    }

    fn scan(&self) -> NamespaceScan<'_> {
        NamespaceScan {
            conn: &*self.conn,
            pattern: self.options.scan_pattern(),
            count: self.options.scan_count,
            cursor: Some(ScanCursor::default()),
        }
    }
}

/// A SCAN over one namespace, one page at a time (memory stays bounded by a page).
struct NamespaceScan<'a> {
    conn: &'a dyn Connection,
    pattern: Vec<u8>,
    count: u32,
    cursor: Option<ScanCursor>,
}

impl NamespaceScan<'_> {
    /// The next page of physical keys, or `None` when the scan is complete.
    async fn next_page(&mut self) -> KvResult<Option<Vec<Bytes>>> {
        let Some(from) = self.cursor else {
            return Ok(None);
        };
        let page = self.conn.scan_page(from, &self.pattern, self.count).await?;
        self.cursor = page.next;
        Ok(Some(page.keys))
    }
}

fn set_command(key: impl Into<Bytes>, value: Bytes) -> Command {
    Command::new("SET").key(key).arg(value)
}

#[async_trait]
impl SecondaryStorage for ServerStorage {
    async fn get(&self, key: &str) -> KvResult<Option<Bytes>> {
        let key = self.key(key)?;
        self.conn
            .execute(Command::new("GET").key(key))
            .await?
            .into_opt_bytes()
    }

    async fn set(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> KvResult<()> {
        let (key, expiry) = self.options.write_plan(key, &value, ttl)?;
        let cmd = match expiry {
            Expiry::Never => set_command(key, value),
            Expiry::Immediately => Command::new("DEL").key(key),
            Expiry::AfterMs(ms) => set_command(key, value).arg("PX").int_arg(ms as i64),
        };
        self.conn.execute(cmd).await?;
        Ok(())
    }

    async fn set_keep_ttl(&self, key: &str, value: Bytes) -> KvResult<()> {
        check_value(key, &value)?;
        let key = self.key(key)?;
        self.conn
            .execute(set_command(key, value).arg("KEEPTTL"))
            .await?;
        Ok(())
    }

    async fn delete(&self, key: &str) -> KvResult<bool> {
        let key = self.key(key)?;
        Ok(self
            .conn
            .execute(Command::new("DEL").key(key))
            .await?
            .into_int()?
            > 0)
    }

    async fn set_if_not_exists(
        &self,
        key: &str,
        value: Bytes,
        ttl: Option<Duration>,
    ) -> KvResult<bool> {
        let (key, expiry) = self.options.write_plan(key, &value, ttl)?;
        let cmd = match expiry {
            Expiry::Immediately => return Ok(false),
            Expiry::Never => set_command(key, value).arg("NX"),
            // `PX` before `NX`: the order fred's typed `SET` writes, so both backends
            // send these bytes.
            Expiry::AfterMs(ms) => set_command(key, value)
                .arg("PX")
                .int_arg(ms as i64)
                .arg("NX"),
        };
        Ok(self.conn.execute(cmd).await?.is_some())
    }

    async fn take(&self, key: &str) -> KvResult<Option<Bytes>> {
        let key = self.key(key)?;
        self.conn
            .execute(Command::new("GETDEL").key(key))
            .await?
            .into_opt_bytes()
    }

    async fn increment(&self, key: &str, ttl: Duration) -> KvResult<i64> {
        let secs = increment_ttl_secs(key, ttl)?;
        let physical = self.key(key)?;
        let args = |c: Command| c.arg(Bytes::from(secs.to_string()));
        eval(&*self.conn, &script::INCREMENT, &[&physical], args)
            .await?
            .into_int()
    }

    async fn compare_and_set(
        &self,
        key: &str,
        expected: Option<&[u8]>,
        value: Bytes,
        ttl: Option<Duration>,
    ) -> KvResult<bool> {
        let (physical, expiry) = self.options.write_plan(key, &value, ttl)?;
        let (mode, expected) = match expected {
            Some(e) => (Bytes::from_static(b"1"), Bytes::copy_from_slice(e)),
            None => (Bytes::from_static(b"0"), Bytes::new()),
        };
        let expiry = expiry.script_arg();
        let args = |c: Command| {
            c.arg(mode.clone())
                .arg(expected.clone())
                .arg(value.clone())
                .arg(Bytes::from(expiry.to_string()))
        };
        let reply = eval(&*self.conn, &script::COMPARE_AND_SET, &[&physical], args).await?;
        Ok(reply.into_int()? == 1)
    }

    async fn delete_if_value(&self, key: &str, expected: &[u8]) -> KvResult<bool> {
        let physical = self.key(key)?;
        let args = |c: Command| c.arg(Bytes::copy_from_slice(expected));
        let reply = eval(&*self.conn, &script::DELETE_IF_VALUE, &[&physical], args).await?;
        Ok(reply.into_int()? == 1)
    }

    async fn get_many(&self, keys: &[&str]) -> KvResult<Vec<Option<Bytes>>> {
        let physical = keys
            .iter()
            .map(|k| self.key(k))
            .collect::<KvResult<Vec<_>>>()?;
        let batches = slot::batches(&physical, self.conn.is_cluster(), MAX_KEYS_PER_COMMAND);
        let futures: Vec<GroupFuture<'_, Vec<Option<Bytes>>>> = batches
            .iter()
            .map(|batch| {
                let mut cmd = Command::new("MGET");
                for &i in batch {
                    cmd = cmd.key(physical[i].clone());
                }
                let want = batch.len();
                let fut: GroupFuture<'_, Vec<Option<Bytes>>> = Box::pin(async move {
                    let values = self.conn.execute(cmd).await?.into_array()?;
                    if values.len() != want {
                        return Err(KvError::unexpected(format!(
                            "MGET of {want} keys returned {} values",
                            values.len()
                        )));
                    }
                    values.into_iter().map(|v| v.into_opt_bytes()).collect()
                });
                fut
            })
            .collect();
        // Reassemble in the caller's order: batch i holds the values of its indices.
        let mut out = vec![None; keys.len()];
        for (batch, values) in batches.iter().zip(slot::join_all(futures).await?) {
            for (&i, v) in batch.iter().zip(values) {
                out[i] = v;
            }
        }
        Ok(out)
    }

    async fn delete_many(&self, keys: &[&str]) -> KvResult<u64> {
        let physical = keys
            .iter()
            .map(|k| self.key(k))
            .collect::<KvResult<Vec<_>>>()?;
        self.delete_physical(&physical).await
    }

    async fn list_keys(&self) -> KvResult<Vec<String>> {
        let mut seen: HashSet<Bytes> = HashSet::new();
        let mut keys = Vec::new();
        let mut scan = self.scan();
        while let Some(page) = scan.next_page().await? {
            for physical in page {
                let Some(logical) = self.options.logical(&physical) else {
                    continue;
                };
                match std::str::from_utf8(logical) {
                    Ok(s) if !seen.contains(&physical) => keys.push(s.to_owned()),
                    Ok(_) => continue,
                    Err(_) => tracing::warn!(
                        key = %String::from_utf8_lossy(&physical),
                        "list_keys skips a key that is not UTF-8 (not written by rustauth-kv)"
                    ),
                }
                seen.insert(physical);
            }
        }
        Ok(keys)
    }

    async fn clear(&self) -> KvResult<u64> {
        // Each page is deleted before the next is read, so memory stays bounded by one
        // page however large the namespace. A key SCAN returns twice is counted once:
        // DEL reports only keys that existed. An empty page sends no DEL.
        let mut deleted = 0u64;
        let mut scan = self.scan();
        while let Some(page) = scan.next_page().await? {
            if page.is_empty() {
                continue;
            }
            deleted += self.delete_physical(&page).await?;
        }
        Ok(deleted)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::slot::key_slot;
    use crate::wire::Reply;

    /// Records every command; answers `MGET` with each key's own bytes, `DEL` with the key
    /// count; refuses cross-slot commands like a cluster when `cluster`.
    #[derive(Debug, Default)]
    struct Recorder {
        cluster: bool,
        sent: Mutex<Vec<Command>>,
    }

    #[async_trait]
    impl Connection for Recorder {
        async fn execute(&self, command: Command) -> KvResult<Reply> {
            let keys = command.args().to_vec();
            if self.cluster && keys.iter().any(|k| key_slot(k) != key_slot(&keys[0])) {
                return Err(KvError::server_reply("CROSSSLOT", None));
            }
            let reply = match command.name() {
                "MGET" => Reply::Array(keys.iter().cloned().map(Reply::Data).collect()),
                _ => Reply::Int(keys.len() as i64),
            };
            self.sent.lock().unwrap().push(command);
            Ok(reply)
        }

        fn is_cluster(&self) -> bool {
            self.cluster
        }
    }

    #[tokio::test]
    async fn batches_hold_one_slot_on_a_cluster_and_at_most_1000_keys_everywhere() {
        for cluster in [false, true] {
            let conn = Arc::new(Recorder {
                cluster,
                ..Recorder::default()
            });
            let store =
                ServerStorage::new(conn.clone(), StorageOptions::builder().build().unwrap());
            let keys: Vec<String> = (0..2500).map(|i| format!("k{i}")).collect();
            let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
            let values = store.get_many(&refs).await.unwrap();
            for (k, v) in refs.iter().zip(values) {
                assert_eq!(v.unwrap(), store.key(k).unwrap(), "in the caller's order");
            }
            assert_eq!(store.delete_many(&refs).await.unwrap(), 2500);
            let sent = conn.sent.lock().unwrap();
            assert!(sent.iter().all(|c| c.args().len() <= MAX_KEYS_PER_COMMAND));
            if !cluster {
                // 2500 keys on one server: 1000 + 1000 + 500, for MGET and for DEL.
                assert_eq!(sent.len(), 6);
            }
        }
    }
}
