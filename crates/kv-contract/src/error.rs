//! The one error type of rustauth-kv: a kind a caller can act on, a message that names the
//! bad value, and the client's own error kept as `source()`.
//!
//! Backends convert their client's error into a [`KvError`] at the boundary; everything
//! above them (stores, limiters, callers) sees only this type.

use std::error::Error as StdError;
use std::fmt;

/// A boxed error from a Redis client or the OS, kept as [`KvError`]'s `source()`.
pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// What went wrong, at the level a caller decides on.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// Options or a URL were rejected when built; nothing was sent. Fix the configuration.
    InvalidConfig,
    /// An argument of one call was rejected before any I/O (empty key, TTL too large, ...).
    InvalidInput,
    /// The server could not be reached, or the connection broke. Retrying later may work;
    /// the command may or may not have run if the connection broke mid-flight.
    Unavailable,
    /// The server did not answer within the configured timeout. Like `Unavailable`, the
    /// command may or may not have run.
    Timeout,
    /// The server answered with an error reply (`WRONGTYPE`, `NOAUTH`, `ERR ...`).
    Server,
    /// A Lua script failed on the server.
    Script,
    /// The server's reply, or a stored value, did not have the shape this crate wrote.
    UnexpectedData,
}

impl ErrorKind {
    /// A short lowercase name, used in `Display`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::InvalidConfig => "invalid configuration",
            ErrorKind::InvalidInput => "invalid input",
            ErrorKind::Unavailable => "server unavailable",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Server => "server error",
            ErrorKind::Script => "script error",
            ErrorKind::UnexpectedData => "unexpected data",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error of every rustauth-kv operation.
///
/// Messages never contain passwords: URLs are redacted before they are quoted.
#[derive(Debug, thiserror::Error)]
#[error("{kind}: {message}")]
pub struct KvError {
    kind: ErrorKind,
    message: String,
    #[source]
    source: Option<BoxError>,
}

impl KvError {
    /// An error of `kind` with a message and no source.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        KvError {
            kind,
            message: message.into(),
            source: None,
        }
    }

    /// An error of `kind` that keeps `source` (usually the client's error).
    pub fn with_source(
        kind: ErrorKind,
        message: impl Into<String>,
        source: impl Into<BoxError>,
    ) -> Self {
        KvError {
            kind,
            message: message.into(),
            source: Some(source.into()),
        }
    }

    /// Shorthand for [`ErrorKind::InvalidConfig`].
    pub fn invalid_config(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidConfig, message)
    }

    /// Shorthand for [`ErrorKind::InvalidInput`].
    pub fn invalid_input(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidInput, message)
    }

    /// Shorthand for [`ErrorKind::UnexpectedData`].
    pub fn unexpected(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::UnexpectedData, message)
    }

    /// The error for an error reply from the server, classified by its code: the
    /// transient states of a restarting or failing-over server (`LOADING`, `MASTERDOWN`,
    /// `CLUSTERDOWN`, `TRYAGAIN`, `READONLY` after a failover, `NOREPLICAS` from a
    /// primary cut off from its replicas under `min-replicas-to-write`) are
    /// [`ErrorKind::Unavailable`]; every other reply is [`ErrorKind::Server`]. Both
    /// backends use this, so they classify replies identically.
    pub fn server_reply(reply: impl Into<String>, source: Option<BoxError>) -> Self {
        let message: String = reply.into();
        let code = message.split_whitespace().next().unwrap_or("");
        let kind = match code {
            "LOADING" | "MASTERDOWN" | "CLUSTERDOWN" | "TRYAGAIN" | "READONLY" | "NOREPLICAS" => {
                ErrorKind::Unavailable
            }
            _ => ErrorKind::Server,
        };
        KvError {
            kind,
            message,
            source,
        }
    }

    /// What went wrong.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The same error (kind and source kept) with its message rewritten by `f`.
    pub fn map_message(mut self, f: impl FnOnce(String) -> String) -> Self {
        self.message = f(std::mem::take(&mut self.message));
        self
    }

    /// Whether `details`, the text a client reports with an error, is a server's error
    /// reply (`ERR ...`, `WRONGTYPE ...`, `NOSCRIPT ...`): its first word is an error code
    /// of capital letters, digits or `_`. A client's own failure ("Failed to route
    /// command.", "Too many failed write attempts.") is not, so a backend whose client
    /// reports both under one kind tells them apart with this.
    pub fn is_server_reply_text(details: &str) -> bool {
        let code = details.split_whitespace().next().unwrap_or("");
        code.len() >= 2
            && code.bytes().next().is_some_and(|b| b.is_ascii_uppercase())
            && code
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
    }

    /// The message, without the kind.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// For [`ErrorKind::Server`] and [`ErrorKind::Script`]: the error code the server put
    /// first in its reply (`WRONGTYPE`, `NOSCRIPT`, `ERR`, ...).
    pub fn server_code(&self) -> Option<&str> {
        match self.kind {
            ErrorKind::Server | ErrorKind::Script => self
                .message
                .split_whitespace()
                .next()
                .filter(|w| !w.is_empty() && w.bytes().all(|b| b.is_ascii_uppercase())),
            _ => None,
        }
    }

    /// True when the server said it does not have the script (`NOSCRIPT`): the script did
    /// not run, so sending its source with `EVAL` is safe.
    pub fn is_noscript(&self) -> bool {
        self.server_code() == Some("NOSCRIPT")
    }

    /// True for [`ErrorKind::Unavailable`] and [`ErrorKind::Timeout`]: the server was not
    /// reached or did not answer, and a later call may succeed.
    pub fn is_unavailable(&self) -> bool {
        matches!(self.kind, ErrorKind::Unavailable | ErrorKind::Timeout)
    }
}

/// The result type of rustauth-kv.
pub type KvResult<T> = Result<T, KvError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_code_is_the_first_uppercase_word() {
        let e = KvError::new(ErrorKind::Server, "NOSCRIPT No matching script.");
        assert_eq!(e.server_code(), Some("NOSCRIPT"));
        assert!(e.is_noscript());
        let e = KvError::new(ErrorKind::Server, "value is not an integer");
        assert_eq!(e.server_code(), None);
        let e = KvError::new(ErrorKind::Timeout, "NOSCRIPT");
        assert_eq!(e.server_code(), None, "only server replies carry a code");
    }

    #[test]
    fn server_replies_are_classified_by_code() {
        let table = [
            ("NOSCRIPT No matching script", ErrorKind::Server),
            ("WRONGTYPE Operation against a key", ErrorKind::Server),
            (
                "LOADING Redis is loading the dataset",
                ErrorKind::Unavailable,
            ),
            (
                "READONLY You can't write against a read only replica.",
                ErrorKind::Unavailable,
            ),
            (
                "NOREPLICAS Not enough good replicas to write.",
                ErrorKind::Unavailable,
            ),
            ("ERR unknown command 'GETDEL'", ErrorKind::Server),
        ];
        for (text, kind) in table {
            let e = KvError::server_reply(text, None);
            assert_eq!(e.kind(), kind, "{text}");
            assert_eq!(e.message(), text);
        }
    }

    #[test]
    fn server_reply_text_is_told_from_client_failures() {
        for reply in [
            "ERR unknown command",
            "WRONGTYPE Operation against a key holding the wrong kind of value",
            "NOSCRIPT No matching script.",
            "OOM command not allowed when used memory > 'maxmemory'.",
            "NOAUTH Authentication required.",
            "WRONGPASS invalid username-password pair",
            "BUSY Redis is busy running a script.",
        ] {
            assert!(KvError::is_server_reply_text(reply), "{reply}");
        }
        // fred's own failures, reported with the same kind as server replies.
        for client in [
            "Failed to route command.",
            "Too many failed write attempts.",
            "Failed to send command to router.",
            "",
            "No response!",
            "E",
        ] {
            assert!(!KvError::is_server_reply_text(client), "{client}");
        }
    }

    #[test]
    fn display_names_kind_and_message_and_keeps_source() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let e = KvError::with_source(ErrorKind::Unavailable, "connect to 127.0.0.1:1", io);
        assert_eq!(e.to_string(), "server unavailable: connect to 127.0.0.1:1");
        assert_eq!(StdError::source(&e).unwrap().to_string(), "refused");
        assert!(e.is_unavailable());
    }
}
