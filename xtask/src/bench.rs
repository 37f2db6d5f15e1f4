//! `cargo xtask bench [--quick] [--url URL] [--server redis7|redis8|valkey9] [--only NAME]
//! [--no-pin]`: builds `rustauth-kv-bench` in release mode and runs it against a server of
//! the matrix it starts itself (or `--url`). A full run (no `--quick`, no `--only`) also
//! rewrites `docs/performance.md`; every run writes `target/bench/` (Markdown, JSON,
//! SVG).
//!
//! The release build is not quiet: cargo's `Compiling …` lines show it moving, and the
//! bench prints one progress line per round.

use std::process::Command;

use crate::servers;

/// Builds and runs the bench.
pub(crate) fn run(args: &[String]) -> Result<(), String> {
    let mut pass: Vec<String> = Vec::new();
    let mut server = None;
    let mut full = true;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--server" => server = Some(it.next().ok_or("--server needs a name")?.clone()),
            "--quick" | "--only" => {
                full = false;
                pass.push(a.clone());
            }
            _ => pass.push(a.clone()),
        }
    }
    let bin = match server {
        Some(name) => {
            let [one] = servers::select(&name)?[..] else {
                return Err("--server takes one of redis7, redis8, valkey9".into());
            };
            Some(one.binary()?)
        }
        None => servers::default_binary(pass.iter().any(|a| a == "--url"))?.map(|(_, b)| b),
    };
    eprintln!("xtask: building rustauth-kv-bench (release; the first build takes a few minutes)…");
    crate::cargo(&["build", "--release", "-p", "rustauth-kv-bench"])?;
    let root = crate::parity::root();
    if full {
        pass.push("--docs".into());
        pass.push(root.join("docs/performance.md").display().to_string());
    }
    pass.push("--out".into());
    pass.push(root.join("target/bench").display().to_string());
    let exe = root.join("target/release/rustauth-kv-bench");
    let mut cmd = Command::new(&exe);
    cmd.args(&pass).current_dir(&root);
    if let Some(bin) = &bin {
        eprintln!("xtask: bench server {}", bin.display());
        cmd.env(servers::BIN_ENV, bin);
    }
    let status = cmd
        .status()
        .map_err(|e| format!("cannot run {}: {e}", exe.display()))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("the bench failed ({status})"))
    }
}
