//! Looking into a log directory without opening it as a store, for the
//! command-line tool: every record with its file and offset ([`scan`]), a
//! full check ([`verify`]), statistics ([`stats`]), the format version
//! ([`format_version`]) and a copy of every valid record into a clean new log
//! ([`salvage`]).
//!
//! None of these take the directory lock or modify the directory they read,
//! so they can run next to a live writer (they then see a snapshot, possibly
//! with an incomplete tail the writer is still writing). A tool that must
//! keep writers away meanwhile takes the writer lock itself with
//! [`lock_dir`].
//!
//! The long walks have variants that report [`Progress`] in bytes of
//! segment files ([`verify_with_progress`], [`stats_with_progress`],
//! [`salvage_with_progress`]), for a progress bar.
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
use super::scan::{
    Found, MARK_IN_BATCH, Parsed, header_tear_refuted, is_preallocated, next_valid_record,
    parse_any, torn_write_refuted,
};
use super::segment::ends_in_close_mark_at;
use crate::error::{Error, Result};
use crate::event::EventType;
use crate::format::record::{RECORD_HEADER_LEN, pack_position};
use crate::format::segment::{
    CLAIMING_VERSION, SEGMENT_HEADER_LEN, SegmentHeaderError, decode_segment_header,
    decode_segment_version, parse_segment_file_name, segment_file_name,
};

pub use super::lock::{DirLock, LOCK_FILE_NAME};
pub use super::salvage::{LostRange, Renumbered, SalvageReport, salvage, salvage_with_progress};

/// How far a walk over a log has got, in bytes of segment files.
///
/// The `*_with_progress` functions call their callback first with
/// `bytes_done == 0` (before reading anything; `bytes_total` is then already
/// known), then after each segment file and every few MiB inside a large
/// one, with `bytes_done` strictly increasing; the last call of a walk that
/// succeeds has `bytes_done == bytes_total`. A log without segment files
/// gets exactly one call, with both zero.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Progress {
    /// Bytes of segment files processed so far.
    pub bytes_done: u64,
    /// Bytes of all segment files, as their sizes were when the walk started
    /// (a live writer's later appends are not counted).
    pub bytes_total: u64,
}

/// Progress is reported at least this often inside a large segment.
const PROGRESS_STEP: u64 = 4 * 1024 * 1024;

/// Turns positions in the walk into [`Progress`] calls.
struct Tracker<'p> {
    report: &'p mut dyn FnMut(Progress),
    total: u64,
    /// Bytes of the segments finished.
    base: u64,
    /// The planned size of the segment being walked.
    size: u64,
    /// The last `bytes_done` reported.
    reported: u64,
}

impl<'p> Tracker<'p> {
    fn new(report: &'p mut dyn FnMut(Progress), total: u64) -> Tracker<'p> {
        report(Progress {
            bytes_done: 0,
            bytes_total: total,
        });
        Tracker {
            report,
            total,
            base: 0,
            size: 0,
            reported: 0,
        }
    }

    fn start_segment(&mut self, size: u64) {
        self.size = size;
    }

    /// The walk is at byte `offset` of the current segment.
    fn at(&mut self, offset: u64) {
        let done = self.base.saturating_add(offset.min(self.size));
        if done.saturating_sub(self.reported) >= PROGRESS_STEP {
            self.emit(done);
        }
    }

    fn end_segment(&mut self) {
        self.base = self.base.saturating_add(self.size).min(self.total);
        self.size = 0;
        self.emit(self.base);
    }

    fn emit(&mut self, done: u64) {
        let done = done.min(self.total);
        if done > self.reported {
            self.reported = done;
            (self.report)(Progress {
                bytes_done: done,
                bytes_total: self.total,
            });
        }
    }
}

/// The format version a segment header states (one this build reads, or
/// another for a well-formed header of an unknown version), `None` for a
/// damaged or incomplete header.
fn header_version(bytes: &[u8]) -> Option<u32> {
    match decode_segment_version(bytes) {
        Ok(v) => Some(v),
        Err(SegmentHeaderError::UnsupportedVersion(v)) => Some(v),
        Err(SegmentHeaderError::Short(_) | SegmentHeaderError::Damaged(_)) => None,
    }
}

/// The segment numbers in `dir`, sorted.
fn segment_numbers(io: &Io, dir: &Path) -> Result<Vec<u64>> {
    let mut numbers: Vec<u64> = io
        .list_dir(dir)?
        .iter()
        .filter_map(|n| n.to_str().and_then(parse_segment_file_name))
        .collect();
    numbers.sort_unstable();
    Ok(numbers)
}

/// The format version of the log in `dir`: the one stated by the header of
/// the first segment file (in number order) whose header is readable, or
/// `None` when there is no segment file or no readable header. A version
/// outside [`OLDEST_READABLE_VERSION`](crate::format::segment::OLDEST_READABLE_VERSION)
/// ..= [`FORMAT_VERSION`](crate::format::segment::FORMAT_VERSION) means this
/// build cannot read the log.
/// Reads only the segment headers; modifies nothing.
pub fn format_version(dir: impl AsRef<Path>) -> Result<Option<u32>> {
    let (dir, io) = (dir.as_ref(), Io::default());
    for n in segment_numbers(&io, dir)? {
        let path = dir.join(segment_file_name(n));
        let file = io.open_ro(&path)?;
        let mut head = [0u8; SEGMENT_HEADER_LEN];
        let got = io.read_at(&file, &path, &mut head, 0)?;
        if let Some(v) = head.get(..got).and_then(header_version) {
            return Ok(Some(v));
        }
    }
    Ok(None)
}

/// Whether the newest segment of the log in `dir` ends in a close mark.
fn newest_ends_in_close_mark(dir: &Path) -> Result<bool> {
    let io = Io::default();
    let Some(n) = segment_numbers(&io, dir)?.into_iter().max() else {
        return Ok(false);
    };
    let path = dir.join(segment_file_name(n));
    let file = io.open_ro(&path)?;
    let len = io.file_len(&file, &path)?;
    ends_in_close_mark_at(&io, &file, &path, len)
}

/// Takes the writer lock of the log directory `dir` (the file `dir/LOCK`,
/// created if missing), exactly as [`LogStore::open`](crate::LogStore::open)
/// does, so that no store can open the log for writing while the returned
/// guard lives; dropping the guard releases it. Fails with
/// [`Error::Locked`] when a store (in this or another process) or another
/// guard holds it. Read-only opens and the functions of this module take no
/// lock and are not kept out.
pub fn lock_dir(dir: impl AsRef<Path>) -> Result<DirLock> {
    DirLock::acquire(&Io::default(), dir.as_ref())
}

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
    /// A segment file starts (before its records).
    Segment {
        file: &'b Path,
        number: u64,
        format_version: Option<u32>,
    },
    Record(&'b Walked<'a>),
    /// Damage or a segment's end: a batch open before it is broken.
    Break,
}

/// Walks every segment file of `dir` in number order, record by record,
/// skipping over damage to the next valid record. Returns the problems; a
/// segment of an unsupported format version is an error, not a problem.
pub(crate) fn walk(dir: &Path, visit: impl FnMut(Visit<'_, '_>)) -> Result<Vec<Problem>> {
    walk_with_progress(dir, visit, &mut |_| {})
}

/// [`walk`], reporting [`Progress`] as documented there.
pub(crate) fn walk_with_progress(
    dir: &Path,
    mut visit: impl FnMut(Visit<'_, '_>),
    progress: &mut dyn FnMut(Progress),
) -> Result<Vec<Problem>> {
    let io = Io::default();
    let numbers = segment_numbers(&io, dir)?;
    let mut sizes = Vec::with_capacity(numbers.len());
    for &n in &numbers {
        sizes.push(io.file_size(&dir.join(segment_file_name(n)))?);
    }
    let total = sizes.iter().fold(0u64, |a, &b| a.saturating_add(b));
    let mut tracker = Tracker::new(progress, total);
    let mut problems = Vec::new();
    let mut expected = 1;
    for ((i, &n), &size) in numbers.iter().enumerate().zip(&sizes) {
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
        visit(Visit::Segment {
            file: &path,
            number: n,
            format_version: header_version(&bytes),
        });
        let newest = i + 1 == numbers.len();
        tracker.start_segment(size);
        let walk = SegmentWalk {
            path: &path,
            n,
            bytes: &bytes,
            newest,
        };
        walk_segment(walk, &mut visit, &mut problems, &mut tracker);
        visit(Visit::Break);
        tracker.end_segment();
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

/// One segment file to walk.
struct SegmentWalk<'a> {
    path: &'a Path,
    n: u64,
    bytes: &'a [u8],
    newest: bool,
}

fn walk_segment(
    segment: SegmentWalk<'_>,
    visit: &mut impl FnMut(Visit<'_, '_>),
    problems: &mut Vec<Problem>,
    tracker: &mut Tracker<'_>,
) {
    if !walk_header(&segment, problems) {
        // Opening starts this segment afresh: nothing in it counts
        // (records a power loss kept of its first write, if any).
        visit(Visit::Break);
        return;
    }
    let mut at = SEGMENT_HEADER_LEN;
    let mut open_batch: Option<u64> = None;
    while at < segment.bytes.len() {
        let parsed = match parse_any(&segment.bytes[at..], at as u64) {
            Ok(Parsed::CloseMark(_)) if open_batch.is_some() => Err(Some(MARK_IN_BATCH.into())),
            parsed => parsed,
        };
        match parsed {
            Ok(Parsed::CloseMark(mark)) => {
                // A clean close (format §5): nothing to visit.
                at += mark.record_len();
            }
            Ok(Parsed::Event(found)) => {
                let len = found.header.record_len();
                visit(Visit::Record(&Walked {
                    file: segment.path,
                    segment: segment.n,
                    found,
                    body: &segment.bytes[at + RECORD_HEADER_LEN..at + len],
                }));
                open_batch = found
                    .header
                    .batch_continues()
                    .then(|| open_batch.unwrap_or(at as u64));
                at += len;
            }
            Err(_)
                if segment.newest
                    && open_batch.is_none()
                    && is_preallocated(&segment.bytes[at..]) =>
            {
                // The writer's preallocated space: the log simply ends here.
                return;
            }
            Err(why) => {
                let damage = (at, open_batch.take(), why);
                let next = walk_damage(&segment, damage, problems);
                visit(Visit::Break);
                match next {
                    Some(next) => at = next,
                    None => return,
                }
            }
        }
        tracker.at(at as u64);
    }
    if let Some(start) = open_batch {
        let why = "batch is not finished at the end of the segment";
        problems.push(problem(segment.path, start, why, segment.newest));
    }
}

/// Checks a walked segment's header, noting what is wrong with it; false
/// when the header is a power-loss tear, so none of the segment counts.
fn walk_header(segment: &SegmentWalk<'_>, problems: &mut Vec<Problem>) -> bool {
    let SegmentWalk { path, n, bytes, .. } = *segment;
    match decode_segment_header(bytes) {
        Ok(found) if found == n => true,
        Ok(found) => {
            let why = format!("header names segment {found}");
            problems.push(problem(path, 16, why, false));
            true
        }
        Err(e) => {
            let torn = segment.newest && header_tear_refuted(bytes).is_none();
            problems.push(problem(path, 0, e.to_string(), torn));
            !torn
        }
    }
}

/// Notes the damage found at `at` (inside the batch that began at
/// `open_batch`, if any); returns where the walk goes on, or `None` when
/// nothing valid follows or the damage is a tear that opening cuts.
fn walk_damage(
    segment: &SegmentWalk<'_>,
    (at, open_batch, why): (usize, Option<u64>, Option<String>),
    problems: &mut Vec<Problem>,
) -> Option<usize> {
    let SegmentWalk { path, bytes, .. } = *segment;
    let claims = decode_segment_version(bytes).is_ok_and(|v| v >= CLAIMING_VERSION);
    let reason = why.unwrap_or_else(|| "record is cut short".into());
    let cut = open_batch.unwrap_or(at as u64);
    let torn = segment.newest && torn_write_refuted(bytes, at, cut, claims).is_none();
    if let Some(start) = open_batch {
        problems.push(problem(path, start, "batch is not finished", torn));
    }
    problems.push(problem(path, at as u64, reason, torn));
    if torn {
        // Opening cuts the log here; what follows (the rest of a write a
        // power loss tore, if anything) never counted.
        return None;
    }
    next_valid_record(bytes, at + 1)
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
    /// Whether the newest segment ends in a close mark (format §5): the last
    /// writer closed the log cleanly and nothing was written since. False
    /// while a writer has the log open, after a crash, and for a newest
    /// segment of a format version before close marks.
    pub closed_cleanly: bool,
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
    verify_with_progress(dir, |_| {})
}

/// [`verify`], calling `progress` as the check advances (see [`Progress`]).
///
/// ```
/// use sessionlog::{Event, EventType, LogStore, SessionStore};
/// use sessionlog::engine::inspect;
/// let dir = tempfile::tempdir()?;
/// let store = LogStore::open(dir.path())?;
/// store.append_event_with_sequence(Event::new("s", EventType::RunStarted))?;
/// store.close()?;
/// let mut last = inspect::Progress::default();
/// let report = inspect::verify_with_progress(dir.path(), |p| last = p)?;
/// assert!(report.problems.is_empty());
/// assert_eq!(last.bytes_done, last.bytes_total);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn verify_with_progress(
    dir: impl AsRef<Path>,
    mut progress: impl FnMut(Progress),
) -> Result<VerifyReport> {
    let dir = dir.as_ref();
    let mut report = VerifyReport::default();
    let mut sessions: HashMap<String, (u64, u64)> = HashMap::new();
    let mut ids: HashSet<u128> = HashSet::new();
    let (h1, h2) = (FastHash::new(), FastHash::new());
    let mut chain_problems = Vec::new();
    let mut segments = 0;
    let visit = |v: Visit<'_, '_>| {
        let w = match v {
            Visit::Record(w) => w,
            Visit::Segment { .. } => {
                segments += 1;
                return;
            }
            Visit::Break => return,
        };
        report.records += 1;
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
    };
    let walk_problems = walk_with_progress(dir, visit, &mut progress)?;
    report.closed_cleanly = newest_ends_in_close_mark(dir)?;
    report.segments = segments;
    report.problems = walk_problems;
    report.problems.extend(chain_problems);
    Ok(report)
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
    /// The format version its header states (see [`format_version`]);
    /// `None` when the header is damaged or incomplete.
    pub format_version: Option<u32>,
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

impl Stats {
    /// The log's format version: the first one a segment header states
    /// (`None` when no segment header is readable).
    pub fn format_version(&self) -> Option<u32> {
        self.segments.iter().find_map(|s| s.format_version)
    }
}

/// Counts, sizes and sequence ranges per segment and per session, and the
/// format version of each segment. Modifies nothing.
pub fn stats(dir: impl AsRef<Path>) -> Result<Stats> {
    stats_with_progress(dir, |_| {})
}

/// [`stats`], calling `progress` as the walk advances (see [`Progress`]).
pub fn stats_with_progress(
    dir: impl AsRef<Path>,
    mut progress: impl FnMut(Progress),
) -> Result<Stats> {
    let dir = dir.as_ref();
    let mut segments: Vec<SegmentStats> = Vec::new();
    let mut sessions: HashMap<String, SessionStats> = HashMap::new();
    let visit = |v: Visit<'_, '_>| {
        let w = match v {
            Visit::Record(w) => w,
            Visit::Segment {
                file,
                number,
                format_version,
            } => {
                segments.push(SegmentStats {
                    file: file.to_path_buf(),
                    segment: number,
                    records: 0,
                    record_bytes: 0,
                    format_version,
                    first: None,
                    last: None,
                });
                return;
            }
            Visit::Break => return,
        };
        let key = (w.found.keys.session_id.to_string(), w.found.header.sequence);
        // The walk announces every segment before its records.
        let Some(seg) = segments.last_mut().filter(|s| s.segment == w.segment) else {
            return;
        };
        seg.records += 1;
        seg.record_bytes += w.found.header.record_len() as u64;
        seg.first.get_or_insert_with(|| key.clone());
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
    };
    let problems = walk_with_progress(dir, visit, &mut progress)?;
    let mut sessions: Vec<SessionStats> = sessions.into_values().collect();
    sessions.sort_by(|a, b| a.session_id.cmp(&b.session_id));
    Ok(Stats {
        segments,
        sessions,
        problems,
    })
}
