//! Progress on stderr for commands that walk the keyspace: an indicatif spinner on a
//! terminal, plain lines (at most a few per second) when `--progress always` and stderr
//! is not one, nothing otherwise. Never on stdout, which is for results.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use rustauth_kv::kv_contract::admin::Progress;

use crate::cli::ProgressArg;

/// How often plain progress lines are printed at most.
const LINE_EVERY: Duration = Duration::from_millis(200);

/// Where progress goes.
pub(crate) enum Reporter {
    /// A spinner with counters on a terminal.
    Bar(ProgressBar),
    /// `rustauth-kv: {what}: scanned N, deleted M` lines.
    Lines { what: String, last: Option<Instant> },
    /// Nowhere.
    Quiet,
}

impl Reporter {
    /// Chooses from `--progress`, `--json` and whether stderr is a terminal.
    pub(crate) fn new(mode: ProgressArg, json: bool, what: &str) -> Reporter {
        let tty = std::io::stderr().is_terminal();
        match mode {
            ProgressArg::Never => Reporter::Quiet,
            ProgressArg::Auto if json || !tty => Reporter::Quiet,
            ProgressArg::Always if !tty => Reporter::Lines {
                what: what.to_owned(),
                last: None,
            },
            _ => {
                let bar =
                    ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr_with_hz(10));
                let style = ProgressStyle::with_template("{spinner} {prefix}: {msg} [{elapsed}]")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner());
                bar.set_style(style);
                bar.set_prefix(what.to_owned());
                bar.enable_steady_tick(Duration::from_millis(100));
                Reporter::Bar(bar)
            }
        }
    }

    /// Reports `p`; `deletes` says whether the deleted count means anything.
    pub(crate) fn update(&mut self, p: Progress, deletes: bool) {
        self.update_text(describe(p, deletes));
    }

    /// Reports a state already described.
    pub(crate) fn update_text(&mut self, text: String) {
        match self {
            Reporter::Bar(bar) => bar.set_message(text),
            Reporter::Lines { what, last } => {
                if last.is_none_or(|t| t.elapsed() >= LINE_EVERY) {
                    eprintln!("rustauth-kv: {what}: {text}");
                    *last = Some(Instant::now());
                }
            }
            Reporter::Quiet => {}
        }
    }

    /// Prints the final state and removes the bar.
    pub(crate) fn finish(self, p: Progress, deletes: bool) {
        self.finish_text(describe(p, deletes));
    }

    /// Prints a final state already described and removes the bar.
    pub(crate) fn finish_text(self, text: String) {
        match self {
            Reporter::Bar(bar) => bar.finish_and_clear(),
            Reporter::Lines { what, .. } => eprintln!("rustauth-kv: {what}: {text} (done)"),
            Reporter::Quiet => {}
        }
    }
}

fn describe(p: Progress, deletes: bool) -> String {
    if deletes {
        format!("scanned {}, deleted {}", p.scanned, p.deleted)
    } else {
        format!("scanned {}", p.scanned)
    }
}
