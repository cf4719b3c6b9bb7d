//! Salvage: copy every valid record of a damaged log into a clean new one,
//! and (for `RecoveryMode::Salvage`) swap the clean copy in, crash-safely.
//!
//! The copy appends every valid event, in log order, through a normal
//! `LogStore`, so the new log is clean by construction: sequences run
//! 1, 2, 3, ... per session. Where records of a session were lost, the
//! events after the loss get renumbered to close the gap; the report says
//! which original sequences were lost and from where numbers shifted.
//!
//! The in-place repair builds the copy in `<dir>/salvage.tmp`, renames it to
//! `<dir>/salvage.ready` (the commit point), then moves the old segments into
//! `<dir>/damaged-<n>/` and the new ones in. Every writer open first finishes
//! such an interrupted swap, so a crash at any point loses nothing: before the
//! commit point the old log is untouched, after it the swap is redone.

use std::collections::HashMap;
use std::path::Path;

use super::inspect::{Problem, Progress, Visit, verify, walk_with_progress};
use super::io::Io;
use super::{LogOptions, LogStore, SyncPolicy};
use crate::error::{Error, Result};
use crate::event::Event;
use crate::format::event_codec;
use crate::format::segment::{parse_segment_file_name, segment_file_name};
use crate::store::SessionStore;

/// Original sequences of a session that no valid record holds any more.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LostRange {
    /// The session.
    pub session_id: String,
    /// The first lost sequence.
    pub first: u64,
    /// The last lost sequence (inclusive).
    pub last: u64,
}

/// Where a session's events got new sequence numbers in the salvaged log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Renumbered {
    /// The session.
    pub session_id: String,
    /// The first original sequence stored under a different number.
    pub original: u64,
    /// The number it has now.
    pub now: u64,
}

/// What [`salvage`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SalvageReport {
    /// Events copied into the new log.
    pub copied: u64,
    /// Valid records not copied because their event id was already copied.
    pub duplicates: u64,
    /// The damage found in the source (as `inspect::scan` reports it).
    pub problems: Vec<Problem>,
    /// Per session, the original sequences lost to damage (gaps between valid
    /// records, and before a session's first valid record). Records lost
    /// after a session's last valid record cannot be detected.
    pub lost: Vec<LostRange>,
    /// Per session, the first event that got a new number (after a loss).
    pub renumbered: Vec<Renumbered>,
}

/// Per-session bookkeeping of the copy.
#[derive(Default)]
struct SessionCopy {
    last_original: u64,
    renumbered: bool,
}

/// Copies every valid record of the log in `src` into a new log in `dst`
/// (created; it must not hold a log yet) and reports what was lost. `src` is
/// not modified. Batches are copied as batches where they are complete.
pub fn salvage(src: impl AsRef<Path>, dst: impl AsRef<Path>) -> Result<SalvageReport> {
    salvage_with_progress(src, dst, |_| {})
}

/// [`salvage`], calling `progress` as the copy advances through the source
/// log's segment files (see [`Progress`]).
pub fn salvage_with_progress(
    src: impl AsRef<Path>,
    dst: impl AsRef<Path>,
    mut progress: impl FnMut(Progress),
) -> Result<SalvageReport> {
    let (src, dst) = (src.as_ref(), dst.as_ref());
    if dst.is_dir() && has_segments(dst)? {
        return Err(Error::invalid(format!(
            "salvage target {} already holds a log",
            dst.display()
        )));
    }
    let opts = LogOptions {
        sync: SyncPolicy::Never,
        ..LogOptions::default()
    };
    let store = LogStore::open_with(dst, opts)?;
    let mut report = SalvageReport::default();
    let mut sessions: HashMap<String, SessionCopy> = HashMap::new();
    let mut batch: Vec<(Event, u64)> = Vec::new();
    let mut undecodable = Vec::new();
    let mut failure: Option<Error> = None;
    let mut copy = |batch: &mut Vec<(Event, u64)>, report: &mut SalvageReport| {
        if failure.is_none()
            && !batch.is_empty()
            && let Err(e) = copy_batch(&store, batch, &mut sessions, report)
        {
            failure = Some(e);
        }
        batch.clear();
    };
    let visit = |v: Visit<'_, '_>| match v {
        Visit::Segment { .. } => {}
        Visit::Break => copy(&mut batch, &mut report),
        Visit::Record(w) => {
            match event_codec::decode(w.body, w.found.header.sequence) {
                Ok(event) => batch.push((event, w.found.header.sequence)),
                Err(e) => undecodable.push(Problem {
                    file: w.file.to_path_buf(),
                    offset: w.found.offset,
                    reason: format!("event body is undecodable: {e}"),
                    torn_tail: false,
                }),
            }
            if !w.found.header.batch_continues() {
                copy(&mut batch, &mut report);
            }
        }
    };
    let problems = walk_with_progress(src, visit, &mut progress)?;
    report.problems = problems;
    report.problems.extend(undecodable);
    if let Some(e) = failure {
        return Err(e);
    }
    store.close()?;
    Ok(report)
}

/// Appends one batch of salvaged events, noting losses and renumbering.
fn copy_batch(
    store: &LogStore,
    batch: &mut Vec<(Event, u64)>,
    sessions: &mut HashMap<String, SessionCopy>,
    report: &mut SalvageReport,
) -> Result<()> {
    let originals: Vec<u64> = batch.iter().map(|(_, seq)| *seq).collect();
    let events: Vec<Event> = batch.drain(..).map(|(e, _)| e).collect();
    let ids: Vec<String> = events.iter().map(|e| e.id.clone()).collect();
    let stored = store.append_events(events)?;
    for ((event, original), id) in stored.iter().zip(originals).zip(ids) {
        let now = event.sequence_number.unwrap_or(0);
        let s = sessions.entry(event.session_id.clone()).or_default();
        if event.id != id || original <= s.last_original {
            report.duplicates += 1;
            continue;
        }
        report.copied += 1;
        if original > s.last_original + 1 {
            report.lost.push(LostRange {
                session_id: event.session_id.clone(),
                first: s.last_original + 1,
                last: original - 1,
            });
        }
        s.last_original = original;
        if now != original && !s.renumbered {
            s.renumbered = true;
            let session_id = event.session_id.clone();
            report.renumbered.push(Renumbered {
                session_id,
                original,
                now,
            });
        }
    }
    Ok(())
}

fn has_segments(dir: &Path) -> Result<bool> {
    let names = Io::default().list_dir(dir)?;
    Ok(names
        .iter()
        .any(|n| n.to_str().and_then(parse_segment_file_name).is_some()))
}

const SALVAGE_TMP: &str = "salvage.tmp";
const SALVAGE_READY: &str = "salvage.ready";
/// Marker inside `salvage.ready`: the old segments have been moved away.
const OLD_MOVED: &str = "OLD_MOVED";

/// For `RecoveryMode::Salvage`, with the directory lock held: when the log
/// has damage beyond a torn tail, rebuilds it from every valid record.
pub(crate) fn repair_in_place(io: &Io, dir: &Path) -> Result<()> {
    finish_interrupted_swap(io, dir)?;
    let report = verify(dir)?;
    if report.is_openable() {
        return Ok(());
    }
    let tmp = dir.join(SALVAGE_TMP);
    if tmp.exists() {
        io.remove_dir_all(&tmp)?;
    }
    salvage(dir, &tmp)?;
    io.rename(&tmp, &dir.join(SALVAGE_READY))?;
    io.sync_dir(dir)?;
    finish_interrupted_swap(io, dir)
}

/// Completes a swap whose commit point (`salvage.ready`) was reached, and
/// removes an unfinished copy. Idempotent; run by every writer open.
pub(crate) fn finish_interrupted_swap(io: &Io, dir: &Path) -> Result<()> {
    let tmp = dir.join(SALVAGE_TMP);
    if tmp.exists() {
        io.remove_dir_all(&tmp)?;
        io.sync_dir(dir)?;
    }
    let ready = dir.join(SALVAGE_READY);
    if !ready.exists() {
        return Ok(());
    }
    if !ready.join(OLD_MOVED).exists() {
        let damaged = fresh_damaged_dir(io, dir)?;
        move_segments(io, dir, &damaged)?;
        io.open_or_create(&ready.join(OLD_MOVED))?;
        io.sync_dir(&ready)?;
    }
    move_segments(io, &ready, dir)?;
    io.remove_dir_all(&ready)?;
    io.sync_dir(dir)
}

/// A read-only open cannot finish a swap: it fails until a writer has.
pub(crate) fn refuse_unfinished_swap(dir: &Path) -> Result<()> {
    let ready = dir.join(SALVAGE_READY);
    if ready.exists() {
        let why = "an in-place salvage is unfinished; opening the log for writing finishes it";
        return Err(Error::corrupt(ready, 0, why));
    }
    Ok(())
}

/// Creates `<dir>/damaged-<n>` with the first free `n`.
fn fresh_damaged_dir(io: &Io, dir: &Path) -> Result<std::path::PathBuf> {
    let mut n = 1;
    while dir.join(format!("damaged-{n}")).exists() {
        n += 1;
    }
    let damaged = dir.join(format!("damaged-{n}"));
    io.create_dir_all(&damaged)?;
    io.sync_dir(dir)?;
    Ok(damaged)
}

/// Moves every segment file from `from` into `to`, durably.
fn move_segments(io: &Io, from: &Path, to: &Path) -> Result<()> {
    for name in io.list_dir(from)? {
        let Some(n) = name.to_str().and_then(parse_segment_file_name) else {
            continue;
        };
        let file = segment_file_name(n);
        io.rename(&from.join(&file), &to.join(&file))?;
    }
    io.sync_dir(to)?;
    io.sync_dir(from)
}
