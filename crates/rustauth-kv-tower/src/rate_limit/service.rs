//! [`RateLimit`], the service the layer wraps around the inner one: classify the request,
//! ask the limiter (or the fallback), answer 429 or add the `RateLimit*` headers.

use std::fmt;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::str::FromStr;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{header, HeaderMap, HeaderValue, Request, Response, StatusCode};
use rustauth_kv::rate_limit::{
    normalize_path, DecisionSource, PathLimit, RateLimitDecision, RateLimitRule,
    TOO_MANY_REQUESTS_MESSAGE,
};
use rustauth_kv::KvResult;

use super::{Config, RequestInfo, Rules, NO_TRUSTED_IP};

/// The service of a [`RateLimitLayer`](super::RateLimitLayer).
#[derive(Clone)]
pub struct RateLimit<S> {
    pub(super) inner: S,
    pub(super) config: Arc<Config>,
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
