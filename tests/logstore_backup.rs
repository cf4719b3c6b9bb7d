//! `LogStore::backup_to`: a consistent, checked copy of an open log, taken
//! while appenders go on, from a writer or a read-only store.

mod logstore_util;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use logstore_util::{Expected, ev, open_small, open_small_buffered, segments};
use sessionlog::engine::inspect;
use sessionlog::{Error, EventQuery, LogOptions, LogStore, RecoveryMode, SessionStore};

/// Opens `dir` strictly: any damage at all, even a torn tail, is an error.
fn open_strict(dir: &std::path::Path) -> LogStore {
    let opts = LogOptions {
        recovery: RecoveryMode::Strict,
        ..LogOptions::default()
    };
    LogStore::open_with(dir, opts).expect("the backup opens strictly")
}

fn fill(store: &LogStore, expected: &mut Expected, sessions: u64, each: u64) {
    for n in 0..each {
        for s in 0..sessions {
            let stored = store
                .append_event_with_sequence(ev(&format!("s{s}"), n, 200))
                .unwrap();
            expected.add(&stored);
        }
    }
}

#[test]
fn a_backup_of_a_writer_holds_every_event_over_many_segments_and_is_closed_cleanly() {
    let root = tempfile::tempdir().unwrap();
    let (src, dst) = (root.path().join("log"), root.path().join("copy"));
    let store = open_small(&src, 8 << 10);
    let mut expected = Expected::default();
    fill(&store, &mut expected, 3, 40);
    let report = store.backup_to(&dst).unwrap();
    assert!(report.segments >= 5, "{report:?}");
    assert_eq!(report.records, 3 * 40, "every event");
    assert_eq!(report.segments as usize, segments(&dst).len());
    let verified = inspect::verify(&dst).unwrap();
    assert!(
        verified.problems.is_empty() && verified.closed_cleanly,
        "{verified:?}"
    );
    // The source goes on; the copy is a log of its own, cleanly closed.
    fill(&store, &mut expected, 3, 5);
    let copy = open_strict(&dst);
    for s in 0..3 {
        let name = format!("s{s}");
        let got = copy.get_events(&name, &EventQuery::new()).unwrap();
        assert_eq!(got, expected.sessions[&name][..40], "session {name}");
    }
    expected.check(&store);
}

#[test]
fn a_buffered_writer_syncs_first_so_the_backup_holds_what_was_just_appended() {
    let root = tempfile::tempdir().unwrap();
    let (src, dst) = (root.path().join("log"), root.path().join("copy"));
    let store = open_small_buffered(&src, 16 << 10);
    let mut expected = Expected::default();
    fill(&store, &mut expected, 2, 30);
    store.backup_to(&dst).unwrap();
    expected.check(&open_strict(&dst));
}

#[test]
fn a_backup_taken_while_appenders_run_holds_every_event_returned_before_it() {
    let root = tempfile::tempdir().unwrap();
    let (src, dst) = (root.path().join("log"), root.path().join("copy"));
    let store = open_small(&src, 16 << 10);
    let stop = AtomicBool::new(false);
    let before = std::thread::scope(|scope| {
        for t in 0..4 {
            let (store, stop) = (&store, &stop);
            scope.spawn(move || {
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    store
                        .append_event_with_sequence(ev(&format!("t{t}"), n, 300))
                        .unwrap();
                    n += 1;
                }
            });
        }
        std::thread::sleep(Duration::from_millis(100));
        let before: Vec<u64> = (0..4)
            .map(|t| store.get_latest_sequence(&format!("t{t}")).unwrap())
            .collect();
        store.backup_to(&dst).unwrap();
        stop.store(true, Ordering::Relaxed);
        before
    });
    let copy = open_strict(&dst);
    for (t, &latest) in before.iter().enumerate() {
        let name = format!("t{t}");
        let got = copy.get_events(&name, &EventQuery::new()).unwrap();
        assert!(
            got.len() as u64 >= latest,
            "{name}: {} < {latest}",
            got.len()
        );
        let all = store.get_events(&name, &EventQuery::new()).unwrap();
        assert_eq!(got[..], all[..got.len()], "{name}: a prefix of the source");
    }
}

#[test]
fn a_read_only_store_backs_up_a_log_another_writer_has_open() {
    let root = tempfile::tempdir().unwrap();
    let (src, dst) = (root.path().join("log"), root.path().join("copy"));
    let writer = open_small(&src, 8 << 10);
    let mut expected = Expected::default();
    fill(&writer, &mut expected, 2, 30);
    let follower = LogStore::open_read_only(&src).unwrap();
    fill(&writer, &mut expected, 2, 10);
    follower.backup_to(&dst).unwrap();
    expected.check(&open_strict(&dst));
    // A follower of a directory with no log yet backs up an empty log.
    let empty = root.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let report = LogStore::open_read_only(&empty)
        .unwrap()
        .backup_to(root.path().join("empty-copy"))
        .unwrap();
    assert_eq!((report.segments, report.records), (0, 0));
}

#[test]
fn a_destination_that_holds_anything_is_refused_and_left_as_it_was() {
    let root = tempfile::tempdir().unwrap();
    let (src, dst) = (root.path().join("log"), root.path().join("copy"));
    let store = open_small(&src, 8 << 10);
    fill(&store, &mut Expected::default(), 1, 3);
    std::fs::create_dir(&dst).unwrap();
    std::fs::write(dst.join("keep"), b"mine").unwrap();
    let err = store.backup_to(&dst).unwrap_err();
    assert!(matches!(err, Error::InvalidArgument(_)), "{err}");
    assert!(err.to_string().contains("not an empty directory"), "{err}");
    assert_eq!(std::fs::read(dst.join("keep")).unwrap(), b"mine");
    let err = store.backup_to(&src).unwrap_err();
    assert!(
        matches!(err, Error::InvalidArgument(_)),
        "the log itself: {err}"
    );
    // An empty directory is taken, and nothing is left beside it.
    std::fs::remove_file(dst.join("keep")).unwrap();
    store.backup_to(&dst).unwrap();
    let left: Vec<_> = std::fs::read_dir(root.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left.len(), 2, "only the log and the copy: {left:?}");
}

#[test]
fn damage_in_a_sealed_segment_fails_the_backup_naming_the_source_file_and_leaves_nothing() {
    let root = tempfile::tempdir().unwrap();
    let (src, dst) = (root.path().join("log"), root.path().join("copy"));
    let store = open_small(&src, 8 << 10);
    fill(&store, &mut Expected::default(), 2, 40);
    // Flip a byte in the middle of the first (sealed) segment's records.
    let first = segments(&src).remove(0);
    let mut bytes = std::fs::read(&first).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x40;
    std::fs::write(&first, bytes).unwrap();
    let err = store.backup_to(&dst).unwrap_err();
    match &err {
        Error::Corrupt { file, .. } => assert_eq!(file, &first, "{err}"),
        other => panic!("expected a corrupt-log error, got {other}"),
    }
    assert!(!dst.exists(), "no destination after a failed backup");
    let left = std::fs::read_dir(root.path()).unwrap().count();
    assert_eq!(left, 1, "the partial copy is removed");
}

#[test]
fn a_full_disk_during_the_copy_is_an_error_and_leaves_no_destination() {
    let root = tempfile::tempdir().unwrap();
    let (src, dst) = (root.path().join("log"), root.path().join("copy"));
    let faults = sessionlog::engine::FaultInjector::new();
    let opts = LogOptions {
        segment_size: 8 << 10,
        faults: Some(faults.clone()),
        ..LogOptions::default()
    };
    let store = LogStore::open_with(&src, opts).unwrap();
    let mut expected = Expected::default();
    fill(&store, &mut expected, 2, 40);
    faults.disk_full_after(10 << 10);
    let err = store.backup_to(&dst).unwrap_err();
    assert!(matches!(err, Error::Io { .. }), "{err}");
    assert!(!dst.exists(), "no destination after a failed backup");
    faults.heal();
    // The store itself did not fail: it goes on appending.
    fill(&store, &mut expected, 2, 2);
    store.backup_to(&dst).unwrap();
    expected.check(&open_strict(&dst));
}
