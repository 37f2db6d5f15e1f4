//! Project tasks: `cargo xtask <command>`. One module per command; no dependencies beyond
//! the standard library, so `cargo xtask` builds in seconds on a fresh machine.
//!
//! Commands:
//! - `conformance [--url URL] [--case SUBSTRING]`: the conformance table (starts its own
//!   `redis-server` when no URL is given);
//! - `test`: every test of the workspace, including the TLS-feature builds of the
//!   backends — the command CI runs;
//! - `parity [--results FILE] [--check]`: the audit against Better Auth, writing
//!   `docs/parity.md`.

mod conformance;
mod parity;
mod test;

use std::process::{Command, ExitCode};

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let command = args.next();
    let rest: Vec<String> = args.collect();
    let result = match command.as_deref() {
        Some("conformance") => conformance::run(&rest),
        Some("test") => test::run(&rest),
        Some("parity") => parity::run(&rest),
        _ => {
            eprintln!(
                "usage: cargo xtask <command>\n\n\
                 commands:\n  \
                 conformance [--url URL] [--case SUBSTRING]   run the conformance table\n  \
                 test                                          run every test (what CI runs)\n  \
                 parity [--results FILE] [--check]             audit against Better Auth, write docs/parity.md"
            );
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Runs `cargo` with `args` in the workspace root, inheriting stdout and stderr.
pub(crate) fn cargo(args: &[&str]) -> Result<(), String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .ok_or("xtask has no parent directory")?;
    let status = Command::new(&cargo)
        .args(args)
        .current_dir(root)
        .status()
        .map_err(|e| format!("cannot run {cargo}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("`cargo {}` failed ({status})", args.join(" ")))
    }
}
