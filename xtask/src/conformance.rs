//! `cargo xtask conformance`: builds and runs the `conformance` binary of
//! `tests-conformance`, which prints the case × backend table and `N passed, M failed`.
//!
//! The build is not quiet: a cold checkout compiles both Redis clients for minutes, and
//! cargo's own `Compiling …` lines (on stderr) show that it is moving. The table alone
//! goes to stdout.
//!
//! `--server redis7|redis8|valkey9|all` picks the server binary of the matrix (see
//! `xtask servers`), `--server-bin PATH` any binary; the rest (`--url`, `--case`,
//! `--results`) goes to the runner.

use std::path::PathBuf;

use crate::servers;

/// Runs the conformance table once per selected server.
pub(crate) fn run(args: &[String]) -> Result<(), String> {
    let mut pass = Vec::new();
    let mut server = None;
    let mut server_bin = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--server" => server = Some(it.next().ok_or("--server needs a name")?.clone()),
            "--server-bin" => {
                server_bin = Some(PathBuf::from(it.next().ok_or("--server-bin needs a path")?))
            }
            _ => pass.push(a.as_str()),
        }
    }
    let runs: Vec<(String, Option<PathBuf>)> = match (server, server_bin) {
        (Some(_), Some(_)) => return Err("give --server or --server-bin, not both".into()),
        (None, Some(bin)) => vec![(bin.display().to_string(), Some(bin))],
        (Some(name), None) => servers::select(&name)?
            .into_iter()
            .map(|s| Ok((s.name.to_owned(), Some(s.binary()?))))
            .collect::<Result<_, String>>()?,
        (None, None) => match servers::default_binary(pass.contains(&"--url"))? {
            Some((name, bin)) => vec![(name.to_owned(), Some(bin))],
            None => vec![("the configured server".to_owned(), None)],
        },
    };
    eprintln!("xtask: building the conformance runner (first build takes a few minutes)…");
    let mut cmd = vec![
        "run",
        "-p",
        "tests-conformance",
        "--bin",
        "conformance",
        "--",
    ];
    cmd.extend(pass.iter().copied());
    let mut failed = Vec::new();
    for (name, bin) in &runs {
        let envs: Vec<(&str, &std::ffi::OsStr)> = match bin {
            Some(bin) => {
                eprintln!("xtask: conformance on {name} ({})", bin.display());
                vec![(servers::BIN_ENV, bin.as_os_str())]
            }
            None => Vec::new(),
        };
        if let Err(e) = crate::cargo_env(&cmd, &envs) {
            eprintln!("xtask: {name}: {e}");
            failed.push(name.clone());
        }
    }
    match failed.as_slice() {
        [] => Ok(()),
        _ => Err(format!("conformance failed on {}", failed.join(", "))),
    }
}
