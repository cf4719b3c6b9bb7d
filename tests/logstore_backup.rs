//! `LogStore::backup_to`: a consistent, checked copy of an open log, taken
//! while appenders go on, from a writer or a read-only store.

mod logstore_util;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use logstore_util::{ChildTest, Expected, ev, open_small, open_small_buffered, segments};
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
    // Missing parents are created.
    let nested = root.path().join("copy").join("deeper").join("still");
    store.backup_to(&nested).unwrap();
    assert_eq!(inspect::verify(&nested).unwrap().records, 3);
    std::fs::remove_dir_all(dst.join("deeper")).unwrap();
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

/// Set for the child process of the kill test: the directory holding its
/// log (`log/`) and the copies it makes (`copy-<cycle>-<n>/`).
const CHILD_ROOT: &str = "SESSIONLOG_BACKUP_CHILD_ROOT";
const CHILD_CYCLE: &str = "SESSIONLOG_BACKUP_CHILD_CYCLE";

/// Not a test on its own: the kill test's child (this binary re-run with
/// `CHILD_ROOT` set). One thread appends durably; the main thread backs the
/// log up again and again, printing `COPY <n> <latest before it>` after each.
#[test]
fn backup_child_process() {
    let Ok(root) = std::env::var(CHILD_ROOT) else {
        return;
    };
    let root = std::path::PathBuf::from(root);
    let cycle = std::env::var(CHILD_CYCLE).unwrap();
    let store = open_small(&root.join("log"), 64 << 10);
    let stop = AtomicBool::new(false);
    std::thread::scope(|scope| {
        scope.spawn(|| {
            for n in 0.. {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                store.append_event_with_sequence(ev("s", n, 500)).unwrap();
            }
        });
        for n in 0..10_000 {
            let before = store.get_latest_sequence("s").unwrap();
            store
                .backup_to(root.join(format!("copy-{cycle}-{n}")))
                .unwrap();
            println!("COPY {n} {before}");
        }
        stop.store(true, Ordering::Relaxed);
    });
}

/// Runs the child for cycle `cycle`, kills it (SIGKILL) a random moment
/// after its first finished copy; returns the copies it reported, with
/// the latest sequence before each.
fn run_backup_child_and_kill(root: &std::path::Path, cycle: u32) -> Vec<(String, u64)> {
    let envs = [
        (CHILD_ROOT, root.as_os_str().to_owned()),
        (CHILD_CYCLE, cycle.to_string().into()),
    ];
    let child = ChildTest::spawn("backup_child_process", &envs);
    let first = child.lines.recv_timeout(Duration::from_secs(60));
    std::thread::sleep(Duration::from_millis(rand::random::<u64>() % 150));
    let reported = first.into_iter().chain(child.kill());
    reported
        .filter_map(|l| {
            let mut w = l.strip_prefix("COPY ")?.split(' ');
            let (n, before) = (w.next()?, w.next()?.parse().ok()?);
            Some((format!("copy-{cycle}-{n}"), before))
        })
        .collect()
}

#[test]
fn a_backup_killed_at_any_moment_leaves_a_whole_copy_or_none_under_its_name() {
    let root = tempfile::tempdir().unwrap();
    let mut reported = Vec::new();
    for cycle in 0..6 {
        reported.extend(run_backup_child_and_kill(root.path(), cycle));
    }
    assert!(!reported.is_empty(), "the children made copies");
    let log = LogStore::open_read_only(root.path().join("log")).unwrap();
    let all = log.get_events("s", &EventQuery::new()).unwrap();
    let (mut whole, mut partial) = (0, 0);
    for entry in std::fs::read_dir(root.path()).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        if name == "log" {
            continue;
        }
        if name.starts_with('.') && name.contains(".backup-") {
            partial += 1; // the hidden directory of a copy the kill cut short
            continue;
        }
        assert!(name.starts_with("copy-"), "unexpected entry {name}");
        // Whole: a copy cut short would lack the close mark it ends with
        // (which only a copy of the empty log, one bare segment, has not).
        let v = inspect::verify(root.path().join(&name)).unwrap();
        let empty = v.records == 0 && v.segments == 1;
        assert!(
            v.problems.is_empty() && (v.closed_cleanly || empty),
            "{name}: {v:?}"
        );
        let copy = open_strict(&root.path().join(&name));
        let got = copy.get_events("s", &EventQuery::new()).unwrap();
        assert_eq!(got[..], all[..got.len()], "{name}: a prefix of the log");
        if let Some((_, before)) = reported.iter().find(|(n, _)| *n == name) {
            assert!(
                got.len() as u64 >= *before,
                "{name}: {} < {before}",
                got.len()
            );
        }
        whole += 1;
    }
    assert!(whole >= reported.len(), "every reported copy is there");
    eprintln!("copies: {whole} whole, {partial} cut short by a kill");
}
