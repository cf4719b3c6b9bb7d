//! Preallocated space (format §5): the writer keeps zeros ahead of its
//! records in the newest segment. After a crash that space is still there;
//! it is the log's clean end in every recovery mode, for every reader and
//! for the inspection tools, and sealed segments and closed logs never have it.

mod logstore_util;

use logstore_util::{Expected, copy_dir, ev, open_small, segments};
use sessionlog::engine::inspect;
use sessionlog::format::record::trailing_close_mark;
use sessionlog::{LogOptions, LogStore, RecoveryMode, SessionStore};

/// Whether the file ends in zeros (the writer's preallocated space).
fn ends_in_zeros(path: &std::path::Path) -> bool {
    std::fs::read(path).unwrap().last() == Some(&0)
}

/// A live log with several segments, copied as a crash would leave it.
fn crashed_copy(segment_size: u64) -> (tempfile::TempDir, Expected, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = open_small(dir.path(), segment_size);
    let mut expected = Expected::default();
    for i in 0..300u64 {
        let session = ["a", "b", "c"][i as usize % 3];
        expected.add(
            &store
                .append_event_with_sequence(ev(session, i, 40))
                .unwrap(),
        );
    }
    let copy = tempfile::tempdir().unwrap();
    copy_dir(dir.path(), copy.path());
    drop(store);
    (dir, expected, copy)
}

#[test]
fn a_crash_leaves_zeros_that_every_mode_opens_as_the_end() {
    let (_live, expected, copy) = crashed_copy(16 << 10);
    let newest = segments(copy.path()).pop().unwrap();
    assert!(ends_in_zeros(&newest), "the live writer preallocated");
    for recovery in [
        RecoveryMode::Strict,
        RecoveryMode::TolerateTail,
        RecoveryMode::Salvage,
    ] {
        let work = tempfile::tempdir().unwrap();
        copy_dir(copy.path(), work.path());
        let opts = LogOptions {
            recovery,
            ..LogOptions::default()
        };
        let store =
            LogStore::open_with(work.path(), opts).unwrap_or_else(|e| panic!("{recovery:?}: {e}"));
        expected.check(&store);
        // Appends continue right after the last record, over the zeros.
        let next = store.append_event_with_sequence(ev("a", 999, 1)).unwrap();
        assert_eq!(next.sequence_number, Some(101), "{recovery:?}");
        store.close().unwrap();
        let report = inspect::verify(work.path()).unwrap();
        assert!(
            report.problems.is_empty(),
            "{recovery:?}: {:?}",
            report.problems
        );
        assert_eq!(report.records, 301, "{recovery:?}");
    }
}

#[test]
fn tools_and_read_only_openers_see_a_live_log_as_clean() {
    let (_live, expected, copy) = crashed_copy(16 << 10);
    let report = inspect::verify(copy.path()).unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert_eq!(report.records, 300);
    let reader = LogStore::open_read_only(copy.path()).unwrap();
    expected.check(&reader);
}

#[test]
fn sealed_segments_and_closed_logs_hold_only_records() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_small(dir.path(), 16 << 10);
    for i in 0..300u64 {
        store.append_event_with_sequence(ev("a", i, 40)).unwrap();
    }
    let files = segments(dir.path());
    assert!(files.len() > 2, "the log rolled over");
    for sealed in &files[..files.len() - 1] {
        assert!(
            !ends_in_zeros(sealed),
            "{} was cut back when sealed",
            sealed.display()
        );
    }
    store.close().unwrap();
    // Closing cuts the zeros and ends the log with a close mark (format §5),
    // whose own last bytes are zeros.
    let newest = std::fs::read(segments(dir.path()).last().unwrap()).unwrap();
    let mark = trailing_close_mark(&newest).expect("a clean close ends in a close mark");
    assert!(
        newest[..mark].last() != Some(&0),
        "close cuts the zeros before the mark"
    );
    let report = inspect::verify(dir.path()).unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
}

#[test]
fn zeros_in_a_sealed_segment_are_damage() {
    let (_live, _, copy) = crashed_copy(16 << 10);
    let files = segments(copy.path());
    let sealed = &files[0];
    let mut bytes = std::fs::read(sealed).unwrap();
    bytes.extend_from_slice(&[0u8; 4096]);
    std::fs::write(sealed, &bytes).unwrap();
    let err = LogStore::open(copy.path()).unwrap_err();
    assert!(err.to_string().contains("sealed"), "{err}");
    let report = inspect::verify(copy.path()).unwrap();
    assert!(!report.is_openable(), "{:?}", report.problems);
}

#[test]
fn a_version_1_log_is_read_and_its_segment_continued_without_zeros() {
    use sessionlog::format::segment::{FORMAT_VERSION, encode_segment_header_of_version};
    let dir = tempfile::tempdir().unwrap();
    let store = open_small(dir.path(), 16 << 10);
    let mut expected = Expected::default();
    for i in 0..10u64 {
        expected.add(&store.append_event_with_sequence(ev("a", i, 40)).unwrap());
    }
    store.close().unwrap();
    // Versions 1 and 2 lay out the same bytes: restating the header makes
    // this the log a version 1 writer would have left.
    let first = segments(dir.path()).pop().unwrap();
    let mut bytes = std::fs::read(&first).unwrap();
    bytes[..32].copy_from_slice(&encode_segment_header_of_version(1, 1));
    std::fs::write(&first, &bytes).unwrap();
    assert_eq!(inspect::format_version(dir.path()).unwrap(), Some(1));

    let store = open_small(dir.path(), 16 << 10);
    expected.check(&store);
    expected.add(&store.append_event_with_sequence(ev("a", 10, 40)).unwrap());
    assert!(!ends_in_zeros(&first), "a version 1 segment gets no zeros");
    for i in 11..300u64 {
        expected.add(&store.append_event_with_sequence(ev("a", i, 40)).unwrap());
    }
    let newest = segments(dir.path()).pop().unwrap();
    assert_ne!(newest, first, "the log rolled over");
    assert!(
        ends_in_zeros(&newest),
        "a new segment is version {FORMAT_VERSION}, preallocated"
    );
    store.close().unwrap();
    assert!(inspect::verify(dir.path()).unwrap().problems.is_empty());
    expected.check(&LogStore::open(dir.path()).unwrap());
}
