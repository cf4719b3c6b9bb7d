//! [`Core`]: one open log (state, segments, writer or refresher), shared by
//! the `LogStore` handle and its background thread.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crossbeam_channel::{Receiver, Sender};
use parking_lot::{Mutex, RwLock};

use super::group_commit::{GroupCommit, Wake};
use super::hash::FastHash;
use super::io::Io;
use super::lock::DirLock;
use super::options::{LogOptions, RecoveryMode, SyncPolicy};
use super::pending::PendingLog;
use super::readonly::ReadCursor;
use super::recovery::{Access, end_position, recover};
use super::segment::{SegmentSet, SegmentWriter};
use super::spare_buffer::SpareBuffer;
use super::state::State;
use crate::error::Result;
use crate::store::SessionNotifier;

/// Whether this open log appends (and holds the directory lock) or follows
/// a writer read-only.
pub(crate) enum Role {
    Writer { commit: GroupCommit, _lock: DirLock },
    ReadOnly { cursor: Mutex<ReadCursor> },
}

/// Everything an open log is made of.
pub(crate) struct Core {
    pub dir: PathBuf,
    pub opts: LogOptions,
    pub io: Io,
    pub state: RwLock<State>,
    pub segments: SegmentSet,
    pub notifier: Arc<SessionNotifier>,
    /// Hashes event ids for the id index (randomly keyed per open).
    pub hasher: FastHash,
    pub role: Role,
    /// Under `Never`/`Interval`: wakes the background thread to write the
    /// buffer when it fills (the thread waits on the receiver).
    pub flush_kick: Option<(Sender<()>, Receiver<()>)>,
    /// The read window's buffer, kept between queries.
    pub spare_window: SpareBuffer,
}

impl Core {
    /// Opens `dir` for appending: lock, recover, ready to write.
    pub fn open_writer(dir: &Path, opts: LogOptions) -> Result<Core> {
        opts.validate()?;
        let io = Io::new(opts.faults.clone());
        create_log_dir(&io, dir)?;
        let lock = DirLock::acquire(&io, dir)?;
        super::salvage::finish_interrupted_swap(&io, dir)?;
        super::next_segment::remove_leftovers(&io, dir)?;
        if opts.recovery == RecoveryMode::Salvage {
            super::salvage::repair_in_place(&io, dir)?;
        }
        let hasher = FastHash::new();
        let mut rec = recover(&io, dir, Access::Write(opts.recovery), &hasher)?;
        rec.segments.set_cached_window(opts.cached_sealed_segments);
        let end = end_position(&rec);
        let active = rec.active.expect("the writer always has an active segment");
        let mut state = rec.state;
        // Buffered policies fill chunks up to the write buffer size; a group
        // commit's chunk holds one group (small), so it just grows.
        let chunk_capacity = match opts.sync {
            SyncPolicy::Always => 0,
            _ => opts
                .write_buffer_size
                .saturating_add(64 * 1024)
                .min(16 << 20),
        };
        let mut writer = SegmentWriter::new(
            io.clone(),
            dir.to_path_buf(),
            active,
            rec.active_end,
            (opts.segment_size, opts.sync == SyncPolicy::Always),
        )?;
        let claims = (opts.sync == SyncPolicy::Always, writer.claims());
        if claims.0 && claims.1 {
            // Everything recovered is durable from here on, so the new
            // records' claims (`durable_before`, format §3), which start
            // from `end`, are true. Without claims, the first sync covers it.
            writer.sync()?;
        }
        state.pending = PendingLog::starting_at(end, chunk_capacity, claims);
        Ok(Core {
            dir: dir.to_path_buf(),
            io,
            state: RwLock::new(state),
            segments: rec.segments,
            notifier: Arc::new(SessionNotifier::new()),
            hasher,
            flush_kick: (opts.sync != SyncPolicy::Always).then(|| crossbeam_channel::bounded(1)),
            spare_window: super::read::spare_window(),
            opts,
            role: Role::Writer {
                commit: GroupCommit::new(writer, end),
                _lock: lock,
            },
        })
    }

    /// Opens `dir` to follow it read-only: no lock, no changes to any file.
    pub fn open_read_only(dir: &Path, opts: LogOptions) -> Result<Core> {
        let io = Io::new(None);
        super::salvage::refuse_unfinished_swap(dir)?;
        let hasher = FastHash::new();
        let rec = recover(&io, dir, Access::ReadOnly, &hasher)?;
        if let Some(active) = &rec.active {
            // Complete batches, which the writer never writes or cuts again.
            active.settle(rec.active_end);
        }
        let cursor = ReadCursor::after_recovery(&rec);
        Ok(Core {
            dir: dir.to_path_buf(),
            opts,
            io,
            state: RwLock::new(rec.state),
            segments: rec.segments,
            notifier: Arc::new(SessionNotifier::new()),
            hasher,
            role: Role::ReadOnly {
                cursor: Mutex::new(cursor),
            },
            flush_kick: None,
            spare_window: super::read::spare_window(),
        })
    }

    /// The group commit, for a writer.
    pub fn commit(&self) -> Option<&GroupCommit> {
        match &self.role {
            Role::Writer { commit, .. } => Some(commit),
            Role::ReadOnly { .. } => None,
        }
    }

    /// Wakes the long-poll waiters and watchers of the sessions in `wake`.
    pub fn wake(&self, wake: &Wake) {
        for (session, latest) in wake {
            self.notifier.publish(session, *latest);
        }
    }

    /// Writes and syncs everything appended so far (close, and the interval tick).
    pub fn sync_all(&self) -> Result<()> {
        if let Some(commit) = self.commit() {
            let wake = commit.sync_written(&self.state, &self.segments)?;
            self.wake(&wake);
        }
        Ok(())
    }

    /// Closing: syncs everything, then cuts the preallocated zeros off the
    /// active segment so a closed log's files hold only records, and ends it
    /// with a close mark (format §5).
    pub fn finish(&self) -> Result<()> {
        self.sync_all()?;
        match self.commit() {
            Some(commit) => commit.close(),
            None => Ok(()),
        }
    }

    /// Writes (without syncing) everything appended so far (`SyncPolicy::Never`).
    pub fn flush(&self) -> Result<()> {
        if let Some(commit) = self.commit() {
            let ticket = self.state.read().ticket();
            let wake = commit.commit_through(&self.state, &self.segments, ticket, false)?;
            self.wake(&wake);
        }
        Ok(())
    }
}

impl Drop for Core {
    fn drop(&mut self) {
        // Best effort: `LogStore::close` is the way to see errors.
        if self.state.read().failed.is_none() {
            let _ = self.finish();
        }
    }
}

/// Creates the log directory (owner-only) if missing, making its name durable.
fn create_log_dir(io: &Io, dir: &Path) -> Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    io.create_dir_all(dir)?;
    match dir.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => io.sync_dir(parent),
        _ => Ok(()),
    }
}
