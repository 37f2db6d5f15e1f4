//! The conformance runner behind `cargo xtask conformance`: runs every case on every
//! topology against one Redis server (its own, or `--url`), prints a case × backend table
//! and the measurements, and ends with `N passed, M failed`. Exits non-zero on a failure.
//!
//! Usage: `conformance [--url redis://...] [--server-bin PATH] [--case SUBSTRING]
//! [--results FILE]` (`--server-bin`: the `redis-server`/`valkey-server` every topology
//! starts, like `RUSTAUTH_REDIS_SERVER`)
//!
//! `--results FILE` also writes one line per cell, `case<TAB>topology<TAB>status` with
//! status `pass`, `fail`, `not-run` or `n/a`, for `cargo xtask parity`.

use std::process::ExitCode;

use tests_conformance::run::{
    self, CLUSTER_CASES, CONNECTION_CASES, SENTINEL_CASES, STORAGE_CASES,
};
use tests_conformance::server;
use tests_conformance::{report, BackendKind, Topology};

struct Args {
    url: Option<String>,
    filter: Option<String>,
    results: Option<std::path::PathBuf>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        url: None,
        filter: None,
        results: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--url" => args.url = Some(it.next().ok_or("--url needs a value")?),
            "--case" => args.filter = Some(it.next().ok_or("--case needs a value")?),
            "--results" => args.results = Some(it.next().ok_or("--results needs a file")?.into()),
            "--server-bin" => {
                let bin = it.next().ok_or("--server-bin needs a path")?;
                // Read by the harness (`server::server_binary`) for every topology; set
                // before any thread or server starts.
                std::env::set_var(server::BIN_ENV, bin);
            }
            "-h" | "--help" => {
                println!(
                    "usage: conformance [--url redis://host:port] [--server-bin PATH] \
                     [--case SUBSTRING] [--results FILE]"
                );
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other:?} (try --help)")),
        }
    }
    Ok(args)
}

enum Cell {
    Pass,
    Fail(String),
    NotRun,
    NotApplicable,
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("conformance: {e}");
            return ExitCode::from(2);
        }
    };
    // Decide where the server backends run before any case asks for the shared server.
    let servers = match &args.url {
        Some(url) => {
            server::use_url(url);
            Ok(kv_contract::config::redact_url(url))
        }
        None => match server::server_binary() {
            Ok(_) => match server::try_shared() {
                Ok(s) => Ok(format!("own redis-server at {}", s.url())),
                Err(e) => Err(e),
            },
            Err(e) => Err(e),
        },
    };
    let server_note = match &servers {
        Ok(where_) => format!("server backends run against {where_}"),
        Err(e) => format!(
            "SERVER BACKENDS NOT RUN (redis, fred, redis+fred, fred+redis); only the memory \
             backend ran. Reason: {e}"
        ),
    };
    println!("rustauth-kv conformance — {server_note}\n");
    let with_server = servers.is_ok();
    let selected = |name: &str| args.filter.as_deref().is_none_or(|f| name.contains(f));

    let columns: Vec<String> = Topology::ALL.iter().map(|t| t.name()).collect();
    let mut rows: Vec<(String, Vec<Cell>)> = Vec::new();
    for (name, case) in STORAGE_CASES.iter().filter(|(n, _)| selected(n)) {
        let mut cells = Vec::new();
        for topology in Topology::ALL {
            cells.push(if topology.needs_server() && !with_server {
                Cell::NotRun
            } else {
                match run::storage(topology, name, *case).await {
                    Ok(_) => Cell::Pass,
                    Err(e) => Cell::Fail(e),
                }
            });
        }
        rows.push((name.to_string(), cells));
    }
    let mut no_tls = false;
    for (name, case) in CONNECTION_CASES.iter().filter(|(n, _)| selected(n)) {
        let mut cells = Vec::new();
        for topology in Topology::ALL {
            cells.push(
                if topology.a != topology.b
                    || topology.a == BackendKind::Memory
                    || topology.is_sentinel()
                    || topology.cluster
                {
                    Cell::NotApplicable
                } else if server::server_binary().is_err() {
                    Cell::NotRun
                } else if name.contains("rediss") && server::binary_has_tls() == Ok(false) {
                    no_tls = true;
                    Cell::NotApplicable
                } else {
                    match run::connection(topology.a, *case).await {
                        Ok(_) => Cell::Pass,
                        Err(e) => Cell::Fail(e),
                    }
                },
            );
        }
        rows.push((name.to_string(), cells));
    }
    for (name, case) in SENTINEL_CASES.iter().filter(|(n, _)| selected(n)) {
        let mut cells = Vec::new();
        for topology in Topology::ALL {
            cells.push(if topology.a != topology.b || !topology.is_sentinel() {
                Cell::NotApplicable
            } else if server::server_binary().is_err() {
                Cell::NotRun
            } else {
                match run::connection(topology.a, *case).await {
                    Ok(_) => Cell::Pass,
                    Err(e) => Cell::Fail(e),
                }
            });
        }
        rows.push((name.to_string(), cells));
    }

    for (name, case) in CLUSTER_CASES.iter().filter(|(n, _)| selected(n)) {
        let mut cells = Vec::new();
        for topology in Topology::ALL {
            cells.push(if !topology.cluster || topology.a != topology.b {
                Cell::NotApplicable
            } else if server::server_binary().is_err() {
                Cell::NotRun
            } else {
                match run::connection(topology.a, *case).await {
                    Ok(_) => Cell::Pass,
                    Err(e) => Cell::Fail(e),
                }
            });
        }
        rows.push((name.to_string(), cells));
    }

    let width = rows.iter().map(|(n, _)| n.len()).max().unwrap_or(4).max(4);
    print!("{:width$}", "case");
    for c in &columns {
        print!(" | {c:^w$}", w = c.len().max(10));
    }
    println!();
    let table_width: usize = columns.iter().map(|c| c.len().max(10) + 3).sum();
    println!("{}", "-".repeat(width + table_width));
    let (mut passed, mut failed, mut not_run) = (0, 0, 0);
    let mut failures = Vec::new();
    let mut results = String::new();
    for (name, cells) in &rows {
        print!("{name:width$}");
        for (cell, col) in cells.iter().zip(&columns) {
            let (text, status) = match cell {
                Cell::Pass => {
                    passed += 1;
                    ("pass", "pass")
                }
                Cell::Fail(e) => {
                    failed += 1;
                    failures.push(format!("{name} [{col}]: {e}"));
                    ("FAIL", "fail")
                }
                Cell::NotRun => {
                    not_run += 1;
                    ("NOT RUN", "not-run")
                }
                Cell::NotApplicable => ("n/a", "n/a"),
            };
            print!(" | {text:^w$}", w = col.len().max(10));
            results.push_str(&format!("{name}\t{col}\t{status}\n"));
        }
        println!();
    }
    if let Some(path) = &args.results {
        if let Err(e) = std::fs::write(path, &results) {
            eprintln!("conformance: cannot write {}: {e}", path.display());
            return ExitCode::from(2);
        }
    }
    println!(
        "\n(n/a: connection cases concern the server backends only; they run per backend; \
         sentinel failover cases run per backend through Sentinel.)"
    );
    if no_tls {
        let bin = server::server_binary()
            .map(|b| b.display().to_string())
            .unwrap_or_default();
        println!(
            "(n/a on the TLS case: {bin} is built without TLS; run it on a server with TLS, \
             e.g. Debian's redis-server)"
        );
    }
    for f in &failures {
        println!("\nFAILED {f}");
    }
    let metrics = report::take();
    if !metrics.is_empty() {
        println!("\nmeasured:");
        for m in metrics {
            println!("  {m}");
        }
    }
    if let Some(kib) = report::peak_rss_kib() {
        println!("  peak RSS of this run: {} MiB", kib / 1024);
    }
    if not_run > 0 {
        println!("\n{not_run} cells NOT RUN: {server_note}");
    }
    println!("\n{passed} passed, {failed} failed");
    // Cells that could not run are a failure of the run, never a silent pass.
    if failed > 0 || not_run > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
