//! Health: a `PING` with its latency, what server is on the other end (`INFO server`:
//! Redis or Valkey, version, standalone/cluster/sentinel), and the connect-time check
//! that it is new enough for the commands rustauth-kv sends.
//!
//! These run directly on a [`Connection`], never through a circuit breaker: a health
//! check must report what the server does now, not what the breaker remembers. Both
//! backends call [`ensure_supported_server`] at the end of `connect`, so an old server
//! fails there with a clear message instead of later with `ERR unknown command 'GETDEL'`.

use std::fmt;
use std::time::{Duration, Instant};

use async_trait::async_trait;

use crate::error::{KvError, KvResult};
use crate::wire::{Command, Connection, Reply};

/// The oldest Redis this crate works with: 6.2 brought `GETDEL` and `SET ... KEEPTTL`.
pub const MIN_REDIS: Version = Version::new(6, 2, 0);
/// The oldest Valkey (its first release, compatible with Redis 7.2).
pub const MIN_VALKEY: Version = Version::new(7, 2, 0);

/// A `major.minor.patch` server version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version {
    /// Major version.
    pub major: u32,
    /// Minor version.
    pub minor: u32,
    /// Patch version.
    pub patch: u32,
}

impl Version {
    /// A version.
    pub const fn new(major: u32, minor: u32, patch: u32) -> Self {
        Version {
            major,
            minor,
            patch,
        }
    }

    /// Parses `7.0.15` (a missing part reads as 0; anything after a part's digits, as in
    /// `7.2.0-rc1`, is ignored). `None` when the major part is not a number.
    pub fn parse(text: &str) -> Option<Self> {
        let mut parts = text.trim().split('.').map(|p| {
            let digits = p.bytes().take_while(u8::is_ascii_digit).count();
            p[..digits].parse::<u32>().ok()
        });
        let major = parts.next()??;
        let minor = parts.next().flatten().unwrap_or(0);
        let patch = parts.next().flatten().unwrap_or(0);
        Some(Version::new(major, minor, patch))
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// Which server software answered.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerKind {
    /// Redis (no `server_name` field, or `server_name:redis`).
    Redis,
    /// Valkey (`server_name:valkey`).
    Valkey,
    /// Another Redis-compatible server, by its `server_name`.
    Other(String),
}

impl fmt::Display for ServerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServerKind::Redis => f.write_str("Redis"),
            ServerKind::Valkey => f.write_str("Valkey"),
            ServerKind::Other(name) => f.write_str(name),
        }
    }
}

/// How the server runs (`redis_mode`, or Valkey's `server_mode`).
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerMode {
    /// A single server (possibly a replica or a Sentinel-managed primary).
    Standalone,
    /// A Redis Cluster node.
    Cluster,
    /// A Sentinel: it monitors servers but holds no data.
    Sentinel,
    /// A mode this crate does not know, or none reported (empty).
    Other(String),
}

/// What `INFO server` says about the server.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerInfo {
    /// Redis, Valkey or another server.
    pub kind: ServerKind,
    /// The server's own version (`valkey_version` for Valkey, else `redis_version`).
    pub version: Version,
    /// The Redis version the server is compatible with (`redis_version`; Valkey reports
    /// 7.2.4 here whatever its own version).
    pub redis_version: Version,
    /// Standalone, cluster or sentinel.
    pub mode: ServerMode,
}

impl ServerInfo {
    /// Parses the text of `INFO server` (`field:value` lines; `#` comments ignored).
    pub fn parse(info: &str) -> KvResult<Self> {
        let field = |name: &str| {
            info.lines().find_map(|line| {
                let (k, v) = line.trim_end_matches('\r').split_once(':')?;
                (k == name).then(|| v.trim())
            })
        };
        let version_of = |name: &str| -> KvResult<Option<Version>> {
            field(name)
                .map(|v| {
                    Version::parse(v).ok_or_else(|| {
                        KvError::unexpected(format!("INFO server reports {name}:{v}"))
                    })
                })
                .transpose()
        };
        let redis_version = version_of("redis_version")?.ok_or_else(|| {
            KvError::unexpected("INFO server has no redis_version field: not a Redis server?")
        })?;
        let kind = match field("server_name") {
            None | Some("redis") | Some("") => ServerKind::Redis,
            Some("valkey") => ServerKind::Valkey,
            Some(other) => ServerKind::Other(other.to_owned()),
        };
        let version = match kind {
            ServerKind::Valkey => version_of("valkey_version")?.unwrap_or(redis_version),
            _ => redis_version,
        };
        let mode = match field("server_mode").or_else(|| field("redis_mode")) {
            Some("standalone") => ServerMode::Standalone,
            Some("cluster") => ServerMode::Cluster,
            Some("sentinel") => ServerMode::Sentinel,
            other => ServerMode::Other(other.unwrap_or("").to_owned()),
        };
        Ok(ServerInfo {
            kind,
            version,
            redis_version,
            mode,
        })
    }

    /// Checks that the server can run every command rustauth-kv sends: Redis >= 6.2,
    /// Valkey >= 7.2, another server claiming Redis >= 6.2 compatibility; and not a
    /// Sentinel (which holds no data). The error is
    /// [`ErrorKind::InvalidConfig`](crate::ErrorKind::InvalidConfig): the configured
    /// address points at a server this crate cannot use.
    pub fn check_supported(&self) -> KvResult<()> {
        if self.mode == ServerMode::Sentinel {
            return Err(KvError::invalid_config(format!(
                "{} {} is a Sentinel, which holds no data: connect to the primary it \
                 monitors instead",
                self.kind, self.version
            )));
        }
        let (have, need) = match self.kind {
            ServerKind::Valkey => (self.version, MIN_VALKEY),
            _ => (self.redis_version, MIN_REDIS),
        };
        if have < need {
            return Err(KvError::invalid_config(format!(
                "{} {} is too old for rustauth-kv: it needs Redis >= {MIN_REDIS} or Valkey >= \
                 {MIN_VALKEY} (for GETDEL and SET ... KEEPTTL); upgrade the server",
                self.kind, have
            )));
        }
        Ok(())
    }
}

/// Health checks on any [`Connection`].
#[async_trait]
pub trait ServerHealth: Connection {
    /// Sends `PING`; the round-trip time when the server answers `PONG`.
    async fn ping(&self) -> KvResult<Duration> {
        let started = Instant::now();
        let reply = self.execute(Command::new("PING")).await?;
        let took = started.elapsed();
        match reply {
            Reply::Status(s) if s == "PONG" => Ok(took),
            Reply::Data(b) if &b[..] == b"PONG" => Ok(took),
            other => Err(KvError::unexpected(format!(
                "PING answered {other:?} instead of PONG"
            ))),
        }
    }

    /// Reads and parses `INFO server`.
    async fn server_info(&self) -> KvResult<ServerInfo> {
        let reply = self
            .execute(Command::new("INFO").arg("server"))
            .await?
            .into_opt_bytes()?
            .ok_or_else(|| KvError::unexpected("INFO server answered nil"))?;
        ServerInfo::parse(&String::from_utf8_lossy(&reply))
    }
}

impl<C: Connection + ?Sized> ServerHealth for C {}

/// The connect-time check both backends run: reads `INFO server` and refuses a server
/// that is too old or a Sentinel, naming `server` (the redacted address) in the error.
///
/// A server that refuses `INFO` itself (renamed or forbidden by an ACL: `unknown
/// command`, `NOPERM`) cannot be checked; that is logged as a warning and the connection
/// is kept. Any other failure (unreachable, timeout, `NOAUTH`) is returned.
pub async fn ensure_supported_server(
    conn: &(impl Connection + ?Sized),
    server: &str,
) -> KvResult<Option<ServerInfo>> {
    let info = match conn.server_info().await {
        Ok(info) => info,
        Err(e) if refuses_info(&e) => {
            tracing::warn!(%server, error = %e, "cannot read INFO server; server version not checked");
            return Ok(None);
        }
        Err(e) => return Err(e),
    };
    info.check_supported()
        .map_err(|e| KvError::invalid_config(format!("{server}: {}", e.message())))?;
    Ok(Some(info))
}

fn refuses_info(e: &KvError) -> bool {
    e.server_code() == Some("NOPERM")
        || (e.kind() == crate::ErrorKind::Server && e.message().contains("unknown command"))
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::ErrorKind;

    const REDIS_70: &str = "# Server\r\nredis_version:7.0.15\r\nredis_git_sha1:00000000\r\n\
                            redis_mode:standalone\r\nos:Linux\r\n";
    const VALKEY_8: &str = "# Server\r\nredis_version:7.2.4\r\nserver_name:valkey\r\n\
                            valkey_version:8.0.1\r\nredis_mode:cluster\r\nserver_mode:cluster\r\n";

    #[test]
    fn versions() {
        assert_eq!(Version::parse("7.0.15"), Some(Version::new(7, 0, 15)));
        assert_eq!(Version::parse("6.2"), Some(Version::new(6, 2, 0)));
        assert_eq!(Version::parse("7.2.0-rc1"), Some(Version::new(7, 2, 0)));
        assert_eq!(Version::parse("x"), None);
        assert!(Version::new(6, 2, 0) < Version::new(6, 10, 0));
        assert_eq!(Version::new(6, 2, 14).to_string(), "6.2.14");
    }

    #[test]
    fn parse_table() {
        let table: &[(&str, ServerKind, Version, ServerMode)] = &[
            (REDIS_70, ServerKind::Redis, Version::new(7, 0, 15), ServerMode::Standalone),
            (VALKEY_8, ServerKind::Valkey, Version::new(8, 0, 1), ServerMode::Cluster),
            (
                "redis_version:7.2.4\nserver_name:valkey\nvalkey_version:7.2.5\nredis_mode:sentinel\n",
                ServerKind::Valkey,
                Version::new(7, 2, 5),
                ServerMode::Sentinel,
            ),
            (
                "redis_version:6.2.0\nserver_name:dragonfly\n",
                ServerKind::Other("dragonfly".into()),
                Version::new(6, 2, 0),
                ServerMode::Other(String::new()),
            ),
        ];
        for (text, kind, version, mode) in table {
            let info = ServerInfo::parse(text).unwrap();
            assert_eq!(
                (&info.kind, info.version, &info.mode),
                (kind, *version, mode),
                "{text}"
            );
        }
        let e = ServerInfo::parse("# Server\nos:Linux\n").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::UnexpectedData);
        assert!(ServerInfo::parse("redis_version:banana\n").is_err());
    }

    #[test]
    fn support_rules() {
        let info = |text: &str| ServerInfo::parse(text).unwrap();
        assert!(info("redis_version:6.2.0\nredis_mode:standalone")
            .check_supported()
            .is_ok());
        assert!(info(REDIS_70).check_supported().is_ok());
        assert!(info(VALKEY_8).check_supported().is_ok());
        let e = info("redis_version:6.0.16\nredis_mode:standalone")
            .check_supported()
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidConfig);
        assert!(
            e.message().contains("Redis 6.0.16 is too old") && e.message().contains(">= 6.2.0"),
            "{e}"
        );
        let e = info("redis_version:7.0.0\nredis_mode:sentinel")
            .check_supported()
            .unwrap_err();
        assert!(e.message().contains("Sentinel"), "{e}");
        let e = info("redis_version:5.0.0\nserver_name:keydb")
            .check_supported()
            .unwrap_err();
        assert!(e.message().starts_with("keydb 5.0.0 is too old"), "{e}");
    }

    /// A connection that answers from a script of canned replies.
    #[derive(Debug)]
    struct Canned(Mutex<Vec<KvResult<Reply>>>);

    #[async_trait]
    impl Connection for Canned {
        async fn execute(&self, _: Command) -> KvResult<Reply> {
            self.0.lock().unwrap().remove(0)
        }
    }

    #[tokio::test]
    async fn connect_check_over_a_connection() {
        let old = Canned(Mutex::new(vec![Ok(Reply::Data(
            "redis_version:6.0.9\r\nredis_mode:standalone\r\n".into(),
        ))]));
        let e = ensure_supported_server(&old, "redis://db:6379/0")
            .await
            .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("invalid configuration: redis://db:6379/0: Redis 6.0.9"),
            "{e}"
        );

        let renamed = Canned(Mutex::new(vec![Err(KvError::server_reply(
            "ERR unknown command 'INFO', with args beginning with: 'server'",
            None,
        ))]));
        assert_eq!(ensure_supported_server(&renamed, "s").await.unwrap(), None);

        let noauth = Canned(Mutex::new(vec![Err(KvError::server_reply(
            "NOAUTH Authentication required.",
            None,
        ))]));
        let e = ensure_supported_server(&noauth, "s").await.unwrap_err();
        assert_eq!(e.server_code(), Some("NOAUTH"));

        let ok = Canned(Mutex::new(vec![
            Ok(Reply::Data(REDIS_70.into())),
            Ok(Reply::Status("PONG".into())),
            Ok(Reply::Status("OK".into())),
        ]));
        let info = ensure_supported_server(&ok, "s").await.unwrap().unwrap();
        assert_eq!(info.version, Version::new(7, 0, 15));
        assert!(ok.ping().await.is_ok());
        assert_eq!(
            ok.ping().await.unwrap_err().kind(),
            ErrorKind::UnexpectedData
        );
    }
}
