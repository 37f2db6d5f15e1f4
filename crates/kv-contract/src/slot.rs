//! Redis Cluster hash slots: which slot a key belongs to, and how to split a batch of keys
//! into single-slot groups.
//!
//! A Redis Cluster refuses (`CROSSSLOT`) a multi-key command or script whose keys hash to
//! different slots. Stores that batch keys they do not control (a user's session tokens,
//! say) split the batch with [`group_by_slot`] when the connection reports
//! [`Connection::is_cluster`](crate::Connection::is_cluster), and send one command per
//! group; on a single server the whole batch is one group. [`join_all`] sends the groups
//! concurrently, so the latency stays one round trip either way.
//!
//! The slot function is Redis's own: CRC16 (XMODEM) of the key, or of its hash tag — the
//! bytes between the first `{` and the first `}` after it, when there is at least one —
//! modulo 16384.

use std::future::Future;
use std::pin::Pin;
use std::task::Poll;

use crate::error::KvResult;

/// The number of hash slots of a Redis Cluster.
pub const SLOTS: u16 = 16384;

/// CRC16-CCITT (XMODEM): polynomial 0x1021, initial value 0, no reflection — the checksum
/// Redis Cluster hashes keys with.
pub fn crc16(bytes: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &b in bytes {
        crc ^= u16::from(b) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// The part of `key` that is hashed: its hash tag when it has a non-empty one, else the
/// whole key (Redis's `keyHashSlot` rules).
pub fn hash_tag(key: &[u8]) -> &[u8] {
    let Some(open) = key.iter().position(|&b| b == b'{') else {
        return key;
    };
    match key[open + 1..].iter().position(|&b| b == b'}') {
        Some(len) if len > 0 => &key[open + 1..open + 1 + len],
        _ => key,
    }
}

/// The hash slot of `key`, in `0..16384`.
pub fn key_slot(key: &[u8]) -> u16 {
    crc16(hash_tag(key)) % SLOTS
}

/// Splits `keys` into groups of indices whose keys share a hash slot, each group in the
/// order of `keys`, groups in order of their first key. With `cluster` false the whole
/// batch is one group (a single server accepts any keys together); an empty batch has no
/// group.
pub fn group_by_slot<K: AsRef<[u8]>>(keys: &[K], cluster: bool) -> Vec<Vec<usize>> {
    if keys.is_empty() {
        return Vec::new();
    }
    if !cluster {
        return vec![(0..keys.len()).collect()];
    }
    let mut groups: Vec<(u16, Vec<usize>)> = Vec::new();
    for (i, k) in keys.iter().enumerate() {
        let slot = key_slot(k.as_ref());
        match groups.iter_mut().find(|(s, _)| *s == slot) {
            Some((_, g)) => g.push(i),
            None => groups.push((slot, vec![i])),
        }
    }
    groups.into_iter().map(|(_, g)| g).collect()
}

/// The most keys one command carries, on any topology: a multi-key `MGET`/`DEL`/`UNLINK`
/// or a batch script is split into commands of at most this many keys. It keeps every
/// request far below managed services' argument caps (ElastiCache Serverless: 3,999) and
/// bounds the time one command holds a single-threaded server.
pub const MAX_KEYS_PER_COMMAND: usize = 1000;

/// [`group_by_slot`], each group then cut into runs of at most `max` keys (in order):
/// the batches to send, one command each. `max` of 0 is read as 1.
pub fn batches<K: AsRef<[u8]>>(keys: &[K], cluster: bool, max: usize) -> Vec<Vec<usize>> {
    let max = max.max(1);
    group_by_slot(keys, cluster)
        .into_iter()
        .flat_map(|g| g.chunks(max).map(<[usize]>::to_vec).collect::<Vec<_>>())
        .collect()
}

/// A boxed future of one group's command.
pub type GroupFuture<'a, T> = Pin<Box<dyn Future<Output = KvResult<T>> + Send + 'a>>;

/// Runs `futures` concurrently and returns their results in order, or the first error
/// (the others still run to completion or are dropped with the call; none is retried).
///
/// On a multiplexed connection the commands are written back to back, so one batch costs
/// one round trip of latency however many slots it spans.
pub async fn join_all<T>(futures: Vec<GroupFuture<'_, T>>) -> KvResult<Vec<T>> {
    let mut pending: Vec<Option<GroupFuture<'_, T>>> = futures.into_iter().map(Some).collect();
    let mut done: Vec<Option<T>> = pending.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut all_ready = true;
        for (slot, out) in pending.iter_mut().zip(done.iter_mut()) {
            let Some(fut) = slot else { continue };
            match fut.as_mut().poll(cx) {
                Poll::Ready(Ok(v)) => {
                    *out = Some(v);
                    *slot = None;
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => all_ready = false,
            }
        }
        if all_ready {
            Poll::Ready(Ok(()))
        } else {
            Poll::Pending
        }
    })
    .await?;
    Ok(done.into_iter().flatten().collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn crc16_check_value() {
        // The XMODEM check value from the CRC catalogue, also quoted in the Cluster spec.
        assert_eq!(crc16(b"123456789"), 0x31C3);
    }

    #[test]
    fn slots_match_redis() {
        // Values from `CLUSTER KEYSLOT` on a cluster-enabled redis-server 7.0.
        let table: &[(&[u8], u16)] = &[
            (b"foo", 12182),
            (b"bar", 5061),
            (b"hello", 866),
            (b"123456789", 12739),
            (b"{user1000}.following", 3443),
            (b"{user1000}.followers", 3443),
        ];
        for (key, slot) in table {
            assert_eq!(key_slot(key), *slot, "{}", String::from_utf8_lossy(key));
        }
    }

    #[test]
    fn hash_tag_rules() {
        let table: &[(&[u8], &[u8])] = &[
            (b"{user1000}.following", b"user1000"),
            (b"foo{}{bar}", b"foo{}{bar}"), // empty first tag: whole key
            (b"foo{{bar}}zap", b"{bar"),    // from the first { to the first } after it
            (b"foo{bar}{zap}", b"bar"),     // only the first tag counts
            (b"no-tag}{", b"no-tag}{"),
            (b"{", b"{"),
            (b"", b""),
        ];
        for (key, tag) in table {
            assert_eq!(hash_tag(key), *tag, "{}", String::from_utf8_lossy(key));
        }
    }

    #[test]
    fn grouping() {
        let keys = [&b"foo"[..], b"{foo}x", b"bar", b"{bar}y", b"foo"];
        assert_eq!(group_by_slot(&keys, true), vec![vec![0, 1, 4], vec![2, 3]]);
        assert_eq!(group_by_slot(&keys, false), vec![vec![0, 1, 2, 3, 4]]);
        assert!(group_by_slot::<&[u8]>(&[], true).is_empty());
        assert!(group_by_slot::<&[u8]>(&[], false).is_empty());
        assert_eq!(
            batches(&keys, true, 2),
            vec![vec![0, 1], vec![4], vec![2, 3]]
        );
        assert_eq!(
            batches(&keys, false, 2),
            vec![vec![0, 1], vec![2, 3], vec![4]]
        );
        assert_eq!(batches(&keys, false, 0).len(), 5);
    }

    proptest! {
        #[test]
        fn groups_partition_by_slot(keys in proptest::collection::vec(
            proptest::collection::vec(any::<u8>(), 0..12), 0..40)
        ) {
            let groups = group_by_slot(&keys, true);
            let mut seen: Vec<usize> = groups.iter().flatten().copied().collect();
            seen.sort();
            prop_assert_eq!(seen, (0..keys.len()).collect::<Vec<_>>());
            let mut slots = Vec::new();
            for g in &groups {
                let s = key_slot(&keys[g[0]]);
                prop_assert!(g.iter().all(|&i| key_slot(&keys[i]) == s));
                prop_assert!(g.windows(2).all(|w| w[0] < w[1]));
                slots.push(s);
            }
            let n = slots.len();
            slots.sort();
            slots.dedup();
            prop_assert_eq!(slots.len(), n, "one group per slot");
        }
    }

    #[tokio::test]
    async fn join_all_keeps_order_and_fails_fast() {
        let futs: Vec<GroupFuture<'_, u32>> = vec![
            Box::pin(async {
                tokio::task::yield_now().await;
                Ok(1)
            }),
            Box::pin(async { Ok(2) }),
        ];
        assert_eq!(join_all(futs).await.unwrap(), vec![1, 2]);
        let futs: Vec<GroupFuture<'_, u32>> = vec![
            Box::pin(async { Ok(1) }),
            Box::pin(async { Err(crate::KvError::unexpected("boom")) }),
        ];
        assert!(join_all(futs).await.is_err());
        assert!(join_all::<u32>(Vec::new()).await.unwrap().is_empty());
    }
}
