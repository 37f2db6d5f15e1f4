//! A user's devices: sign in on three, list them ("where you're signed in"), sign out one
//! picked from the list, then "sign out everywhere else" — on the per-user session index.
//!
//! ```sh
//! REDIS_URL=redis://127.0.0.1:6379 cargo run -p rustauth-kv --example user_devices
//! REDIS_URL=redis://127.0.0.1:6379 RUSTAUTH_KV_BACKEND=fred \
//!     cargo run -p rustauth-kv --features fred --example user_devices
//! REDIS_URL=memory:// cargo run -p rustauth-kv --example user_devices
//! ```
//!
//! Each session expires on its own at its `expires_at`; a revoked session is never
//! brought back by a late refresh.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustauth_kv::{Kv, KvError};

#[tokio::main]
async fn main() -> Result<(), KvError> {
    let kv = Kv::from_env().await?;
    println!("connected: {}", kv.backend());
    let sessions = kv.sessions();

    // A fresh user per run; tokens stand in for random session tokens.
    let run = unique();
    let user = format!("user-{run}");
    let week = SystemTime::now() + Duration::from_secs(7 * 86_400);
    for (device, days) in [("laptop", 7), ("phone", 3), ("tablet", 1)] {
        let expires_at = week - Duration::from_secs((7 - days) * 86_400);
        let data = format!(r#"{{"device":"{device}"}}"#);
        sessions
            .create(&user, &token(run, device), data.into(), expires_at)
            .await?;
    }

    let devices = sessions.list(&user).await?;
    assert_eq!(devices.len(), 3);
    for s in &devices {
        println!("signed in: {}", String::from_utf8_lossy(&s.value));
    }

    // "Sign out this device", picked from the list by its id (works with hashed tokens).
    let phone = devices
        .iter()
        .find(|s| s.value.as_ref() == br#"{"device":"phone"}"#)
        .expect("the phone is listed");
    assert!(sessions.delete_by_id(&phone.id).await?);
    assert!(sessions.get(&token(run, "phone")).await?.is_none());
    assert_eq!(sessions.count(&user).await?, 2);
    println!("revoked: phone");

    // "Sign out everywhere else", from the laptop.
    let revoked = sessions
        .revoke_all_except(&user, &token(run, "laptop"))
        .await?;
    assert_eq!(revoked, 1);
    let left = sessions.list(&user).await?;
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].value.as_ref(), br#"{"device":"laptop"}"#);
    println!("revoked others: {revoked}; left: laptop");

    sessions.revoke_all(&user).await?;
    kv.close().await?;
    println!("ok: user devices on {}", kv.backend());
    Ok(())
}

fn token(run: u128, device: &str) -> String {
    format!("token-{device}-{run}")
}

/// A per-run suffix, so a second run never meets the first one's sessions.
fn unique() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}
