//! The wire layer: commands as argument lists, replies as values, and the [`Connection`]
//! trait a backend implements to send one and return the other.
//!
//! This is what makes "the same bytes from both backends" hold by construction: the
//! stores in this crate build every [`Command`] (name, key bytes, argument bytes, Lua
//! text); a backend only sends it with its client and converts the reply into a
//! [`Reply`]. A Cluster or Sentinel connection is another `Connection`; the stores do not
//! change.

use async_trait::async_trait;
use bytes::Bytes;

use crate::error::{ErrorKind, KvError, KvResult};
use crate::script::Script;

/// One Redis command: its name and its arguments, all as bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    name: &'static str,
    args: Vec<Bytes>,
    key_index: Option<usize>,
}

impl Command {
    /// A command with no arguments yet.
    pub fn new(name: &'static str) -> Self {
        Command {
            name,
            args: Vec::new(),
            key_index: None,
        }
    }

    /// A command with room for `capacity` arguments: one allocation when the caller knows
    /// how many it will append.
    pub fn with_capacity(name: &'static str, capacity: usize) -> Self {
        Command {
            name,
            args: Vec::with_capacity(capacity),
            key_index: None,
        }
    }

    /// Appends an argument.
    pub fn arg(mut self, arg: impl Into<Bytes>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// Appends every argument of `args`, in order.
    pub fn args_from(mut self, args: impl IntoIterator<Item = Bytes>) -> Self {
        self.args.extend(args);
        self
    }

    /// Appends an integer argument in decimal, as Redis expects.
    pub fn int_arg(self, n: i64) -> Self {
        self.arg(Bytes::from(n.to_string()))
    }

    /// Appends a key argument; the first key appended is the one a cluster routes by.
    pub fn key(mut self, key: impl Into<Bytes>) -> Self {
        if self.key_index.is_none() {
            self.key_index = Some(self.args.len());
        }
        self.args.push(key.into());
        self
    }

    /// The command name (`GET`, `EVALSHA`, ...).
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The arguments after the name.
    pub fn args(&self) -> &[Bytes] {
        &self.args
    }

    /// The key this command is routed by in a cluster, if it has one.
    pub fn routing_key(&self) -> Option<&[u8]> {
        self.key_index.map(|i| &self.args[i][..])
    }

    /// The name and the arguments, moved out: a backend hands them to its client without
    /// copying them.
    pub fn into_parts(self) -> (&'static str, Vec<Bytes>) {
        (self.name, self.args)
    }
}

/// A server reply, decoded from RESP2 or RESP3. Error replies are not a `Reply`: the
/// connection returns them as [`ErrorKind::Server`] errors.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// Null bulk string or null array.
    Nil,
    /// Integer reply.
    Int(i64),
    /// Bulk string reply.
    Data(Bytes),
    /// Simple string reply (`OK`, `PONG`, a `TYPE` name).
    Status(String),
    /// Array reply (also RESP3 sets; maps flattened to key, value, ...).
    Array(Vec<Reply>),
    /// RESP3 double.
    Double(f64),
    /// RESP3 boolean.
    Bool(bool),
}

impl Reply {
    /// `None` for `Nil`, the bytes for `Data` or `Status`; anything else is unexpected.
    pub fn into_opt_bytes(self) -> KvResult<Option<Bytes>> {
        match self {
            Reply::Nil => Ok(None),
            Reply::Data(b) => Ok(Some(b)),
            Reply::Status(s) => Ok(Some(Bytes::from(s))),
            other => Err(unexpected("a string or nil", &other)),
        }
    }

    /// The integer of an `Int` reply (or of a decimal `Data`/`Status`).
    pub fn into_int(self) -> KvResult<i64> {
        match self {
            Reply::Int(n) => Ok(n),
            Reply::Bool(b) => Ok(b as i64),
            Reply::Data(ref b) => std::str::from_utf8(b)
                .ok()
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| unexpected("an integer", &self)),
            Reply::Status(ref s) => s
                .parse()
                .ok()
                .ok_or_else(|| unexpected("an integer", &self)),
            other => Err(unexpected("an integer", &other)),
        }
    }

    /// The elements of an `Array` reply (`Nil` reads as empty).
    pub fn into_array(self) -> KvResult<Vec<Reply>> {
        match self {
            Reply::Array(items) => Ok(items),
            Reply::Nil => Ok(Vec::new()),
            other => Err(unexpected("an array", &other)),
        }
    }

    /// True for any reply but `Nil`: how `SET ... NX` reports that it wrote.
    pub fn is_some(&self) -> bool {
        !matches!(self, Reply::Nil)
    }
}

/// Parses an integer exactly as Redis does (`string2ll`): an optional single leading `-`,
/// ASCII digits with no leading zero (except `0` itself), no `+`, no spaces, within
/// `i64`; `-0` is refused. `INCR`, `INCRBY` and `PEXPIRE` accept exactly these strings,
/// so the memory implementation reads every integer from stored data with this function.
pub fn parse_integer(raw: &[u8]) -> Option<i64> {
    let (negative, digits) = match raw {
        [b'-', rest @ ..] => (true, rest),
        _ => (false, raw),
    };
    match digits {
        [] => return None,
        [b'0'] if !negative => return Some(0),
        [b'1'..=b'9', rest @ ..] if rest.iter().all(u8::is_ascii_digit) => {}
        _ => return None,
    }
    // Digits only from here, so `parse` sees no sign, space or `+` of its own.
    let magnitude: u64 = std::str::from_utf8(digits).ok()?.parse().ok()?;
    if negative {
        0i64.checked_sub_unsigned(magnitude)
    } else {
        i64::try_from(magnitude).ok()
    }
}

/// The error of a call on a connection that [`Connection::close`] closed.
pub fn closed_error(server: &str) -> KvError {
    KvError::new(
        ErrorKind::Unavailable,
        format!("the connection to {server} was closed by close()"),
    )
}

fn unexpected(wanted: &str, got: &Reply) -> KvError {
    let mut shown = format!("{got:?}");
    // The reply is the server's data: cut at a character boundary, never inside one.
    if shown.len() > 200 {
        let mut end = 200;
        while !shown.is_char_boundary(end) {
            end -= 1;
        }
        shown.truncate(end);
        shown.push('…');
    }
    KvError::unexpected(format!("expected {wanted} from the server, got {shown}"))
}

/// Where a SCAN over the whole keyspace stands. Opaque: a cluster connection keeps the
/// node it is on here as well as that node's cursor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ScanCursor {
    /// The node being scanned (always 0 on a single server).
    pub node: usize,
    /// The server's cursor on that node.
    pub cursor: u64,
}

/// One page of a SCAN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanPage {
    /// The keys of this page (a key may appear on several pages).
    pub keys: Vec<Bytes>,
    /// Where to continue, or `None` when the scan is complete.
    pub next: Option<ScanCursor>,
}

/// A connection to a Redis-protocol server (or a deployment of them), shared by every
/// store of a deployment. Backends implement it; stores only call it.
///
/// Contract for implementors:
/// - error replies become [`ErrorKind::Server`] errors whose message starts with the
///   server's error code (`NOSCRIPT ...`), connection failures [`ErrorKind::Unavailable`],
///   elapsed command timeouts [`ErrorKind::Timeout`], the client error kept as `source()`;
/// - a command is sent at most once: never replayed after a connection error, because a
///   replay of a non-idempotent command (an increment) could apply twice.
#[async_trait]
pub trait Connection: Send + Sync + std::fmt::Debug + 'static {
    /// Sends `command` and returns the server's reply.
    async fn execute(&self, command: Command) -> KvResult<Reply>;

    /// Closes the connection for every handle that shares it: its sockets are shut, it no
    /// longer reconnects, and later calls fail with [`ErrorKind::Unavailable`]. Calling it
    /// again does nothing. Dropping the last handle releases everything too; `close` is
    /// for when that moment must be known (graceful shutdown). The default (a connection
    /// with nothing to release) does nothing.
    async fn close(&self) -> KvResult<()> {
        Ok(())
    }

    /// Whether this connection talks to a Redis Cluster, where a multi-key command or
    /// script must name keys of a single hash slot. Stores then split their batches with
    /// [`crate::slot::group_by_slot`]. A single server (the default) accepts any keys
    /// together.
    fn is_cluster(&self) -> bool {
        false
    }

    /// Reads one page of `SCAN cursor MATCH pattern COUNT count`. A single server has one
    /// node; a cluster connection overrides this to walk every primary in turn.
    async fn scan_page(&self, from: ScanCursor, pattern: &[u8], count: u32) -> KvResult<ScanPage> {
        single_node_scan_page(self, from, pattern, count).await
    }
}

/// The default [`Connection::scan_page`]: one `SCAN` on the connection's one node (for an
/// implementation that overrides it and still has single-server cases).
pub async fn single_node_scan_page(
    conn: &(impl Connection + ?Sized),
    from: ScanCursor,
    pattern: &[u8],
    count: u32,
) -> KvResult<ScanPage> {
    let reply = conn
        .execute(
            Command::new("SCAN")
                .arg(Bytes::from(from.cursor.to_string()))
                .arg("MATCH")
                .arg(Bytes::copy_from_slice(pattern))
                .arg("COUNT")
                .int_arg(count.into()),
        )
        .await?;
    let (cursor, keys) = parse_scan_reply(reply)?;
    let next = (cursor != 0).then_some(ScanCursor {
        node: from.node,
        cursor,
    });
    Ok(ScanPage { keys, next })
}

/// Reads a `SCAN` reply: `[cursor, [key, ...]]`, the cursor an unsigned 64-bit number
/// sent as a bulk string.
pub fn parse_scan_reply(reply: Reply) -> KvResult<(u64, Vec<Bytes>)> {
    let mut parts = reply.into_array()?.into_iter();
    let (Some(cursor), Some(keys), None) = (parts.next(), parts.next(), parts.next()) else {
        return Err(KvError::unexpected("SCAN reply is not [cursor, keys]"));
    };
    // The cursor is an unsigned 64-bit number sent as a bulk string.
    let cursor = cursor
        .into_opt_bytes()?
        .and_then(|b| std::str::from_utf8(&b).ok()?.parse::<u64>().ok())
        .ok_or_else(|| KvError::unexpected("SCAN cursor is not an unsigned 64-bit integer"))?;
    let keys = keys
        .into_array()?
        .into_iter()
        .map(|k| {
            k.into_opt_bytes()?
                .ok_or_else(|| KvError::unexpected("nil key in SCAN reply"))
        })
        .collect::<KvResult<Vec<_>>>()?;
    Ok((cursor, keys))
}

/// Room for the `ARGV` of our scripts (the most, a GCRA consume, has 6): one allocation
/// per command.
const ARGV_ROOM: usize = 6;

/// `numkeys` for the key counts our scripts use, without formatting or allocating.
fn numkeys(n: usize) -> Bytes {
    const SMALL: [&[u8]; 10] = [b"0", b"1", b"2", b"3", b"4", b"5", b"6", b"7", b"8", b"9"];
    match SMALL.get(n) {
        Some(digits) => Bytes::from_static(digits),
        None => Bytes::from(n.to_string()),
    }
}

/// Runs `script` with `EVALSHA`; on `NOSCRIPT` (the script cache was flushed or the
/// server restarted) sends the source with `EVAL` once. That retry is safe: `NOSCRIPT`
/// means the script did not run. Errors raised by the script become
/// [`ErrorKind::Script`].
///
/// `args` appends the script's `ARGV` to a command and is called once per command sent
/// (twice only after `NOSCRIPT`), so the arguments are built straight into the command:
/// no intermediate vector, no clone of each argument for a retry that almost never
/// happens.
pub async fn eval<F>(
    conn: &(impl Connection + ?Sized),
    script: &Script,
    keys: &[&[u8]],
    args: F,
) -> KvResult<Reply>
where
    F: Fn(Command) -> Command + Send + Sync,
{
    let build = |name: &'static str, first: Bytes| {
        let mut cmd = Command::with_capacity(name, 2 + keys.len() + ARGV_ROOM)
            .arg(first)
            .arg(numkeys(keys.len()));
        for k in keys {
            cmd = cmd.key(Bytes::copy_from_slice(k));
        }
        args(cmd)
    };
    let sha = Bytes::from_static(script.sha1().as_bytes());
    let result = match conn.execute(build("EVALSHA", sha)).await {
        Err(e) if e.is_noscript() => {
            crate::observe::script_reloaded(script.name());
            conn.execute(build(
                "EVAL",
                Bytes::from_static(script.source().as_bytes()),
            ))
            .await
        }
        other => other,
    };
    result.map_err(|e| match e.kind() {
        ErrorKind::Server => KvError::with_source(
            ErrorKind::Script,
            format!("{} (script {})", e.message(), script.name()),
            e,
        ),
        _ => e,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_records_the_routing_key() {
        let cmd = Command::new("EVALSHA")
            .arg("abc")
            .int_arg(1)
            .key(Bytes::from_static(b"k1"))
            .key(Bytes::from_static(b"k2"));
        assert_eq!(cmd.routing_key(), Some(&b"k1"[..]));
        assert_eq!(cmd.args().len(), 4);
        assert_eq!(cmd.args()[1], Bytes::from_static(b"1"));
        let (name, args) = cmd.into_parts();
        assert_eq!(name, "EVALSHA");
        assert_eq!(args[2], Bytes::from_static(b"k1"));
        assert_eq!(Command::new("PING").routing_key(), None);
    }

    /// Answers `NOSCRIPT` to every `EVALSHA` and `Int(1)` to anything else, recording all.
    #[derive(Debug, Default)]
    struct Flushed(std::sync::Mutex<Vec<Command>>);

    #[async_trait]
    impl Connection for Flushed {
        async fn execute(&self, command: Command) -> KvResult<Reply> {
            let noscript = command.name() == "EVALSHA";
            self.0.lock().unwrap().push(command);
            if noscript {
                Err(KvError::server_reply("NOSCRIPT No matching script.", None))
            } else {
                Ok(Reply::Int(1))
            }
        }
    }

    #[tokio::test]
    async fn eval_sends_evalsha_then_the_same_arguments_with_eval_after_noscript() {
        let conn = Flushed::default();
        let script = &crate::script::INCREMENT;
        let value = Bytes::from(vec![b'v'; 3]);
        let reply = eval(&conn, script, &[b"k1", b"k2"], |c| {
            c.arg(value.clone()).int_arg(-7)
        })
        .await
        .unwrap();
        assert_eq!(reply, Reply::Int(1));
        let sent = conn.0.into_inner().unwrap();
        let tail: [&[u8]; 5] = [b"2", b"k1", b"k2", b"vvv", b"-7"];
        let [evalsha, eval] = &sent[..] else {
            panic!("sent {sent:?}")
        };
        assert_eq!(evalsha.name(), "EVALSHA");
        assert_eq!(evalsha.args()[0], script.sha1().as_bytes());
        assert_eq!(eval.name(), "EVAL");
        assert_eq!(eval.args()[0], script.source().as_bytes());
        for cmd in [evalsha, eval] {
            assert_eq!(cmd.args()[1..], tail, "{cmd:?}");
            assert_eq!(cmd.routing_key(), Some(&b"k1"[..]));
        }
    }

    #[test]
    fn numkeys_is_decimal_for_every_count() {
        for n in [0, 1, 9, 10, 11, 128, 1000] {
            assert_eq!(numkeys(n), Bytes::from(n.to_string()), "{n}");
        }
    }

    #[test]
    fn reply_conversions() {
        assert_eq!(Reply::Nil.into_opt_bytes().unwrap(), None);
        assert_eq!(Reply::Data("7".into()).into_int().unwrap(), 7);
        assert!(Reply::Data("x".into()).into_int().is_err());
        assert!(Reply::Int(1).into_opt_bytes().is_err());
        assert!(Reply::Status("OK".into()).is_some());
        assert!(!Reply::Nil.is_some());
    }

    #[test]
    fn parse_integer_follows_redis_string2ll() {
        for (text, want) in [
            ("0", Some(0)),
            ("7", Some(7)),
            ("-5", Some(-5)),
            ("9223372036854775807", Some(i64::MAX)),
            ("-9223372036854775808", Some(i64::MIN)),
            ("9223372036854775808", None),
            ("-9223372036854775809", None),
            ("007", None),
            ("00", None),
            ("-0", None),
            ("-007", None),
            ("+5", None),
            (" 5", None),
            ("5 ", None),
            ("", None),
            ("-", None),
            ("--5", None),
            ("1.0", None),
            ("1e3", None),
            ("0x10", None),
            ("١", None),
        ] {
            assert_eq!(parse_integer(text.as_bytes()), want, "{text:?}");
        }
        assert_eq!(parse_integer(b"\xff1"), None);
    }

    proptest::proptest! {
        #[test]
        fn parse_integer_round_trips_every_i64(n in proptest::prelude::any::<i64>()) {
            proptest::prop_assert_eq!(parse_integer(n.to_string().as_bytes()), Some(n));
        }
    }

    #[test]
    fn long_non_ascii_reply_in_an_error_does_not_panic() {
        let reply = Reply::Status("a".to_owned() + &"é".repeat(150));
        let e = reply.into_int().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::UnexpectedData);
        assert!(e.message().len() < 400, "{e}");
        let e = Reply::Data(Bytes::from("€".repeat(300)))
            .into_int()
            .unwrap_err();
        assert!(e.message().ends_with('…'), "{e}");
    }

    fn arb_reply() -> impl proptest::strategy::Strategy<Value = Reply> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            Just(Reply::Nil),
            any::<i64>().prop_map(Reply::Int),
            proptest::collection::vec(any::<u8>(), 0..600)
                .prop_map(|b| Reply::Data(Bytes::from(b))),
            ".{0,400}".prop_map(Reply::Status),
            any::<f64>().prop_map(Reply::Double),
            any::<bool>().prop_map(Reply::Bool),
        ];
        leaf.prop_recursive(4, 64, 8, |inner| {
            proptest::collection::vec(inner, 0..8).prop_map(Reply::Array)
        })
    }

    proptest::proptest! {
        #[test]
        fn no_reply_conversion_panics(reply in arb_reply(), text in ".{0,400}") {
            let _ = reply.clone().into_opt_bytes();
            let _ = reply.clone().into_int();
            let _ = reply.clone().into_array();
            let _ = reply.is_some();
            let _ = format!("{reply:?}");
            for e in [
                unexpected(&text, &reply),
                KvError::server_reply(text.clone(), None),
                KvError::new(ErrorKind::Script, text.clone()),
            ] {
                let _ = (e.to_string(), format!("{e:?}"), e.server_code(), e.is_noscript());
                let _ = (e.is_unavailable(), e.kind().as_str());
            }
        }
    }
}
