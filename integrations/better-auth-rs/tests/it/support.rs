//! Two `Kv` bundles over one keyspace and one fresh prefix (`a` writes, `b` reads), two
//! better-auth-rs instances over them, and a request helper.

use std::collections::HashMap;

use better_auth::middleware::RateLimitConfig;
use better_auth::plugins::{EmailPasswordPlugin, SessionManagementPlugin};
use better_auth::{AuthConfig, BetterAuth};
use better_auth_core::store::StatelessSchema;
use better_auth_core::{AuthRequest, HttpMethod};
use rustauth_kv::{Backend, Kv, KvOptions};
use rustauth_kv_better_auth_rs::{KvRateLimitStorage, KvSecondaryStorage};
use serde_json::Value;
use tests_conformance::context::{server_target, unique_prefix, BackendKind, Topology};
use tests_conformance::probe::Probe;

/// One case's bundles and raw probe.
pub(crate) struct Pair {
    pub(crate) a: Kv,
    pub(crate) b: Kv,
    pub(crate) prefix: String,
    pub(crate) probe: Probe,
}

fn backend(kind: BackendKind) -> Backend {
    kind.facade_backend()
}

impl Pair {
    pub(crate) async fn new(topology: Topology, case: &str) -> Pair {
        let prefix = unique_prefix(case);
        if !topology.needs_server() {
            let options = KvOptions::builder().memory().prefix(&prefix).build();
            let a = Kv::memory_with(options.expect("memory options"));
            let probe = Probe::Memory(a.memory_keyspace().expect("a keyspace").clone());
            return Pair {
                b: a.clone(),
                a,
                prefix,
                probe,
            };
        }
        // Starts the shared redis-server (or uses RUSTAUTH_REDIS_URL); fails, saying how
        // to provide one, when neither works.
        let (url, probe) = server_target(topology).await;
        let connect = |kind| {
            let options = KvOptions::builder()
                .url(&url)
                .backend(backend(kind))
                .prefix(&prefix)
                .build()
                .expect("options");
            Kv::connect_with(options)
        };
        let a = connect(topology.a).await.expect("connect a");
        let b = connect(topology.b).await.expect("connect b");
        Pair {
            a,
            b,
            prefix,
            probe,
        }
    }

    /// `{prefix}{rest}` as bytes.
    pub(crate) fn key(&self, rest: &str) -> Vec<u8> {
        format!("{}{rest}", self.prefix).into_bytes()
    }
}

/// The same secret on every instance: a cookie signed by one verifies on the other.
pub(crate) const SECRET: &str = "rustauth-kv-better-auth-rs-test-secret-0123456789";

/// How an instance rate-limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Limits {
    /// Rate limiting off.
    Off,
    /// better-auth-rs's secondary-storage counter (`increment`).
    Increment,
    /// `custom_storage` = [`KvRateLimitStorage`].
    Limiter,
}

/// A better-auth-rs instance: users in process memory (`BetterAuth::stateless`, its
/// in-memory adapter), sessions and verifications in `kv`'s secondary storage.
pub(crate) async fn auth(kv: &Kv, limits: Limits) -> BetterAuth<StatelessSchema> {
    let config = AuthConfig::new(SECRET).base_url("http://localhost:3000");
    let mut builder = BetterAuth::stateless(config)
        .secondary_storage(KvSecondaryStorage::new(kv).into_arc())
        .plugin(EmailPasswordPlugin::new().enable_signup(true))
        .plugin(SessionManagementPlugin::new());
    builder = match limits {
        Limits::Off => builder.rate_limit(RateLimitConfig::new().enabled(false)),
        Limits::Increment => builder.rate_limit(RateLimitConfig::new().enabled(true)),
        Limits::Limiter => builder.rate_limit(
            RateLimitConfig::new()
                .enabled(true)
                .custom_storage(KvRateLimitStorage::new(kv).into_arc()),
        ),
    };
    builder.build().await.expect("better-auth-rs builds")
}

/// One response: status, JSON body (`Null` when empty), the `name=value` pairs of its
/// `Set-Cookie` headers joined for a `Cookie` header, and the raw headers.
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) body: Value,
    pub(crate) cookie: String,
    pub(crate) headers: Vec<(String, String)>,
}

impl Reply {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Sends one request (POST with a JSON body, else GET) from the client `203.0.113.7`.
pub(crate) async fn request(
    auth: &BetterAuth<StatelessSchema>,
    path: &str,
    body: Option<Value>,
    cookie: &str,
) -> Reply {
    let mut headers = HashMap::from([
        ("origin".to_owned(), "http://localhost:3000".to_owned()),
        ("x-forwarded-for".to_owned(), "203.0.113.7".to_owned()),
    ]);
    if body.is_some() {
        headers.insert("content-type".into(), "application/json".into());
    }
    if !cookie.is_empty() {
        headers.insert("cookie".into(), cookie.into());
    }
    let method = if body.is_some() {
        HttpMethod::Post
    } else {
        HttpMethod::Get
    };
    let body = body.map(|b| serde_json::to_vec(&b).expect("JSON"));
    let url = format!("http://localhost:3000/api/auth{path}");
    let req = AuthRequest::from_parts(method, path.into(), headers, body, None)
        .with_url(url.parse().expect("URL"));
    let response = auth
        .handle_request(req)
        .await
        .unwrap_or_else(|e| panic!("{path}: better-auth-rs failed: {e} ({e:?})"));
    let headers: Vec<(String, String)> = response
        .headers
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect();
    let cookie = response
        .headers
        .get_all("set-cookie")
        .filter_map(|v| v.split(';').next())
        .collect::<Vec<_>>()
        .join("; ");
    let bytes = response.body.bytes().expect("body bytes");
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|e| panic!("{path}: body is not JSON ({e}): {bytes:?}"))
    };
    Reply {
        status: response.status,
        body,
        cookie,
        headers,
    }
}

/// One `#[tokio::test]` per case and topology: memory, each backend alone, and the two
/// mixes (`a` writes with one client, `b` reads with the other).
macro_rules! per_topology {
    ($($case:ident),* $(,)?) => {
        $(
            mod $case {
                use tests_conformance::context::Topology;
                #[tokio::test]
                async fn memory() { super::$case(Topology::MEMORY).await }
                #[tokio::test]
                async fn redis() { super::$case(Topology::REDIS).await }
                #[tokio::test]
                async fn fred() { super::$case(Topology::FRED).await }
                #[tokio::test]
                async fn redis_then_fred() { super::$case(Topology::REDIS_FRED).await }
                #[tokio::test]
                async fn fred_then_redis() { super::$case(Topology::FRED_REDIS).await }
            }
        )*
    };
}
pub(crate) use per_topology;
