//! `rustauth-kv-bench`, run by `cargo xtask bench`: rustauth-kv's backends against the
//! raw clients they are built on, memory, and the server's own ceiling, in one run.
//!
//! Each workload runs every contender **interleaved in rounds** (the order rotates each
//! round), so a slow moment of the machine hits every contender alike; a contender's
//! ratio to its raw client is computed per round and reported as the median and range.
//! Nothing here asserts a speed: the numbers go to `target/bench/` (Markdown, JSON, SVG)
//! and, for a full run, to `docs/performance.md`.
//!
//! Usage: `rustauth-kv-bench [--quick] [--url URL] [--only NAME]... [--no-pin]
//! [--out DIR] [--docs FILE]`. `--only` takes a workload's name (that workload only),
//! part of names (`session`: every session workload), `clear` (the clear of 1M keys, 100k with `--quick`) or
//! `observability` (the observability rows) or `client-cost` (our layer's own cost over
//! canned replies); the HTTP rows always run.

mod ceiling;
mod clear;
mod client_cost;
mod contender;
mod driver;
mod http;
mod http_peer;
mod observe;
mod pin;
mod report;
mod workload;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kv_contract::{ConnectionOptions, Endpoint};
use redis::aio::{ConnectionManager, MultiplexedConnection};

use contender::{Contender, RawFred, RawRedis, Stores};
use driver::RunResult;
use report::{quantile_us, CeilingRow, Report, Row};
use workload::Workload;

/// The command line.
#[derive(Debug, Default)]
struct Args {
    quick: bool,
    url: Option<String>,
    only: Vec<String>,
    pin: bool,
    out: PathBuf,
    docs: Option<PathBuf>,
    /// Internal: this process is the child that clears with the named contender.
    clear_child: Option<String>,
}

const USAGE: &str = "usage: rustauth-kv-bench [--quick] [--url URL] [--only NAME]... [--no-pin] \
                     [--out DIR] [--docs FILE]";

impl Args {
    fn parse(mut args: impl Iterator<Item = String>) -> Result<Args, String> {
        let mut parsed = Args {
            pin: true,
            out: PathBuf::from("target/bench"),
            ..Args::default()
        };
        while let Some(arg) = args.next() {
            let mut value = |name: &str| {
                args.next()
                    .ok_or_else(|| format!("{name} needs a value; {USAGE}"))
            };
            match arg.as_str() {
                "--quick" => parsed.quick = true,
                "--no-pin" => parsed.pin = false,
                "--url" => parsed.url = Some(value("--url")?),
                "--only" => parsed.only.push(value("--only")?),
                "--out" => parsed.out = value("--out")?.into(),
                "--docs" => parsed.docs = Some(value("--docs")?.into()),
                "--clear-child" => parsed.clear_child = Some(value("--clear-child")?),
                other => return Err(format!("unknown argument {other:?}; {USAGE}")),
            }
        }
        Ok(parsed)
    }

    /// Rounds per workload and the length of one contender's run in a round. A full run
    /// is 16 workloads x 3 configurations x 7 contenders x 5 rounds: at 100 ms a round
    /// that is under three minutes, so that the run and its release build fit in 10
    /// minutes on a fresh 2-core machine (`--quick`: under one).
    fn rounds(&self) -> (usize, Duration) {
        if self.quick {
            (3, Duration::from_millis(50))
        } else {
            (5, Duration::from_millis(100))
        }
    }
}

/// A runtime configuration: how many tasks, on which runtime.
#[derive(Debug, Clone, Copy)]
struct Config {
    label: &'static str,
    tasks: usize,
    /// `None` = tokio's current-thread runtime (one worker); `Some(n)` = multi-thread.
    workers: Option<usize>,
}

const CONFIGS: [Config; 3] = [
    Config {
        label: "1 task",
        tasks: 1,
        workers: Some(2),
    },
    Config {
        label: "64 tasks",
        tasks: 64,
        workers: Some(2),
    },
    Config {
        label: "64 tasks, 1 worker",
        tasks: 64,
        workers: None,
    },
];

/// The contenders, one per client path. `vs` names the raw contender a backend is
/// compared with.
enum Entry {
    Mux(Arc<RawRedis<MultiplexedConnection>>),
    Manager(Arc<RawRedis<ConnectionManager>>),
    Fred(Arc<RawFred>),
    Stores(Arc<Stores>),
}

struct Named {
    name: &'static str,
    vs: Option<&'static str>,
    entry: Entry,
}

const RAW_MUX: &str = "raw redis-rs (multiplexed)";
const RAW_MANAGER: &str = "raw redis-rs (ConnectionManager)";
const RAW_FRED: &str = "raw fred";

impl Entry {
    fn supports(&self, w: Workload) -> bool {
        match self {
            Entry::Mux(c) => c.supports(w),
            Entry::Manager(c) => c.supports(w),
            Entry::Fred(c) => c.supports(w),
            Entry::Stores(c) => c.supports(w),
        }
    }

    async fn drive(
        &self,
        w: Workload,
        run: u32,
        tasks: usize,
        duration: Duration,
    ) -> Result<RunResult, String> {
        match self {
            Entry::Mux(c) => driver::drive(c, w, run, tasks, duration).await,
            Entry::Manager(c) => driver::drive(c, w, run, tasks, duration).await,
            Entry::Fred(c) => driver::drive(c, w, run, tasks, duration).await,
            Entry::Stores(c) => driver::drive(c, w, run, tasks, duration).await,
        }
    }
}

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// Connects every contender and writes what it reads.
async fn contenders(url: &str) -> Result<Vec<Named>, String> {
    let client = redis::Client::open(url).map_err(err)?;
    let mux = client
        .get_multiplexed_async_connection()
        .await
        .map_err(err)?;
    let manager = ConnectionManager::new(client).await.map_err(err)?;
    let fred = contender::raw_fred_client(url).await?;
    let options = ConnectionOptions::from_url(url).map_err(err)?;
    let ours_redis = rustauth_redis::RedisConnection::connect(&options)
        .await
        .map_err(err)?;
    let coalescing = ConnectionOptions::builder(url)
        .coalesce_writes(true)
        .build()
        .map_err(err)?;
    let ours_coalesced = rustauth_redis::RedisConnection::connect(&coalescing)
        .await
        .map_err(err)?;
    let ours_fred = rustauth_fred::FredConnection::connect(&options)
        .await
        .map_err(err)?;
    let list = vec![
        Named {
            name: RAW_MUX,
            vs: None,
            entry: Entry::Mux(Arc::new(RawRedis::new(mux, "bench-raw-mux:"))),
        },
        Named {
            name: RAW_MANAGER,
            vs: None,
            entry: Entry::Manager(Arc::new(RawRedis::new(manager, "bench-raw-manager:"))),
        },
        Named {
            name: RAW_FRED,
            vs: None,
            entry: Entry::Fred(Arc::new(RawFred::new(fred, "bench-raw-fred:"))),
        },
        Named {
            name: "rustauth-redis",
            vs: Some(RAW_MANAGER),
            entry: Entry::Stores(Arc::new(Stores::server(
                Arc::new(ours_redis),
                "bench-redis:",
            ))),
        },
        Named {
            name: "rustauth-redis, coalesced writes",
            vs: Some(RAW_MANAGER),
            entry: Entry::Stores(Arc::new(Stores::server(
                Arc::new(ours_coalesced),
                "bench-redis-coalesced:",
            ))),
        },
        Named {
            name: "rustauth-fred",
            vs: Some(RAW_FRED),
            entry: Entry::Stores(Arc::new(Stores::server(Arc::new(ours_fred), "bench-fred:"))),
        },
        Named {
            name: "memory",
            vs: None,
            entry: Entry::Stores(Arc::new(Stores::memory("bench-memory:"))),
        },
    ];
    for named in &list {
        let setup = match &named.entry {
            Entry::Mux(c) => c.setup().await,
            Entry::Manager(c) => c.setup().await,
            Entry::Fred(c) => c.setup().await,
            Entry::Stores(c) => c.setup().await,
        };
        setup.map_err(|e| format!("setting up {}: {e}", named.name))?;
    }
    Ok(list)
}

/// Every workload on every contender in one runtime configuration.
async fn run_config(
    url: &str,
    config: Config,
    workloads: &[Workload],
    rounds: usize,
    duration: Duration,
    flush: bool,
    progress: &mut Progress,
) -> Result<Vec<Row>, String> {
    let mut stats = redis::Client::open(url)
        .map_err(err)?
        .get_multiplexed_async_connection()
        .await
        .map_err(|e| format!("the stats connection: {e}"))?;
    // A long timeout: a synchronous FLUSHALL of the previous configuration's keys (and
    // the ceiling runs' up to 600k) takes seconds on one pinned core, and must end before
    // anything is measured.
    stats.set_response_timeout(Duration::from_secs(120));
    if flush {
        redis::cmd("FLUSHALL")
            .exec_async(&mut stats)
            .await
            .map_err(|e| format!("FLUSHALL before {}: {e}", config.label))?;
    }
    let list = contenders(url)
        .await
        .map_err(|e| format!("connecting the contenders for {}: {e}", config.label))?;
    let mut rows = Vec::new();
    let mut run: u32 = 0;
    for &w in workloads {
        let active: Vec<&Named> = list.iter().filter(|n| n.entry.supports(w)).collect();
        for named in &active {
            run += 1;
            named
                .entry
                .drive(w, run, config.tasks, duration / 4)
                .await
                .map_err(|e| format!("{} on {} (warm-up): {e}", w.name(), named.name))?;
        }
        let mut per_round: Vec<Vec<f64>> = vec![Vec::new(); active.len()];
        let mut latencies: Vec<Vec<u32>> = vec![Vec::new(); active.len()];
        let mut commands: Vec<Vec<BTreeMap<String, f64>>> = vec![Vec::new(); active.len()];
        for round in 0..rounds {
            for k in 0..active.len() {
                let idx = (k + round) % active.len();
                let named = active[idx];
                run += 1;
                let before = driver::command_counts(&mut stats).await?;
                let result = named
                    .entry
                    .drive(w, run, config.tasks, duration)
                    .await
                    .map_err(|e| format!("{} on {}: {e}", w.name(), named.name))?;
                let after = driver::command_counts(&mut stats).await?;
                commands[idx].push(driver::per_op(&before, &after, result.ops));
                per_round[idx].push(result.ops_per_sec());
                latencies[idx].extend(result.latencies_ns);
            }
            progress.tick(&format!(
                "{} · {} · round {}",
                config.label,
                w.name(),
                round + 1
            ));
        }
        for (idx, named) in active.iter().enumerate() {
            latencies[idx].sort_unstable();
            let vs_raw = named.vs.and_then(|raw| {
                let raw_idx = active.iter().position(|n| n.name == raw)?;
                let ratios = per_round[idx]
                    .iter()
                    .zip(&per_round[raw_idx])
                    .map(|(ours, raw)| if *raw > 0.0 { ours / raw } else { 0.0 })
                    .collect();
                Some((raw, ratios))
            });
            rows.push(Row {
                workload: w.name(),
                config: config.label,
                contender: named.name,
                rounds: per_round[idx].clone(),
                p50_us: quantile_us(&latencies[idx], 0.5),
                p99_us: quantile_us(&latencies[idx], 0.99),
                vs_raw,
                ceiling_rps: None,
                commands: commands[idx].first().cloned().unwrap_or_default(),
            });
        }
    }
    Ok(rows)
}

/// Progress on stderr: steps done of steps planned, and the time so far.
pub(crate) struct Progress {
    done: usize,
    total: usize,
    started: Instant,
}

impl Progress {
    pub(crate) fn tick(&mut self, what: &str) {
        self.done += 1;
        eprintln!(
            "bench: [{}/{}] {:>5.0} s  {what}",
            self.done,
            self.total,
            self.started.elapsed().as_secs_f64()
        );
    }
}

/// The server's ceiling for each workload that one command stands for.
fn ceilings(
    url: &str,
    workloads: &[Workload],
    quick: bool,
    progress: &mut Progress,
) -> Result<Vec<CeilingRow>, String> {
    let Some(bin) = ceiling::binary() else {
        eprintln!("bench: no redis-benchmark beside the server or on PATH: no ceiling rows");
        return Ok(Vec::new());
    };
    let options = ConnectionOptions::from_url(url).map_err(err)?;
    let (host, port) = match &options.server.endpoint {
        Endpoint::Tcp { host, port }
            if options.server.password.is_none() && !options.server.tls =>
        {
            (host.clone(), *port)
        }
        _ => {
            eprintln!("bench: ceilings need a plain TCP URL without a password: no ceiling rows");
            return Ok(Vec::new());
        }
    };
    // What the ceiling commands read.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(err)?;
    rt.block_on(async {
        let mut c = redis::Client::open(url)
            .map_err(err)?
            .get_multiplexed_async_connection()
            .await
            .map_err(err)?;
        let p = ceiling::PREFIX;
        let value = "v".repeat(workload::VALUE_LEN);
        redis::cmd("SET")
            .arg(format!("{p}hot"))
            .arg(&value)
            .exec_async(&mut c)
            .await
            .map_err(err)?;
        redis::cmd("HSET")
            .arg(format!("{p}s"))
            .arg("user_id")
            .arg("u")
            .arg("expires_at")
            .arg("4000000000000")
            .arg("value")
            .arg(&value)
            .exec_async(&mut c)
            .await
            .map_err(err)?;
        redis::cmd("SCRIPT")
            .arg("LOAD")
            .arg(kv_contract::script::RATE_LIMIT_FIXED_WINDOW.source())
            .exec_async(&mut c)
            .await
            .map_err(err)?;
        Ok::<_, String>(())
    })?;
    let mut rows = Vec::new();
    for &w in workloads {
        let Some(command) = ceiling::command_of(w) else {
            continue;
        };
        for shape in ceiling::SHAPES {
            let requests: u64 = match (shape.clients, shape.pipeline, quick) {
                (1, _, true) => 5_000,
                (1, _, false) => 20_000,
                (_, 1, true) => 30_000,
                (_, 1, false) => 150_000,
                (_, _, true) => 100_000,
                (_, _, false) => 600_000,
            };
            let c = ceiling::run(&bin, &host, port, shape, requests, &command)?;
            rows.push(CeilingRow {
                workload: w.name(),
                shape: shape.label,
                rps: c.rps,
                p50_us: c.p50_ms * 1000.0,
                p99_us: c.p99_ms * 1000.0,
            });
        }
        progress.tick(&format!("ceiling · {}", w.name()));
    }
    Ok(rows)
}

fn run(args: Args) -> Result<(), String> {
    let mut report = Report::default();
    let pinning = if args.pin {
        pin::pin_self()
    } else {
        Err("--no-pin".to_owned())
    };
    let server = match &args.url {
        Some(_) => None,
        None => Some(
            tests_conformance::server::RedisServer::start()
                .map_err(|e| format!("cannot start a redis-server: {e}"))?,
        ),
    };
    let url = match (&args.url, &server) {
        (Some(url), _) => url.clone(),
        (None, Some(s)) => s.url(),
        (None, None) => unreachable!("a server was started when no URL was given"),
    };
    let pin_note = match (&pinning, &server) {
        (Ok(client_cpu), Some(s)) => match pin::pin_pid(s.pid(), pin::SERVER_CPU) {
            Ok(()) => format!(
                "server on CPU {}, bench and redis-benchmark on CPU {client_cpu}",
                pin::SERVER_CPU
            ),
            Err(e) => format!("bench on CPU {client_cpu}; server not pinned: {e}"),
        },
        (Ok(client_cpu), None) => {
            format!("bench on CPU {client_cpu}; server given by --url, not pinned")
        }
        (Err(why), _) => format!("not pinned: {why}"),
    };
    eprintln!("bench: {pin_note}");
    let workloads = workload::selected(&args.only);
    let clear_selected = args.only.is_empty() || args.only.iter().any(|o| o == "clear");
    let observe_selected = args.only.is_empty() || args.only.iter().any(|o| o == "observability");
    let cost_selected = args.only.is_empty() || args.only.iter().any(|o| o == "client-cost");
    if workloads.is_empty() && !clear_selected && !observe_selected && !cost_selected {
        return Err(format!("--only {:?} matches no workload", args.only));
    }
    let (rounds, duration) = args.rounds();
    let ceiling_steps = workloads
        .iter()
        .filter(|w| ceiling::command_of(**w).is_some())
        .count();
    let mut progress = Progress {
        done: 0,
        total: ceiling_steps
            + CONFIGS.len() * workloads.len() * rounds
            + if observe_selected {
                observe::WORKLOADS.len()
            } else {
                0
            }
            + http::STEPS
            + usize::from(clear_selected)
            + if cost_selected {
                client_cost::OPERATIONS.len()
            } else {
                0
            },
        started: Instant::now(),
    };
    if cost_selected {
        let iterations = if args.quick { 20_000 } else { 100_000 };
        report.client_costs = client_cost::run(rounds, iterations, &mut progress)?;
    }
    report.ceilings = ceilings(&url, &workloads, args.quick, &mut progress)?;
    for config in CONFIGS.into_iter().filter(|_| !workloads.is_empty()) {
        let mut builder = match config.workers {
            Some(n) => {
                let mut b = tokio::runtime::Builder::new_multi_thread();
                b.worker_threads(n);
                b
            }
            None => tokio::runtime::Builder::new_current_thread(),
        };
        let rt = builder.enable_all().build().map_err(err)?;
        let rows = rt.block_on(run_config(
            &url,
            config,
            &workloads,
            rounds,
            duration,
            server.is_some(),
            &mut progress,
        ))?;
        report.rows.extend(rows);
    }
    let observe_rows = if observe_selected {
        observe::run(&url, rounds, duration, &mut progress)?
    } else {
        Vec::new()
    };
    let http_rows = http::run(&url, args.quick, &mut progress)?;
    if clear_selected {
        let keys = if args.quick {
            clear::QUICK_KEYS
        } else {
            clear::KEYS
        };
        report.clears = clear::run(&url, keys)?;
        progress.tick(&format!("clear of {keys} keys"));
    }
    for row in &mut report.rows {
        row.ceiling_rps = report
            .ceilings
            .iter()
            .find(|c| c.workload == row.workload && c.shape == ceiling::SHAPES[2].label)
            .map(|c| c.rps);
    }
    report.rows.extend(observe_rows);
    report.rows.extend(http_rows);
    report.meta = meta(&args, &url, &pin_note, rounds, duration);
    write(&args, &report)
}

fn command_output(program: &str, args: &[&str]) -> String {
    std::process::Command::new(program)
        .args(args)
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

/// The version of `name` in the workspace's `Cargo.lock`.
fn locked_version(name: &str) -> String {
    let lock = concat!(env!("CARGO_MANIFEST_DIR"), "/../Cargo.lock");
    let text = std::fs::read_to_string(lock).unwrap_or_default();
    let needle = format!("name = \"{name}\"\nversion = \"");
    text.find(&needle)
        .and_then(|i| text[i + needle.len()..].split('"').next())
        .unwrap_or("?")
        .to_owned()
}

fn meta(
    args: &Args,
    url: &str,
    pin_note: &str,
    rounds: usize,
    duration: Duration,
) -> BTreeMap<&'static str, String> {
    let server_info = server_version(url);
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_owned())
        })
        .unwrap_or_else(|| "?".into());
    let mut command = "cargo xtask bench".to_owned();
    for (on, flag) in [(args.quick, " --quick"), (!args.pin, " --no-pin")] {
        if on {
            command.push_str(flag);
        }
    }
    for only in &args.only {
        command.push_str(&format!(" --only {only}"));
    }
    BTreeMap::from([
        (
            "date",
            command_output("date", &["-u", "+%Y-%m-%d %H:%M UTC"]),
        ),
        ("command", command),
        ("server", server_info),
        (
            "machine",
            format!(
                "{cpu}, {} CPUs online, Linux {}",
                command_output("nproc", &["--all"]),
                command_output("uname", &["-r"])
            ),
        ),
        ("pinning", pin_note.to_owned()),
        ("rustc", command_output("rustc", &["--version"])),
        (
            "clients",
            format!(
                "redis {} · fred {} · tokio {}",
                locked_version("redis"),
                locked_version("fred"),
                locked_version("tokio")
            ),
        ),
        (
            "rounds",
            format!(
                "{rounds} rounds per workload, {} ms per contender per round, order rotated \
                 each round, after a warm-up run",
                duration.as_millis()
            ),
        ),
    ])
}

fn server_version(url: &str) -> String {
    let Ok(client) = redis::Client::open(url) else {
        return "?".into();
    };
    let Ok(mut c) = client.get_connection() else {
        return "?".into();
    };
    let info: String = redis::cmd("INFO")
        .arg("server")
        .query(&mut c)
        .unwrap_or_default();
    let field = |name: &str| {
        info.lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.trim().to_owned())
    };
    match (field("valkey_version:"), field("redis_version:")) {
        (Some(v), _) => format!("Valkey {v}"),
        (None, Some(v)) => format!("Redis {v}"),
        _ => "?".into(),
    }
}

fn write(args: &Args, report: &Report) -> Result<(), String> {
    std::fs::create_dir_all(&args.out)
        .map_err(|e| format!("cannot create {}: {e}", args.out.display()))?;
    let mut header = String::new();
    for (k, v) in &report.meta {
        header.push_str(&format!("- **{k}**: {v}\n"));
    }
    let markdown = format!("{header}\n{}", report.markdown());
    let files = [
        ("bench.md", markdown.clone()),
        (
            "bench.json",
            serde_json::to_string_pretty(&report.json()).map_err(err)?,
        ),
        ("bench-64-tasks.svg", report.svg("64 tasks")),
        ("bench-1-task.svg", report.svg("1 task")),
    ];
    for (name, text) in &files {
        let path = args.out.join(name);
        std::fs::write(&path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    println!("{markdown}");
    eprintln!(
        "bench: wrote {}/bench.md, bench.json, bench-64-tasks.svg, bench-1-task.svg",
        args.out.display()
    );
    if let Some(docs) = &args.docs {
        let text = format!(
            "{}\n\n## Latest run\n\n{markdown}",
            include_str!("performance_intro.md").trim_end()
        );
        std::fs::write(docs, text).map_err(|e| format!("cannot write {}: {e}", docs.display()))?;
        eprintln!("bench: wrote {}", docs.display());
    }
    Ok(())
}

fn main() -> ExitCode {
    let args = match Args::parse(std::env::args().skip(1)) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("bench: {e}");
            return ExitCode::from(2);
        }
    };
    if let Some(how) = &args.clear_child {
        let url = args.url.clone().unwrap_or_default();
        return match clear::child(how, &url) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("bench: clear child: {e}");
                ExitCode::FAILURE
            }
        };
    }
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench: {e}");
            ExitCode::FAILURE
        }
    }
}
