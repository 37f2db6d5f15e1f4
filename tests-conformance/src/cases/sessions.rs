//! The session index: concurrent creates are never lost, a refresh never resurrects a
//! revoked session, expired sessions are never listed and their index expires with them,
//! every key has a TTL, and values cross backends byte for byte — checked through the
//! API and through the raw probe (hash fields, sorted-set scores, `PTTL`).
//!
//! On server topologies side `b`'s index runs over a [`ClusterGuard`]: it batches per
//! hash slot as on a Redis Cluster, and any command whose keys span two slots fails with
//! `CROSSSLOT`. So each case checks both batching modes, and the mixed topologies check
//! both clients.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use kv_contract::session::{CreateOutcome, HashKey, Session, SessionIndexOptionsBuilder};
use kv_contract::session::{SessionIndexOptions, TokenHashing};
use kv_contract::{
    Bytes, ConnectionOptions, ErrorKind, MemorySessionIndex, ServerSessionIndex, SessionIndex,
};
use tokio::sync::Barrier;
use tokio::task::JoinSet;

use crate::cluster_guard::ClusterGuard;
use crate::context::{unique_prefix, BackendHandle, BackendKind, Ctx};
use crate::probe::{Probe, Pttl};
use crate::report;
use crate::server::RedisServer;

/// The two sides' indexes on this case's data.
struct Sides {
    a: Arc<dyn SessionIndex>,
    b: Arc<dyn SessionIndex>,
    opts: SessionIndexOptions,
}

impl Sides {
    /// Side `a` for even `i`, `b` for odd.
    fn pick(&self, i: usize) -> &Arc<dyn SessionIndex> {
        if i % 2 == 1 {
            &self.b
        } else {
            &self.a
        }
    }

    fn both(&self) -> [&Arc<dyn SessionIndex>; 2] {
        [&self.a, &self.b]
    }

    fn session_key(&self, token: &str) -> Vec<u8> {
        self.opts
            .session_key(&self.opts.session_id(token).unwrap())
            .unwrap()
    }

    fn index_key(&self, user: &str) -> Vec<u8> {
        self.opts.user_sessions_key(user).unwrap()
    }
}

fn builder(ctx: &Ctx) -> SessionIndexOptionsBuilder {
    SessionIndexOptions::builder().prefix(ctx.prefix().as_str())
}

fn sides(ctx: &Ctx, opts: SessionIndexOptions) -> Sides {
    let (a, b): (Arc<dyn SessionIndex>, Arc<dyn SessionIndex>) =
        match (ctx.backend_a(), ctx.backend_b()) {
            (BackendHandle::Memory(ks), _) => (
                Arc::new(MemorySessionIndex::with_keyspace(ks.clone(), opts.clone())),
                Arc::new(MemorySessionIndex::with_keyspace(ks, opts.clone())),
            ),
            (BackendHandle::Server(a), BackendHandle::Server(b)) => (
                Arc::new(ServerSessionIndex::new(a, opts.clone())),
                Arc::new(ServerSessionIndex::new(ClusterGuard::new(b), opts.clone())),
            ),
            (a, b) => panic!("mixed memory/server sides: {a:?} / {b:?}"),
        };
    Sides { a, b, opts }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

fn at_ms(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms)
}

fn ms_of(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).unwrap().as_millis() as u64
}

fn ids(sessions: &[Session]) -> Vec<String> {
    sessions.iter().map(|s| s.id.clone()).collect()
}

/// Every key under the case's prefix expires: none is stored without a TTL.
async fn assert_every_key_expires(ctx: &Ctx) {
    let keys = ctx
        .probe
        .keys_with_prefix(ctx.prefix().as_str().as_bytes())
        .await;
    for key in keys {
        if let Pttl::Persistent = ctx.probe.pttl(&key).await {
            panic!("{} is stored without a TTL", String::from_utf8_lossy(&key));
        }
    }
}

/// The key's `PTTL` is the time left until `until_ms`: it expires exactly then, no sooner
/// and no later (2 ms of slack for the clock reads around the probe). Gone is right only
/// once `until_ms` has passed.
async fn assert_expires_at(probe: &Probe, key: &[u8], until_ms: u64) {
    let before = now_ms();
    let pttl = probe.pttl(key).await;
    let after = now_ms();
    let shown = String::from_utf8_lossy(key);
    let left = match pttl {
        Pttl::Ms(left) => left,
        Pttl::Missing if after >= until_ms => return,
        other => panic!("{shown}: PTTL {other:?} at {after}, want an expiry at {until_ms}"),
    };
    let lo = until_ms.saturating_sub(after + 2);
    let hi = until_ms.saturating_sub(before) + 2;
    assert!(
        (lo..=hi).contains(&left),
        "{shown}: PTTL {left} ms, want {lo}..={hi} (expiry at {until_ms})"
    );
}

/// The raw session hash: exactly the fields `expires_at`, `user_id`, `value`.
async fn assert_session_hash(ctx: &Ctx, key: &[u8], user: &str, expires_at: u64, value: &[u8]) {
    assert_eq!(
        ctx.probe.key_type(key).await,
        "hash",
        "{}",
        String::from_utf8_lossy(key)
    );
    let want = vec![
        (b"expires_at".to_vec(), expires_at.to_string().into_bytes()),
        (b"user_id".to_vec(), user.as_bytes().to_vec()),
        (b"value".to_vec(), value.to_vec()),
    ];
    assert_eq!(ctx.probe.hgetall(key).await, want);
    assert_expires_at(&ctx.probe, key, expires_at).await;
}

/// 100 concurrent `create`s for one user, half through each side (each client in the
/// mixed topologies): all 100 are listed, by both sides, in expiry order, with their
/// values; the index holds exactly those 100 scores and expires with the last one.
pub async fn sessions_concurrent_creates_all_listed(ctx: Ctx) {
    let s = sides(&ctx, builder(&ctx).build().unwrap());
    let base = now_ms() + 60_000;
    let start = Arc::new(Barrier::new(100));
    let mut set = JoinSet::new();
    for i in 0..100u64 {
        let index = s.pick(i as usize).clone();
        let start = start.clone();
        set.spawn(async move {
            start.wait().await;
            index
                .create(
                    "user-1",
                    &format!("tok-{i:03}"),
                    Bytes::from(format!("value-{i}")),
                    at_ms(base + i),
                )
                .await
                .unwrap()
        });
    }
    while let Some(r) = set.join_next().await {
        assert_eq!(r.unwrap(), CreateOutcome::Created { evicted: 0 });
    }
    let want: Vec<String> = (0..100).map(|i| format!("tok-{i:03}")).collect();
    for side in s.both() {
        let listed = side.list("user-1").await.unwrap();
        assert_eq!(ids(&listed), want, "all 100, soonest expiry first");
        for (i, x) in listed.iter().enumerate() {
            assert_eq!(x.value, format!("value-{i}"));
            assert_eq!(x.expires_at, at_ms(base + i as u64));
            assert_eq!(x.user_id, "user-1");
        }
        assert_eq!(side.count("user-1").await.unwrap(), 100);
    }
    let index = s.index_key("user-1");
    assert_eq!(ctx.probe.key_type(&index).await, "zset");
    let want_raw: Vec<(Vec<u8>, f64)> = (0..100u64)
        .map(|i| (format!("tok-{i:03}").into_bytes(), (base + i) as f64))
        .collect();
    assert_eq!(ctx.probe.zrange_withscores(&index).await, want_raw);
    assert_expires_at(&ctx.probe, &index, base + 99).await;
    assert_session_hash(
        &ctx,
        &s.session_key("tok-042"),
        "user-1",
        base + 42,
        b"value-42",
    )
    .await;
    assert_every_key_expires(&ctx).await;
}

/// A refresh racing `revoke_all`, 2000 times, alternating sides, one of them shifted by 0
/// to 4 round trips so the race goes both ways: once `revoke_all` returns, the session is
/// unreadable from both sides — while the refresh may still be in flight, and after it
/// finished — and its key does not exist.
pub async fn sessions_refresh_racing_revoke_all(ctx: Ctx) {
    const ROUNDS: usize = 2000;
    let s = sides(&ctx, builder(&ctx).build().unwrap());
    let user = "user-race";
    let (mut applied, mut refused) = (0, 0);
    for i in 0..ROUNDS {
        let (writer, racer) = (s.pick(i).clone(), s.pick(i + 1).clone());
        let token = format!("race-{i}");
        let exp = now_ms() + 30_000;
        let created = writer
            .create(user, &token, "v0".into(), at_ms(exp))
            .await
            .unwrap();
        assert_eq!(created, CreateOutcome::Created { evicted: 0 });
        let racer_token = token.clone();
        let start = Arc::new(Barrier::new(2));
        let racer_start = start.clone();
        // Shift one side by 0 to 4 round trips (the revoke on rounds 0-4 of every 10,
        // the refresh on rounds 5-9), so the refresh's three steps land before, between
        // and after the revoke's three.
        let (revoke_shift, refresh_shift) = match i % 10 {
            k @ 0..5 => (k, 0),
            k => (0, k - 5),
        };
        let refresh = tokio::spawn(async move {
            racer_start.wait().await;
            for _ in 0..refresh_shift {
                assert_eq!(racer.get("no-such-token").await.unwrap(), None);
            }
            racer
                .refresh(&racer_token, at_ms(exp + 30_000), Some("v1".into()))
                .await
                .unwrap()
        });
        start.wait().await;
        for _ in 0..revoke_shift {
            assert_eq!(writer.get("no-such-token").await.unwrap(), None);
        }
        let revoked = writer.revoke_all(user).await.unwrap();
        assert_eq!(
            revoked, 1,
            "round {i}: the session existed when revoke_all ran"
        );
        for side in s.both() {
            assert_eq!(
                side.get(&token).await.unwrap(),
                None,
                "round {i}: readable after revoke_all returned"
            );
        }
        if refresh.await.unwrap() {
            applied += 1;
        } else {
            refused += 1;
        }
        for side in s.both() {
            assert_eq!(
                side.get(&token).await.unwrap(),
                None,
                "round {i}: the refresh resurrected the session"
            );
        }
        assert_eq!(ctx.probe.pttl(&s.session_key(&token)).await, Pttl::Missing);
    }
    assert_eq!(s.a.count(user).await.unwrap(), 0);
    assert_eq!(ctx.probe.pttl(&s.index_key(user)).await, Pttl::Missing);
    assert!(
        applied > 0 && refused > 0,
        "the race should go both ways: applied {applied}, refused {refused}"
    );
    report::metric(format!(
        "sessions_refresh_racing_revoke_all [{}]: of {ROUNDS} races the refresh applied \
         before the revoke {applied} times and was refused {refused} times",
        ctx.topology.name()
    ));
    assert_every_key_expires(&ctx).await;
}

/// Sessions expiring 50–300 ms from now: `list` never returns one whose expiry passed
/// before the call, prunes the index as it goes, and the index's TTL always ends with
/// its longest-lived member. A second user's index, never touched after the creates,
/// exists until its last session's expiry and is gone (by its own TTL) right after.
pub async fn sessions_expired_never_listed_and_index_expires(ctx: Ctx) {
    let s = sides(&ctx, builder(&ctx).build().unwrap());
    let t0 = now_ms();
    let offsets = [300, 50, 250, 100, 200, 150];
    for (i, off) in offsets.iter().enumerate() {
        for user in ["listed", "untouched"] {
            s.pick(i)
                .create(user, &format!("{user}-{i}"), "v".into(), at_ms(t0 + off))
                .await
                .unwrap();
        }
    }
    let last = t0 + 300;
    let listed_index = s.index_key("listed");
    let untouched_index = s.index_key("untouched");
    assert_expires_at(&ctx.probe, &listed_index, last).await;
    assert_expires_at(&ctx.probe, &untouched_index, last).await;

    let deadline = Instant::now() + Duration::from_secs(3);
    let mut round = 0;
    loop {
        let before = now_ms();
        let listed = s.pick(round).list("listed").await.unwrap();
        for x in &listed {
            assert!(
                ms_of(x.expires_at) >= before,
                "list at {before} returned {} which expired at {}",
                x.id,
                ms_of(x.expires_at)
            );
        }
        let raw = ctx.probe.zrange_withscores(&listed_index).await;
        assert!(
            raw.iter().all(|(_, score)| *score >= before as f64),
            "list at {before} left expired members: {raw:?}"
        );
        if let Some((_, max)) = raw.last() {
            assert_eq!(*max as u64, last, "the longest-lived member stays");
            assert_expires_at(&ctx.probe, &listed_index, last).await;
        }
        // The untouched index lives until its last member's expiry.
        assert_expires_at(&ctx.probe, &untouched_index, last).await;
        if listed.is_empty() && before > last {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "sessions still listed 3 s after the last expiry: {:?}",
            ids(&listed)
        );
        round += 1;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(ctx.probe.pttl(&listed_index).await, Pttl::Missing);
    // Never listed, never pruned: the index must go by its own TTL.
    let deadline = Instant::now() + Duration::from_secs(2);
    while ctx.probe.pttl(&untouched_index).await != Pttl::Missing {
        assert!(
            Instant::now() < deadline,
            "the untouched index outlived its last session by 2 s"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let gone_at = now_ms();
    assert!(
        gone_at >= last,
        "index gone at {gone_at}, before its last member's {last}"
    );
    for (i, _) in offsets.iter().enumerate() {
        for user in ["listed", "untouched"] {
            assert_eq!(
                ctx.probe.pttl(&s.session_key(&format!("{user}-{i}"))).await,
                Pttl::Missing
            );
        }
    }
    assert_eq!(s.b.count("untouched").await.unwrap(), 0);
    assert_every_key_expires(&ctx).await;
}

fn awkward_values() -> Vec<Bytes> {
    let mut big = Vec::with_capacity(1 << 20);
    let mut x: u32 = 0x1234_5678;
    for _ in 0..(1 << 20) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        big.push(x as u8);
    }
    vec![
        (0u8..=255).collect::<Vec<u8>>().into(),
        Bytes::new(),
        Bytes::from_static(b"\xff\xfe\x00\x00not utf-8\xc3\x28"),
        Bytes::from_static("{\"user\":{\"name\":\"Zoë ✓\"},\"n\":1}".as_bytes()),
        Bytes::from_static(b"\r\n$3\r\nfoo\r\n*1\r\n"),
        big.into(),
    ]
}

/// Value bytes written through one side are read back identically through the other —
/// by `get`, by `list`, and raw — and so are values replaced by a refresh.
pub async fn sessions_values_read_identically(ctx: Ctx) {
    let s = sides(&ctx, builder(&ctx).build().unwrap());
    let exp = now_ms() + 60_000;
    let values = awkward_values();
    for (i, v) in values.iter().enumerate() {
        s.a.create(
            "user-v",
            &format!("tok-{i}"),
            v.clone(),
            at_ms(exp + i as u64),
        )
        .await
        .unwrap();
    }
    for (i, v) in values.iter().enumerate() {
        let token = format!("tok-{i}");
        let got = s.b.get(&token).await.unwrap().expect("session");
        assert_eq!(got.value, *v, "value {i} read by the other side");
        assert_session_hash(&ctx, &s.session_key(&token), "user-v", exp + i as u64, v).await;
    }
    let listed = s.b.list("user-v").await.unwrap();
    let got: Vec<Bytes> = listed.iter().map(|x| x.value.clone()).collect();
    assert_eq!(
        got, values,
        "list returns every value intact, in expiry order"
    );
    for (i, v) in values.iter().enumerate() {
        let reversed: Bytes = v.iter().rev().copied().collect::<Vec<u8>>().into();
        assert!(s
            .b
            .refresh(
                &format!("tok-{i}"),
                at_ms(exp + 1_000),
                Some(reversed.clone())
            )
            .await
            .unwrap());
        let got =
            s.a.get(&format!("tok-{i}"))
                .await
                .unwrap()
                .expect("session");
        assert_eq!(got.value, reversed, "refreshed value {i}");
    }
    assert_every_key_expires(&ctx).await;
}

/// Every operation's result and the exact bytes it leaves, with custom namespaces:
/// layout, get, refresh (longer and shorter), refused creates, delete, refresh after
/// delete, revoke_all_except, delete_by_id, count, and input validation.
pub async fn sessions_operations_and_layout(ctx: Ctx) {
    let opts = builder(&ctx)
        .session_namespace("sess")
        .user_sessions_namespace("sess_by_user")
        .build()
        .unwrap();
    let s = sides(&ctx, opts);
    let p = ctx.prefix().as_str();
    assert_eq!(
        s.session_key("tok-a"),
        format!("{p}sess:tok-a").into_bytes()
    );
    assert_eq!(
        s.index_key("u-1"),
        format!("{p}sess_by_user:u-1").into_bytes()
    );
    let t = now_ms();
    let (ea, eb) = (t + 60_000, t + 120_000);

    let made =
        s.a.create("u-1", "tok-a", "A".into(), at_ms(ea))
            .await
            .unwrap();
    assert_eq!(made, CreateOutcome::Created { evicted: 0 });
    assert_session_hash(&ctx, &s.session_key("tok-a"), "u-1", ea, b"A").await;
    let index = s.index_key("u-1");
    assert_eq!(ctx.probe.key_type(&index).await, "zset");
    assert_eq!(
        ctx.probe.zrange_withscores(&index).await,
        vec![(b"tok-a".to_vec(), ea as f64)]
    );
    assert_expires_at(&ctx.probe, &index, ea).await;
    let got = s.b.get("tok-a").await.unwrap().expect("session");
    assert_eq!(
        (
            got.id.as_str(),
            got.user_id.as_str(),
            &got.value[..],
            got.expires_at
        ),
        ("tok-a", "u-1", &b"A"[..], at_ms(ea))
    );
    assert_eq!(s.b.get("tok-none").await.unwrap(), None);

    s.b.create("u-1", "tok-b", "B".into(), at_ms(eb))
        .await
        .unwrap();
    assert_expires_at(&ctx.probe, &index, eb).await;

    // A longer refresh raises the score and the index's expiry with it.
    let ea2 = t + 180_000;
    assert!(s
        .b
        .refresh("tok-a", at_ms(ea2), Some("A2".into()))
        .await
        .unwrap());
    assert_session_hash(&ctx, &s.session_key("tok-a"), "u-1", ea2, b"A2").await;
    assert_eq!(
        ctx.probe.zrange_withscores(&index).await,
        vec![
            (b"tok-b".to_vec(), eb as f64),
            (b"tok-a".to_vec(), ea2 as f64)
        ]
    );
    assert_expires_at(&ctx.probe, &index, ea2).await;
    // A shorter one shortens the session; the score only rises.
    let ea3 = t + 90_000;
    assert!(s.a.refresh("tok-a", at_ms(ea3), None).await.unwrap());
    assert_session_hash(&ctx, &s.session_key("tok-a"), "u-1", ea3, b"A2").await;
    assert_eq!(ctx.probe.zrange_withscores(&index).await[1].1, ea2 as f64);

    // Refused creates write nothing.
    for user in ["u-2", "u-1"] {
        let again =
            s.b.create(user, "tok-a", "X".into(), at_ms(eb))
                .await
                .unwrap();
        assert_eq!(
            again,
            CreateOutcome::TokenInUse,
            "a live token is never overwritten"
        );
    }
    assert_session_hash(&ctx, &s.session_key("tok-a"), "u-1", ea3, b"A2").await;
    assert_eq!(ctx.probe.pttl(&s.index_key("u-2")).await, Pttl::Missing);
    let past =
        s.a.create("u-1", "tok-old", "O".into(), at_ms(t - 1_000))
            .await
            .unwrap();
    assert_eq!(past, CreateOutcome::AlreadyExpired);
    assert_eq!(
        ctx.probe.pttl(&s.session_key("tok-old")).await,
        Pttl::Missing
    );

    // Delete the longest-lived: the index's expiry shrinks to the next one.
    assert!(s.a.delete("tok-a").await.unwrap());
    assert!(!s.b.delete("tok-a").await.unwrap());
    assert_eq!(ctx.probe.pttl(&s.session_key("tok-a")).await, Pttl::Missing);
    assert_eq!(
        ctx.probe.zrange_withscores(&index).await,
        vec![(b"tok-b".to_vec(), eb as f64)]
    );
    assert_expires_at(&ctx.probe, &index, eb).await;
    // Deleted is final: a refresh creates nothing.
    assert!(!s
        .b
        .refresh("tok-a", at_ms(eb), Some("zombie".into()))
        .await
        .unwrap());
    assert_eq!(ctx.probe.pttl(&s.session_key("tok-a")).await, Pttl::Missing);
    assert_eq!(s.a.get("tok-a").await.unwrap(), None);

    for (i, tok) in ["tok-c", "tok-d"].iter().enumerate() {
        s.pick(i)
            .create("u-1", tok, "v".into(), at_ms(eb))
            .await
            .unwrap();
    }
    assert_eq!(s.a.count("u-1").await.unwrap(), 3);
    assert_eq!(s.b.revoke_all_except("u-1", "tok-c").await.unwrap(), 2);
    assert_eq!(ids(&s.a.list("u-1").await.unwrap()), ["tok-c"]);
    assert_eq!(ctx.probe.pttl(&s.session_key("tok-b")).await, Pttl::Missing);
    assert_eq!(ctx.probe.pttl(&s.session_key("tok-d")).await, Pttl::Missing);
    assert!(s.a.delete_by_id("tok-c").await.unwrap());
    assert_eq!(s.b.count("u-1").await.unwrap(), 0);
    assert_eq!(
        ctx.probe.pttl(&index).await,
        Pttl::Missing,
        "an empty index is deleted"
    );
    assert_eq!(s.a.revoke_all("u-1").await.unwrap(), 0);
    assert_eq!(s.b.list("nobody").await.unwrap(), Vec::new());

    for e in [
        s.a.create("", "t", "v".into(), at_ms(eb))
            .await
            .unwrap_err(),
        s.a.create("u", "", "v".into(), at_ms(eb))
            .await
            .unwrap_err(),
        s.b.create("u", "t", "v".into(), UNIX_EPOCH - Duration::from_secs(1))
            .await
            .unwrap_err(),
        s.b.get("").await.unwrap_err(),
        s.a.list("").await.unwrap_err(),
        s.b.refresh("", at_ms(eb), None).await.unwrap_err(),
    ] {
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
    }
    assert_every_key_expires(&ctx).await;
}

/// With a cap of 3, a create beyond it revokes the sessions that expire first — never
/// the new one. Under 20 concurrent creates with a cap of 5 (both sides), followed by one
/// more, the user ends with exactly 5 sessions, and every session still readable is
/// listed: eviction never leaves a live session outside the index.
pub async fn sessions_cap_evicts_soonest_expiring(ctx: Ctx) {
    let s = sides(
        &ctx,
        builder(&ctx).max_sessions_per_user(3).build().unwrap(),
    );
    let t = now_ms() + 60_000;
    for (i, (tok, off)) in [("a", 300), ("b", 100), ("c", 200)].iter().enumerate() {
        let made = s
            .pick(i)
            .create("u", tok, "v".into(), at_ms(t + off))
            .await
            .unwrap();
        assert_eq!(made, CreateOutcome::Created { evicted: 0 });
    }
    let made =
        s.a.create("u", "d", "v".into(), at_ms(t + 400))
            .await
            .unwrap();
    assert_eq!(made, CreateOutcome::Created { evicted: 1 });
    assert_eq!(s.b.get("b").await.unwrap(), None);
    assert_eq!(ctx.probe.pttl(&s.session_key("b")).await, Pttl::Missing);
    assert_eq!(ids(&s.b.list("u").await.unwrap()), ["c", "a", "d"]);
    // The newcomer expires first, yet the victim is the oldest of the others.
    let made =
        s.b.create("u", "e", "v".into(), at_ms(t + 50))
            .await
            .unwrap();
    assert_eq!(made, CreateOutcome::Created { evicted: 1 });
    assert_eq!(ids(&s.a.list("u").await.unwrap()), ["e", "a", "d"]);
    assert_eq!(
        ctx.probe
            .zrange_withscores(&s.index_key("u"))
            .await
            .iter()
            .map(|(m, _)| String::from_utf8(m.clone()).unwrap())
            .collect::<Vec<_>>(),
        ["e", "a", "d"]
    );

    let s5 = sides(
        &ctx,
        builder(&ctx).max_sessions_per_user(5).build().unwrap(),
    );
    let start = Arc::new(Barrier::new(20));
    let mut set = JoinSet::new();
    for i in 0..20u64 {
        let index = s5.pick(i as usize).clone();
        let start = start.clone();
        set.spawn(async move {
            start.wait().await;
            index
                .create("crowd", &format!("c{i:02}"), "v".into(), at_ms(t + i))
                .await
                .unwrap()
        });
    }
    while let Some(r) = set.join_next().await {
        assert!(matches!(r.unwrap(), CreateOutcome::Created { .. }));
    }
    s5.a.create("crowd", "last", "v".into(), at_ms(t + 1_000))
        .await
        .unwrap();
    let listed = ids(&s5.b.list("crowd").await.unwrap());
    assert_eq!(listed.len(), 5, "{listed:?}");
    assert_eq!(s5.a.count("crowd").await.unwrap(), 5);
    assert!(listed.contains(&"last".to_owned()));
    let tokens = (0..20)
        .map(|i| format!("c{i:02}"))
        .chain(["last".to_owned()]);
    for tok in tokens {
        let live = s5.a.get(&tok).await.unwrap().is_some();
        assert_eq!(
            live,
            listed.contains(&tok),
            "{tok}: live but unlisted, or listed but gone"
        );
    }
    assert_every_key_expires(&ctx).await;
}

/// With token hashing, no key, member or field holds the token: the session key ends in
/// the SHA-256 (or HMAC-SHA256) digest — checked against published test vectors — and
/// every operation still works by token, and by id from `list`.
pub async fn sessions_hashed_tokens_at_rest(ctx: Ctx) {
    // FIPS 180-2 ("abc") and RFC 4231 test case 6 (131-byte key 0xaa).
    let sha_token = "abc";
    let sha_id = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
    let hmac_token = "Test Using Larger Than Block-Size Key - Hash Key First";
    let hmac_id = "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54";
    let plain = sides(&ctx, builder(&ctx).build().unwrap());
    let cases = [
        (
            builder(&ctx).token_hashing(TokenHashing::Sha256),
            sha_token,
            sha_id,
        ),
        (
            builder(&ctx)
                .session_namespace("hsession")
                .user_sessions_namespace("huser_sessions")
                .token_hashing(TokenHashing::HmacSha256(HashKey::new(vec![0xaa; 131]))),
            hmac_token,
            hmac_id,
        ),
    ];
    let exp = now_ms() + 60_000;
    for (opts, token, id) in cases {
        let s = sides(&ctx, opts.build().unwrap());
        assert_eq!(s.a.session_id(token).unwrap(), id);
        s.a.create("u-h", token, "secret-data".into(), at_ms(exp))
            .await
            .unwrap();
        let key = s.session_key(token);
        assert!(key.ends_with(format!(":{id}").as_bytes()));
        assert_session_hash(&ctx, &key, "u-h", exp, b"secret-data").await;
        let index = s.index_key("u-h");
        assert_eq!(
            ctx.probe.zrange_withscores(&index).await,
            vec![(id.as_bytes().to_vec(), exp as f64)]
        );
        for raw in ctx
            .probe
            .keys_with_prefix(ctx.prefix().as_str().as_bytes())
            .await
        {
            let shown = String::from_utf8_lossy(&raw).into_owned();
            assert!(!shown.contains(token), "a key holds the token: {shown}");
            match ctx.probe.key_type(&raw).await.as_str() {
                "hash" => {
                    for (f, v) in ctx.probe.hgetall(&raw).await {
                        assert!(!String::from_utf8_lossy(&f).contains(token), "{shown}");
                        assert!(!String::from_utf8_lossy(&v).contains(token), "{shown}");
                    }
                }
                "zset" => {
                    for (m, _) in ctx.probe.zrange_withscores(&raw).await {
                        assert!(!String::from_utf8_lossy(&m).contains(token), "{shown}");
                    }
                }
                other => panic!("{shown} is a {other}"),
            }
        }
        let got = s.b.get(token).await.unwrap().expect("readable by token");
        assert_eq!((got.id.as_str(), &got.value[..]), (id, &b"secret-data"[..]));
        assert_eq!(
            plain.b.get(token).await.unwrap(),
            None,
            "not stored under the token"
        );
        assert!(s.b.refresh(token, at_ms(exp + 1), None).await.unwrap());
        let listed = s.b.list("u-h").await.unwrap();
        assert_eq!(ids(&listed), [id]);
        assert!(s.a.delete_by_id(&listed[0].id).await.unwrap());
        assert_eq!(s.b.get(token).await.unwrap(), None);
        let e = s.a.delete_by_id(token).await.unwrap_err();
        assert_eq!(
            e.kind(),
            ErrorKind::InvalidInput,
            "a raw token is not an id: {e}"
        );
        assert_eq!(ctx.probe.pttl(&index).await, Pttl::Missing);
    }
    assert_every_key_expires(&ctx).await;
}

// ---------------------------------------------------------------------------------------
// Round trips, counted by the server.

/// Counts what the server executes for one operation, from two server-side sources:
/// `MONITOR` (the commands each client sent: its round trips; commands run inside a
/// script are tagged `lua` and not counted) and `INFO commandstats` (every command
/// executed, script internals included), reset before each operation.
struct Meter {
    probe: Probe,
    monitor: std::pin::Pin<Box<dyn futures::Stream<Item = String> + Send + Sync>>,
    seq: u64,
    lines: Vec<String>,
}

impl Meter {
    async fn new(url: &str) -> Meter {
        let monitor = redis::Client::open(url)
            .unwrap()
            .get_async_monitor()
            .await
            .expect("MONITOR connection");
        Meter {
            probe: Probe::connect(url).await,
            monitor: Box::pin(monitor.into_on_message::<String>()),
            seq: 0,
            lines: Vec::new(),
        }
    }

    async fn echo(&self, marker: &str) {
        let _: String = self.probe.command(redis::cmd("ECHO").arg(marker)).await;
    }

    /// Marks the start of an operation.
    async fn begin(&mut self) {
        self.seq += 1;
        let () = self
            .probe
            .command(redis::cmd("CONFIG").arg("RESETSTAT"))
            .await;
        self.echo(&format!("meter-begin-{}", self.seq)).await;
    }

    /// Ends the operation begun last: asserts the commands clients sent for it (`want`,
    /// lowercase names) and records both counts under `label`.
    async fn end(&mut self, label: &str, want: &[(&str, u64)]) {
        let (begin, end) = (
            format!("\"meter-begin-{}\"", self.seq),
            format!("\"meter-end-{}\"", self.seq),
        );
        self.echo(&format!("meter-end-{}", self.seq)).await;
        let executed = self.executed().await;
        let mut sent: BTreeMap<String, u64> = BTreeMap::new();
        let mut inside = false;
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = tokio::time::timeout(left, futures::StreamExt::next(&mut self.monitor))
                .await
                .unwrap_or_else(|_| panic!("MONITOR: no end marker for {label} within 5 s"))
                .expect("MONITOR stream ended");
            if line.ends_with(&begin) {
                inside = true;
            } else if line.ends_with(&end) {
                break;
            } else if inside {
                // `1700000000.123456 [0 127.0.0.1:5555] "EVALSHA" "..."`, or `[0 lua]`.
                let (source, rest) = line
                    .split_once('[')
                    .and_then(|(_, r)| r.split_once(']'))
                    .unwrap_or_else(|| panic!("MONITOR line {line:?}"));
                if source.ends_with(" lua") {
                    continue;
                }
                let name = rest.trim().split('"').nth(1).unwrap_or("").to_lowercase();
                *sent.entry(name).or_default() += 1;
            }
        }
        assert_eq!(sent, counts(want), "commands sent for {label}");
        let total: u64 = sent.values().sum();
        let parts: Vec<String> = sent.iter().map(|(n, k)| format!("{n}×{k}")).collect();
        let all: u64 = executed.values().sum();
        self.lines.push(format!(
            "{label}: {total} ({}; {all} commands executed in all)",
            parts.join(" ")
        ));
    }

    /// Commands executed since the reset, from `INFO commandstats`, without the meter's own
    /// `CONFIG RESETSTAT`, `ECHO` and `INFO`.
    async fn executed(&self) -> BTreeMap<String, u64> {
        let info: String = self
            .probe
            .command(redis::cmd("INFO").arg("commandstats"))
            .await;
        let mut out = BTreeMap::new();
        for line in info.lines() {
            let Some((name, fields)) = line
                .strip_prefix("cmdstat_")
                .and_then(|rest| rest.split_once(':'))
            else {
                continue;
            };
            if matches!(name, "info" | "config|resetstat" | "echo") {
                continue;
            }
            let calls = fields
                .split(',')
                .find_map(|f| f.strip_prefix("calls="))
                .and_then(|n| n.parse::<u64>().ok())
                .unwrap_or_else(|| panic!("no calls= in {line:?}"));
            out.insert(name.to_owned(), calls);
        }
        out
    }
}

fn counts(pairs: &[(&str, u64)]) -> BTreeMap<String, u64> {
    pairs.iter().map(|(n, c)| (n.to_string(), *c)).collect()
}

/// Round trips per operation on a dedicated server, with scripts already cached: counts
/// the commands the client sent for create, get, refresh, delete, list, revoke_all,
/// revoke_all_except and count (from `MONITOR`), asserts each exactly — a fixed number
/// whatever the number of sessions on a single server, one batch per hash slot on a
/// cluster connection — and records them with the total executed (`INFO commandstats`).
pub async fn sessions_round_trips(kind: BackendKind) {
    let server = tokio::task::spawn_blocking(RedisServer::start)
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("this test needs its own redis-server: {e}"));
    let conn = kind
        .connect(&ConnectionOptions::from_url(&server.url()).unwrap())
        .await
        .unwrap();
    let mut m = Meter::new(&server.url()).await;
    for script in kv_contract::script::all() {
        let _: String = m
            .probe
            .command(redis::cmd("SCRIPT").arg("LOAD").arg(script.source()))
            .await;
    }
    let opts = SessionIndexOptions::builder()
        .prefix(unique_prefix("round_trips"))
        .build()
        .unwrap();
    let index = ServerSessionIndex::new(conn.clone(), opts.clone());
    let exp = now_ms() + 600_000;
    const N: u64 = 20;
    for i in 0..N {
        index
            .create("u", &format!("t{i}"), "v".into(), at_ms(exp + i))
            .await
            .unwrap();
    }

    m.begin().await;
    let made = index
        .create("u", "new", "v".into(), at_ms(exp))
        .await
        .unwrap();
    m.end("create", &[("evalsha", 2)]).await;
    assert_eq!(made, CreateOutcome::Created { evicted: 0 });

    m.begin().await;
    let got = index.get("new").await.unwrap();
    m.end("get", &[("hmget", 1)]).await;
    assert!(got.is_some());

    m.begin().await;
    let refreshed = index.refresh("new", at_ms(exp + 1), None).await.unwrap();
    m.end("refresh", &[("hget", 1), ("evalsha", 2)]).await;
    assert!(refreshed);

    m.begin().await;
    let deleted = index.delete("new").await.unwrap();
    m.end("delete", &[("evalsha", 2)]).await;
    assert!(deleted);

    m.begin().await;
    let listed = index.list("u").await.unwrap();
    m.end(&format!("list of {N}"), &[("evalsha", 2)]).await;
    assert_eq!(listed.len() as u64, N);

    // A member left without its session (as by a crash between a delete's two steps).
    let _: i64 = m
        .probe
        .command(redis::cmd("DEL").arg(opts.session_key("t0").unwrap()))
        .await;
    m.begin().await;
    let listed = index.list("u").await.unwrap();
    m.end("list with a leftover member", &[("evalsha", 3)])
        .await;
    assert_eq!(listed.len() as u64, N - 1);

    m.begin().await;
    let n = index.count("u").await.unwrap();
    m.end("count", &[("evalsha", 1)]).await;
    assert_eq!(n, N - 1);

    m.begin().await;
    let revoked = index.revoke_all_except("u", "t1").await.unwrap();
    m.end(
        &format!("revoke_all_except of {}", N - 1),
        &[("evalsha", 2), ("del", 1)],
    )
    .await;
    assert_eq!(revoked, N - 2);

    for i in 0..N {
        index
            .create("u", &format!("r{i}"), "v".into(), at_ms(exp + i))
            .await
            .unwrap();
    }
    m.begin().await;
    let revoked = index.revoke_all("u").await.unwrap();
    m.end(
        &format!("revoke_all of {}", N + 1),
        &[("evalsha", 2), ("del", 1)],
    )
    .await;
    assert_eq!(revoked, N + 1);

    let capped = ServerSessionIndex::new(
        conn.clone(),
        SessionIndexOptions::builder()
            .prefix(unique_prefix("round_trips_cap"))
            .max_sessions_per_user(2)
            .build()
            .unwrap(),
    );
    for t in ["c1", "c2"] {
        capped.create("u", t, "v".into(), at_ms(exp)).await.unwrap();
    }
    m.begin().await;
    let made = capped
        .create("u", "c3", "v".into(), at_ms(exp + 1))
        .await
        .unwrap();
    m.end(
        "create evicting 1 over the cap",
        &[("evalsha", 3), ("del", 1)],
    )
    .await;
    assert_eq!(made, CreateOutcome::Created { evicted: 1 });

    // On a cluster connection the batches of list and revoke are one command per slot.
    let cluster = ServerSessionIndex::new(ClusterGuard::new(conn.clone()), opts.clone());
    let tokens: Vec<String> = (0..N).map(|i| format!("k{i}")).collect();
    for t in &tokens {
        cluster
            .create("cu", t, "v".into(), at_ms(exp))
            .await
            .unwrap();
    }
    let mut slots: Vec<u16> = tokens
        .iter()
        .map(|t| kv_contract::slot::key_slot(&opts.session_key(t).unwrap()))
        .collect();
    slots.sort();
    slots.dedup();
    let groups = slots.len() as u64;
    assert!(groups > 1, "the tokens should span several slots");

    m.begin().await;
    let listed = cluster.list("cu").await.unwrap();
    m.end(
        &format!("cluster list of {N} in {groups} slots"),
        &[("evalsha", 1 + groups)],
    )
    .await;
    assert_eq!(listed.len() as u64, N);

    m.begin().await;
    let revoked = cluster.revoke_all("cu").await.unwrap();
    m.end(
        &format!("cluster revoke_all of {N} in {groups} slots"),
        &[("evalsha", 2), ("del", groups)],
    )
    .await;
    assert_eq!(revoked, N);

    report::metric(format!(
        "sessions_round_trips [{}]: commands sent per operation (MONITOR), scripts cached: {}",
        kind.name(),
        m.lines.join("; ")
    ));
    drop(server);
}
