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
    // Leaked once per script (there are a fixed few, all `static`): `EVALSHA` then sends
    // it as `Bytes::from_static`, with no copy, allocation or reference count per call.
    sha1: OnceLock<&'static str>,
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
    pub fn sha1(&self) -> &'static str {
        self.sha1.get_or_init(|| {
            Box::leak(
                sha1_smol::Sha1::from(self.source)
                    .digest()
                    .to_string()
                    .into_boxed_str(),
            )
        })
    }
}

/// `compare_and_set.lua`: write a key only if it holds the expected value (or is absent).
pub static COMPARE_AND_SET: Script =
    Script::new("compare_and_set", include_str!("lua/compare_and_set.lua"));

/// `delete_if_value.lua`: delete a key only if it holds the expected value.
pub static DELETE_IF_VALUE: Script =
    Script::new("delete_if_value", include_str!("lua/delete_if_value.lua"));

/// `increment.lua`: `INCR`, and `EXPIRE` only when the key was created (Better Auth 1.7's
/// `increment`).
pub static INCREMENT: Script = Script::new("increment", include_str!("lua/increment.lua"));

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

/// `session_create.lua`: write a new session hash; never overwrites one.
pub static SESSION_CREATE: Script =
    Script::new("session_create", include_str!("lua/session_create.lua"));

/// `session_refresh.lua`: move an existing session's expiry; never creates.
pub static SESSION_REFRESH: Script =
    Script::new("session_refresh", include_str!("lua/session_refresh.lua"));

/// `session_delete.lua`: delete a session, replying with its user id.
pub static SESSION_DELETE: Script =
    Script::new("session_delete", include_str!("lua/session_delete.lua"));

/// `session_get_many.lua`: read several session hashes of one hash slot.
pub static SESSION_GET_MANY: Script =
    Script::new("session_get_many", include_str!("lua/session_get_many.lua"));

/// `session_index_add.lua`: add to a user's index, prune, name what the cap evicts.
pub static SESSION_INDEX_ADD: Script = Script::new(
    "session_index_add",
    include_str!("lua/session_index_add.lua"),
);

/// `session_index_touch.lua`: raise a member's score if it is still indexed.
pub static SESSION_INDEX_TOUCH: Script = Script::new(
    "session_index_touch",
    include_str!("lua/session_index_touch.lua"),
);

/// `session_index_members.lua`: prune, then every member by expiry.
pub static SESSION_INDEX_MEMBERS: Script = Script::new(
    "session_index_members",
    include_str!("lua/session_index_members.lua"),
);

/// `session_index_remove.lua`: remove members, prune, fit the key's expiry.
pub static SESSION_INDEX_REMOVE: Script = Script::new(
    "session_index_remove",
    include_str!("lua/session_index_remove.lua"),
);

/// `session_index_count.lua`: prune, then count.
pub static SESSION_INDEX_COUNT: Script = Script::new(
    "session_index_count",
    include_str!("lua/session_index_count.lua"),
);

/// Every script, for tooling (SHA pins, `SCRIPT LOAD` at start-up, the parity audit).
pub fn all() -> [&'static Script; 18] {
    [
        &COMPARE_AND_SET,
        &DELETE_IF_VALUE,
        &INCREMENT,
        &LOCK_ACQUIRE,
        &LOCK_EXTEND,
        &RATE_LIMIT_FIXED_WINDOW,
        &RATE_LIMIT_SLIDING_WINDOW,
        &RATE_LIMIT_GCRA,
        &RATE_LIMIT_LAST_REQUEST,
        &SESSION_CREATE,
        &SESSION_REFRESH,
        &SESSION_DELETE,
        &SESSION_GET_MANY,
        &SESSION_INDEX_ADD,
        &SESSION_INDEX_TOUCH,
        &SESSION_INDEX_MEMBERS,
        &SESSION_INDEX_REMOVE,
        &SESSION_INDEX_COUNT,
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
            ("increment", "cab0ff4b346d3ef1a447bb10006484a14b6e34c2"),
            ("lock_acquire", "a54271a7f1b2355db47a220c68e67032b5fa6140"),
            ("lock_extend", "5ea1ced6c8ae4e1a311923369beeafe41637cca1"),
            (
                "rate_limit_fixed_window",
                "9d0e63c79fe833f01dae08ac3fd069b6365351c0",
            ),
            (
                "rate_limit_sliding_window",
                "8001598081a264de1a2e999239f9f580b3f85d2e",
            ),
            (
                "rate_limit_gcra",
                "ef3e125c8dae6f195ef2ac4747929165a184ad3d",
            ),
            (
                "rate_limit_last_request",
                "190d2460a6a3ad8cd294031342e3a2d9d28f46f4",
            ),
            ("session_create", "cdd4f362d5c295896252af3032eb28c5a1d8b138"),
            (
                "session_refresh",
                "c7f8f516405bdd31031036f0856740cad087d8cf",
            ),
            ("session_delete", "c557f1b730cd60b95524cb4635e541f81af189e4"),
            (
                "session_get_many",
                "1a829cdedca5913e51ca2ee5d5db724a4900a5c1",
            ),
            (
                "session_index_add",
                "924a1ffab46587e91c023266b711366c5dcd5a7d",
            ),
            (
                "session_index_touch",
                "48c377b07347ff7759d0f657dbb8a7bd770ed467",
            ),
            (
                "session_index_members",
                "9a7abbbf653e8d8427dc3ab58022d7fdb8713d63",
            ),
            (
                "session_index_remove",
                "81aef1008612db13f077f0b906fd0c77c003c717",
            ),
            (
                "session_index_count",
                "8038402eb69fcdb11957e1630220ea066304af29",
            ),
        ];
        assert_eq!(all().len(), pins.len(), "every script is pinned");
        for (script, (name, sha)) in all().iter().zip(pins) {
            assert_eq!(script.name(), name);
            assert_eq!(script.sha1(), sha, "{name}.lua changed");
        }
    }
}
