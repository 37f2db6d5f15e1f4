//! The TTL rules, as one table every implementation follows.
//!
//! | TTL given          | `set`                     | `set_if_not_exists`          | `compare_and_set` (condition held) |
//! |--------------------|---------------------------|------------------------------|------------------------------------|
//! | `None`             | `SET k v` (drops old TTL) | `SET k v NX`                 | `SET k v` in the script            |
//! | `Some(0)`          | `DEL k` (already expired) | no I/O, reports "not created"| `DEL k` in the script              |
//! | `Some(d)`, d > 0   | `SET k v PX ms`           | `SET k v PX ms NX`           | `SET k v PX ms` in the script      |
//! | `d` > [`MAX_TTL`]  | rejected before any I/O   | rejected before any I/O      | rejected before any I/O            |
//!
//! `set_keep_ttl` sends `SET k v KEEPTTL`: the key keeps the expiry it had (or none).
//!
//! Durations are sent in whole milliseconds, rounded **up**: a non-zero TTL never becomes
//! "delete". Better Auth's `@better-auth/redis-storage` differs: there a TTL of 0 (or
//! absent) stores the value without expiry.

use std::time::Duration;

use crate::error::{KvError, KvResult};

/// The longest TTL accepted: 2^53 − 1 ms (about 285,000 years). Redis rejects an expiry
/// whose absolute time overflows a 64-bit millisecond clock, and Lua numbers (doubles)
/// represent integers exactly only up to 2^53; this bound is safe for both.
pub const MAX_TTL: Duration = Duration::from_millis(MAX_TTL_MS);

/// [`MAX_TTL`] in milliseconds.
pub const MAX_TTL_MS: u64 = (1 << 53) - 1;

/// What a TTL argument means for a write.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    /// Store without expiry (`None`).
    Never,
    /// The value is already expired (`Some(0)`): store nothing, delete what is there.
    Immediately,
    /// Expire after this many milliseconds (at least 1).
    AfterMs(u64),
}

impl Expiry {
    /// Applies the TTL rules to `ttl`; a TTL above [`MAX_TTL`] is an
    /// [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) error naming the value.
    pub fn from_ttl(ttl: Option<Duration>) -> KvResult<Expiry> {
        let Some(ttl) = ttl else {
            return Ok(Expiry::Never);
        };
        if ttl.is_zero() {
            return Ok(Expiry::Immediately);
        }
        if ttl > MAX_TTL {
            return Err(KvError::invalid_input(format!(
                "TTL {ttl:?} is too large: the limit is {MAX_TTL_MS} ms (2^53 - 1)"
            )));
        }
        let ms = ttl.as_millis() as u64;
        let ms = if Duration::from_millis(ms) < ttl {
            ms + 1
        } else {
            ms
        };
        Ok(Expiry::AfterMs(ms))
    }

    /// The script argument encoding used by the Lua sources: `-1` never, `0` immediately,
    /// otherwise the milliseconds.
    pub fn script_arg(self) -> i64 {
        match self {
            Expiry::Never => -1,
            Expiry::Immediately => 0,
            Expiry::AfterMs(ms) => ms as i64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_table() {
        let cases: &[(Option<Duration>, Expiry)] = &[
            (None, Expiry::Never),
            (Some(Duration::ZERO), Expiry::Immediately),
            (Some(Duration::from_nanos(1)), Expiry::AfterMs(1)),
            (Some(Duration::from_micros(1500)), Expiry::AfterMs(2)),
            (Some(Duration::from_millis(1)), Expiry::AfterMs(1)),
            (Some(Duration::from_secs(60)), Expiry::AfterMs(60_000)),
            (Some(MAX_TTL), Expiry::AfterMs(MAX_TTL_MS)),
        ];
        for (ttl, want) in cases {
            assert_eq!(Expiry::from_ttl(*ttl).unwrap(), *want, "{ttl:?}");
        }
        assert_eq!(Expiry::Never.script_arg(), -1);
        assert_eq!(Expiry::Immediately.script_arg(), 0);
        assert_eq!(Expiry::AfterMs(5).script_arg(), 5);
    }

    #[test]
    fn too_large_ttl_names_the_value() {
        let ttl = MAX_TTL + Duration::from_millis(1);
        let e = Expiry::from_ttl(Some(ttl)).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::InvalidInput);
        assert!(e.message().contains(&format!("{ttl:?}")), "{e}");
        assert!(Expiry::from_ttl(Some(Duration::MAX)).is_err());
    }
}
