//! `cargo xtask conformance`: builds and runs the `conformance` binary of
//! `tests-conformance`, which prints the case × backend table and `N passed, M failed`.

/// Runs the conformance table, passing `args` (`--url`, `--case`) through.
pub(crate) fn run(args: &[String]) -> Result<(), String> {
    let mut cmd = vec![
        "run",
        "--quiet",
        "-p",
        "tests-conformance",
        "--bin",
        "conformance",
        "--",
    ];
    cmd.extend(args.iter().map(String::as_str));
    crate::cargo(&cmd)
}
