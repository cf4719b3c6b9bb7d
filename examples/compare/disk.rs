//! The disk's limit: what a plain file allows without any store in between.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

/// A raw loop of `write(record) + fdatasync` appending to a plain file: the
/// ceiling of any durable appender that makes each append durable before
/// answering. The file keeps growing across [`RawAppender::run`] calls
/// (or, [`RawAppender::preallocated`], is written over zeros).
pub struct RawAppender {
    file: File,
    path: std::path::PathBuf,
    /// Where the next record goes.
    at: u64,
    /// The file is zero-filled up to here (0: not preallocated, it grows).
    zeroed: u64,
}

/// How far a preallocated raw file is zero-filled ahead of its records.
const RAW_PREALLOCATE: u64 = 64 << 20;

impl RawAppender {
    /// A new, empty file in `dir`.
    pub fn new(dir: &Path, name: &str) -> RawAppender {
        let path = dir.join(name);
        let file = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .open(&path)
            .expect("raw file");
        RawAppender {
            file,
            path,
            at: 0,
            zeroed: 0,
        }
    }

    /// The same loop writing over zeros already in the file (as `LogStore`'s
    /// writer does), so an `fdatasync` writes data only, no size or block map:
    /// the ceiling for a durable appender that preallocates.
    pub fn preallocated(dir: &Path, name: &str) -> RawAppender {
        let mut raw = RawAppender::new(dir, name);
        raw.extend();
        raw
    }

    /// Zero-fills the next `RAW_PREALLOCATE` bytes and syncs them.
    fn extend(&mut self) {
        zero_fill(&self.file, self.zeroed, RAW_PREALLOCATE);
        self.zeroed += RAW_PREALLOCATE;
    }

    /// Appends `record`-byte records, each followed by `fdatasync`, for
    /// `budget`; returns each one's latency.
    pub fn run(&mut self, record: usize, budget: Duration) -> Vec<Duration> {
        let buf = vec![0xA5u8; record];
        let mut lat = Vec::new();
        let start = Instant::now();
        while start.elapsed() < budget {
            if self.zeroed > 0 && self.at + record as u64 > self.zeroed {
                self.extend();
            }
            let t = Instant::now();
            std::os::unix::fs::FileExt::write_all_at(&self.file, &buf, self.at).expect("raw write");
            self.file.sync_data().expect("raw fdatasync");
            lat.push(t.elapsed());
            self.at += record as u64;
        }
        lat
    }
}

impl Drop for RawAppender {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Writes `len` bytes of zeros (a whole number of MiB) into `file` from
/// `from` in 1 MiB writes, then syncs them.
pub fn zero_fill(file: &File, from: u64, len: u64) {
    use std::os::unix::fs::FileExt;
    let zeros = vec![0u8; 1 << 20];
    for at in (from..from + len).step_by(zeros.len()) {
        file.write_all_at(&zeros, at).expect("raw zero fill");
    }
    file.sync_data().expect("raw fdatasync");
}

/// Sequential write bandwidth in bytes/s: `total` bytes in 1 MiB writes,
/// then one `fdatasync`, timed together.
pub fn sequential_bandwidth(dir: &Path, total: u64) -> f64 {
    let path = dir.join("raw-bandwidth.bin");
    let mut file = File::create(&path).expect("raw file");
    let buf = vec![0x5Au8; 1 << 20];
    let start = Instant::now();
    let mut written = 0u64;
    while written < total {
        file.write_all(&buf).expect("raw write");
        written += buf.len() as u64;
    }
    file.sync_data().expect("raw fdatasync");
    let rate = written as f64 / start.elapsed().as_secs_f64();
    drop(file);
    let _ = std::fs::remove_file(&path);
    rate
}

/// Makes every file under `dir` durable (`fsync`), so no writeback of a
/// just-built log runs under the measurements that follow it.
pub fn settle(dir: &Path) {
    for entry in std::fs::read_dir(dir).expect("read dir").flatten() {
        let path = entry.path();
        if path.is_dir() {
            settle(&path);
        } else if let Ok(file) = File::open(&path) {
            file.sync_all().expect("fsync");
        }
    }
}
