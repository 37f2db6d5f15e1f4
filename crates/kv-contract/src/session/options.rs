//! Options of a session index: where its keys live (prefix and the two namespaces), the
//! optional per-user cap, and how tokens are stored at rest. Validated once, by
//! [`SessionIndexOptionsBuilder::build`]; every key of the index is built here.

use std::fmt;

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use crate::error::{KvError, KvResult};
use crate::keys::{
    find_at_boundary, nested_prefix_error, KeyCodec, NamespaceName, Prefix, DEFAULT_PREFIX,
};

/// How a session token becomes the session's id: the member stored in the user's index
/// and the last segment of the session key.
///
/// Hashing is off by default (the key holds the token, as Better Auth and most stores do)
/// but **recommended**: with it, a dump of Redis (a backup, a replica, `MONITOR`, a
/// `KEYS` in a debugging session) reveals no usable bearer token. A keyed hash
/// ([`TokenHashing::HmacSha256`]) also keeps someone who can read the dump *and* guess
/// candidate tokens from confirming them offline.
#[non_exhaustive]
#[derive(Clone, PartialEq, Eq, Default)]
pub enum TokenHashing {
    /// The id is the token itself (the default, for compatibility).
    #[default]
    Off,
    /// The id is the lowercase hex SHA-256 of the token (64 characters).
    Sha256,
    /// The id is the lowercase hex HMAC-SHA256 of the token under a secret key of at
    /// least [`TokenHashing::MIN_KEY_LEN`] bytes (64 characters).
    HmacSha256(HashKey),
}

impl TokenHashing {
    /// The shortest HMAC key accepted, in bytes: the output size of SHA-256, as RFC 2104
    /// recommends.
    pub const MIN_KEY_LEN: usize = 32;

    /// Whether ids are digests (so an id is 64 lowercase hex characters).
    pub fn is_hashed(&self) -> bool {
        !matches!(self, TokenHashing::Off)
    }

    /// The id of `token` under this rule (the token must already be validated).
    fn id(&self, token: &str) -> String {
        match self {
            TokenHashing::Off => token.to_owned(),
            TokenHashing::Sha256 => hex(&Sha256::digest(token.as_bytes())),
            TokenHashing::HmacSha256(key) => {
                // new_from_slice accepts any key length for HMAC; it cannot fail.
                let mut mac = Hmac::<Sha256>::new_from_slice(&key.0)
                    .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
                mac.update(token.as_bytes());
                hex(&mac.finalize().into_bytes())
            }
        }
    }
}

impl fmt::Debug for TokenHashing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TokenHashing::Off => f.write_str("Off"),
            TokenHashing::Sha256 => f.write_str("Sha256"),
            TokenHashing::HmacSha256(key) => f.debug_tuple("HmacSha256").field(key).finish(),
        }
    }
}

/// The secret key of [`TokenHashing::HmacSha256`]. Never shown by `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct HashKey(Vec<u8>);

impl HashKey {
    /// Wraps `key`; its length is checked by the options builder.
    pub fn new(key: impl Into<Vec<u8>>) -> Self {
        HashKey(key.into())
    }
}

impl fmt::Debug for HashKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HashKey(<redacted, {} bytes>)", self.0.len())
    }
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 0xf)] as char);
    }
    s
}

/// Options of a session index. Build with [`SessionIndexOptions::builder`].
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionIndexOptions {
    codec: KeyCodec,
    session_namespace: NamespaceName,
    user_sessions_namespace: NamespaceName,
    max_sessions_per_user: Option<u32>,
    token_hashing: TokenHashing,
}

impl Default for SessionIndexOptions {
    fn default() -> Self {
        SessionIndexOptions::builder()
            .build()
            .unwrap_or_else(|e| unreachable!("the defaults are valid: {e}"))
    }
}

impl SessionIndexOptions {
    /// The default session namespace name (Lucia's table name).
    pub const DEFAULT_SESSION_NAMESPACE: &'static str = "session";
    /// The default per-user index namespace name.
    pub const DEFAULT_USER_SESSIONS_NAMESPACE: &'static str = "user_sessions";

    /// Starts options with the defaults: prefix `rustauth:`, namespaces `session` and
    /// `user_sessions`, no cap, no token hashing.
    pub fn builder() -> SessionIndexOptionsBuilder {
        SessionIndexOptionsBuilder {
            prefix: DEFAULT_PREFIX.to_owned(),
            session_namespace: Self::DEFAULT_SESSION_NAMESPACE.to_owned(),
            user_sessions_namespace: Self::DEFAULT_USER_SESSIONS_NAMESPACE.to_owned(),
            max_sessions_per_user: None,
            token_hashing: TokenHashing::Off,
        }
    }

    /// The key codec (prefix).
    pub fn codec(&self) -> &KeyCodec {
        &self.codec
    }

    /// The namespace of session keys.
    pub fn session_namespace(&self) -> &NamespaceName {
        &self.session_namespace
    }

    /// The namespace of the per-user indexes.
    pub fn user_sessions_namespace(&self) -> &NamespaceName {
        &self.user_sessions_namespace
    }

    /// The per-user cap, if any.
    pub fn max_sessions_per_user(&self) -> Option<u32> {
        self.max_sessions_per_user
    }

    /// How tokens are stored at rest.
    pub fn token_hashing(&self) -> &TokenHashing {
        &self.token_hashing
    }

    /// The session id of `token`: the token itself, or its digest when hashing is on.
    /// Rejects an empty token and one longer than [`KeyCodec::MAX_KEY_LEN`].
    pub fn session_id(&self, token: &str) -> KvResult<String> {
        if token.is_empty() {
            return Err(KvError::invalid_input("empty session token"));
        }
        if token.len() > KeyCodec::MAX_KEY_LEN {
            return Err(KvError::invalid_input(format!(
                "session token is {} bytes long; the limit is {}",
                token.len(),
                KeyCodec::MAX_KEY_LEN
            )));
        }
        Ok(self.token_hashing.id(token))
    }

    /// The physical session key of the session id `id`: `{prefix}{session}:{id}`. With
    /// hashing on, `id` must be a digest (64 lowercase hex characters): passing a raw
    /// token here by mistake is an error rather than a silent miss.
    pub fn session_key(&self, id: &str) -> KvResult<Vec<u8>> {
        if self.token_hashing.is_hashed()
            && !(id.len() == 64 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
        {
            return Err(KvError::invalid_input(format!(
                "session id {:?} is not a SHA-256 digest (64 lowercase hex characters); with \
                 token hashing on, ids come from session_id(token) or list()",
                truncate(id)
            )));
        }
        self.codec.key_in(&self.session_namespace, id)
    }

    /// The physical key of `user_id`'s index: `{prefix}{user_sessions}:{user_id}`.
    pub fn user_sessions_key(&self, user_id: &str) -> KvResult<Vec<u8>> {
        self.codec.key_in(&self.user_sessions_namespace, user_id)
    }
}

fn truncate(s: &str) -> &str {
    match s.char_indices().nth(80) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// Builder for [`SessionIndexOptions`].
#[derive(Debug, Clone)]
pub struct SessionIndexOptionsBuilder {
    prefix: String,
    session_namespace: String,
    user_sessions_namespace: String,
    max_sessions_per_user: Option<u32>,
    token_hashing: TokenHashing,
}

impl SessionIndexOptionsBuilder {
    /// Sets the key prefix (default `rustauth:`).
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Sets the session namespace name (default `session`).
    pub fn session_namespace(mut self, name: impl Into<String>) -> Self {
        self.session_namespace = name.into();
        self
    }

    /// Sets the per-user index namespace name (default `user_sessions`).
    pub fn user_sessions_namespace(mut self, name: impl Into<String>) -> Self {
        self.user_sessions_namespace = name.into();
        self
    }

    /// Caps the sessions of one user: a `create` beyond it evicts the sessions that expire
    /// first (see [`SessionIndex::create`](super::SessionIndex::create)). At least 1.
    pub fn max_sessions_per_user(mut self, max: u32) -> Self {
        self.max_sessions_per_user = Some(max);
        self
    }

    /// Sets how tokens are stored at rest (default [`TokenHashing::Off`]).
    pub fn token_hashing(mut self, hashing: TokenHashing) -> Self {
        self.token_hashing = hashing;
        self
    }

    /// Validates and builds the options: the rules of [`Prefix::new`] and
    /// [`NamespaceName::new`], two different namespace names, and no
    /// `{session namespace}:` or `{user-sessions namespace}:` at a boundary of the prefix
    /// (the start, or after a byte other than an ASCII letter, digit, `-` or `_`): with
    /// the defaults, `app:session:` is refused (its keys would be session keys of `app:`)
    /// and `my-session:` accepted.
    pub fn build(self) -> KvResult<SessionIndexOptions> {
        let prefix = Prefix::new(self.prefix)?;
        let session_namespace = NamespaceName::new(self.session_namespace)?;
        let user_sessions_namespace = NamespaceName::new(self.user_sessions_namespace)?;
        if session_namespace == user_sessions_namespace {
            return Err(KvError::invalid_config(format!(
                "the session and user-sessions namespaces are both {:?}: session keys and \
                 index keys would collide",
                session_namespace.as_str()
            )));
        }
        let nested = [
            (
                &session_namespace,
                (
                    "session keys",
                    "that index's get, refresh and delete would read, rewrite and delete them",
                ),
            ),
            (
                &user_sessions_namespace,
                (
                    "session-index keys",
                    "that index's create, list and revoke_all would add to, read and delete them",
                ),
            ),
        ];
        for (ns, consequence) in nested {
            let segment = ns.segment();
            if let Some(at) = find_at_boundary(prefix.as_str(), &segment) {
                return Err(nested_prefix_error(
                    prefix.as_str(),
                    at,
                    &segment,
                    &segment,
                    consequence,
                ));
            }
        }
        if self.max_sessions_per_user == Some(0) {
            return Err(KvError::invalid_config(
                "max_sessions_per_user is 0: a cap must allow at least one session",
            ));
        }
        if let TokenHashing::HmacSha256(key) = &self.token_hashing {
            if key.0.len() < TokenHashing::MIN_KEY_LEN {
                return Err(KvError::invalid_config(format!(
                    "the token HMAC key is {} bytes; at least {} are required",
                    key.0.len(),
                    TokenHashing::MIN_KEY_LEN
                )));
            }
        }
        Ok(SessionIndexOptions {
            codec: KeyCodec::new(prefix),
            session_namespace,
            user_sessions_namespace,
            max_sessions_per_user: self.max_sessions_per_user,
            token_hashing: self.token_hashing,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    #[test]
    fn default_keys() {
        let o = SessionIndexOptions::default();
        assert_eq!(
            o.session_key(&o.session_id("tok").unwrap()).unwrap(),
            b"rustauth:session:tok".to_vec()
        );
        assert_eq!(
            o.user_sessions_key("42").unwrap(),
            b"rustauth:user_sessions:42".to_vec()
        );
        assert_eq!(o.max_sessions_per_user(), None);
        assert_eq!(o.token_hashing(), &TokenHashing::Off);
    }

    #[test]
    fn custom_namespaces() {
        let o = SessionIndexOptions::builder()
            .prefix("app:")
            .session_namespace("sess")
            .user_sessions_namespace("by-user")
            .build()
            .unwrap();
        assert_eq!(o.session_key("t").unwrap(), b"app:sess:t".to_vec());
        assert_eq!(o.user_sessions_key("u").unwrap(), b"app:by-user:u".to_vec());
    }

    #[test]
    fn sha256_vectors() {
        let o = SessionIndexOptions::builder()
            .token_hashing(TokenHashing::Sha256)
            .build()
            .unwrap();
        // FIPS 180-2 test vector.
        assert_eq!(
            o.session_id("abc").unwrap(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let id = o.session_id("abc").unwrap();
        assert_eq!(
            o.session_key(&id).unwrap(),
            format!("rustauth:session:{id}").into_bytes()
        );
        let e = o.session_key("abc").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
        assert!(e.message().contains("\"abc\""), "{e}");
        assert!(o.session_key(&id.to_uppercase()).is_err());
    }

    #[test]
    fn hmac_sha256_vector() {
        // RFC 4231 test case 6: a 131-byte key of 0xaa.
        let o = SessionIndexOptions::builder()
            .token_hashing(TokenHashing::HmacSha256(HashKey::new(vec![0xaa; 131])))
            .build()
            .unwrap();
        assert_eq!(
            o.session_id("Test Using Larger Than Block-Size Key - Hash Key First")
                .unwrap(),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
        let shown = format!("{o:?}");
        assert!(shown.contains("redacted, 131 bytes"), "{shown}");
        assert!(!shown.contains("170"), "key bytes leaked: {shown}");
    }

    #[test]
    fn invalid_options_are_rejected_at_build() {
        let cases = [
            (
                SessionIndexOptions::builder().prefix(""),
                "key prefix is empty",
            ),
            (
                SessionIndexOptions::builder().session_namespace("a:b"),
                "\"a:b\"",
            ),
            (
                SessionIndexOptions::builder().user_sessions_namespace("session"),
                "both \"session\"",
            ),
            (
                SessionIndexOptions::builder().prefix("app:session:tenant:"),
                "\"session:\"",
            ),
            (
                SessionIndexOptions::builder().prefix("x:user_sessions:"),
                "\"user_sessions:\"",
            ),
            (
                SessionIndexOptions::builder().max_sessions_per_user(0),
                "max_sessions_per_user is 0",
            ),
            (
                SessionIndexOptions::builder()
                    .token_hashing(TokenHashing::HmacSha256(HashKey::new(vec![1; 31]))),
                "31 bytes",
            ),
        ];
        for (builder, needle) in cases {
            let e = builder.build().unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidConfig, "{e}");
            assert!(e.message().contains(needle), "{needle}: {e}");
        }
    }

    #[test]
    fn prefix_nesting_counts_only_at_a_boundary() {
        let build = |prefix: &str, session: &str| {
            SessionIndexOptions::builder()
                .prefix(prefix)
                .session_namespace(session)
                .build()
        };
        for (prefix, session) in [
            ("app:my-session:", "session"),
            ("app:my_session:", "session"),
            ("my-user_sessions:", "session"),
            ("app:sessions:", "session"),
            ("deadlock:", "session"),
            ("app:lock:", "session"),
            ("app:mysess:", "sess"),
            ("app:session:", "sess"),
        ] {
            let o = build(prefix, session).unwrap_or_else(|e| panic!("{prefix}: {e}"));
            assert_eq!(o.codec().prefix().as_str(), prefix);
        }
        // (prefix, session namespace, segment, the prefix it nests in, what its keys are)
        let refused = [
            (
                "app:session:",
                "session",
                "session:",
                "\"app:\"",
                "session keys",
            ),
            (
                "app/session:t:",
                "session",
                "session:",
                "\"app/\"",
                "session keys",
            ),
            (
                "app.user_sessions:",
                "session",
                "user_sessions:",
                "\"app.\"",
                "session-index",
            ),
            ("app:sess:", "sess", "sess:", "\"app:\"", "session keys"),
            (
                "session:",
                "session",
                "session:",
                "a client using no prefix",
                "session keys",
            ),
        ];
        for (prefix, session, segment, owner, what) in refused {
            let e = build(prefix, session).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidConfig, "{e}");
            let m = e.message();
            assert!(
                m.contains(&format!("{prefix:?} nests inside the {segment:?}")),
                "{m}"
            );
            assert!(m.contains(&format!("{what} ")) && m.contains(owner), "{m}");
        }
        assert_eq!(
            build("app:user_sessions:", "session")
                .unwrap_err()
                .message(),
            "key prefix \"app:user_sessions:\" nests inside the \"user_sessions:\" namespace \
             of prefix \"app:\": its keys would be session-index keys of \"app:\" (that \
             index's create, list and revoke_all would add to, read and delete them); choose \
             a prefix without \"user_sessions:\" after a separator"
        );
        assert_eq!(
            build("app:session:", "session").unwrap_err().message(),
            "key prefix \"app:session:\" nests inside the \"session:\" namespace of prefix \
             \"app:\": its keys would be session keys of \"app:\" (that index's get, refresh \
             and delete would read, rewrite and delete them); choose a prefix without \
             \"session:\" after a separator"
        );
    }

    #[test]
    fn token_validation() {
        let o = SessionIndexOptions::default();
        assert_eq!(
            o.session_id("").unwrap_err().kind(),
            ErrorKind::InvalidInput
        );
        let big = "t".repeat(KeyCodec::MAX_KEY_LEN + 1);
        assert!(o.session_id(&big).unwrap_err().message().contains("65537"));
        assert!(o.user_sessions_key("").is_err());
    }
}
