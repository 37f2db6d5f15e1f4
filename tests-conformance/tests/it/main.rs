//! One `#[tokio::test]` per conformance case and topology, generated from the case lists
//! in `tests_conformance` (so `cargo test` and `cargo xtask conformance` run the same
//! cases). Server-backed tests use `RUSTAUTH_REDIS_URL` or start their own
//! `redis-server`, and fail, saying how to provide one, when neither is possible.

mod examples;
mod wire;

use tests_conformance::run::{expect_connection, expect_storage};
use tests_conformance::{BackendKind, Topology};

macro_rules! storage_tests {
    ($($module:ident :: $name:ident),* $(,)?) => {$(
        mod $name {
            use super::*;
            async fn case(t: Topology) {
                expect_storage(t, stringify!($name), |c| {
                    Box::pin(tests_conformance::cases::$module::$name(c))
                })
                .await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn memory() { case(Topology::MEMORY).await }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn redis() { case(Topology::REDIS).await }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn redis_coalesced() { case(Topology::REDIS_COALESCED).await }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn fred() { case(Topology::FRED).await }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn redis_writes_fred_reads() { case(Topology::REDIS_FRED).await }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn fred_writes_redis_reads() { case(Topology::FRED_REDIS).await }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn redis_sentinel() { case(Topology::REDIS_SENTINEL).await }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn fred_sentinel() { case(Topology::FRED_SENTINEL).await }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn redis_sentinel_writes_fred_sentinel_reads() {
                case(Topology::REDIS_FRED_SENTINEL).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn fred_sentinel_writes_redis_sentinel_reads() {
                case(Topology::FRED_REDIS_SENTINEL).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn redis_cluster() { case(Topology::REDIS_CLUSTER).await }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn fred_cluster() { case(Topology::FRED_CLUSTER).await }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn redis_writes_fred_reads_cluster() { case(Topology::REDIS_FRED_CLUSTER).await }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn fred_writes_redis_reads_cluster() { case(Topology::FRED_REDIS_CLUSTER).await }
        }
    )*};
}

macro_rules! connection_tests {
    ($($module:ident :: $name:ident),* $(,)?) => {$(
        mod $name {
            use super::*;
            async fn case(b: BackendKind) {
                expect_connection(b, stringify!($name), |k| {
                    Box::pin(tests_conformance::cases::$module::$name(k))
                })
                .await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn redis() { case(BackendKind::Redis).await }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn redis_coalesced() { case(BackendKind::RedisCoalesced).await }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn fred() { case(BackendKind::Fred).await }
        }
    )*};
}

tests_conformance::for_each_storage_case!(storage_tests);
tests_conformance::for_each_connection_case!(connection_tests);

macro_rules! cluster_tests {
    ($($module:ident :: $name:ident),* $(,)?) => {$(
        mod $name {
            use super::*;
            async fn case(b: BackendKind) {
                expect_connection(b, stringify!($name), |k| {
                    Box::pin(tests_conformance::cases::$module::$name(k))
                })
                .await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn redis_cluster() { case(BackendKind::Redis).await }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn fred_cluster() { case(BackendKind::Fred).await }
        }
    )*};
}

tests_conformance::for_each_cluster_case!(cluster_tests);

macro_rules! sentinel_tests {
    ($($module:ident :: $name:ident),* $(,)?) => {$(
        mod $name {
            use super::*;
            async fn case(b: BackendKind) {
                expect_connection(b, stringify!($name), |k| {
                    Box::pin(tests_conformance::cases::$module::$name(k))
                })
                .await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn redis_sentinel() { case(BackendKind::RedisSentinel).await }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn fred_sentinel() { case(BackendKind::FredSentinel).await }
        }
    )*};
}

tests_conformance::for_each_sentinel_case!(sentinel_tests);
