//! What both backends share about a Redis Cluster beyond slots: which primaries there
//! are (from `CLUSTER NODES`), and a `SCAN` that walks every primary in turn.
//!
//! A cluster `SCAN` covers one node. [`scan_page`] walks the primaries one after the
//! other, sorted by address; the [`ScanCursor`] holds the index of the node being
//! scanned *and* a fingerprint of the slot map it was read under (every primary's
//! address and slot fields, migration markers included). When a page finds another
//! fingerprint — a failover, a resharding, a node added — the walk starts again from the
//! first primary of the new map. Keys may then be returned twice (callers deduplicate:
//! `list_keys` keeps a set, `DEL` counts only existing keys), but a key that existed
//! throughout is not missed because of a change that shows in the map between two pages.
//!
//! The residual gap, documented in `docs/operations.md`: keys moved by `MIGRATE` while a
//! slot stays marked migrating for the whole walk, from a primary not yet scanned to one
//! already scanned, are not seen by that walk. The backends only supply the two round
//! trips: `CLUSTER NODES` on any node and `SCAN` on a given primary.

use std::future::Future;

use bytes::Bytes;

use crate::error::{KvError, KvResult};
use crate::wire::{Command, Reply, ScanCursor, ScanPage};

/// One primary of a cluster, as `CLUSTER NODES` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterPrimary {
    /// The address clients connect to (`ip` field of `CLUSTER NODES`).
    pub host: String,
    /// The client port.
    pub port: u16,
    /// One slot this primary serves (a backend may route by it), if it serves any.
    pub first_slot: Option<u16>,
}

/// The primaries of a cluster with slots, sorted by address, and a fingerprint of the
/// slot map they were read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterShape {
    /// Primaries serving at least one slot, sorted by `host:port`.
    pub primaries: Vec<ClusterPrimary>,
    /// FNV-1a of every primary's address and slot fields (migration markers included).
    pub fingerprint: u32,
}

/// `CLUSTER NODES`, the command a backend sends (to any node) for [`ClusterShape::parse`].
pub fn cluster_nodes_command() -> Command {
    Command::new("CLUSTER").arg("NODES")
}

fn fnv1a(bytes: &[u8], mut h: u32) -> u32 {
    for &b in bytes {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

impl ClusterShape {
    /// Reads the reply of `CLUSTER NODES`: one line per node,
    /// `<id> <ip:port@cport[,hostname]> <flags> <master> <ping> <pong> <epoch> <link> <slot>...`.
    /// Primaries that failed, have no address or serve no slot are left out.
    pub fn parse(text: &str) -> KvResult<ClusterShape> {
        let mut primaries: Vec<(String, ClusterPrimary)> = Vec::new();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.len() < 8 {
                return Err(KvError::unexpected(format!(
                    "CLUSTER NODES line with {} fields",
                    fields.len()
                )));
            }
            let flags: Vec<&str> = fields[2].split(',').collect();
            if !flags.contains(&"master")
                || flags
                    .iter()
                    .any(|f| matches!(*f, "fail" | "noaddr" | "handshake"))
            {
                continue;
            }
            let slots = &fields[8..];
            if slots.iter().all(|s| s.starts_with('[')) {
                continue; // no slot served (at most migration markers)
            }
            let addr = fields[1].split(['@', ',']).next().unwrap_or_default();
            let Some((host, port)) = addr.rsplit_once(':') else {
                return Err(KvError::unexpected(format!(
                    "CLUSTER NODES address {addr:?} has no port"
                )));
            };
            let port: u16 = port.parse().map_err(|_| {
                KvError::unexpected(format!("CLUSTER NODES address {addr:?}: bad port"))
            })?;
            let first_slot = slots
                .iter()
                .find(|s| !s.starts_with('['))
                .and_then(|s| s.split('-').next()?.parse().ok());
            let canon = format!("{host}:{port} {}", slots.join(" "));
            primaries.push((
                canon,
                ClusterPrimary {
                    host: host.to_owned(),
                    port,
                    first_slot,
                },
            ));
        }
        primaries.sort_by(|a, b| (&a.1.host, a.1.port).cmp(&(&b.1.host, b.1.port)));
        let fingerprint = primaries.iter().fold(0x811c_9dc5, |h, (canon, _)| {
            fnv1a(canon.as_bytes(), fnv1a(b"\n", h))
        });
        Ok(ClusterShape {
            primaries: primaries.into_iter().map(|(_, p)| p).collect(),
            fingerprint,
        })
    }

    /// Reads a `CLUSTER NODES` reply (a bulk string).
    pub fn from_reply(reply: Reply) -> KvResult<ClusterShape> {
        let text = reply
            .into_opt_bytes()?
            .ok_or_else(|| KvError::unexpected("CLUSTER NODES replied nil"))?;
        ClusterShape::parse(&String::from_utf8_lossy(&text))
    }
}

/// Bits of [`ScanCursor::node`] holding the node index; the fingerprint sits above.
const INDEX_BITS: u32 = 16;

/// The cursor of a walk to begin again from the first primary.
const RESTART: ScanCursor = ScanCursor {
    node: usize::MAX,
    cursor: u64::MAX,
};

fn encode(fingerprint: u32, index: usize) -> usize {
    (((fingerprint as u64) << INDEX_BITS) | index as u64) as usize
}

fn decode(node: usize) -> (u32, usize) {
    let n = node as u64;
    (
        (n >> INDEX_BITS) as u32,
        (n & ((1 << INDEX_BITS) - 1)) as usize,
    )
}

/// One page of a SCAN over every primary: reads the shape with `shape`, restarts the walk
/// if it changed since `from` was issued, sends `SCAN` to the current primary with
/// `scan_on` and says where to go next. See the module docs.
pub async fn scan_page<S, SF, N, NF>(
    from: ScanCursor,
    pattern: &[u8],
    count: u32,
    read_shape: S,
    scan_on: N,
) -> KvResult<ScanPage>
where
    S: Fn() -> SF,
    SF: Future<Output = KvResult<ClusterShape>>,
    N: FnOnce(ClusterPrimary, Command) -> NF,
    NF: Future<Output = KvResult<Reply>>,
{
    let shape = read_shape().await?;
    let fresh = from == ScanCursor::default() || from == RESTART;
    let (fingerprint, index) = decode(from.node);
    // A walk begun under another slot map starts again (the fingerprint is truncated to
    // what `usize` holds on this target, on both sides of the comparison).
    let (index, cursor) = if fresh || decode(encode(shape.fingerprint, 0)).0 != fingerprint {
        (0, 0)
    } else {
        (index, from.cursor)
    };
    let Some(primary) = shape.primaries.get(index).cloned() else {
        if shape.primaries.is_empty() {
            return Err(KvError::unexpected(
                "CLUSTER NODES lists no primary serving slots",
            ));
        }
        // The map shrank under the same fingerprint: impossible, but never loop.
        return Ok(ScanPage {
            keys: Vec::new(),
            next: None,
        });
    };
    let cmd = Command::new("SCAN")
        .arg(Bytes::from(cursor.to_string()))
        .arg("MATCH")
        .arg(Bytes::copy_from_slice(pattern))
        .arg("COUNT")
        .int_arg(count.into());
    let (next_cursor, keys) = crate::wire::parse_scan_reply(scan_on(primary, cmd).await?)?;
    let next = if next_cursor != 0 {
        Some((index, next_cursor))
    } else if index + 1 < shape.primaries.len() {
        Some((index + 1, 0))
    } else if read_shape().await?.fingerprint != shape.fingerprint {
        // The map changed while the last primary was scanned: walk the new one.
        return Ok(ScanPage {
            keys,
            next: Some(RESTART),
        });
    } else {
        None
    };
    Ok(ScanPage {
        keys,
        next: next.map(|(i, c)| ScanCursor {
            node: encode(shape.fingerprint, i),
            cursor: c,
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const NODES: &str = "\
07c37dfeb235213a872192d90877d0cd55635b91 127.0.0.1:30004@31004 slave e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca 0 1426238317239 4 connected
67ed2db8d677e59ec4a4cefb06858cf2a1a89fa1 127.0.0.1:30002@31002 master - 0 1426238316232 2 connected 5461-10922
292f8b365bb7edb5e285caf0b7e6ddc7265d2f4f 127.0.0.1:30003@31003 master - 0 1426238318243 3 connected 10923-16383
e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca 127.0.0.1:30001@31001 myself,master - 0 0 1 connected 0-5460
6ec23923021cf3ffec47632106199cb7f496ce01 127.0.0.1:30005@31005 master,fail - 0 1426238316232 5 connected
";

    #[test]
    fn parses_primaries_sorted_with_a_slot() {
        let shape = ClusterShape::parse(NODES).unwrap();
        let addrs: Vec<_> = shape
            .primaries
            .iter()
            .map(|p| (p.port, p.first_slot))
            .collect();
        assert_eq!(
            addrs,
            [(30001, Some(0)), (30002, Some(5461)), (30003, Some(10923))]
        );
    }

    #[test]
    fn the_fingerprint_follows_the_slot_map_only() {
        let a = ClusterShape::parse(NODES).unwrap().fingerprint;
        // Ping times and epochs change all the time: not part of the map.
        let pinged = NODES.replace("1426238318243", "1426238399999");
        assert_eq!(ClusterShape::parse(&pinged).unwrap().fingerprint, a);
        let migrating = NODES.replace(
            "0-5460",
            "0-5460 [42->-67ed2db8d677e59ec4a4cefb06858cf2a1a89fa1]",
        );
        assert_ne!(ClusterShape::parse(&migrating).unwrap().fingerprint, a);
        let moved = NODES
            .replace("0-5460", "0-5459")
            .replace("5461-10922", "5460-10922");
        assert_ne!(ClusterShape::parse(&moved).unwrap().fingerprint, a);
    }

    #[test]
    fn cursor_round_trip() {
        for (fp, i) in [(0, 0), (1, 2), (u32::MAX, 65535)] {
            let (f, j) = decode(encode(fp, i));
            assert_eq!(j, i);
            assert_eq!(f, decode(encode(fp, 0)).0);
        }
    }

    fn reply(cursor: u64, keys: &[&str]) -> Reply {
        Reply::Array(vec![
            Reply::Data(Bytes::from(cursor.to_string())),
            Reply::Array(
                keys.iter()
                    .map(|k| Reply::Data(Bytes::from(k.to_string())))
                    .collect(),
            ),
        ])
    }

    #[tokio::test]
    async fn walks_every_primary_and_restarts_on_a_new_map() {
        let shape = ClusterShape::parse(NODES).unwrap();
        let mut from = ScanCursor::default();
        let mut seen = Vec::new();
        loop {
            let page = scan_page(
                from,
                b"*",
                10,
                || async { Ok(shape.clone()) },
                |p, _| async move { Ok(reply(0, &[&p.port.to_string()])) },
            )
            .await
            .unwrap();
            seen.extend(page.keys);
            match page.next {
                Some(n) => from = n,
                None => break,
            }
        }
        assert_eq!(seen, ["30001", "30002", "30003"]);
        // Mid-walk (on the third node), the map changes: the next page is node 0's.
        let mid = ScanCursor {
            node: encode(shape.fingerprint, 2),
            cursor: 77,
        };
        let changed = ClusterShape::parse(&NODES.replace("0-5460", "0-5459")).unwrap();
        let page = scan_page(
            mid,
            b"*",
            10,
            || async { Ok(changed.clone()) },
            |p, c| async move {
                assert_eq!(c.args()[0], Bytes::from_static(b"0"));
                Ok(reply(0, &[&p.port.to_string()]))
            },
        )
        .await
        .unwrap();
        assert_eq!(page.keys, [Bytes::from_static(b"30001")]);
        assert_eq!(page.next.map(|n| decode(n.node).1), Some(1));
    }
}
