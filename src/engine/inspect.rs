//! Looking into a log directory without opening it as a store, for the
//! command-line tool: every record with its file and offset ([`scan`]), a
//! full check ([`verify`]), statistics ([`stats`]) and a copy of every valid
//! record into a clean new log ([`salvage`]).
//!
//! None of these take the directory lock or modify the directory they read,
//! so they can run next to a live writer (they then see a snapshot, possibly
//! with an incomplete tail the writer is still writing).
//!
//! ```
//! use sessionlog::{Event, EventType, LogStore, SessionStore};
//! use sessionlog::engine::inspect;
//! let dir = tempfile::tempdir()?;
//! let store = LogStore::open(dir.path())?;
//! store.append_event_with_sequence(Event::new("s", EventType::RunStarted))?;
//! store.close()?;
//! let report = inspect::verify(dir.path())?;
//! assert!(report.problems.is_empty());
//! assert_eq!(report.records, 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};

use super::hash::FastHash;
use super::io::Io;
use super::scan::{Found, next_valid_record, parse_found};
use crate::error::{Error, Result};
use crate::event::EventType;
use crate::format::record::{RECORD_HEADER_LEN, pack_position};
use crate::format::segment::{
    SEGMENT_HEADER_LEN, SegmentHeaderError, decode_segment_header, parse_segment_file_name,
    segment_file_name,
};

pub use super::salvage::{LostRange, Renumbered, SalvageReport, salvage};

/// Something wrong in a log directory, and where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// The file concerned (for a missing segment: the name it should have).
    pub file: PathBuf,
    /// The byte offset of the damage in `file`.
    pub offset: u64,
    /// What is wrong.
    pub reason: String,
    /// Whether this is the newest segment's torn tail, which is what a crash
    /// leaves behind and what opening the log cuts (`RecoveryMode::TolerateTail`).
    pub torn_tail: bool,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let tail = if self.torn_tail { " (torn tail)" } else { "" };
        write!(
            f,
            "{} at byte offset {}: {}{tail}",
            self.file.display(),
            self.offset,
            self.reason
        )
    }
}

/// One valid record, as [`scan`] reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordInfo {
    /// The segment file holding it.
    pub file: PathBuf,
    /// The segment number.
    pub segment: u64,
    /// Its byte offset in `file`.
    pub offset: u64,
    /// Its length in bytes (header and body).
    pub len: u64,
    /// Its session.
    pub session_id: String,
    /// Its sequence number in the session.
    pub sequence: u64,
    /// The event id.
    pub event_id: String,
    /// The event type.
    pub event_type: EventType,
    /// Whether the next record belongs to the same batch.
    pub batch_continues: bool,
}

/// One valid record found by the walk, borrowed from the segment's bytes.
pub(crate) struct Walked<'a> {
    pub file: &'a Path,
    pub segment: u64,
    pub found: Found<'a>,
    pub body: &'a [u8],
}

/// What the walk hands its visitor.
pub(crate) enum Visit<'a, 'b> {
    Record(&'b Walked<'a>),
    /// Damage or a segment's end: a batch open before it is broken.
    Break,
}

/// Walks every segment file of `dir` in number order, record by record,
/// skipping over damage to the next valid record. Returns the problems; a
/// segment of an unsupported format version is an error, not a problem.
pub(crate) fn walk(dir: &Path, mut visit: impl FnMut(Visit<'_, '_>)) -> Result<Vec<Problem>> {
    let io = Io::default();
    let mut numbers: Vec<u64> = io
        .list_dir(dir)?
        .iter()
        .filter_map(|n| n.to_str().and_then(parse_segment_file_name))
        .collect();
    numbers.sort_unstable();
    let mut problems = Vec::new();
    let mut expected = 1;
    for (i, &n) in numbers.iter().enumerate() {
        for missing in expected..n {
            problems.push(problem(
                &dir.join(segment_file_name(missing)),
                0,
                "segment file is missing",
                false,
            ));
        }
        expected = n + 1;
        let path = dir.join(segment_file_name(n));
        let file = io.open_ro(&path)?;
        let bytes = io.read_from(&file, &path, 0)?;
        if let Err(e @ SegmentHeaderError::UnsupportedVersion(_)) = decode_segment_header(&bytes) {
            // Not damage: a format this build cannot read at all.
            return Err(Error::corrupt(&path, 8, e.to_string()));
        }
        let newest = i + 1 == numbers.len();
        walk_segment(&path, n, &bytes, newest, &mut visit, &mut problems);
        visit(Visit::Break);
    }
    Ok(problems)
}

fn problem(file: &Path, offset: u64, reason: impl Into<String>, torn_tail: bool) -> Problem {
    Problem {
        file: file.to_path_buf(),
        offset,
        reason: reason.into(),
        torn_tail,
    }
}

fn walk_segment(
    path: &Path,
    n: u64,
    bytes: &[u8],
    newest: bool,
    visit: &mut impl FnMut(Visit<'_, '_>),
    problems: &mut Vec<Problem>,
) {
    match decode_segment_header(bytes) {
        Ok(found) if found == n => {}
        Ok(found) => problems.push(problem(
            path,
            16,
            format!("header names segment {found}"),
            false,
        )),
        Err(e) => {
            let torn = newest && next_valid_record(bytes, SEGMENT_HEADER_LEN).is_none();
            problems.push(problem(path, 0, e.to_string(), torn));
        }
    }
    let mut at = SEGMENT_HEADER_LEN;
    let mut open_batch: Option<u64> = None;
    while at < bytes.len() {
        match parse_found(&bytes[at..], at as u64) {
            Ok(found) => {
                let len = found.header.record_len();
                let body = &bytes[at + RECORD_HEADER_LEN..at + len];
                visit(Visit::Record(&Walked {
                    file: path,
                    segment: n,
                    found,
                    body,
                }));
                open_batch = found
                    .header
                    .batch_continues()
                    .then(|| open_batch.unwrap_or(at as u64));
                at += len;
            }
            Err(why) => {
                let reason = why.unwrap_or_else(|| "record is cut short".into());
                let next = next_valid_record(bytes, at + 1);
                let torn = newest && next.is_none();
                if let Some(start) = open_batch.take() {
                    problems.push(problem(path, start, "batch is not finished", torn));
                }
                problems.push(problem(path, at as u64, reason, torn));
                visit(Visit::Break);
                match next {
                    Some(p) => at = p,
                    None => return,
                }
            }
        }
    }
    if let Some(start) = open_batch {
        problems.push(problem(
            path,
            start,
            "batch is not finished at the end of the segment",
            newest,
        ));
    }
}

/// Calls `f` with every valid record of the log in `dir`, in log order, and
/// returns the problems met on the way (damage is skipped by looking for the
/// next valid record). Modifies nothing.
pub fn scan(dir: impl AsRef<Path>, mut f: impl FnMut(&RecordInfo)) -> Result<Vec<Problem>> {
    walk(dir.as_ref(), |v| {
        if let Visit::Record(w) = v {
            f(&record_info(w));
        }
    })
}

fn record_info(w: &Walked<'_>) -> RecordInfo {
    RecordInfo {
        file: w.file.to_path_buf(),
        segment: w.segment,
        offset: w.found.offset,
        len: w.found.header.record_len() as u64,
        session_id: w.found.keys.session_id.to_string(),
        sequence: w.found.header.sequence,
        event_id: w.found.keys.id.to_string(),
        event_type: w.found.keys.event_type,
        batch_continues: w.found.header.batch_continues(),
    }
}

/// What [`verify`] found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VerifyReport {
    /// Valid records seen.
    pub records: u64,
    /// Segment files seen.
    pub segments: u64,
    /// Every problem, with file and offset, in log order per kind of check.
    pub problems: Vec<Problem>,
}

impl VerifyReport {
    /// Whether the log is clean, or only has a torn tail that opening cuts.
    pub fn is_openable(&self) -> bool {
        self.problems.iter().all(|p| p.torn_tail)
    }
}

/// Checks the whole log in `dir` without modifying anything: segment
/// headers and numbering, every record's checksum and fields, that batches
/// are finished, that each session's sequences run 1, 2, 3, ... with correct
/// previous-record links, and that no event id repeats. Returns every
/// problem with its file and offset.
pub fn verify(dir: impl AsRef<Path>) -> Result<VerifyReport> {
    let dir = dir.as_ref();
    let mut report = VerifyReport::default();
    let mut sessions: HashMap<String, (u64, u64)> = HashMap::new();
    let mut ids: HashSet<u128> = HashSet::new();
    let (h1, h2) = (FastHash::new(), FastHash::new());
    let mut chain_problems = Vec::new();
    let mut last_segment = 0;
    let walk_problems = walk(dir, |v| {
        let Visit::Record(w) = v else { return };
        report.records += 1;
        last_segment = last_segment.max(w.segment);
        let (f, pos) = (&w.found, pack_position(w.segment, w.found.offset));
        let entry = sessions
            .entry(f.keys.session_id.to_string())
            .or_insert((0, 0));
        if f.header.sequence != entry.0 + 1 || f.header.prev != entry.1 {
            let why = format!(
                "session {:?} continues with sequence {} after {} (previous-record link {:#x}, expected {:#x})",
                f.keys.session_id, f.header.sequence, entry.0, f.header.prev, entry.1
            );
            chain_problems.push(problem(w.file, f.offset, why, false));
        }
        *entry = (f.header.sequence, pos);
        let id = f.keys.id.as_bytes();
        let id_hash = (u128::from(h1.hash_bytes(id)) << 64) | u128::from(h2.hash_bytes(id));
        if !ids.insert(id_hash) {
            let why = format!("event id {:?} is stored more than once", f.keys.id);
            chain_problems.push(problem(w.file, f.offset, why, false));
        }
    })?;
    report.segments = count_segments(dir)?;
    report.problems = walk_problems;
    report.problems.extend(chain_problems);
    Ok(report)
}

fn count_segments(dir: &Path) -> Result<u64> {
    let names = Io::default().list_dir(dir)?;
    Ok(names
        .iter()
        .filter(|n| n.to_str().and_then(parse_segment_file_name).is_some())
        .count() as u64)
}

/// Per-segment statistics.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentStats {
    /// The segment file.
    pub file: PathBuf,
    /// The segment number.
    pub segment: u64,
    /// Valid records in it.
    pub records: u64,
    /// Bytes of those records (headers and bodies).
    pub record_bytes: u64,
    /// The session and sequence of its first valid record.
    pub first: Option<(String, u64)>,
    /// The session and sequence of its last valid record.
    pub last: Option<(String, u64)>,
}

/// Per-session statistics.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionStats {
    /// The session id.
    pub session_id: String,
    /// Its highest sequence number found.
    pub latest_sequence: u64,
    /// How many of its records are valid.
    pub events: u64,
}

/// What [`stats`] found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Every segment, in number order.
    pub segments: Vec<SegmentStats>,
    /// Every session, by id.
    pub sessions: Vec<SessionStats>,
    /// The problems met on the way (as [`scan`] reports them).
    pub problems: Vec<Problem>,
}

/// Counts, sizes and sequence ranges per segment and per session. Modifies nothing.
pub fn stats(dir: impl AsRef<Path>) -> Result<Stats> {
    let dir = dir.as_ref();
    let mut segments: Vec<SegmentStats> = Vec::new();
    let mut sessions: HashMap<String, SessionStats> = HashMap::new();
    let problems = walk(dir, |v| {
        let Visit::Record(w) = v else { return };
        let key = (w.found.keys.session_id.to_string(), w.found.header.sequence);
        if segments.last().is_none_or(|s| s.segment != w.segment) {
            segments.push(SegmentStats {
                file: w.file.to_path_buf(),
                segment: w.segment,
                records: 0,
                record_bytes: 0,
                first: Some(key.clone()),
                last: None,
            });
        }
        let seg = segments.last_mut().expect("just pushed");
        seg.records += 1;
        seg.record_bytes += w.found.header.record_len() as u64;
        seg.last = Some(key.clone());
        let s = sessions
            .entry(key.0.clone())
            .or_insert_with(|| SessionStats {
                session_id: key.0,
                latest_sequence: 0,
                events: 0,
            });
        s.latest_sequence = s.latest_sequence.max(key.1);
        s.events += 1;
    })?;
    add_empty_segments(dir, &mut segments)?;
    let mut sessions: Vec<SessionStats> = sessions.into_values().collect();
    sessions.sort_by(|a, b| a.session_id.cmp(&b.session_id));
    Ok(Stats {
        segments,
        sessions,
        problems,
    })
}

/// Lists segments without a valid record too, so every file appears.
fn add_empty_segments(dir: &Path, segments: &mut Vec<SegmentStats>) -> Result<()> {
    for name in Io::default().list_dir(dir)? {
        let Some(n) = name.to_str().and_then(parse_segment_file_name) else {
            continue;
        };
        if !segments.iter().any(|s| s.segment == n) {
            segments.push(SegmentStats {
                file: dir.join(segment_file_name(n)),
                segment: n,
                records: 0,
                record_bytes: 0,
                first: None,
                last: None,
            });
        }
    }
    segments.sort_by_key(|s| s.segment);
    Ok(())
}
