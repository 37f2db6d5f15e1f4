//! [`ClusterGuard`]: a connection wrapper that makes a single server behave, for the
//! commands' *keys*, like a Redis Cluster: it reports [`Connection::is_cluster`], so
//! stores split their batches by hash slot, and it refuses — with the cluster's own
//! `CROSSSLOT` error — any multi-key command or script whose keys span two slots.
//!
//! Cases build one of their two stores over it, so every guarantee is checked both with
//! single-server batching and with per-slot batching, and a store that would be refused
//! by a real cluster fails here. It also counts the commands it forwards, for the
//! round-trip measurements.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use kv_contract::slot::key_slot;
use kv_contract::wire::{ScanCursor, ScanPage};
use kv_contract::{async_trait, Command, Connection, KvError, KvResult, Reply, SharedConnection};

/// A cluster-like view of a connection; see the module docs.
#[derive(Debug)]
pub struct ClusterGuard {
    inner: SharedConnection,
    commands: AtomicU64,
}

impl ClusterGuard {
    /// Wraps `inner`.
    pub fn new(inner: SharedConnection) -> Arc<Self> {
        Arc::new(ClusterGuard {
            inner,
            commands: AtomicU64::new(0),
        })
    }

    /// How many commands were forwarded so far.
    pub fn commands(&self) -> u64 {
        self.commands.load(Ordering::SeqCst)
    }
}

/// The key arguments of `cmd`, by the command's key specification (for the commands
/// rustauth-kv sends).
pub fn command_keys(cmd: &Command) -> Vec<&[u8]> {
    let args = cmd.args();
    match cmd.name() {
        "EVAL" | "EVALSHA" | "EVAL_RO" | "EVALSHA_RO" => {
            let n = args
                .get(1)
                .and_then(|n| std::str::from_utf8(n).ok())
                .and_then(|n| n.parse::<usize>().ok())
                .unwrap_or(0);
            args.iter().skip(2).take(n).map(|k| &k[..]).collect()
        }
        "DEL" | "UNLINK" | "MGET" | "EXISTS" | "TOUCH" => args.iter().map(|k| &k[..]).collect(),
        "MSET" => args.iter().step_by(2).map(|k| &k[..]).collect(),
        _ => cmd.routing_key().into_iter().collect(),
    }
}

#[async_trait]
impl Connection for ClusterGuard {
    async fn execute(&self, command: Command) -> KvResult<Reply> {
        let keys = command_keys(&command);
        if let Some(first) = keys.first() {
            let slot = key_slot(first);
            if keys.iter().any(|k| key_slot(k) != slot) {
                return Err(KvError::server_reply(
                    format!(
                        "CROSSSLOT Keys in request don't hash to the same slot ({} with {} keys)",
                        command.name(),
                        keys.len()
                    ),
                    None,
                ));
            }
        }
        self.commands.fetch_add(1, Ordering::SeqCst);
        self.inner.execute(command).await
    }

    async fn scan_page(&self, from: ScanCursor, pattern: &[u8], count: u32) -> KvResult<ScanPage> {
        self.inner.scan_page(from, pattern, count).await
    }

    fn is_cluster(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kv_contract::Bytes;

    #[test]
    fn keys_by_command() {
        let eval = Command::new("EVALSHA")
            .arg("sha")
            .int_arg(2)
            .key(Bytes::from_static(b"k1"))
            .key(Bytes::from_static(b"k2"))
            .arg("argv");
        assert_eq!(command_keys(&eval), vec![&b"k1"[..], b"k2"]);
        let del = Command::new("DEL")
            .key(Bytes::from_static(b"a"))
            .key(Bytes::from_static(b"b"));
        assert_eq!(command_keys(&del), vec![&b"a"[..], b"b"]);
        let hget = Command::new("HGET")
            .key(Bytes::from_static(b"h"))
            .arg("user_id");
        assert_eq!(command_keys(&hget), vec![&b"h"[..]]);
    }
}
