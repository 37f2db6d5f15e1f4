//! `inspect`: keys and estimated bytes per namespace under the prefix, from
//! [`admin::inspect`] (SCAN plus a `MEMORY USAGE` sample).

use rustauth_kv::admin::{self, InspectOptions, KeyspaceLayout};
use rustauth_kv::Kv;
use serde_json::json;

use crate::cli::Global;
use crate::connect::{server, server_name};
use crate::exit::CliError;
use crate::progress::Reporter;
use crate::Outcome;

/// Runs `inspect`.
pub(crate) async fn run(
    kv: &Kv,
    global: &Global,
    sample: u32,
    max_keys: u64,
) -> Result<Outcome, CliError> {
    let conn = server(kv)?;
    let layout = KeyspaceLayout::new(kv.prefix().clone());
    let options = InspectOptions::default().sample(sample).max_keys(max_keys);
    let mut reporter = Reporter::new(global.progress, global.json, "inspect");
    let report = admin::inspect(&*conn, &layout, options, |p| reporter.update(p, false)).await;
    let report = match report {
        Ok(r) => r,
        Err(e) => {
            reporter.finish(Default::default(), false);
            return Err(e.into());
        }
    };
    reporter.finish(admin::Progress::new(report.scanned, 0), false);
    let rows: Vec<serde_json::Value> = report
        .namespaces
        .iter()
        .map(|n| {
            json!({
                "namespace": n.namespace,
                "keys": n.keys,
                "sampled": n.sampled,
                "estimated_bytes": n.estimated_bytes,
            })
        })
        .collect();
    let mut text = format!(
        "prefix {:?} on {}\n{:<16} {:>12} {:>16}\n",
        layout.prefix().as_str(),
        server_name(kv),
        "NAMESPACE",
        "KEYS",
        "EST. BYTES"
    );
    for n in &report.namespaces {
        let bytes = n
            .estimated_bytes
            .map_or_else(|| "unknown".to_owned(), |b| b.to_string());
        let name = n.namespace.as_deref().unwrap_or("(other)");
        text.push_str(&format!("{name:<16} {:>12} {bytes:>16}\n", n.keys));
    }
    text.push_str(&format!("scanned {} keys", report.scanned));
    if !report.complete {
        text.push_str(&format!(
            " (stopped at --max-keys {max_keys}: counts are partial)"
        ));
    }
    if !report.memory_supported {
        text.push_str("; MEMORY USAGE refused by the server: memory unknown");
    }
    Ok(Outcome::new(
        json!({
            "server": server_name(kv),
            "prefix": layout.prefix().as_str(),
            "scanned": report.scanned,
            "complete": report.complete,
            "memory_supported": report.memory_supported,
            "namespaces": rows,
        }),
        text,
    ))
}
