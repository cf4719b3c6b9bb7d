//! Close marks (format §5): a clean close ends the newest segment with a mark
//! claiming every record before it durable, so damage to the last records
//! before a clean close is reported with file and offset, never cut like a
//! crash's torn tail. Marks between records, left by earlier closes, are
//! skipped by every reader; a torn mark loses only itself.

mod logstore_util;

use std::path::{Path, PathBuf};

use logstore_util::{Expected, as_if_crashed, corrupt_on_open, ev, segments};
use sessionlog::engine::inspect;
use sessionlog::format::record::{parse_header, trailing_close_mark};
use sessionlog::{Event, LogOptions, LogStore, SessionStore, SyncPolicy};

fn opts(sync: SyncPolicy) -> LogOptions {
    LogOptions {
        sync,
        ..LogOptions::default()
    }
}

/// A log of a few singles and then a batch, closed cleanly; returns what it
/// holds, its newest segment and the offset of its close mark.
fn closed_log(dir: &Path, sync: SyncPolicy) -> (Expected, PathBuf, usize) {
    let store = LogStore::open_with(dir, opts(sync)).unwrap();
    let mut expected = Expected::default();
    for n in 0..5 {
        expected.add(&store.append_event_with_sequence(ev("s", n, 40)).unwrap());
    }
    let batch: Vec<Event> = (0..3).map(|n| ev("t", n, 200)).collect();
    for e in store.append_events(batch).unwrap() {
        expected.add(&e);
    }
    store.close().unwrap();
    let seg = segments(dir).pop().unwrap();
    let mark = trailing_close_mark(&std::fs::read(&seg).unwrap()).expect("a close mark");
    (expected, seg, mark)
}

/// The offsets of the records of a segment's bytes: (events, close marks).
fn record_offsets(bytes: &[u8]) -> (Vec<usize>, Vec<usize>) {
    let (mut events, mut marks) = (Vec::new(), Vec::new());
    let mut at = 32;
    while at < bytes.len() {
        let header = parse_header(&bytes[at..]).unwrap();
        if header.is_close_mark() {
            marks.push(at);
        } else {
            events.push(at);
        }
        at += header.record_len();
    }
    (events, marks)
}

#[test]
fn damage_to_the_last_record_before_a_clean_close_is_reported_not_cut() {
    for sync in [SyncPolicy::Always, SyncPolicy::Never] {
        let dir = tempfile::tempdir().unwrap();
        let (expected, seg, mark) = closed_log(dir.path(), sync);
        let original = std::fs::read(&seg).unwrap();
        let last = *record_offsets(&original).0.last().unwrap();
        for at in last..mark {
            let mut bytes = original.clone();
            bytes[at] ^= 1 << (at % 8);
            std::fs::write(&seg, &bytes).unwrap();
            let (file, offset, reason) = corrupt_on_open(dir.path(), opts(sync));
            assert_eq!((file, offset), (seg.clone(), last as u64), "flip at {at}");
            assert!(reason.contains("not a torn tail"), "{reason}");
            assert_eq!(std::fs::read(&seg).unwrap(), bytes, "nothing was cut");
        }
        // Without the mark, as a crash leaves it, the same flip reads as a
        // torn tail, and the batch it ends is cut.
        std::fs::write(&seg, &original).unwrap();
        assert!(inspect::verify(dir.path()).unwrap().closed_cleanly);
        assert!(as_if_crashed(dir.path()));
        assert!(!inspect::verify(dir.path()).unwrap().closed_cleanly);
        let mut bytes = std::fs::read(&seg).unwrap();
        bytes[last + 40] ^= 1;
        std::fs::write(&seg, &bytes).unwrap();
        let store = LogStore::open_with(dir.path(), opts(sync)).unwrap();
        assert_eq!(store.get_latest_sequence("s").unwrap(), 5);
        assert_eq!(store.get_latest_sequence("t").unwrap(), 0);
        drop(store);
        // And with the original bytes, everything opens.
        std::fs::write(&seg, &original).unwrap();
        expected.check(&LogStore::open(dir.path()).unwrap());
    }
}

#[test]
fn a_torn_close_mark_loses_only_the_mark() {
    let dir = tempfile::tempdir().unwrap();
    let (expected, seg, mark) = closed_log(dir.path(), SyncPolicy::Always);
    let original = std::fs::read(&seg).unwrap();
    let mut damages: Vec<Vec<u8>> = (mark..original.len())
        .map(|cut| original[..cut].to_vec())
        .collect();
    for at in mark..original.len() {
        let mut bytes = original.clone();
        bytes[at] ^= 0x10;
        damages.push(bytes);
    }
    for bytes in damages {
        std::fs::write(&seg, &bytes).unwrap();
        let store = LogStore::open(dir.path()).unwrap();
        expected.check(&store);
        drop(store);
        assert_eq!(
            trailing_close_mark(&std::fs::read(&seg).unwrap()),
            Some(mark),
            "cut back to the records, then closed again"
        );
    }
}

#[test]
fn marks_between_records_are_skipped_and_an_idle_reopen_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut expected = Expected::default();
    for round in 0..4 {
        let store = LogStore::open(dir.path()).unwrap();
        for n in 0..3 {
            let e = ev(["a", "b"][n % 2], round * 10 + n as u64, 30);
            expected.add(&store.append_event_with_sequence(e).unwrap());
        }
        store.close().unwrap();
    }
    let seg = segments(dir.path()).pop().unwrap();
    let closed = std::fs::read(&seg).unwrap();
    let (events, marks) = record_offsets(&closed);
    assert_eq!((events.len(), marks.len()), (12, 4), "one mark per close");

    // Opened and closed (or dropped) without an append: not a byte changes.
    LogStore::open(dir.path()).unwrap().close().unwrap();
    drop(LogStore::open(dir.path()).unwrap());
    assert_eq!(std::fs::read(&seg).unwrap(), closed);

    // Every reader skips the marks.
    expected.check(&LogStore::open(dir.path()).unwrap());
    expected.check(&LogStore::open_read_only(dir.path()).unwrap());
    let report = inspect::verify(dir.path()).unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert_eq!((report.records, report.closed_cleanly), (12, true));
    let mut scanned = 0;
    inspect::scan(dir.path(), |_| scanned += 1).unwrap();
    assert_eq!(scanned, 12);

    // Damage to a record before an earlier close's mark is damage too.
    let mut bytes = closed.clone();
    bytes[events[1] + 40] ^= 1;
    std::fs::write(&seg, &bytes).unwrap();
    let (_, offset, _) = corrupt_on_open(dir.path(), LogOptions::default());
    assert_eq!(offset, events[1] as u64);
}

#[test]
fn a_follower_reads_through_marks_as_the_writer_closes_and_reopens() {
    let dir = tempfile::tempdir().unwrap();
    let mut expected = Expected::default();
    let writer = LogStore::open(dir.path()).unwrap();
    expected.add(&writer.append_event_with_sequence(ev("s", 0, 10)).unwrap());
    let follower = LogStore::open_read_only(dir.path()).unwrap();
    expected.check(&follower);
    writer.close().unwrap();
    for round in 1..4 {
        // Each close wrote a mark, which the follower has read past; the
        // writer goes on after it.
        let writer = LogStore::open(dir.path()).unwrap();
        expected.add(
            &writer
                .append_event_with_sequence(ev("s", round, 10))
                .unwrap(),
        );
        expected.check(&follower);
        writer.close().unwrap();
        expected.check(&follower);
    }
}
