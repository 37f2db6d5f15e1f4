//! The Rust side of `cargo xtask better-auth`: against one Redis server of its own, runs
//! a pinned Better Auth (Node, installed by xtask) and our crates (redis-rs and fred) on
//! the same keys, in both directions, and exits non-zero when any check fails.
//!
//! Usage: `better_auth_interop --node-dir VERSION=DIR [--node-dir ...]`, where DIR holds
//! `node_modules` and `interop.mjs` (what xtask prepares under `target/better-auth/`).
//!
//! Checks per version: Better Auth's storage writes read by us (bytes, TTL 0 = no
//! expiry, `increment`'s counter and TTL) and ours read by it (`get`, `getAndDelete`,
//! `increment` continuing our counter); a real Better Auth sign-up read through
//! `BetterAuthSessions::read_cookie`; a session we write and sign accepted by Better
//! Auth's own `getSession`; the watermark both ways (1.7.25); one rate limit counted by
//! both sides (total admitted = max, 1.7.25); on 1.6.9 our limiter refuses its JSON
//! record instead of resetting it.

use std::path::PathBuf;
use std::process::{Command, ExitCode};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kv_contract::better_auth::{
    sign_cookie, BetterAuthSessionOptions, BetterAuthSessions, IsoTime, SessionRecord,
    SessionValue, UserRecord,
};
use kv_contract::config::ConnectionOptions;
use kv_contract::rate_limit::{
    bucket_key, BetterAuthRateLimiter, PathLimit, PathRules, RateLimiter,
};
use kv_contract::storage::StorageOptions;
use kv_contract::{SecondaryStorage, ServerStorage};
use serde_json::{json, Value};
use tests_conformance::probe::{Probe, Pttl};
use tests_conformance::server::RedisServer;
use tests_conformance::BackendKind;

const SECRET: &str = "interop-secret-interop-secret-interop-secret";

struct Run {
    version: String,
    dir: PathBuf,
    url: String,
    failures: Vec<String>,
}

impl Run {
    fn node(&self, action: &str, args: Value) -> Value {
        let started = Instant::now();
        let out = Command::new("node")
            .arg("interop.mjs")
            .arg(action)
            .arg(args.to_string())
            .current_dir(&self.dir)
            .output()
            .unwrap_or_else(|e| panic!("cannot run node in {}: {e}", self.dir.display()));
        if !out.status.success() {
            panic!(
                "node interop.mjs {action} failed ({}):\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let line = String::from_utf8_lossy(&out.stdout);
        let v: Value = serde_json::from_str(line.trim())
            .unwrap_or_else(|e| panic!("node {action} printed {line:?}: {e}"));
        println!("    node {action}: {:.2?} → {v}", started.elapsed());
        v
    }

    fn check(&mut self, name: &str, ok: bool, detail: impl std::fmt::Display) {
        if ok {
            println!("  ok   {} {name}", self.version);
        } else {
            println!("  FAIL {} {name}: {detail}", self.version);
            self.failures
                .push(format!("{} {name}: {detail}", self.version));
        }
    }
}

async fn stores(url: &str, prefix: &str) -> Vec<(&'static str, Arc<dyn SecondaryStorage>)> {
    let opts = StorageOptions::builder()
        .better_auth_compatible()
        .prefix(prefix)
        .build()
        .unwrap();
    let conn_opts = ConnectionOptions::from_url(url).unwrap();
    let mut out: Vec<(&'static str, Arc<dyn SecondaryStorage>)> = Vec::new();
    for kind in [BackendKind::Redis, BackendKind::Fred] {
        let conn = kind.connect(&conn_opts).await.expect("connect");
        out.push((
            kind.name(),
            Arc::new(ServerStorage::new(conn, opts.clone())),
        ));
    }
    out
}

async fn run_version(run: &mut Run) {
    let v17 = !run.version.starts_with("1.6");
    let prefix = format!("interop-{}:", run.version);
    let base = json!({ "url": run.url, "prefix": prefix, "secret": SECRET });
    let with = |extra: Value| {
        let mut b = base.clone();
        b.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        b
    };
    let probe = Probe::connect(&run.url).await;
    let stores = stores(&run.url, &prefix).await;
    let raw = |k: &str| format!("{prefix}{k}").into_bytes();

    // 1. Better Auth's storage writes, read by us.
    let w = run.node("storage-write", base.clone());
    for (name, s) in &stores {
        let got = s.get("with-ttl").await.unwrap();
        run.check(
            &format!("{name} reads set(k, v, 60)"),
            got.as_deref() == Some(&b"v-ttl"[..]),
            format!("{got:?}"),
        );
        let got = s.get("ttl-zero").await.unwrap();
        run.check(
            &format!("{name} reads set(k, v, 0)"),
            got.as_deref() == Some(&b"v-zero"[..]),
            format!("{got:?}"),
        );
    }
    let p = probe.pttl(&raw("with-ttl")).await;
    run.check(
        "SETEX 60 seen as PTTL ≤ 60 s",
        matches!(p, Pttl::Ms(ms) if ms <= 60_000 && ms > 50_000),
        format!("{p:?}"),
    );
    let p = probe.pttl(&raw("ttl-zero")).await;
    run.check(
        "TTL 0 stored without expiry",
        p == Pttl::Persistent,
        format!("{p:?}"),
    );
    run.check(
        "increment present from 1.7",
        w["increment"] == json!(v17),
        &w,
    );
    if v17 {
        run.check("increment counts 1, 2", w["counts"] == json!([1, 2]), &w);
        run.check(
            "fractional TTL throws TypeError",
            w["fractional"] == "TypeError",
            &w,
        );
        let n = stores[0]
            .1
            .increment("ctr", Duration::from_secs(10))
            .await
            .unwrap();
        run.check("our increment continues Better Auth's counter", n == 3, n);
        let p = probe.pttl(&raw("ctr")).await;
        run.check(
            "counter TTL from Better Auth's first call (10 s)",
            matches!(p, Pttl::Ms(ms) if ms <= 10_000),
            format!("{p:?}"),
        );
    }

    // 2. Our writes, read by Better Auth.
    stores[1]
        .1
        .set("from-rust", "v-rust".into(), Some(Duration::from_secs(60)))
        .await
        .unwrap();
    stores[0]
        .1
        .set("take", "once".into(), Some(Duration::from_secs(60)))
        .await
        .unwrap();
    if v17 {
        let n = stores[1]
            .1
            .increment("rust-ctr", Duration::from_secs(10))
            .await
            .unwrap();
        run.check("our increment creates 1", n == 1, n);
    }
    let r = run.node("storage-read", with(json!({ "keys": ["from-rust"] })));
    run.check(
        "Better Auth reads our set",
        r["values"]["from-rust"] == "v-rust",
        &r,
    );
    if v17 {
        run.check(
            "getAndDelete consumes our value once",
            r["taken"] == json!(["once", null]),
            &r,
        );
        run.check(
            "Better Auth's increment continues ours",
            r["incremented"] == 2,
            &r,
        );
    } else {
        run.check("1.6.9 has no getAndDelete", r["getAndDelete"] == false, &r);
    }

    // 3. A real Better Auth sign-up, read by us through the signed cookie.
    let sessions =
        BetterAuthSessions::new(stores[0].1.clone(), BetterAuthSessionOptions::default());
    let fred_sessions =
        BetterAuthSessions::new(stores[1].1.clone(), BetterAuthSessionOptions::default());
    let up = run.node("sign-up", with(json!({ "email": "node@example.com" })));
    let cookie = up["cookie"].as_str().unwrap_or_default().to_owned();
    let user_id = up["userId"].as_str().unwrap_or_default().to_owned();
    let read = fred_sessions.read_cookie(&cookie, SECRET.as_bytes()).await;
    run.check(
        "we read Better Auth's session from its cookie",
        matches!(&read, Ok(Some(v)) if v.session.token == up["token"] && v.user.email == "node@example.com"),
        format!("{read:?}"),
    );
    let listed = sessions.list(&user_id).await.map(|l| l.len());
    run.check(
        "its active-sessions index lists it",
        matches!(listed, Ok(1)),
        format!("{listed:?}"),
    );

    // 4. A session we write and sign, accepted by Better Auth's getSession.
    let now = probe.now_ms().await as i64;
    let token = format!("rustToken{now}");
    let value = SessionValue {
        session: SessionRecord {
            id: format!("rust-session-{now}"),
            token: token.clone(),
            user_id: "rust-user".into(),
            expires_at: IsoTime(now + 7 * 86_400_000),
            created_at: IsoTime(now),
            updated_at: IsoTime(now),
            ip_address: Some(String::new()),
            user_agent: Some("rust".into()),
            extra: Default::default(),
        },
        user: UserRecord {
            id: "rust-user".into(),
            name: "Rust".into(),
            email: "rust@example.com".into(),
            email_verified: true,
            image: None,
            created_at: IsoTime(now - 1000),
            updated_at: IsoTime(now - 1000),
            extra: Default::default(),
        },
    };
    sessions.write(&value).await.unwrap();
    let ours = sign_cookie(&token, SECRET.as_bytes());
    let got = run.node("get-session", with(json!({ "cookie": ours })));
    run.check(
        "Better Auth's getSession accepts our session and cookie",
        got["token"] == token.as_str() && got["email"] == "rust@example.com",
        &got,
    );
    let bad = sign_cookie(&token, b"another secret");
    let got = run.node("get-session", with(json!({ "cookie": bad })));
    run.check(
        "…and rejects it signed with another secret",
        got.is_null(),
        &got,
    );

    // 5. The watermark, both ways (1.7.16+).
    if v17 {
        fred_sessions.revoke_all("rust-user").await.unwrap();
        // A racing writer caches the session again: the watermark must still reject it.
        probe
            .set(
                &raw(&token),
                &serde_json::to_vec(&value).unwrap(),
                Some(Duration::from_secs(600)),
            )
            .await;
        let got = run.node("get-session", with(json!({ "cookie": ours })));
        run.check(
            "Better Auth rejects a session created before our watermark",
            got.is_null(),
            &got,
        );
        run.node("revoke-all", with(json!({ "userId": user_id })));
        let wm = probe
            .get(&raw(&format!("revoked-sessions-before-{user_id}")))
            .await;
        run.check(
            "Better Auth wrote its watermark",
            wm.is_some(),
            format!("{wm:?}"),
        );
        let read = sessions.read_cookie(&cookie, SECRET.as_bytes()).await;
        run.check(
            "we reject Better Auth's revoked session",
            matches!(read, Ok(None)),
            format!("{read:?}"),
        );
    }

    // 6. One rate limit, both sides counting.
    let rules = PathRules::default();
    let PathLimit::Limit(rule) = rules.resolve("/sign-in/email") else {
        unreachable!()
    };
    let limiter = BetterAuthRateLimiter::new(stores[0].1.clone());
    let ip = "198.51.100.77";
    let bucket = bucket_key(Some(ip), "/sign-in/email");
    if v17 {
        let mut admitted = 0;
        admitted += limiter.consume(&bucket, &rule, 1).await.unwrap().allowed as u64;
        let n = run.node("rate-limit", with(json!({ "ip": ip, "n": 2 })));
        let node_ok =
            |s: &Value| s.as_array().unwrap().iter().filter(|x| x[0] != 429).count() as u64;
        admitted += node_ok(&n["statuses"]);
        let d = limiter.consume(&bucket, &rule, 1).await.unwrap();
        admitted += d.allowed as u64;
        let n2 = run.node("rate-limit", with(json!({ "ip": ip, "n": 2 })));
        admitted += node_ok(&n2["statuses"]);
        run.check(
            &format!("total admitted by both = max ({})", rule.max()),
            admitted == rule.max(),
            admitted,
        );
        run.check(
            "Better Auth's 429 says the full window",
            n2["statuses"][0] == json!([429, "10"]),
            &n2,
        );
        let stored = probe.get(&raw(&bucket)).await;
        run.check(
            "one record counts all 6 requests",
            stored.as_deref() == Some(&b"6"[..]),
            format!("{stored:?}"),
        );
    } else {
        run.node("rate-limit", with(json!({ "ip": ip, "n": 1 })));
        let e = limiter.consume(&bucket, &rule, 1).await;
        run.check(
            "our 1.7 limiter refuses 1.6.9's JSON record (never resets it)",
            matches!(&e, Err(e) if e.kind() == kv_contract::ErrorKind::Script),
            format!("{e:?}"),
        );
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let mut dirs = Vec::new();
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--node-dir" => {
                let spec = it.next().unwrap_or_default();
                let Some((v, d)) = spec.split_once('=') else {
                    eprintln!("--node-dir needs VERSION=DIR");
                    return ExitCode::from(2);
                };
                dirs.push((v.to_owned(), PathBuf::from(d)));
            }
            other => {
                eprintln!("unknown argument {other:?}; usage: better_auth_interop --node-dir VERSION=DIR ...");
                return ExitCode::from(2);
            }
        }
    }
    if dirs.is_empty() {
        eprintln!("no --node-dir given");
        return ExitCode::from(2);
    }
    let server = match RedisServer::start() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("cannot start redis-server: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut failures = Vec::new();
    for (version, dir) in dirs {
        println!("Better Auth {version} ({})", dir.display());
        let started = Instant::now();
        let mut run = Run {
            version,
            dir,
            url: server.url(),
            failures: Vec::new(),
        };
        run_version(&mut run).await;
        println!("  {} checks done in {:.1?}", run.version, started.elapsed());
        failures.extend(run.failures);
    }
    if failures.is_empty() {
        println!("better-auth interop: all checks passed");
        ExitCode::SUCCESS
    } else {
        eprintln!(
            "better-auth interop: {} failed:\n  {}\n--- server log ---\n{}",
            failures.len(),
            failures.join("\n  "),
            server.log_tail(30)
        );
        ExitCode::FAILURE
    }
}
