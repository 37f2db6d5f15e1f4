//! Exit codes and the error a command ends with: one line on stderr, and with `--json` an
//! `{"error": {...}}` object on stdout, so scripts can rely on both.

use std::process::ExitCode;

use rustauth_kv::{ErrorKind, KvError};

/// The process exit codes, stable for scripts (also listed in `--help`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Exit {
    /// The command did what it was asked.
    Ok = 0,
    /// The operation failed: an error reply, a script error, unexpected data, or a
    /// declined confirmation.
    Failed = 1,
    /// Bad arguments or configuration; nothing was changed.
    Usage = 2,
    /// The server could not be reached or did not answer in time.
    Unavailable = 3,
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> ExitCode {
        ExitCode::from(exit as u8)
    }
}

/// Why a command failed.
#[derive(Debug)]
pub(crate) struct CliError {
    /// The exit code.
    pub(crate) exit: Exit,
    /// A stable machine name for `--json` (`unavailable`, `usage`, `server`, ...).
    pub(crate) kind: &'static str,
    /// What happened, naming the value or server at fault (never a password).
    pub(crate) message: String,
}

impl CliError {
    /// A usage error (exit 2).
    pub(crate) fn usage(message: impl Into<String>) -> Self {
        CliError {
            exit: Exit::Usage,
            kind: "usage",
            message: message.into(),
        }
    }

    /// The operator declined (exit 1).
    pub(crate) fn aborted(message: impl Into<String>) -> Self {
        CliError {
            exit: Exit::Failed,
            kind: "aborted",
            message: message.into(),
        }
    }

    /// Prints the error: one line on stderr, and the JSON object on stdout with `json`.
    pub(crate) fn report(&self, json: bool) {
        eprintln!("rustauth-kv: error: {}", self.message);
        if json {
            let doc = serde_json::json!({
                "error": { "kind": self.kind, "message": self.message, "exit_code": self.exit as u8 }
            });
            println!("{doc}");
        }
    }
}

impl From<KvError> for CliError {
    fn from(e: KvError) -> Self {
        let (exit, kind) = match e.kind() {
            ErrorKind::InvalidConfig => (Exit::Usage, "invalid_config"),
            ErrorKind::InvalidInput => (Exit::Usage, "invalid_input"),
            ErrorKind::Unavailable => (Exit::Unavailable, "unavailable"),
            ErrorKind::Timeout => (Exit::Unavailable, "timeout"),
            ErrorKind::Server => (Exit::Failed, "server"),
            ErrorKind::Script => (Exit::Failed, "script"),
            ErrorKind::UnexpectedData => (Exit::Failed, "unexpected_data"),
            _ => (Exit::Failed, "other"),
        };
        CliError {
            exit,
            kind,
            message: e.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_kind_has_its_exit_code() {
        for (kind, exit) in [
            (ErrorKind::InvalidConfig, Exit::Usage),
            (ErrorKind::InvalidInput, Exit::Usage),
            (ErrorKind::Unavailable, Exit::Unavailable),
            (ErrorKind::Timeout, Exit::Unavailable),
            (ErrorKind::Server, Exit::Failed),
            (ErrorKind::Script, Exit::Failed),
            (ErrorKind::UnexpectedData, Exit::Failed),
        ] {
            assert_eq!(
                CliError::from(KvError::new(kind, "x")).exit,
                exit,
                "{kind:?}"
            );
        }
        assert_eq!(Exit::Unavailable as u8, 3);
    }
}
