//! Configuration from the environment: `REDIS_URL` (the usual name on hosting platforms),
//! or `RUSTAUTH_KV_URL` to override it, plus `RUSTAUTH_KV_BACKEND` and
//! `RUSTAUTH_KV_PREFIX`.

use kv_contract::{KvError, KvResult};

use crate::{Backend, KvOptions, KvOptionsBuilder};

/// Read first; overrides [`REDIS_URL`] when both are set.
pub const URL_VAR: &str = "RUSTAUTH_KV_URL";
/// The conventional server URL variable.
pub const REDIS_URL: &str = "REDIS_URL";
/// `redis`, `fred` or `memory`; optional.
pub const BACKEND_VAR: &str = "RUSTAUTH_KV_BACKEND";
/// The key prefix; optional (default `rustauth:`).
pub const PREFIX_VAR: &str = "RUSTAUTH_KV_PREFIX";

impl KvOptionsBuilder {
    /// A builder configured from the environment ([`URL_VAR`] or [`REDIS_URL`],
    /// [`BACKEND_VAR`], [`PREFIX_VAR`]); more settings can follow before `build()`.
    ///
    /// Fails when no URL variable is set: a missing variable in production must not
    /// silently become an in-process store. Set `REDIS_URL=memory://` for that.
    pub fn from_env() -> KvResult<KvOptionsBuilder> {
        from_lookup(|name| std::env::var_os(name).map(|v| v.into_string()))
    }
}

/// [`KvOptionsBuilder::from_env`] over any variable lookup (`Err` = not UTF-8).
fn from_lookup(
    get: impl Fn(&str) -> Option<Result<String, std::ffi::OsString>>,
) -> KvResult<KvOptionsBuilder> {
    let var = |name: &str| -> KvResult<Option<String>> {
        match get(name) {
            None => Ok(None),
            Some(Ok(v)) if v.trim().is_empty() => Ok(None),
            Some(Ok(v)) => Ok(Some(v)),
            Some(Err(_)) => Err(KvError::invalid_config(format!(
                "environment variable {name} is not valid UTF-8"
            ))),
        }
    };
    let url = match var(URL_VAR)? {
        Some(url) => url,
        None => var(REDIS_URL)?.ok_or_else(|| {
            KvError::invalid_config(format!(
                "neither {URL_VAR} nor {REDIS_URL} is set: set {REDIS_URL}=redis://host:6379 \
                 (or memory:// for in-process stores)"
            ))
        })?,
    };
    let mut builder = KvOptions::builder().url(url);
    if let Some(backend) = var(BACKEND_VAR)? {
        let backend: Backend = backend
            .parse()
            .map_err(|e: KvError| KvError::invalid_config(format!("{BACKEND_VAR}: {e}")))?;
        builder = builder.backend(backend);
    }
    if let Some(prefix) = var(PREFIX_VAR)? {
        builder = builder.prefix(prefix);
    }
    Ok(builder)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn env(pairs: &[(&str, &str)]) -> KvResult<KvOptions> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        from_lookup(|name| map.get(name).cloned().map(Ok))?.build()
    }

    #[test]
    fn no_url_is_an_error_that_names_the_variables() {
        let e = env(&[]).unwrap_err();
        assert!(e.message().contains("REDIS_URL"), "{e}");
        assert!(e.message().contains("RUSTAUTH_KV_URL"), "{e}");
        let e = env(&[("REDIS_URL", "  ")]).unwrap_err();
        assert!(e.message().contains("REDIS_URL"), "{e}");
    }

    #[test]
    fn variables_configure_url_backend_and_prefix() {
        let o = env(&[
            ("REDIS_URL", "redis://127.0.0.1:1"),
            ("RUSTAUTH_KV_URL", "memory://"),
            ("RUSTAUTH_KV_PREFIX", "api-rate-limit:"),
        ])
        .unwrap();
        assert_eq!(
            o.backend(),
            Backend::Memory,
            "RUSTAUTH_KV_URL overrides REDIS_URL"
        );
        assert_eq!(o.prefix().as_str(), "api-rate-limit:");
        let o = env(&[
            ("REDIS_URL", "memory://"),
            ("RUSTAUTH_KV_PREFIX", "tenant:"),
        ])
        .unwrap();
        assert_eq!(o.prefix().as_str(), "tenant:");
        let e = env(&[("REDIS_URL", "memory://"), ("RUSTAUTH_KV_BACKEND", "mongo")]).unwrap_err();
        assert!(e.message().starts_with("RUSTAUTH_KV_BACKEND: "), "{e}");
        assert!(e.message().contains("\"mongo\""), "{e}");
    }

    #[test]
    fn a_non_utf8_variable_is_named() {
        let e = from_lookup(|name| (name == REDIS_URL).then(|| Err("x".into()))).unwrap_err();
        assert!(e.message().contains("REDIS_URL is not valid UTF-8"), "{e}");
    }
}
