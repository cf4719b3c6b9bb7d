//! Progress on stderr for long operations, shown only when stderr is a
//! terminal so that scripts, pipes and tests see no escape sequences.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use sessionlog::engine::inspect;

/// A progress bar or spinner, or nothing when stderr is not a terminal.
/// Cleared from the screen when dropped.
pub struct Progress(Option<ProgressBar>);

impl Progress {
    /// A spinner with `message`, for work whose size is not known up front.
    pub fn spinner(message: &str) -> Progress {
        if !std::io::stderr().is_terminal() {
            return Progress(None);
        }
        let pb = ProgressBar::new_spinner();
        if let Ok(style) = ProgressStyle::with_template("{spinner} {msg} ({elapsed})") {
            pb.set_style(style);
        }
        pb.set_message(message.to_string());
        pb.enable_steady_tick(Duration::from_millis(100));
        Progress(Some(pb))
    }

    /// A bar over `total` bytes, with `message`.
    pub fn bytes(total: u64, message: &str) -> Progress {
        Progress::bytes_to(total, message, ProgressDrawTarget::stderr())
    }

    /// A bar over `total` bytes drawn to `target`, or nothing when stderr is
    /// not a terminal.
    fn bytes_to(total: u64, message: &str, target: ProgressDrawTarget) -> Progress {
        if !std::io::stderr().is_terminal() {
            return Progress(None);
        }
        let pb = ProgressBar::with_draw_target(Some(total), target);
        let template = "{msg} [{bar:40}] {bytes}/{total_bytes} ({eta})";
        if let Ok(style) = ProgressStyle::with_template(template) {
            pb.set_style(style.progress_chars("=> "));
        }
        pb.set_message(message.to_string());
        Progress(Some(pb))
    }

    /// A bar over the bytes of a log's segment files, with `message`, for
    /// the engine's `inspect::*_with_progress` walks: its length comes with
    /// their first report (see [`Progress::update`]), and it is not drawn
    /// before.
    pub fn log_walk(message: &str) -> Progress {
        Progress::bytes_to(0, message, ProgressDrawTarget::hidden())
    }

    /// Shows what an `inspect::*_with_progress` walk reported.
    pub fn update(&self, p: inspect::Progress) {
        if let Some(pb) = &self.0 {
            pb.set_length(p.bytes_total);
            pb.set_position(p.bytes_done);
            if pb.is_hidden() {
                pb.set_draw_target(ProgressDrawTarget::stderr());
            }
        }
    }

    /// Advances the bar by `n`.
    pub fn inc(&self, n: u64) {
        if let Some(pb) = &self.0 {
            pb.inc(n);
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Some(pb) = self.0.take() {
            pb.finish_and_clear();
        }
    }
}
