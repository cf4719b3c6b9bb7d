//! [`SealedPages`]: what becomes of the cached pages of the segments this
//! process seals. One background thread, off the path of whoever sealed
//! them, takes each newly sealed segment in turn and
//!
//! - **populates** it: maps every page (`MADV_POPULATE_READ`). A segment
//!   sealed while the log runs was written through its file, not its map,
//!   so without this each first read of one of its pages takes a page
//!   fault (on a freshly built 10M-event log, first-touch pages had a p99
//!   of 2-3 ms; populated, 174 µs). Populating takes ~5 ms for a cached
//!   64 MiB segment and ~55 ms for one that is not, which is why it is not
//!   done under the writer's lock;
//! - **releases** the segment sealed `window` segments before it, when
//!   `LogOptions::cached_sealed_segments` sets a window: unmaps its pages
//!   and evicts them from the page cache, so the kernel can give the same
//!   memory to the segments being written next. With a window of 0 a
//!   segment is released as soon as it is sealed, and never populated.
//!
//! Why release: in a VM whose host takes back the guest's free memory
//! (free page reporting), a page the guest has not used lately costs a host
//! fault the first time it is filled, and a log left to grow in the page
//! cache fills only such pages. On this machine 64 durable appenders of
//! 4 KiB events slowed from ~65-80k to ~40-50k events/s over a few runs
//! while their logs stayed cached, and kept ~60-80k/s when the pages of
//! segments two behind the active one were released (BENCHMARKS.md). The
//! price: a read of a released segment goes to the disk the first time each
//! page is touched, as after a restart.
//!
//! Both are hints: if the kernel (before Linux 5.14 for populating) or the
//! thread refuses, reads fault as before and pages stay cached. A released
//! segment reads the same bytes (see `mmap::unmap_pages`). The thread is
//! started with the first sealed segment and joined when the store is
//! dropped (a segment still queued then is skipped), so no thread outlives
//! the store.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

use crossbeam_channel::{Receiver, Sender};
use parking_lot::Mutex;

use super::io::Io;
use super::segment::SegmentFile;

/// The background thread for sealed segments' pages, once started.
#[derive(Default)]
pub(crate) struct SealedPages {
    /// How many of the newest sealed segments keep their pages cached
    /// (`None`: all of them, as the kernel sees fit).
    window: Option<usize>,
    worker: Mutex<Option<Worker>>,
}

struct Worker {
    jobs: Sender<Arc<SegmentFile>>,
    closing: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

impl SealedPages {
    /// Sets the window (before the first segment is sealed).
    pub fn set_window(&mut self, window: Option<usize>) {
        self.window = window;
    }

    /// Queues `segment`, just sealed (so mapped), to be populated, and
    /// releases the one that falls out of the window (through `io`).
    pub fn sealed(&self, segment: Arc<SegmentFile>, io: &Io) {
        if !cfg!(target_os = "linux") || segment.mapped().is_none() {
            return;
        }
        let mut worker = self.worker.lock();
        if worker.is_none() {
            *worker = Worker::start(io.clone(), self.window);
        }
        if let Some(w) = worker.as_ref() {
            let _ = w.jobs.send(segment);
        }
    }
}

impl Worker {
    /// `None` when no thread can be started (then nothing is populated).
    fn start(io: Io, window: Option<usize>) -> Option<Worker> {
        let (jobs, queue) = crossbeam_channel::unbounded::<Arc<SegmentFile>>();
        let closing = Arc::new(AtomicBool::new(false));
        let stop = Arc::clone(&closing);
        let thread = std::thread::Builder::new()
            .name("sessionlog-pages".into())
            .spawn(move || run(&queue, &stop, &io, window))
            .ok()?;
        Some(Worker {
            jobs,
            closing,
            thread,
        })
    }
}

/// The thread's loop: segments in the order they were sealed, so the
/// window always holds the newest ones.
fn run(queue: &Receiver<Arc<SegmentFile>>, stop: &AtomicBool, io: &Io, window: Option<usize>) {
    let mut cached = VecDeque::new();
    for segment in queue {
        if stop.load(Ordering::Acquire) {
            break;
        }
        if window == Some(0) {
            segment.release_pages(io);
            continue;
        }
        segment.populate();
        let Some(window) = window else { continue };
        // One in, so at most one out.
        cached.push_back(segment);
        if cached.len() > window
            && let Some(old) = cached.pop_front()
        {
            old.release_pages(io);
        }
    }
}

impl Drop for SealedPages {
    fn drop(&mut self) {
        if let Some(w) = self.worker.get_mut().take() {
            w.closing.store(true, Ordering::Release);
            drop(w.jobs);
            let _ = w.thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn sealed_segment(dir: &Path, number: u64) -> Arc<SegmentFile> {
        let path = dir.join(format!("segment-{number}"));
        std::fs::write(&path, vec![7u8; 1 << 20]).unwrap();
        let file = std::fs::File::open(&path).unwrap();
        Arc::new(SegmentFile::sealed(&Io::default(), number, path, &file).unwrap())
    }

    #[test]
    fn dropping_it_ends_its_thread_and_lets_go_of_every_segment() {
        let dir = tempfile::tempdir().unwrap();
        let segment = sealed_segment(dir.path(), 1);
        let pages = SealedPages::default();
        for _ in 0..3 {
            pages.sealed(Arc::clone(&segment), &Io::default());
        }
        assert_eq!(pages.worker.lock().is_some(), cfg!(target_os = "linux"));
        drop(pages);
        // Joined: the thread and its queue held the only other references.
        assert_eq!(Arc::strong_count(&segment), 1);
        assert_eq!(segment.mapped().map(|m| m[12345]), Some(7));
    }

    #[test]
    fn an_active_segment_is_not_queued() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("active");
        let file = std::fs::File::create(&path).unwrap();
        let active = Arc::new(SegmentFile::open(2, path, file));
        let pages = SealedPages::default();
        pages.sealed(Arc::clone(&active), &Io::default());
        assert!(pages.worker.lock().is_none());
        assert_eq!(Arc::strong_count(&active), 1);
    }
}
