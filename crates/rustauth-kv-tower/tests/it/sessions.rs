//! The tower-sessions store on every topology: what it stores (JSON of the record, under
//! the documented key, expiring at the record's expiry), that `create` never overwrites,
//! that signed-in sessions are indexed per user, and that a revoked session stays gone
//! whatever a request still holding it saves.

use std::collections::HashMap;
use std::sync::Arc;

use rustauth_kv_tower::{KvSessionStore, AXUM_LOGIN_KEY};
use serde_json::json;
use tests_conformance::context::Topology;
use tests_conformance::probe::Pttl;
use time::{Duration, OffsetDateTime};
use tower_sessions::session::{Id, Record};
use tower_sessions::{Session, SessionStore};

use crate::support::{per_topology, Pair};

fn record(user: Option<&str>, ttl: Duration) -> Record {
    let mut data = HashMap::new();
    data.insert("theme".to_owned(), json!("dark"));
    if let Some(user) = user {
        data.insert(
            AXUM_LOGIN_KEY.to_owned(),
            json!({"user_id": user, "auth_hash": [1, 2, 3]}),
        );
    }
    Record {
        id: Id::default(),
        data,
        // Whole seconds: the JSON keeps nanoseconds, but compare without them.
        expiry_date: (OffsetDateTime::now_utc() + ttl)
            .replace_nanosecond(0)
            .unwrap(),
    }
}

fn stores(pair: &Pair) -> (KvSessionStore, KvSessionStore) {
    (KvSessionStore::new(&pair.a), KvSessionStore::new(&pair.b))
}

async fn anonymous_roundtrip_and_expiry(topology: Topology) {
    let pair = Pair::new(topology, "ts-anon").await;
    let (a, b) = stores(&pair);
    let mut rec = record(None, Duration::minutes(10));
    a.create(&mut rec).await.unwrap();
    assert_eq!(
        b.load(&rec.id).await.unwrap(),
        Some(rec.clone()),
        "b reads what a wrote"
    );

    // Golden bytes: the JSON of the record under {prefix}secondary:tower-session:{id}.
    let key = pair.key(&format!("secondary:tower-session:{}", rec.id));
    let raw = pair.probe.get(&key).await.expect("the anonymous key");
    let stored: Record = serde_json::from_slice(&raw).expect("the JSON of a Record");
    assert_eq!(stored, rec);
    let text = String::from_utf8(raw).unwrap();
    assert!(text.contains(r#""data":{"theme":"dark"}"#), "{text}");
    match pair.probe.pttl(&key).await {
        Pttl::Ms(ms) => assert!((595_000..=600_000).contains(&ms), "pttl {ms}"),
        other => panic!("expected an expiry, got {other:?}"),
    }

    // save updates and moves the expiry to the record's new date.
    rec.data.insert("theme".into(), json!("light"));
    rec.expiry_date += Duration::minutes(10);
    a.save(&rec).await.unwrap();
    assert_eq!(b.load(&rec.id).await.unwrap(), Some(rec.clone()));
    let Pttl::Ms(ms) = pair.probe.pttl(&key).await else {
        panic!("expiry lost")
    };
    assert!(ms > 1_190_000, "pttl {ms}");

    b.delete(&rec.id).await.unwrap();
    assert_eq!(a.load(&rec.id).await.unwrap(), None);
    a.save(&rec).await.unwrap();
    assert_eq!(
        b.load(&rec.id).await.unwrap(),
        None,
        "a deleted session is not re-created"
    );

    // An already expired record is never written.
    let mut old = record(None, Duration::seconds(-5));
    a.create(&mut old).await.unwrap();
    assert_eq!(b.load(&old.id).await.unwrap(), None);
}

async fn create_never_overwrites(topology: Topology) {
    let pair = Pair::new(topology, "ts-collide").await;
    let (a, b) = stores(&pair);
    for user in [None, Some("alice")] {
        let mut first = record(user, Duration::minutes(5));
        a.create(&mut first).await.unwrap();
        let taken = first.id;
        let mut second = record(user, Duration::minutes(5));
        second.id = taken;
        second.data.insert("theme".into(), json!("intruder"));
        b.create(&mut second).await.unwrap();
        assert_ne!(second.id, taken, "a collision draws a new id ({user:?})");
        assert_eq!(
            a.load(&taken).await.unwrap(),
            Some(first),
            "the first record is intact"
        );
        assert_eq!(a.load(&second.id).await.unwrap(), Some(second));
    }
}

async fn signed_in_sessions_are_indexed(topology: Topology) {
    let pair = Pair::new(topology, "ts-index").await;
    let (a, b) = stores(&pair);
    let mut laptop = record(Some("alice"), Duration::hours(1));
    let mut phone = record(Some("alice"), Duration::hours(2));
    let mut other = record(Some("bob"), Duration::hours(1));
    for r in [&mut laptop, &mut phone, &mut other] {
        a.create(r).await.unwrap();
    }
    let devices = b.devices("alice").await.unwrap();
    let ids: Vec<_> = devices.iter().map(|d| d.id.clone()).collect();
    assert_eq!(
        ids,
        vec![laptop.id.to_string(), phone.id.to_string()],
        "soonest first"
    );
    let decoded: Record = serde_json::from_slice(&devices[0].value).unwrap();
    assert_eq!(decoded, laptop, "a device's value is the record's JSON");
    assert_eq!(b.load(&phone.id).await.unwrap(), Some(phone.clone()));
    // Stored as an index session: {prefix}session:{id} (a hash), nothing anonymous.
    assert_eq!(
        pair.probe
            .key_type(&pair.key(&format!("session:{}", laptop.id)))
            .await,
        "hash"
    );
    assert!(pair
        .probe
        .get(&pair.key(&format!("secondary:tower-session:{}", laptop.id)))
        .await
        .is_none());
    // bob cannot revoke alice's device by id.
    assert!(!b
        .revoke_device("bob", &laptop.id.to_string())
        .await
        .unwrap());
    assert!(a.load(&laptop.id).await.unwrap().is_some());
}

async fn revoked_sessions_stay_gone(topology: Topology) {
    let pair = Pair::new(topology, "ts-revoke").await;
    let (a, b) = stores(&pair);
    let mut s: Vec<Record> = (0..4)
        .map(|_| record(Some("alice"), Duration::hours(1)))
        .collect();
    for r in &mut s {
        a.create(r).await.unwrap();
    }
    // One device, by id from the list.
    assert!(b
        .revoke_device("alice", &b.device_id(&s[0].id.to_string()).unwrap())
        .await
        .unwrap());
    // The others than s[1].
    assert_eq!(
        b.revoke_other_devices("alice", &s[1].id.to_string())
            .await
            .unwrap(),
        2
    );
    // A request that still holds each revoked session saves it (again and again).
    for r in [&s[0], &s[2], &s[3]] {
        let mut r = r.clone();
        r.data.insert("theme".into(), json!("resurrected?"));
        r.expiry_date += Duration::hours(1);
        a.save(&r).await.unwrap();
        a.save(&r).await.unwrap();
        assert_eq!(
            b.load(&r.id).await.unwrap(),
            None,
            "a revoked session stays gone"
        );
    }
    let left: Vec<_> = b
        .devices("alice")
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.id)
        .collect();
    assert_eq!(left, vec![s[1].id.to_string()]);
    // All.
    assert_eq!(b.revoke_all_devices("alice").await.unwrap(), 1);
    a.save(&s[1]).await.unwrap();
    assert_eq!(b.load(&s[1].id).await.unwrap(), None);
    assert!(b.devices("alice").await.unwrap().is_empty());
}

async fn sign_in_and_out_keep_the_id(topology: Topology) {
    let pair = Pair::new(topology, "ts-move").await;
    let (a, b) = stores(&pair);
    let mut rec = record(None, Duration::hours(1));
    a.create(&mut rec).await.unwrap();
    // Sign-in without cycling the id: the anonymous record moves into the index.
    rec.data
        .insert(AXUM_LOGIN_KEY.into(), json!({"user_id": "carol"}));
    a.save(&rec).await.unwrap();
    assert_eq!(b.load(&rec.id).await.unwrap(), Some(rec.clone()));
    assert_eq!(b.devices("carol").await.unwrap().len(), 1);
    let anon = pair.key(&format!("secondary:tower-session:{}", rec.id));
    assert!(
        pair.probe.get(&anon).await.is_none(),
        "the anonymous key was consumed"
    );
    // Sign-out without cycling: back to an anonymous key, out of the index.
    rec.data.remove(AXUM_LOGIN_KEY);
    a.save(&rec).await.unwrap();
    assert_eq!(b.load(&rec.id).await.unwrap(), Some(rec.clone()));
    assert!(b.devices("carol").await.unwrap().is_empty());
    assert!(pair.probe.get(&anon).await.is_some());
}

async fn through_tower_sessions(topology: Topology) {
    let pair = Pair::new(topology, "ts-session").await;
    let (a, b) = stores(&pair);
    let a: Arc<KvSessionStore> = Arc::new(a);
    // A fresh session: tower-sessions calls `create` on the first save.
    let session = Session::new(None, a.clone(), None);
    session.insert("counter", 1).await.unwrap();
    session
        .insert(AXUM_LOGIN_KEY, json!({"user_id": "dave"}))
        .await
        .unwrap();
    session.save().await.unwrap();
    let id = session.id().expect("an id after save");
    let loaded = b.load(&id).await.unwrap().expect("stored");
    assert_eq!(loaded.data["counter"], json!(1));
    assert_eq!(b.devices("dave").await.unwrap().len(), 1);
    // Another request loads it by id, changes it, saves.
    let again = Session::new(Some(id), Arc::new(b.clone()), None);
    assert_eq!(again.get::<i32>("counter").await.unwrap(), Some(1));
    again.insert("counter", 2).await.unwrap();
    again.save().await.unwrap();
    // cycle_id (what axum-login does on sign-in): a new id, the old one deleted.
    again.cycle_id().await.unwrap();
    again.save().await.unwrap();
    let new_id = again.id().unwrap();
    assert_ne!(new_id, id);
    assert_eq!(a.load(&id).await.unwrap(), None);
    assert_eq!(
        a.load(&new_id).await.unwrap().unwrap().data["counter"],
        json!(2)
    );
    let devices = b.devices("dave").await.unwrap();
    assert_eq!(devices.len(), 1);
    assert_eq!(devices[0].id, new_id.to_string());
}

per_topology!(
    anonymous_roundtrip_and_expiry,
    create_never_overwrites,
    signed_in_sessions_are_indexed,
    revoked_sessions_stay_gone,
    sign_in_and_out_keep_the_id,
    through_tower_sessions,
);

/// tower-sessions 0.14's `SessionStore` (axum-login 0.18) on the same store: a record
/// written through 0.14 reads back through 0.15 (same JSON), and the other way.
#[cfg(feature = "tower-sessions-014")]
async fn tower_sessions_014_and_015_share_records(topology: Topology) {
    use rustauth_kv_tower::tower_sessions_core_014 as v014;

    let pair = Pair::new(topology, "ts-014").await;
    let (a, b) = stores(&pair);
    let mut old = v014::session::Record {
        id: v014::session::Id::default(),
        data: record(Some("erin"), Duration::hours(1)).data,
        expiry_date: (OffsetDateTime::now_utc() + Duration::hours(1))
            .replace_nanosecond(0)
            .unwrap(),
    };
    v014::SessionStore::create(&a, &mut old).await.unwrap();
    let id015: Id = old.id.to_string().parse().unwrap();
    let read = SessionStore::load(&b, &id015)
        .await
        .unwrap()
        .expect("read through 0.15");
    assert_eq!(read.data, old.data);
    assert_eq!(read.expiry_date, old.expiry_date);
    assert_eq!(b.devices("erin").await.unwrap().len(), 1);
    assert_eq!(
        v014::SessionStore::load(&a, &old.id).await.unwrap(),
        Some(old)
    );
}

#[cfg(feature = "tower-sessions-014")]
per_topology!(tower_sessions_014_and_015_share_records);
