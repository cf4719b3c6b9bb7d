//! `LogOptions::cached_sealed_segments`: segments sealed by the writer are
//! released from the page cache once that many newer ones are sealed. The
//! log must read the same while and after they are released, under every
//! sync policy, and a released segment must really leave this process's
//! memory.

mod logstore_util;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use logstore_util::{Expected, all, ev, segments};
use sessionlog::{LogOptions, LogStore, SessionStore, SyncPolicy};

const SEGMENT: u64 = 16 * 1024;

fn open(dir: &Path, sync: SyncPolicy, window: Option<usize>) -> LogStore {
    let opts = LogOptions {
        sync,
        segment_size: SEGMENT,
        cached_sealed_segments: window,
        ..LogOptions::default()
    };
    LogStore::open_with(dir, opts).expect("open")
}

fn append(store: &LogStore, expected: &mut Expected, from: u64, count: u64) {
    for n in from..from + count {
        let session = ["a", "b", "c"][n as usize % 3];
        let stored = store
            .append_event_with_sequence(ev(session, n, 200))
            .expect("append");
        expected.add(&stored);
    }
}

/// The kilobytes of `path`'s map resident in this process
/// (`/proc/self/smaps`), if it is mapped.
fn resident_kib(path: &Path) -> Option<u64> {
    let smaps = std::fs::read_to_string("/proc/self/smaps").ok()?;
    let name = path.to_str()?;
    let mut lines = smaps.lines().skip_while(|l| !l.ends_with(name));
    lines.next()?;
    let rss = lines.find(|l| l.starts_with("Rss:"))?;
    rss.split_whitespace().nth(1)?.parse().ok()
}

/// Waits until `holds` is true of `path`'s resident kilobytes.
fn wait_for(path: &Path, what: &str, holds: impl Fn(Option<u64>) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !holds(resident_kib(path)) {
        assert!(Instant::now() < deadline, "{} never {what}", path.display());
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Waits until every segment sealed before the last `window` sealed ones
/// has no page mapped in this process, and those last ones are mapped
/// (populated for readers).
fn wait_until_released(dir: &Path, window: usize) {
    let segs = segments(dir);
    let sealed = &segs[..segs.len() - 1];
    let (released, kept) = sealed.split_at(sealed.len().saturating_sub(window));
    assert!(released.len() >= 3, "the test seals too few segments");
    for path in released {
        wait_for(path, "released", |kib| kib == Some(0));
    }
    for path in kept {
        wait_for(path, "populated", |kib| kib.is_some_and(|k| k > 0));
    }
}

#[test]
fn released_segments_leave_memory_and_read_the_same_events() {
    for sync in [SyncPolicy::Always, SyncPolicy::Never] {
        for window in [0, 1, 2] {
            let dir = tempfile::tempdir().unwrap();
            let store = open(dir.path(), sync, Some(window));
            let mut expected = Expected::default();
            append(&store, &mut expected, 0, 600);
            store.sync().unwrap();
            if cfg!(target_os = "linux") {
                wait_until_released(dir.path(), window);
            }
            expected.check(&store);
            store.close().unwrap();
            let reopened = LogStore::open(dir.path()).unwrap();
            expected.check(&reopened);
        }
    }
}

#[test]
fn readers_running_while_segments_are_released_see_only_whole_sessions_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(open(dir.path(), SyncPolicy::Never, Some(0)));
    let done = Arc::new(AtomicBool::new(false));
    let reader = {
        let (store, done) = (Arc::clone(&store), Arc::clone(&done));
        std::thread::spawn(move || {
            let mut reads = 0u64;
            while !done.load(Ordering::Acquire) || reads == 0 {
                let events = all(store.as_ref(), "a");
                for (i, e) in events.iter().enumerate() {
                    assert_eq!(e.sequence_number, Some(i as u64 + 1));
                    assert!(e.id.starts_with("a-"), "{}", e.id);
                }
                reads += 1;
            }
            reads
        })
    };
    let mut expected = Expected::default();
    append(&store, &mut expected, 0, 1500);
    done.store(true, Ordering::Release);
    assert!(reader.join().unwrap() > 0);
    expected.check(store.as_ref());
}

#[test]
fn without_a_window_nothing_is_released() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), SyncPolicy::Never, None);
    let mut expected = Expected::default();
    append(&store, &mut expected, 0, 600);
    store.sync().unwrap();
    expected.check(&store);
    if cfg!(target_os = "linux") {
        // Read just now, so mapped; nothing takes the pages away.
        let first = &segments(dir.path())[0];
        std::thread::sleep(Duration::from_millis(50));
        assert!(resident_kib(first).is_some_and(|kib| kib > 0));
    }
}
