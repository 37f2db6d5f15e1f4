//! Turns the global options into a connected [`Kv`] bundle: URL from `--url`,
//! `RUSTAUTH_KV_URL` or `REDIS_URL`, backend, prefix, timeouts.

use rustauth_kv::{Backend, Kv, KvOptions, KvOptionsBuilder, SharedConnection, REDIS_URL, URL_VAR};

use crate::cli::{BackendArg, Global};
use crate::exit::CliError;

/// The options for `global`, before the per-command store settings.
pub(crate) fn options(global: &Global) -> Result<KvOptionsBuilder, CliError> {
    let url = match &global.url {
        Some(url) if !url.trim().is_empty() => url.clone(),
        _ => match std::env::var(REDIS_URL) {
            Ok(url) if !url.trim().is_empty() => url,
            _ => {
                return Err(CliError::usage(format!(
                    "no server given: pass --url redis://host:6379 or set {URL_VAR} or {REDIS_URL}"
                )))
            }
        },
    };
    let backend = match global.backend {
        BackendArg::Redis => Backend::Redis,
        BackendArg::Fred => Backend::Fred,
    };
    let mut builder = KvOptions::builder()
        .url(url)
        .backend(backend)
        .prefix(global.prefix.clone());
    if let Some(t) = global.timeout {
        builder = builder.connect_timeout(t).command_timeout(t);
    }
    Ok(builder)
}

/// Connects with `builder`.
pub(crate) async fn connect(builder: KvOptionsBuilder) -> Result<Kv, CliError> {
    let options = builder.build()?;
    Ok(Kv::connect_with(options).await?)
}

/// The bundle's server connection; the CLI works on servers only.
pub(crate) fn server(kv: &Kv) -> Result<SharedConnection, CliError> {
    kv.connection().ok_or_else(|| {
        CliError::usage("this command needs a Redis or Valkey server, not memory://")
    })
}

/// The server as printed: `redis://host:port/db`, password redacted.
pub(crate) fn server_name(kv: &Kv) -> String {
    kv.server().unwrap_or("memory://").to_owned()
}
