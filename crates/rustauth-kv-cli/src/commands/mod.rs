//! One module per command group; [`run`] connects and dispatches. Each command returns an
//! [`Outcome`] (JSON and text) or a [`CliError`], and prints nothing to stdout itself.

mod clear;
mod health;
mod inspect;
mod migrate;
mod ratelimit;
mod sessions;

use crate::cli::{Cli, Cmd};
use crate::connect;
use crate::exit::CliError;
use crate::Outcome;

/// Runs the parsed command line.
pub(crate) async fn run(cli: Cli) -> Result<Outcome, CliError> {
    let global = cli.global;
    let mut builder = connect::options(&global)?;
    if let Cmd::Ratelimit { command } = &cli.command {
        builder = ratelimit::configure(builder, command);
    }
    if let Cmd::Sessions { command } = &cli.command {
        builder = sessions::configure(builder, command);
    }
    let kv = connect::connect(builder).await?;
    let result = match cli.command {
        Cmd::Ping => health::ping(&kv).await,
        Cmd::Info => health::info(&kv).await,
        Cmd::Inspect { sample, max_keys } => inspect::run(&kv, &global, sample, max_keys).await,
        Cmd::Clear {
            namespace,
            yes,
            rate,
        } => clear::run(&kv, &global, &namespace, yes, rate).await,
        Cmd::Sessions { command } => sessions::run(&kv, command).await,
        Cmd::Ratelimit { command } => ratelimit::run(&kv, command).await,
        Cmd::Migrate { command } => migrate::run(&kv, &global, command).await,
    };
    // The result is what counts; a failed close after it changes nothing for the caller.
    let _ = kv.close().await;
    result
}

/// Milliseconds with three decimals, for latencies.
pub(crate) fn millis(d: std::time::Duration) -> f64 {
    (d.as_secs_f64() * 1_000_000.0).round() / 1000.0
}
