//! Running one case: in its own task (so a panic is caught), under a time limit, with the
//! server's log tail attached to any failure.

use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

use crate::context::{BackendKind, Ctx, Topology};
use crate::server;

/// A boxed case future.
pub type CaseFuture = Pin<Box<dyn Future<Output = ()> + Send>>;
/// A storage case: runs on a [`Ctx`].
pub type StorageCase = fn(Ctx) -> CaseFuture;
/// A connection case: runs for one server backend.
pub type ConnectionCase = fn(BackendKind) -> CaseFuture;

/// No case may take longer than this; a hung case fails instead of hanging the suite.
pub const CASE_TIMEOUT: Duration = Duration::from_secs(300);

macro_rules! registry {
    ($const:ident, $ty:ty, $($module:ident :: $name:ident),* $(,)?) => {
        /// Every case of this kind, by name, in the order listed.
        pub const $const: &[(&str, $ty)] = &[
            $((stringify!($name), |x| Box::pin($crate::cases::$module::$name(x)))),*
        ];
    };
}
macro_rules! storage_registry {
    ($($t:tt)*) => { registry!(STORAGE_CASES, StorageCase, $($t)*); };
}
macro_rules! connection_registry {
    ($($t:tt)*) => { registry!(CONNECTION_CASES, ConnectionCase, $($t)*); };
}
macro_rules! cluster_registry {
    ($($t:tt)*) => { registry!(CLUSTER_CASES, ConnectionCase, $($t)*); };
}
crate::for_each_storage_case!(storage_registry);
crate::for_each_cluster_case!(cluster_registry);
crate::for_each_connection_case!(connection_registry);
macro_rules! sentinel_registry {
    ($($t:tt)*) => { registry!(SENTINEL_CASES, ConnectionCase, $($t)*); };
}
crate::for_each_sentinel_case!(sentinel_registry);

fn panic_text(e: tokio::task::JoinError) -> String {
    if e.is_panic() {
        let p = e.into_panic();
        p.downcast_ref::<String>()
            .cloned()
            .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "panic with a non-string payload".into())
    } else {
        format!("case task ended: {e}")
    }
}

async fn run(
    fut: CaseFuture,
    log_tail: impl FnOnce() -> Option<String>,
) -> Result<Duration, String> {
    let started = Instant::now();
    let outcome = tokio::time::timeout(CASE_TIMEOUT, tokio::spawn(fut)).await;
    let error = match outcome {
        Ok(Ok(())) => return Ok(started.elapsed()),
        Ok(Err(e)) => panic_text(e),
        Err(_) => format!("did not finish within {CASE_TIMEOUT:?}"),
    };
    Err(match log_tail() {
        // The failure text last, so the end of a long output says what failed.
        Some(tail) if !tail.is_empty() => {
            format!("\n--- redis-server log tail ---\n{tail}\n--- failure ---\n{error}")
        }
        _ => error,
    })
}

/// Runs a storage case on `topology`; its duration, or the failure text.
pub async fn storage(
    topology: Topology,
    name: &str,
    case: StorageCase,
) -> Result<Duration, String> {
    let name = name.to_owned();
    let fut: CaseFuture = Box::pin(async move {
        let ctx = Ctx::new(topology, &name).await;
        case(ctx).await
    });
    run(fut, || {
        if topology.is_sentinel() {
            return crate::sentinel::shared_log_tail();
        }
        if topology.cluster {
            return crate::cluster::shared_log_tail();
        }
        topology
            .needs_server()
            .then(|| server::shared().log_tail())
            .flatten()
    })
    .await
}

/// Runs a connection case for `backend`; its duration, or the failure text.
pub async fn connection(backend: BackendKind, case: ConnectionCase) -> Result<Duration, String> {
    run(case(backend), || None).await
}

/// For `#[test]`s: runs a storage case and panics with the failure text.
pub async fn expect_storage(topology: Topology, name: &str, case: StorageCase) {
    if let Err(e) = storage(topology, name, case).await {
        panic!("{name} [{}] failed: {e}", topology.name());
    }
}

/// For `#[test]`s: runs a connection case and panics with the failure text.
pub async fn expect_connection(backend: BackendKind, name: &str, case: ConnectionCase) {
    if let Err(e) = connection(backend, case).await {
        panic!("{name} [{}] failed: {e}", backend.name());
    }
}

/// Held by the cases that start a multi-process deployment of their own (own-cluster
/// cases, Sentinel failovers), so they run one at a time: on 2 cores, two of them at once made sentinels judge a healthy new
/// primary down and fail over a second time.
pub static HEAVY: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
