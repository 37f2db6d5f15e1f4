//! `clear` of 1M keys (100k with `--quick`): `ServerStorage::clear` on each backend
//! against a raw redis-rs `SCAN` + `UNLINK` loop, each in a child process of its own so
//! that its peak RSS (`VmHWM`) is its own.

use std::process::Command;
use std::time::Instant;

use kv_contract::{ConnectionOptions, SecondaryStorage, ServerStorage, StorageOptions};

/// Keys written before each clear of a full run.
pub(crate) const KEYS: u64 = 1_000_000;
/// Keys written before each clear of a `--quick` run: the full million alone takes
/// half a minute to write and clear three times.
pub(crate) const QUICK_KEYS: u64 = 100_000;
/// The storage prefix the keys live under (`{PREFIX}secondary:k…`).
const PREFIX: &str = "bench-clear:";

/// One clear: who, how long, the child's peak RSS.
#[derive(Debug, Clone)]
pub(crate) struct ClearRow {
    /// The contender.
    pub(crate) contender: &'static str,
    /// Keys deleted.
    pub(crate) keys: u64,
    /// Wall time of the clear.
    pub(crate) seconds: f64,
    /// The child process's peak resident set, MiB.
    pub(crate) peak_rss_mib: f64,
}

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// Writes `keys` 200-byte keys (a multiple of 1000) in pipelines of 1000.
async fn populate(url: &str, keys: u64) -> Result<(), String> {
    let mut c = redis::Client::open(url)
        .map_err(err)?
        .get_multiplexed_async_connection()
        .await
        .map_err(err)?;
    let value = [b'v'; crate::workload::VALUE_LEN];
    for batch in 0..keys / 1000 {
        let mut pipe = redis::pipe();
        for i in 0..1000 {
            pipe.cmd("SET")
                .arg(format!("{PREFIX}secondary:k{}", batch * 1000 + i))
                .arg(&value[..])
                .ignore();
        }
        pipe.exec_async(&mut c).await.map_err(err)?;
    }
    Ok(())
}

/// The peak resident set of this process, MiB (`VmHWM` of `/proc/self/status`).
fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// The child's side: clears with `how` (`rustauth-redis`, `rustauth-fred`, `raw`) and
/// prints `keys seconds peak_rss_mib`.
pub(crate) fn child(how: &str, url: &str) -> Result<(), String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(err)?;
    let (keys, seconds) = rt.block_on(async {
        let options = ConnectionOptions::from_url(url).map_err(err)?;
        let storage_options = StorageOptions::builder()
            .prefix(PREFIX)
            .build()
            .map_err(err)?;
        let started = Instant::now();
        let keys = match how {
            "rustauth-redis" | "rustauth-fred" => {
                let conn: kv_contract::SharedConnection = if how == "rustauth-redis" {
                    std::sync::Arc::new(
                        rustauth_redis::RedisConnection::connect(&options)
                            .await
                            .map_err(err)?,
                    )
                } else {
                    std::sync::Arc::new(
                        rustauth_fred::FredConnection::connect(&options)
                            .await
                            .map_err(err)?,
                    )
                };
                let started = Instant::now();
                let n = ServerStorage::new(conn, storage_options)
                    .clear()
                    .await
                    .map_err(err)?;
                return Ok::<_, String>((n, started.elapsed().as_secs_f64()));
            }
            "raw" => {
                let mut c = redis::Client::open(url)
                    .map_err(err)?
                    .get_multiplexed_async_connection()
                    .await
                    .map_err(err)?;
                let pattern = format!("{PREFIX}secondary:*");
                let mut cursor = 0u64;
                let mut n = 0u64;
                loop {
                    let (next, keys): (u64, Vec<Vec<u8>>) = redis::cmd("SCAN")
                        .arg(cursor)
                        .arg("MATCH")
                        .arg(&pattern)
                        .arg("COUNT")
                        .arg(1000)
                        .query_async(&mut c)
                        .await
                        .map_err(err)?;
                    if !keys.is_empty() {
                        n += redis::cmd("UNLINK")
                            .arg(&keys)
                            .query_async::<u64>(&mut c)
                            .await
                            .map_err(err)?;
                    }
                    if next == 0 {
                        break n;
                    }
                    cursor = next;
                }
            }
            other => return Err(format!("unknown clear contender {other:?}")),
        };
        Ok((keys, started.elapsed().as_secs_f64()))
    })?;
    println!("{keys} {seconds} {}", peak_rss_mib());
    Ok(())
}

/// Runs each contender's clear of `expected` freshly written keys in a child process.
pub(crate) fn run(url: &str, expected: u64) -> Result<Vec<ClearRow>, String> {
    let exe = std::env::current_exe().map_err(err)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(err)?;
    let mut rows = Vec::new();
    for contender in ["raw", "rustauth-redis", "rustauth-fred"] {
        rt.block_on(populate(url, expected))?;
        let out = Command::new(&exe)
            .args(["--clear-child", contender, "--url", url])
            .output()
            .map_err(|e| format!("cannot run {}: {e}", exe.display()))?;
        let text = String::from_utf8_lossy(&out.stdout);
        let fields: Vec<f64> = text
            .split_whitespace()
            .filter_map(|f| f.parse().ok())
            .collect();
        let [keys, seconds, rss] = fields[..] else {
            return Err(format!(
                "clear by {contender} failed ({}): {}{}",
                out.status,
                text.trim(),
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        };
        if keys as u64 != expected {
            return Err(format!(
                "clear by {contender} deleted {keys} keys, not {expected}"
            ));
        }
        rows.push(ClearRow {
            contender: match contender {
                "raw" => "raw redis-rs SCAN + UNLINK",
                "rustauth-redis" => "rustauth-redis clear()",
                _ => "rustauth-fred clear()",
            },
            keys: keys as u64,
            seconds,
            peak_rss_mib: rss,
        });
    }
    Ok(rows)
}
