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

struct Shared {
    pending: Mutex<Pending>,
    file: File,
    durable: AtomicU64,
    /// Group `g`'s appenders sleep on `words[g % 2]`.
    words: [AtomicU32; 2],
    work: AtomicU32,
    stop: AtomicBool,
    /// Groups are appended to a growing file (else written over zeros).
    grows: bool,
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
            let len = bytes.len() as u64;
            let at = if self.grows {
                at
            } else if at % ZEROED + len > ZEROED {
                0
            } else {
                at % ZEROED
            };
            self.file.write_all_at(&bytes, at).expect("raw group write");
            self.file.sync_data().expect("raw group fdatasync");
            self.durable.store(end, Ordering::Release);
            wake(&self.words[(group % 2) as usize], i32::MAX as u32);
        }
    }
}

/// A file of zeros to append over, removed when dropped.
pub struct RawGroupCommit {
    path: PathBuf,
    shared: Arc<Shared>,
}

impl RawGroupCommit {
    /// Creates and zero-fills the file in `dir` (256 MiB, synced).
    pub fn new(dir: &Path, name: &str) -> RawGroupCommit {
        RawGroupCommit::create(dir, name, false)
    }

    /// Creates an empty file in `dir` that each run grows further.
    pub fn growing(dir: &Path, name: &str) -> RawGroupCommit {
        RawGroupCommit::create(dir, name, true)
    }

    fn create(dir: &Path, name: &str, grows: bool) -> RawGroupCommit {
        let path = dir.join(name);
        let file = OpenOptions::new()
            .create(true)
            .truncate(true)
            .read(true)
            .write(true)
            .open(&path)
            .expect("raw group file");
        if !grows {
            super::disk::zero_fill(&file, 0, ZEROED);
        }
        let pending = Pending {
            bytes: Vec::new(),
            end: 0,
            taken_to: 0,
            groups: 0,
            idle: false,
        };
        let shared = Arc::new(Shared {
            pending: Mutex::new(pending),
            file,
            durable: AtomicU64::new(0),
            words: [AtomicU32::new(0), AtomicU32::new(0)],
            work: AtomicU32::new(0),
            stop: AtomicBool::new(false),
            grows,
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
        let _ = std::fs::remove_file(&self.path);
    }
}
