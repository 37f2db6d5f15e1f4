//! One-time codes: a password-reset token redeemed by `take` (of every concurrent
//! redemption — a double click, a replayed link — exactly one gets the user), and an
//! email OTP checked by `delete_if_value`, so a wrong guess consumes nothing.
//!
//! ```sh
//! REDIS_URL=redis://127.0.0.1:6379 cargo run -p rustauth-kv --example one_time_codes
//! REDIS_URL=redis://127.0.0.1:6379 RUSTAUTH_KV_BACKEND=fred \
//!     cargo run -p rustauth-kv --features fred --example one_time_codes
//! REDIS_URL=memory:// cargo run -p rustauth-kv --example one_time_codes
//! ```

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustauth_kv::{Kv, KvError};

#[tokio::main]
async fn main() -> Result<(), KvError> {
    let kv = Kv::from_env().await?;
    println!("connected: {}", kv.backend());
    let storage = kv.storage();

    // "Forgot password": the link carries a random token; the store maps it to the user.
    let token = format!("reset-{}", unique());
    let key = format!("password-reset:{token}");
    storage
        .set(&key, "user-42".into(), Some(Duration::from_secs(15 * 60)))
        .await?;

    // Eight redemptions of the same link at once: `take` is GETDEL, one of them wins.
    let mut redemptions = Vec::new();
    for _ in 0..8 {
        let (storage, key) = (storage.clone(), key.clone());
        redemptions.push(tokio::spawn(async move { storage.take(&key).await }));
    }
    let mut winners = Vec::new();
    for redemption in redemptions {
        if let Some(user) = redemption.await.expect("redemption task")? {
            winners.push(user);
        }
    }
    assert_eq!(winners.len(), 1, "exactly one redemption gets the token");
    assert_eq!(winners[0].as_ref(), b"user-42");
    println!("reset token: 1 of 8 concurrent redemptions got user-42");

    // An email OTP: delete it only if the submitted code matches, atomically.
    let otp_key = format!("email-otp:{}@example.com", unique());
    storage
        .set(&otp_key, "731904".into(), Some(Duration::from_secs(300)))
        .await?;
    assert!(!storage.delete_if_value(&otp_key, b"000000").await?);
    assert!(
        storage.get(&otp_key).await?.is_some(),
        "a wrong guess consumes nothing"
    );
    assert!(storage.delete_if_value(&otp_key, b"731904").await?);
    assert!(
        !storage.delete_if_value(&otp_key, b"731904").await?,
        "no replay"
    );
    println!("email otp: wrong code refused, right code accepted once");

    kv.close().await?;
    println!("ok: one-time codes on {}", kv.backend());
    Ok(())
}

/// A per-run suffix, standing in for a random token (use a CSPRNG in an app).
fn unique() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}
