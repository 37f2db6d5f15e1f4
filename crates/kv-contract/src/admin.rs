//! Operator operations over any [`Connection`]: which namespaces a prefix has, how many
//! keys and bytes each holds ([`inspect`]), and deleting one namespace in paced batches
//! ([`clear_namespace`]).
//!
//! These are what the `rustauth-kv` operator CLI runs; they live here, not in the CLI, so
//! that every key pattern and command they send is built next to the codec that builds the
//! keys (invariant 2), and so any program can run them over its own connection. Both walk
//! the keyspace with the cursor-based [`Connection::scan_page`], one page at a time:
//! memory stays bounded by a page however many keys there are, and nothing ever sends
//! `KEYS` or `FLUSHDB`.

use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::error::{ErrorKind, KvError, KvResult};
use crate::glob;
use crate::keys::{KeyCodec, Namespace, Prefix};
use crate::session::SessionIndexOptions;
use crate::slot;
use crate::wire::{Command, Connection, Reply, ScanCursor};

/// The most keys one `UNLINK`/`DEL` names: bounded so one command never blocks the
/// server for long or builds a huge request.
pub const MAX_DELETE_BATCH: usize = 1000;

/// The namespaces of one prefix: the built-in ones (`secondary`, `rate-limit`, `lock`) and
/// the session index's two configurable ones (`session`, `user_sessions` by default).
///
/// Names are given without the trailing `:`; a physical key belongs to namespace `n` when
/// it starts with `{prefix}{n}:`. Names contain no `:` (the built-ins by definition,
/// configurable ones by [`NamespaceName`](crate::keys::NamespaceName)'s rules), so no
/// namespace's keys can start with another's segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyspaceLayout {
    codec: KeyCodec,
    namespaces: Vec<String>,
}

impl KeyspaceLayout {
    /// The layout of `prefix` with the default session namespaces.
    pub fn new(prefix: Prefix) -> Self {
        let mut namespaces: Vec<String> = Namespace::ALL
            .iter()
            .map(|ns| ns.segment().trim_end_matches(':').to_owned())
            .collect();
        namespaces.push(SessionIndexOptions::DEFAULT_SESSION_NAMESPACE.to_owned());
        namespaces.push(SessionIndexOptions::DEFAULT_USER_SESSIONS_NAMESPACE.to_owned());
        KeyspaceLayout {
            codec: KeyCodec::new(prefix),
            namespaces,
        }
    }

    /// The layout of `prefix` with the session namespaces of `sessions` (which may name
    /// others than the defaults).
    pub fn with_sessions(prefix: Prefix, sessions: &SessionIndexOptions) -> Self {
        let mut layout = KeyspaceLayout::new(prefix);
        layout.namespaces.truncate(Namespace::ALL.len());
        layout
            .namespaces
            .push(sessions.session_namespace().as_str().to_owned());
        layout
            .namespaces
            .push(sessions.user_sessions_namespace().as_str().to_owned());
        layout
    }

    /// The prefix.
    pub fn prefix(&self) -> &Prefix {
        self.codec.prefix()
    }

    /// The namespace names, built-ins first.
    pub fn namespaces(&self) -> &[String] {
        &self.namespaces
    }

    /// The namespace called `name` (a trailing `:` is accepted: `secondary:`); an
    /// [`ErrorKind::InvalidInput`] error naming it and the known ones otherwise.
    pub fn namespace(&self, name: &str) -> KvResult<&str> {
        let wanted = name.strip_suffix(':').unwrap_or(name);
        if wanted.is_empty() {
            return Err(KvError::invalid_input(format!(
                "empty namespace name: expected one of {}",
                self.namespaces.join(", ")
            )));
        }
        self.namespaces
            .iter()
            .find(|n| *n == wanted)
            .map(String::as_str)
            .ok_or_else(|| {
                KvError::invalid_input(format!(
                    "unknown namespace {name:?} under prefix {:?}: expected one of {}",
                    self.prefix().as_str(),
                    self.namespaces.join(", ")
                ))
            })
    }

    /// `{prefix}{name}:`, the bytes every key of the namespace starts with.
    pub fn namespace_prefix(&self, name: &str) -> KvResult<Vec<u8>> {
        let name = self.namespace(name)?;
        let mut literal = self.prefix().as_str().as_bytes().to_vec();
        literal.extend_from_slice(name.as_bytes());
        literal.push(b':');
        Ok(literal)
    }

    /// The SCAN `MATCH` pattern of exactly the namespace's keys: its escaped literal
    /// prefix followed by `*`.
    pub fn namespace_pattern(&self, name: &str) -> KvResult<Vec<u8>> {
        Ok(pattern_of(&self.namespace_prefix(name)?))
    }

    /// The SCAN `MATCH` pattern of every key under the prefix.
    pub fn prefix_pattern(&self) -> Vec<u8> {
        pattern_of(self.prefix().as_str().as_bytes())
    }

    /// Where `physical` belongs: `Some(Some(i))` for the namespace `namespaces()[i]`,
    /// `Some(None)` for a key under the prefix in no known namespace, `None` for a key
    /// outside the prefix.
    pub fn classify(&self, physical: &[u8]) -> Option<Option<usize>> {
        let rest = physical.strip_prefix(self.prefix().as_str().as_bytes())?;
        Some(self.namespaces.iter().position(|n| {
            rest.strip_prefix(n.as_bytes())
                .is_some_and(|r| r.first() == Some(&b':'))
        }))
    }
}

fn pattern_of(literal: &[u8]) -> Vec<u8> {
    let mut pattern = glob::escape(literal);
    pattern.push(b'*');
    pattern
}

/// How [`inspect`] walks the keyspace.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InspectOptions {
    /// At most this many keys per namespace get a `MEMORY USAGE` (default 32; 0 skips
    /// memory sampling).
    pub sample: u32,
    /// Stop after this many keys were scanned (default 1,000,000): an inspection never
    /// walks forever on a huge or growing keyspace. The report says it stopped early.
    pub max_keys: u64,
    /// The `COUNT` hint of each SCAN (default 1000).
    pub scan_count: u32,
}

impl Default for InspectOptions {
    fn default() -> Self {
        InspectOptions {
            sample: 32,
            max_keys: 1_000_000,
            scan_count: 1000,
        }
    }
}

impl InspectOptions {
    /// Sets [`Self::sample`].
    pub fn sample(mut self, n: u32) -> Self {
        self.sample = n;
        self
    }

    /// Sets [`Self::max_keys`].
    pub fn max_keys(mut self, n: u64) -> Self {
        self.max_keys = n;
        self
    }

    /// Sets [`Self::scan_count`] (1 to 100,000).
    pub fn scan_count(mut self, n: u32) -> Self {
        self.scan_count = n;
        self
    }
}

/// Where an operation over the keyspace stands, for a progress bar.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Progress {
    /// Keys SCAN returned so far (a key may be returned twice).
    pub scanned: u64,
    /// Keys deleted so far (always 0 for [`inspect`]).
    pub deleted: u64,
}

impl Progress {
    /// A progress value (for reporters that show a final state).
    pub fn new(scanned: u64, deleted: u64) -> Self {
        Progress { scanned, deleted }
    }
}

/// Keys and memory of one namespace, as found by [`inspect`].
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamespaceUsage {
    /// The namespace name, or `None` for keys under the prefix in no known namespace.
    pub namespace: Option<String>,
    /// Keys seen (SCAN may return a key twice, and the keyspace changes while it runs: an
    /// estimate on a live server, exact on a quiet one).
    pub keys: u64,
    /// How many keys were measured with `MEMORY USAGE`.
    pub sampled: u64,
    /// Their total bytes.
    pub sampled_bytes: u64,
    /// `keys` × the mean sampled size; `None` when nothing was sampled or `MEMORY USAGE`
    /// is refused (an ACL, a proxy). 0 for an empty namespace.
    pub estimated_bytes: Option<u64>,
}

/// What [`inspect`] found under a prefix.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyspaceReport {
    /// One entry per known namespace, in [`KeyspaceLayout::namespaces`] order, then the
    /// keys in no known namespace (`namespace: None`).
    pub namespaces: Vec<NamespaceUsage>,
    /// Keys scanned in all.
    pub scanned: u64,
    /// False when [`InspectOptions::max_keys`] stopped the walk before SCAN finished.
    pub complete: bool,
    /// False when the server refused `MEMORY USAGE` (estimates are then `None`).
    pub memory_supported: bool,
}

/// Counts the keys of every namespace under `layout`'s prefix with SCAN and estimates
/// their memory from a `MEMORY USAGE` sample, calling `progress` after each page.
///
/// The first [`InspectOptions::sample`] keys SCAN returns per namespace are measured
/// (SCAN's order follows the hash table, so they are not the oldest or newest keys). A
/// refused `MEMORY USAGE` (unknown command, `NOPERM`) makes memory unknown instead of
/// failing; a sampled key gone meanwhile is skipped.
pub async fn inspect(
    conn: &dyn Connection,
    layout: &KeyspaceLayout,
    options: InspectOptions,
    mut progress: impl FnMut(Progress) + Send,
) -> KvResult<KeyspaceReport> {
    check_scan_count(options.scan_count)?;
    let mut usage: Vec<NamespaceUsage> = layout
        .namespaces()
        .iter()
        .map(|n| Some(n.clone()))
        .chain(std::iter::once(None))
        .map(|namespace| NamespaceUsage {
            namespace,
            keys: 0,
            sampled: 0,
            sampled_bytes: 0,
            estimated_bytes: None,
        })
        .collect();
    let other = usage.len() - 1;
    let pattern = layout.prefix_pattern();
    let mut memory_supported = true;
    let mut scanned = 0u64;
    let mut cursor = Some(ScanCursor::default());
    while let Some(from) = cursor {
        if scanned >= options.max_keys {
            break;
        }
        let page = conn.scan_page(from, &pattern, options.scan_count).await?;
        cursor = page.next;
        for key in page.keys {
            if scanned >= options.max_keys {
                // The rest of this page is not counted, so the walk is resumed nowhere:
                // `complete` says the counts are partial.
                cursor = cursor.or(Some(from));
                break;
            }
            // The pattern is a glob; keep only keys that literally start with the prefix.
            let Some(class) = layout.classify(&key) else {
                continue;
            };
            scanned += 1;
            let entry = &mut usage[class.unwrap_or(other)];
            entry.keys += 1;
            if memory_supported && entry.sampled < u64::from(options.sample) {
                match memory_usage(conn, key).await {
                    Ok(Some(bytes)) => {
                        entry.sampled += 1;
                        entry.sampled_bytes += bytes;
                    }
                    Ok(None) => {}
                    Err(e) if refused(&e) => {
                        tracing::debug!(error = %e, "MEMORY USAGE refused: memory unknown");
                        memory_supported = false;
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        progress(Progress {
            scanned,
            deleted: 0,
        });
    }
    for entry in &mut usage {
        entry.estimated_bytes = match (memory_supported, entry.keys, entry.sampled) {
            (false, _, _) => None,
            (true, 0, _) => Some(0),
            (true, _, 0) => None,
            (true, keys, sampled) => {
                let mean = entry.sampled_bytes as f64 / sampled as f64;
                Some((mean * keys as f64).round() as u64)
            }
        };
        if !memory_supported {
            entry.sampled = 0;
            entry.sampled_bytes = 0;
        }
    }
    Ok(KeyspaceReport {
        namespaces: usage,
        scanned,
        complete: cursor.is_none(),
        memory_supported,
    })
}

/// `MEMORY USAGE key`: bytes, or `None` when the key is gone.
async fn memory_usage(conn: &dyn Connection, key: Bytes) -> KvResult<Option<u64>> {
    match conn
        .execute(Command::new("MEMORY").arg("USAGE").key(key))
        .await?
    {
        Reply::Nil => Ok(None),
        reply => Ok(Some(reply.into_int()?.max(0) as u64)),
    }
}

/// Whether `e` is the server refusing a command (unknown to it, or forbidden by an ACL),
/// as opposed to failing it.
fn refused(e: &KvError) -> bool {
    if e.kind() != ErrorKind::Server {
        return false;
    }
    let m = e.message().to_ascii_lowercase();
    e.server_code() == Some("NOPERM")
        || m.contains("unknown command")
        || m.contains("unknown subcommand")
}

fn check_scan_count(count: u32) -> KvResult<()> {
    if count == 0 || count > 100_000 {
        return Err(KvError::invalid_input(format!(
            "SCAN count {count} is out of range: 1 to 100000"
        )));
    }
    Ok(())
}

/// How [`clear_namespace`] deletes.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClearOptions {
    /// Delete at most this many keys per second (`None`: as fast as the server answers).
    pub max_per_second: Option<u64>,
    /// Keys per `UNLINK` (1 to [`MAX_DELETE_BATCH`], default 1000).
    pub batch: usize,
    /// The `COUNT` hint of each SCAN (default 1000).
    pub scan_count: u32,
}

impl Default for ClearOptions {
    fn default() -> Self {
        ClearOptions {
            max_per_second: None,
            batch: MAX_DELETE_BATCH,
            scan_count: 1000,
        }
    }
}

impl ClearOptions {
    /// Sets [`Self::max_per_second`].
    pub fn max_per_second(mut self, rate: Option<u64>) -> Self {
        self.max_per_second = rate;
        self
    }

    /// Sets [`Self::batch`].
    pub fn batch(mut self, n: usize) -> Self {
        self.batch = n;
        self
    }

    /// Sets [`Self::scan_count`].
    pub fn scan_count(mut self, n: u32) -> Self {
        self.scan_count = n;
        self
    }
}

/// What [`clear_namespace`] did.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClearReport {
    /// The namespace cleared.
    pub namespace: String,
    /// Keys SCAN returned (a key may be returned twice).
    pub scanned: u64,
    /// Keys the server reported deleted (each counted once).
    pub deleted: u64,
    /// How long it took.
    pub elapsed: Duration,
}

/// Deletes every key of the namespace `name` under `layout`'s prefix: SCAN page by page
/// (never collecting the namespace), `UNLINK` in batches of at most
/// [`ClearOptions::batch`] keys (`DEL` if the server does not know `UNLINK`), paced to
/// [`ClearOptions::max_per_second`], calling `progress` after each batch.
///
/// Only keys that literally start with `{prefix}{name}:` are deleted. An empty or unknown
/// `name` fails before any I/O. Keys written while it runs may survive it. On a cluster
/// each batch is split per hash slot.
pub async fn clear_namespace(
    conn: &dyn Connection,
    layout: &KeyspaceLayout,
    name: &str,
    options: ClearOptions,
    mut progress: impl FnMut(Progress) + Send,
) -> KvResult<ClearReport> {
    let namespace = layout.namespace(name)?.to_owned();
    let literal = layout.namespace_prefix(&namespace)?;
    let pattern = pattern_of(&literal);
    check_scan_count(options.scan_count)?;
    if options.batch == 0 || options.batch > MAX_DELETE_BATCH {
        return Err(KvError::invalid_input(format!(
            "delete batch {} is out of range: 1 to {MAX_DELETE_BATCH}",
            options.batch
        )));
    }
    if options.max_per_second == Some(0) {
        return Err(KvError::invalid_input(
            "a rate of 0 keys per second would never finish: give at least 1",
        ));
    }
    // A batch never exceeds one second's allowance, so pacing stays smooth.
    let batch = match options.max_per_second {
        Some(rate) => options
            .batch
            .min(usize::try_from(rate).unwrap_or(usize::MAX)),
        None => options.batch,
    };
    let started = Instant::now();
    let mut delete = Delete {
        command: "UNLINK",
        cluster: conn.is_cluster(),
    };
    let mut state = Progress::default();
    let mut sent = 0u64;
    let mut cursor = Some(ScanCursor::default());
    while let Some(from) = cursor {
        let page = conn.scan_page(from, &pattern, options.scan_count).await?;
        cursor = page.next;
        state.scanned += page.keys.len() as u64;
        let keys: Vec<Bytes> = page
            .keys
            .into_iter()
            .filter(|k| k.starts_with(&literal))
            .collect();
        for chunk in keys.chunks(batch) {
            if let Some(rate) = options.max_per_second {
                // Wait until the keys already sent fit the rate.
                let due = Duration::from_secs_f64(sent as f64 / rate as f64);
                if let Some(wait) = due.checked_sub(started.elapsed()) {
                    tokio::time::sleep(wait).await;
                }
            }
            state.deleted += delete.run(conn, chunk).await?;
            sent += chunk.len() as u64;
            progress(state);
        }
        if keys.is_empty() {
            progress(state);
        }
    }
    Ok(ClearReport {
        namespace,
        scanned: state.scanned,
        deleted: state.deleted,
        elapsed: started.elapsed(),
    })
}

/// The delete command in use: `UNLINK` until the server says it does not know it.
struct Delete {
    command: &'static str,
    cluster: bool,
}

impl Delete {
    async fn run(&mut self, conn: &dyn Connection, keys: &[Bytes]) -> KvResult<u64> {
        let mut deleted = 0;
        for group in slot::group_by_slot(keys, self.cluster) {
            let build = |name: &'static str| {
                group
                    .iter()
                    .fold(Command::new(name), |cmd, &i| cmd.key(keys[i].clone()))
            };
            let reply = match conn.execute(build(self.command)).await {
                Err(e) if self.command == "UNLINK" && refused(&e) => {
                    tracing::debug!(error = %e, "UNLINK refused: deleting with DEL");
                    self.command = "DEL";
                    conn.execute(build("DEL")).await?
                }
                other => other?,
            };
            deleted += reply.into_int()?.max(0) as u64;
        }
        Ok(deleted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::glob::redis_glob;

    fn layout(prefix: &str) -> KeyspaceLayout {
        KeyspaceLayout::new(Prefix::new(prefix).unwrap())
    }

    #[test]
    fn default_layout_names_every_namespace() {
        assert_eq!(
            layout("rustauth:").namespaces(),
            [
                "secondary",
                "rate-limit",
                "lock",
                "session",
                "user_sessions"
            ]
        );
        let sessions = SessionIndexOptions::builder()
            .session_namespace("sess")
            .user_sessions_namespace("by-user")
            .build()
            .unwrap();
        let l = KeyspaceLayout::with_sessions(Prefix::default(), &sessions);
        assert_eq!(
            l.namespaces(),
            ["secondary", "rate-limit", "lock", "sess", "by-user"]
        );
    }

    #[test]
    fn unknown_and_empty_namespaces_are_named() {
        let l = layout("app:");
        assert_eq!(l.namespace("secondary").unwrap(), "secondary");
        assert_eq!(l.namespace("rate-limit:").unwrap(), "rate-limit");
        for (bad, want) in [
            ("", "empty namespace name"),
            (":", "empty namespace name"),
            ("secondaries", "unknown namespace \"secondaries\""),
            ("*", "unknown namespace \"*\""),
        ] {
            let e = l.namespace(bad).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidInput, "{bad:?}");
            assert!(e.message().contains(want), "{bad:?}: {e}");
            assert!(e.message().contains("secondary, rate-limit"), "{e}");
        }
    }

    #[test]
    fn patterns_are_escaped_literal_prefixes() {
        let l = layout("a*[1]:");
        assert_eq!(
            l.namespace_pattern("secondary").unwrap(),
            b"a\\*\\[1\\]:secondary:*".to_vec()
        );
        assert_eq!(l.prefix_pattern(), b"a\\*\\[1\\]:*".to_vec());
        let p = l.namespace_pattern("lock").unwrap();
        assert!(redis_glob::matches(&p, b"a*[1]:lock:{job}:fence"));
        assert!(!redis_glob::matches(&p, b"ax1:lock:{job}"));
        assert!(!redis_glob::matches(&p, b"a*[1]:locks:x"));
    }

    #[test]
    fn classification_of_physical_keys() {
        let l = layout("rustauth:");
        let cases: &[(&[u8], Option<Option<usize>>)] = &[
            (b"rustauth:secondary:otp:alice", Some(Some(0))),
            (b"rustauth:rate-limit:203.0.113.7|/sign-in", Some(Some(1))),
            (b"rustauth:lock:{job}:fence", Some(Some(2))),
            (b"rustauth:session:abc", Some(Some(3))),
            (b"rustauth:user_sessions:u1", Some(Some(4))),
            (b"rustauth:secondary", Some(None)),
            (b"rustauth:secondaryx:k", Some(None)),
            (b"rustauth:sessions:k", Some(None)),
            (b"rustauth:other", Some(None)),
            (b"rustauth:", Some(None)),
            (b"other:secondary:k", None),
            (b"rustauth", None),
        ];
        for (key, want) in cases {
            assert_eq!(l.classify(key), *want, "{}", String::from_utf8_lossy(key));
        }
    }

    #[test]
    fn refusals_are_told_from_failures() {
        let refusal = KvError::server_reply("ERR unknown command 'UNLINK', with args", None);
        assert!(refused(&refusal));
        let noperm = KvError::server_reply("NOPERM this user has no permissions", None);
        assert!(refused(&noperm));
        let sub = KvError::server_reply("ERR unknown subcommand 'USAGE'. Try MEMORY HELP.", None);
        assert!(refused(&sub));
        assert!(!refused(&KvError::server_reply("WRONGTYPE x", None)));
        assert!(!refused(&KvError::new(
            ErrorKind::Timeout,
            "unknown command"
        )));
    }

    #[derive(Debug)]
    struct Unreachable;

    #[async_trait::async_trait]
    impl Connection for Unreachable {
        async fn execute(&self, command: Command) -> KvResult<Reply> {
            panic!("no I/O expected, got {}", command.name())
        }
    }

    /// A single server in a `Vec`, sorted: SCAN's cursor is an index, `UNLINK` and
    /// `MEMORY USAGE` can be refused as an old server or an ACL would.
    #[derive(Debug, Default)]
    struct FakeServer {
        keys: std::sync::Mutex<Vec<Vec<u8>>>,
        refuse_unlink: bool,
        refuse_memory: bool,
        log: std::sync::Mutex<Vec<(&'static str, usize)>>,
    }

    impl FakeServer {
        fn with_keys(keys: impl IntoIterator<Item = Vec<u8>>) -> Self {
            let mut keys: Vec<Vec<u8>> = keys.into_iter().collect();
            keys.sort();
            FakeServer {
                keys: std::sync::Mutex::new(keys),
                ..FakeServer::default()
            }
        }
    }

    #[async_trait::async_trait]
    impl Connection for FakeServer {
        async fn execute(&self, command: Command) -> KvResult<Reply> {
            let args = command.args();
            self.log.lock().unwrap().push((command.name(), args.len()));
            let mut keys = self.keys.lock().unwrap();
            match command.name() {
                "SCAN" => {
                    let from: usize = std::str::from_utf8(&args[0]).unwrap().parse().unwrap();
                    let count: usize = std::str::from_utf8(&args[4]).unwrap().parse().unwrap();
                    let end = (from + count).min(keys.len());
                    let page = keys[from.min(end)..end]
                        .iter()
                        .filter(|k| redis_glob::matches(&args[2], k))
                        .map(|k| Reply::Data(Bytes::copy_from_slice(k)))
                        .collect();
                    let next = if end >= keys.len() { 0 } else { end };
                    // Deleting shifts these indices (a real SCAN cursor is not affected),
                    // so the clear tests read the whole fake in one page.
                    Ok(Reply::Array(vec![
                        Reply::Data(Bytes::from(next.to_string())),
                        Reply::Array(page),
                    ]))
                }
                "UNLINK" if self.refuse_unlink => Err(KvError::server_reply(
                    "ERR unknown command 'UNLINK', with args beginning with:",
                    None,
                )),
                "UNLINK" | "DEL" => {
                    let before = keys.len();
                    keys.retain(|k| !args.iter().any(|a| a[..] == k[..]));
                    Ok(Reply::Int((before - keys.len()) as i64))
                }
                "MEMORY" if self.refuse_memory => Err(KvError::server_reply(
                    "NOPERM this user has no permissions to run the 'memory|usage' command",
                    None,
                )),
                "MEMORY" => Ok(if keys.iter().any(|k| k[..] == args[1][..]) {
                    Reply::Int(100)
                } else {
                    Reply::Nil
                }),
                other => panic!("unexpected {other}"),
            }
        }
    }

    fn keys(prefix: &str, ns: &str, n: usize) -> Vec<Vec<u8>> {
        (0..n)
            .map(|i| format!("{prefix}{ns}:k{i:05}").into_bytes())
            .collect()
    }

    #[tokio::test]
    async fn clear_deletes_only_the_namespace_in_bounded_batches() {
        let mut all = keys("app:", "secondary", 2500);
        all.extend(keys("app:", "session", 3));
        all.extend(keys("other:", "secondary", 3));
        all.push(b"app:secondaryx:k".to_vec());
        let server = FakeServer::with_keys(all);
        let mut updates = Vec::new();
        // Deleting shifts the fake's indices, so scan in one page per call of 10,000.
        let options = ClearOptions::default().scan_count(10_000);
        let report = clear_namespace(&server, &layout("app:"), "secondary", options, |p| {
            updates.push(p)
        })
        .await
        .unwrap();
        assert_eq!(report.deleted, 2500);
        assert_eq!(report.namespace, "secondary");
        assert_eq!(
            server.keys.lock().unwrap().len(),
            7,
            "only the namespace is gone"
        );
        let deletes: Vec<usize> = server
            .log
            .lock()
            .unwrap()
            .iter()
            .filter(|(name, _)| *name == "UNLINK")
            .map(|(_, n)| *n)
            .collect();
        assert_eq!(deletes, [1000, 1000, 500]);
        assert_eq!(updates.last().unwrap().deleted, 2500);
        assert!(updates.windows(2).all(|w| w[0].deleted <= w[1].deleted));
    }

    #[tokio::test]
    async fn clear_falls_back_to_del_and_paces_to_the_rate() {
        let server = FakeServer {
            refuse_unlink: true,
            ..FakeServer::with_keys(keys("app:", "lock", 30))
        };
        let options = ClearOptions::default()
            .scan_count(10_000)
            .max_per_second(Some(20));
        let report = clear_namespace(&server, &layout("app:"), "lock", options, |_| {})
            .await
            .unwrap();
        assert_eq!(report.deleted, 30);
        // Batches of 20 and 10 at 20 per second: the second starts 1 s after the first.
        assert!(report.elapsed >= Duration::from_millis(950), "{report:?}");
        let log = server.log.lock().unwrap();
        assert_eq!(
            log.iter().filter(|(n, _)| *n == "UNLINK").count(),
            1,
            "tried once"
        );
        assert_eq!(log.iter().filter(|(n, _)| *n == "DEL").count(), 2);
    }

    #[tokio::test]
    async fn inspect_counts_samples_and_stops_at_max_keys() {
        let mut all = keys("app:", "secondary", 40);
        all.extend(keys("app:", "rate-limit", 5));
        all.push(b"app:stray".to_vec());
        all.push(b"elsewhere:x".to_vec());
        let server = FakeServer::with_keys(all);
        let options = InspectOptions::default().sample(4).scan_count(7);
        let mut pages = 0;
        let report = inspect(&server, &layout("app:"), options, |_| pages += 1)
            .await
            .unwrap();
        assert!(report.complete && report.memory_supported);
        assert_eq!(report.scanned, 46);
        assert!(pages >= 6, "progress after each page");
        let by_name = |n: Option<&str>| {
            report
                .namespaces
                .iter()
                .find(|u| u.namespace.as_deref() == n)
                .unwrap()
                .clone()
        };
        let secondary = by_name(Some("secondary"));
        assert_eq!((secondary.keys, secondary.sampled), (40, 4));
        assert_eq!(secondary.estimated_bytes, Some(4000), "mean 100 × 40 keys");
        assert_eq!(by_name(Some("rate-limit")).keys, 5);
        assert_eq!(by_name(Some("lock")).estimated_bytes, Some(0));
        assert_eq!(by_name(None).keys, 1);

        let partial = inspect(&server, &layout("app:"), options.max_keys(10), |_| {})
            .await
            .unwrap();
        assert_eq!(partial.scanned, 10);
        assert!(!partial.complete);
    }

    #[tokio::test]
    async fn a_refused_memory_usage_makes_memory_unknown() {
        let server = FakeServer {
            refuse_memory: true,
            ..FakeServer::with_keys(keys("app:", "secondary", 3))
        };
        let report = inspect(&server, &layout("app:"), InspectOptions::default(), |_| {})
            .await
            .unwrap();
        assert!(!report.memory_supported);
        assert_eq!(report.namespaces[0].keys, 3);
        assert!(report
            .namespaces
            .iter()
            .all(|u| u.estimated_bytes.is_none()));
    }

    #[tokio::test]
    async fn bad_clear_input_fails_before_io() {
        let l = layout("rustauth:");
        for (name, options, want) in [
            ("nope", ClearOptions::default(), "unknown namespace"),
            ("", ClearOptions::default(), "empty namespace"),
            ("secondary", ClearOptions::default().batch(0), "batch 0"),
            (
                "secondary",
                ClearOptions::default().batch(1001),
                "batch 1001",
            ),
            (
                "secondary",
                ClearOptions::default().max_per_second(Some(0)),
                "rate of 0",
            ),
            (
                "secondary",
                ClearOptions::default().scan_count(0),
                "count 0",
            ),
        ] {
            let e = clear_namespace(&Unreachable, &l, name, options, |_| {})
                .await
                .unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidInput, "{name}");
            assert!(e.message().contains(want), "{e}");
        }
    }
}
