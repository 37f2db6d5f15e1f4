//! `rustauth-kv`, the operator CLI of rustauth-kv: health (`ping`, `info`), what the
//! prefix holds (`inspect`), deleting a namespace (`clear`), sessions and rate-limit
//! buckets. Every command is a thin shell over the stores of a [`rustauth_kv::Kv`] bundle
//! and the operator operations of `kv_contract::admin`; this crate only parses
//! arguments, asks for confirmation, draws progress and prints results.

mod cli;
mod commands;
mod connect;
mod exit;
mod progress;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::Cli;
use crate::exit::{CliError, Exit};

/// What a command prints when it succeeds: a JSON document for `--json`, text otherwise.
pub(crate) struct Outcome {
    json: serde_json::Value,
    text: String,
}

impl Outcome {
    pub(crate) fn new(json: serde_json::Value, text: impl Into<String>) -> Self {
        Outcome {
            json,
            text: text.into(),
        }
    }
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(e),
    };
    let json = cli.global.json;
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            CliError {
                exit: Exit::Failed,
                kind: "runtime",
                message: format!("cannot start the async runtime: {e}"),
            }
            .report(json);
            return Exit::Failed.into();
        }
    };
    match runtime.block_on(commands::run(cli)) {
        Ok(outcome) => {
            if json {
                println!("{}", outcome.json);
            } else if !outcome.text.is_empty() {
                println!("{}", outcome.text.trim_end());
            }
            Exit::Ok.into()
        }
        Err(e) => {
            e.report(json);
            e.exit.into()
        }
    }
}

/// clap's own errors exit 2 (help and version exit 0); with `--json` among the arguments
/// the JSON error object is printed too.
fn usage_error(e: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
        let _ = e.print();
        return Exit::Ok.into();
    }
    let _ = e.print();
    if std::env::args().any(|a| a == "--json") {
        let message = e.render().to_string();
        let first = message.lines().next().unwrap_or("invalid arguments");
        let first = first.strip_prefix("error: ").unwrap_or(first);
        let doc = serde_json::json!({
            "error": { "kind": "usage", "message": first, "exit_code": Exit::Usage as u8 }
        });
        println!("{doc}");
    }
    Exit::Usage.into()
}
