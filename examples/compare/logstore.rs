//! How the comparison opens, closes, reopens and kills `LogStore`.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sessionlog::{Event, EventType, LogOptions, LogStore, SessionStore, SyncPolicy};

use super::alloc::Mem;

/// Whether the real `LogStore` is measured.
pub const REAL: bool = true;

/// Sessions the killed child appends to (`fill-0` ..).
pub const FILL_SESSIONS: usize = 16;

/// An open durable store.
pub struct Log(Arc<LogStore>);

/// Durable stores are opened as one would open a log that is written much
/// faster than it is read back: the pages of segments two behind the active
/// one are released from the page cache (`cached_sealed_segments`). Buffered ones
/// (the query logs among them) keep every page. `COMPARE_CACHED_SEALED`
/// overrides it for the durable stores (`none`, or a number).
fn options(durable: bool) -> LogOptions {
    let (sync, cached_sealed_segments) = if durable {
        (SyncPolicy::Always, durable_cached_window())
    } else {
        (SyncPolicy::Never, None)
    };
    LogOptions {
        sync,
        cached_sealed_segments,
        ..LogOptions::default()
    }
}

fn durable_cached_window() -> Option<usize> {
    match std::env::var("COMPARE_CACHED_SEALED") {
        Ok(v) if v == "none" => None,
        Ok(v) => Some(v.parse().expect("COMPARE_CACHED_SEALED: none or a number")),
        Err(_) => Some(2),
    }
}

impl Log {
    /// Opens the store in `dir`: `SyncPolicy::Always` when `durable`, else `Never`.
    pub fn open(dir: &Path, durable: bool) -> Log {
        Log(Arc::new(
            LogStore::open_with(dir, options(durable)).expect("open LogStore"),
        ))
    }

    /// The store, to share with threads.
    pub fn store(&self) -> Arc<dyn SessionStore> {
        self.0.clone()
    }

    /// Writes and syncs everything appended so far.
    pub fn sync(&self) {
        self.0.sync().expect("sync LogStore");
    }

    /// Closes it cleanly (every thread sharing it has finished).
    pub fn close(self) {
        let store = Arc::try_unwrap(self.0).unwrap_or_else(|_| panic!("store still shared"));
        store.close().expect("close LogStore");
    }
}

/// What one reopen took: time, events found (by `count`), memory held while open.
pub type Reopen = (Duration, u64, Mem);

/// Opens `dir` (after a clean close or a kill), times it, counts its events
/// with `count`, measures what the open store holds, and closes it.
pub fn reopen(dir: &Path, count: &dyn Fn(&dyn SessionStore) -> u64) -> Option<Reopen> {
    let before = Mem::now();
    let start = Instant::now();
    let store = LogStore::open_with(dir, options(false)).expect("reopen LogStore");
    let took = start.elapsed();
    let mem = Mem::now().since(before);
    let found = count(&store);
    store.close().expect("close LogStore");
    Some((took, found, mem))
}

/// Backs the (closed) log in `dir` up into `dest` through a read-only
/// store: how long `backup_to` took (the copy, every file synced, and the
/// check of the copy), and what it copied.
pub fn backup(dir: &Path, dest: &Path) -> (Duration, sessionlog::BackupReport) {
    let store = LogStore::open_read_only(dir).expect("open LogStore read-only");
    let start = Instant::now();
    let report = store.backup_to(dest).expect("backup_to");
    (start.elapsed(), report)
}

/// Child mode: fills `dir` with `bytes` of `body_len`-byte events
/// (buffered), says "ready", and keeps appending until killed.
pub fn fill_until_killed(dir: &Path, bytes: u64, body_len: usize) {
    let store = LogStore::open_with(dir, options(false)).expect("open LogStore");
    let body = "x".repeat(body_len.saturating_sub(96));
    let mut written = 0u64;
    let mut told = false;
    for n in 0u64.. {
        let session = format!("fill-{}", n as usize % FILL_SESSIONS);
        let e = Event::new(session, EventType::MessageStreamed).with_data("text", body.as_str());
        store.append_event_with_sequence(e).expect("append");
        written += body_len as u64 + 32;
        if !told && written >= bytes {
            println!("ready");
            std::io::stdout().flush().expect("stdout");
            told = true;
        }
    }
}
