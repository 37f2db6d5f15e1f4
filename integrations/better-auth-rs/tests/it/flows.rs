//! better-auth-rs's own flows over the adapter: sign-up, session lookup, sign-in, the
//! session list and sign-out, on two instances sharing one store (`A` over bundle `a`,
//! `B` over bundle `b`: in the mixes, one backend writes what the other reads). Users
//! live in `A`'s in-memory adapter only; `B` knows sessions through the store alone.

use serde_json::{json, Value};
use tests_conformance::context::Topology;
use tests_conformance::probe::Pttl;

use crate::support::{auth, per_topology, request, Limits, Pair};

async fn sign_up_in_session_and_out(topology: Topology) {
    let pair = Pair::new(topology, "bars-flow").await;
    let app_a = auth(&pair.a, Limits::Off).await;
    let app_b = auth(&pair.b, Limits::Off).await;
    let credentials = json!({
        "email": "ann@example.com",
        "name": "Ann",
        "password": "correct horse battery staple",
    });

    // Sign-up on A: a session in the store, under its token, for 7 days.
    let up = request(&app_a, "/sign-up/email", Some(credentials.clone()), "").await;
    assert_eq!(up.status, 200, "sign-up: {}", up.body);
    let first = up.body["token"]
        .as_str()
        .expect("a session token")
        .to_owned();
    let user_id = up.body["user"]["id"]
        .as_str()
        .expect("a user id")
        .to_owned();
    let session_key = pair.key(&format!("secondary:{first}"));
    let raw = pair
        .probe
        .get(&session_key)
        .await
        .expect("the session is stored");
    let cached: Value = serde_json::from_slice(&raw).expect("better-auth-rs's JSON");
    assert_eq!(cached["session"]["token"], first.as_str());
    assert_eq!(cached["user"]["email"], "ann@example.com");
    let Pttl::Ms(left) = pair.probe.pttl(&session_key).await else {
        panic!("the session has no TTL");
    };
    let week = 7 * 24 * 3600 * 1000;
    assert!(
        (week - 60_000..=week).contains(&left),
        "session PTTL {left}"
    );
    let list_key = pair.key(&format!("secondary:active-sessions-{user_id}"));
    let list = pair
        .probe
        .get(&list_key)
        .await
        .expect("the active-sessions list");
    assert!(
        String::from_utf8_lossy(&list).contains(&first),
        "list without the token"
    );

    // Session lookup on A, and on B, which has never seen the user: it reads the
    // session A wrote (through the other backend in the mixes).
    for (name, app) in [("A", &app_a), ("B", &app_b)] {
        let got = request(app, "/get-session", None, &up.cookie).await;
        assert_eq!(got.status, 200, "get-session on {name}: {}", got.body);
        assert_eq!(got.body["user"]["email"], "ann@example.com", "on {name}");
        assert_eq!(got.body["session"]["token"], first.as_str(), "on {name}");
    }

    // Sign-in on A (the user table is A's): a second session; wrong password refused.
    let bad = json!({"email": "ann@example.com", "password": "wrong password!!"});
    let refused = request(&app_a, "/sign-in/email", Some(bad), "").await;
    assert_eq!(refused.status, 401, "wrong password: {}", refused.body);
    let signin = json!({"email": "ann@example.com", "password": "correct horse battery staple"});
    let inn = request(&app_a, "/sign-in/email", Some(signin), "").await;
    assert_eq!(inn.status, 200, "sign-in: {}", inn.body);
    let second = inn.body["token"].as_str().expect("a token").to_owned();
    assert_ne!(second, first);
    assert!(pair
        .probe
        .get(&pair.key(&format!("secondary:{second}")))
        .await
        .is_some());

    // B lists both sessions from the store.
    let listed = request(&app_b, "/list-sessions", None, &inn.cookie).await;
    assert_eq!(listed.status, 200, "list-sessions on B: {}", listed.body);
    let mut tokens: Vec<&str> = listed
        .body
        .as_array()
        .expect("an array")
        .iter()
        .filter_map(|s| s["token"].as_str())
        .collect();
    tokens.sort_unstable();
    let mut want = vec![first.as_str(), second.as_str()];
    want.sort_unstable();
    assert_eq!(tokens, want);

    // Sign-out on B: the first session is gone for A too; the second one stays.
    let out = request(&app_b, "/sign-out", Some(json!({})), &up.cookie).await;
    assert_eq!(out.status, 200, "sign-out on B: {}", out.body);
    assert!(
        pair.probe.get(&session_key).await.is_none(),
        "session still stored"
    );
    let gone = request(&app_a, "/get-session", None, &up.cookie).await;
    assert_eq!(gone.status, 200);
    assert!(
        gone.body.is_null(),
        "signed-out session still found: {}",
        gone.body
    );
    let kept = request(&app_a, "/get-session", None, &inn.cookie).await;
    assert_eq!(
        kept.body["session"]["token"],
        second.as_str(),
        "{}",
        kept.body
    );
    let list = pair
        .probe
        .get(&list_key)
        .await
        .expect("the list keeps the second session");
    let list = String::from_utf8_lossy(&list);
    assert!(
        list.contains(&second) && !list.contains(&first),
        "list: {list}"
    );
}

per_topology!(sign_up_in_session_and_out);
