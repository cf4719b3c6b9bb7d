//! [`Populator`]: maps every page of the segments this process seals, from a
//! background thread, off the path of whoever sealed them.
//!
//! A segment sealed while the log runs was written through its file, not its
//! map, so without this each first read of one of its pages takes a page
//! fault (on a freshly built 10M-event log, first-touch pages had a p99 of
//! 2-3 ms; populated, 174 µs). Populating (`MADV_POPULATE_READ`) takes
//! ~5 ms for a cached 64 MiB segment and ~55 ms for one that is not, which
//! is why it is not done under the writer's lock.
//!
//! It is only a hint: if the kernel (before Linux 5.14) or the thread
//! refuses, reads fault as before. The thread is started with the first
//! sealed segment and joined when the store is dropped (a segment still
//! queued then is skipped), so no thread outlives the store.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

use crossbeam_channel::Sender;
use parking_lot::Mutex;

use super::segment::SegmentFile;

/// The background thread that populates sealed segments, once started.
#[derive(Default)]
pub(crate) struct Populator {
    worker: Mutex<Option<Worker>>,
}

struct Worker {
    jobs: Sender<Arc<SegmentFile>>,
    closing: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

impl Populator {
    /// Queues `segment` (sealed, so mapped) to have its pages mapped.
    pub fn populate(&self, segment: Arc<SegmentFile>) {
        if !cfg!(target_os = "linux") || segment.mapped().is_none() {
            return;
        }
        let mut worker = self.worker.lock();
        if worker.is_none() {
            *worker = Worker::start();
        }
        if let Some(w) = worker.as_ref() {
            let _ = w.jobs.send(segment);
        }
    }
}

impl Worker {
    /// `None` when no thread can be started (then nothing is populated).
    fn start() -> Option<Worker> {
        let (jobs, queue) = crossbeam_channel::unbounded::<Arc<SegmentFile>>();
        let closing = Arc::new(AtomicBool::new(false));
        let stop = Arc::clone(&closing);
        let run = move || {
            for segment in queue {
                if stop.load(Ordering::Acquire) {
                    break;
                }
                segment.populate();
            }
        };
        let thread = std::thread::Builder::new()
            .name("sessionlog-populate".into())
            .spawn(run)
            .ok()?;
        Some(Worker {
            jobs,
            closing,
            thread,
        })
    }
}

impl Drop for Populator {
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
    use crate::engine::io::Io;

    fn sealed_segment(dir: &std::path::Path) -> Arc<SegmentFile> {
        let path = dir.join("segment");
        std::fs::write(&path, vec![7u8; 1 << 20]).unwrap();
        let file = std::fs::File::open(&path).unwrap();
        Arc::new(SegmentFile::sealed(&Io::default(), 1, path, &file).unwrap())
    }

    #[test]
    fn dropping_the_populator_ends_its_thread_and_releases_every_segment() {
        let dir = tempfile::tempdir().unwrap();
        let segment = sealed_segment(dir.path());
        let populator = Populator::default();
        for _ in 0..3 {
            populator.populate(Arc::clone(&segment));
        }
        assert_eq!(populator.worker.lock().is_some(), cfg!(target_os = "linux"));
        drop(populator);
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
        let populator = Populator::default();
        populator.populate(Arc::clone(&active));
        assert!(populator.worker.lock().is_none());
        assert_eq!(Arc::strong_count(&active), 1);
    }
}
