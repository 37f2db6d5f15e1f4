//! `migrate better-auth`: [`rustauth_kv::better_auth::migrate::migrate`] between Better Auth's flat
//! layout and the namespaced one, with progress on stderr and a summary.

use rustauth_kv::kv_contract::better_auth::migrate::{migrate, MigrateOptions};
use rustauth_kv::kv_contract::storage::StorageOptions;
use rustauth_kv::kv_contract::wire::ScanCursor;
use rustauth_kv::Kv;
use serde_json::json;

use crate::cli::{Global, MigrateCmd};
use crate::connect::{server, server_name};
use crate::exit::CliError;
use crate::progress::Reporter;
use crate::Outcome;

fn parse_cursor(text: &str) -> Result<ScanCursor, CliError> {
    let bad = || {
        CliError::usage(format!(
            "--resume-cursor {text:?} is not NODE:CURSOR (e.g. 0:1234)"
        ))
    };
    let (node, cursor) = text.split_once(':').ok_or_else(bad)?;
    Ok(ScanCursor {
        node: node.parse().map_err(|_| bad())?,
        cursor: cursor.parse().map_err(|_| bad())?,
    })
}

/// Runs `migrate ...`.
pub(crate) async fn run(
    kv: &Kv,
    global: &Global,
    command: MigrateCmd,
) -> Result<Outcome, CliError> {
    let MigrateCmd::BetterAuth {
        better_auth_prefix,
        reverse,
        dry_run,
        resume_cursor,
        scan_count,
    } = command;
    let conn = server(kv)?;
    let flat = StorageOptions::builder()
        .better_auth_compatible()
        .prefix(better_auth_prefix)
        .scan_count(scan_count)
        .build()?;
    let ns = StorageOptions::builder()
        .prefix(kv.prefix().as_str())
        .scan_count(scan_count)
        .build()?;
    let (from, to) = if reverse { (&ns, &flat) } else { (&flat, &ns) };
    let resume = resume_cursor.as_deref().map(parse_cursor).transpose()?;
    let what = format!(
        "migrate {}* → {}*{}",
        from.key_space(),
        to.key_space(),
        if dry_run { " (dry run)" } else { "" }
    );
    let mut reporter = Reporter::new(global.progress, global.json, &what);
    let mut last_cursor = None;
    let options = MigrateOptions::default()
        .dry_run(dry_run)
        .resume_from(resume);
    let result = migrate(&*conn, from, to, options, |p| {
        last_cursor = p.next;
        reporter.update_text(format!(
            "scanned {}, copied {}, skipped {}",
            p.scanned, p.copied, p.skipped
        ));
    })
    .await;
    let report = match result {
        Ok(r) => r,
        Err(e) => {
            reporter.finish_text("failed".to_owned());
            let resume = last_cursor
                .map(|c| format!(" (resume with --resume-cursor {}:{})", c.node, c.cursor))
                .unwrap_or_default();
            let mut e = CliError::from(e);
            e.message.push_str(&resume);
            return Err(e);
        }
    };
    reporter.finish_text(format!(
        "scanned {}, copied {}",
        report.scanned,
        report.total_copied()
    ));
    let copied: serde_json::Map<String, serde_json::Value> = report
        .copied
        .iter()
        .map(|(k, n)| (k.name().to_owned(), json!(n)))
        .collect();
    let by_kind = report
        .copied
        .iter()
        .map(|(k, n)| format!("{n} {}", k.name()))
        .collect::<Vec<_>>()
        .join(", ");
    let verb = if dry_run { "would copy" } else { "copied" };
    Ok(Outcome::new(
        json!({
            "server": server_name(kv),
            "from": format!("{}*", from.key_space()),
            "to": format!("{}*", to.key_space()),
            "dry_run": dry_run,
            "scanned": report.scanned,
            "copied": copied,
            "skipped": {
                "already_present": report.already_present,
                "conflicts": report.conflicts,
                "expired": report.expired,
                "not_better_auth_data": report.not_migrated,
                "destination_keys": report.destination_keys,
            },
            "elapsed_ms": report.elapsed.as_millis() as u64,
        }),
        format!(
            "{verb} {} keys ({}) from {}* to {}*; skipped: {} already present, {} conflicts \
             (destination differs, kept), {} expired, {} not Better Auth data, {} destination \
             keys; scanned {} in {:.1} s",
            report.total_copied(),
            if by_kind.is_empty() {
                "none".to_owned()
            } else {
                by_kind
            },
            from.key_space(),
            to.key_space(),
            report.already_present,
            report.conflicts,
            report.expired,
            report.not_migrated,
            report.destination_keys,
            report.scanned,
            report.elapsed.as_secs_f64()
        ),
    ))
}
