//! [`SegmentPreparer`]: makes the next segment ready before the writer needs
//! it, under `SyncPolicy::Always`.
//!
//! Why: a group commit is fastest when it writes over bytes the file
//! already has on disk (no block to allocate, no size to change: its
//! `fdatasync` writes only the data) and over pages already in the page
//! cache (the copy needs no fresh page). The writer keeps 256 KiB of zeros
//! ahead of its records for the first reason, but those zeros are written
//! into fresh pages on the group's own path and flushed by the group's own
//! sync. With big groups (64 appenders of 4 KiB events: a quarter MiB per
//! group) that is most of a group's cost; in this project's virtual machine
//! a copy into a fresh page-cache page ran about 10× slower than into a
//! cached one (BENCHMARKS.md, twelfth session). So once the active segment
//! holds a sixteenth of a segment (`segment::PREPARE_AT`, which says why
//! so early), a background thread writes the next segment whole: its
//! header, then zeros to the segment size, synced a MiB at a time (so the
//! device queue never holds much in front of a group's sync). The writer,
//! when it starts that segment, renames the prepared file into place.
//!
//! Crash story: the prepared file has its own name (`N.prepared`, format
//! §1), which every reader ignores and the writer removes when it opens the
//! log; only the rename makes it segment *N*, and the directory is synced
//! before anything is written to it. At that point it is what a freshly
//! created segment is: a header and preallocated zeros (format §5).
//!
//! Nothing is prepared unless the file system has four times the segment
//! size free: near a full disk the space is the appends'.
//!
//! A preparation that fails (a full disk, an I/O error) is dropped without
//! a word: the writer then creates the segment itself, as it does when the
//! preparation is not finished in time, and any error that persists is
//! reported to an appender from there. The writer never waits for it.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;

use parking_lot::{Condvar, Mutex};

use super::io::Io;
use crate::error::Result;
use crate::format::segment::{encode_segment_header, is_prepared_file_name, prepared_file_name};

/// Segments smaller than this are not prepared ahead: the writer's own
/// zeros cover a good part of them, and a store of small segments (tests,
/// tiny logs) should not get a background thread and a spare file.
pub(crate) const MIN_PREPARED_SEGMENT: u64 = 4 << 20;

/// Zeros are written and synced this much at a time.
const CHUNK: usize = 1 << 20;

/// A segment is prepared only while the file system has this many times
/// its size free: the preparation must never take the space an append
/// needs (a failed write fails the store until it is reopened).
const FREE_SPACE_FACTOR: u64 = 4;

/// A segment file written whole (header and zeros) and synced, under its
/// prepared name.
pub(crate) struct PreparedSegment {
    pub number: u64,
    pub path: PathBuf,
    pub file: File,
    /// Its length: header and zeros.
    pub len: u64,
}

/// What the writer and the preparing thread share.
#[derive(Default)]
struct Slot {
    /// The segment the writer will start next and wants prepared.
    wanted: Option<u64>,
    ready: Option<PreparedSegment>,
    stopping: bool,
}

struct Shared {
    slot: Mutex<Slot>,
    changed: Condvar,
}

/// Prepares the writer's next segment on a thread of its own, started on
/// the first request. Owned by the [`SegmentWriter`](super::segment::SegmentWriter).
pub(crate) struct SegmentPreparer {
    io: Io,
    dir: PathBuf,
    /// The length to prepare a segment to (the segment size).
    len: u64,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl SegmentPreparer {
    /// A preparer of segments of `len` bytes in `dir` (no thread yet).
    pub fn new(io: Io, dir: PathBuf, len: u64) -> SegmentPreparer {
        let slot = Mutex::new(Slot::default());
        let shared = Arc::new(Shared {
            slot,
            changed: Condvar::new(),
        });
        SegmentPreparer {
            io,
            dir,
            len,
            shared,
            thread: None,
        }
    }

    /// Asks for segment `number` to be prepared (cheap when it already is
    /// asked for). If the thread cannot be started, nothing is prepared.
    pub fn request(&mut self, number: u64) {
        {
            let mut slot = self.shared.slot.lock();
            if slot.stopping || slot.wanted == Some(number) {
                return;
            }
            slot.wanted = Some(number);
        }
        self.shared.changed.notify_one();
        if self.thread.is_none() {
            let (io, dir, len) = (self.io.clone(), self.dir.clone(), self.len);
            let shared = Arc::clone(&self.shared);
            self.thread = std::thread::Builder::new()
                .name("sessionlog-prepare".into())
                .spawn(move || run(&io, &dir, len, &shared))
                .ok();
        }
    }

    /// Segment `number` if it is prepared; otherwise `None`, and whatever
    /// is under way for it is abandoned (the writer creates it itself).
    pub fn take(&mut self, number: u64) -> Option<PreparedSegment> {
        let mut slot = self.shared.slot.lock();
        if slot.wanted == Some(number) {
            slot.wanted = None;
        }
        match slot.ready.take() {
            Some(ready) if ready.number == number => Some(ready),
            other => {
                slot.ready = other;
                None
            }
        }
    }

    /// Stops the thread (after the chunk it is writing) and removes any
    /// prepared file: a closed log's directory holds only its records.
    pub fn stop(&mut self) {
        self.shared.slot.lock().stopping = true;
        self.shared.changed.notify_one();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        if let Some(ready) = self.shared.slot.lock().ready.take() {
            discard(&self.io, &ready.path);
        }
    }
}

impl Drop for SegmentPreparer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The thread: prepares each segment asked for, until stopped.
fn run(io: &Io, dir: &Path, len: u64, shared: &Shared) {
    while let Some(number) = next_wanted(shared) {
        let still_wanted = || {
            let slot = shared.slot.lock();
            !slot.stopping && slot.wanted == Some(number)
        };
        let path = dir.join(prepared_file_name(number));
        match prepare(io, (dir, &path), number, len, &still_wanted) {
            Ok(Some(prepared)) => {
                let mut slot = shared.slot.lock();
                if slot.stopping || slot.wanted != Some(number) {
                    drop(slot);
                    discard(io, &path);
                } else {
                    slot.wanted = None;
                    let old = slot.ready.replace(prepared);
                    drop(slot);
                    if let Some(old) = old {
                        discard(io, &old.path);
                    }
                }
            }
            Ok(None) | Err(_) => {
                discard(io, &path);
                // Given up on: the writer creates this one itself.
                let mut slot = shared.slot.lock();
                if slot.wanted == Some(number) {
                    slot.wanted = None;
                }
            }
        }
    }
}

/// Sleeps until a segment not yet prepared is wanted (`None`: stopping).
fn next_wanted(shared: &Shared) -> Option<u64> {
    let mut slot = shared.slot.lock();
    loop {
        if slot.stopping {
            return None;
        }
        let ready = slot.ready.as_ref().map(|r| r.number);
        match slot.wanted {
            Some(n) if ready != Some(n) => return Some(n),
            _ => shared.changed.wait(&mut slot),
        }
    }
}

/// Writes segment `number`'s header and zeros to `len` at `path` (in
/// `dir`), syncing each chunk; `None` when the file system is short of
/// space or the segment stopped being wanted on the way.
fn prepare(
    io: &Io,
    (dir, path): (&Path, &Path),
    number: u64,
    len: u64,
    still_wanted: &dyn Fn() -> bool,
) -> Result<Option<PreparedSegment>> {
    if io.available_space(dir)? < len.saturating_mul(FREE_SPACE_FACTOR) {
        return Ok(None);
    }
    // A file left by a crash of an earlier run is removed on open; one of
    // our own would have been discarded. So this name is free.
    let file = io.create_new(path)?;
    let header = encode_segment_header(number);
    io.write_all_at(&file, path, &header, 0)?;
    let zeros = vec![0u8; CHUNK];
    let mut at = header.len() as u64;
    while at < len {
        if !still_wanted() {
            return Ok(None);
        }
        let n = (len - at).min(CHUNK as u64) as usize;
        io.write_all_at(&file, path, &zeros[..n], at)?;
        io.sync_data(&file, path)?;
        at += n as u64;
    }
    io.sync_all(&file, path)?;
    Ok(Some(PreparedSegment {
        number,
        path: path.to_path_buf(),
        file,
        len: at,
    }))
}

/// Removes a prepared file nobody will use, and makes that durable (best
/// effort: one left behind is removed when the log is next opened).
fn discard(io: &Io, path: &Path) {
    if io.remove_file(path).is_ok()
        && let Some(dir) = path.parent()
    {
        let _ = io.sync_dir(dir);
    }
}

/// Removes the prepared files a crashed (or killed) writer left in `dir`:
/// done by the writer when it opens the log, with the lock held.
pub(crate) fn remove_leftovers(io: &Io, dir: &Path) -> Result<()> {
    let mut removed = false;
    for name in io.list_dir(dir)? {
        if name.to_str().is_some_and(is_prepared_file_name) {
            io.remove_file(&dir.join(&name))?;
            removed = true;
        }
    }
    if removed {
        io.sync_dir(dir)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;
    use crate::engine::io::FaultInjector;
    use crate::format::segment::{SEGMENT_HEADER_LEN, decode_segment_version};

    /// The prepared files in `dir`.
    fn prepared_in(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| is_prepared_file_name(n))
            .collect();
        names.sort();
        names
    }

    /// Takes segment `number` once prepared (waiting up to 20 s for it).
    fn take_when_ready(p: &mut SegmentPreparer, number: u64) -> PreparedSegment {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let ready = p.shared.slot.lock().ready.as_ref().map(|r| r.number);
            if ready == Some(number) {
                return p.take(number).unwrap();
            }
            assert!(
                Instant::now() < deadline,
                "segment {number} never got ready"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Waits (up to 20 s) until the thread is idle: nothing wanted.
    fn wait_idle(p: &SegmentPreparer) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while p.shared.slot.lock().wanted.is_some() {
            assert!(Instant::now() < deadline, "the preparer never settled");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn a_prepared_segment_is_its_header_then_synced_zeros() {
        let dir = tempfile::tempdir().unwrap();
        let len = (3 << 20) + 100;
        let mut p = SegmentPreparer::new(Io::default(), dir.path().into(), len);
        p.request(7);
        p.request(7); // asking again changes nothing
        let seg = take_when_ready(&mut p, 7);
        assert_eq!((seg.number, seg.len), (7, len));
        assert_eq!(seg.path, dir.path().join("00000000000000000007.prepared"));
        let bytes = std::fs::read(&seg.path).unwrap();
        assert_eq!(bytes.len() as u64, len);
        assert_eq!(bytes[..SEGMENT_HEADER_LEN], encode_segment_header(7));
        assert!(decode_segment_version(&bytes).is_ok());
        assert!(bytes[SEGMENT_HEADER_LEN..].iter().all(|&b| b == 0));
        // Taken: the preparer no longer owns it; stopping leaves it alone.
        p.stop();
        assert_eq!(prepared_in(dir.path()), ["00000000000000000007.prepared"]);
    }

    #[test]
    fn only_the_wanted_number_is_handed_out_and_stopping_removes_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let mut p = SegmentPreparer::new(Io::default(), dir.path().into(), 1 << 20);
        p.request(2);
        let seg = take_when_ready(&mut p, 2);
        std::fs::remove_file(&seg.path).unwrap();
        p.request(3);
        wait_idle(&p);
        assert!(p.take(4).is_none(), "segment 4 was never asked for");
        assert_eq!(prepared_in(dir.path()), ["00000000000000000003.prepared"]);
        p.stop();
        assert!(
            prepared_in(dir.path()).is_empty(),
            "stop removes what is ready"
        );
        p.request(5);
        assert!(
            p.thread.is_none() && p.take(5).is_none(),
            "stopped for good"
        );
    }

    #[test]
    fn a_segment_taken_before_it_is_ready_is_abandoned_and_removed() {
        let dir = tempfile::tempdir().unwrap();
        let mut p = SegmentPreparer::new(Io::default(), dir.path().into(), 64 << 20);
        p.request(2);
        // Usually still being written; if it was quick, it is handed out.
        let taken = p.take(2);
        wait_idle(&p);
        if let Some(seg) = &taken {
            std::fs::remove_file(&seg.path).unwrap();
        }
        // The thread notices, between chunks, that nobody wants it any more.
        let deadline = Instant::now() + Duration::from_secs(20);
        while !prepared_in(dir.path()).is_empty() {
            assert!(Instant::now() < deadline, "the abandoned file was left");
            std::thread::sleep(Duration::from_millis(5));
        }
        drop(p);
        assert!(prepared_in(dir.path()).is_empty());
    }

    #[test]
    fn a_failed_preparation_leaves_nothing_and_the_next_request_tries_again() {
        let dir = tempfile::tempdir().unwrap();
        let faults = FaultInjector::new();
        faults.fail_syncs(true);
        let io = Io::new(Some(faults.clone()));
        let mut p = SegmentPreparer::new(io, dir.path().into(), 1 << 20);
        p.request(2);
        wait_idle(&p);
        assert!(p.take(2).is_none(), "a failed sync prepares nothing");
        assert!(
            prepared_in(dir.path()).is_empty(),
            "the partial file is removed"
        );
        faults.heal();
        p.request(3);
        let seg = take_when_ready(&mut p, 3);
        assert_eq!(seg.len, 1 << 20);
    }

    #[test]
    fn nothing_is_prepared_unless_four_times_the_segment_is_free() {
        let dir = tempfile::tempdir().unwrap();
        let faults = FaultInjector::new();
        // What the file system has free is capped by the injected limit.
        faults.disk_full_after((4 << 20) - 1);
        let io = Io::new(Some(faults.clone()));
        let mut p = SegmentPreparer::new(io, dir.path().into(), 1 << 20);
        p.request(2);
        wait_idle(&p);
        assert!(p.take(2).is_none() && prepared_in(dir.path()).is_empty());
        faults.disk_full_after(4 << 20);
        p.request(3);
        assert_eq!(take_when_ready(&mut p, 3).len, 1 << 20);
    }

    #[test]
    fn leftovers_of_a_crash_are_removed_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        for name in [
            "00000000000000000004.prepared",
            "00000000000000000001.seg",
            "notes.prepared",
            "LOCK",
        ] {
            std::fs::write(dir.path().join(name), b"x").unwrap();
        }
        remove_leftovers(&Io::default(), dir.path()).unwrap();
        let mut left: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(left, ["00000000000000000001.seg", "LOCK", "notes.prepared"]);
    }
}
