//! `sessionlog recover DIR [--salvage OUT]`: repair in place what opening
//! repairs (a torn tail), and optionally copy every valid record into a new,
//! clean log, reporting what was lost.
//!
//! The in-place repair is exactly the engine's recovery on open
//! (`RecoveryMode::TolerateTail`): the tool opens the log for writing, which
//! takes the writer lock and cuts the torn tail, and closes it. What was cut
//! is found by comparing `inspect::verify` and the file sizes before and
//! after. Damage beyond a torn tail is never "repaired" by deleting: the
//! original stays as it is and `--salvage` makes a clean copy.

use std::path::Path;

use sessionlog::LogStore;
use sessionlog::engine::inspect::{self, SalvageReport, VerifyReport};
use sessionlog::format::segment::SEGMENT_HEADER_LEN;

use crate::error::{CliError, CliResult, EXIT_FINDINGS};
use crate::logdir::{SegmentFile, require_log_dir, segment_files};
use crate::output::{Out, count};
use crate::progress::Progress;

/// Runs `recover`: exit 0 when the log is clean afterwards (or salvaged),
/// 1 when damage remains that was not salvaged.
pub fn run(dir: &Path, salvage: Option<&Path>) -> CliResult<u8> {
    require_log_dir(dir)?;
    if let Some(out) = salvage {
        require_new_dir(out)?;
    }
    let before = verify(dir, "checking the log")?;
    let mut out = Out::new();
    let code = if before.is_openable() {
        repair_tail(dir, &before, salvage, &mut out)?
    } else {
        damaged(dir, &before, salvage, &mut out)?
    };
    out.flush()?;
    Ok(code)
}

/// The salvage target must be new: missing, or an empty directory.
fn require_new_dir(out: &Path) -> CliResult<()> {
    if out.exists() && !out.is_dir() {
        return Err(CliError::new(format!(
            "salvage target {} is not a directory",
            out.display()
        )));
    }
    let entries = match std::fs::read_dir(out) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => {
            return Err(CliError::new(format!(
                "cannot read salvage target {}: {e}",
                out.display()
            )));
        }
        Ok(entries) => entries,
    };
    if entries.count() > 0 {
        return Err(CliError::new(format!(
            "salvage target {} is not empty; choose a new directory",
            out.display()
        )));
    }
    Ok(())
}

/// The log opens (clean or a torn tail): open and close it to cut the
/// tail, salvaging while the lock is held if asked.
fn repair_tail(
    dir: &Path,
    before: &VerifyReport,
    salvage: Option<&Path>,
    out: &mut Out,
) -> CliResult<u8> {
    let sizes_before = segment_files(dir)?;
    let store = {
        let _spinner = Progress::spinner("opening the log (recovery)");
        LogStore::open(dir)?
    };
    let salvaged = match salvage {
        Some(target) => Some(run_salvage(dir, target)?),
        None => None,
    };
    store.close()?;
    report_cut(dir, before, &sizes_before, out)?;
    let after = verify(dir, "checking the repaired log")?;
    let code = report_after(dir, &after, out)?;
    if let (Some(target), Some(report)) = (salvage, salvaged) {
        report_salvage(target, &report, out)?;
    }
    Ok(code)
}

/// Damage beyond a torn tail: nothing is changed in place; with a target,
/// every valid record is copied out under the writer lock.
fn damaged(
    dir: &Path,
    before: &VerifyReport,
    salvage: Option<&Path>,
    out: &mut Out,
) -> CliResult<u8> {
    out.line(&format!(
        "{} has damage that opening does not repair:",
        dir.display()
    ))?;
    for p in &before.problems {
        out.line(&format!("  {p}"))?;
    }
    let Some(target) = salvage else {
        out.line("nothing was changed. `sessionlog recover DIR --salvage OUT` copies every valid record into a new log OUT and reports what was lost")?;
        return Ok(EXIT_FINDINGS);
    };
    let report = {
        // Keeps writers away while the damaged log is read (what
        // `LogStore::open` would take; a conflict is `Error::Locked`).
        let _lock = inspect::lock_dir(dir)?;
        run_salvage(dir, target)?
    };
    report_salvage(target, &report, out)?;
    out.line(&format!(
        "the original log in {} is unchanged; once you have checked {}, put it in its place \
         (or open the original with RecoveryMode::Salvage, which does that swap and keeps the damaged files in a damaged-N subdirectory)",
        dir.display(),
        target.display()
    ))?;
    Ok(0)
}

fn run_salvage(dir: &Path, target: &Path) -> CliResult<SalvageReport> {
    let bar = Progress::log_walk("salvaging valid records");
    Ok(inspect::salvage_with_progress(dir, target, |p| {
        bar.update(p)
    })?)
}

/// `inspect::verify` with a progress bar.
fn verify(dir: &Path, message: &str) -> CliResult<VerifyReport> {
    let bar = Progress::log_walk(message);
    Ok(inspect::verify_with_progress(dir, |p| bar.update(p))?)
}

/// Says which torn tails were found and how many bytes opening cut.
fn report_cut(
    dir: &Path,
    before: &VerifyReport,
    sizes_before: &[SegmentFile],
    out: &mut Out,
) -> CliResult<()> {
    if before.problems.is_empty() {
        return out.line(&format!("{} had nothing to repair", dir.display()));
    }
    for p in &before.problems {
        out.line(&format!("torn tail: {p}"))?;
    }
    let sizes_after = segment_files(dir)?;
    for old in sizes_before {
        let now = sizes_after
            .iter()
            .find(|s| s.number == old.number)
            .map_or(0, |s| s.size);
        if let Some(line) = cut_line(before, old, now) {
            out.line(&line)?;
        }
    }
    Ok(())
}

/// What opening did to segment `old`, now `now` bytes long, if anything.
fn cut_line(before: &VerifyReport, old: &SegmentFile, now: u64) -> Option<String> {
    // Where opening cut: the first torn-tail problem of the file (the torn
    // record, or the start of its unfinished batch).
    let cut_at = before
        .problems
        .iter()
        .filter(|p| p.torn_tail && p.file == old.path)
        .map(|p| p.offset)
        .min()
        .filter(|&at| at >= SEGMENT_HEADER_LEN as u64 && at < old.size);
    let file = old.path.display();
    match cut_at {
        // Closing then ended the log with a close mark (format §5).
        Some(at) if now > at => Some(format!(
            "cut {} bytes from {file} at byte offset {at} (with the close mark of a clean close, it now ends at byte offset {now})",
            old.size - at
        )),
        _ if now < old.size => Some(format!(
            "cut {} bytes from {file} (it now ends at byte offset {now})",
            old.size - now
        )),
        _ => None,
    }
}

fn report_after(dir: &Path, after: &VerifyReport, out: &mut Out) -> CliResult<u8> {
    if after.problems.is_empty() {
        out.line(&format!(
            "ok: {} is clean ({} in {})",
            dir.display(),
            count(after.records, "record"),
            count(after.segments, "segment")
        ))?;
        return Ok(0);
    }
    out.line(&format!(
        "{} still has {} problem(s):",
        dir.display(),
        after.problems.len()
    ))?;
    for p in &after.problems {
        out.line(&format!("  {p}"))?;
    }
    Ok(EXIT_FINDINGS)
}

fn report_salvage(target: &Path, r: &SalvageReport, out: &mut Out) -> CliResult<()> {
    out.line(&format!(
        "salvaged {} events into {}",
        r.copied,
        target.display()
    ))?;
    if r.duplicates > 0 {
        out.line(&format!(
            "skipped {} records whose event id was already copied",
            r.duplicates
        ))?;
    }
    if r.lost.is_empty() {
        out.line("lost: nothing detectable (records after a session's last valid record cannot be detected)")?;
    } else {
        out.line("lost (original sequence numbers no valid record holds any more):")?;
        for l in &r.lost {
            out.line(&format!(
                "  session {:?}: sequences {}",
                l.session_id,
                range_text(l.first, l.last)
            ))?;
        }
    }
    for n in &r.renumbered {
        out.line(&format!(
            "renumbered: session {:?}: original sequence {} is now {}, and its later events shift the same way",
            n.session_id, n.original, n.now
        ))?;
    }
    Ok(())
}

fn range_text(first: u64, last: u64) -> String {
    if first == last {
        first.to_string()
    } else {
        format!("{first}-{last}")
    }
}
