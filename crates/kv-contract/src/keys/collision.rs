//! The property behind [`Prefix`]'s rules: two prefixes that every builder accepts and
//! that end with a separator never share a key, and neither one's SCAN pattern for a
//! namespace matches a key of the other, in any namespace (the built-in ones and the
//! session index's defaults).
//!
//! [`check`] is the property for one pair of prefixes; it is run on the pairs a too loose
//! rule would let through (it must fail there) and on generated pairs (it must hold).
//! Ownership of a key is decided by decoding it and building it again, so a collision is
//! found whatever logical keys the two stores happen to use.

use proptest::prelude::*;

use super::{KeyCodec, Namespace, NamespaceName, Prefix};
use crate::glob::{self, redis_glob::matches};
use crate::lock::LockOptions;
use crate::rate_limit::RateLimiterOptions;
use crate::session::SessionIndexOptions;
use crate::storage::StorageOptions;

/// One namespace under a prefix: a built-in one, or one of the session index's.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Space {
    Builtin(Namespace),
    Named(NamespaceName),
}

/// The built-in namespaces and the session index's two default ones.
fn spaces() -> Vec<Space> {
    let mut all: Vec<Space> = Namespace::ALL.into_iter().map(Space::Builtin).collect();
    for name in [
        SessionIndexOptions::DEFAULT_SESSION_NAMESPACE,
        SessionIndexOptions::DEFAULT_USER_SESSIONS_NAMESPACE,
    ] {
        all.push(Space::Named(NamespaceName::new(name).unwrap()));
    }
    all
}

/// Whether every builder with a prefix accepts `prefix`.
fn accepted(prefix: &str) -> bool {
    StorageOptions::builder().prefix(prefix).build().is_ok()
        && RateLimiterOptions::builder().prefix(prefix).build().is_ok()
        && LockOptions::builder().prefix(prefix).build().is_ok()
        && SessionIndexOptions::builder()
            .prefix(prefix)
            .build()
            .is_ok()
}

/// The physical keys `logical` gives in `space` (a lock has two; an invalid one none).
fn keys(codec: &KeyCodec, space: &Space, logical: &str) -> Vec<Vec<u8>> {
    match space {
        Space::Builtin(Namespace::Lock) => codec
            .lock_keys(logical)
            .map(|k| vec![k.lock, k.fence])
            .unwrap_or_default(),
        Space::Builtin(ns) => codec.key(*ns, logical).into_iter().collect(),
        Space::Named(ns) => codec.key_in(ns, logical).into_iter().collect(),
    }
}

/// Whether the store of `space` under `codec` can produce `key`: some logical key of it
/// builds exactly these bytes.
fn owns(codec: &KeyCodec, space: &Space, key: &[u8]) -> bool {
    let start = match space {
        Space::Builtin(ns) => codec.namespace(*ns),
        Space::Named(ns) => format!("{}{}", codec.prefix().as_str(), ns.segment()),
    };
    let Some(rest) = key.strip_prefix(start.as_bytes()) else {
        return false;
    };
    let candidates: Vec<&[u8]> = match space {
        // `{<name>}` or `{<name>}:fence`.
        Space::Builtin(Namespace::Lock) => {
            let Some(tagged) = rest.strip_prefix(b"{") else {
                return false;
            };
            [&b"}"[..], b"}:fence"]
                .iter()
                .filter_map(|end| tagged.strip_suffix(*end))
                .collect()
        }
        _ => vec![rest],
    };
    candidates.into_iter().any(|logical| {
        std::str::from_utf8(logical).is_ok_and(|l| keys(codec, space, l).iter().any(|k| k == key))
    })
}

/// The SCAN pattern that lists the keys of `space` under `codec`.
fn pattern(codec: &KeyCodec, space: &Space) -> Vec<u8> {
    match space {
        Space::Builtin(ns) => codec.scan_pattern(*ns),
        Space::Named(ns) => {
            let start = format!("{}{}", codec.prefix().as_str(), ns.segment());
            let mut p = glob::escape(start.as_bytes());
            p.push(b'*');
            p
        }
    }
}

/// The property for the prefixes `p` and `q` (not validated here) and the logical keys
/// `logicals`: every key of one (prefix, namespace) store is owned by no other store and
/// matched by no other store's SCAN pattern. Err names the first key that breaks it.
fn check(p: &str, q: &str, logicals: &[String]) -> Result<(), String> {
    let stores: Vec<(KeyCodec, Space)> = [p, q]
        .into_iter()
        .flat_map(|prefix| {
            let codec = KeyCodec::new(Prefix(prefix.to_owned()));
            spaces().into_iter().map(move |s| (codec.clone(), s))
        })
        .collect();
    for (i, (codec, space)) in stores.iter().enumerate() {
        for logical in logicals {
            for key in keys(codec, space, logical) {
                let shown = String::from_utf8_lossy(&key);
                if !owns(codec, space, &key) || !matches(&pattern(codec, space), &key) {
                    return Err(format!("{shown:?} is not recognised by its own store"));
                }
                for (j, (other, other_space)) in stores.iter().enumerate() {
                    if i == j {
                        continue;
                    }
                    let whose = format!(
                        "{shown:?} of {:?} {space:?} is also a key of {:?} {other_space:?}",
                        codec.prefix().as_str(),
                        other.prefix().as_str()
                    );
                    if owns(other, other_space, &key) {
                        return Err(whose);
                    }
                    if matches(&pattern(other, other_space), &key) {
                        return Err(format!("{whose}'s SCAN pattern"));
                    }
                }
            }
        }
    }
    Ok(())
}

/// Logical keys that line up with the nested prefixes below.
fn aligned_logicals() -> Vec<String> {
    [
        "x",
        "t:secondary:x",
        "secondary:x",
        "x}",
        "x:secondary:x}",
        "{x}",
    ]
    .map(str::to_owned)
    .to_vec()
}

#[test]
fn the_property_fails_on_nested_prefixes() {
    for (p, q) in [
        ("app:", "app:secondary:t:"),
        ("app:", "app:secondary:"),
        ("app:", "app:rate-limit:"),
        ("app/", "app/rate-limit:"),
        ("app.", "app.secondary:"),
        ("app:", "app:lock:{x:"),
        ("app:", "app:session:"),
        ("app:", "app:user_sessions:"),
    ] {
        assert!(!accepted(q), "{q} is accepted");
        let found = check(p, q, &aligned_logicals());
        assert!(found.is_err(), "{p} / {q}: no collision found");
    }
}

#[test]
fn prefixes_from_the_issue_do_not_collide() {
    for q in [
        "deadlock:",
        "block:",
        "api-rate-limit:",
        "my-secondary:",
        "my_secondary:",
        "app:lock:",
        "app:lock:x:",
        "app:my-secondary:",
        "app:my-session:",
    ] {
        assert!(accepted(q), "{q}");
        for p in ["app:", "rustauth:", "dead", "api-", "my-", "my_"] {
            if accepted(p) && p.ends_with(':') {
                check(p, q, &aligned_logicals()).unwrap();
            }
        }
    }
}

/// The prefixes of the issue, refused before the boundary rule, build through every
/// builder; a nested one fails in every builder; a session namespace fails only in the
/// session index, the one builder that knows it.
#[test]
fn every_builder_applies_the_rule() {
    for prefix in ["deadlock:", "block:", "api-rate-limit:", "my-secondary:"] {
        let storage = StorageOptions::builder().prefix(prefix).build();
        let limiter = RateLimiterOptions::builder().prefix(prefix).build();
        let lock = LockOptions::builder().prefix(prefix).build();
        let sessions = SessionIndexOptions::builder().prefix(prefix).build();
        assert_eq!(storage.unwrap().codec.prefix().as_str(), prefix);
        assert_eq!(limiter.unwrap().codec.prefix().as_str(), prefix);
        assert_eq!(lock.unwrap().codec.prefix().as_str(), prefix);
        assert_eq!(sessions.unwrap().codec().prefix().as_str(), prefix);
    }
    for prefix in ["app:secondary:", "app/rate-limit:", "app:lock:{x:"] {
        let errors = [
            StorageOptions::builder().prefix(prefix).build().err(),
            RateLimiterOptions::builder().prefix(prefix).build().err(),
            LockOptions::builder().prefix(prefix).build().err(),
            SessionIndexOptions::builder().prefix(prefix).build().err(),
        ];
        for e in errors {
            let e = e.unwrap_or_else(|| panic!("{prefix} accepted"));
            assert!(e.message().contains(&format!("{prefix:?} nests")), "{e}");
        }
    }
    assert!(StorageOptions::builder()
        .prefix("app:session:")
        .build()
        .is_ok());
    assert!(SessionIndexOptions::builder()
        .prefix("app:session:")
        .build()
        .is_err());
}

fn piece() -> impl Strategy<Value = &'static str> {
    prop_oneof![
        Just("app"),
        Just("a"),
        Just("dead"),
        Just("-"),
        Just("_"),
        Just("."),
        Just("/"),
        Just(":"),
        Just("{"),
        Just("}"),
        Just("é"),
        Just("*"),
        Just("secondary:"),
        Just("rate-limit:"),
        Just("lock:"),
        Just("lock:{"),
        Just("session:"),
        Just("user_sessions:"),
        Just(":fence"),
    ]
}

fn word(max: usize) -> impl Strategy<Value = String> {
    proptest::collection::vec(piece(), 0..max).prop_map(|v| v.concat())
}

fn separator() -> impl Strategy<Value = &'static str> {
    prop_oneof![6 => Just(":"), 1 => Just("/"), 1 => Just(".")]
}

/// Two prefixes ending with a separator; often the second extends the first, which is
/// where nesting hides.
fn prefix_pair() -> impl Strategy<Value = (String, String)> {
    (word(4), separator(), word(4), separator(), any::<bool>()).prop_map(
        |(p, p_end, q, q_end, nested)| {
            let p = format!("{p}{p_end}");
            let q = if nested {
                format!("{p}{q}{q_end}")
            } else {
                format!("{q}{q_end}")
            };
            (p, q)
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, ..ProptestConfig::default() })]

    /// Accepted prefixes ending with a separator never share a key or a SCAN match.
    #[test]
    fn accepted_prefixes_never_collide(
        (p, q) in prefix_pair(),
        logicals in proptest::collection::vec(word(5), 1..4),
    ) {
        if p == q || !accepted(&p) || !accepted(&q) {
            return Ok(());
        }
        let mut logicals: Vec<String> = logicals.into_iter().filter(|l| !l.is_empty()).collect();
        logicals.extend(aligned_logicals());
        check(&p, &q, &logicals).map_err(TestCaseError::fail)?;
    }
}
