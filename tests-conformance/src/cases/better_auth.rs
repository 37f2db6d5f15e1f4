//! Better Auth 1.7's storage contract and rate-limit record: `increment` on every
//! topology (raw bytes, `PTTL` set on creation only, errors, exact totals under races
//! from both backends) and [`BetterAuthRateLimiter`] sharing one record with another
//! writer.

use std::sync::Arc;
use std::time::Duration;

use kv_contract::rate_limit::{bucket_key, BetterAuthRateLimiter, RateLimitRule, RateLimiter};
use kv_contract::storage::StorageOptions;
use kv_contract::ErrorKind;
use tokio::task::JoinSet;

use crate::cases::assert_stored;
use crate::context::Ctx;
use crate::probe::Pttl;

/// `increment`: decimal string bytes, TTL on creation only, whole-second TTLs, and
/// INCR's errors (nothing written) for a non-integer, another type, an overflow.
pub async fn increment_sets_ttl_on_creation_only(ctx: Ctx) {
    let (a, b) = (&ctx.a, &ctx.b);
    assert_eq!(a.increment("c", Duration::from_secs(10)).await.unwrap(), 1);
    assert_stored(&ctx, "c", b"1", Some(9_000..=10_000)).await;
    // The second call's TTL is ignored: the window was fixed by the first.
    assert_eq!(b.increment("c", Duration::from_secs(100)).await.unwrap(), 2);
    assert_stored(&ctx, "c", b"2", Some(9_000..=10_000)).await;
    assert_eq!(b.get("c").await.unwrap().as_deref(), Some(&b"2"[..]));

    // An existing counter without expiry keeps having none.
    ctx.probe.set(&ctx.physical("p"), b"41", None).await;
    assert_eq!(a.increment("p", Duration::from_secs(10)).await.unwrap(), 42);
    assert_stored(&ctx, "p", b"42", None).await;
    // ...unless INCR makes it 1 (it was 0): then EXPIRE runs, as upstream.
    ctx.probe.set(&ctx.physical("z"), b"0", None).await;
    assert_eq!(b.increment("z", Duration::from_secs(5)).await.unwrap(), 1);
    assert_stored(&ctx, "z", b"1", Some(4_000..=5_000)).await;
    ctx.probe.set(&ctx.physical("neg"), b"-3", None).await;
    assert_eq!(
        a.increment("neg", Duration::from_secs(5)).await.unwrap(),
        -2
    );

    // TTLs Better Auth throws on: rejected before I/O, nothing created.
    for bad in [
        Duration::ZERO,
        Duration::from_millis(1500),
        Duration::from_millis(10),
    ] {
        let e = a.increment("fresh", bad).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "{bad:?}: {e}");
    }
    assert_eq!(ctx.probe.pttl(&ctx.physical("fresh")).await, Pttl::Missing);

    // Values INCR refuses: a script error, the value left as it was.
    for (key, raw) in [
        ("json", &br#"{"key":"x","count":1,"lastRequest":1}"#[..]),
        ("lead", b"007"),
        ("space", b" 1"),
        ("plus", b"+1"),
        ("big", b"9223372036854775808"),
        ("max", b"9223372036854775807"),
        ("empty", b""),
    ] {
        ctx.probe
            .set(&ctx.physical(key), raw, Some(Duration::from_secs(60)))
            .await;
        let e = b.increment(key, Duration::from_secs(10)).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Script, "{key}: {e}");
        assert_stored(&ctx, key, raw, Some(50_000..=60_000)).await;
    }
    ctx.probe
        .set_hash(&ctx.physical("hash"), &[("count", b"1")], None)
        .await;
    let e = a
        .increment("hash", Duration::from_secs(10))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Script, "{e}");
    assert!(e.to_string().contains("WRONGTYPE"), "{e}");
    assert_eq!(ctx.probe.key_type(&ctx.physical("hash")).await, "hash");
}

/// 200 concurrent increments, half from each side: every value 1..=200 returned once,
/// the stored total exact, the TTL from the first.
pub async fn increment_concurrent_from_both_sides_is_exact(ctx: Ctx) {
    const N: i64 = 200;
    let start = Arc::new(tokio::sync::Barrier::new(N as usize));
    let mut set = JoinSet::new();
    for i in 0..N {
        let side = if i % 2 == 0 {
            ctx.a.clone()
        } else {
            ctx.b.clone()
        };
        let start = start.clone();
        set.spawn(async move {
            start.wait().await;
            side.increment("race", Duration::from_secs(3600))
                .await
                .unwrap()
        });
    }
    let mut seen = Vec::new();
    while let Some(n) = set.join_next().await {
        seen.push(n.expect("racer panicked"));
    }
    seen.sort_unstable();
    assert_eq!(seen, (1..=N).collect::<Vec<_>>());
    assert_stored(
        &ctx,
        "race",
        N.to_string().as_bytes(),
        Some(3_590_000..=3_600_000),
    )
    .await;
}

/// Two limiters, one on each side (standing for a Rust service and a Node Better Auth
/// service), on one record `{prefix}{ip}|{path}`: of 40 concurrent requests exactly
/// `max` are admitted, every request is counted, and a denial says the full window.
pub async fn better_auth_limiter_shares_one_record(ctx: Ctx) {
    let prefix = format!("{}ba-", ctx.prefix().as_str());
    let opts = StorageOptions::builder()
        .better_auth_compatible()
        .prefix(prefix.clone())
        .build()
        .unwrap();
    let a = BetterAuthRateLimiter::new(ctx.store_a(opts.clone()));
    let b = BetterAuthRateLimiter::new(ctx.store_b(opts));
    let rule = RateLimitRule::from_secs(10, 3).unwrap();
    let ip6 = "2001:0db8:abcd:0012:0000:0000:0000:0000";
    let bucket = bucket_key(Some(ip6), "/sign-in/email");
    assert_eq!(bucket, format!("{ip6}|/sign-in/email"));
    const N: usize = 40;
    let start = Arc::new(tokio::sync::Barrier::new(N));
    let mut set = JoinSet::new();
    for i in 0..N {
        let side = if i % 2 == 0 { a.clone() } else { b.clone() };
        let (start, bucket) = (start.clone(), bucket.clone());
        set.spawn(async move {
            start.wait().await;
            side.consume(&bucket, &rule, 1).await.unwrap()
        });
    }
    let mut admitted = 0;
    while let Some(d) = set.join_next().await {
        let d = d.expect("racer panicked");
        if d.allowed {
            admitted += 1;
        } else {
            assert!(
                d.headers().contains(&("X-Retry-After", "10".to_owned())),
                "{d:?}"
            );
        }
    }
    assert_eq!(admitted, 3);
    let raw = format!("{prefix}{bucket}").into_bytes();
    assert_eq!(
        ctx.probe.get(&raw).await.as_deref(),
        Some(N.to_string().as_bytes())
    );
    assert_eq!(ctx.probe.key_type(&raw).await, "string");
    assert!(matches!(ctx.probe.pttl(&raw).await, Pttl::Ms(ms) if (9_000..=10_000).contains(&ms)));
    assert!(!a.peek(&bucket, &rule).await.unwrap().allowed);

    // A record another writer created (Better Auth's `INCR` + `EXPIRE 10` on 1, by raw
    // commands) is counted by ours, and ours by it.
    let other = format!("{prefix}198.51.100.1|/sign-up/email").into_bytes();
    ctx.probe
        .set(&other, b"2", Some(Duration::from_secs(10)))
        .await;
    let d = b
        .consume("198.51.100.1|/sign-up/email", &rule, 1)
        .await
        .unwrap();
    assert!(d.allowed && d.remaining == 0);
    assert!(
        !a.consume("198.51.100.1|/sign-up/email", &rule, 1)
            .await
            .unwrap()
            .allowed
    );
    assert_eq!(ctx.probe.get(&other).await.as_deref(), Some(&b"4"[..]));
    // Better Auth 1.6's JSON record is not a counter: an error, never a reset.
    ctx.probe
        .set(
            &other,
            br#"{"key":"k","count":1,"lastRequest":1}"#,
            Some(Duration::from_secs(10)),
        )
        .await;
    let e = a
        .consume("198.51.100.1|/sign-up/email", &rule, 1)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Script, "{e}");
}

/// Better Auth's session layout written by one side and read by the other: the value
/// under the raw token (TTL floor(seconds left)), the sorted `active-sessions-<userId>`
/// index, the watermark rejecting sessions created before it, revocation.
pub async fn better_auth_sessions_layout_and_watermark(ctx: Ctx) {
    use kv_contract::better_auth::{
        sign_cookie, BetterAuthSessionOptions, BetterAuthSessions, IsoTime, SessionRecord,
        SessionValue, UserRecord, WriteOutcome,
    };

    let prefix = format!("{}ba-", ctx.prefix().as_str());
    let opts = StorageOptions::builder()
        .better_auth_compatible()
        .prefix(prefix.clone())
        .build()
        .unwrap();
    let a = BetterAuthSessions::new(
        ctx.store_a(opts.clone()),
        BetterAuthSessionOptions::default(),
    );
    let b = BetterAuthSessions::new(ctx.store_b(opts), BetterAuthSessionOptions::default());
    let now = ctx.probe.now_ms().await as i64;
    let session = |token: &str, created: i64, expires: i64| SessionValue {
        session: SessionRecord {
            id: format!("id-{token}"),
            token: token.to_owned(),
            user_id: "u1".to_owned(),
            expires_at: IsoTime(expires),
            created_at: IsoTime(created),
            updated_at: IsoTime(created),
            ip_address: Some(String::new()),
            user_agent: Some("rust".to_owned()),
            extra: Default::default(),
        },
        user: UserRecord {
            id: "u1".to_owned(),
            name: "U".to_owned(),
            email: "u@example.com".to_owned(),
            email_verified: true,
            image: None,
            created_at: IsoTime(now - 1000),
            updated_at: IsoTime(now - 1000),
            extra: Default::default(),
        },
    };
    let late = session("tokLate", now - 10, now + 7_200_500);
    let early = session("tokEarly", now - 20, now + 3_600_500);
    assert_eq!(
        a.write(&late).await.unwrap(),
        WriteOutcome::Written { ttl_secs: 7200 }
    );
    assert!(matches!(
        b.write(&early).await.unwrap(),
        WriteOutcome::Written { ttl_secs: 3600 }
    ));
    assert_eq!(
        a.write(&session("tokGone", now - 20, now + 900))
            .await
            .unwrap(),
        WriteOutcome::AlreadyExpired
    );
    // Raw bytes: the value is Better Auth's JSON under the raw token.
    let raw = ctx
        .probe
        .get(format!("{prefix}tokLate").as_bytes())
        .await
        .unwrap();
    let json: serde_json::Value = serde_json::from_slice(&raw).unwrap();
    assert_eq!(json["session"]["userId"], "u1");
    assert_eq!(
        json["session"]["expiresAt"],
        IsoTime(now + 7_200_500).to_string()
    );
    assert!(matches!(
        ctx.probe.pttl(format!("{prefix}tokLate").as_bytes()).await,
        Pttl::Ms(ms) if (7_190_000..=7_200_000).contains(&ms)
    ));
    let index = ctx
        .probe
        .get(format!("{prefix}active-sessions-u1").as_bytes())
        .await
        .unwrap();
    assert_eq!(
        String::from_utf8(index).unwrap(),
        format!(
            r#"[{{"token":"tokEarly","expiresAt":{}}},{{"token":"tokLate","expiresAt":{}}}]"#,
            now + 3_600_500,
            now + 7_200_500
        )
    );
    assert_eq!(b.read("tokLate").await.unwrap().as_ref(), Some(&late));
    let cookie = sign_cookie("tokLate", b"s3cret");
    assert_eq!(
        b.read_cookie(&cookie, b"s3cret").await.unwrap().as_ref(),
        Some(&late)
    );
    assert_eq!(b.read_cookie(&cookie, b"other").await.unwrap(), None);
    let listed: Vec<String> = a
        .list("u1")
        .await
        .unwrap()
        .into_iter()
        .map(|v| v.session.token)
        .collect();
    assert_eq!(listed, ["tokEarly", "tokLate"]);

    // A watermark (as Node writes it) between the two creations rejects only the earlier.
    let wm = format!("{prefix}revoked-sessions-before-u1").into_bytes();
    ctx.probe
        .set(
            &wm,
            (now - 15).to_string().as_bytes(),
            Some(Duration::from_secs(86_400)),
        )
        .await;
    assert_eq!(b.read("tokEarly").await.unwrap(), None);
    assert!(b.read("tokLate").await.unwrap().is_some());
    assert_eq!(a.list("u1").await.unwrap().len(), 1);

    // Revoke one, then all: the watermark is raised (never lowered) with its TTL.
    assert!(a.revoke("tokEarly").await.unwrap());
    assert!(!b.revoke("tokEarly").await.unwrap());
    assert_eq!(b.revoke_all("u1").await.unwrap(), 1);
    let stamped = int(&ctx.probe.get(&wm).await.unwrap());
    assert!(stamped >= now, "{stamped} < {now}");
    assert!(matches!(ctx.probe.pttl(&wm).await, Pttl::Ms(ms) if ms > 604_000_000));
    assert_eq!(
        ctx.probe
            .pttl(format!("{prefix}active-sessions-u1").as_bytes())
            .await,
        Pttl::Missing
    );
    assert_eq!(a.read("tokLate").await.unwrap(), None);
    // A session cached again by a racing writer, created before the watermark, stays dead.
    ctx.probe
        .set(
            format!("{prefix}tokLate").as_bytes(),
            &raw,
            Some(Duration::from_secs(60)),
        )
        .await;
    assert_eq!(b.read("tokLate").await.unwrap(), None);
    // A corrupt watermark fails closed.
    ctx.probe.set(&wm, b"soon", None).await;
    assert_eq!(
        b.read("tokLate").await.unwrap_err().kind(),
        ErrorKind::UnexpectedData
    );
}

fn int(raw: &[u8]) -> i64 {
    std::str::from_utf8(raw).unwrap().parse().unwrap()
}

/// `better_auth::migrate::migrate` flat → namespaced and back: sessions, indexes,
/// watermarks and verification values copied byte for byte with their remaining TTL,
/// rate-limit records and foreign types skipped, a second run copying nothing, a dry run
/// writing nothing. (A connection case: it runs over a `Connection`, like `admin`.)
pub async fn better_auth_migration_keeps_ttls_and_is_idempotent(kind: crate::BackendKind) {
    use kv_contract::better_auth::migrate::{migrate, DataKind, MigrateOptions};
    use kv_contract::config::ConnectionOptions;

    let url = crate::server::shared().url();
    let conn = kind
        .connect(&ConnectionOptions::from_url(&url).unwrap())
        .await
        .unwrap();
    let probe = crate::probe::Probe::connect(&url).await;
    let root = crate::context::unique_prefix(&format!("migrate-{}", kind.name()));
    let flat_prefix = format!("{root}ba-");
    let flat = StorageOptions::builder()
        .better_auth_compatible()
        .prefix(flat_prefix.clone())
        .scan_count(7)
        .build()
        .unwrap();
    let ns = StorageOptions::builder()
        .prefix(format!("{root}rs-"))
        .build()
        .unwrap();
    let session = br#"{"session":{"token":"t1","userId":"u1"},"user":{"id":"u1"}}"#;
    let k = |s: &str| format!("{flat_prefix}{s}").into_bytes();
    probe
        .set(&k("t1"), session, Some(Duration::from_secs(3600)))
        .await;
    probe
        .set(
            &k("active-sessions-u1"),
            br#"[{"token":"t1","expiresAt":1}]"#,
            Some(Duration::from_secs(3600)),
        )
        .await;
    probe
        .set(
            &k("revoked-sessions-before-u1"),
            b"1700000000000",
            Some(Duration::from_secs(86_400)),
        )
        .await;
    probe
        .set(&k("verification:otp"), br#"{"value":"123"}"#, None)
        .await;
    probe
        .set(
            &k("203.0.113.1|/sign-in/email"),
            b"3",
            Some(Duration::from_secs(10)),
        )
        .await;
    probe.set_hash(&k("a-hash"), &[("f", b"v")], None).await;
    for i in 0..40 {
        probe
            .set(
                &k(&format!("bulk{i}")),
                session,
                Some(Duration::from_secs(600)),
            )
            .await;
    }

    let dry = migrate(
        &*conn,
        &flat,
        &ns,
        MigrateOptions::default().dry_run(true),
        |_| {},
    )
    .await
    .unwrap();
    assert_eq!(dry.total_copied(), 44);
    assert!(probe
        .keys_with_prefix(format!("{root}rs-").as_bytes())
        .await
        .is_empty());

    let mut pages = 0;
    let first = migrate(&*conn, &flat, &ns, MigrateOptions::default(), |_| {
        pages += 1
    })
    .await
    .unwrap();
    assert!(pages > 1, "progress once per page");
    assert_eq!(first.total_copied(), 44, "{first:?}");
    assert!(first.copied.contains(&(DataKind::Session, 41)), "{first:?}");
    assert_eq!(first.not_migrated, 2, "{first:?}");
    let d = |s: &str| ns.key(s).unwrap();
    assert_eq!(probe.get(&d("t1")).await.as_deref(), Some(&session[..]));
    assert!(
        matches!(probe.pttl(&d("t1")).await, Pttl::Ms(ms) if (3_590_000..=3_600_000).contains(&ms))
    );
    assert_eq!(probe.pttl(&d("verification:otp")).await, Pttl::Persistent);
    assert!(
        matches!(probe.pttl(&d("revoked-sessions-before-u1")).await, Pttl::Ms(ms) if ms > 86_000_000)
    );
    assert_eq!(
        probe.pttl(&d("203.0.113.1|/sign-in/email")).await,
        Pttl::Missing
    );

    // Idempotent: nothing copied again; a changed destination is a conflict, kept.
    probe.set(&d("bulk0"), b"changed", None).await;
    let again = migrate(&*conn, &flat, &ns, MigrateOptions::default(), |_| {})
        .await
        .unwrap();
    assert_eq!(again.total_copied(), 0, "{again:?}");
    assert_eq!(
        (again.already_present, again.conflicts),
        (43, 1),
        "{again:?}"
    );
    assert_eq!(
        probe.get(&d("bulk0")).await.as_deref(),
        Some(&b"changed"[..])
    );

    // And back, into an empty flat prefix.
    let back_prefix = format!("{root}back-");
    let back = StorageOptions::builder()
        .better_auth_compatible()
        .prefix(back_prefix.clone())
        .build()
        .unwrap();
    let r = migrate(&*conn, &ns, &back, MigrateOptions::default(), |_| {})
        .await
        .unwrap();
    // bulk0 now holds "changed" at the destination side: not Better Auth data.
    assert_eq!((r.total_copied(), r.not_migrated), (43, 1), "{r:?}");
    assert_eq!(
        probe
            .get(format!("{back_prefix}t1").as_bytes())
            .await
            .as_deref(),
        Some(&session[..])
    );
}
