//! `sessionlog verify DIR`: the full check of a log, strictly read-only.
//!
//! `engine::inspect::verify` does the checking without the writer lock and
//! without modifying anything; `open_read_only` would stop at the first
//! damage, while an operator after an incident wants every problem listed.

use std::path::{Path, PathBuf};

use serde::Serialize;
use sessionlog::engine::inspect::{self, VerifyReport};

use super::stats::ProblemReport;
use crate::error::{CliResult, EXIT_FINDINGS};
use crate::logdir::require_log_dir;
use crate::output::{Out, count};
use crate::progress::Progress;

/// The `--json` document.
#[derive(Serialize)]
struct Report {
    dir: PathBuf,
    clean: bool,
    /// Whether opening the log would succeed (clean, or only a torn tail
    /// that opening cuts).
    openable: bool,
    /// Whether the newest segment ends in a close mark (format §5).
    closed_cleanly: bool,
    records: u64,
    segments: u64,
    problems: Vec<ProblemReport>,
}

/// Runs `verify`: exit 0 when clean, 1 when any problem was found.
pub fn run(dir: &Path, json: bool) -> CliResult<u8> {
    require_log_dir(dir)?;
    let report = {
        let bar = Progress::log_walk("verifying the log");
        inspect::verify_with_progress(dir, |p| bar.update(p))?
    };
    let mut out = Out::new();
    if json {
        out.json(&Report {
            dir: dir.to_path_buf(),
            clean: report.problems.is_empty(),
            openable: report.is_openable(),
            closed_cleanly: report.closed_cleanly,
            records: report.records,
            segments: report.segments,
            problems: report.problems.iter().map(ProblemReport::from).collect(),
        })?;
    } else {
        print_text(&mut out, dir, &report)?;
    }
    out.flush()?;
    Ok(if report.problems.is_empty() {
        0
    } else {
        EXIT_FINDINGS
    })
}

fn print_text(out: &mut Out, dir: &Path, report: &VerifyReport) -> CliResult<()> {
    let summary = format!(
        "{} in {}",
        count(report.records, "record"),
        count(report.segments, "segment")
    );
    if report.problems.is_empty() {
        let closed = if report.closed_cleanly {
            "closed cleanly"
        } else {
            "no close mark: a writer has it open, crashed, or predates format 4"
        };
        return out.line(&format!(
            "ok: {} is clean ({summary}; {closed})",
            dir.display()
        ));
    }
    out.line(&format!(
        "{} problem(s) in {} ({summary}):",
        report.problems.len(),
        dir.display()
    ))?;
    for p in &report.problems {
        out.line(&format!("  {p}"))?;
    }
    if report.is_openable() {
        out.line("only a torn tail (what a crash leaves): opening the log, or `sessionlog recover`, cuts it")
    } else {
        out.line("damage beyond a torn tail: the log cannot be opened as is; `sessionlog recover DIR --salvage OUT` copies every valid record into a new log")
    }
}
