//! The disk's limit: what a plain file allows without any store in between.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use super::Stats;

/// A raw loop of `write(record) + fdatasync` appending to a new file, for up to
/// `max_ops` records or `budget` of time: the ceiling of any durable appender
/// that makes each append durable before answering.
pub fn write_fdatasync_loop(dir: &Path, record: usize, max_ops: usize, budget: Duration) -> Stats {
    let path = dir.join("raw-fdatasync.bin");
    let mut file = OpenOptions::new().create(true).truncate(true).write(true).open(&path).expect("raw file");
    let buf = vec![0xA5u8; record];
    let mut lat = Vec::with_capacity(max_ops.min(1 << 20));
    let start = Instant::now();
    while lat.len() < max_ops && start.elapsed() < budget {
        let t = Instant::now();
        file.write_all(&buf).expect("raw write");
        file.sync_data().expect("raw fdatasync");
        lat.push(t.elapsed());
    }
    let stats = Stats::from_latencies(lat, start.elapsed());
    drop(file);
    let _ = std::fs::remove_file(&path);
    stats
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
