//! `cargo xtask conformance`: builds and runs the `conformance` binary of
//! `tests-conformance`, which prints the case × backend table and `N passed, M failed`.
//!
//! The build is not quiet: a cold checkout compiles both Redis clients for minutes, and
//! cargo's own `Compiling …` lines (on stderr) show that it is moving. The table alone
//! goes to stdout.

/// Runs the conformance table, passing `args` (`--url`, `--case`) through.
pub(crate) fn run(args: &[String]) -> Result<(), String> {
    eprintln!("xtask: building the conformance runner (first build takes a few minutes)…");
    let mut cmd = vec![
        "run",
        "-p",
        "tests-conformance",
        "--bin",
        "conformance",
        "--",
    ];
    cmd.extend(args.iter().map(String::as_str));
    crate::cargo(&cmd)
}
