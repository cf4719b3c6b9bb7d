//! Fault injection: failed and short writes, failed fdatasync and a full disk.
//! A failed append returns an error and stores nothing visible; the store
//! then refuses appends until reopened; reopening recovers exactly what
//! reached the disk, and never loses an acknowledged append.

mod logstore_util;

use std::path::Path;
use std::sync::Arc;

use logstore_util::{Expected, all, ev};
use sessionlog::engine::FaultInjector;
use sessionlog::{Error, Event, LogOptions, LogStore, SessionStore, SyncPolicy};

fn open_faulty(dir: &Path, segment_size: u64) -> (LogStore, FaultInjector) {
    let faults = FaultInjector::new();
    let opts = LogOptions {
        segment_size,
        faults: Some(faults.clone()),
        ..LogOptions::default()
    };
    (LogStore::open_with(dir, opts).unwrap(), faults)
}

fn fill(store: &LogStore, expected: &mut Expected, n: u64) {
    for i in 0..n {
        expected.add(&store.append_event_with_sequence(ev("s", i, 30)).unwrap());
    }
}

/// The store refuses appends with a clear error until reopened.
fn assert_refuses(store: &LogStore) {
    let err = store
        .append_event_with_sequence(ev("s", 999, 1))
        .unwrap_err();
    assert!(matches!(err, Error::Failed(_)), "{err}");
    assert!(err.to_string().contains("reopen"), "{err}");
}

#[test]
fn a_failed_write_fails_the_append_and_the_store_until_reopen() {
    for budget in [0, 10, 40, 70] {
        let dir = tempfile::tempdir().unwrap();
        let (store, faults) = open_faulty(dir.path(), 1 << 20);
        let mut expected = Expected::default();
        fill(&store, &mut expected, 5);
        faults.fail_writes_after(budget);
        let err = store
            .append_event_with_sequence(ev("s", 5, 30))
            .unwrap_err();
        assert!(matches!(&err, Error::Io { op: "write", .. }), "{err}");
        expected.check(&store); // the failed event is not visible
        faults.heal();
        assert_refuses(&store); // no pretending after a failure
        drop(store);
        let store = LogStore::open(dir.path()).unwrap();
        expected.check(&store);
        expected.add(&store.append_event_with_sequence(ev("s", 6, 1)).unwrap());
        expected.check(&store);
    }
}

#[test]
fn a_batch_cut_short_by_a_failed_write_is_dropped_whole() {
    let dir = tempfile::tempdir().unwrap();
    let (store, faults) = open_faulty(dir.path(), 1 << 20);
    let mut expected = Expected::default();
    fill(&store, &mut expected, 3);
    let batch: Vec<Event> = (10..14).map(|n| ev("s", n, 100)).collect();
    // Enough for the first two records to reach the file completely.
    faults.fail_writes_after(400);
    assert!(store.append_events(batch).is_err());
    drop(store);
    let store = LogStore::open(dir.path()).unwrap();
    expected.check(&store);
}

#[test]
fn a_failed_fdatasync_is_not_retried_and_reopen_recovers_what_is_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let (store, faults) = open_faulty(dir.path(), 1 << 20);
    let mut expected = Expected::default();
    fill(&store, &mut expected, 4);
    faults.fail_syncs(true);
    let attempted = ev("s", 4, 30);
    let err = store
        .append_event_with_sequence(attempted.clone())
        .unwrap_err();
    assert!(
        matches!(
            &err,
            Error::Io {
                op: "fdatasync",
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains(".seg"), "names the file: {err}");
    expected.check(&store);
    faults.heal();
    assert_refuses(&store);
    drop(store);
    // The write itself went through, so the record is in the file: reopening
    // recovers it (it was never acknowledged, and it is complete and valid).
    let store = LogStore::open(dir.path()).unwrap();
    let got = all(&store, "s");
    assert!(got.len() == 4 || got.len() == 5);
    assert_eq!(&got[..4], &expected.sessions["s"][..]);
    if let Some(extra) = got.get(4) {
        assert_eq!(
            extra,
            &Event {
                sequence_number: Some(5),
                ..attempted
            }
        );
    }
}

#[test]
fn a_full_disk_fails_cleanly_also_at_a_segment_rollover() {
    for budget in [0u64, 31, 32, 100, 1500, 5000] {
        let dir = tempfile::tempdir().unwrap();
        let (store, faults) = open_faulty(dir.path(), 2048);
        let mut expected = Expected::default();
        fill(&store, &mut expected, 20);
        faults.disk_full_after(budget);
        let err = loop {
            match store.append_event_with_sequence(ev("t", 0, 60)) {
                Ok(e) => expected.add(&e),
                Err(e) => break e,
            }
        };
        assert!(err.to_string().contains("No space left"), "{err}");
        expected.check(&store);
        assert_refuses(&store);
        drop(store);
        expected.check(&LogStore::open(dir.path()).unwrap());
    }
}

#[test]
fn concurrent_appenders_all_fail_on_a_failed_sync_and_acks_survive() {
    let dir = tempfile::tempdir().unwrap();
    let (store, faults) = open_faulty(dir.path(), 1 << 16);
    let store = Arc::new(store);
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let store = Arc::clone(&store);
            std::thread::spawn(move || {
                let mut acked = Vec::new();
                for n in 0..200u64 {
                    match store.append_event_with_sequence(ev(&format!("s{t}"), n, 20)) {
                        Ok(e) => acked.push(e),
                        Err(_) => return acked,
                    }
                }
                acked
            })
        })
        .collect();
    std::thread::sleep(std::time::Duration::from_millis(20));
    faults.fail_syncs(true);
    let acked: Vec<Vec<Event>> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    faults.heal();
    assert_refuses(&store);
    drop(store);
    let store = LogStore::open(dir.path()).unwrap();
    for (t, events) in acked.iter().enumerate() {
        let got = all(&store, &format!("s{t}"));
        assert!(got.len() >= events.len());
        assert_eq!(&got[..events.len()], &events[..], "thread {t}");
    }
}

#[test]
fn a_failed_buffered_write_fails_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let faults = FaultInjector::new();
    let opts = LogOptions {
        sync: SyncPolicy::Never,
        faults: Some(faults.clone()),
        ..LogOptions::default()
    };
    let store = LogStore::open_with(dir.path(), opts).unwrap();
    faults.fail_writes_after(0);
    // Buffered: the append itself succeeds; the write (by `sync` or the
    // background flusher, whichever comes first) fails and fails the store.
    store.append_event_with_sequence(ev("s", 1, 1)).unwrap();
    let err = store.sync().unwrap_err();
    assert!(
        matches!(err, Error::Io { op: "write", .. } | Error::Failed(_)),
        "{err}"
    );
    faults.heal();
    assert!(matches!(
        store.append_event_with_sequence(ev("s", 2, 1)),
        Err(Error::Failed(_))
    ));
    assert!(matches!(store.close(), Err(Error::Failed(_))));
    LogStore::open(dir.path()).unwrap();
}
