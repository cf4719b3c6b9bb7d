//! The disk's limit for many blocking appenders: a group commit with
//! nothing else in it (no encoding, no index, no reads), the same protocol
//! as `LogStore`'s under `SyncPolicy::Always` (a committer thread writes
//! everything pending with one `pwrite` over preallocated zeros and one
//! `fdatasync`, then wakes the group with one futex broadcast; the appenders
//! sleep on their group's word). What `LogStore` reaches with 64 threads is
//! measured against this, as the single appender is against the raw loop.
//!
//! Two files (twelfth session): one zero-filled and synced before the clock,
//! which groups write over and wrap around (no group pays for the file's
//! growth: the limit of a log whose space was paid for earlier), and one
//! that grows, each group appended past its end (every `fdatasync` also
//! writes the new size and blocks: the limit of a log that grows, unless it
//! writes its zeros ahead, which costs the disk the same bytes again).
//!
//! A third target (sixteenth session, `zero_ahead`) keeps the cost model of
//! a log that grows *and* writes over zeros, as `LogStore` does: 64 MiB
//! segments whose zeros a thread writes while the groups fill the one
//! before, so the disk writes every byte twice. It is also run with one
//! appender, so its own 64/1 ratio says what such a design allows.
//!
//! The growing file goes on growing from run to run, as `LogStore`'s log
//! does from round to round (thirteenth session). Cut back to empty before
//! each run, as it was, it wrote into page-cache pages freed a moment
//! before, which in this VM are far cheaper than pages not freed recently
//! (BENCHMARKS.md, "What limits us"): it measured a limit no growing log
//! meets.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use rustix::thread::futex;

use super::Stats;
use super::zero_ahead::ZeroAhead;

/// How far the file is zero-filled (and synced) before the clock starts;
/// groups wrap around to its start (written over, which costs the same
/// sync: no size or block map changes).
const ZEROED: u64 = 256 << 20;

/// Records appended but not yet taken by the committer.
struct Pending {
    bytes: Vec<u8>,
    /// The logical end of the file (where the next record goes).
    end: u64,
    /// Where the next group starts.
    taken_to: u64,
    /// Groups taken so far.
    groups: u64,
    /// The committer sleeps on `work` and must be woken.
    idle: bool,
}

/// Where the groups go.
enum Target {
    /// Over a file zero-filled before the clock, wrapping around.
    OverZeros(File),
    /// Appended to a file that grows.
    Growing(File),
    /// Over segments whose zeros a thread writes meanwhile.
    ZeroAhead(Mutex<ZeroAhead>),
}

impl Target {
    /// Writes one group that starts at `at` of the log, and syncs it.
    fn write_and_sync(&self, bytes: &[u8], at: u64) {
        let len = bytes.len() as u64;
        let (file, at) = match self {
            Target::ZeroAhead(z) => {
                let mut z = z.lock();
                z.write(bytes).sync_data().expect("raw group fdatasync");
                return;
            }
            Target::Growing(file) => (file, at),
            Target::OverZeros(file) if at % ZEROED + len > ZEROED => (file, 0),
            Target::OverZeros(file) => (file, at % ZEROED),
        };
        file.write_all_at(bytes, at).expect("raw group write");
        file.sync_data().expect("raw group fdatasync");
    }
}

struct Shared {
    pending: Mutex<Pending>,
    target: Target,
    durable: AtomicU64,
    /// Group `g`'s appenders sleep on `words[g % 2]`.
    words: [AtomicU32; 2],
    work: AtomicU32,
    stop: AtomicBool,
}

fn wait(word: &AtomicU32, value: u32) {
    let _ = futex::wait(word, futex::Flags::PRIVATE, value, None);
}

fn wake(word: &AtomicU32, n: u32) {
    word.fetch_add(1, Ordering::Release);
    let _ = futex::wake(word, futex::Flags::PRIVATE, n);
}

impl Shared {
    /// One durable append of `record`: returns once it is on stable storage.
    fn append(&self, record: &[u8]) {
        let (target, group, kick) = {
            let mut p = self.pending.lock();
            p.bytes.extend_from_slice(record);
            p.end += record.len() as u64;
            (p.end, p.groups + 1, std::mem::take(&mut p.idle))
        };
        if kick {
            wake(&self.work, 1);
        }
        let word = &self.words[(group % 2) as usize];
        loop {
            let value = word.load(Ordering::Acquire);
            if self.durable.load(Ordering::Acquire) >= target {
                return;
            }
            wait(word, value);
        }
    }

    /// The committer: take everything pending, write, sync, wake; sleep when idle.
    fn commit(&self) {
        loop {
            let value = self.work.load(Ordering::Acquire);
            let taken = {
                let mut p = self.pending.lock();
                if p.bytes.is_empty() {
                    p.idle = true;
                    None
                } else {
                    p.groups += 1;
                    let end = p.end;
                    let at = std::mem::replace(&mut p.taken_to, end);
                    Some((std::mem::take(&mut p.bytes), at, end, p.groups))
                }
            };
            let Some((bytes, at, end, group)) = taken else {
                if self.stop.load(Ordering::Acquire) {
                    return;
                }
                wait(&self.work, value);
                continue;
            };
            self.target.write_and_sync(&bytes, at);
            self.durable.store(end, Ordering::Release);
            wake(&self.words[(group % 2) as usize], i32::MAX as u32);
        }
    }
}

/// A file of zeros to append over, removed when dropped.
pub struct RawGroupCommit {
    /// The file (none for the segments written ahead, which remove themselves).
    path: Option<PathBuf>,
    shared: Arc<Shared>,
}

impl RawGroupCommit {
    /// Creates and zero-fills the file in `dir` (256 MiB, synced).
    pub fn new(dir: &Path, name: &str) -> RawGroupCommit {
        let (path, file) = RawGroupCommit::create_file(dir, name);
        super::disk::zero_fill(&file, 0, ZEROED);
        RawGroupCommit::over(Target::OverZeros(file), Some(path))
    }

    /// Creates an empty file in `dir` that each run grows further.
    pub fn growing(dir: &Path, name: &str) -> RawGroupCommit {
        let (path, file) = RawGroupCommit::create_file(dir, name);
        RawGroupCommit::over(Target::Growing(file), Some(path))
    }

    /// Segments `NAME.N` in `dir`, each zero-filled by a thread while the
    /// one before takes the groups (see `zero_ahead`).
    pub fn zeroing_ahead(dir: &Path, name: &str) -> RawGroupCommit {
        let target = Target::ZeroAhead(Mutex::new(ZeroAhead::new(dir, name)));
        RawGroupCommit::over(target, None)
    }

    fn create_file(dir: &Path, name: &str) -> (PathBuf, File) {
        let path = dir.join(name);
        let file = OpenOptions::new()
            .create(true)
            .truncate(true)
            .read(true)
            .write(true)
            .open(&path)
            .expect("raw group file");
        (path, file)
    }

    fn over(target: Target, path: Option<PathBuf>) -> RawGroupCommit {
        let pending = Pending {
            bytes: Vec::new(),
            end: 0,
            taken_to: 0,
            groups: 0,
            idle: false,
        };
        let shared = Arc::new(Shared {
            pending: Mutex::new(pending),
            target,
            durable: AtomicU64::new(0),
            words: [AtomicU32::new(0), AtomicU32::new(0)],
            work: AtomicU32::new(0),
            stop: AtomicBool::new(false),
        });
        RawGroupCommit { path, shared }
    }

    /// `threads` appenders of `record`-byte records for `budget`, from
    /// where the last run stopped (each run starts its own committer).
    pub fn run(&self, threads: usize, record: usize, budget: Duration) -> Stats {
        let committer = {
            let shared = Arc::clone(&self.shared);
            self.shared.stop.store(false, Ordering::Release);
            std::thread::spawn(move || shared.commit())
        };
        let barrier = Arc::new(Barrier::new(threads + 1));
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let (shared, barrier) = (Arc::clone(&self.shared), Arc::clone(&barrier));
                std::thread::spawn(move || {
                    let record = vec![t as u8; record];
                    barrier.wait();
                    let (start, mut lat) = (Instant::now(), Vec::new());
                    while start.elapsed() < budget {
                        let t0 = Instant::now();
                        shared.append(&record);
                        lat.push(t0.elapsed());
                    }
                    lat
                })
            })
            .collect();
        barrier.wait();
        let start = Instant::now();
        let lat: Vec<Duration> = handles
            .into_iter()
            .flat_map(|h| h.join().expect("raw appender"))
            .collect();
        let elapsed = start.elapsed();
        self.shared.stop.store(true, Ordering::Release);
        wake(&self.shared.work, 1);
        committer.join().expect("raw committer");
        Stats::from_latencies(lat, elapsed)
    }
}

impl Drop for RawGroupCommit {
    fn drop(&mut self) {
        if let Some(path) = &self.path {
            let _ = std::fs::remove_file(path);
        }
    }
}
