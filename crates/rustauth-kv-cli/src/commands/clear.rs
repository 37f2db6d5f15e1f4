//! `clear NAMESPACE`: confirmation, then [`admin::clear_namespace`] with progress on
//! stderr.

use std::io::{BufRead, IsTerminal, Write};

use rustauth_kv::admin::{self, ClearOptions, KeyspaceLayout, Progress};
use rustauth_kv::Kv;
use serde_json::json;

use crate::cli::Global;
use crate::connect::{server, server_name};
use crate::exit::CliError;
use crate::progress::Reporter;
use crate::Outcome;

/// Runs `clear`.
pub(crate) async fn run(
    kv: &Kv,
    global: &Global,
    namespace: &str,
    yes: bool,
    rate: Option<u64>,
) -> Result<Outcome, CliError> {
    let conn = server(kv)?;
    let layout = KeyspaceLayout::new(kv.prefix().clone());
    // Unknown names fail here, before any question or I/O.
    let name = layout.namespace(namespace)?.to_owned();
    let literal = String::from_utf8_lossy(&layout.namespace_prefix(&name)?).into_owned();
    let server_name = server_name(kv);
    if !yes {
        confirm(&literal, &server_name, &name)?;
    }
    let options = ClearOptions::default().max_per_second(rate);
    let what = format!("clear {literal}*");
    let mut reporter = Reporter::new(global.progress, global.json, &what);
    let result = admin::clear_namespace(&*conn, &layout, &name, options, |p| {
        reporter.update(p, true)
    })
    .await;
    let report = match result {
        Ok(r) => r,
        Err(e) => {
            reporter.finish(Progress::default(), true);
            return Err(e.into());
        }
    };
    reporter.finish(Progress::new(report.scanned, report.deleted), true);
    let ms = report.elapsed.as_millis() as u64;
    Ok(Outcome::new(
        json!({
            "server": server_name,
            "namespace": report.namespace,
            "pattern": format!("{literal}*"),
            "scanned": report.scanned,
            "deleted": report.deleted,
            "elapsed_ms": ms,
        }),
        format!(
            "deleted {} keys of {literal}* on {server_name} in {:.1} s",
            report.deleted,
            report.elapsed.as_secs_f64()
        ),
    ))
}

/// Asks on the terminal; without one, refuses (a script must say `--yes`).
fn confirm(literal: &str, server: &str, name: &str) -> Result<(), CliError> {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        return Err(CliError::usage(format!(
            "clear would delete every key of {literal}* on {server}; stdin is not a terminal, \
             so pass --yes to confirm"
        )));
    }
    eprint!(
        "Delete every key of {literal}* on {server}? Type the namespace name ({name}) to confirm: "
    );
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    stdin
        .lock()
        .read_line(&mut answer)
        .map_err(|e| CliError::aborted(format!("cannot read the confirmation: {e}")))?;
    if answer.trim() != name {
        return Err(CliError::aborted(format!(
            "not confirmed: nothing deleted from {literal}*"
        )));
    }
    Ok(())
}
