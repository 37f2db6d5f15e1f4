//! Degradation while Redis is down: the app keeps answering by the policies it chose.
//! Rate limits fail open behind a circuit breaker, and secondary storage falls back to
//! process memory; when Redis returns, both go back to it by themselves.
//!
//! ```sh
//! REDIS_URL=redis://127.0.0.1:6379 cargo run -p rustauth-kv --example degradation
//! REDIS_URL=redis://127.0.0.1:6379 RUSTAUTH_KV_BACKEND=fred \
//!     cargo run -p rustauth-kv --features fred --example degradation
//! ```
//!
//! The outage is real, and the server you give is left alone: the example connects
//! through a small TCP relay of its own and stops it, which resets every connection and
//! refuses new ones, as a crashed server or a cut network does. The client (redis-rs or
//! fred) sees exactly that, and the breaker and policies react to its errors. Then the
//! relay comes back on the same port and the client reconnects. It needs a plain TCP
//! server URL; with `memory://` there is no server to lose.
//!
//! Failing open is a choice, made here for availability: the default is to fail closed
//! (deny), which keeps an auth endpoint protected while Redis is down. And the memory
//! fallback is per process: what is written there is not copied back to Redis.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rustauth_kv::rate_limit::DecisionSource;
use rustauth_kv::resilient::{OnUnavailable, ResilientStorage};
use rustauth_kv::{
    BreakerOptions, CircuitBreaker, Endpoint, Kv, KvOptionsBuilder, MemoryStorage, RateLimitRule,
    SecondaryStorage,
};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

type Error = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let configured = KvOptionsBuilder::from_env()?.build()?;
    let Some(server) = configured.connection() else {
        return Err("this example needs a server: set REDIS_URL=redis://host:port".into());
    };
    let Endpoint::Tcp { host, port } = &server.server.endpoint else {
        return Err("this example relays TCP: give a redis://host:port URL".into());
    };
    if server.server.tls {
        return Err("this example relays plain TCP: give a redis:// URL".into());
    }
    let mut relay = Relay::start(format!("{host}:{port}"), 0).await?;

    // The same server settings, reached through the relay, with short timeouts so the
    // outage is noticed quickly.
    let mut through = server.clone();
    through.server.endpoint = Endpoint::Tcp {
        host: "127.0.0.1".into(),
        port: relay.port,
    };
    through.command_timeout = Duration::from_millis(300);
    through.reconnect.max_delay = Duration::from_millis(200);

    // One breaker for everything on this Redis: after 2 failures, stop calling it for
    // 500 ms, then let one probe through.
    let breaker = CircuitBreaker::new(
        BreakerOptions::builder()
            .failure_threshold(2)
            .cool_down(Duration::from_millis(500))
            .build()?,
    );
    let limiter_breaker = breaker.clone();
    let kv = Kv::connect_with(
        KvOptionsBuilder::from_env()?
            .connection(through)
            .rate_limiter(move |r| r.fail_open().circuit_breaker(limiter_breaker))
            .build()?,
    )
    .await?;
    println!(
        "connected: {} through a relay on port {}",
        kv.backend(),
        relay.port
    );
    let fallback: Arc<dyn SecondaryStorage> = Arc::new(MemoryStorage::new());
    let storage = ResilientStorage::new(
        kv.storage(),
        breaker.clone(),
        OnUnavailable::Fallback(fallback),
    );
    let limiter = kv.rate_limiter();
    let rule = RateLimitRule::new(Duration::from_secs(10), 100)?;
    let bucket = format!("198.51.100.9|/get-session|{}", std::process::id());

    // Up: Redis decides and stores.
    let d = limiter.consume(&bucket, &rule, 1).await?;
    assert_eq!(d.source, DecisionSource::Store);
    storage.set("session:before", "alice".into(), None).await?;
    println!(
        "up: rate limit decided by {:?}; session stored in Redis",
        d.source
    );

    // Down.
    relay.stop().await;
    assert!(!kv.is_available().await);
    let started = Instant::now();
    for _ in 0..5 {
        let d = limiter.consume(&bucket, &rule, 1).await?;
        assert!(d.allowed);
        assert_eq!(d.source, DecisionSource::FailedOpen);
    }
    storage.set("session:during", "bob".into(), None).await?;
    assert_eq!(
        storage.get("session:during").await?.as_deref(),
        Some(&b"bob"[..])
    );
    // The fallback is another store: what Redis held is not there.
    assert_eq!(storage.get("session:before").await?, None);
    let stats = breaker.stats();
    assert!(stats.opened >= 1 && stats.rejected >= 1 && stats.fallbacks >= 3);
    println!(
        "down: 5 requests admitted (fail open), session served from memory, in {:?}; \
         breaker {:?}, {} calls failed, {} refused without a round trip",
        started.elapsed(),
        stats.state,
        stats.failures,
        stats.rejected
    );

    // Back: the relay returns on the same port and the client reconnects.
    let _relay = Relay::start(format!("{host}:{port}"), relay.port).await?;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let d = limiter.consume(&bucket, &rule, 1).await?;
        if d.source == DecisionSource::Store {
            break;
        }
        assert!(Instant::now() < deadline, "Redis did not come back in 20 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        storage.get("session:before").await?.as_deref(),
        Some(&b"alice"[..])
    );
    storage.delete("session:before").await?;
    println!(
        "back: rate limit decided by Store; breaker {:?}",
        breaker.state()
    );

    kv.close().await?;
    println!("ok: degradation on {}", kv.backend());
    Ok(())
}

/// A TCP relay to the server, standing in for the network: stopping it drops every
/// relayed connection and the listening socket, as an outage does.
struct Relay {
    port: u16,
    task: JoinHandle<()>,
    pipes: Arc<tokio::sync::Mutex<JoinSet<()>>>,
}

impl Relay {
    /// Listens on `port` (0: any free one) of 127.0.0.1 and relays to `upstream`.
    async fn start(upstream: String, port: u16) -> std::io::Result<Relay> {
        let listener = TcpListener::bind(("127.0.0.1", port)).await?;
        let port = listener.local_addr()?.port();
        let pipes = Arc::new(tokio::sync::Mutex::new(JoinSet::new()));
        let relayed = pipes.clone();
        let task = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let upstream = upstream.clone();
                relayed.lock().await.spawn(async move {
                    if let Ok(mut server) = TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
            }
        });
        Ok(Relay { port, task, pipes })
    }

    /// Closes the listening socket and every relayed connection, and returns once they
    /// are closed (an abort alone takes effect later, on another thread).
    async fn stop(&mut self) {
        self.task.abort();
        let _ = (&mut self.task).await;
        self.pipes.lock().await.shutdown().await;
    }
}
