//! The results: per-round ratios reduced to median and range, and written as a Markdown
//! table, JSON and an SVG chart.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_json::{json, Value};

/// One contender on one workload in one configuration, over every round.
#[derive(Debug, Clone)]
pub(crate) struct Row {
    /// The workload's name.
    pub(crate) workload: &'static str,
    /// The configuration (`64 tasks`, ...).
    pub(crate) config: &'static str,
    /// The contender's name.
    pub(crate) contender: &'static str,
    /// Operations per second, one per round.
    pub(crate) rounds: Vec<f64>,
    /// Median latency over every round's operations, µs.
    pub(crate) p50_us: f64,
    /// 99th percentile latency over every round's operations, µs.
    pub(crate) p99_us: f64,
    /// The raw client this contender is compared with, and the per-round ratios.
    pub(crate) vs_raw: Option<(&'static str, Vec<f64>)>,
    /// The pipelined ceiling's requests per second for the same command, if any.
    pub(crate) ceiling_rps: Option<f64>,
    /// Server commands per operation (script-internal calls included).
    pub(crate) commands: BTreeMap<String, f64>,
}

/// One `redis-benchmark` measurement.
#[derive(Debug, Clone)]
pub(crate) struct CeilingRow {
    /// The workload's name.
    pub(crate) workload: &'static str,
    /// The shape's label.
    pub(crate) shape: &'static str,
    /// Requests per second.
    pub(crate) rps: f64,
    /// Median latency, µs.
    pub(crate) p50_us: f64,
    /// 99th percentile latency, µs.
    pub(crate) p99_us: f64,
}

/// The whole run.
#[derive(Debug, Default)]
pub(crate) struct Report {
    /// Facts about the run: machine, versions, command, pinning.
    pub(crate) meta: BTreeMap<&'static str, String>,
    /// Contender rows in run order.
    pub(crate) rows: Vec<Row>,
    /// Ceiling rows.
    pub(crate) ceilings: Vec<CeilingRow>,
    /// `clear` of 1M keys (100k with `--quick`), per contender.
    pub(crate) clears: Vec<crate::clear::ClearRow>,
    /// Our layer's own cost per operation over canned replies.
    pub(crate) client_costs: Vec<crate::client_cost::CostRow>,
}

/// Median, min and max of `values` (all 0 when empty).
pub(crate) fn spread(values: &[f64]) -> (f64, f64, f64) {
    if values.is_empty() {
        return (0.0, 0.0, 0.0);
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    (v[v.len() / 2], v[0], v[v.len() - 1])
}

/// The `q`-quantile of sorted nanosecond latencies, in µs.
pub(crate) fn quantile_us(sorted_ns: &[u32], q: f64) -> f64 {
    if sorted_ns.is_empty() {
        return 0.0;
    }
    let i = ((sorted_ns.len() - 1) as f64 * q).round() as usize;
    f64::from(sorted_ns[i]) / 1000.0
}

fn commands_text(commands: &BTreeMap<String, f64>) -> String {
    if commands.is_empty() {
        return "—".to_owned();
    }
    commands
        .iter()
        .map(|(name, n)| format!("{} {n:.2}", name.to_uppercase()))
        .collect::<Vec<_>>()
        .join(", ")
}

fn ops_text(ops: f64) -> String {
    if ops >= 100_000.0 {
        format!("{:.0}k", ops / 1000.0)
    } else if ops >= 1000.0 {
        format!("{:.1}k", ops / 1000.0)
    } else {
        format!("{ops:.0}")
    }
}

impl Report {
    /// The Markdown tables, one per configuration, then the ceilings.
    pub(crate) fn markdown(&self) -> String {
        let mut out = String::new();
        let mut configs: Vec<&str> = Vec::new();
        for row in &self.rows {
            if !configs.contains(&row.config) {
                configs.push(row.config);
            }
        }
        for config in configs {
            let _ = writeln!(out, "### {config}\n");
            out.push_str(
                "| workload | contender | ops/s | p50 µs | p99 µs | ÷ raw: median (min–max) | \
                 ÷ ceiling `-P 16` | commands/op |\n|---|---|---:|---:|---:|---|---:|---|\n",
            );
            for row in self.rows.iter().filter(|r| r.config == config) {
                let (ops, _, _) = spread(&row.rounds);
                let vs_raw = match &row.vs_raw {
                    Some((raw, ratios)) => {
                        let (m, lo, hi) = spread(ratios);
                        format!("**{m:.2}** ({lo:.2}–{hi:.2}) vs {raw}")
                    }
                    None => "—".to_owned(),
                };
                let ceiling = row
                    .ceiling_rps
                    .map_or("—".to_owned(), |c| format!("{:.2}", ops / c));
                let _ = writeln!(
                    out,
                    "| {} | {} | {} | {:.0} | {:.0} | {vs_raw} | {ceiling} | {} |",
                    row.workload,
                    row.contender,
                    ops_text(ops),
                    row.p50_us,
                    row.p99_us,
                    commands_text(&row.commands)
                );
            }
            out.push('\n');
        }
        if !self.ceilings.is_empty() {
            out.push_str("### The server's ceiling (`redis-benchmark`, same commands)\n\n");
            out.push_str(
                "| workload | shape | requests/s | p50 µs | p99 µs |\n|---|---|---:|---:|---:|\n",
            );
            for c in &self.ceilings {
                let _ = writeln!(
                    out,
                    "| {} | {} | {} | {:.0} | {:.0} |",
                    c.workload,
                    c.shape,
                    ops_text(c.rps),
                    c.p50_us,
                    c.p99_us
                );
            }
            out.push('\n');
        }
        if !self.clears.is_empty() {
            let keys = self.clears[0].keys;
            let _ = writeln!(
                out,
                "### `clear` of {keys} keys (each in a child process: its peak RSS)\n"
            );
            out.push_str("| contender | keys | seconds | keys/s | peak RSS MiB |\n|---|---:|---:|---:|---:|\n");
            for c in &self.clears {
                let _ = writeln!(
                    out,
                    "| {} | {} | {:.2} | {} | {:.1} |",
                    c.contender,
                    c.keys,
                    c.seconds,
                    ops_text(c.keys as f64 / c.seconds.max(1e-9)),
                    c.peak_rss_mib
                );
            }
            out.push('\n');
        }
        if !self.client_costs.is_empty() {
            out.push_str(
                "### Our layer's own cost (canned replies: no network, server or client library)\n\n",
            );
            out.push_str("| operation | ns/op: median (min–max) |\n|---|---|\n");
            for c in &self.client_costs {
                let _ = writeln!(
                    out,
                    "| {} | **{:.0}** ({:.0}–{:.0}) |",
                    c.operation, c.ns_per_op, c.min_ns, c.max_ns
                );
            }
            out.push('\n');
        }
        out
    }

    /// Everything, as JSON.
    pub(crate) fn json(&self) -> Value {
        let rows: Vec<Value> = self
            .rows
            .iter()
            .map(|r| {
                let (ops, lo, hi) = spread(&r.rounds);
                let vs_raw = r.vs_raw.as_ref().map(|(raw, ratios)| {
                    let (m, lo, hi) = spread(ratios);
                    json!({"raw": raw, "median": m, "min": lo, "max": hi, "rounds": ratios})
                });
                json!({
                    "workload": r.workload,
                    "config": r.config,
                    "contender": r.contender,
                    "ops_per_sec": {"median": ops, "min": lo, "max": hi, "rounds": r.rounds},
                    "p50_us": r.p50_us,
                    "p99_us": r.p99_us,
                    "vs_raw": vs_raw,
                    "vs_pipelined_ceiling": r.ceiling_rps.map(|c| ops / c),
                    "commands_per_op": r.commands,
                })
            })
            .collect();
        let ceilings: Vec<Value> = self
            .ceilings
            .iter()
            .map(|c| {
                json!({"workload": c.workload, "shape": c.shape, "rps": c.rps,
                       "p50_us": c.p50_us, "p99_us": c.p99_us})
            })
            .collect();
        let clears: Vec<Value> = self
            .clears
            .iter()
            .map(|c| {
                json!({"contender": c.contender, "keys": c.keys, "seconds": c.seconds,
                       "peak_rss_mib": c.peak_rss_mib})
            })
            .collect();
        let client_costs: Vec<Value> = self
            .client_costs
            .iter()
            .map(|c| {
                json!({"operation": c.operation, "ns_per_op": c.ns_per_op,
                       "min_ns": c.min_ns, "max_ns": c.max_ns})
            })
            .collect();
        json!({"meta": self.meta, "rows": rows, "ceilings": ceilings, "clear": clears,
               "client_cost": client_costs})
    }

    /// A bar chart of ops/s per contender for `config`, each workload on its own scale.
    pub(crate) fn svg(&self, config: &str) -> String {
        const COLORS: [&str; 8] = [
            "#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#9c755f",
        ];
        let rows: Vec<&Row> = self.rows.iter().filter(|r| r.config == config).collect();
        let mut contenders: Vec<&str> = Vec::new();
        let mut workloads: Vec<&str> = Vec::new();
        for r in &rows {
            if !contenders.contains(&r.contender) {
                contenders.push(r.contender);
            }
            if !workloads.contains(&r.workload) {
                workloads.push(r.workload);
            }
        }
        let bar = 12.0;
        let gap = 10.0;
        let label_w = 190.0;
        let plot_w = 460.0;
        let mut y = 40.0;
        let mut body = String::new();
        for w in &workloads {
            let group: Vec<&&Row> = rows.iter().filter(|r| r.workload == *w).collect();
            let max = group
                .iter()
                .map(|r| spread(&r.rounds).0)
                .fold(1.0, f64::max);
            let _ = writeln!(
                body,
                "<text x=\"4\" y=\"{:.0}\" font-weight=\"bold\">{w}</text>",
                y + bar
            );
            for r in group {
                let ops = spread(&r.rounds).0;
                let color = COLORS[contenders
                    .iter()
                    .position(|c| *c == r.contender)
                    .unwrap_or(0)
                    % COLORS.len()];
                let width = plot_w * ops / max;
                let _ = writeln!(
                    body,
                    "<rect x=\"{label_w}\" y=\"{y:.0}\" width=\"{width:.1}\" height=\"{bar}\" \
                     fill=\"{color}\"/><text x=\"{:.1}\" y=\"{:.0}\">{} {}</text>",
                    label_w + width + 4.0,
                    y + bar - 2.0,
                    r.contender,
                    ops_text(ops)
                );
                y += bar + 2.0;
            }
            y += gap;
        }
        let height = y + 10.0;
        let width = label_w + plot_w + 200.0;
        format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width:.0}\" height=\"{height:.0}\" \
             font-family=\"sans-serif\" font-size=\"11\">\n\
             <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
             <text x=\"4\" y=\"20\" font-size=\"14\">rustauth-kv bench: ops/s, {config} \
             (each workload on its own scale)</text>\n{body}</svg>\n"
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_is_median_min_max() {
        assert_eq!(spread(&[3.0, 1.0, 2.0]), (2.0, 1.0, 3.0));
        assert_eq!(spread(&[]), (0.0, 0.0, 0.0));
        assert_eq!(quantile_us(&[1000, 2000, 3000], 0.5), 2.0);
    }

    #[test]
    fn markdown_and_svg_name_every_contender() {
        let mut report = Report::default();
        for (contender, ops) in [("raw fred", 100.0), ("rustauth-fred", 90.0)] {
            report.rows.push(Row {
                workload: "get",
                config: "64 tasks",
                contender,
                rounds: vec![ops],
                p50_us: 1.0,
                p99_us: 2.0,
                vs_raw: (contender == "rustauth-fred").then(|| ("raw fred", vec![0.9])),
                ceiling_rps: Some(200.0),
                commands: BTreeMap::from([("get".to_owned(), 1.0)]),
            });
        }
        let md = report.markdown();
        assert!(md.contains("| get | rustauth-fred | 90 |"), "{md}");
        assert!(md.contains("**0.90** (0.90–0.90) vs raw fred"), "{md}");
        assert!(md.contains("| 0.45 | GET 1.00 |"), "{md}");
        let svg = report.svg("64 tasks");
        assert!(
            svg.contains("rustauth-fred 90") && svg.contains("raw fred 100"),
            "{svg}"
        );
    }
}
