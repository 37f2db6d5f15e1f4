//! `ping` and `info`: is the server there, how fast, and what is it.

use rustauth_kv::health::ServerMode;
use rustauth_kv::Kv;
use serde_json::json;

use super::millis;
use crate::connect::server_name;
use crate::exit::CliError;
use crate::Outcome;

/// `ping`: one PING, its round-trip time.
pub(crate) async fn ping(kv: &Kv) -> Result<Outcome, CliError> {
    let latency = kv.health().ping().await?;
    let server = server_name(kv);
    Ok(Outcome::new(
        json!({ "server": server, "latency_ms": millis(latency) }),
        format!("PONG from {server} in {:.3} ms", millis(latency)),
    ))
}

/// `info`: `INFO server` parsed, plus the latency and the CLI's view (prefix, backend).
pub(crate) async fn info(kv: &Kv) -> Result<Outcome, CliError> {
    let latency = kv.health().ping().await?;
    let info = kv
        .health()
        .server_info()
        .await?
        .ok_or_else(|| CliError::usage("info needs a Redis or Valkey server, not memory://"))?;
    let server = server_name(kv);
    let mode = mode_name(&info.mode);
    let prefix = kv.prefix().as_str();
    let text = format!(
        "server:         {server}\n\
         kind:           {}\n\
         version:        {}\n\
         redis_version:  {}\n\
         mode:           {mode}\n\
         latency:        {:.3} ms\n\
         prefix:         {prefix}\n\
         backend:        {}",
        info.kind,
        info.version,
        info.redis_version,
        millis(latency),
        kv.backend()
    );
    Ok(Outcome::new(
        json!({
            "server": server,
            "kind": info.kind.to_string(),
            "version": info.version.to_string(),
            "redis_version": info.redis_version.to_string(),
            "mode": mode,
            "latency_ms": millis(latency),
            "prefix": prefix,
            "backend": kv.backend().name(),
        }),
        text,
    ))
}

fn mode_name(mode: &ServerMode) -> String {
    match mode {
        ServerMode::Standalone => "standalone".to_owned(),
        ServerMode::Cluster => "cluster".to_owned(),
        ServerMode::Sentinel => "sentinel".to_owned(),
        ServerMode::Other(s) if !s.is_empty() => s.clone(),
        _ => "unknown".to_owned(),
    }
}
