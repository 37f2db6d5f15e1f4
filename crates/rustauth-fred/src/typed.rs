//! The hot commands of fixed shape (`GET`, `GETDEL`, `SET`, `HMGET`, `DEL`) sent through
//! fred's typed calls instead of as custom commands.
//!
//! Why: fred flushes its socket after every custom command (and every script), while a
//! typed command waits for the commands queued behind it and goes out in one write with
//! them (fred's auto-pipelining). Measured by `cargo xtask bench`, see
//! `docs/performance.md`. The bytes on the wire are the same: fred writes a typed command
//! as its name and the arguments in the order kv-contract built them (kv-contract builds
//! `SET k v PX ms NX` in fred's order for that reason), and the conformance suite's wire
//! case compares what both backends send through `MONITOR`.
//!
//! A command of any other shape (or an argument that does not parse as this module
//! expects) returns to the caller untouched and is sent as a custom command.

use fred::clients::Client;
use fred::error::Error as FredError;
use fred::interfaces::{HashesInterface, KeysInterface};
use fred::types::{Expiration, Key, SetOptions, Value};
use kv_contract::Bytes;
use kv_contract::{KvError, KvResult, Reply};

/// A command this module sends typed, with its arguments moved in.
#[derive(Debug)]
pub(crate) enum Typed {
    /// `GET key`.
    Get(Bytes),
    /// `GETDEL key`.
    GetDel(Bytes),
    /// `SET key value [PX ms] [NX]`.
    Set {
        key: Bytes,
        value: Bytes,
        px: Option<i64>,
        nx: bool,
    },
    /// `HMGET key field...`.
    HmGet(Bytes, Vec<Bytes>),
    /// `DEL key...`.
    Del(Vec<Bytes>),
}

/// `name` with `args` as a typed command, or the arguments back when it is not one.
pub(crate) fn classify(name: &str, mut args: Vec<Bytes>) -> Result<Typed, Vec<Bytes>> {
    match (name, args.len()) {
        ("GET", 1) => Ok(Typed::Get(args.remove(0))),
        ("GETDEL", 1) => Ok(Typed::GetDel(args.remove(0))),
        ("HMGET", n) if n >= 2 => {
            let fields = args.split_off(1);
            Ok(Typed::HmGet(args.remove(0), fields))
        }
        ("DEL", n) if n >= 1 => Ok(Typed::Del(args)),
        ("SET", 2..=5) => {
            let (px, nx) = match &args[2..] {
                [] => (None, false),
                [nx] if &nx[..] == b"NX" => (None, true),
                [px, ms] if &px[..] == b"PX" => match parse_ms(ms) {
                    Some(ms) => (Some(ms), false),
                    None => return Err(args),
                },
                [px, ms, nx] if &px[..] == b"PX" && &nx[..] == b"NX" => match parse_ms(ms) {
                    Some(ms) => (Some(ms), true),
                    None => return Err(args),
                },
                _ => return Err(args),
            };
            let mut args = args.into_iter();
            match (args.next(), args.next()) {
                (Some(key), Some(value)) => Ok(Typed::Set { key, value, px, nx }),
                // Unreachable: the match above saw at least two arguments.
                _ => Err(Vec::new()),
            }
        }
        _ => Err(args),
    }
}

/// A `PX` argument fred writes back byte for byte: a positive decimal without a sign or
/// leading zero (`i64`'s `Display`), as kv-contract's `int_arg` makes it.
fn parse_ms(raw: &[u8]) -> Option<i64> {
    let n = kv_contract::wire::parse_integer(raw)?;
    (n > 0 && n.to_string().as_bytes() == raw).then_some(n)
}

/// Sends `typed` and decodes its reply as the custom command's would be.
pub(crate) async fn send(client: &Client, typed: Typed) -> Result<KvResult<Reply>, FredError> {
    Ok(match typed {
        Typed::Get(key) => data(client.get::<Value, _>(Key::from(key)).await?),
        Typed::GetDel(key) => data(client.getdel::<Value, _>(Key::from(key)).await?),
        Typed::HmGet(key, fields) => {
            let fields: Vec<Key> = fields.into_iter().map(Key::from).collect();
            data(client.hmget::<Value, _, _>(Key::from(key), fields).await?)
        }
        Typed::Del(keys) => {
            let keys: Vec<Key> = keys.into_iter().map(Key::from).collect();
            data(client.del::<Value, _>(keys).await?)
        }
        Typed::Set { key, value, px, nx } => {
            let reply = client
                .set::<Value, _, _>(
                    Key::from(key),
                    Value::Bytes(value),
                    px.map(Expiration::PX),
                    nx.then_some(SetOptions::NX),
                    false,
                )
                .await?;
            // `SET` answers the status `OK`, or nil when `NX` found the key.
            match reply {
                Value::String(s) => Ok(Reply::Status(s.to_string())),
                other => data(other),
            }
        }
    })
}

/// A typed reply as the custom path decodes it: strings are data (fred turns a UTF-8
/// bulk string into `Value::String`), arrays element by element.
fn data(value: Value) -> KvResult<Reply> {
    Ok(match value {
        Value::Null => Reply::Nil,
        Value::Integer(n) => Reply::Int(n),
        Value::String(s) => Reply::Data(s.into_inner()),
        Value::Bytes(b) => Reply::Data(b),
        Value::Double(d) => Reply::Double(d),
        Value::Boolean(b) => Reply::Bool(b),
        Value::Array(items) => Reply::Array(items.into_iter().map(data).collect::<KvResult<_>>()?),
        other => {
            return Err(KvError::unexpected(format!(
                "unsupported reply from the server: {other:?}"
            )))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(parts: &[&str]) -> Vec<Bytes> {
        parts.iter().map(|p| Bytes::from(p.to_string())).collect()
    }

    #[test]
    fn fixed_shapes_are_typed_and_the_rest_is_returned_whole() {
        assert!(matches!(classify("GET", args(&["k"])), Ok(Typed::Get(_))));
        assert!(matches!(
            classify("SET", args(&["k", "v", "PX", "600", "NX"])),
            Ok(Typed::Set {
                px: Some(600),
                nx: true,
                ..
            })
        ));
        assert!(matches!(
            classify("SET", args(&["k", "v", "NX"])),
            Ok(Typed::Set {
                px: None,
                nx: true,
                ..
            })
        ));
        assert!(matches!(
            classify("HMGET", args(&["k", "a", "b"])),
            Ok(Typed::HmGet(_, f)) if f.len() == 2
        ));
        // Shapes fred would write differently, or not at all: custom, arguments intact.
        for (name, parts) in [
            ("SET", &["k", "v", "KEEPTTL"][..]),
            ("SET", &["k", "v", "NX", "PX", "600"][..]),
            ("SET", &["k", "v", "PX", "0600"][..]),
            ("SET", &["k", "v", "PX", "-1"][..]),
            ("SET", &["k", "v", "PX", "x"][..]),
            ("GET", &["a", "b"][..]),
            ("MGET", &["a", "b"][..]),
            ("EVALSHA", &["sha", "0"][..]),
        ] {
            assert_eq!(
                classify(name, args(parts)).unwrap_err(),
                args(parts),
                "{name} {parts:?}"
            );
        }
    }

    #[test]
    fn replies_decode_as_on_the_custom_path() {
        assert_eq!(data(Value::Null).unwrap(), Reply::Nil);
        assert_eq!(
            data(Value::String("x".into())).unwrap(),
            Reply::Data(Bytes::from_static(b"x"))
        );
        assert_eq!(
            data(Value::Array(vec![Value::Null, Value::Integer(3)])).unwrap(),
            Reply::Array(vec![Reply::Nil, Reply::Int(3)])
        );
        assert!(data(Value::Queued).is_err());
    }
}
