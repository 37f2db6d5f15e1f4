//! [`RateLimitLayer`]: a tower `Layer` that asks a [`RateLimiter`] about every request
//! before the inner service sees it. No counting of its own: the limiter decides (one
//! round trip), with its own failure policy and breaker (`RateLimiterOptions`).
//!
//! - **Rules**: Better Auth's path table ([`PathRules`], with custom `*` rules and a
//!   base path to strip), or one [`RateLimitRule`] for every request (per route, with
//!   axum's `route_layer`).
//! - **Bucket**: `{client}|{path}` as Better Auth ≥ 1.7 names it. The client is a custom
//!   key ([`RateLimitLayerBuilder::key`]: a user id, an API key) or the client IP: the
//!   peer address (a `SocketAddr` request extension, or axum's `ConnectInfo` with feature
//!   `axum`), or — when the peer is a trusted proxy ([`Cidr`]) — the rightmost untrusted
//!   address of `Forwarded` (`for=`) or else `X-Forwarded-For`. IPv6 clients are grouped
//!   by a prefix (default /64, as [`bucket_key`](rustauth_kv::rate_limit::bucket_key)),
//!   written fully expanded. No usable address: `no-trusted-ip`.
//! - **Answer**: allowed → the inner response plus `RateLimit-*` headers; denied → 429
//!   with Better Auth's JSON message, `Retry-After`, `X-Retry-After` and the same
//!   headers. Both carry the IETF fields `RateLimit-Policy: "rustauth";q=MAX;w=WINDOW`
//!   and `RateLimit: "rustauth";r=REMAINING;t=RESET` next to the older `RateLimit-Limit`,
//!   `-Remaining`, `-Reset` of [`RateLimitDecision::headers`].
//! - **Redis down**: the limiter answers by its policy (fail closed by default); with a
//!   [`fallback`](RateLimitLayerBuilder::fallback) limiter (usually a
//!   `MemoryRateLimiter`), such answers are replaced by the fallback's per-process
//!   decision instead.

mod client_ip;
mod service;

pub(crate) use client_ip::NO_TRUSTED_IP;
pub use client_ip::{Cidr, ClientIp};
pub use service::RateLimit;

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use http::{Extensions, HeaderMap, Method, Uri};
use rustauth_kv::rate_limit::{PathRules, RateLimitRule, RateLimiter};
use rustauth_kv::{KvError, KvResult};

/// What a custom key function sees of a request.
#[non_exhaustive]
#[derive(Debug)]
pub struct RequestInfo<'a> {
    /// The method.
    pub method: &'a Method,
    /// The URI.
    pub uri: &'a Uri,
    /// The headers.
    pub headers: &'a HeaderMap,
    /// The extensions (what earlier layers attached: an authenticated user, ...).
    pub extensions: &'a Extensions,
    /// The client IP as the layer resolved it (peer or trusted proxies' headers).
    pub client_ip: Option<IpAddr>,
}

type KeyFn = dyn Fn(&RequestInfo<'_>) -> Option<String> + Send + Sync;

enum Rules {
    Paths(PathRules),
    One(RateLimitRule),
}

struct Config {
    limiter: Arc<dyn RateLimiter>,
    fallback: Option<Arc<dyn RateLimiter>>,
    rules: Rules,
    base_path: Option<String>,
    client_ip: ClientIp,
    key: Option<Arc<KeyFn>>,
}

/// A tower `Layer` limiting requests through a [`RateLimiter`]. Build with
/// [`RateLimitLayer::builder`]. Cheap to clone.
#[derive(Clone)]
pub struct RateLimitLayer {
    config: Arc<Config>,
}

impl fmt::Debug for RateLimitLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimitLayer")
            .field("base_path", &self.config.base_path)
            .field("client_ip", &self.config.client_ip)
            .finish_non_exhaustive()
    }
}

/// Builder of a [`RateLimitLayer`].
#[must_use]
pub struct RateLimitLayerBuilder {
    limiter: Arc<dyn RateLimiter>,
    fallback: Option<Arc<dyn RateLimiter>>,
    rules: Rules,
    base_path: Option<String>,
    trusted: Vec<String>,
    ipv6_prefix: u8,
    key: Option<Arc<KeyFn>>,
}

impl fmt::Debug for RateLimitLayerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimitLayerBuilder")
            .field("base_path", &self.base_path)
            .field("trusted", &self.trusted)
            .field("ipv6_prefix", &self.ipv6_prefix)
            .finish_non_exhaustive()
    }
}

impl RateLimitLayer {
    /// Starts a layer over `limiter` (e.g. `kv.rate_limiter()`), with Better Auth's path
    /// table, no trusted proxies and IPv6 grouped by /64.
    pub fn builder(limiter: Arc<dyn RateLimiter>) -> RateLimitLayerBuilder {
        RateLimitLayerBuilder {
            limiter,
            fallback: None,
            rules: Rules::Paths(PathRules::default()),
            base_path: None,
            trusted: Vec::new(),
            ipv6_prefix: 64,
            key: None,
        }
    }
}

impl RateLimitLayerBuilder {
    /// Limits by this path table (default: Better Auth's).
    pub fn path_rules(mut self, rules: PathRules) -> Self {
        self.rules = Rules::Paths(rules);
        self
    }

    /// Limits every request through the layer by `rule` (bucket `{client}|{path}`).
    pub fn rule(mut self, rule: RateLimitRule) -> Self {
        self.rules = Rules::One(rule);
        self
    }

    /// Strips `base` (e.g. `/api/auth`) before matching and bucketing; requests outside
    /// it pass unlimited.
    pub fn base_path(mut self, base: impl Into<String>) -> Self {
        self.base_path = Some(base.into().trim_end_matches('/').to_owned());
        self
    }

    /// Trusts these proxies (`10.0.0.0/8`, `::1`, ...) to tell the client's address;
    /// validated by `build()`.
    pub fn trusted_proxies<I, S>(mut self, proxies: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.trusted.extend(proxies.into_iter().map(Into::into));
        self
    }

    /// Groups IPv6 clients by their first `bits` (default 64; 128 = one bucket per
    /// address); validated by `build()`.
    pub fn ipv6_prefix(mut self, bits: u8) -> Self {
        self.ipv6_prefix = bits;
        self
    }

    /// Keys the bucket by `key` (a user id, an API key) when it returns one, else by the
    /// client IP. Return distinct shapes (`user:42`) so they cannot collide with IPs.
    pub fn key<F>(mut self, key: F) -> Self
    where
        F: Fn(&RequestInfo<'_>) -> Option<String> + Send + Sync + 'static,
    {
        self.key = Some(Arc::new(key));
        self
    }

    /// Decides with `fallback` (usually an in-process `MemoryRateLimiter`) whenever the
    /// limiter could not reach its store (a fail-open or fail-closed answer).
    pub fn fallback(mut self, fallback: Arc<dyn RateLimiter>) -> Self {
        self.fallback = Some(fallback);
        self
    }

    /// Validates and builds the layer.
    pub fn build(self) -> KvResult<RateLimitLayer> {
        if self.ipv6_prefix > 128 {
            return Err(KvError::invalid_config(format!(
                "ipv6_prefix {} is above 128",
                self.ipv6_prefix
            )));
        }
        let trusted = self
            .trusted
            .iter()
            .map(|s| s.parse())
            .collect::<KvResult<Vec<Cidr>>>()?;
        Ok(RateLimitLayer {
            config: Arc::new(Config {
                limiter: self.limiter,
                fallback: self.fallback,
                rules: self.rules,
                base_path: self.base_path.filter(|b| !b.is_empty()),
                client_ip: ClientIp {
                    trusted,
                    ipv6_prefix: self.ipv6_prefix,
                },
                key: self.key,
            }),
        })
    }
}

impl<S> tower_layer::Layer<S> for RateLimitLayer {
    type Service = RateLimit<S>;

    fn layer(&self, inner: S) -> RateLimit<S> {
        RateLimit {
            inner,
            config: self.config.clone(),
        }
    }
}
