//! The key codec: how a logical key becomes the physical Redis key, byte for byte.
//!
//! Every physical key is `{prefix}{namespace}{logical}`: the prefix names the deployment
//! (default `rustauth:`), the namespace names the kind of data (`secondary:`,
//! `rate-limit:`, `lock:`). Both backends and the memory store build keys only here, so
//! the same call puts the same bytes in Redis whichever client sends it.
//!
//! Locks are the one place with two keys per logical name (the lock and its fencing
//! counter); [`KeyCodec::lock_keys`] puts both in one Redis Cluster hash slot with a
//! `{...}` hash tag, so the acquire script may touch both.
//!
//! [`Prefix::new`] refuses a prefix whose keys would also be keys of another prefix
//! (see its rules); the property test in `keys/collision.rs` checks that claim.

use crate::error::{KvError, KvResult};
use crate::glob;

/// The prefix used when none is configured.
pub const DEFAULT_PREFIX: &str = "rustauth:";

/// What a lock's fencing-counter key adds to the lock key.
const FENCE_SUFFIX: &str = ":fence";

/// A kind of data, with its own segment of the keyspace under the prefix.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Namespace {
    /// Secondary storage: `{prefix}secondary:{key}`.
    Secondary,
    /// Rate-limit buckets: `{prefix}rate-limit:{bucket}`.
    RateLimit,
    /// Distributed locks and their fencing counters: `{prefix}lock:{<name>}` and
    /// `{prefix}lock:{<name>}:fence` (the braces are literal: a hash tag).
    Lock,
}

impl Namespace {
    /// Every namespace, in a fixed order.
    pub const ALL: [Namespace; 3] = [Namespace::Secondary, Namespace::RateLimit, Namespace::Lock];

    /// The namespace's segment, including its trailing `:`.
    pub const fn segment(self) -> &'static str {
        match self {
            Namespace::Secondary => "secondary:",
            Namespace::RateLimit => "rate-limit:",
            Namespace::Lock => "lock:",
        }
    }

    /// The bytes every key of the namespace starts with after the prefix: the segment,
    /// and for locks also the `{` that opens the name's hash tag (`lock:{`).
    pub const fn key_start(self) -> &'static str {
        match self {
            Namespace::Secondary => "secondary:",
            Namespace::RateLimit => "rate-limit:",
            Namespace::Lock => "lock:{",
        }
    }

    /// What a prefix nested in this namespace would turn its keys into, and what the
    /// owning store would do to them: the two halves of [`nested_prefix_error`].
    const fn nesting_consequence(self) -> (&'static str, &'static str) {
        match self {
            Namespace::Secondary => (
                "secondary-storage keys",
                "that store's get, list_keys and clear would read and delete them",
            ),
            Namespace::RateLimit => (
                "rate-limit buckets",
                "that limiter's consume and reset would count and delete them",
            ),
            Namespace::Lock => (
                "lock and fencing-counter keys",
                "that lock store's acquire would take them for held locks and overwrite them \
                 as fencing counters",
            ),
        }
    }
}

/// Whether `b` continues a word: an ASCII letter or digit, `-` or `_`. A namespace
/// segment right after such a byte is the end of a longer word (`my-secondary:`,
/// `deadlock:`), not a namespace; after any other byte (`:`, `/`, `.`, `{`, a non-ASCII
/// character) or at the start of the prefix it is one.
const fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

/// The first position of `needle` in `prefix` at a boundary (the start of the prefix, or
/// right after a byte that is not a word byte), if any.
pub(crate) fn find_at_boundary(prefix: &str, needle: &str) -> Option<usize> {
    let (p, n) = (prefix.as_bytes(), needle.as_bytes());
    (0..=p.len().saturating_sub(n.len()))
        .filter(|&i| p[i..].starts_with(n))
        .find(|&i| i == 0 || !is_word_byte(p[i - 1]))
}

/// The error for `prefix`, which contains the key start `start` of the namespace
/// `segment` at the boundary `at`: its keys would be `what` of `prefix[..at]`, and
/// `effect` says what that prefix's store would do to them.
pub(crate) fn nested_prefix_error(
    prefix: &str,
    at: usize,
    segment: &str,
    start: &str,
    (what, effect): (&str, &str),
) -> KvError {
    let (outer, owner, place) = if at == 0 {
        (
            "an empty prefix".to_owned(),
            "a client using no prefix".to_owned(),
            "at its start",
        )
    } else {
        let outer = format!("prefix {:?}", &prefix[..at]);
        (outer, format!("{:?}", &prefix[..at]), "after a separator")
    };
    KvError::invalid_config(format!(
        "key prefix {prefix:?} nests inside the {segment:?} namespace of {outer}: its keys \
         would be {what} of {owner} ({effect}); choose a prefix without {start:?} {place}"
    ))
}

/// A validated key prefix.
///
/// Rules, checked by [`Prefix::new`]:
/// - not empty, and at most 256 bytes;
/// - no namespace's key start (`secondary:`, `rate-limit:`, `lock:{`) at a *boundary*:
///   at the start of the prefix or right after a byte that is not an ASCII letter, digit,
///   `-` or `_`. Such a prefix nests inside another prefix's namespace, so its keys are
///   that prefix's keys: `app:secondary:t:` writes `app:secondary:t:secondary:x`, the
///   secondary key `t:secondary:x` of `app:` (whose `list_keys` and `clear` see it), and
///   `app:rate-limit:` writes the bucket `secondary:x` of `app:`.
///
/// Accepted, because no other prefix's keys look like theirs: a segment inside a word
/// (`deadlock:`, `block:`, `api-rate-limit:`, `my-secondary:`, `my_secondary:`), and
/// `lock:` not followed by `{` (`app:lock:`): every lock key of `app:` continues
/// `app:lock:{`, while every key of `app:lock:` continues `app:lock:` with a namespace
/// segment, and no segment starts with `{` (namespace names cannot contain braces).
///
/// The guarantee, checked by a property test: two different prefixes that both end with
/// a separator (a byte that is not a letter, digit, `-` or `_`, as `:` is) and pass
/// every builder of this crate never produce the same physical key, and neither one's
/// SCAN pattern for a namespace matches a key of the other. Prefixes that end inside a
/// word (`app`, `app-`) are accepted but not covered: `appsecondary:x` is a key of both
/// `app` and `appsecondary:`. The session index also checks its own namespaces
/// ([`SessionIndexOptionsBuilder::build`](crate::session::SessionIndexOptionsBuilder::build));
/// no builder knows the namespace names another deployment configured.
///
/// Glob characters (`* ? [ ] \`) are allowed: SCAN patterns escape them.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Prefix(String);

impl Prefix {
    /// The longest prefix accepted, in bytes.
    pub const MAX_LEN: usize = 256;

    /// Validates `prefix`.
    pub fn new(prefix: impl Into<String>) -> KvResult<Self> {
        let prefix = prefix.into();
        if prefix.is_empty() {
            return Err(KvError::invalid_config(
                "key prefix is empty: an empty prefix shares the keyspace with every other \
                 application on the server; use e.g. \"rustauth:\"",
            ));
        }
        if prefix.len() > Self::MAX_LEN {
            return Err(KvError::invalid_config(format!(
                "key prefix is {} bytes long; the limit is {}",
                prefix.len(),
                Self::MAX_LEN
            )));
        }
        // The earliest nesting is the one to name: it is the shortest prefix nested in.
        let nested = Namespace::ALL
            .into_iter()
            .filter_map(|ns| find_at_boundary(&prefix, ns.key_start()).map(|at| (at, ns)))
            .min_by_key(|&(at, _)| at);
        if let Some((at, ns)) = nested {
            return Err(nested_prefix_error(
                &prefix,
                at,
                ns.segment(),
                ns.key_start(),
                ns.nesting_consequence(),
            ));
        }
        Ok(Prefix(prefix))
    }

    /// The prefix text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for Prefix {
    fn default() -> Self {
        Prefix(DEFAULT_PREFIX.to_owned())
    }
}

/// The two physical keys of one lock name; see [`KeyCodec::lock_keys`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockKeys {
    /// `{prefix}lock:{<name>}`: holds the owner token, with the lock's expiry.
    pub lock: Vec<u8>,
    /// `{prefix}lock:{<name>}:fence`: the fencing counter, an integer without expiry.
    pub fence: Vec<u8>,
}

/// Builds and parses physical keys for one prefix.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct KeyCodec {
    prefix: Prefix,
}

impl KeyCodec {
    /// The longest logical key accepted, in bytes (Redis allows 512 MiB; auth keys are short,
    /// and a huge key is almost always a bug).
    pub const MAX_KEY_LEN: usize = 64 * 1024;

    /// A codec for `prefix`.
    pub fn new(prefix: Prefix) -> Self {
        KeyCodec { prefix }
    }

    /// The prefix.
    pub fn prefix(&self) -> &Prefix {
        &self.prefix
    }

    /// The physical key of `logical` in `ns`: `{prefix}{segment}{logical}`.
    ///
    /// Rejects an empty logical key and one longer than [`Self::MAX_KEY_LEN`].
    pub fn key(&self, ns: Namespace, logical: &str) -> KvResult<Vec<u8>> {
        self.join(
            [ns.segment(), ""],
            logical,
            ns.segment().trim_end_matches(':'),
        )
    }

    /// The flat physical key `{prefix}{logical}`, without a namespace segment: the layout
    /// of Better Auth's `@better-auth/redis-storage`. Same validation as [`Self::key`].
    pub fn flat_key(&self, logical: &str) -> KvResult<Vec<u8>> {
        self.join(["", ""], logical, "flat")
    }

    /// Rejects an empty logical key and one longer than [`Self::MAX_KEY_LEN`]; the
    /// message names it as "{label} {noun}" ("secondary key", "lock name").
    fn check_logical(logical: &str, label: &str, noun: &str) -> KvResult<()> {
        if logical.is_empty() {
            return Err(KvError::invalid_input(format!("empty {label} {noun}")));
        }
        if logical.len() > Self::MAX_KEY_LEN {
            return Err(KvError::invalid_input(format!(
                "{label} {noun} is {} bytes long; the limit is {}",
                logical.len(),
                Self::MAX_KEY_LEN
            )));
        }
        Ok(())
    }

    /// `{prefix}{segment[0]}{segment[1]}{logical}`, after validating `logical`.
    fn join(&self, segment: [&str; 2], logical: &str, label: &str) -> KvResult<Vec<u8>> {
        Self::check_logical(logical, label, "key")?;
        let len = self.prefix.0.len() + segment[0].len() + segment[1].len() + logical.len();
        let mut key = Vec::with_capacity(len);
        key.extend_from_slice(self.prefix.0.as_bytes());
        key.extend_from_slice(segment[0].as_bytes());
        key.extend_from_slice(segment[1].as_bytes());
        key.extend_from_slice(logical.as_bytes());
        Ok(key)
    }

    /// The keys of the lock `name`: `{prefix}lock:{<name>}` and `{prefix}lock:{<name>}:fence`,
    /// where the braces around the name are literal. They are a Redis Cluster hash tag: both
    /// keys hash by the same bytes, so they live in one slot and one script may touch both.
    ///
    /// Rejects an empty name, one longer than [`Self::MAX_KEY_LEN`], and one containing `{`
    /// or `}` (it would end the hash tag early, and could make one lock's counter key equal
    /// another lock's key). The prefix must not defeat the tag; see
    /// [`KeyCodec::check_lock_prefix`].
    pub fn lock_keys(&self, name: &str) -> KvResult<LockKeys> {
        Self::check_logical(name, "lock", "name")?;
        if name.contains(['{', '}']) {
            return Err(KvError::invalid_input(format!(
                "lock name {name:?} contains '{{' or '}}': lock names are wrapped in a Redis \
                 Cluster hash tag and may not contain braces"
            )));
        }
        let ns = self.namespace(Namespace::Lock);
        let mut lock = Vec::with_capacity(ns.len() + name.len() + 2);
        lock.extend_from_slice(ns.as_bytes());
        lock.push(b'{');
        lock.extend_from_slice(name.as_bytes());
        lock.push(b'}');
        let mut fence = Vec::with_capacity(lock.len() + FENCE_SUFFIX.len());
        fence.extend_from_slice(&lock);
        fence.extend_from_slice(FENCE_SUFFIX.as_bytes());
        Ok(LockKeys { lock, fence })
    }

    /// Rejects a prefix under which a lock and its fencing counter could land in different
    /// Redis Cluster slots: one whose first `{` is immediately followed by `}`. Redis then
    /// ignores every later brace and hashes each key whole. (Any other prefix works: a
    /// complete tag inside the prefix puts every key of the prefix in one slot, and an
    /// unclosed `{` is closed by the lock name's tag, identically for both keys.)
    pub fn check_lock_prefix(&self) -> KvResult<()> {
        let p = self.prefix.as_str();
        if p.find('{').is_some_and(|i| p[i + 1..].starts_with('}')) {
            return Err(KvError::invalid_config(format!(
                "key prefix {p:?} contains an empty hash tag \"{{}}\": Redis Cluster would hash \
                 each lock key whole, so a lock and its fencing counter could land in \
                 different slots; remove the \"{{}}\""
            )));
        }
        Ok(())
    }

    /// `{prefix}{segment}`, the bytes every key of `ns` starts with.
    pub fn namespace(&self, ns: Namespace) -> String {
        let mut s = String::with_capacity(self.namespace_len(ns));
        s.push_str(&self.prefix.0);
        s.push_str(ns.segment());
        s
    }

    fn namespace_len(&self, ns: Namespace) -> usize {
        self.prefix.0.len() + ns.segment().len()
    }

    /// The SCAN `MATCH` pattern that matches exactly the keys of `ns`: the escaped
    /// `{prefix}{key start}` followed by `*` (for locks the key start includes the `{`,
    /// so the pattern does not match the keys of a prefix such as `app:lock:`).
    pub fn scan_pattern(&self, ns: Namespace) -> Vec<u8> {
        let mut start = self.prefix.0.clone();
        start.push_str(ns.key_start());
        let mut pattern = glob::escape(start.as_bytes());
        pattern.push(b'*');
        pattern
    }

    /// The logical key of a physical key of `ns`, or `None` when the key is not in `ns`.
    ///
    /// The namespace is stripped literally: logical keys may contain `:` (IPv6 buckets do).
    /// For locks the result keeps the braces (`{<name>}` or `{<name>}:fence`), and a key
    /// without the `{` after `lock:` is not in the namespace.
    pub fn logical<'a>(&self, ns: Namespace, physical: &'a [u8]) -> Option<&'a [u8]> {
        let rest = physical.strip_prefix(self.prefix.0.as_bytes())?;
        let logical = rest.strip_prefix(ns.segment().as_bytes())?;
        let tail = &ns.key_start().as_bytes()[ns.segment().len()..];
        logical.starts_with(tail).then_some(logical)
    }
}

/// The name of a configurable namespace (the session index's `session` and
/// `user_sessions`): its keys are `{prefix}{name}:{logical}`.
///
/// Rules, checked by [`NamespaceName::new`]: 1 to 64 bytes of ASCII letters, digits, `_`,
/// `-` and `.`, so the segment contains no `:` (the separator), no `{`/`}` (which would
/// make it a Redis Cluster hash tag) and no glob character; and not the name of a
/// built-in [`Namespace`] (`secondary`, `rate-limit`, `lock`), whose stores would
/// otherwise see these keys. (So no segment starts with `{`, which the lock rule of
/// [`Prefix`] relies on.)
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NamespaceName(String);

impl NamespaceName {
    /// The longest name accepted, in bytes.
    pub const MAX_LEN: usize = 64;

    /// Validates `name`.
    pub fn new(name: impl Into<String>) -> KvResult<Self> {
        let name = name.into();
        if name.is_empty() || name.len() > Self::MAX_LEN {
            return Err(KvError::invalid_config(format!(
                "namespace name {name:?} must be 1 to {} bytes long",
                Self::MAX_LEN
            )));
        }
        if let Some(bad) = name
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')))
        {
            return Err(KvError::invalid_config(format!(
                "namespace name {name:?} contains {bad:?}: only ASCII letters, digits, '_', \
                 '-' and '.' are allowed (':' separates the name from the key, braces would \
                 be a cluster hash tag)"
            )));
        }
        if let Some(ns) = Namespace::ALL
            .iter()
            .find(|ns| ns.segment().trim_end_matches(':') == name)
        {
            return Err(KvError::invalid_config(format!(
                "namespace name {name:?} is the built-in {:?} namespace; choose another",
                ns.segment()
            )));
        }
        Ok(NamespaceName(name))
    }

    /// The name, without the trailing `:`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The segment: the name followed by `:`.
    pub fn segment(&self) -> String {
        format!("{}:", self.0)
    }
}

impl KeyCodec {
    /// The physical key of `logical` in the configurable namespace `ns`:
    /// `{prefix}{name}:{logical}`. Same validation of `logical` as [`Self::key`].
    pub fn key_in(&self, ns: &NamespaceName, logical: &str) -> KvResult<Vec<u8>> {
        self.join([ns.as_str(), ":"], logical, ns.as_str())
    }
}

#[cfg(test)]
mod collision;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::slot;
    use proptest::prelude::*;

    #[test]
    fn keys_are_prefix_segment_logical() {
        let codec = KeyCodec::default();
        let cases: &[(Namespace, &str, &str)] = &[
            (Namespace::Secondary, "abc", "rustauth:secondary:abc"),
            (
                Namespace::Secondary,
                "active-sessions-42",
                "rustauth:secondary:active-sessions-42",
            ),
            (
                Namespace::RateLimit,
                "2001:0db8:abcd:0012:0000:0000:0000:0000|/sign-in",
                "rustauth:rate-limit:2001:0db8:abcd:0012:0000:0000:0000:0000|/sign-in",
            ),
            (
                Namespace::Secondary,
                "ünï*?[]\\",
                "rustauth:secondary:ünï*?[]\\",
            ),
        ];
        for (ns, logical, physical) in cases {
            let key = codec.key(*ns, logical).unwrap();
            assert_eq!(key, physical.as_bytes());
            assert_eq!(codec.logical(*ns, &key), Some(logical.as_bytes()));
        }
    }

    #[test]
    fn logical_rejects_other_namespaces_and_prefixes() {
        let codec = KeyCodec::new(Prefix::new("app:").unwrap());
        assert_eq!(
            codec.logical(Namespace::Secondary, b"app:rate-limit:x"),
            None
        );
        assert_eq!(
            codec.logical(Namespace::Secondary, b"app2:secondary:x"),
            None
        );
        assert_eq!(
            codec.logical(Namespace::Secondary, b"app:secondary:x"),
            Some(&b"x"[..])
        );
    }

    #[test]
    fn empty_and_huge_keys_are_rejected() {
        let codec = KeyCodec::default();
        let e = codec.key(Namespace::Secondary, "").unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::InvalidInput);
        assert!(e.message().contains("empty secondary key"), "{e}");
        let big = "x".repeat(KeyCodec::MAX_KEY_LEN + 1);
        let e = codec.key(Namespace::Secondary, &big).unwrap_err();
        assert!(e.message().contains("65537"), "{e}");
    }

    /// Prefixes with a namespace segment inside a word, or `lock:` without `{`, build;
    /// the four first ones were refused before the boundary rule.
    const ACCEPTED_PREFIXES: &[&str] = &[
        "deadlock:",
        "block:",
        "api-rate-limit:",
        "my-secondary:",
        "my_secondary:",
        "app:my-secondary:",
        "app:lock:",
        "lock:",
        "app:lock:x:",
        "app:locks:",
        "app:lock:}:",
        "app:secondaryx:",
        "app:rate-limits:",
        "rustauth:",
        "my*app[1]:",
    ];

    #[test]
    fn prefix_rules_accept() {
        for ok in ACCEPTED_PREFIXES {
            match Prefix::new(*ok) {
                Ok(p) => assert_eq!(p.as_str(), *ok),
                Err(e) => panic!("{ok}: {e}"),
            }
        }
    }

    #[test]
    fn prefix_rules_refuse_nesting_at_a_boundary() {
        // (prefix, namespace segment, the prefix it nests in or "" at the start, what
        // its keys would be)
        let cases: &[(&str, &str, &str, &str)] = &[
            (
                "app:secondary:",
                "secondary:",
                "app:",
                "secondary-storage keys",
            ),
            (
                "app:secondary:t:",
                "secondary:",
                "app:",
                "secondary-storage keys",
            ),
            (
                "rustauth:secondary:tenant:",
                "secondary:",
                "rustauth:",
                "secondary-storage keys",
            ),
            (
                "app.secondary:",
                "secondary:",
                "app.",
                "secondary-storage keys",
            ),
            (
                "app/rate-limit:",
                "rate-limit:",
                "app/",
                "rate-limit buckets",
            ),
            (
                "app:rate-limit:",
                "rate-limit:",
                "app:",
                "rate-limit buckets",
            ),
            ("x:rate-limit:", "rate-limit:", "x:", "rate-limit buckets"),
            (
                "é-free:ésecondary:",
                "secondary:",
                "é-free:é",
                "secondary-storage keys",
            ),
            (
                "app:lock:{x:",
                "lock:",
                "app:",
                "lock and fencing-counter keys",
            ),
            (
                "app:lock:{x}:",
                "lock:",
                "app:",
                "lock and fencing-counter keys",
            ),
            ("a{lock:{b:", "lock:", "a{", "lock and fencing-counter keys"),
            (
                "x-secondary:secondary:",
                "secondary:",
                "x-secondary:",
                "secondary-storage keys",
            ),
            (
                "a:rate-limit:secondary:",
                "rate-limit:",
                "a:",
                "rate-limit buckets",
            ),
            ("secondary:x:", "secondary:", "", "secondary-storage keys"),
            ("rate-limit:", "rate-limit:", "", "rate-limit buckets"),
            ("lock:{", "lock:", "", "lock and fencing-counter keys"),
        ];
        for (prefix, segment, outer, what) in cases {
            let e = Prefix::new(*prefix).unwrap_err();
            assert_eq!(e.kind(), crate::ErrorKind::InvalidConfig, "{prefix}");
            let m = e.message();
            let nests = format!("key prefix {prefix:?} nests inside the {segment:?} namespace of ");
            assert!(m.starts_with(&nests), "{prefix}: {m}");
            if outer.is_empty() {
                assert!(
                    m.contains("an empty prefix") && m.contains("at its start"),
                    "{m}"
                );
            } else {
                assert!(m.contains(&format!("{what} of {outer:?}")), "{prefix}: {m}");
                assert!(m.ends_with("after a separator"), "{m}");
            }
        }
    }

    #[test]
    fn prefix_error_texts() {
        let text = |p: &str| Prefix::new(p).unwrap_err().message().to_owned();
        assert_eq!(
            text("app:secondary:t:"),
            "key prefix \"app:secondary:t:\" nests inside the \"secondary:\" namespace of \
             prefix \"app:\": its keys would be secondary-storage keys of \"app:\" (that \
             store's get, list_keys and clear would read and delete them); choose a prefix \
             without \"secondary:\" after a separator"
        );
        assert_eq!(
            text("app:rate-limit:"),
            "key prefix \"app:rate-limit:\" nests inside the \"rate-limit:\" namespace of \
             prefix \"app:\": its keys would be rate-limit buckets of \"app:\" (that \
             limiter's consume and reset would count and delete them); choose a prefix \
             without \"rate-limit:\" after a separator"
        );
        assert_eq!(
            text("app:lock:{x:"),
            "key prefix \"app:lock:{x:\" nests inside the \"lock:\" namespace of prefix \
             \"app:\": its keys would be lock and fencing-counter keys of \"app:\" (that \
             lock store's acquire would take them for held locks and overwrite them as \
             fencing counters); choose a prefix without \"lock:{\" after a separator"
        );
        assert_eq!(
            text("secondary:"),
            "key prefix \"secondary:\" nests inside the \"secondary:\" namespace of an \
             empty prefix: its keys would be secondary-storage keys of a client using no \
             prefix (that store's get, list_keys and clear would read and delete them); \
             choose a prefix without \"secondary:\" at its start"
        );
        let e = Prefix::new("").unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::InvalidConfig);
        assert!(Prefix::new("p".repeat(257)).is_err());
    }

    /// Why `lock:` alone is no collision: the codec writes `{` right after `lock:` in every
    /// lock key of `app:` (and refuses braces in names, so the tag is the name's), while
    /// every key of `app:lock:` continues `app:lock:` with a segment, and no segment
    /// starts with `{` (namespace names cannot contain braces).
    #[test]
    fn lock_segment_alone_is_no_collision() {
        let outer = KeyCodec::new(Prefix::new("app:").unwrap());
        let inner = KeyCodec::new(Prefix::new("app:lock:").unwrap());
        for name in ["{secondary:x}", "secondary:x}", "{x"] {
            assert!(outer.lock_keys(name).is_err(), "{name}");
        }
        for segment in Namespace::ALL.map(Namespace::key_start) {
            assert!(!segment.starts_with('{'), "{segment}");
        }
        let locks = outer.scan_pattern(Namespace::Lock);
        assert_eq!(locks, b"app:lock:{*");
        for ns in Namespace::ALL {
            let key = match ns {
                Namespace::Lock => inner.lock_keys("x").unwrap().lock,
                _ => inner.key(ns, "{x}").unwrap(),
            };
            assert!(!crate::glob::redis_glob::matches(&locks, &key), "{key:?}");
            assert_eq!(outer.logical(Namespace::Lock, &key), None, "{key:?}");
        }
        let own = outer.lock_keys("x").unwrap();
        assert_eq!(
            outer.logical(Namespace::Lock, &own.fence),
            Some(&b"{x}:fence"[..])
        );
        assert!(crate::glob::redis_glob::matches(&locks, &own.fence));
    }

    #[test]
    fn scan_pattern_escapes_the_prefix() {
        let codec = KeyCodec::new(Prefix::new("a*b?[c]\\:").unwrap());
        assert_eq!(
            codec.scan_pattern(Namespace::Secondary),
            b"a\\*b\\?\\[c\\]\\\\:secondary:*".to_vec()
        );
    }

    #[test]
    fn lock_keys_layout() {
        let codec = KeyCodec::new(Prefix::new("app:").unwrap());
        let keys = codec.lock_keys("nightly-cleanup").unwrap();
        assert_eq!(keys.lock, b"app:lock:{nightly-cleanup}");
        assert_eq!(keys.fence, b"app:lock:{nightly-cleanup}:fence");
        for (name, want) in [
            ("", "empty lock name"),
            ("a{b", "contains '{' or '}'"),
            ("a}b", "contains '{' or '}'"),
        ] {
            let e = codec.lock_keys(name).unwrap_err();
            assert_eq!(e.kind(), crate::ErrorKind::InvalidInput);
            assert!(e.message().contains(want), "{name:?}: {e}");
        }
        let e = codec
            .lock_keys(&"n".repeat(KeyCodec::MAX_KEY_LEN + 1))
            .unwrap_err();
        assert!(e.message().contains("65537"), "{e}");
    }

    #[test]
    fn lock_prefix_rules() {
        for ok in ["rustauth:", "{tenant}:", "a{b:", "x}{y}:", "}{:"] {
            let codec = KeyCodec::new(Prefix::new(ok).unwrap());
            assert!(codec.check_lock_prefix().is_ok(), "{ok}");
        }
        for bad in ["a{}b:", "{}:", "x{}{y}:"] {
            let codec = KeyCodec::new(Prefix::new(bad).unwrap());
            let e = codec.check_lock_prefix().unwrap_err();
            assert_eq!(e.kind(), crate::ErrorKind::InvalidConfig);
            assert!(e.message().contains(bad), "{e}");
        }
    }

    fn brace_heavy() -> impl Strategy<Value = String> {
        proptest::collection::vec(
            prop_oneof![Just('{'), Just('}'), Just(':'), Just('a'), any::<char>()],
            1..12,
        )
        .prop_map(|c| c.into_iter().collect())
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

        /// For every prefix the lock options accept and every valid name, the lock and its
        /// fencing counter share a Redis Cluster slot (so the acquire script is
        /// Cluster-safe), and distinct names give distinct, non-colliding keys.
        #[test]
        fn lock_keys_share_a_slot(
            prefix in brace_heavy(),
            name in brace_heavy(),
            other in brace_heavy(),
        ) {
            let Ok(prefix) = Prefix::new(prefix) else { return Ok(()) };
            let codec = KeyCodec::new(prefix);
            prop_assume!(codec.check_lock_prefix().is_ok());
            let Ok(keys) = codec.lock_keys(&name) else {
                prop_assert!(name.contains(['{', '}']), "rejected only for braces");
                return Ok(());
            };
            prop_assert_eq!(slot::key_slot(&keys.lock), slot::key_slot(&keys.fence));
            if let Ok(o) = codec.lock_keys(&other) {
                if other != name {
                    for a in [&keys.lock, &keys.fence] {
                        prop_assert!(a != &o.lock && a != &o.fence);
                    }
                }
            }
        }
    }

    #[test]
    fn configurable_namespaces() {
        let codec = KeyCodec::new(Prefix::new("app:").unwrap());
        let ns = NamespaceName::new("user_sessions").unwrap();
        assert_eq!(ns.segment(), "user_sessions:");
        assert_eq!(
            codec.key_in(&ns, "u:1{x}").unwrap(),
            b"app:user_sessions:u:1{x}".to_vec()
        );
        let e = codec.key_in(&ns, "").unwrap_err();
        assert!(e.message().contains("empty user_sessions key"), "{e}");
        assert!(codec
            .key_in(&ns, &"x".repeat(KeyCodec::MAX_KEY_LEN + 1))
            .is_err());
        for ok in ["session", "s", "user-sessions.v2", &"n".repeat(64)] {
            assert!(NamespaceName::new(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "a:b",
            "{tag}",
            "s*",
            "with space",
            "ünï",
            "secondary",
            "rate-limit",
            &"n".repeat(65),
        ] {
            let e = NamespaceName::new(bad).unwrap_err();
            assert_eq!(e.kind(), crate::ErrorKind::InvalidConfig, "{bad}");
        }
    }
}
