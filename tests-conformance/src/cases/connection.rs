//! Connection behaviour of the two server backends, each on servers the case starts and
//! stops itself: URL forms, authentication, TLS refusal, timeouts, reconnect after a
//! restart, and error classification.

use std::time::{Duration, Instant};

use kv_contract::{
    Bytes, ConnectionOptions, ErrorKind, KvError, SecondaryStorage, ServerStorage, StorageOptions,
};

use crate::context::{unique_prefix, BackendKind};
use crate::probe::Probe;
use crate::report;
use crate::server::{RedisServer, ServerConfig};

/// Starts a server of its own for one case (on a blocking thread: it waits for PING).
pub(crate) async fn start(config: ServerConfig) -> RedisServer {
    tokio::task::spawn_blocking(move || RedisServer::start_with(config))
        .await
        .expect("start task")
        .unwrap_or_else(|e| panic!("this test needs its own redis-server: {e}"))
}

/// A store on `conn` under a fresh prefix.
pub(crate) fn store(conn: kv_contract::SharedConnection, case: &str) -> ServerStorage {
    let options = StorageOptions::builder()
        .prefix(unique_prefix(case))
        .build()
        .unwrap();
    ServerStorage::new(conn, options)
}

/// Options with a 1 s connect timeout, `command_timeout`, and reconnects every 20–200 ms.
pub(crate) fn options(url: &str, command_timeout: Duration) -> ConnectionOptions {
    ConnectionOptions::builder(url)
        .connect_timeout(Duration::from_secs(1))
        .command_timeout(command_timeout)
        .reconnect_delays(Duration::from_millis(20), Duration::from_millis(200))
        .build()
        .unwrap()
}

/// `redis://`, `valkey://`, `redis+unix://`, `unix://` and a database number all reach
/// the intended server and database.
pub async fn url_forms_reach_the_server(kind: BackendKind) {
    let server = start(ServerConfig::default()).await;
    let sock = server.socket_path().display().to_string();
    let urls = [
        format!("redis://127.0.0.1:{}", server.port()),
        format!("valkey://localhost:{}", server.port()),
        format!("redis+unix://{sock}"),
        format!("unix://{sock}?db=0"),
        format!("redis://127.0.0.1:{}/3", server.port()),
        format!("valkey+unix://{sock}?db=3"),
    ];
    for url in &urls {
        let conn = kind
            .connect(&ConnectionOptions::from_url(url).unwrap())
            .await
            .unwrap_or_else(|e| panic!("{} could not connect to {url}: {e}", kind.name()));
        let s = store(conn, "url");
        s.set("k", Bytes::from(url.clone()), None).await.unwrap();
        let physical = s
            .options()
            .codec
            .key(kv_contract::Namespace::Secondary, "k")
            .unwrap();
        let db = if url.ends_with("/3") || url.ends_with("db=3") {
            3
        } else {
            0
        };
        let probe = Probe::connect(&format!("redis://127.0.0.1:{}/{db}", server.port())).await;
        assert_eq!(
            probe.get(&physical).await.as_deref(),
            Some(url.as_bytes()),
            "{url} wrote to db {db}"
        );
    }
}

/// A password-protected server: the right password connects (default user and an ACL
/// user), a wrong one fails with a server error, and no error or `Debug` output contains
/// the password.
pub async fn password_auth_and_redaction(kind: BackendKind) {
    let secret = "s3cr3t-PassWord";
    let server = start(ServerConfig {
        password: Some(secret.into()),
        ..Default::default()
    })
    .await;
    let good = options(&server.url(), Duration::from_secs(2));
    assert!(
        !format!("{good:?}").contains(secret),
        "Debug of options leaks the password"
    );
    let conn = kind.connect(&good).await.unwrap();
    store(conn, "auth")
        .set("k", "v".into(), None)
        .await
        .unwrap();

    // An ACL user with its own password, given as `user:password@` in the URL.
    let Probe::Server(mut raw) = Probe::connect(&server.url()).await else {
        unreachable!("a server probe")
    };
    let _: () = redis::cmd("ACL")
        .arg(&["SETUSER", "alice", "on", ">alice-pw", "~*", "&*", "+@all"])
        .query_async(&mut raw)
        .await
        .unwrap();
    let alice = format!("redis://alice:alice-pw@127.0.0.1:{}", server.port());
    let conn = kind
        .connect(&options(&alice, Duration::from_secs(2)))
        .await
        .unwrap();
    let s = store(conn, "acl");
    s.set("k", "by-alice".into(), None).await.unwrap();
    let whoami: String = redis::cmd("CLIENT")
        .arg("LIST")
        .query_async(&mut raw)
        .await
        .unwrap();
    assert!(
        whoami.contains("user=alice"),
        "a connection authenticated as alice: {whoami}"
    );

    let wrong = format!("redis://:wrong-{secret}@127.0.0.1:{}", server.port());
    let e = kind
        .connect(&options(&wrong, Duration::from_secs(2)))
        .await
        .unwrap_err();
    let shown = format!("{e} / {e:?}");
    assert!(!shown.contains(secret), "error leaks the password: {shown}");
    assert!(
        matches!(e.kind(), ErrorKind::Server | ErrorKind::Unavailable),
        "wrong password: {shown}"
    );
    let none = format!("redis://127.0.0.1:{}", server.port());
    let result = kind.connect(&options(&none, Duration::from_secs(2))).await;
    match result {
        Err(e) => assert!(!format!("{e:?}").contains(secret)),
        // Some clients connect lazily; the first command must then fail with NOAUTH.
        Ok(conn) => {
            let e = store(conn, "auth").get("k").await.unwrap_err();
            assert_eq!(e.server_code(), Some("NOAUTH"), "{e}");
        }
    }
}

/// TLS. Without a TLS feature, `rediss://` is refused with a clear error — never a
/// silent plaintext connection. Built with `tls-rustls` (`cargo xtask test` runs both
/// builds): a server whose certificate comes from a private CA is reached over verified
/// TLS when that CA is given (and the bytes land in Redis), refused when it is not (the
/// system roots do not trust it), and a TLS handshake against a plaintext port fails
/// cleanly — nothing panics for lack of a rustls crypto provider.
pub async fn rediss_needs_a_tls_feature(kind: BackendKind) {
    let server = start(ServerConfig {
        tls: true,
        ..Default::default()
    })
    .await;
    let tls_url = server.tls_url().expect("a TLS server");
    let ca = server.tls_ca_pem().expect("the test CA");
    let with_ca = |url: &str| {
        ConnectionOptions::builder(url)
            .connect_timeout(Duration::from_secs(2))
            .tls_root_certificates_pem(ca.clone())
            .build()
            .unwrap()
    };
    if !cfg!(feature = "tls-rustls") {
        let url = tls_url.replace("rediss://", "rediss://:pw@");
        let e = kind
            .connect(&options(&url, Duration::from_secs(1)))
            .await
            .unwrap_err();
        let text = e.to_string();
        assert_eq!(e.kind(), ErrorKind::InvalidConfig, "{e}");
        assert!(
            text.contains("tls-rustls") && text.contains("plaintext"),
            "{text}"
        );
        assert!(!text.contains(":pw@"), "{text}");
        let e = kind.connect(&with_ca(&tls_url)).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidConfig, "{e}");
        return;
    }
    // Verified TLS with the private CA: a round trip, checked in Redis over plaintext.
    let conn = kind
        .connect(&with_ca(&tls_url))
        .await
        .unwrap_or_else(|e| panic!("TLS connect with the CA: {e:?}\n{}", server.log_tail(10)));
    let s = store(conn, "tls");
    s.set("k", "over-tls".into(), None).await.unwrap();
    let physical = s.options().key("k").unwrap();
    let probe = Probe::connect(&server.url()).await;
    assert_eq!(
        probe.get(&physical).await.as_deref(),
        Some(&b"over-tls"[..])
    );
    // The same server without its CA: the certificate is not trusted.
    let e = kind
        .connect(&options(&tls_url, Duration::from_secs(2)))
        .await
        .expect_err("an untrusted certificate must be refused");
    assert!(
        e.is_unavailable() || e.kind() == ErrorKind::InvalidConfig,
        "{e:?}"
    );
    // TLS against the plaintext port: the handshake fails with an error.
    let plain = format!("rediss://localhost:{}", server.port());
    let e = kind.connect(&with_ca(&plain)).await.unwrap_err();
    assert!(
        e.is_unavailable(),
        "a TLS handshake with a plaintext server fails: {e:?}"
    );
}

/// Connecting to a closed port fails as `Unavailable` within the connect timeout.
pub async fn unreachable_server_fails_fast(kind: BackendKind) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let started = Instant::now();
    let e = kind
        .connect(&options(
            &format!("redis://127.0.0.1:{port}"),
            Duration::from_secs(1),
        ))
        .await
        .unwrap_err();
    assert!(e.is_unavailable(), "{e}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );
}

/// A server that stops answering (SIGSTOP) makes calls fail with `Timeout` within the
/// command timeout, and calls succeed again once it resumes.
pub async fn hung_server_times_out(kind: BackendKind) {
    let server = start(ServerConfig::default()).await;
    let conn = kind
        .connect(&options(&server.url(), Duration::from_millis(300)))
        .await
        .unwrap();
    let s = store(conn, "hang");
    s.set("k", "v".into(), None).await.unwrap();
    server.signal("STOP");
    let started = Instant::now();
    let result = s.get("k").await;
    let took = started.elapsed();
    server.signal("CONT");
    let e = result.expect_err("a stopped server cannot answer");
    assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
    assert!(
        took < Duration::from_millis(1500),
        "timeout of 300 ms took {took:?}"
    );
    report::metric(format!(
        "hung_server_times_out [{}]: 300 ms timeout fired after {} ms",
        kind.name(),
        took.as_millis()
    ));
    let recovered = until_ok(&s, Duration::from_secs(10)).await;
    assert!(
        recovered.is_some(),
        "no successful call within 10 s after SIGCONT"
    );
}

/// Polls `get` until it succeeds; the time of the first success.
async fn until_ok(s: &ServerStorage, limit: Duration) -> Option<Duration> {
    let started = Instant::now();
    while started.elapsed() < limit {
        if s.get("k").await.is_ok() {
            return Some(started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    None
}

/// After the server is killed and restarted on the same port, the same connection
/// serves calls again without being rebuilt. The time to the first success is recorded.
pub async fn reconnects_after_restart(kind: BackendKind) {
    let server = start(ServerConfig::default()).await;
    let conn = kind
        .connect(&options(&server.url(), Duration::from_millis(500)))
        .await
        .unwrap();
    let s = store(conn, "restart");
    s.set("k", "v".into(), None).await.unwrap();
    let config = tokio::task::spawn_blocking(move || server.kill())
        .await
        .unwrap();
    let e: KvError = s.get("k").await.expect_err("the server is down");
    assert!(e.is_unavailable(), "while down: {e}");
    let restarted_at = Instant::now();
    let server = start(config).await;
    let ready = restarted_at.elapsed();
    let first_ok = until_ok(&s, Duration::from_secs(15)).await;
    let first_ok = first_ok.unwrap_or_else(|| {
        panic!(
            "no successful call within 15 s of the restart; server log:\n{}",
            server.log_tail(20)
        )
    });
    // The restarted server is empty (snapshots are off): the write is gone, not replayed.
    assert_eq!(s.get("k").await.unwrap(), None);
    report::metric(format!(
        "reconnects_after_restart [{}]: server restarted and answering PING after {} ms; \
         first successful call {} ms after that",
        kind.name(),
        ready.as_millis(),
        first_ok.as_millis(),
    ));
}

/// A key of another type under the namespace yields a server error with its code,
/// scripted operations a script error; nothing is overwritten.
pub async fn wrong_type_is_a_server_error(kind: BackendKind) {
    let server = start(ServerConfig::default()).await;
    let conn = kind
        .connect(&options(&server.url(), Duration::from_secs(2)))
        .await
        .unwrap();
    let s = store(conn, "wrongtype");
    let key = s
        .options()
        .codec
        .key(kv_contract::Namespace::Secondary, "h")
        .unwrap();
    let Probe::Server(mut raw) = Probe::connect(&server.url()).await else {
        unreachable!("a server probe")
    };
    // Place a hash where the store expects a string.
    let _: () = redis::cmd("HSET")
        .arg(&key)
        .arg("f")
        .arg("v")
        .query_async(&mut raw)
        .await
        .unwrap();
    let e = s.get("h").await.unwrap_err();
    assert_eq!(
        (e.kind(), e.server_code()),
        (ErrorKind::Server, Some("WRONGTYPE")),
        "{e}"
    );
    let e = s
        .compare_and_set("h", None, "v".into(), None)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Script, "{e}");
    assert!(e.to_string().contains("WRONGTYPE"), "{e}");
    let kept: String = redis::cmd("TYPE")
        .arg(&key)
        .query_async(&mut raw)
        .await
        .unwrap();
    assert_eq!(kept, "hash", "nothing overwritten");
}

/// While the server is down, a rate limiter answers by its policy instead of failing:
/// denied by default (`FailedClosed`), admitted when it fails open (`FailedOpen`);
/// invalid input still fails, and `reset` reports the outage as an error.
pub async fn rate_limit_unavailable_policy(kind: BackendKind) {
    use kv_contract::rate_limit::{
        DecisionSource, RateLimitRule, RateLimiter, RateLimiterOptions, ServerRateLimiter,
    };
    let server = start(ServerConfig::default()).await;
    let conn = kind
        .connect(&options(&server.url(), Duration::from_millis(500)))
        .await
        .unwrap();
    let builder = RateLimiterOptions::builder().prefix(unique_prefix("rl-down"));
    let closed = ServerRateLimiter::new(conn.clone(), builder.clone().build().unwrap());
    let open = ServerRateLimiter::new(conn, builder.fail_open().build().unwrap());
    let rule = RateLimitRule::from_secs(10, 3).unwrap();
    let up = closed.consume("b", &rule, 1).await.unwrap();
    assert_eq!((up.allowed, up.source), (true, DecisionSource::Store));
    tokio::task::spawn_blocking(move || server.kill())
        .await
        .unwrap();
    let d = closed.consume("b", &rule, 1).await.unwrap();
    assert_eq!(
        (d.allowed, d.source, d.retry_after_ms),
        (false, DecisionSource::FailedClosed, 10_000),
        "{d:?}"
    );
    let d = closed.peek("b", &rule).await.unwrap();
    assert_eq!(d.source, DecisionSource::FailedClosed);
    let d = open.consume("b", &rule, 2).await.unwrap();
    assert_eq!(
        (d.allowed, d.source, d.remaining),
        (true, DecisionSource::FailedOpen, 1),
        "{d:?}"
    );
    let e = open.consume("b", &rule, 4).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
    let e = closed.reset("b").await.unwrap_err();
    assert!(e.is_unavailable(), "{e}");
}
