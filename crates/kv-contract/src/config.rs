//! Connection options: the server URL, parsed once here for both backends, and the
//! timeouts and reconnect policy every backend applies.
//!
//! Both backends build their client's configuration from a [`ConnectionOptions`], never
//! from the URL text, so a URL means the same thing whichever client connects. Passwords
//! are kept in a [`Password`] whose `Debug` and `Display` print `***`.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use url::Url;

use crate::error::{KvError, KvResult};

/// A password, redacted in every `Debug` and `Display`.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    /// Wraps a password.
    pub fn new(password: impl Into<String>) -> Self {
        Password(password.into())
    }

    /// The password itself, for handing to a client.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"***\"")
    }
}

impl fmt::Display for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Where the server listens.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// A TCP host (name, IPv4 or IPv6 without brackets) and port.
    Tcp {
        /// Host name or IP address.
        host: String,
        /// TCP port.
        port: u16,
    },
    /// A Unix domain socket.
    Unix {
        /// The socket's path.
        path: PathBuf,
    },
    /// A Redis Cluster, reached through any of its seed nodes (the rest of the topology
    /// is discovered). `redis-cluster://host:port?node=host2:port2&node=...`.
    Cluster {
        /// The seed nodes: the URL's host first, then every `node=` in order.
        nodes: Vec<NodeAddress>,
    },
    /// A primary found through Sentinel.
    /// `redis-sentinel://host:26379?node=host2:26379&sentinelServiceName=mymaster`.
    Sentinel {
        /// The sentinels: the URL's host first, then every `node=` in order.
        nodes: Vec<NodeAddress>,
        /// The name the sentinels monitor the primary under (`sentinelServiceName`).
        service: String,
        /// The sentinels' own ACL user (`sentinelUsername`), if they need one; the URL's
        /// user-info is for the data nodes.
        sentinel_username: Option<String>,
        /// The sentinels' own password (`sentinelPassword`).
        sentinel_password: Option<Password>,
    },
}

/// One TCP node of a cluster or sentinel set.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NodeAddress {
    /// Host name or IP address (IPv6 without brackets).
    pub host: String,
    /// TCP port.
    pub port: u16,
}

impl fmt::Display for NodeAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// The default port of a sentinel.
pub const SENTINEL_PORT: u16 = 26379;

/// Parses a `node=` value: `host:port`, `[v6]:port`, or a host alone with `default_port`.
fn parse_node(value: &str, default_port: u16, shown: &str) -> KvResult<NodeAddress> {
    let bad = || {
        KvError::invalid_config(format!(
            "node {value:?} in server URL {shown} is not host:port"
        ))
    };
    let (host, port) = if let Some(rest) = value.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or_else(bad)?;
        match after.strip_prefix(':') {
            Some(port) => (host, Some(port)),
            None if after.is_empty() => (host, None),
            None => return Err(bad()),
        }
    } else {
        match value.rsplit_once(':') {
            Some((host, _)) if host.contains(':') => return Err(bad()),
            Some((host, port)) => (host, Some(port)),
            None => (value, None),
        }
    };
    if host.is_empty() || host.contains(['/', '@', '?', '#', ' ']) {
        return Err(bad());
    }
    let port = match port {
        None => default_port,
        Some(p) => p.parse::<u16>().ok().filter(|p| *p != 0).ok_or_else(bad)?,
    };
    Ok(NodeAddress {
        host: host.to_owned(),
        port,
    })
}

/// A parsed server URL.
///
/// Accepted schemes: `redis://`, `valkey://` (plain TCP), `rediss://`, `valkeys://` (TLS),
/// `redis+unix://`, `valkey+unix://`, `unix://` (Unix socket). Form:
/// `scheme://[user[:password]@]host[:port][/db]`, or `redis+unix:///path/to.sock?db=N`
/// with optional `user=` and `pass=` (or `password=`) query parameters. The port
/// defaults to 6379, the database to 0 (0–255 accepted).
///
/// The user-info ends at the last `@` before the host, not at the first `/`, `?` or `#`:
/// `redis://alice:hunter/2@cache:6379` is user `alice`, password `hunter/2` on host
/// `cache` (generated and base64 passwords contain `/` and `+`). Percent-encoding
/// (`%2F`, `%40`, ...) works too and is decoded; a literal `%` must be written `%25`.
#[non_exhaustive]
#[derive(Clone, PartialEq, Eq)]
pub struct ServerAddress {
    /// Host and port, or socket path.
    pub endpoint: Endpoint,
    /// Whether the connection uses TLS (`rediss://`, `valkeys://`).
    pub tls: bool,
    /// ACL user name, if any.
    pub username: Option<String>,
    /// Password, if any.
    pub password: Option<Password>,
    /// Database number selected after connecting.
    pub database: u8,
}

impl ServerAddress {
    /// Parses a server URL. Errors quote the URL with its password redacted.
    pub fn parse(url: &str) -> KvResult<Self> {
        let shown = redact_url(url);
        let parsed = Url::parse(&normalize_url(url)).map_err(|e| {
            KvError::invalid_config(format!(
                "cannot parse server URL {shown}: {e}; {ENCODING_ADVICE}"
            ))
        })?;
        let mut username = match parsed.username() {
            "" => None,
            u => Some(percent_decode(u, &shown)?),
        };
        let mut password = parsed
            .password()
            .map(|p| percent_decode(p, &shown).map(Password))
            .transpose()?;
        if parsed.fragment().is_some() {
            // A `#` outside the user-info is the rest of a password written unescaped in
            // the query, never something we read: refuse rather than drop it.
            return Err(KvError::invalid_config(format!(
                "server URL {shown} has a `#` fragment; {ENCODING_ADVICE}"
            )));
        }
        let mut database: Option<String> = None;
        let mut after_password = false;
        let mut nodes: Vec<String> = Vec::new();
        let mut service: Option<String> = None;
        let mut sentinel_username: Option<String> = None;
        let mut sentinel_password: Option<Password> = None;
        for (k, v) in parsed.query_pairs() {
            match &*k {
                "db" => database = Some(v.into_owned()),
                "user" | "username" => username = Some(v.into_owned()),
                "pass" | "password" => password = Some(Password(v.into_owned())),
                "protocol" | "resp" => {}
                "node" => nodes.push(v.into_owned()),
                "sentinelServiceName" | "service_name" | "service" => {
                    service = Some(v.into_owned())
                }
                "sentinelUsername" | "sentinel_username" | "sentinel_user" => {
                    sentinel_username = Some(v.into_owned())
                }
                "sentinelPassword" | "sentinel_password" => {
                    sentinel_password = Some(Password(v.into_owned()))
                }
                // Probably the rest of a password with a raw `&`: not quoted.
                _ if after_password => {
                    return Err(KvError::invalid_config(format!(
                        "unknown query parameter after the password in server URL \
                         {shown}; {ENCODING_ADVICE}"
                    )))
                }
                other => {
                    return Err(KvError::invalid_config(format!(
                        "unknown query parameter {other:?} in server URL {shown}"
                    )))
                }
            }
            after_password = QUERY_PASSWORDS.contains(&&*k);
        }
        let topology = Topology::of_scheme(parsed.scheme());
        if topology != Topology::Cluster && topology != Topology::Sentinel && !nodes.is_empty() {
            return Err(KvError::invalid_config(format!(
                "server URL {shown} lists node= servers, but only redis-cluster:// and \
                 redis-sentinel:// URLs take several nodes"
            )));
        }
        if topology != Topology::Sentinel
            && (service.is_some() || sentinel_username.is_some() || sentinel_password.is_some())
        {
            return Err(KvError::invalid_config(format!(
                "server URL {shown} has sentinel parameters, but is not a redis-sentinel:// URL"
            )));
        }
        let (endpoint, tls) = match parsed.scheme() {
            scheme @ ("redis-cluster" | "rediss-cluster" | "valkey-cluster" | "valkeys-cluster"
            | "redis-sentinel" | "rediss-sentinel" | "valkey-sentinel"
            | "valkeys-sentinel") => {
                let sentinel = topology == Topology::Sentinel;
                let default_port = if sentinel { SENTINEL_PORT } else { 6379 };
                let host = match parsed.host() {
                    Some(url::Host::Domain(d)) if !d.is_empty() => d.to_owned(),
                    Some(url::Host::Ipv4(ip)) => ip.to_string(),
                    Some(url::Host::Ipv6(ip)) => ip.to_string(),
                    _ => {
                        return Err(KvError::invalid_config(format!(
                            "server URL {shown} has no host; {ENCODING_ADVICE}"
                        )))
                    }
                };
                let mut all = vec![NodeAddress {
                    host,
                    port: parsed.port().unwrap_or(default_port),
                }];
                for node in &nodes {
                    all.push(parse_node(node, default_port, &shown)?);
                }
                let path = parsed.path().trim_start_matches('/');
                if !path.is_empty() {
                    if database.is_some() {
                        return Err(KvError::invalid_config(format!(
                            "server URL {shown} names the database twice (path and ?db=)"
                        )));
                    }
                    database = Some(path.to_owned());
                }
                let tls = scheme.starts_with("rediss") || scheme.starts_with("valkeys");
                let endpoint = if sentinel {
                    let service = service.take().filter(|s| !s.is_empty()).ok_or_else(|| {
                        KvError::invalid_config(format!(
                            "sentinel URL {shown} names no service: add \
                             ?sentinelServiceName=<the name the sentinels monitor>"
                        ))
                    })?;
                    Endpoint::Sentinel {
                        nodes: all,
                        service,
                        sentinel_username: sentinel_username.take(),
                        sentinel_password: sentinel_password.take(),
                    }
                } else {
                    if database.as_deref().is_some_and(|db| db != "0") {
                        return Err(KvError::invalid_config(format!(
                            "cluster URL {shown} selects a database other than 0: Redis \
                             Cluster has database 0 only"
                        )));
                    }
                    Endpoint::Cluster { nodes: all }
                };
                (endpoint, tls)
            }
            scheme @ ("redis" | "valkey" | "rediss" | "valkeys") => {
                let host = match parsed.host() {
                    Some(url::Host::Domain(d)) if !d.is_empty() => d.to_owned(),
                    Some(url::Host::Ipv4(ip)) => ip.to_string(),
                    Some(url::Host::Ipv6(ip)) => ip.to_string(),
                    _ => {
                        return Err(KvError::invalid_config(format!(
                            "server URL {shown} has no host; {ENCODING_ADVICE}"
                        )))
                    }
                };
                let path = parsed.path().trim_start_matches('/');
                if !path.is_empty() {
                    if database.is_some() {
                        return Err(KvError::invalid_config(format!(
                            "server URL {shown} names the database twice (path and ?db=)"
                        )));
                    }
                    database = Some(path.to_owned());
                }
                let port = parsed.port().unwrap_or(6379);
                let tls = matches!(scheme, "rediss" | "valkeys");
                (Endpoint::Tcp { host, port }, tls)
            }
            "redis+unix" | "valkey+unix" | "unix" => {
                let path = parsed.path();
                if path.is_empty() || path == "/" {
                    return Err(KvError::invalid_config(format!(
                        "server URL {shown} has no socket path"
                    )));
                }
                (
                    Endpoint::Unix {
                        path: PathBuf::from(path),
                    },
                    false,
                )
            }
            other => {
                return Err(KvError::invalid_config(format!(
                    "unsupported URL scheme {other:?} in {shown}: use redis://, rediss://, \
                     valkey://, valkeys://, redis+unix://, unix://, redis-cluster:// \
                     (rediss-cluster://) or redis-sentinel:// (rediss-sentinel://)"
                )))
            }
        };
        let database = match database {
            None => 0,
            Some(db) => db.parse::<u8>().map_err(|_| {
                KvError::invalid_config(format!(
                    "database {db:?} in server URL {shown} is not a number from 0 to 255"
                ))
            })?,
        };
        Ok(ServerAddress {
            endpoint,
            tls,
            username,
            password,
            database,
        })
    }
}

fn percent_decode(s: &str, shown: &str) -> KvResult<String> {
    percent_encoding::percent_decode_str(s)
        .decode_utf8()
        .map(|c| c.into_owned())
        .map_err(|_| KvError::invalid_config(format!("credentials in {shown} are not UTF-8")))
}

/// Query keys whose values are credentials: their values may hold an `@` and are
/// redacted (`pass`, `password`) wherever a URL is shown.
const QUERY_CREDENTIALS: [&str; 8] = [
    "pass",
    "password",
    "user",
    "username",
    "sentinelPassword",
    "sentinel_password",
    "sentinelUsername",
    "sentinel_username",
];

/// Query parameters whose value is a password (redacted in messages).
const QUERY_PASSWORDS: [&str; 4] = ["pass", "password", "sentinelPassword", "sentinel_password"];

/// Every query parameter a server URL accepts.
const QUERY_KEYS: [&str; 16] = [
    "db",
    "user",
    "username",
    "pass",
    "password",
    "protocol",
    "resp",
    "node",
    "sentinelServiceName",
    "service_name",
    "service",
    "sentinelUsername",
    "sentinel_username",
    "sentinelPassword",
    "sentinel_password",
    "sentinel_user",
];

/// Where the user-info of `rest` (the URL after `scheme://`) ends: the byte index of the
/// last `@` before the host, or `None` when there is no user-info.
///
/// A password (base64 and generated ones often are) may contain `/ ? # @ : % +`, so the
/// user-info does not end at the first `/`, `?` or `#` as a generic URL parser assumes:
/// it ends at the last `@` of the URL that is not inside a query credential
/// (`?user=a@b`, `&pass=c@d`). A host, port, database number or any other query value
/// of ours never contains an `@`, so this reads every valid URL as it was meant.
/// Socket URLs (`redis+unix:///path`) have an empty authority and no user-info.
fn userinfo_end(rest: &str) -> Option<usize> {
    if rest.starts_with('/') {
        return None;
    }
    let cutoff = QUERY_CREDENTIALS
        .iter()
        .flat_map(|k| [format!("?{k}="), format!("&{k}=")])
        .filter_map(|marker| rest.find(&marker))
        .min()
        .unwrap_or(rest.len());
    rest[..cutoff].rfind('@')
}

/// Percent-encodes the characters that would end a URL's user-info early (`/ ? # @`),
/// leaving existing `%XX` escapes as they are.
fn encode_userinfo(userinfo: &str) -> String {
    let mut out = String::with_capacity(userinfo.len());
    for c in userinfo.chars() {
        match c {
            '/' => out.push_str("%2F"),
            '?' => out.push_str("%3F"),
            '#' => out.push_str("%23"),
            '@' => out.push_str("%40"),
            c => out.push(c),
        }
    }
    out
}

/// The URL with its user-info percent-encoded, so a generic parser finds the host where
/// [`userinfo_end`] does.
fn normalize_url(url: &str) -> std::borrow::Cow<'_, str> {
    let Some(scheme_end) = url.find("://") else {
        return url.into();
    };
    let rest = &url[scheme_end + 3..];
    match userinfo_end(rest) {
        Some(at) => format!(
            "{}://{}@{}",
            &url[..scheme_end],
            encode_userinfo(&rest[..at]),
            &rest[at + 1..]
        )
        .into(),
        None => url.into(),
    }
}

/// How to write a password with URL delimiters, for parse errors.
const ENCODING_ADVICE: &str = "percent-encode special characters of the user name and \
     password (`/` as %2F, `?` as %3F, `#` as %23, `@` as %40, `%` as %25, `:` in a user \
     name as %3A; in a `?pass=` value also `&` as %26 and `+` as %2B)";

/// Replaces the password of a URL-looking string with `***`, for messages and logs.
///
/// The user-info ends at the last `@` before the host (see the parsing rules of
/// [`ServerAddress`]), so a password containing `/ ? # @ : % +` is hidden whole; when the
/// user name itself cannot be told apart from the password, the whole user-info is
/// hidden. `pass=`/`password=` query values are hidden too.
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        // `redis:user:pass@host` and other forms without `//`: hide everything up to
        // the last `@`.
        return match (url.find(':'), url.rfind('@')) {
            (Some(colon), Some(at)) if colon < at => {
                format!("{}:***@{}", &url[..colon], &url[at + 1..])
            }
            (None, Some(at)) => format!("***@{}", &url[at + 1..]),
            _ => url.to_owned(),
        };
    };
    let rest = &url[scheme_end + 3..];
    let mut out = format!("{}://", &url[..scheme_end]);
    let after = match userinfo_end(rest) {
        Some(at) => {
            let userinfo = &rest[..at];
            let delimiters = ['/', '?', '#', '@'];
            match userinfo.split_once(':') {
                Some((user, _)) if !user.contains(delimiters) => {
                    out.push_str(user);
                    out.push_str(":***");
                }
                None if !userinfo.contains(delimiters) => out.push_str(userinfo),
                _ => out.push_str("***"),
            }
            out.push('@');
            &rest[at + 1..]
        }
        None => rest,
    };
    // Query-string credentials (`?pass=...`) are redacted too.
    match after.split_once('?') {
        Some((path, query)) => {
            out.push_str(path);
            out.push('?');
            // After a password, pieces up to the next known parameter may be the rest
            // of a password with a raw `&` in it: they are hidden with it.
            let mut in_password = false;
            let mut first = true;
            for pair in query.split('&') {
                let key = pair.split_once('=').map_or(pair, |(k, _)| k);
                let is_password = QUERY_PASSWORDS.contains(&key);
                if in_password && !is_password && !QUERY_KEYS.contains(&key) {
                    continue;
                }
                if !first {
                    out.push('&');
                }
                first = false;
                in_password = is_password;
                if is_password {
                    out.push_str(key);
                    out.push_str("=***");
                } else {
                    out.push_str(pair);
                }
            }
        }
        None => out.push_str(after),
    }
    out
}

impl fmt::Display for ServerAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let user = self.username.as_deref().unwrap_or("");
        let auth = match (&self.username, &self.password) {
            (_, Some(_)) => format!("{user}:***@"),
            (Some(_), None) => format!("{user}@"),
            (None, None) => String::new(),
        };
        match &self.endpoint {
            Endpoint::Tcp { host, port } => {
                let scheme = if self.tls { "rediss" } else { "redis" };
                let host = if host.contains(':') {
                    format!("[{host}]")
                } else {
                    host.clone()
                };
                write!(f, "{scheme}://{auth}{host}:{port}/{}", self.database)
            }
            Endpoint::Unix { path } => {
                write!(
                    f,
                    "redis+unix://{auth}{}?db={}",
                    path.display(),
                    self.database
                )
            }
            Endpoint::Cluster { nodes } => {
                let scheme = if self.tls {
                    "rediss-cluster"
                } else {
                    "redis-cluster"
                };
                write!(f, "{scheme}://{auth}")?;
                write_nodes(f, nodes)
            }
            Endpoint::Sentinel {
                nodes,
                service,
                sentinel_username,
                sentinel_password,
            } => {
                let scheme = if self.tls {
                    "rediss-sentinel"
                } else {
                    "redis-sentinel"
                };
                write!(f, "{scheme}://{auth}")?;
                write_nodes(f, nodes)?;
                let sep = if nodes.len() > 1 { '&' } else { '?' };
                write!(f, "{sep}sentinelServiceName={service}&db={}", self.database)?;
                if let Some(user) = sentinel_username {
                    write!(f, "&sentinelUsername={user}")?;
                }
                if sentinel_password.is_some() {
                    f.write_str("&sentinelPassword=***")?;
                }
                Ok(())
            }
        }
    }
}

/// `first?node=second&node=third`.
fn write_nodes(f: &mut fmt::Formatter<'_>, nodes: &[NodeAddress]) -> fmt::Result {
    for (i, node) in nodes.iter().enumerate() {
        match i {
            0 => write!(f, "{node}")?,
            1 => write!(f, "?node={node}")?,
            _ => write!(f, "&node={node}")?,
        }
    }
    Ok(())
}

/// What kind of deployment a URL scheme names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Topology {
    Single,
    Cluster,
    Sentinel,
}

impl Topology {
    fn of_scheme(scheme: &str) -> Topology {
        if scheme.ends_with("-cluster") {
            Topology::Cluster
        } else if scheme.ends_with("-sentinel") {
            Topology::Sentinel
        } else {
            Topology::Single
        }
    }
}

impl fmt::Debug for ServerAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ServerAddress({self})")
    }
}

impl ServerAddress {
    /// Refuses a TLS address when the backend was built without TLS: a `rediss://` URL
    /// must never silently connect in plaintext. `backend` names the crate for the message.
    pub fn check_tls_support(&self, backend: &str, tls_compiled: bool) -> KvResult<()> {
        if self.tls && !tls_compiled {
            return Err(KvError::invalid_config(format!(
                "{self} asks for TLS, but {backend} was built without TLS support: enable its \
                 `tls-rustls` or `tls-native-tls` feature (refusing to connect in plaintext)"
            )));
        }
        Ok(())
    }
}

/// How a backend reconnects after the connection breaks: exponential backoff between
/// `min_delay` and `max_delay`, forever. Commands are never replayed.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReconnectPolicy {
    /// The first delay before reconnecting.
    pub min_delay: Duration,
    /// The longest delay between attempts.
    pub max_delay: Duration,
}

impl Default for ReconnectPolicy {
    fn default() -> Self {
        ReconnectPolicy {
            min_delay: Duration::from_millis(50),
            max_delay: Duration::from_secs(2),
        }
    }
}

/// Everything a backend needs to connect: the server and the bounds on waiting for it.
///
/// Build with [`ConnectionOptions::builder`]; `build()` validates everything, so a
/// backend's `connect` never sees a bad value.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionOptions {
    /// The server.
    pub server: ServerAddress,
    /// How long establishing a connection (TCP, TLS, AUTH, SELECT) may take.
    pub connect_timeout: Duration,
    /// How long one command may wait for its reply.
    pub command_timeout: Duration,
    /// How to reconnect after the connection breaks.
    pub reconnect: ReconnectPolicy,
    /// PEM certificates to trust for TLS instead of the system's roots (a private CA).
    pub tls_root_certificates: Option<Vec<u8>>,
    /// Write coalescing ("auto-pipelining", default off): commands issued together by
    /// concurrent tasks go out as one pipeline, one write. See
    /// [`ConnectionOptionsBuilder::coalesce_writes`].
    pub coalesce_writes: bool,
}

impl ConnectionOptions {
    /// Default connect timeout: 5 s.
    pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
    /// Default command timeout: 2 s. Auth traffic answers in well under a millisecond;
    /// two seconds bounds a request stuck on a dead server.
    pub const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_secs(2);
    /// The largest timeout accepted (one hour).
    pub const MAX_TIMEOUT: Duration = Duration::from_secs(3600);

    /// Starts options for the server at `url`.
    pub fn builder(url: impl Into<String>) -> ConnectionOptionsBuilder {
        ConnectionOptionsBuilder {
            url: url.into(),
            connect_timeout: Self::DEFAULT_CONNECT_TIMEOUT,
            command_timeout: Self::DEFAULT_COMMAND_TIMEOUT,
            reconnect: ReconnectPolicy::default(),
            tls_root_certificates: None,
            coalesce_writes: false,
        }
    }

    /// Options for `url` with every default.
    pub fn from_url(url: &str) -> KvResult<Self> {
        Self::builder(url).build()
    }
}

/// Builder for [`ConnectionOptions`].
#[derive(Clone)]
pub struct ConnectionOptionsBuilder {
    url: String,
    connect_timeout: Duration,
    command_timeout: Duration,
    reconnect: ReconnectPolicy,
    tls_root_certificates: Option<Vec<u8>>,
    coalesce_writes: bool,
}

impl fmt::Debug for ConnectionOptionsBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectionOptionsBuilder")
            .field("url", &redact_url(&self.url))
            .field("connect_timeout", &self.connect_timeout)
            .field("command_timeout", &self.command_timeout)
            .field("reconnect", &self.reconnect)
            .field(
                "tls_root_certificates",
                &self.tls_root_certificates.as_ref().map(Vec::len),
            )
            .field("coalesce_writes", &self.coalesce_writes)
            .finish()
    }
}

impl ConnectionOptionsBuilder {
    /// Sets the connect timeout (default 5 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Sets the command timeout (default 2 s).
    pub fn command_timeout(mut self, timeout: Duration) -> Self {
        self.command_timeout = timeout;
        self
    }

    /// Sets the reconnect backoff bounds (default 50 ms to 2 s).
    pub fn reconnect_delays(mut self, min_delay: Duration, max_delay: Duration) -> Self {
        self.reconnect = ReconnectPolicy {
            min_delay,
            max_delay,
        };
        self
    }

    /// Trusts these PEM certificates (one or more `BEGIN CERTIFICATE` blocks) for TLS
    /// instead of the system's roots: for servers whose certificate is issued by a
    /// private CA. Only valid with a `rediss://` or `valkeys://` URL.
    pub fn tls_root_certificates_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.tls_root_certificates = Some(pem.into());
        self
    }

    /// Turns write coalescing ("auto-pipelining") on or off (default off).
    ///
    /// On: when a command is issued while others are on their way, rustauth-redis
    /// gathers the commands that concurrent tasks issue in the same moment and writes
    /// them as one pipeline: fewer writes on the client and fewer reads on the server,
    /// so more operations per second under concurrency. A lone caller, with nothing in
    /// flight, is sent at once and pays no delay. Every command still gets its own reply
    /// and its own error, and is never resent. rustauth-fred pipelines this way by
    /// itself (fred's `auto_pipeline`), so the option changes nothing there. Not
    /// available on a Redis Cluster (`build` refuses it), whose redis-rs client routes
    /// each command to its node itself.
    pub fn coalesce_writes(mut self, on: bool) -> Self {
        self.coalesce_writes = on;
        self
    }

    /// Validates and builds the options.
    pub fn build(self) -> KvResult<ConnectionOptions> {
        let server = ServerAddress::parse(&self.url)?;
        if self.coalesce_writes && matches!(server.endpoint, Endpoint::Cluster { .. }) {
            return Err(KvError::invalid_config(format!(
                "write coalescing is not available on a cluster connection ({server}): \
                 leave coalesce_writes off"
            )));
        }
        if let Some(pem) = &self.tls_root_certificates {
            if !server.tls {
                return Err(KvError::invalid_config(format!(
                    "TLS root certificates were given, but {server} is not a TLS URL \
                     (use rediss:// or valkeys://)"
                )));
            }
            let marker = b"-----BEGIN CERTIFICATE-----";
            if !pem.windows(marker.len()).any(|w| w == marker) {
                return Err(KvError::invalid_config(format!(
                    "the TLS root certificates ({} bytes) contain no PEM \
                     \"-----BEGIN CERTIFICATE-----\" block",
                    pem.len()
                )));
            }
        }
        for (name, t) in [
            ("connect timeout", self.connect_timeout),
            ("command timeout", self.command_timeout),
        ] {
            if t.is_zero() || t > ConnectionOptions::MAX_TIMEOUT {
                return Err(KvError::invalid_config(format!(
                    "{name} {t:?} is out of range: it must be above zero and at most {:?}",
                    ConnectionOptions::MAX_TIMEOUT
                )));
            }
        }
        let r = self.reconnect;
        if r.min_delay.is_zero()
            || r.min_delay > r.max_delay
            || r.max_delay > ConnectionOptions::MAX_TIMEOUT
        {
            return Err(KvError::invalid_config(format!(
                "reconnect delays {:?}..{:?} are invalid: need 0 < min <= max <= {:?}",
                r.min_delay,
                r.max_delay,
                ConnectionOptions::MAX_TIMEOUT
            )));
        }
        Ok(ConnectionOptions {
            server,
            connect_timeout: self.connect_timeout,
            command_timeout: self.command_timeout,
            reconnect: r,
            tls_root_certificates: self.tls_root_certificates,
            coalesce_writes: self.coalesce_writes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tcp(host: &str, port: u16) -> Endpoint {
        Endpoint::Tcp {
            host: host.into(),
            port,
        }
    }

    /// URL, endpoint, TLS, user, password, database.
    type UrlCase<'a> = (
        &'a str,
        Endpoint,
        bool,
        Option<&'a str>,
        Option<&'a str>,
        u8,
    );

    #[test]
    fn url_table() {
        let cases: &[UrlCase] = &[
            (
                "redis://localhost",
                tcp("localhost", 6379),
                false,
                None,
                None,
                0,
            ),
            (
                "redis://127.0.0.1:7000/3",
                tcp("127.0.0.1", 7000),
                false,
                None,
                None,
                3,
            ),
            ("rediss://h:1", tcp("h", 1), true, None, None, 0),
            ("valkey://h", tcp("h", 6379), false, None, None, 0),
            ("valkeys://h", tcp("h", 6379), true, None, None, 0),
            ("redis://[::1]:6380", tcp("::1", 6380), false, None, None, 0),
            (
                "redis://:s3cret@h",
                tcp("h", 6379),
                false,
                None,
                Some("s3cret"),
                0,
            ),
            (
                "redis://alice:p%40ss@h/2",
                tcp("h", 6379),
                false,
                Some("alice"),
                Some("p@ss"),
                2,
            ),
            ("redis://h?db=5", tcp("h", 6379), false, None, None, 5),
            (
                "redis+unix:///tmp/r.sock?db=1&user=bob&pass=pw",
                Endpoint::Unix {
                    path: "/tmp/r.sock".into(),
                },
                false,
                Some("bob"),
                Some("pw"),
                1,
            ),
            (
                "unix:///run/redis.sock",
                Endpoint::Unix {
                    path: "/run/redis.sock".into(),
                },
                false,
                None,
                None,
                0,
            ),
            (
                "valkey+unix:///s",
                Endpoint::Unix { path: "/s".into() },
                false,
                None,
                None,
                0,
            ),
        ];
        for (url, endpoint, tls, user, pass, db) in cases {
            let a = ServerAddress::parse(url).unwrap_or_else(|e| panic!("{url}: {e}"));
            assert_eq!(&a.endpoint, endpoint, "{url}");
            assert_eq!(a.tls, *tls, "{url}");
            assert_eq!(a.username.as_deref(), *user, "{url}");
            assert_eq!(a.password.as_ref().map(Password::expose), *pass, "{url}");
            assert_eq!(a.database, *db, "{url}");
        }
    }

    #[test]
    fn bad_urls_are_named_without_their_password() {
        let cases: &[(&str, &str)] = &[
            ("http://:hunter2@h", "unsupported URL scheme \"http\""),
            ("redis://:hunter2@h/300", "database \"300\""),
            ("redis://:hunter2@h/x", "database \"x\""),
            ("redis://:hunter2@h/1?db=2", "names the database twice"),
            (
                "redis://:hunter2@h?bogus=1",
                "unknown query parameter \"bogus\"",
            ),
            ("redis+unix://", "no socket path"),
            ("not a url", "cannot parse server URL"),
        ];
        for (url, want) in cases {
            let e = ServerAddress::parse(url).unwrap_err();
            let text = e.to_string();
            assert!(text.contains(want), "{url}: {text}");
            assert!(!text.contains("hunter2"), "password leaked: {text}");
            assert_eq!(e.kind(), crate::ErrorKind::InvalidConfig);
        }
    }

    #[test]
    fn debug_and_display_redact_passwords() {
        let o = ConnectionOptions::from_url("redis://alice:hunter2@h:1/0").unwrap();
        for text in [
            format!("{o:?}"),
            format!("{}", o.server),
            format!("{:?}", o.server),
        ] {
            assert!(!text.contains("hunter2"), "{text}");
            assert!(text.contains("alice:***@h:1"), "{text}");
        }
        let b = ConnectionOptions::builder("redis+unix:///s?pass=hunter2");
        assert!(!format!("{b:?}").contains("hunter2"));
        assert_eq!(
            redact_url("redis://u:p@h/0?x=1&pass=p"),
            "redis://u:***@h/0?x=1&pass=***"
        );
        assert_eq!(redact_url("redis://h"), "redis://h");
    }

    #[test]
    fn passwords_with_url_delimiters_parse_or_fail_without_leaking() {
        for (url, pass, host) in [
            ("redis://alice:hunter/2@cache:6379", "hunter/2", "cache"),
            ("redis://alice:12/45@cache", "12/45", "cache"),
            ("redis://alice:ab?cd@cache", "ab?cd", "cache"),
            ("redis://alice:12#cd@cache", "12#cd", "cache"),
            ("redis://alice:a@b/c+d@cache/3", "a@b/c+d", "cache"),
            ("redis://:x/y?z#w@cache", "x/y?z#w", "cache"),
        ] {
            let a = ServerAddress::parse(url).unwrap_or_else(|e| panic!("{url}: {e}"));
            assert_eq!(
                a.password.as_ref().map(Password::expose),
                Some(pass),
                "{url}"
            );
            assert_eq!(a.endpoint, tcp(host, 6379), "{url}");
            let shown = redact_url(url);
            assert!(!shown.contains(pass), "{url} -> {shown}");
            let b = ConnectionOptions::builder(url);
            assert!(!format!("{b:?}").contains(pass), "{b:?}");
        }
        // A query value may hold an `@` (an e-mail-style user name, a password).
        let a = ServerAddress::parse("redis://h/1?user=a@b&pass=c@d").unwrap();
        assert_eq!(a.endpoint, tcp("h", 6379));
        assert_eq!(a.username.as_deref(), Some("a@b"));
        assert_eq!(a.password.as_ref().map(Password::expose), Some("c@d"));
        assert_eq!(a.database, 1);
        // Unparseable: the error names the URL without the password and says how to fix it.
        let e = ServerAddress::parse("redis://alice:hunter/2@").unwrap_err();
        assert!(!e.to_string().contains("hunter"), "{e}");
        assert!(e.to_string().contains("%2F"), "{e}");
        assert_eq!(redact_url("redis:alice:hunter2@h"), "redis:***@h");
        assert_eq!(
            redact_url("redis://alice:hunter/2@cache:6379/0"),
            "redis://alice:***@cache:6379/0"
        );
    }

    fn no_leak(pw: &str, texts: &[String]) -> Result<(), proptest::test_runner::TestCaseError> {
        for t in texts {
            proptest::prop_assert!(!t.contains(pw), "password {:?} leaked in {:?}", pw, t);
        }
        Ok(())
    }

    fn error_texts(e: &KvError) -> Vec<String> {
        let mut out = vec![e.to_string(), format!("{e:?}")];
        let mut source = std::error::Error::source(e);
        while let Some(s) = source {
            out.push(s.to_string());
            out.push(format!("{s:?}"));
            source = s.source();
        }
        out
    }

    proptest::proptest! {
        #[test]
        fn no_password_in_any_output(
            pw in "[a-zA-Z0-9/?#@:%+& éü€漢]{6,24}",
            form in 0usize..8,
        ) {
            let templates = [
                "redis://alice:{}@cache:6379/0",
                "redis://:{}@cache",
                "rediss://alice:{}@cache:6380/300",
                "redis://alice:{}@cache:6379/0?bogus=1",
                "http://alice:{}@cache",
                "redis+unix:///tmp/s?db=1&pass={}",
                "redis://alice:{}@",
                "valkeys://bob:{}@[::1]:7000/2",
            ];
            let template = templates[form];
            let url = template.replace("{}", &pw);
            proptest::prop_assume!(!template.replace("{}", "").contains(&pw));
            let mut texts = vec![redact_url(&url)];
            match ServerAddress::parse(&url) {
                Ok(a) => {
                    texts.push(a.to_string());
                    texts.push(format!("{a:?}"));
                    if let Err(e) = a.check_tls_support("rustauth-redis", false) {
                        texts.extend(error_texts(&e));
                    }
                }
                Err(e) => texts.extend(error_texts(&e)),
            }
            let builder = ConnectionOptions::builder(url.clone())
                .tls_root_certificates_pem("not pem");
            texts.push(format!("{builder:?}"));
            match builder.build() {
                Ok(o) => texts.push(format!("{o:?}")),
                Err(e) => texts.extend(error_texts(&e)),
            }
            match ConnectionOptions::from_url(&url) {
                Ok(o) => texts.push(format!("{o:?}")),
                Err(e) => texts.extend(error_texts(&e)),
            }
            no_leak(&pw, &texts)?;
            // A password in the user-info parses back exactly, whatever it contains
            // (`%` starts a percent-escape, so it is left out of this part).
            if form == 0 && !pw.contains('%') {
                let a = ServerAddress::parse(&url).map_err(|e| {
                    proptest::test_runner::TestCaseError::fail(e.to_string())
                })?;
                proptest::prop_assert_eq!(a.password.as_ref().map(Password::expose), Some(&*pw));
                proptest::prop_assert_eq!(a.endpoint, tcp("cache", 6379));
                proptest::prop_assert_eq!(a.username.as_deref(), Some("alice"));
            }
        }
    }

    #[test]
    fn tls_without_support_is_refused_by_name() {
        let a = ServerAddress::parse("rediss://:hunter2@h:6380").unwrap();
        let e = a.check_tls_support("rustauth-redis", false).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::InvalidConfig);
        let text = e.to_string();
        assert!(
            text.contains("rediss://:***@h:6380") && text.contains("tls-rustls"),
            "{text}"
        );
        assert!(!text.contains("hunter2"));
        assert!(a.check_tls_support("rustauth-redis", true).is_ok());
        let plain = ServerAddress::parse("redis://h").unwrap();
        assert!(plain.check_tls_support("rustauth-redis", false).is_ok());
    }

    #[test]
    fn coalesce_writes_is_off_by_default_and_refused_on_a_cluster() {
        assert!(
            !ConnectionOptions::from_url("redis://h")
                .unwrap()
                .coalesce_writes
        );
        let on = ConnectionOptions::builder("redis://h")
            .coalesce_writes(true)
            .build()
            .unwrap();
        assert!(on.coalesce_writes);
        let e = ConnectionOptions::builder("redis-cluster://h:7000?node=h:7001")
            .coalesce_writes(true)
            .build()
            .unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::InvalidConfig);
        assert!(
            e.message().contains("cluster") && e.message().contains("coalesce_writes"),
            "{e}"
        );
    }

    #[test]
    fn tls_root_certificates_are_validated_at_build() {
        let pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
        let e = ConnectionOptions::builder("redis://h")
            .tls_root_certificates_pem(pem)
            .build()
            .unwrap_err();
        assert!(e.message().contains("not a TLS URL"), "{e}");
        let e = ConnectionOptions::builder("rediss://h")
            .tls_root_certificates_pem("not pem")
            .build()
            .unwrap_err();
        assert!(
            e.message().contains("7 bytes") && e.message().contains("BEGIN CERTIFICATE"),
            "{e}"
        );
        let o = ConnectionOptions::builder("rediss://h")
            .tls_root_certificates_pem(pem)
            .build()
            .unwrap();
        assert_eq!(o.tls_root_certificates.as_deref(), Some(pem.as_bytes()));
    }

    #[test]
    fn timeouts_are_validated_at_build() {
        let e = ConnectionOptions::builder("redis://h")
            .command_timeout(Duration::ZERO)
            .build()
            .unwrap_err();
        assert!(e.message().contains("command timeout 0ns"), "{e}");
        let e = ConnectionOptions::builder("redis://h")
            .reconnect_delays(Duration::from_secs(2), Duration::from_secs(1))
            .build()
            .unwrap_err();
        assert!(e.message().contains("reconnect delays"), "{e}");
        let o = ConnectionOptions::from_url("redis://h").unwrap();
        assert_eq!(
            o.command_timeout,
            ConnectionOptions::DEFAULT_COMMAND_TIMEOUT
        );
    }
}

#[cfg(test)]
mod topology_url_tests {
    use super::*;

    fn node(host: &str, port: u16) -> NodeAddress {
        NodeAddress {
            host: host.into(),
            port,
        }
    }

    #[test]
    fn cluster_urls_list_seed_nodes() {
        let a = ServerAddress::parse(
            "redis-cluster://app:s3cret@10.0.0.1:7000?node=10.0.0.2:7001&node=[::1]:7002&node=h",
        )
        .unwrap();
        assert_eq!(
            a.endpoint,
            Endpoint::Cluster {
                nodes: vec![
                    node("10.0.0.1", 7000),
                    node("10.0.0.2", 7001),
                    node("::1", 7002),
                    node("h", 6379)
                ]
            }
        );
        assert!(!a.tls);
        assert_eq!(a.username.as_deref(), Some("app"));
        let shown = a.to_string();
        assert_eq!(
            shown,
            "redis-cluster://app:***@10.0.0.1:7000?node=10.0.0.2:7001&node=[::1]:7002&node=h:6379"
        );
        assert_eq!(
            ServerAddress::parse(&shown.replace("***", "s3cret")).unwrap(),
            a
        );
        let tls = ServerAddress::parse("valkeys-cluster://c:7000").unwrap();
        assert!(tls.tls);
        let e = ServerAddress::parse("redis-cluster://c:7000/2").unwrap_err();
        assert!(e.message().contains("database 0 only"), "{e}");
        for bad in ["c:0", "c:x", "a:b:1", "[::1", "c/1:2", ""] {
            let e =
                ServerAddress::parse(&format!("redis-cluster://c:7000?node={bad}")).unwrap_err();
            assert!(e.message().contains("is not host:port"), "{bad}: {e}");
        }
    }

    #[test]
    fn sentinel_urls_name_the_service_and_sentinel_credentials() {
        let a = ServerAddress::parse(
            "redis-sentinel://:datapw@s1?node=s2:26380&sentinelServiceName=mymaster\
             &sentinelUsername=watch&sentinelPassword=sentpw&db=3",
        )
        .unwrap();
        match &a.endpoint {
            Endpoint::Sentinel {
                nodes,
                service,
                sentinel_username,
                sentinel_password,
            } => {
                assert_eq!(nodes, &vec![node("s1", 26379), node("s2", 26380)]);
                assert_eq!(service, "mymaster");
                assert_eq!(sentinel_username.as_deref(), Some("watch"));
                assert_eq!(
                    sentinel_password.as_ref().map(Password::expose),
                    Some("sentpw")
                );
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(a.password.as_ref().map(Password::expose), Some("datapw"));
        assert_eq!(a.database, 3);
        let shown = a.to_string();
        assert!(
            !shown.contains("datapw") && !shown.contains("sentpw"),
            "{shown}"
        );
        assert!(!format!("{a:?}").contains("sentpw"));
        let raw = "redis-sentinel://s1?sentinelServiceName=m&sentinelPassword=sentpw";
        assert!(!redact_url(raw).contains("sentpw"), "{}", redact_url(raw));
        let e = ServerAddress::parse("redis-sentinel://s1").unwrap_err();
        assert!(e.message().contains("sentinelServiceName"), "{e}");
        let alias = ServerAddress::parse("rediss-sentinel://s1?service_name=m").unwrap();
        assert!(alias.tls);
    }

    #[test]
    fn topology_parameters_belong_to_their_schemes() {
        let e = ServerAddress::parse("redis://h?node=h2:1").unwrap_err();
        assert!(e.message().contains("node="), "{e}");
        let e = ServerAddress::parse("redis-cluster://h?sentinelServiceName=m").unwrap_err();
        assert!(e.message().contains("sentinel parameters"), "{e}");
    }
}
