//! A nightly cleanup job under a lock: four instances of the app wake up at the same
//! moment (as cron would start them), race for the lock `nightly-cleanup`, and exactly
//! one runs the job; the others skip. The winner holds a fencing token to pass to the
//! systems it writes, so a stale holder's writes can be refused.
//!
//! ```sh
//! REDIS_URL=redis://127.0.0.1:6379 cargo run -p rustauth-kv --example nightly_cleanup
//! REDIS_URL=redis://127.0.0.1:6379 RUSTAUTH_KV_BACKEND=fred \
//!     cargo run -p rustauth-kv --features fred --example nightly_cleanup
//! REDIS_URL=memory:// cargo run -p rustauth-kv --example nightly_cleanup
//! ```
//!
//! Each instance opens its own `Kv` from the environment, as separate processes would.
//! With `memory://` a store lives in one process, so the instances share one bundle
//! instead: a memory lock excludes tasks of one process, never other processes.

use std::sync::Arc;
use std::time::Duration;

use rustauth_kv::lock::{ExclusiveRun, LockExt, ReleaseOutcome};
use rustauth_kv::{Backend, Kv, KvError, SecondaryStorage};
use tokio::sync::Barrier;

const INSTANCES: usize = 4;

#[tokio::main]
async fn main() -> Result<(), KvError> {
    let first = Kv::from_env().await?;
    println!("connected: {}", first.backend());

    // Yesterday's leftovers: sign-ups whose email was never verified.
    for user in ["ann", "bob", "eve"] {
        first
            .storage()
            .set(&format!("pending-signup:{user}"), "{}".into(), None)
            .await?;
    }

    let barrier = Arc::new(Barrier::new(INSTANCES));
    let mut instances = Vec::new();
    for n in 0..INSTANCES {
        let kv = match first.backend() {
            Backend::Memory => first.clone(),
            _ => Kv::from_env().await?,
        };
        let barrier = barrier.clone();
        instances.push(tokio::spawn(async move {
            barrier.wait().await; // 03:00: every instance's scheduler fires at once
            let storage = kv.storage();
            let run = kv
                .lock()
                .run_exclusive(
                    "nightly-cleanup",
                    Duration::from_secs(60),
                    |guard| async move {
                        // Pass guard.fence() along with every write to other systems.
                        let deleted = cleanup(storage.as_ref()).await;
                        // Hold the lock a little longer, as a real job would run.
                        tokio::time::sleep(Duration::from_millis(500)).await;
                        (guard.fence(), deleted)
                    },
                )
                .await;
            kv.close().await?;
            Ok::<_, KvError>((n, run?))
        }));
    }

    let mut ran = Vec::new();
    for instance in instances {
        match instance.await.expect("instance task")? {
            (
                n,
                ExclusiveRun::Ran {
                    output: (fence, deleted),
                    release,
                    ..
                },
            ) => {
                let deleted = deleted?;
                assert_eq!(release?, ReleaseOutcome::Released);
                println!("instance {n}: ran the cleanup, fence {fence}, deleted {deleted}");
                ran.push((fence, deleted));
            }
            (n, ExclusiveRun::Skipped { expires_in }) => {
                println!("instance {n}: skipped, lock held ({expires_in:?} left)");
            }
            (n, _) => panic!("instance {n}: unexpected outcome"),
        }
    }
    assert_eq!(ran.len(), 1, "exactly one instance runs the job");
    let (fence, deleted) = ran[0];
    assert_eq!(deleted, 3);
    let left = first.storage().list_keys().await?;
    assert!(!left.iter().any(|k| k.starts_with("pending-signup:")));

    first.close().await?;
    println!(
        "ok: 1 of {INSTANCES} instances ran the cleanup on {} (fence {fence})",
        first.backend()
    );
    Ok(())
}

/// The job: delete every unverified sign-up.
async fn cleanup(storage: &dyn SecondaryStorage) -> Result<u64, KvError> {
    let keys = storage.list_keys().await?;
    let stale: Vec<&str> = keys
        .iter()
        .map(String::as_str)
        .filter(|k| k.starts_with("pending-signup:"))
        .collect();
    storage.delete_many(&stale).await
}
