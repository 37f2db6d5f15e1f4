//! Health checks on each server backend, against servers the case starts: `PING`
//! latency, `INFO server` compared with the binary's own `--version`, the cluster mode,
//! and the lock keys' hash slots as a real cluster node computes them.

use std::time::Duration;

use kv_contract::health::{ServerKind, ServerMode, Version};
use kv_contract::{KeyCodec, Prefix, ServerHealth};

use super::connection::{options, start};
use crate::context::BackendKind;
use crate::probe::Probe;
use crate::server::ServerConfig;

/// The version `redis-server --version` prints (`... v=7.0.15 ...`).
fn binary_identity() -> (ServerKind, Version) {
    let (name, version) = crate::server::binary_identity().expect("a server binary");
    let kind = match name.as_str() {
        "Redis" => ServerKind::Redis,
        "Valkey" => ServerKind::Valkey,
        other => panic!("the server binary calls itself {other:?}"),
    };
    (kind, Version::parse(&version).expect("a version"))
}

/// `ping` reports a latency, `server_info` the server, version and mode the binary and
/// the configuration say; a cluster node reports `Cluster` mode and hashes both lock keys
/// of every name, under awkward prefixes too, to the slot kv-contract computes.
pub async fn ping_and_server_info(kind: BackendKind) {
    let server = start(ServerConfig::default()).await;
    let conn = kind
        .connect(&options(&server.url(), Duration::from_secs(2)))
        .await
        .unwrap();
    let latency = conn.ping().await.unwrap();
    assert!(latency < Duration::from_secs(1), "{latency:?}");
    let info = conn.server_info().await.unwrap();
    let (server_kind, version) = binary_identity();
    assert_eq!(info.kind, server_kind);
    assert_eq!(info.version, version);
    assert_eq!(info.mode, ServerMode::Standalone);
    info.check_supported()
        .expect("the test server is supported");

    let node = start(ServerConfig {
        cluster: true,
        ..Default::default()
    })
    .await;
    let conn = kind
        .connect(&options(&node.url(), Duration::from_secs(2)))
        .await
        .expect("a cluster node passes the connect check");
    assert_eq!(conn.server_info().await.unwrap().mode, ServerMode::Cluster);
    let Probe::Server(mut raw) = Probe::connect(&node.url()).await else {
        unreachable!("a server probe")
    };
    for prefix in ["rustauth:", "{tenant-7}:", "a{b:", "x}y:"] {
        let codec = KeyCodec::new(Prefix::new(prefix).unwrap());
        for name in ["nightly-cleanup", "ünï:*?", "a"] {
            let keys = codec.lock_keys(name).unwrap();
            let mut slots = Vec::new();
            for key in [&keys.lock, &keys.fence] {
                let slot: u16 = redis::cmd("CLUSTER")
                    .arg("KEYSLOT")
                    .arg(key)
                    .query_async(&mut raw)
                    .await
                    .unwrap();
                assert_eq!(slot, kv_contract::slot::key_slot(key), "{prefix} {name}");
                slots.push(slot);
            }
            assert_eq!(slots[0], slots[1], "lock and counter share a slot");
        }
    }
}
