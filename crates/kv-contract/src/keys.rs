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
}

/// A validated key prefix.
///
/// Rules, checked by [`Prefix::new`]:
/// - not empty, and at most 256 bytes;
/// - it must not contain a namespace segment (`secondary:`, `rate-limit:`): such a prefix
///   would nest inside another store's namespace (`rustauth:secondary:tenant:` lies inside
///   the `secondary:` namespace of `rustauth:`), so that store's `list_keys` and `clear`
///   would see and delete this one's keys.
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
        if let Some(ns) = Namespace::ALL
            .iter()
            .find(|ns| prefix.contains(ns.segment()))
        {
            let at = prefix.find(ns.segment()).unwrap_or(0);
            return Err(KvError::invalid_config(format!(
                "key prefix {prefix:?} nests inside the {:?} namespace of prefix {:?}: that \
                 store's list_keys and clear would see and delete this store's keys; choose a \
                 prefix without {:?}",
                ns.segment(),
                &prefix[..at],
                ns.segment()
            )));
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
    /// namespace followed by `*`.
    pub fn scan_pattern(&self, ns: Namespace) -> Vec<u8> {
        let mut pattern = glob::escape(self.namespace(ns).as_bytes());
        pattern.push(b'*');
        pattern
    }

    /// The logical key of a physical key of `ns`, or `None` when the key is not in `ns`.
    ///
    /// The namespace is stripped literally: logical keys may contain `:` (IPv6 buckets do).
    pub fn logical<'a>(&self, ns: Namespace, physical: &'a [u8]) -> Option<&'a [u8]> {
        let rest = physical.strip_prefix(self.prefix.0.as_bytes())?;
        rest.strip_prefix(ns.segment().as_bytes())
    }
}

/// The name of a configurable namespace (the session index's `session` and
/// `user_sessions`): its keys are `{prefix}{name}:{logical}`.
///
/// Rules, checked by [`NamespaceName::new`]: 1 to 64 bytes of ASCII letters, digits, `_`,
/// `-` and `.`, so the segment contains no `:` (the separator), no `{`/`}` (which would
/// make it a Redis Cluster hash tag) and no glob character; and not the name of a
/// built-in [`Namespace`] (`secondary`, `rate-limit`), whose stores would otherwise see
/// these keys.
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

    #[test]
    fn prefix_rules() {
        assert!(Prefix::new("rustauth:").is_ok());
        assert!(Prefix::new("my*app[1]:").is_ok());
        let e = Prefix::new("").unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::InvalidConfig);
        let e = Prefix::new("rustauth:secondary:tenant:").unwrap_err();
        assert!(
            e.message().contains("\"rustauth:secondary:tenant:\"")
                && e.message().contains("prefix \"rustauth:\""),
            "{e}"
        );
        let e = Prefix::new("x:rate-limit:").unwrap_err();
        assert!(e.message().contains("rate-limit:"), "{e}");
        assert!(Prefix::new("p".repeat(257)).is_err());
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
