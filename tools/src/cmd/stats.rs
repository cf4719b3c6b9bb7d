//! `sessionlog stats DIR`: what a log holds, per segment and per session.
//!
//! Built on `engine::inspect::stats`, which walks the files without the
//! writer lock and without modifying anything (like `open_read_only`, but it
//! also copes with a damaged log, which is when an operator wants numbers).

use std::path::{Path, PathBuf};

use serde::Serialize;
use sessionlog::engine::inspect::{self, Problem, SegmentStats, SessionStats};

use crate::error::CliResult;
use crate::logdir::{SegmentFile, prepared_files, require_log_dir, segment_files};
use crate::output::Out;
use crate::progress::Progress;

/// The `--json` document.
#[derive(Serialize)]
struct Report {
    dir: PathBuf,
    /// The format version in the segment headers (`null` if none is readable).
    format_version: Option<u32>,
    segment_count: usize,
    total_events: u64,
    /// Bytes of all segment files.
    total_bytes: u64,
    /// Bytes of the valid records (headers and bodies).
    record_bytes: u64,
    session_count: usize,
    segments: Vec<SegmentReport>,
    /// Prepared segment files (a live writer's next segment, not part of
    /// the log; format §5).
    prepared: Vec<PreparedReport>,
    /// Only with `--sessions`.
    #[serde(skip_serializing_if = "Option::is_none")]
    sessions: Option<Vec<SessionReport>>,
    problems: Vec<ProblemReport>,
}

#[derive(Serialize)]
struct SegmentReport {
    file: PathBuf,
    segment: u64,
    size_bytes: u64,
    format_version: Option<u32>,
    events: u64,
    record_bytes: u64,
    first: Option<Position>,
    last: Option<Position>,
}

#[derive(Serialize)]
struct PreparedReport {
    file: PathBuf,
    size_bytes: u64,
}

#[derive(Serialize)]
struct Position {
    session_id: String,
    sequence: u64,
}

#[derive(Serialize)]
struct SessionReport {
    session_id: String,
    latest_sequence: u64,
    events: u64,
}

/// A problem as JSON (shared with `verify`).
#[derive(Serialize)]
pub struct ProblemReport {
    file: PathBuf,
    offset: u64,
    reason: String,
    torn_tail: bool,
}

impl From<&Problem> for ProblemReport {
    fn from(p: &Problem) -> ProblemReport {
        ProblemReport {
            file: p.file.clone(),
            offset: p.offset,
            reason: p.reason.clone(),
            torn_tail: p.torn_tail,
        }
    }
}

/// Runs `stats`.
pub fn run(dir: &Path, with_sessions: bool, json: bool) -> CliResult<u8> {
    require_log_dir(dir)?;
    let files = segment_files(dir)?;
    let stats = {
        let bar = Progress::log_walk("reading the log");
        inspect::stats_with_progress(dir, |p| bar.update(p))?
    };
    let prepared = prepared_files(dir)?
        .into_iter()
        .map(|(file, size_bytes)| PreparedReport { file, size_bytes })
        .collect();
    let report = build(dir, &files, prepared, &stats, with_sessions);
    let mut out = Out::new();
    if json {
        out.json(&report)?;
    } else {
        print_text(&mut out, &report)?;
    }
    out.flush()?;
    Ok(0)
}

fn build(
    dir: &Path,
    files: &[SegmentFile],
    prepared: Vec<PreparedReport>,
    stats: &inspect::Stats,
    with_sessions: bool,
) -> Report {
    let segments: Vec<SegmentReport> = stats
        .segments
        .iter()
        .map(|s| segment_report(s, files))
        .collect();
    Report {
        dir: dir.to_path_buf(),
        format_version: stats.format_version(),
        segment_count: segments.len(),
        total_events: stats.segments.iter().map(|s| s.records).sum(),
        total_bytes: files.iter().map(|f| f.size).sum(),
        record_bytes: stats.segments.iter().map(|s| s.record_bytes).sum(),
        session_count: stats.sessions.len(),
        segments,
        prepared,
        sessions: with_sessions.then(|| stats.sessions.iter().map(session_report).collect()),
        problems: stats.problems.iter().map(ProblemReport::from).collect(),
    }
}

fn segment_report(s: &SegmentStats, files: &[SegmentFile]) -> SegmentReport {
    let position = |p: &Option<(String, u64)>| {
        p.as_ref().map(|(session_id, sequence)| Position {
            session_id: session_id.clone(),
            sequence: *sequence,
        })
    };
    SegmentReport {
        file: s.file.clone(),
        segment: s.segment,
        size_bytes: files
            .iter()
            .find(|f| f.number == s.segment)
            .map_or(0, |f| f.size),
        format_version: s.format_version,
        events: s.records,
        record_bytes: s.record_bytes,
        first: position(&s.first),
        last: position(&s.last),
    }
}

fn session_report(s: &SessionStats) -> SessionReport {
    SessionReport {
        session_id: s.session_id.clone(),
        latest_sequence: s.latest_sequence,
        events: s.events,
    }
}

fn print_text(out: &mut Out, r: &Report) -> CliResult<()> {
    out.line(&format!("log directory   {}", r.dir.display()))?;
    let version = r
        .format_version
        .map_or_else(|| "unknown".to_string(), |v| v.to_string());
    out.line(&format!("format version  {version}"))?;
    out.line(&format!("segments        {}", r.segment_count))?;
    out.line(&format!("sessions        {}", r.session_count))?;
    out.line(&format!("events          {}", r.total_events))?;
    out.line(&format!(
        "bytes           {} on disk, {} in valid records",
        r.total_bytes, r.record_bytes
    ))?;
    for p in &r.prepared {
        let name = p.file.file_name().unwrap_or_default().to_string_lossy();
        out.line(&format!(
            "prepared        {name}, {} bytes (the writer's next segment, written ahead; not part of the log)",
            p.size_bytes
        ))?;
    }
    out.line("")?;
    out.line(&format!(
        "{:<26} {:>12} {:>9}  {:<28} {}",
        "SEGMENT", "BYTES", "EVENTS", "FIRST (session:seq)", "LAST (session:seq)"
    ))?;
    for s in &r.segments {
        let name = s.file.file_name().map_or_else(
            || s.file.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        out.line(&format!(
            "{name:<26} {:>12} {:>9}  {:<28} {}",
            s.size_bytes,
            s.events,
            position_text(&s.first),
            position_text(&s.last)
        ))?;
    }
    if let Some(sessions) = &r.sessions {
        out.line("")?;
        out.line(&format!(
            "{:<40} {:>16} {:>9}",
            "SESSION", "LATEST SEQUENCE", "EVENTS"
        ))?;
        for s in sessions {
            out.line(&format!(
                "{:<40} {:>16} {:>9}",
                s.session_id, s.latest_sequence, s.events
            ))?;
        }
    }
    if !r.problems.is_empty() {
        out.line("")?;
        out.line(&format!(
            "{} problem(s) found; run `sessionlog verify` for the full check",
            r.problems.len()
        ))?;
    }
    Ok(())
}

fn position_text(p: &Option<Position>) -> String {
    p.as_ref().map_or_else(
        || "-".to_string(),
        |p| format!("{}:{}", p.session_id, p.sequence),
    )
}
