//! The file a bare group commit writes into when it keeps the log's cost
//! model: the log grows, in 64 MiB segments, and a thread of its own writes
//! each next segment's zeros (1 MiB writes, each synced) while the groups
//! fill the current one, as `LogStore`'s preparer does
//! (`engine/next_segment.rs`). Its groups write over zeros like the bare
//! commit over a file zero-filled before the clock, but the disk meanwhile
//! writes every byte a second time, as zeros (sixteenth session: a
//! throwaway driver of this form reached 10.5-12.7× its own single
//! appender at 4 KiB).
//!
//! A used segment is removed when the one after the next is asked for, so
//! the disk holds at most three.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::thread::JoinHandle;

/// The segment size, `LogOptions::segment_size`'s default.
const SEGMENT: u64 = 64 << 20;
/// Zeros are written and synced this much at a time.
const CHUNK: usize = 1 << 20;

/// Segments of zeros written ahead, and where the next group goes.
pub struct ZeroAhead {
    file: File,
    /// Where the next group starts in `file`.
    at: u64,
    /// The number of `file`'s segment.
    number: u64,
    ask: Option<Sender<u64>>,
    ready: Receiver<File>,
    thread: Option<JoinHandle<()>>,
}

impl ZeroAhead {
    /// Starts the zeroing thread in `dir` and waits for the first segment.
    pub fn new(dir: &Path, name: &str) -> ZeroAhead {
        let (ask, asked) = channel::<u64>();
        let (done, ready) = channel();
        let base = dir.join(name);
        let thread = std::thread::spawn(move || zero_segments(&base, &asked, &done));
        ask.send(0).expect("zeroing thread");
        ask.send(1).expect("zeroing thread");
        let file = ready.recv().expect("first zeroed segment");
        ZeroAhead {
            file,
            at: 0,
            number: 0,
            ask: Some(ask),
            ready,
            thread: Some(thread),
        }
    }

    /// Writes `bytes` over the zeros, first moving to the next segment
    /// (syncing this one, waiting for the next if it is not ready) when
    /// they do not fit; returns the file to sync.
    pub fn write(&mut self, bytes: &[u8]) -> &File {
        if self.at + bytes.len() as u64 > SEGMENT {
            self.file.sync_data().expect("zero-ahead fdatasync");
            self.file = self.ready.recv().expect("next zeroed segment");
            self.number += 1;
            self.at = 0;
            if let Some(ask) = &self.ask {
                ask.send(self.number + 1).expect("zeroing thread");
            }
        }
        self.file
            .write_all_at(bytes, self.at)
            .expect("zero-ahead group write");
        self.at += bytes.len() as u64;
        &self.file
    }
}

impl Drop for ZeroAhead {
    fn drop(&mut self) {
        self.ask = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The zeroing thread: writes each segment asked for, removing the one
/// three before it, until the writer hangs up; then removes what is left.
fn zero_segments(base: &Path, asked: &Receiver<u64>, done: &Sender<File>) {
    let path = |n: u64| PathBuf::from(format!("{}.{n}", base.display()));
    let zeros = vec![0u8; CHUNK];
    let mut last = None;
    for number in asked {
        if let Some(old) = number.checked_sub(3) {
            let _ = std::fs::remove_file(path(old));
        }
        let file = OpenOptions::new()
            .create(true)
            .truncate(true)
            .read(true)
            .write(true)
            .open(path(number))
            .expect("zero-ahead segment");
        for at in (0..SEGMENT).step_by(CHUNK) {
            file.write_all_at(&zeros, at).expect("zero-ahead zeros");
            file.sync_data().expect("zero-ahead zeros fdatasync");
        }
        last = Some(number);
        if done.send(file).is_err() {
            break;
        }
    }
    for n in last.map_or(0..0, |l| l.saturating_sub(3)..l + 1) {
        let _ = std::fs::remove_file(path(n));
    }
}
