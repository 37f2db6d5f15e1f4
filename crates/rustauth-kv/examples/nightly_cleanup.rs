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
use tokio::sync::{Barrier, Semaphore};

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
    // Each instance that found the lock held adds a permit; the job holds the lock until
    // all of them have tried (a real job runs for minutes, far longer than the race).
    let tried = Arc::new(Semaphore::new(0));
    let mut instances = Vec::new();
    for n in 0..INSTANCES {
        let kv = match first.backend() {
            Backend::Memory => first.clone(),
            _ => Kv::from_env().await?,
        };
        let barrier = barrier.clone();
        let tried = tried.clone();
        instances.push(tokio::spawn(async move {
            barrier.wait().await; // 03:00: every instance's scheduler fires at once
            let storage = kv.storage();
            let others = tried.clone();
            let run = kv
                .lock()
                .run_exclusive(
                    "nightly-cleanup",
                    Duration::from_secs(60),
                    |guard| async move {
                        // Pass guard.fence() along with every write to other systems.
                        let deleted = cleanup(storage.as_ref()).await;
                        let all_tried = others.acquire_many(INSTANCES as u32 - 1);
                        let all_tried = tokio::time::timeout(Duration::from_secs(30), all_tried);
                        assert!(all_tried.await.is_ok(), "the other instances never tried");
                        (guard.fence(), deleted)
                    },
                )
                .await;
            if matches!(run, Ok(ExclusiveRun::Skipped { .. })) {
                tried.add_permits(1);
            }
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
