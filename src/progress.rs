//! Progress of long commands: an `indicatif` bar or spinner on standard error when it is a
//! terminal, and nothing at all otherwise, so cron mail, pipes and scripts get exactly the command's
//! own output (no escape codes, no carriage returns).

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Whether progress is shown: standard error is a terminal.
pub fn shown() -> bool {
    std::io::stderr().is_terminal()
}

/// A bar of `total` steps labelled `message`; hidden when standard error is not a terminal.
pub fn bar(total: u64, message: &'static str) -> ProgressBar {
    if !shown() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
    // The template is a constant: a mistake in it would show at the first run of any test of it.
    if let Ok(style) = ProgressStyle::with_template("{msg} [{wide_bar}] {human_pos}/{human_len} ({eta})") {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(message);
    bar
}

/// A spinner labelled `message` for work of unknown size; hidden when standard error is not a
/// terminal. It turns by itself (work inside one database statement cannot report progress).
pub fn spinner(message: &'static str) -> ProgressBar {
    if !shown() {
        return ProgressBar::hidden();
    }
    let spinner = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template("{spinner} {msg} ({elapsed})") {
        spinner.set_style(style);
    }
    spinner.set_message(message);
    spinner.enable_steady_tick(Duration::from_millis(100));
    spinner
}
