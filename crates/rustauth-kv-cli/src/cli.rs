//! The command line, declared with clap's derive: its `--help` is the CLI's documentation,
//! exit codes included.

use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// The exit codes, shown at the end of `--help`.
const AFTER_HELP: &str = "\
Exit codes:
  0  success
  1  the operation failed (a server error reply, a script error, unexpected data, or a
     confirmation that was declined)
  2  usage or configuration error (bad arguments, no URL, unknown namespace, `clear`
     without --yes and without a terminal)
  3  server unavailable or timed out

Errors are one line on stderr: `rustauth-kv: error: ...`. With --json, stdout also gets
{\"error\": {\"kind\": ..., \"message\": ...}}. Passwords in URLs are never printed.";

/// Operator CLI for rustauth-kv: the Redis/Valkey layer of an auth stack.
#[derive(Debug, Parser)]
#[command(name = "rustauth-kv", version, after_long_help = AFTER_HELP, after_help = AFTER_HELP)]
pub(crate) struct Cli {
    #[command(flatten)]
    pub(crate) global: Global,
    #[command(subcommand)]
    pub(crate) command: Cmd,
}

/// Options every command takes.
#[derive(Debug, Args)]
pub(crate) struct Global {
    /// The server URL (redis://, rediss://, valkey://, unix://). Read from RUSTAUTH_KV_URL,
    /// then REDIS_URL, when not given.
    #[arg(long, global = true, env = "RUSTAUTH_KV_URL", hide_env_values = true)]
    pub(crate) url: Option<String>,
    /// The key prefix of the deployment.
    #[arg(
        long,
        global = true,
        env = "RUSTAUTH_KV_PREFIX",
        default_value = "rustauth:"
    )]
    pub(crate) prefix: String,
    /// The client library used to talk to the server.
    #[arg(
        long,
        global = true,
        env = "RUSTAUTH_KV_BACKEND",
        value_enum,
        default_value_t = BackendArg::Redis
    )]
    pub(crate) backend: BackendArg,
    /// Print one JSON document on stdout instead of text (errors too).
    #[arg(long, global = true)]
    pub(crate) json: bool,
    /// Connect and command timeout, in seconds (default: connect 5 s, command 2 s).
    #[arg(long, global = true, value_parser = parse_secs)]
    pub(crate) timeout: Option<Duration>,
    /// Progress on stderr: `auto` draws a bar when stderr is a terminal and --json is
    /// off; `always` also prints plain progress lines when it is not; `never` is quiet.
    #[arg(long, global = true, value_enum, default_value_t = ProgressArg::Auto)]
    pub(crate) progress: ProgressArg,
}

/// `--backend`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum BackendArg {
    /// redis-rs.
    Redis,
    /// fred.
    Fred,
}

/// `--progress`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum ProgressArg {
    /// A bar on a terminal, nothing otherwise.
    Auto,
    /// A bar on a terminal, plain lines otherwise.
    Always,
    /// Nothing.
    Never,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub(crate) enum Cmd {
    /// PING the server and print the round-trip time.
    Ping,
    /// Server kind (Redis/Valkey), version, mode, latency, and the prefix in use.
    Info,
    /// Keys and estimated memory per namespace under the prefix (SCAN, sampled MEMORY USAGE).
    Inspect {
        /// Keys measured with MEMORY USAGE per namespace (0: no memory estimate).
        #[arg(long, default_value_t = 32)]
        sample: u32,
        /// Stop after scanning this many keys (the report then says it is partial).
        #[arg(long, default_value_t = 1_000_000)]
        max_keys: u64,
    },
    /// Delete every key of one namespace (secondary, rate-limit, lock, session,
    /// user_sessions) in batches of at most 1000 keys.
    Clear {
        /// The namespace to delete.
        namespace: String,
        /// Do not ask for confirmation (required when stdin is not a terminal).
        #[arg(long, short = 'y')]
        yes: bool,
        /// Delete at most this many keys per second.
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
        rate: Option<u64>,
    },
    /// The per-user session index.
    Sessions {
        #[command(subcommand)]
        command: SessionsCmd,
    },
    /// Rate-limit buckets.
    Ratelimit {
        #[command(subcommand)]
        command: RatelimitCmd,
    },
    /// Copy data between layouts.
    Migrate {
        #[command(subcommand)]
        command: MigrateCmd,
    },
}

/// `migrate ...`.
#[derive(Debug, Subcommand)]
pub(crate) enum MigrateCmd {
    /// Copy Better Auth's sessions, `active-sessions-*` indexes, revocation watermarks and
    /// `verification:*` values from its flat layout (`{keyPrefix}{key}`) into the
    /// namespaced layout of --prefix (`{prefix}secondary:{key}`), or back with --reverse.
    /// Each key keeps its remaining TTL; keys already at the destination are left alone
    /// (idempotent: re-run to resume); other keys (rate-limit records) are skipped.
    BetterAuth {
        /// Better Auth's `keyPrefix`.
        #[arg(long, default_value = "better-auth:")]
        better_auth_prefix: String,
        /// Copy from the namespaced layout back into Better Auth's.
        #[arg(long)]
        reverse: bool,
        /// Count what would be copied; write nothing.
        #[arg(long)]
        dry_run: bool,
        /// Start the SCAN at this cursor (`node:cursor`, printed by an interrupted run).
        #[arg(long)]
        resume_cursor: Option<String>,
        /// Keys per SCAN page (memory is bounded by one page).
        #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=100_000))]
        scan_count: u32,
    },
}

/// `sessions ...`.
#[derive(Debug, Subcommand)]
pub(crate) enum SessionsCmd {
    /// The user's live sessions, soonest expiry first.
    List {
        /// The user id.
        user: String,
    },
    /// Revoke every session of the user (but the one of --except).
    Revoke {
        /// The user id.
        user: String,
        /// Keep the session of this token.
        #[arg(long)]
        except: Option<String>,
        /// How the application stores tokens (for --except).
        #[arg(long, value_enum, default_value_t = TokenHashingArg::Off)]
        token_hashing: TokenHashingArg,
    },
    /// Revoke one session by its id (as `sessions list` prints it).
    RevokeId {
        /// The session id.
        id: String,
    },
}

/// `--token-hashing`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum TokenHashingArg {
    /// Session ids are the tokens.
    Off,
    /// Session ids are the SHA-256 of the tokens.
    Sha256,
}

/// `ratelimit ...`.
#[derive(Debug, Subcommand)]
pub(crate) enum RatelimitCmd {
    /// Whether one more request would be allowed now, without consuming it.
    Peek {
        /// The bucket (e.g. `203.0.113.7|/sign-in`).
        bucket: String,
        /// The rule's window, in seconds.
        #[arg(long)]
        window: u64,
        /// The rule's maximum per window.
        #[arg(long)]
        max: u64,
        /// The algorithm the application uses.
        #[arg(long, value_enum, default_value_t = AlgorithmArg::FixedWindow)]
        algorithm: AlgorithmArg,
    },
    /// Empty the bucket (delete its key).
    Reset {
        /// The bucket.
        bucket: String,
    },
}

/// `--algorithm`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum AlgorithmArg {
    /// Fixed window counter.
    FixedWindow,
    /// Sliding window (two weighted buckets).
    SlidingWindow,
    /// GCRA with a burst of `max`.
    Gcra,
    /// Better Auth 1.6 "last request".
    LastRequest,
}

fn parse_secs(text: &str) -> Result<Duration, String> {
    let secs: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a number of seconds"))?;
    if !(secs > 0.0 && secs <= 3600.0) {
        return Err(format!(
            "{text:?} is out of range: above 0, at most 3600 seconds"
        ));
    }
    Ok(Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn timeouts_are_positive_seconds() {
        assert_eq!(parse_secs("1.5").unwrap(), Duration::from_millis(1500));
        for bad in ["0", "-1", "x", "7200", "NaN"] {
            assert!(parse_secs(bad).is_err(), "{bad}");
        }
    }
}
