//! One run: `tasks` tasks repeating one contender's operation for a fixed time, each
//! operation timed; and the server's command counts around it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::contender::Contender;
use crate::workload::Workload;

/// What one run measured.
#[derive(Debug, Default)]
pub(crate) struct RunResult {
    /// Operations completed.
    pub(crate) ops: u64,
    /// Wall time from the first start to the last finish, in seconds.
    pub(crate) secs: f64,
    /// Every operation's latency, in nanoseconds (saturated at `u32::MAX`).
    pub(crate) latencies_ns: Vec<u32>,
}

impl RunResult {
    /// Operations per second.
    pub(crate) fn ops_per_sec(&self) -> f64 {
        if self.secs > 0.0 {
            self.ops as f64 / self.secs
        } else {
            0.0
        }
    }
}

/// Runs `workload` on `contender` with `tasks` concurrent tasks for `duration`; the
/// first failed operation stops the bench (a failure is a defect, not a data point).
pub(crate) async fn drive<C: Contender>(
    contender: &Arc<C>,
    workload: Workload,
    run: u32,
    tasks: usize,
    duration: Duration,
) -> Result<RunResult, String> {
    let started = Instant::now();
    let deadline = started + duration;
    let mut handles = Vec::with_capacity(tasks);
    for task in 0..tasks as u64 {
        let contender = contender.clone();
        let stride = tasks as u64;
        handles.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(4096);
            let mut i = task;
            loop {
                let t0 = Instant::now();
                contender.op(workload, run, i).await?;
                let t1 = Instant::now();
                latencies.push(u32::try_from((t1 - t0).as_nanos()).unwrap_or(u32::MAX));
                i += stride;
                if t1 >= deadline {
                    return Ok::<_, String>(latencies);
                }
            }
        }));
    }
    let mut result = RunResult::default();
    for handle in handles {
        let latencies = handle
            .await
            .map_err(|e| format!("a task of {} panicked: {e}", workload.name()))??;
        result.ops += latencies.len() as u64;
        result.latencies_ns.extend(latencies);
    }
    result.secs = started.elapsed().as_secs_f64();
    Ok(result)
}

/// The server's per-command call counts (`INFO commandstats`), `INFO` itself left out.
pub(crate) async fn command_counts(
    stats: &mut redis::aio::MultiplexedConnection,
) -> Result<BTreeMap<String, u64>, String> {
    let text: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(stats)
        .await
        .map_err(|e| format!("INFO commandstats: {e}"))?;
    Ok(parse_commandstats(&text))
}

/// `cmdstat_get:calls=12,usec=...` lines → `{"get": 12}`.
pub(crate) fn parse_commandstats(text: &str) -> BTreeMap<String, u64> {
    text.lines()
        .filter_map(|line| {
            let rest = line.strip_prefix("cmdstat_")?;
            let (name, fields) = rest.split_once(':')?;
            let calls = fields
                .split(',')
                .find_map(|f| f.strip_prefix("calls="))?
                .parse()
                .ok()?;
            (name != "info").then(|| (name.to_owned(), calls))
        })
        .collect()
}

/// Calls per operation between two snapshots, commands with at least 0.01 per op.
pub(crate) fn per_op(
    before: &BTreeMap<String, u64>,
    after: &BTreeMap<String, u64>,
    ops: u64,
) -> BTreeMap<String, f64> {
    if ops == 0 {
        return BTreeMap::new();
    }
    after
        .iter()
        .filter_map(|(name, &n)| {
            let delta = n.saturating_sub(before.get(name).copied().unwrap_or(0));
            let rate = delta as f64 / ops as f64;
            (rate >= 0.01).then(|| (name.clone(), rate))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commandstats_lines_are_parsed_without_info() {
        let text = "# Commandstats\r\ncmdstat_get:calls=12,usec=30,usec_per_call=2.50\r\n\
                    cmdstat_info:calls=3,usec=1\r\ncmdstat_client|setname:calls=1,usec=1\r\n";
        let counts = parse_commandstats(text);
        assert_eq!(counts.get("get"), Some(&12));
        assert_eq!(counts.get("client|setname"), Some(&1));
        assert!(!counts.contains_key("info"));
        let later = parse_commandstats("cmdstat_get:calls=32,usec=1\r\n");
        let rates = per_op(&counts, &later, 10);
        assert_eq!(rates.get("get"), Some(&2.0));
    }
}
