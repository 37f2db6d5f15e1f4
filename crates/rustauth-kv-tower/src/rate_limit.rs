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

use std::fmt;
use std::future::Future;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::str::FromStr;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{
    header, Extensions, HeaderMap, HeaderValue, Method, Request, Response, StatusCode, Uri,
};
use rustauth_kv::rate_limit::{
    normalize_path, DecisionSource, PathLimit, PathRules, RateLimitDecision, RateLimitRule,
    RateLimiter, TOO_MANY_REQUESTS_MESSAGE,
};
use rustauth_kv::{KvError, KvResult};

/// The client part of the bucket of a request with no usable address (Better Auth's).
const NO_TRUSTED_IP: &str = "no-trusted-ip";

/// An IP network, `10.0.0.0/8` or `2001:db8::/32`; a bare address is a /32 or /128.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    bits: u8,
}

impl Cidr {
    /// Whether `ip` is in this network (IPv4-mapped IPv6 addresses count as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.network, canonical(ip)) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                mask(u32::from(a).into(), 32, self.bits) == u32::from(n).into()
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => mask(u128::from(a), 128, self.bits) == u128::from(n),
            _ => false,
        }
    }
}

impl FromStr for Cidr {
    type Err = KvError;

    fn from_str(s: &str) -> KvResult<Cidr> {
        let bad = |why: &str| KvError::invalid_config(format!("trusted proxy {s:?}: {why}"));
        let (addr, bits) = match s.trim().split_once('/') {
            Some((a, b)) => (
                a,
                Some(b.parse::<u8>().map_err(|_| bad("bad prefix length"))?),
            ),
            None => (s.trim(), None),
        };
        let addr = canonical(
            addr.parse::<IpAddr>()
                .map_err(|_| bad("not an IP address"))?,
        );
        let width = if addr.is_ipv4() { 32 } else { 128 };
        let bits = bits.unwrap_or(width);
        if bits > width {
            return Err(bad("prefix length too long"));
        }
        let network = match addr {
            IpAddr::V4(a) => IpAddr::V4((mask(u32::from(a).into(), 32, bits) as u32).into()),
            IpAddr::V6(a) => IpAddr::V6(mask(u128::from(a), 128, bits).into()),
        };
        Ok(Cidr { network, bits })
    }
}

/// The first `bits` of a `width`-bit address.
fn mask(addr: u128, width: u8, bits: u8) -> u128 {
    if bits == 0 {
        return 0;
    }
    let ones = if width == 128 {
        u128::MAX
    } else {
        (1u128 << width) - 1
    };
    addr & (ones << (width - bits)) & ones
}

fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

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

/// How the layer finds the client's IP: the peer, or through trusted proxies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientIp {
    trusted: Vec<Cidr>,
    ipv6_prefix: u8,
}

impl Default for ClientIp {
    fn default() -> Self {
        ClientIp {
            trusted: Vec::new(),
            ipv6_prefix: 64,
        }
    }
}

impl ClientIp {
    /// The client of a request from `peer` with `headers`: the peer itself unless it is a
    /// trusted proxy; then the rightmost address of the forwarding chain that is not a
    /// trusted proxy (`Forwarded` when present, else `X-Forwarded-For`). `None` when the
    /// peer is unknown or the chain holds something that is not an address where the
    /// client should be.
    pub fn resolve(&self, peer: Option<IpAddr>, headers: &HeaderMap) -> Option<IpAddr> {
        let peer = canonical(peer?);
        if !self.is_trusted(peer) {
            return Some(peer);
        }
        let chain = forwarded_chain(headers);
        let mut leftmost = peer;
        for hop in chain.iter().rev() {
            let ip = canonical(parse_hop(hop)?);
            if !self.is_trusted(ip) {
                return Some(ip);
            }
            leftmost = ip;
        }
        Some(leftmost)
    }

    fn is_trusted(&self, ip: IpAddr) -> bool {
        self.trusted.iter().any(|c| c.contains(ip))
    }

    /// The client part of a bucket: IPv4 as is, IPv6 masked to the prefix and written
    /// fully expanded (`2001:0db8:abcd:0012:0000:0000:0000:0000` for a /64).
    pub fn bucket_part(&self, ip: IpAddr) -> String {
        match canonical(ip) {
            IpAddr::V4(v4) => v4.to_string(),
            IpAddr::V6(v6) => {
                let s = Ipv6Addr::from(mask(u128::from(v6), 128, self.ipv6_prefix)).segments();
                s.iter()
                    .map(|x| format!("{x:04x}"))
                    .collect::<Vec<_>>()
                    .join(":")
            }
        }
    }
}

/// The forwarding chain, client first: `for=` of every `Forwarded` element, or else
/// every `X-Forwarded-For` entry, over all header lines in order.
fn forwarded_chain(headers: &HeaderMap) -> Vec<String> {
    let lines = |name| {
        headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
    };
    let forwarded = lines(header::FORWARDED);
    if !forwarded.is_empty() {
        return forwarded
            .iter()
            .map(|element| {
                element
                    .split(';')
                    .find_map(|pair| {
                        let (k, v) = pair.trim().split_once('=')?;
                        k.eq_ignore_ascii_case("for")
                            .then(|| v.trim_matches('"').to_owned())
                    })
                    .unwrap_or_default()
            })
            .collect();
    }
    lines(header::HeaderName::from_static("x-forwarded-for"))
}

/// One hop: `1.2.3.4`, `1.2.3.4:80`, `2001:db8::1`, `[2001:db8::1]:443`.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    if let Some(rest) = hop.strip_prefix('[') {
        return rest.split_once(']')?.0.parse().ok();
    }
    hop.parse()
        .ok()
        .or_else(|| hop.parse::<SocketAddr>().ok().map(|s| s.ip()))
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

/// The service of a [`RateLimitLayer`].
#[derive(Clone)]
pub struct RateLimit<S> {
    inner: S,
    config: Arc<Config>,
}

impl<S> fmt::Debug for RateLimit<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimit").finish_non_exhaustive()
    }
}

fn peer<B>(req: &Request<B>) -> Option<IpAddr> {
    if let Some(addr) = req.extensions().get::<SocketAddr>() {
        return Some(addr.ip());
    }
    #[cfg(feature = "axum")]
    if let Some(info) = req
        .extensions()
        .get::<axum::extract::ConnectInfo<SocketAddr>>()
    {
        return Some(info.0.ip());
    }
    None
}

impl Config {
    /// The bucket and rule of a request, or `None` when it is not limited.
    fn classify<B>(&self, req: &Request<B>) -> Option<(String, RateLimitRule)> {
        let path = req.uri().path();
        let path = match &self.base_path {
            None => path,
            Some(base) => match path.strip_prefix(base.as_str()) {
                Some(rest) if rest.is_empty() || rest.starts_with('/') => rest,
                _ => return None,
            },
        };
        let path = normalize_path(if path.is_empty() { "/" } else { path });
        let rule = match &self.rules {
            Rules::One(rule) => *rule,
            Rules::Paths(rules) => match rules.resolve(path) {
                PathLimit::Limit(rule) => rule,
                _ => return None,
            },
        };
        let ip = self.client_ip.resolve(peer(req), req.headers());
        let info = RequestInfo {
            method: req.method(),
            uri: req.uri(),
            headers: req.headers(),
            extensions: req.extensions(),
            client_ip: ip,
        };
        let client = self
            .key
            .as_ref()
            .and_then(|k| k(&info))
            .or_else(|| ip.map(|ip| self.client_ip.bucket_part(ip)))
            .unwrap_or_else(|| NO_TRUSTED_IP.to_owned());
        Some((format!("{client}|{path}"), rule))
    }

    async fn decide(&self, bucket: &str, rule: &RateLimitRule) -> KvResult<RateLimitDecision> {
        let decision = self.limiter.consume(bucket, rule, 1).await;
        let unreachable = match &decision {
            Ok(d) => matches!(
                d.source,
                DecisionSource::FailedOpen | DecisionSource::FailedClosed
            ),
            Err(e) => e.is_unavailable(),
        };
        match &self.fallback {
            Some(fallback) if unreachable => fallback.consume(bucket, rule, 1).await,
            _ => decision,
        }
    }
}

fn add_headers(headers: &mut HeaderMap, d: &RateLimitDecision, rule: &RateLimitRule) {
    let mut put = |name: &str, value: String| {
        if let (Ok(n), Ok(v)) = (
            header::HeaderName::from_str(name),
            HeaderValue::from_str(&value),
        ) {
            headers.insert(n, v);
        }
    };
    for (name, value) in d.headers() {
        put(name, value);
    }
    put(
        "RateLimit-Policy",
        format!(
            "\"rustauth\";q={};w={}",
            rule.max(),
            rule.window_ms().div_ceil(1000)
        ),
    );
    put(
        "RateLimit",
        format!(
            "\"rustauth\";r={};t={}",
            d.remaining,
            d.reset_after_ms.div_ceil(1000)
        ),
    );
}

fn plain<B: From<String>>(status: StatusCode, body: String) -> Response<B> {
    let mut res = Response::new(B::from(body));
    *res.status_mut() = status;
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    res
}

impl<S, ReqBody, ResBody> tower_service::Service<Request<ReqBody>> for RateLimit<S>
where
    S: tower_service::Service<Request<ReqBody>, Response = Response<ResBody>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    ReqBody: Send + 'static,
    ResBody: From<String> + Send + 'static,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        // The clone is not ready, the original is: keep the ready one for this call.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let config = self.config.clone();
        Box::pin(async move {
            let Some((bucket, rule)) = config.classify(&req) else {
                return inner.call(req).await;
            };
            let decision = match config.decide(&bucket, &rule).await {
                Ok(d) => d,
                Err(e) => {
                    tracing::error!(error = %e, %bucket, "rate limiter failed");
                    let body = r#"{"message":"Rate limiter unavailable."}"#.to_owned();
                    return Ok(plain(StatusCode::SERVICE_UNAVAILABLE, body));
                }
            };
            if decision.allowed {
                let mut res = inner.call(req).await?;
                add_headers(res.headers_mut(), &decision, &rule);
                return Ok(res);
            }
            let body = format!(r#"{{"message":"{TOO_MANY_REQUESTS_MESSAGE}"}}"#);
            let mut res = plain(StatusCode::TOO_MANY_REQUESTS, body);
            add_headers(res.headers_mut(), &decision, &rule);
            Ok(res)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn cidrs_parse_and_match() {
        let c: Cidr = "10.0.0.0/8".parse().unwrap();
        assert!(c.contains(ip("10.1.2.3")) && !c.contains(ip("11.0.0.1")));
        assert!(
            c.contains(ip("::ffff:10.9.9.9")),
            "IPv4-mapped counts as IPv4"
        );
        let c: Cidr = "2001:db8::/32".parse().unwrap();
        assert!(c.contains(ip("2001:db8:ffff::1")) && !c.contains(ip("2001:db9::1")));
        let host: Cidr = "127.0.0.1".parse().unwrap();
        assert!(host.contains(ip("127.0.0.1")) && !host.contains(ip("127.0.0.2")));
        assert!("0.0.0.0/0".parse::<Cidr>().unwrap().contains(ip("8.8.8.8")));
        for bad in ["10.0.0.0/33", "::/129", "nope", "10.0.0.0/x"] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad}");
        }
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                header::HeaderName::from_str(k).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn the_client_is_the_rightmost_untrusted_hop() {
        let c = ClientIp {
            trusted: vec!["10.0.0.0/8".parse().unwrap(), "::1".parse().unwrap()],
            ipv6_prefix: 64,
        };
        let xff = headers(&[
            ("x-forwarded-for", "6.6.6.6, 1.2.3.4"),
            ("x-forwarded-for", "10.0.0.9"),
        ]);
        let cases = [
            (Some("9.9.9.9"), xff.clone(), Some("9.9.9.9")), // untrusted peer: headers ignored
            (Some("10.0.0.1"), xff.clone(), Some("1.2.3.4")), // spoofed 6.6.6.6 ignored
            (Some("10.0.0.1"), HeaderMap::new(), Some("10.0.0.1")),
            (
                Some("10.0.0.1"),
                headers(&[("x-forwarded-for", "junk")]),
                None,
            ),
            (
                Some("::1"),
                headers(&[(
                    "forwarded",
                    r#"for=1.1.1.1, for="[2001:db8::7]:443";proto=https"#,
                )]),
                Some("2001:db8::7"),
            ),
            (
                Some("10.0.0.1"),
                headers(&[("forwarded", "for=unknown")]),
                None,
            ),
            (None, xff, None),
        ];
        for (peer, h, want) in cases {
            assert_eq!(c.resolve(peer.map(ip), &h), want.map(ip), "{peer:?} {h:?}");
        }
    }

    #[test]
    fn ipv6_buckets_follow_the_prefix() {
        let mut c = ClientIp::default();
        let a = ip("2001:db8:abcd:12:ffff:1:2:3");
        let default = c.bucket_part(a);
        assert_eq!(
            format!("{default}|/sign-in"),
            rustauth_kv::rate_limit::bucket_key(Some("2001:db8:abcd:12:ffff:1:2:3"), "/sign-in"),
            "the default is bucket_key's /64"
        );
        c.ipv6_prefix = 48;
        assert_eq!(c.bucket_part(a), "2001:0db8:abcd:0000:0000:0000:0000:0000");
        c.ipv6_prefix = 128;
        assert_eq!(c.bucket_part(a), "2001:0db8:abcd:0012:ffff:0001:0002:0003");
        assert_eq!(c.bucket_part(ip("::ffff:1.2.3.4")), "1.2.3.4");
    }
}
