//! Static `metrics` keys for the per-call counter and histogram: with or without a
//! recorder, a call builds no label vector and hashes nothing (the key's hash is computed
//! at compile time), so with no recorder installed it costs one thread-local check.

use metrics::{Key, Label, Level, Metadata};

use super::names;
use crate::rate_limit::DecisionSource;

/// The metadata of every metric the stores emit.
pub(super) static METADATA: Metadata<'static> =
    Metadata::new(module_path!(), Level::INFO, Some(module_path!()));

/// A store operation's name and its [`names::OPERATIONS`] key.
#[derive(Clone, Copy)]
pub(super) struct Operation {
    pub(super) name: &'static str,
    pub(super) counted: &'static Key,
}

/// `operation!("storage.get")`: the [`Operation`] of that name, its key static.
macro_rules! operation {
    ($name:literal) => {{
        static LABELS: [metrics::Label; 1] =
            [metrics::Label::from_static_parts("operation", $name)];
        static KEY: metrics::Key =
            metrics::Key::from_static_parts($crate::observe::names::OPERATIONS, &LABELS);
        $crate::observe::static_keys::Operation {
            name: $name,
            counted: &KEY,
        }
    }};
}
pub(super) use operation;

/// `duration_keys!("GET", ...)`: [`duration_key`], the static
/// [`names::OPERATION_DURATION`] key of a successful command of each name.
macro_rules! duration_keys {
    ($($command:literal),* $(,)?) => {
        /// The static duration key of a successful `name`, for the commands the stores
        /// send; `None` for another name (the caller builds that key).
        pub(super) fn duration_key(name: &str) -> Option<&'static Key> {
            match name {
                $($command => {
                    static LABELS: [Label; 2] = [
                        Label::from_static_parts("db.system.name", "redis"),
                        Label::from_static_parts("db.operation.name", $command),
                    ];
                    static KEY: Key =
                        Key::from_static_parts(names::OPERATION_DURATION, &LABELS);
                    Some(&KEY)
                })*
                _ => None,
            }
        }
    };
}

duration_keys!(
    "GET", "SET", "DEL", "UNLINK", "MGET", "GETDEL", "HGET", "HMGET", "PTTL", "EVALSHA", "EVAL",
    "SCAN", "PING", "INFO", "MEMORY", "CLUSTER", "EXISTS", "TIME", "TYPE",
);

/// A static key of two labels.
macro_rules! key2 {
    ($name:expr, $k1:literal => $v1:literal, $k2:literal => $v2:literal) => {{
        static LABELS: [Label; 2] = [
            Label::from_static_parts($k1, $v1),
            Label::from_static_parts($k2, $v2),
        ];
        static KEY: Key = Key::from_static_parts($name, &LABELS);
        &KEY
    }};
}

/// The [`names::RATE_LIMIT_DECISIONS`] key of a decision: `outcome` (`allowed`,
/// `denied`) and `source` (`server`, `cache`, `failed_open`, `failed_closed`).
pub(super) fn decision_key(allowed: bool, source: DecisionSource) -> &'static Key {
    use DecisionSource::*;
    const N: &str = names::RATE_LIMIT_DECISIONS;
    match (allowed, source) {
        (true, Store) => key2!(N, "outcome" => "allowed", "source" => "server"),
        (false, Store) => key2!(N, "outcome" => "denied", "source" => "server"),
        (true, BlockedCache) => key2!(N, "outcome" => "allowed", "source" => "cache"),
        (false, BlockedCache) => key2!(N, "outcome" => "denied", "source" => "cache"),
        (true, FailedOpen) => key2!(N, "outcome" => "allowed", "source" => "failed_open"),
        (false, FailedOpen) => key2!(N, "outcome" => "denied", "source" => "failed_open"),
        (true, FailedClosed) => key2!(N, "outcome" => "allowed", "source" => "failed_closed"),
        (false, FailedClosed) => key2!(N, "outcome" => "denied", "source" => "failed_closed"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn static_keys_equal_the_keys_the_macros_would_build() {
        let built = Key::from_parts(
            names::OPERATION_DURATION,
            vec![
                Label::new("db.system.name", "redis"),
                Label::new("db.operation.name", "EVALSHA"),
            ],
        );
        assert_eq!(duration_key("EVALSHA"), Some(&built));
        assert_eq!(duration_key("LPUSH"), None);
        let op = operation!("storage.get");
        assert_eq!(op.name, "storage.get");
        let built = Key::from_parts(
            names::OPERATIONS,
            vec![Label::new("operation", "storage.get")],
        );
        assert_eq!(op.counted, &built);
        let built = Key::from_parts(
            names::RATE_LIMIT_DECISIONS,
            vec![
                Label::new("outcome", "denied"),
                Label::new("source", "cache"),
            ],
        );
        assert_eq!(decision_key(false, DecisionSource::BlockedCache), &built);
    }
}
