//! Running the built binary: a unique prefix per test, the shared server's URL, captured
//! output, parsed JSON.

use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

use tests_conformance::probe::Probe;
use tests_conformance::server;

/// The binary under test.
pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_rustauth-kv");

/// One test's view: the server URL and a prefix no other test uses.
pub(crate) struct Env {
    pub(crate) url: String,
    pub(crate) prefix: String,
}

impl Env {
    /// A fresh prefix on the shared server (started on first use; a test that cannot get
    /// one fails saying how to provide one).
    pub(crate) fn new(name: &str) -> Env {
        static N: AtomicU32 = AtomicU32::new(0);
        let url = server::shared().url();
        let prefix = format!(
            "cli-{name}-{}-{}:",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        Env { url, prefix }
    }

    /// A command running the binary with `--url` and `--prefix` set, stdin not a terminal,
    /// and none of the URL variables of the environment.
    pub(crate) fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(BIN);
        cmd.args(["--url", &self.url, "--prefix", &self.prefix])
            .args(args)
            .env_remove("REDIS_URL")
            .env_remove("RUSTAUTH_KV_URL")
            .env_remove("RUSTAUTH_KV_PREFIX")
            .env_remove("RUSTAUTH_KV_BACKEND")
            .stdin(Stdio::null());
        cmd
    }

    /// Runs the binary to completion.
    pub(crate) fn run(&self, args: &[&str]) -> Run {
        Run::of(self.command(args))
    }

    /// Runs it with `--json` and expects exit 0 and one JSON document.
    pub(crate) fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let run = self.run(&all);
        assert_eq!(run.code, 0, "{args:?} failed: {run:?}");
        run.json()
    }

    /// A raw connection to the server.
    pub(crate) async fn probe(&self) -> Probe {
        Probe::connect(&self.url).await
    }

    /// The physical key `{prefix}{rest}`.
    pub(crate) fn key(&self, rest: &str) -> Vec<u8> {
        format!("{}{rest}", self.prefix).into_bytes()
    }
}

/// A finished run.
pub(crate) struct Run {
    pub(crate) code: i32,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

impl std::fmt::Debug for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {}\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

impl Run {
    pub(crate) fn of(mut cmd: Command) -> Run {
        let out: Output = cmd.output().expect("run rustauth-kv");
        Run {
            code: out.status.code().expect("exited, not killed"),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// stdout as one JSON document.
    pub(crate) fn json(&self) -> serde_json::Value {
        serde_json::from_str(self.stdout.trim())
            .unwrap_or_else(|e| panic!("stdout is not one JSON document ({e}): {self:?}"))
    }
}
