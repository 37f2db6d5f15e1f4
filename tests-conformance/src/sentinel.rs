//! A Sentinel deployment for tests: one primary, two replicas (`--replicaof`) and three
//! sentinels (quorum 2) on free loopback ports, every process in its own temp dir under
//! the same `sh` watchdog as [`crate::server`] (killed on drop, and when this process dies).
//!
//! The data nodes and the sentinels run the binary [`server::server_binary`] picks
//! (`RUSTAUTH_REDIS_SERVER`): both `redis-server` and `valkey-server` run as a sentinel with
//! `--sentinel` and a writable config file. [`SentinelDeployment::start`] returns once every
//! sentinel names the same primary, knows both replicas and the two other sentinels, and the
//! replicas are in sync. Failover cases start their own deployment; the storage cases share
//! one per process ([`shared`]), on which no failover happens.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::server;

/// The service name the sentinels monitor the primary under.
pub const SERVICE: &str = "rustauth";

/// How long the deployment may take to settle (start-up, or after a failover).
pub const SETTLE_LIMIT: Duration = Duration::from_secs(30);

/// One process under the watchdog.
struct Process {
    port: u16,
    pid: u32,
    watchdog: Child,
    stdin: Option<ChildStdin>,
    log: PathBuf,
}

impl Process {
    fn spawn(bin: &Path, port: u16, args: &[String], log: PathBuf) -> Result<Process, String> {
        // As in server.rs: only the watchdog (the server's parent) kills, once.
        let script =
            r#""$0" "$@" & pid=$!; echo "$pid"; read -r _; kill -KILL "$pid"; wait "$pid""#;
        let mut watchdog = Command::new("sh")
            .arg("-c")
            .arg(script)
            .arg(bin)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
        let stdin = watchdog.stdin.take();
        let mut out = BufReader::new(watchdog.stdout.take().expect("piped stdout"));
        let mut line = String::new();
        out.read_line(&mut line)
            .map_err(|e| format!("watchdog did not report the pid: {e}"))?;
        let pid = line
            .trim()
            .parse()
            .map_err(|_| format!("watchdog printed {line:?} instead of a pid"))?;
        Ok(Process {
            port,
            pid,
            watchdog,
            stdin,
            log,
        })
    }

    fn stop(&mut self) {
        if let Some(mut stdin) = self.stdin.take() {
            let _ = stdin.write_all(b"stop\n");
            drop(stdin);
            let _ = self.watchdog.wait();
        }
    }

    fn log_tail(&self, lines: usize) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = log.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.stop();
    }
}

fn free_port() -> Result<u16, String> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("no free loopback port: {e}"))
}

/// How to configure a deployment.
#[derive(Debug, Clone, Default)]
pub struct SentinelOptions {
    /// `min-replicas-to-write` on every data node: a primary with fewer replicas connected
    /// refuses writes (`NOREPLICAS`).
    pub min_replicas_to_write: u32,
    /// `requirepass` of the data nodes (and `masterauth`, `sentinel auth-pass`).
    pub data_password: Option<String>,
    /// `requirepass` of the sentinels (they use it with each other too).
    pub sentinel_password: Option<String>,
}

/// A primary, two replicas and three sentinels.
pub struct SentinelDeployment {
    dir: tempfile::TempDir,
    bin: PathBuf,
    /// The data nodes, by port (whatever their current role).
    data: Mutex<Vec<Process>>,
    data_ports: Vec<u16>,
    sentinels: Vec<Process>,
    options: SentinelOptions,
}

impl std::fmt::Debug for SentinelDeployment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "SentinelDeployment(data {:?}, sentinels {:?})",
            self.data_ports,
            self.sentinel_ports()
        )
    }
}

/// A sync connection to a loopback node, for the harness's own queries.
fn node(port: u16, auth: Option<&str>) -> Result<redis::Connection, String> {
    let userinfo = auth.map(|pw| format!(":{pw}@")).unwrap_or_default();
    let client = redis::Client::open(format!("redis://{userinfo}127.0.0.1:{port}"))
        .map_err(|e| format!("127.0.0.1:{port}: {e}"))?;
    let conn = client
        .get_connection_with_timeout(Duration::from_secs(1))
        .map_err(|e| format!("127.0.0.1:{port}: {e}"))?;
    conn.set_read_timeout(Some(Duration::from_secs(2)))
        .map_err(|e| e.to_string())?;
    Ok(conn)
}

fn query<T: redis::FromRedisValue>(
    port: u16,
    auth: Option<&str>,
    cmd: &redis::Cmd,
) -> Result<T, String> {
    cmd.query(&mut node(port, auth)?)
        .map_err(|e| format!("127.0.0.1:{port}: {e}"))
}

/// The first element of `ROLE` on a data node: `master`, `slave`.
pub fn role(port: u16) -> Result<String, String> {
    role_with(port, None)
}

fn role_with(port: u16, auth: Option<&str>) -> Result<String, String> {
    let v: Vec<redis::Value> = query(port, auth, &redis::cmd("ROLE"))?;
    match v.first() {
        Some(redis::Value::BulkString(b)) => Ok(String::from_utf8_lossy(b).into_owned()),
        Some(redis::Value::SimpleString(s)) => Ok(s.clone()),
        other => Err(format!("ROLE on {port}: {other:?}")),
    }
}

impl SentinelDeployment {
    /// Starts the deployment and waits until it is settled.
    pub fn start() -> Result<SentinelDeployment, String> {
        Self::start_with(SentinelOptions::default())
    }

    /// [`start`](Self::start) with passwords or `min-replicas-to-write`.
    pub fn start_with(options: SentinelOptions) -> Result<SentinelDeployment, String> {
        let bin = server::server_binary()?;
        let dir = tempfile::Builder::new()
            .prefix("rustauth-sentinel-")
            .tempdir()
            .map_err(|e| format!("cannot create a temp dir: {e}"))?;
        let mut data = Vec::new();
        let mut data_ports = Vec::new();
        for i in 0..3 {
            let port = free_port()?;
            let replica_of = (i > 0).then(|| data_ports[0]);
            data.push(Self::spawn_data(
                &bin,
                dir.path(),
                port,
                replica_of,
                &options,
            )?);
            data_ports.push(port);
            wait_ping(
                port,
                options.data_password.as_deref(),
                Duration::from_secs(10),
            )?;
        }
        let mut sentinels = Vec::new();
        for _ in 0..3 {
            let port = free_port()?;
            let sdir = dir.path().join(format!("sentinel-{port}"));
            std::fs::create_dir_all(&sdir).map_err(|e| e.to_string())?;
            let conf = sdir.join("sentinel.conf");
            let log = sdir.join("sentinel.log");
            std::fs::write(
                &conf,
                format!(
                    "port {port}\nbind 127.0.0.1\ndaemonize no\ndir {dir}\nlogfile {log}\n\
                     sentinel monitor {SERVICE} 127.0.0.1 {primary} 2\n\
                     sentinel down-after-milliseconds {SERVICE} 1000\n\
                     sentinel failover-timeout {SERVICE} 4000\n\
                     sentinel parallel-syncs {SERVICE} 2\n{auth}",
                    dir = sdir.display(),
                    log = log.display(),
                    primary = data_ports[0],
                    auth = sentinel_auth_lines(&options),
                ),
            )
            .map_err(|e| format!("cannot write {}: {e}", conf.display()))?;
            let args = vec![conf.display().to_string(), "--sentinel".to_owned()];
            sentinels.push(Process::spawn(&bin, port, &args, log)?);
            wait_ping(
                port,
                options.sentinel_password.as_deref(),
                Duration::from_secs(10),
            )?;
        }
        let deployment = SentinelDeployment {
            dir,
            bin,
            options,
            data: Mutex::new(data),
            data_ports,
            sentinels,
        };
        deployment.wait_settled(SETTLE_LIMIT, 2)?;
        Ok(deployment)
    }

    fn spawn_data(
        bin: &Path,
        dir: &Path,
        port: u16,
        replica_of: Option<u16>,
        options: &SentinelOptions,
    ) -> Result<Process, String> {
        let ndir = dir.join(format!("node-{port}"));
        std::fs::create_dir_all(&ndir).map_err(|e| e.to_string())?;
        let log = ndir.join("redis.log");
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
            &ndir.display().to_string(),
            "--logfile",
            &log.display().to_string(),
            // Replicas answer reads only while in sync with their primary.
            "--replica-serve-stale-data",
            "no",
            // Replicas sync at once (the default waits 5 s for more replicas).
            "--repl-diskless-sync-delay",
            "0",
            "--min-replicas-to-write",
            &options.min_replicas_to_write.to_string(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        if let Some(pw) = &options.data_password {
            args.extend([
                "--requirepass".to_owned(),
                pw.clone(),
                "--masterauth".to_owned(),
                pw.clone(),
            ]);
        }
        if let Some(primary) = replica_of {
            args.extend([
                "--replicaof".to_owned(),
                "127.0.0.1".to_owned(),
                primary.to_string(),
            ]);
        }
        Process::spawn(bin, port, &args, log)
    }

    fn sentinel_auth(&self) -> Option<&str> {
        self.options.sentinel_password.as_deref()
    }

    fn data_auth(&self) -> Option<&str> {
        self.options.data_password.as_deref()
    }

    /// The sentinels' ports.
    pub fn sentinel_ports(&self) -> Vec<u16> {
        self.sentinels.iter().map(|s| s.port).collect()
    }

    /// The data nodes' ports (primary and replicas, whatever their current role).
    pub fn data_ports(&self) -> &[u16] {
        &self.data_ports
    }

    /// `redis-sentinel://[:DATA@]127.0.0.1:S1?node=127.0.0.1:S2&node=...&sentinelServiceName=...
    /// [&sentinelPassword=...]` with the deployment's passwords.
    pub fn url(&self) -> String {
        self.url_with(self.data_auth(), self.sentinel_auth(), SERVICE)
    }

    /// The sentinel URL of this deployment with the given passwords and service name.
    pub fn url_with(&self, data: Option<&str>, sentinel: Option<&str>, service: &str) -> String {
        let ports = self.sentinel_ports();
        let userinfo = data.map(|pw| format!(":{pw}@")).unwrap_or_default();
        let mut url = format!("redis-sentinel://{userinfo}127.0.0.1:{}?", ports[0]);
        for p in &ports[1..] {
            url.push_str(&format!("node=127.0.0.1:{p}&"));
        }
        url.push_str(&format!("sentinelServiceName={service}"));
        if let Some(pw) = sentinel {
            url.push_str(&format!("&sentinelPassword={pw}"));
        }
        url
    }

    /// The primary's port as the first sentinel that answers names it.
    pub fn primary_port(&self) -> Result<u16, String> {
        let mut last = String::new();
        for port in self.sentinel_ports() {
            match query::<(String, u16)>(
                port,
                self.sentinel_auth(),
                redis::cmd("SENTINEL")
                    .arg("GET-MASTER-ADDR-BY-NAME")
                    .arg(SERVICE),
            ) {
                Ok((_, p)) => return Ok(p),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    /// `redis://127.0.0.1:{primary}`: where the raw probes go.
    pub fn primary_url(&self) -> Result<String, String> {
        Ok(format!("redis://127.0.0.1:{}", self.primary_port()?))
    }

    /// Waits until every sentinel names the same primary, which says `master` and has
    /// `replicas` connected replicas at its own offset, and every sentinel knows those
    /// replicas and the two other sentinels. Returns the primary's port.
    pub fn wait_settled(&self, limit: Duration, replicas: usize) -> Result<u16, String> {
        let started = Instant::now();
        let mut last;
        loop {
            match self.settled(replicas) {
                Ok(port) => return Ok(port),
                Err(e) => last = e,
            }
            if started.elapsed() > limit {
                return Err(format!(
                    "the sentinel deployment did not settle within {limit:?}: {last}\n{}",
                    self.log_tail()
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn settled(&self, replicas: usize) -> Result<u16, String> {
        let mut primary = None;
        for s in self.sentinel_ports() {
            let (_, p): (String, u16) = query(
                s,
                self.sentinel_auth(),
                redis::cmd("SENTINEL")
                    .arg("GET-MASTER-ADDR-BY-NAME")
                    .arg(SERVICE),
            )?;
            if primary.is_some_and(|q| q != p) {
                return Err(format!("sentinels disagree: {primary:?} vs {p}"));
            }
            primary = Some(p);
            let known: Vec<redis::Value> = query(
                s,
                self.sentinel_auth(),
                redis::cmd("SENTINEL").arg("REPLICAS").arg(SERVICE),
            )?;
            let up = known
                .iter()
                .filter(|r| {
                    let text = format!("{r:?}");
                    !text.contains("s_down") && !text.contains("disconnected")
                })
                .count();
            if up < replicas {
                return Err(format!("sentinel {s} sees {up} replicas up"));
            }
            let peers: Vec<redis::Value> = query(
                s,
                self.sentinel_auth(),
                redis::cmd("SENTINEL").arg("SENTINELS").arg(SERVICE),
            )?;
            if peers.len() < 2 {
                return Err(format!("sentinel {s} knows {} sentinels", peers.len()));
            }
        }
        let primary = primary.ok_or("no sentinel")?;
        if role_with(primary, self.data_auth())? != "master" {
            return Err(format!("{primary} is not (yet) a master"));
        }
        let info: String = query(
            primary,
            self.data_auth(),
            redis::cmd("INFO").arg("replication"),
        )?;
        let offset = field(&info, "master_repl_offset").unwrap_or_default();
        let in_sync = info
            .lines()
            .filter(|l| l.starts_with("slave") && l.contains("state=online"))
            .filter(|l| l.contains(&format!("offset={offset},")))
            .count();
        if in_sync < replicas {
            return Err(format!(
                "{primary} has {in_sync} replicas online at offset {offset}"
            ));
        }
        Ok(primary)
    }

    /// `SENTINEL FAILOVER` on the first sentinel that accepts it.
    pub fn failover(&self) -> Result<(), String> {
        let mut last = String::new();
        for s in self.sentinel_ports() {
            match query::<String>(
                s,
                self.sentinel_auth(),
                redis::cmd("SENTINEL").arg("FAILOVER").arg(SERVICE),
            ) {
                Ok(_) => return Ok(()),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    /// SIGKILLs the data node on `port` (and waits until it is gone).
    pub fn kill(&self, port: u16) {
        let mut data = self.data.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(p) = data.iter_mut().find(|p| p.port == port) {
            p.stop();
        }
    }

    /// Restarts the data node on `port` (killed before) as a replica of `primary`, empty.
    pub fn restart_as_replica(&self, port: u16, primary: u16) -> Result<(), String> {
        let process = Self::spawn_data(
            &self.bin,
            self.dir.path(),
            port,
            Some(primary),
            &self.options,
        )?;
        let mut data = self.data.lock().unwrap_or_else(|p| p.into_inner());
        data.retain(|p| p.port != port);
        data.push(process);
        drop(data);
        wait_ping(port, self.data_auth(), Duration::from_secs(10))
    }

    /// The pid of the data node on `port`.
    pub fn pid(&self, port: u16) -> Option<u32> {
        let data = self.data.lock().unwrap_or_else(|p| p.into_inner());
        data.iter()
            .find(|p| p.port == port && p.stdin.is_some())
            .map(|p| p.pid)
    }

    /// The last log lines of every process, for failure reports.
    pub fn log_tail(&self) -> String {
        let mut out = String::new();
        for p in self.data.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            out.push_str(&format!(
                "--- data node {} ---\n{}\n",
                p.port,
                p.log_tail(8)
            ));
        }
        for s in &self.sentinels {
            out.push_str(&format!("--- sentinel {} ---\n{}\n", s.port, s.log_tail(8)));
        }
        out
    }
}

/// The lines of a sentinel's configuration for passwords.
fn sentinel_auth_lines(options: &SentinelOptions) -> String {
    let mut lines = String::new();
    if let Some(pw) = &options.data_password {
        lines.push_str(&format!("sentinel auth-pass {SERVICE} {pw}\n"));
    }
    if let Some(pw) = &options.sentinel_password {
        lines.push_str(&format!("requirepass {pw}\n"));
    }
    lines
}

fn field(info: &str, name: &str) -> Option<String> {
    info.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .map(|v| v.trim().to_owned())
}

fn wait_ping(port: u16, auth: Option<&str>, limit: Duration) -> Result<(), String> {
    let started = Instant::now();
    loop {
        match query::<String>(port, auth, &redis::cmd("PING")) {
            Ok(_) => return Ok(()),
            Err(e) if started.elapsed() > limit => {
                return Err(format!("127.0.0.1:{port} did not answer PING: {e}"))
            }
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

static SHARED: OnceLock<Result<SentinelDeployment, String>> = OnceLock::new();

/// The deployment shared by the storage cases of this process (started on first use; no
/// failover ever happens on it).
pub fn shared() -> &'static SentinelDeployment {
    match SHARED.get_or_init(SentinelDeployment::start).as_ref() {
        Ok(d) => d,
        Err(e) => panic!(
            "this test needs a Sentinel deployment and could not start one: {e}\n{}",
            server::HOW_TO_PROVIDE
        ),
    }
}

/// The shared deployment if it was started, for failure reports.
pub fn shared_log_tail() -> Option<String> {
    SHARED.get()?.as_ref().ok().map(|d| d.log_tail())
}
