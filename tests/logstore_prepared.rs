//! Prepared segments (format §1): under `SyncPolicy::Always`, once the
//! active segment holds a sixteenth of the segment size, the next one is
//! written ahead (header and synced zeros) as `N.prepared` and renamed into
//! place when the log rolls over. The log must look the same to every
//! reader whether a segment was prepared or created, a crash must leave
//! nothing a reopen trips over, a closed log holds no prepared file, and a
//! log smaller than a sixteenth of a segment holds no second file.

mod logstore_util;

use std::path::Path;
use std::time::{Duration, Instant};

use logstore_util::{Expected, copy_dir, ev, open_small, prepared_files, segments};
use sessionlog::engine::{FaultInjector, inspect};
use sessionlog::{LogOptions, LogStore, SessionStore};

/// The smallest segment size that gets prepared segments.
const SEGMENT: u64 = 4 << 20;
/// The next segment is asked for once the active one holds this much.
const PREPARE_AT: u64 = SEGMENT / 16;

fn len(path: &Path) -> u64 {
    std::fs::metadata(path).unwrap().len()
}

/// Where a live segment's records end: its zeros ahead follow.
fn records_end(path: &Path) -> u64 {
    let bytes = std::fs::read(path).unwrap();
    bytes
        .iter()
        .rposition(|&b| b != 0)
        .map_or(0, |i| i as u64 + 1)
}

/// Appends batches of 32 events of about 4 KiB until `until` holds.
fn append_until(store: &LogStore, expected: &mut Expected, mut until: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut n = expected.sessions.values().map(Vec::len).sum::<usize>() as u64;
    while !until() {
        assert!(Instant::now() < deadline, "the condition never held");
        let batch = (0..32)
            .map(|i| ev(["a", "b"][i % 2], n + i as u64, 4000))
            .collect();
        for stored in store.append_events(batch).unwrap() {
            expected.add(&stored);
        }
        n += 32;
    }
}

/// Waits (up to 20 s) for `cond`.
fn wait_for(cond: impl Fn() -> bool, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !cond() {
        assert!(Instant::now() < deadline, "{what} never happened");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn the_next_segment_is_prepared_adopted_and_a_closed_log_holds_none() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_small(dir.path(), SEGMENT);
    let mut expected = Expected::default();
    append_until(&store, &mut expected, || {
        records_end(&segments(dir.path())[0]) >= PREPARE_AT
    });
    let next = dir.path().join("00000000000000000002.prepared");
    wait_for(
        || prepared_files(dir.path()) == [next.clone()] && len(&next) == SEGMENT,
        "preparation",
    );
    append_until(&store, &mut expected, || segments(dir.path()).len() == 2);
    // Adopted: renamed into place, still all its zeros ahead (a created
    // segment would hold its records and 256 KiB of zeros, far less).
    assert!(!next.exists(), "renamed to be segment 2");
    let files = segments(dir.path());
    assert_eq!(len(&files[1]), SEGMENT);
    let first = std::fs::read(&files[0]).unwrap();
    assert_ne!(first.last(), Some(&0), "segment 1 was cut back when sealed");
    append_until(&store, &mut expected, || segments(dir.path()).len() == 3);
    expected.check(&store);
    store.close().unwrap();
    assert!(
        prepared_files(dir.path()).is_empty(),
        "closing removes a prepared file"
    );
    let report = inspect::verify(dir.path()).unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    let store = open_small(dir.path(), SEGMENT);
    expected.check(&store);
}

#[test]
fn a_log_under_a_sixteenth_of_a_segment_has_no_second_file() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_small(dir.path(), SEGMENT);
    let mut expected = Expected::default();
    let end = || records_end(&segments(dir.path())[0]);
    // One batch of 32 events of about 4 KiB: half of the threshold.
    let mut appended = false;
    append_until(&store, &mut expected, || {
        std::mem::replace(&mut appended, true)
    });
    assert!(end() > PREPARE_AT / 4, "the batch is in the segment");
    assert!(end() < PREPARE_AT, "one batch stays under the threshold");
    // A request would start the thread, which creates the file at once.
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        prepared_files(dir.path()).is_empty(),
        "nothing asked for yet"
    );
    append_until(&store, &mut expected, || end() >= PREPARE_AT);
    let next = dir.path().join("00000000000000000002.prepared");
    wait_for(|| len_or_zero(&next) == SEGMENT, "preparation");
    expected.check(&store);
}

#[test]
fn a_crash_with_a_prepared_file_reopens_with_every_event_and_removes_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_small(dir.path(), SEGMENT);
    let mut expected = Expected::default();
    // Into an adopted segment 2, far enough that segment 3 is prepared too.
    append_until(&store, &mut expected, || segments(dir.path()).len() == 2);
    append_until(&store, &mut expected, || {
        records_end(&segments(dir.path())[1]) >= PREPARE_AT
    });
    let third = dir.path().join("00000000000000000003.prepared");
    wait_for(
        || len_or_zero(&third) == SEGMENT,
        "preparation of segment 3",
    );
    // What a crash leaves: the live files, the prepared one among them.
    let copy = tempfile::tempdir().unwrap();
    copy_dir(dir.path(), copy.path());
    drop(store);
    let read_only = LogStore::open_read_only(copy.path()).unwrap();
    expected.check(&read_only);
    drop(read_only);
    assert_eq!(
        prepared_files(copy.path()).len(),
        1,
        "readers leave it alone"
    );
    let reopened = open_small(copy.path(), SEGMENT);
    assert!(
        prepared_files(copy.path()).is_empty(),
        "the writer removes it"
    );
    expected.check(&reopened);
    // And the log goes on: into segment 3, created or prepared anew.
    append_until(&reopened, &mut expected, || {
        segments(copy.path()).len() == 3
    });
    reopened.close().unwrap();
    let reopened = open_small(copy.path(), SEGMENT);
    expected.check(&reopened);
}

fn len_or_zero(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

#[test]
fn buffered_logs_and_small_segments_prepare_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = logstore_util::open_small_buffered(dir.path(), SEGMENT);
    let mut expected = Expected::default();
    append_until(&store, &mut expected, || segments(dir.path()).len() == 2);
    assert!(prepared_files(dir.path()).is_empty());
    drop(store);
    let small = tempfile::tempdir().unwrap();
    let store = open_small(small.path(), SEGMENT / 4);
    let mut expected = Expected::default();
    append_until(&store, &mut expected, || segments(small.path()).len() == 3);
    assert!(prepared_files(small.path()).is_empty());
}

#[test]
fn a_nearly_full_disk_gets_no_prepared_segment_and_appends_go_on() {
    let dir = tempfile::tempdir().unwrap();
    let faults = FaultInjector::new();
    // Writes may use 11.5 MiB: the log's 5 MiB of records, about as many
    // bytes of zeros written ahead of them, and a little more. A prepared
    // segment (4 MiB) would take what the appends need, and fail the store.
    faults.disk_full_after(23 << 19);
    let opts = LogOptions {
        segment_size: SEGMENT,
        faults: Some(faults),
        ..LogOptions::default()
    };
    let store = LogStore::open_with(dir.path(), opts).unwrap();
    let mut expected = Expected::default();
    let written = || {
        segments(dir.path())
            .iter()
            .map(|p| records_end(p))
            .sum::<u64>()
    };
    let mut seen_prepared = false;
    append_until(&store, &mut expected, || {
        seen_prepared |= !prepared_files(dir.path()).is_empty();
        written() > 5 << 20
    });
    assert!(!seen_prepared, "no room for a prepared segment");
    assert_eq!(segments(dir.path()).len(), 2, "the log rolled over");
    expected.check(&store);
}
