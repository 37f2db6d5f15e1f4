//! The least-privilege ACL of an application user: the key pattern of its prefix and the
//! commands each feature sends (including those its Lua scripts call, which Redis checks
//! against the same ACL), none of them `@dangerous`.
//!
//! `docs/operations.md` prints [`app_user_rule`]'s output; the conformance suite runs every
//! storage, rate-limit, session and lock case as a user created with it, so the list is
//! proven sufficient, and shows that keys outside the prefix are refused.

use crate::glob;
use crate::keys::Prefix;

/// A group of commands the crates send for one feature.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Feature {
    /// What needs these commands.
    pub name: &'static str,
    /// Commands (lower case; `name|sub` for one subcommand).
    pub commands: &'static [&'static str],
}

/// Connecting and health checks: `AUTH`/`HELLO`/`SELECT` at connect, `PING`.
///
/// Left out: `INFO` (`@dangerous`; the connect-time version check is skipped with a
/// warning when it is refused) and `CLIENT SETINFO` (redis-rs sends it at connect on
/// 7.2+ and ignores a refusal; Redis 7.0 does not know the subcommand, so the rule could
/// not name it there).
pub const CONNECT: Feature = Feature {
    name: "connect and health",
    commands: &["auth", "hello", "select", "ping"],
};

/// Secondary storage: plain commands and the `compare_and_set`/`delete_if_value`/
/// `increment` scripts (`INCR`, `EXPIRE`); `SCAN` for `list_keys`/`clear`.
pub const STORAGE: Feature = Feature {
    name: "secondary storage",
    commands: &[
        "get", "set", "getdel", "del", "mget", "scan", "evalsha", "eval", "pttl", "incr", "expire",
    ],
};

/// The rate limiter's scripts (every algorithm).
pub const RATE_LIMIT: Feature = Feature {
    name: "rate limiter",
    commands: &[
        "evalsha",
        "eval",
        "time",
        "get",
        "set",
        "del",
        "type",
        "hmget",
        "hset",
        "pexpire",
        "pexpireat",
        "pttl",
    ],
};

/// The session index's scripts and reads.
pub const SESSIONS: Feature = Feature {
    name: "session index",
    commands: &[
        "evalsha",
        "eval",
        "time",
        "exists",
        "type",
        "hget",
        "hmget",
        "hset",
        "del",
        "pexpire",
        "pexpireat",
        "pttl",
        "zadd",
        "zcard",
        "zrange",
        "zrem",
        "zremrangebyscore",
        "zscore",
    ],
};

/// Locks and their fencing counters.
pub const LOCK: Feature = Feature {
    name: "lock",
    commands: &[
        "evalsha", "eval", "time", "get", "set", "del", "incrby", "pexpire", "pttl", "type",
    ],
};

/// Every feature, in the order of `docs/operations.md`'s table.
pub const FEATURES: [Feature; 5] = [CONNECT, STORAGE, RATE_LIMIT, SESSIONS, LOCK];

/// Every command of every feature, sorted, without repeats.
pub fn commands() -> Vec<&'static str> {
    let mut all: Vec<&'static str> = FEATURES
        .iter()
        .flat_map(|f| f.commands.iter().copied())
        .collect();
    all.sort_unstable();
    all.dedup();
    all
}

/// The `ACL SETUSER <name>` rules (after the name) of an application user of `prefix`:
/// `on` (add `>password`), `resetkeys ~<prefix>*` with the prefix glob-escaped,
/// `resetchannels`, `-@all`, then `+command` for each of [`commands`].
pub fn app_user_rule(prefix: &Prefix) -> Vec<String> {
    let mut pattern = glob::escape(prefix.as_str().as_bytes());
    pattern.push(b'*');
    let mut rules = vec![
        "on".to_owned(),
        "resetkeys".to_owned(),
        format!("~{}", String::from_utf8_lossy(&pattern)),
        "resetchannels".to_owned(),
        "-@all".to_owned(),
    ];
    rules.extend(commands().into_iter().map(|c| format!("+{c}")));
    rules
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rule_names_the_escaped_prefix_and_each_command_once() {
        let rule = app_user_rule(&Prefix::new("my*app:").unwrap());
        assert_eq!(
            &rule[..5],
            ["on", "resetkeys", "~my\\*app:*", "resetchannels", "-@all"]
        );
        let cmds: Vec<&str> = rule[5..]
            .iter()
            .map(|r| r.trim_start_matches('+'))
            .collect();
        let mut sorted = cmds.clone();
        sorted.dedup();
        assert_eq!(cmds, sorted);
        for c in ["get", "evalsha", "time", "zadd", "incrby", "auth"] {
            assert!(cmds.contains(&c), "{c} missing");
        }
    }

    #[test]
    fn docs_print_the_rule_for_myapp() {
        let doc = include_str!("../../../docs/operations.md");
        let rule = app_user_rule(&Prefix::new("myapp:").unwrap()).join(" ");
        let line = format!("ACL SETUSER myapp >PASSWORD {rule}");
        assert!(doc.contains(&line), "docs/operations.md must show:\n{line}");
        for feature in FEATURES {
            let row = feature
                .commands
                .iter()
                .map(|c| format!("`{}`", c.to_uppercase()))
                .collect::<Vec<_>>()
                .join(", ");
            assert!(
                doc.contains(&format!("| {} | {row} |", feature.name)),
                "docs/operations.md must list the commands of {}",
                feature.name
            );
        }
    }

    #[test]
    fn nothing_dangerous_is_granted() {
        // Redis's @dangerous commands a store might be tempted to use.
        for c in [
            "info", "keys", "flushdb", "flushall", "config", "debug", "script", "monitor",
        ] {
            assert!(!commands().contains(&c), "{c} is granted");
        }
    }
}
