//! Two `Kv` bundles over one keyspace and one fresh prefix: `a` writes, `b` reads.

use rustauth_kv::{Backend, Kv, KvOptions};
use tests_conformance::context::{server_target, unique_prefix, BackendKind, Topology};
use tests_conformance::probe::Probe;

/// One case's bundles and raw probe.
pub(crate) struct Pair {
    pub(crate) a: Kv,
    pub(crate) b: Kv,
    pub(crate) prefix: String,
    pub(crate) probe: Probe,
}

fn backend(kind: BackendKind) -> Backend {
    kind.facade_backend()
}

impl Pair {
    pub(crate) async fn new(topology: Topology, case: &str) -> Pair {
        let prefix = unique_prefix(case);
        if !topology.needs_server() {
            let a = Kv::memory_with(
                KvOptions::builder()
                    .memory()
                    .prefix(&prefix)
                    .build()
                    .unwrap(),
            );
            let probe = Probe::Memory(a.memory_keyspace().unwrap().clone());
            return Pair {
                b: a.clone(),
                a,
                prefix,
                probe,
            };
        }
        let (url, probe) = server_target(topology).await;
        let connect = |kind| {
            let options = KvOptions::builder()
                .url(&url)
                .backend(backend(kind))
                .prefix(&prefix)
                .build()
                .unwrap();
            Kv::connect_with(options)
        };
        let a = connect(topology.a).await.expect("connect a");
        let b = connect(topology.b).await.expect("connect b");
        Pair {
            a,
            b,
            prefix,
            probe,
        }
    }

    pub(crate) fn key(&self, rest: &str) -> Vec<u8> {
        format!("{}{rest}", self.prefix).into_bytes()
    }
}

/// One `#[tokio::test]` per case and topology: memory, standalone, cluster and Sentinel,
/// each backend alone and the two mixed (`a` writes with one client, `b` reads with the
/// other).
macro_rules! per_topology {
    ($($case:ident),* $(,)?) => {
        $(
            mod $case {
                use tests_conformance::context::Topology;
                #[tokio::test]
                async fn memory() { super::$case(Topology::MEMORY).await }
                #[tokio::test]
                async fn redis() { super::$case(Topology::REDIS).await }
                #[tokio::test]
                async fn fred() { super::$case(Topology::FRED).await }
                #[tokio::test]
                async fn redis_then_fred() { super::$case(Topology::REDIS_FRED).await }
                #[tokio::test]
                async fn fred_then_redis() { super::$case(Topology::FRED_REDIS).await }
                #[tokio::test]
                async fn redis_cluster() { super::$case(Topology::REDIS_CLUSTER).await }
                #[tokio::test]
                async fn fred_cluster() { super::$case(Topology::FRED_CLUSTER).await }
                #[tokio::test]
                async fn redis_then_fred_cluster() {
                    super::$case(Topology::REDIS_FRED_CLUSTER).await
                }
                #[tokio::test]
                async fn redis_sentinel() { super::$case(Topology::REDIS_SENTINEL).await }
                #[tokio::test]
                async fn fred_sentinel() { super::$case(Topology::FRED_SENTINEL).await }
                #[tokio::test]
                async fn fred_then_redis_sentinel() {
                    super::$case(Topology::FRED_REDIS_SENTINEL).await
                }
            }
        )*
    };
}
pub(crate) use per_topology;
