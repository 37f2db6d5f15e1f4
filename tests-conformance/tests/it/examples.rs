//! The `rustauth-kv` examples, run as a user runs them: built by a nested `cargo build`
//! and started as processes against the shared `redis-server` (and `memory://`), with
//! their exit status and output checked.
//!
//! A test cannot reach another package's example binaries through `CARGO_BIN_EXE_`, so
//! the first test that needs them builds them, once per test process, into
//! `<target>/examples-build`: a target directory of its own, so the nested cargo never
//! waits on the lock of the directory this test binary was built in, and never replaces
//! the examples that build holds. Its dependencies are compiled once there and reused by
//! later runs. A build failure fails the tests with cargo's output; nothing is skipped.
//!
//! The standalone cases build `examples/quick_start.rs` as the `main.rs` of a new project
//! that depends only on `rustauth-kv` (by path, with one feature set) and tokio with the
//! features the README names, proving that dependency line is enough.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use tests_conformance::server;

/// Longest an example may run before it is killed and its test fails.
const RUN_TIMEOUT: Duration = Duration::from_secs(120);

/// The repository root (this package's parent directory).
fn repo() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest
        .parent()
        .expect("tests-conformance is in the workspace")
        .to_owned()
}

/// `<target>/examples-build`, `<target>` being where this test binary was built
/// (`<target>/debug/deps/it-*`), so a custom `CARGO_TARGET_DIR` is honoured.
fn build_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    let target = exe
        .ancestors()
        .nth(3)
        .expect("the test binary lives in <target>/<profile>/deps");
    target.join("examples-build")
}

/// The cargo that runs these tests (`CARGO`), with the build directory given explicitly.
fn cargo(args: &[&str]) -> Result<(), String> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let started = Instant::now();
    let output = Command::new(&cargo)
        .args(args)
        .arg("--target-dir")
        .arg(build_dir())
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_BUILD_TARGET_DIR")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("could not run {cargo:?}: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "`cargo {}` failed ({}); build the examples by hand with \
             `cargo build -p rustauth-kv --examples --features redis,fred` to see why:\n{}",
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    eprintln!(
        "built in {:.1?}: cargo {}",
        started.elapsed(),
        args.join(" ")
    );
    Ok(())
}

/// `<build dir>/debug/examples`, with every example built with both backends.
fn examples() -> &'static Path {
    static DIR: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let dir = DIR.get_or_init(|| {
        let manifest = repo().join("Cargo.toml");
        cargo(&[
            "build",
            "--manifest-path",
            manifest.to_str().expect("a UTF-8 path"),
            "-p",
            "rustauth-kv",
            "--examples",
            "--features",
            "redis,fred",
        ])
        .map(|()| build_dir().join("debug").join("examples"))
    });
    match dir {
        Ok(dir) => dir,
        Err(e) => panic!("{e}"),
    }
}

/// What a run printed.
struct Run {
    success: bool,
    stdout: String,
    stderr: String,
}

impl Run {
    fn describe(&self, what: &str) -> String {
        let log = server::try_shared()
            .ok()
            .and_then(|s| s.log_tail())
            .unwrap_or_default();
        format!(
            "{what}\n--- success: {}\n--- stdout:\n{}\n--- stderr:\n{}\n--- server log tail:\n{log}",
            self.success, self.stdout, self.stderr
        )
    }
}

/// Runs `bin` with `env` (and no other rustauth-kv variable), killing it after
/// [`RUN_TIMEOUT`].
fn run(bin: &Path, env: &[(&str, String)]) -> Run {
    assert!(
        bin.is_file(),
        "{} is missing: build it with `cargo build -p rustauth-kv --examples --features redis,fred`",
        bin.display()
    );
    let out = tempfile::tempdir().expect("a temp dir");
    let (stdout, stderr) = (out.path().join("stdout"), out.path().join("stderr"));
    let mut command = Command::new(bin);
    for var in [
        "RUSTAUTH_KV_URL",
        "REDIS_URL",
        "RUSTAUTH_KV_BACKEND",
        "RUSTAUTH_KV_PREFIX",
    ] {
        command.env_remove(var);
    }
    let mut child = command
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&stdout).expect("stdout file"))
        .stderr(std::fs::File::create(&stderr).expect("stderr file"))
        .spawn()
        .unwrap_or_else(|e| panic!("could not start {}: {e}", bin.display()));
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("waiting for the example") {
            break Some(status);
        }
        if started.elapsed() > RUN_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Run {
        success: status.is_some_and(|s| s.success()),
        stdout: std::fs::read_to_string(&stdout).unwrap_or_default(),
        stderr: match status {
            Some(_) => std::fs::read_to_string(&stderr).unwrap_or_default(),
            None => format!("killed after {RUN_TIMEOUT:?}"),
        },
    }
}

/// Which store an example runs on.
#[derive(Debug, Clone, Copy)]
enum On {
    RedisRs,
    Fred,
    Memory,
}

impl On {
    fn backend(self) -> &'static str {
        match self {
            On::RedisRs => "redis",
            On::Fred => "fred",
            On::Memory => "memory",
        }
    }

    /// The example's environment: the URL, the backend, and a prefix of this run alone.
    fn env(self, example: &str) -> Vec<(&'static str, String)> {
        let url = match self {
            On::Memory => "memory://".to_owned(),
            On::RedisRs | On::Fred => server::shared().url(),
        };
        let prefix = format!(
            "examples:{example}:{}:{}:",
            self.backend(),
            std::process::id()
        );
        let mut env = vec![("REDIS_URL", url), ("RUSTAUTH_KV_PREFIX", prefix)];
        if !matches!(self, On::Memory) {
            env.push(("RUSTAUTH_KV_BACKEND", self.backend().to_owned()));
        }
        env
    }
}

/// Runs `example` on `on`: exit status 0, the backend announced, a final `ok:` line.
fn expect_example(example: &str, on: On) {
    let run = run(&examples().join(example), &on.env(example));
    let what = format!("example {example} on {on:?}");
    if example == "degradation" && matches!(on, On::Memory) {
        // Memory has no server to lose: the example must say so, not pretend.
        assert!(
            !run.success && run.stderr.contains("this example needs a server"),
            "{}",
            run.describe(&what)
        );
        return;
    }
    let connected = format!("connected: {}", on.backend());
    let last = run.stdout.lines().last().unwrap_or_default();
    assert!(
        run.success
            && run.stdout.starts_with(&connected)
            && last.starts_with("ok: ")
            && last.contains(&format!(" on {}", on.backend())),
        "{}",
        run.describe(&what)
    );
}

macro_rules! example_tests {
    ($($example:ident),* $(,)?) => {$(
        mod $example {
            use super::*;
            #[test]
            fn redis() { expect_example(stringify!($example), On::RedisRs) }
            #[test]
            fn fred() { expect_example(stringify!($example), On::Fred) }
            #[test]
            fn memory() { expect_example(stringify!($example), On::Memory) }
        }
    )*};
}

example_tests!(
    quick_start,
    one_time_codes,
    auth_rate_limit,
    user_devices,
    nightly_cleanup,
    degradation,
);

/// The quick start as `src/main.rs` of a new project whose only dependencies are
/// `rustauth-kv` (`spec`: the inline table after the path) and tokio with `macros` and
/// `rt-multi-thread`; built once per process, its binary returned.
fn standalone(name: &'static str, spec: &str) -> PathBuf {
    let project = build_dir().join(format!("user-{name}"));
    let kv = repo().join("crates").join("rustauth-kv");
    let manifest = format!(
        "[package]\nname = \"quick-start-{name}\"\nversion = \"0.0.0\"\nedition = \"2021\"\n\
         publish = false\n\n# Not a member of the repository's workspace.\n[workspace]\n\n\
         [dependencies]\nrustauth-kv = {{ path = {kv:?}{spec} }}\n\
         tokio = {{ version = \"1\", features = [\"macros\", \"rt-multi-thread\"] }}\n",
    );
    std::fs::create_dir_all(project.join("src")).expect("the project directory");
    write_if_changed(&project.join("Cargo.toml"), &manifest);
    let main = std::fs::read_to_string(kv.join("examples").join("quick_start.rs"))
        .expect("examples/quick_start.rs");
    write_if_changed(&project.join("src").join("main.rs"), &main);
    // The repository's lock file: the versions CI tested, and no network needed.
    if !project.join("Cargo.lock").exists() {
        std::fs::copy(repo().join("Cargo.lock"), project.join("Cargo.lock"))
            .expect("copying Cargo.lock");
    }
    let manifest = project.join("Cargo.toml");
    if let Err(e) = cargo(&[
        "build",
        "--manifest-path",
        manifest.to_str().expect("UTF-8"),
    ]) {
        panic!("{e}");
    }
    build_dir()
        .join("debug")
        .join(format!("quick-start-{name}"))
}

fn write_if_changed(path: &Path, text: &str) {
    if std::fs::read_to_string(path).ok().as_deref() != Some(text) {
        std::fs::write(path, text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }
}

mod standalone {
    use super::*;

    fn expect_quick_start(bin: &Path, url: String, backend: &str) {
        let env = [
            ("REDIS_URL", url),
            (
                "RUSTAUTH_KV_PREFIX",
                format!("examples:user-{backend}:{}:", std::process::id()),
            ),
        ];
        let run = run(bin, &env);
        let what = format!("standalone quick start on {backend}");
        assert!(
            run.success
                && run.stdout.starts_with(&format!("connected: {backend}"))
                && run
                    .stdout
                    .contains(&format!("ok: quick start on {backend}")),
            "{}",
            run.describe(&what)
        );
    }

    #[test]
    fn default_features_use_redis_rs() {
        let bin = standalone("default", "");
        expect_quick_start(&bin, server::shared().url(), "redis");
    }

    #[test]
    fn fred_alone() {
        let bin = standalone("fred", ", default-features = false, features = [\"fred\"]");
        expect_quick_start(&bin, server::shared().url(), "fred");
    }

    #[test]
    fn no_backend_runs_on_memory_and_refuses_a_server() {
        let bin = standalone("memory", ", default-features = false");
        expect_quick_start(&bin, "memory://".to_owned(), "memory");
        let run = run(&bin, &[("REDIS_URL", server::shared().url())]);
        assert!(
            !run.success && run.stderr.contains("built without a server backend"),
            "{}",
            run.describe("standalone quick start without a backend, given a server URL")
        );
    }
}
