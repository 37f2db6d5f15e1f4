//! The Lua scripts, their sources and SHA1 digests.
//!
//! Sources live in `src/lua/*.lua` and are compiled in with `include_str!`, so the bytes
//! sent by both backends are the same file. A test pins each digest: changing a script
//! is a wire-format change and must show up in review (and in `docs/wire-format.md`).

use std::sync::OnceLock;

/// A Lua script run with `EVALSHA`, falling back to `EVAL` when the server answers
/// `NOSCRIPT` (after a restart or `SCRIPT FLUSH`).
#[derive(Debug)]
pub struct Script {
    name: &'static str,
    source: &'static str,
    sha1: OnceLock<String>,
}

impl Script {
    const fn new(name: &'static str, source: &'static str) -> Self {
        Script {
            name,
            source,
            sha1: OnceLock::new(),
        }
    }

    /// The script's name (its file name without `.lua`).
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The Lua source, byte for byte as sent with `EVAL`.
    pub fn source(&self) -> &'static str {
        self.source
    }

    /// The lowercase hex SHA1 of the source, as `EVALSHA` and `SCRIPT LOAD` use it.
    pub fn sha1(&self) -> &str {
        self.sha1
            .get_or_init(|| sha1_smol::Sha1::from(self.source).digest().to_string())
    }
}

/// `compare_and_set.lua`: write a key only if it holds the expected value (or is absent).
pub static COMPARE_AND_SET: Script =
    Script::new("compare_and_set", include_str!("lua/compare_and_set.lua"));

/// `delete_if_value.lua`: delete a key only if it holds the expected value.
pub static DELETE_IF_VALUE: Script =
    Script::new("delete_if_value", include_str!("lua/delete_if_value.lua"));

/// `lock_acquire.lua`: take a lock if free and draw the next fencing token.
pub static LOCK_ACQUIRE: Script = Script::new("lock_acquire", include_str!("lua/lock_acquire.lua"));

/// `lock_extend.lua`: reset a lock's expiry only while the caller owns it. (Release is
/// [`DELETE_IF_VALUE`]: delete the lock key only if it still holds the owner token.)
pub static LOCK_EXTEND: Script = Script::new("lock_extend", include_str!("lua/lock_extend.lua"));

/// `rate_limit_fixed_window.lua`: consume or peek at a fixed-window bucket.
pub static RATE_LIMIT_FIXED_WINDOW: Script = Script::new(
    "rate_limit_fixed_window",
    include_str!("lua/rate_limit_fixed_window.lua"),
);

/// `rate_limit_sliding_window.lua`: consume or peek at a sliding-window bucket.
pub static RATE_LIMIT_SLIDING_WINDOW: Script = Script::new(
    "rate_limit_sliding_window",
    include_str!("lua/rate_limit_sliding_window.lua"),
);

/// `rate_limit_gcra.lua`: consume or peek at a GCRA bucket.
pub static RATE_LIMIT_GCRA: Script =
    Script::new("rate_limit_gcra", include_str!("lua/rate_limit_gcra.lua"));

/// `rate_limit_last_request.lua`: consume or peek at a "last request" bucket.
pub static RATE_LIMIT_LAST_REQUEST: Script = Script::new(
    "rate_limit_last_request",
    include_str!("lua/rate_limit_last_request.lua"),
);

/// Every script, for tooling (SHA pins, `SCRIPT LOAD` at start-up, the parity audit).
pub fn all() -> [&'static Script; 8] {
    [
        &COMPARE_AND_SET,
        &DELETE_IF_VALUE,
        &LOCK_ACQUIRE,
        &LOCK_EXTEND,
        &RATE_LIMIT_FIXED_WINDOW,
        &RATE_LIMIT_SLIDING_WINDOW,
        &RATE_LIMIT_GCRA,
        &RATE_LIMIT_LAST_REQUEST,
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Changing a script changes the wire format: update this pin, `docs/wire-format.md`
    /// and the CHANGELOG together.
    #[test]
    fn script_digests_are_pinned() {
        let pins = [
            (
                "compare_and_set",
                "9fd4cbdf6b5c2fcb00700bdac96c947c8b43ef4d",
            ),
            (
                "delete_if_value",
                "7945925d98f9139d2638db7b814d7045d62c56c9",
            ),
            ("lock_acquire", "bd4bc4e7680b3e2cdc01ded57c78870c4cb4eadc"),
            ("lock_extend", "5ea1ced6c8ae4e1a311923369beeafe41637cca1"),
            (
                "rate_limit_fixed_window",
                "36e5068ffc7fb06af721c60e511b4fdbdf36375c",
            ),
            (
                "rate_limit_sliding_window",
                "e1b836b2bff8c6d44d96139d5d41cefcc07f7ea4",
            ),
            (
                "rate_limit_gcra",
                "6ce918245f45cffd6d9486e3b8b9b0831fe31298",
            ),
            (
                "rate_limit_last_request",
                "b2ee5ace9bfca100f5f64d845d397d704c015c03",
            ),
        ];
        for (script, (name, sha)) in all().iter().zip(pins) {
            assert_eq!(script.name(), name);
            assert_eq!(script.sha1(), sha, "{name}.lua changed");
        }
    }
}
