//! End to end: one real Redis and two instances of the app as separate processes (A on
//! redis-rs, B on fred), driven over HTTP: a session made on A works on B, B lists and
//! revokes A's device and A then refuses it, the sign-in limit is shared (exactly `max`
//! admitted across both), and after a Redis restart both recover without restarting.

use std::process::Stdio;
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};
use tests_conformance::context::unique_prefix;
use tests_conformance::server::RedisServer;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// One app instance; killed on drop.
struct Instance {
    base: String,
    _child: Child,
}

async fn start(redis_url: &str, prefix: &str, backend: &str) -> Instance {
    let mut child = Command::new(env!("CARGO_BIN_EXE_axum-two-instances"))
        .env("REDIS_URL", redis_url)
        .env("RUSTAUTH_KV_PREFIX", prefix)
        .env("RUSTAUTH_KV_BACKEND", backend)
        .env("LISTEN", "127.0.0.1:0")
        .env_remove("RUSTAUTH_KV_URL")
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start the app");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .expect("the app starts within 30 s")
        .unwrap()
        .expect("a line on stdout");
    let addr = line
        .strip_prefix("listening on ")
        .expect("listening on ADDR")
        .to_owned();
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Instance {
        base: format!("http://{addr}"),
        _child: child,
    }
}

type Http = Client<HttpConnector, Full<bytes::Bytes>>;

struct Reply {
    status: StatusCode,
    cookie: Option<String>,
    json: Value,
}

async fn call(
    http: &Http,
    method: Method,
    url: String,
    headers: &[(&str, &str)],
    body: Value,
) -> Reply {
    let mut req = Request::builder().method(method).uri(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req
        .header("content-type", "application/json")
        .body(Full::new(body.to_string().into()))
        .unwrap();
    let res = tokio::time::timeout(Duration::from_secs(10), http.request(req))
        .await
        .expect("an answer within 10 s")
        .expect("HTTP");
    let status = res.status();
    let cookie = res
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(str::to_owned);
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Reply {
        status,
        cookie,
        json,
    }
}

async fn sign_in(
    http: &Http,
    on: &Instance,
    user: &str,
    password: &str,
    device: &str,
    client_ip: &str,
) -> Reply {
    let body = json!({ "user": user, "password": password });
    let headers = [("user-agent", device), ("x-forwarded-for", client_ip)];
    call(
        http,
        Method::POST,
        format!("{}/sign-in", on.base),
        &headers,
        body,
    )
    .await
}

async fn get(http: &Http, on: &Instance, path: &str, cookie: &str) -> Reply {
    call(
        http,
        Method::GET,
        format!("{}{path}", on.base),
        &[("cookie", cookie)],
        Value::Null,
    )
    .await
}

async fn post(http: &Http, on: &Instance, path: &str, cookie: &str) -> Reply {
    call(
        http,
        Method::POST,
        format!("{}{path}", on.base),
        &[("cookie", cookie)],
        Value::Null,
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_share_sessions_devices_and_limits() {
    tokio::time::timeout(Duration::from_secs(120), scenario())
        .await
        .expect("the scenario finishes within 120 s");
}

async fn scenario() {
    let server =
        RedisServer::start().unwrap_or_else(|e| panic!("this test needs redis-server: {e}"));
    let prefix = unique_prefix("two-instances");
    let a = start(&server.url(), &prefix, "redis").await;
    let b = start(&server.url(), &prefix, "fred").await;
    let http: Http = Client::builder(TokioExecutor::new()).build_http();

    // Sign in on A, use the cookie on B.
    let laptop = sign_in(&http, &a, "alice", "wonderland", "laptop", "198.51.100.1").await;
    assert_eq!(laptop.status, StatusCode::OK);
    let laptop = laptop.cookie.expect("a session cookie");
    let me = get(&http, &b, "/me", &laptop).await;
    assert_eq!(
        (me.status, me.json["user"].clone()),
        (StatusCode::OK, json!("alice"))
    );

    // A second device on B; B lists both, this one marked current.
    let phone = sign_in(&http, &b, "alice", "wonderland", "phone", "198.51.100.2").await;
    let phone = phone.cookie.expect("a session cookie");
    let list = get(&http, &b, "/devices", &phone).await;
    let devices = list.json["devices"].as_array().expect("devices").clone();
    assert_eq!(devices.len(), 2, "{:?}", list.json);
    let other: Vec<&Value> = devices
        .iter()
        .filter(|d| d["current"] == json!(false))
        .collect();
    assert_eq!(other.len(), 1);
    assert_eq!(other[0]["device"], json!("laptop"));

    // Revoke the laptop on B: A refuses its cookie from now on, even after it is used.
    let path = format!("/devices/{}/revoke", other[0]["id"].as_str().unwrap());
    assert_eq!(
        post(&http, &b, &path, &phone).await.json["revoked"],
        json!(1)
    );
    assert_eq!(
        get(&http, &a, "/me", &laptop).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        get(&http, &b, "/me", &laptop).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(get(&http, &a, "/me", &phone).await.status, StatusCode::OK);

    // "Sign out my other devices" on A kills a tablet signed in on B.
    let tablet = sign_in(&http, &b, "alice", "wonderland", "tablet", "198.51.100.3")
        .await
        .cookie
        .unwrap();
    assert_eq!(
        post(&http, &a, "/devices/revoke-others", &phone).await.json["revoked"],
        json!(1)
    );
    assert_eq!(
        get(&http, &b, "/me", &tablet).await.status,
        StatusCode::UNAUTHORIZED
    );

    // One client, alternating instances: exactly 3 attempts (Better Auth's sign-in rule)
    // get an answer, the rest are 429.
    let mut statuses = Vec::new();
    for i in 0..8 {
        let on = if i % 2 == 0 { &a } else { &b };
        statuses.push(
            sign_in(&http, on, "bob", "wrong", "x", "203.0.113.50")
                .await
                .status,
        );
    }
    let admitted = statuses
        .iter()
        .filter(|s| **s != StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert_eq!(admitted, 3, "{statuses:?}");
    assert!(
        statuses[..3].iter().all(|s| *s == StatusCode::UNAUTHORIZED),
        "{statuses:?}"
    );

    // Restart Redis on its port (its data is gone: snapshots are off). Both instances
    // recover on their own: sign in again on A, use it on B.
    let config = server.kill();
    let down = get(&http, &a, "/me", &phone).await.status;
    assert!(down.is_server_error(), "while Redis is down: {down}");
    let server = RedisServer::start_with(config).expect("Redis restarts on its port");
    let deadline = Instant::now() + Duration::from_secs(20);
    let cookie = loop {
        let r = sign_in(&http, &a, "alice", "wonderland", "laptop", "198.51.100.9").await;
        if r.status == StatusCode::OK {
            break r.cookie.unwrap();
        }
        assert!(
            Instant::now() < deadline,
            "A did not recover: {}\n{}",
            r.status,
            server.log_tail(20)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r = get(&http, &b, "/devices", &cookie).await;
        if r.status == StatusCode::OK {
            assert_eq!(r.json["devices"].as_array().map(Vec::len), Some(1));
            break;
        }
        assert!(Instant::now() < deadline, "B did not recover: {}", r.status);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
