//! [`LogStore`]: the durable store, a segmented append-only log in one directory.
//!
//! All sessions append to one active segment file; at `segment_size` it is
//! sealed and the next begins. The byte format is specified in
//! `format/README.md`: every record carries its length, a CRC32 over header
//! and body, its session sequence, the position of its session's previous
//! record, and a "batch continues" flag that makes batches atomic on disk.
//!
//! How it works, in short:
//!
//! - **Appending** (`append`): events are validated and encoded outside any
//!   lock; under the state lock duplicates are found (id index), sequences
//!   assigned and records encoded into the pending log (`pending`).
//! - **Durability** (`group_commit`, `committer`): under `SyncPolicy::Always`
//!   a committer thread writes everything pending with one positioned write
//!   and one `fdatasync` (a lone appender does so itself); the appenders
//!   park and are woken once the durable watermark covers them. With
//!   segments of 4 MiB or more the next segment is prepared ahead (header
//!   and synced zeros, `next_segment`), so a group writes over bytes
//!   already on disk. Records become visible (readers,
//!   long-poll waiters, watchers, duplicate appends) only then. Under `Never`
//!   and `Interval` records are visible at once, served from the pending log
//!   until the background thread has written them in large chunks.
//! - **Indexes** (`id_index`, `sparse_index`, `state`): per event, 13 bytes
//!   of id index slot at most 7/8 full (event-id hash -> record position,
//!   verified against the record on a hit); per session, the position of
//!   every 16th record. A query walks a session's previous-record links back
//!   from the nearest anchor, so it reads only the records it returns.
//! - **Recovery** (`recovery`, `scan`): on open every record is checked
//!   (CRC, keys, session continuity, unique ids; no JSON parsed) and indexed;
//!   the newest segment's torn tail is cut (also a power loss's torn write
//!   with valid records after its hole, told from damage by what each
//!   record claims was durable when it was made), other damage is an error
//!   naming file and offset ([`RecoveryMode`]). A clean close ends the log
//!   with a close mark claiming every record durable, so that damage to the
//!   last records before it is an error too, never cut as a tear.
//!
//! The modules, one job each:
//!
//! - `io`: every file operation, with fault injection for tests ([`FaultInjector`]);
//! - `lock`: one writer per directory (`LOCK`, `flock`);
//! - `segment`: reading records (sealed segments mapped, the active one
//!   mapped up to what is written for good, else by `pread`) and the
//!   `SegmentWriter`; `mmap` holds the crate's only `unsafe`;
//!   `next_segment`: the thread that prepares the next segment ahead;
//!   `sealed_pages`: the thread that maps sealed segments' pages for
//!   readers, and releases them from the page cache once out of the
//!   window `LogOptions::cached_sealed_segments` sets;
//! - `pending`: appended records not yet in a file (readable from memory);
//! - `append`, `read`: the two halves of the `SessionStore` implementation;
//! - `group_commit`: group commit, one `fdatasync` per group; `committer`:
//!   the thread that leads the groups under `SyncPolicy::Always`;
//! - `id_index`, `sparse_index`, `hash`, `state`: the in-memory indexes;
//! - `recovery`, `scan`: checking and indexing the log on open, torn tails;
//!   `scan_ahead`: sealed segments scanned on a second thread while the
//!   opening thread indexes the ones before;
//! - `readonly`: following a log another store writes;
//! - `core`, `options`: the open log and how it is opened;
//! - [`inspect`] (with `salvage`): verify, stats and salvage for the repair tool;
//! - `backup`: [`LogStore::backup_to`], a checked copy of an open log.

mod append;
mod backup;
mod committer;
mod core;
mod group_commit;
mod group_signal;
mod hash;
mod id_index;
pub mod inspect;
mod io;
mod lock;
mod mmap;
mod next_segment;
mod options;
mod pending;
mod read;
mod readonly;
mod recovery;
mod salvage;
mod scan;
mod scan_ahead;
mod sealed_pages;
mod segment;
mod spare_buffer;
mod sparse_index;
mod state;

use std::path::Path;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;

use self::committer::Committer;
use self::core::Core;
use crate::error::Result;
use crate::event::Event;
use crate::query::EventQuery;
use crate::store::{SessionStore, Watch, long_poll, validate_session_id};

pub use backup::BackupReport;
pub use io::FaultInjector;
pub use options::{LogOptions, RecoveryMode, SyncPolicy};

/// The durable [`SessionStore`]: every session's events in one segmented,
/// checksummed, append-only log in a directory.
///
/// - Under [`SyncPolicy::Always`] (the default) an append returns only once
///   it is on stable storage; concurrent appends share one `fdatasync`.
/// - An open store runs one helper thread: under `Always` the committer,
///   which leads the shared syncs whenever more than one appender waits;
///   under `Never` and `Interval` the background writer; for a read-only
///   store the refresher. It is stopped and joined on close and on drop.
///   Under `Always`, with segments of 4 MiB or more, a second one starts
///   once the active segment holds a sixteenth of the segment size: it
///   writes the next segment ahead (`N.prepared`, removed on close; format
///   §1, §5).
/// - Opening recovers from a crash or a power loss: a torn tail is cut,
///   other damage is an error naming the file and byte offset ([`RecoveryMode`]).
/// - One writer per directory: a second open fails with [`Error::Locked`](crate::Error::Locked)
///   until the first is closed or dropped. Any number of
///   [`open_read_only`](LogStore::open_read_only) followers may read along.
///
/// ```
/// use sessionlog::{Event, EventQuery, EventType, LogStore, SessionStore};
/// let dir = tempfile::tempdir()?;
/// let store = LogStore::open(dir.path())?;
/// let e = store.append_event_with_sequence(Event::new("s1", EventType::SessionCreated))?;
/// assert_eq!(e.sequence_number, Some(1));
/// store.close()?;
///
/// let store = LogStore::open(dir.path())?; // everything is still there
/// assert_eq!(store.get_events("s1", &EventQuery::new())?, vec![e]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct LogStore {
    // Both stopped (and joined) before `core` is dropped, so the last
    // reference to the core, and with it the directory lock, goes with the
    // handle, and the close's final sync runs alone.
    background: Option<Background>,
    committer: Option<Committer>,
    core: Arc<Core>,
}

impl LogStore {
    /// Opens (creating if missing) the log in `dir` with [`LogOptions::default`].
    pub fn open(dir: impl AsRef<Path>) -> Result<LogStore> {
        LogStore::open_with(dir, LogOptions::default())
    }

    /// Opens (creating if missing) the log in `dir` for appending.
    ///
    /// Fails with [`Error::Locked`](crate::Error::Locked) when the directory is open for writing
    /// elsewhere (after waiting at most ~50 ms for the lock: a child process this program just
    /// started can hold a copy of a released lock until it `exec`s), with [`Error::Corrupt`](crate::Error::Corrupt) on damage the recovery mode does not
    /// repair, and with [`Error::InvalidArgument`](crate::Error::InvalidArgument) on out-of-range options.
    pub fn open_with(dir: impl AsRef<Path>, opts: LogOptions) -> Result<LogStore> {
        let core = Arc::new(Core::open_writer(dir.as_ref(), opts)?);
        let committer = match core.opts.sync {
            SyncPolicy::Always => Committer::start(&core),
            _ => None,
        };
        let background = match core.opts.sync {
            SyncPolicy::Always => None,
            SyncPolicy::Never => Some(Background::start(&core, core.opts.flush_interval, None)),
            SyncPolicy::Interval(d) => Some(Background::start(
                &core,
                core.opts.flush_interval.min(d),
                Some(d),
            )),
        };
        Ok(LogStore {
            background,
            committer,
            core,
        })
    }

    /// Opens the log in `dir` to read along with its writer, with the default options.
    ///
    /// No lock is taken and no file is ever modified (an incomplete tail is
    /// just not read yet). The store sees the complete batches the writer has
    /// written to its files: queries pick up new records, and a background
    /// refresher (every `refresh_interval`) wakes long-poll waiters and
    /// watchers. Under `SyncPolicy::Always` the writer syncs right after each
    /// write, so what a follower sees is durable or about to be (a follower
    /// in another process cannot observe the `fdatasync` itself); under
    /// `Never` it sees buffered appends once they are written (within
    /// `flush_interval`). Appends fail with [`Error::ReadOnly`](crate::Error::ReadOnly).
    pub fn open_read_only(dir: impl AsRef<Path>) -> Result<LogStore> {
        LogStore::open_read_only_with(dir, LogOptions::default())
    }

    /// [`open_read_only`](LogStore::open_read_only) with options (only
    /// `refresh_interval` matters).
    pub fn open_read_only_with(dir: impl AsRef<Path>, opts: LogOptions) -> Result<LogStore> {
        let core = Arc::new(Core::open_read_only(dir.as_ref(), opts)?);
        let every = core.opts.refresh_interval.max(Duration::from_millis(1));
        let background = Some(Background::start(&core, every, None));
        Ok(LogStore {
            background,
            committer: None,
            core,
        })
    }

    /// Writes and syncs everything appended, then releases the directory.
    /// Dropping the store does the same, but cannot report errors.
    pub fn close(mut self) -> Result<()> {
        self.background.take();
        self.committer.take();
        self.core.finish()
    }

    /// The log directory.
    pub fn dir(&self) -> &Path {
        &self.core.dir
    }

    /// Whether the store was opened with [`open_read_only`](LogStore::open_read_only).
    pub fn is_read_only(&self) -> bool {
        self.core.commit().is_none()
    }

    /// Heap bytes held by the in-memory indexes (id index, sessions, sparse
    /// anchors): what the store keeps per stored event.
    pub fn index_memory_bytes(&self) -> usize {
        self.core.state.read().heap_bytes()
    }

    /// Makes every append so far durable now (useful under
    /// [`SyncPolicy::Never`]; a no-op for read-only stores).
    pub fn sync(&self) -> Result<()> {
        self.core.sync_all()
    }
}

impl Drop for LogStore {
    fn drop(&mut self) {
        self.background.take();
        self.committer.take();
    }
}

impl std::fmt::Debug for LogStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogStore")
            .field("dir", &self.core.dir)
            .field("read_only", &self.is_read_only())
            .field("sync", &self.core.opts.sync)
            .finish()
    }
}

impl SessionStore for LogStore {
    fn append_event_with_sequence(&self, event: Event) -> Result<Event> {
        self.core.append_one(event)
    }

    fn append_events(&self, events: Vec<Event>) -> Result<Vec<Event>> {
        self.core.append(events)
    }

    fn get_events(&self, session_id: &str, query: &EventQuery) -> Result<Vec<Event>> {
        validate_session_id(session_id)?;
        long_poll(&self.core.notifier, session_id, query, |q| {
            self.core.refresh()?;
            self.core.query_now(session_id, q)
        })
    }

    fn get_latest_sequence(&self, session_id: &str) -> Result<u64> {
        validate_session_id(session_id)?;
        self.core.refresh()?;
        Ok(self.core.latest(session_id))
    }

    fn watch(&self, session_id: &str) -> Option<Watch> {
        Some(self.core.notifier.watch(session_id))
    }
}

/// The store's helper thread: writes buffered appends (`Never`), syncs
/// (`Interval`) or picks up a writer's new records (read-only).
struct Background {
    stop: Option<Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Background {
    /// Ticks every `every` (and whenever the core's flush kick fires);
    /// syncs every `sync_every` when given.
    fn start(core: &Arc<Core>, every: Duration, sync_every: Option<Duration>) -> Background {
        let (stop, stopped) = crossbeam_channel::bounded::<()>(0);
        let core = Arc::clone(core);
        let thread = std::thread::Builder::new()
            .name("sessionlog-log".into())
            .spawn(move || {
                let never = crossbeam_channel::never();
                let kicked = core.flush_kick.as_ref().map_or(&never, |k| &k.1);
                let mut last_sync = Instant::now();
                loop {
                    crossbeam_channel::select! {
                        recv(stopped) -> _ => break,
                        recv(kicked) -> _ => {}
                        default(every) => {}
                    }
                    // Errors surface to callers: a failed write fails the store,
                    // a failed refresh fails the next query.
                    let _ = core.refresh().and_then(|()| core.flush());
                    if sync_every.is_some_and(|d| last_sync.elapsed() >= d) {
                        let _ = core.sync_all();
                        last_sync = Instant::now();
                    }
                }
            })
            .ok();
        Background {
            stop: Some(stop),
            thread,
        }
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        // Disconnecting the channel ends the thread's wait at once.
        self.stop.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
