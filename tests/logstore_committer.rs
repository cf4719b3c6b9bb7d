//! The group commit under `SyncPolicy::Always` with its committer thread:
//! the hand-overs between a lone appender leading its own group and the
//! committer leading for many, explicit syncs racing both, and a failure
//! while the committer leads. Each case runs under a watchdog, so a lost
//! wake-up fails the test instead of hanging the suite.

mod logstore_util;

use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use logstore_util::{all, ev};
use sessionlog::engine::FaultInjector;
use sessionlog::{Event, LogOptions, LogStore, SessionStore};

/// Runs `f` on its own thread; panics if it does not finish within `limit`.
fn within<T: Send + 'static>(limit: Duration, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(limit)
        .expect("the case hung (a lost wake-up?) or panicked")
}

/// `threads` appenders, `n` events each, on sessions `{prefix}{t}`; the
/// acknowledged events per thread.
fn append_from_threads(
    store: &Arc<LogStore>,
    prefix: &str,
    threads: usize,
    n: u64,
) -> Vec<Vec<Event>> {
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let (store, session) = (Arc::clone(store), format!("{prefix}{t}"));
            std::thread::spawn(move || {
                (0..n)
                    .map(|i| {
                        store
                            .append_event_with_sequence(ev(&session, i, 40))
                            .unwrap()
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    handles.into_iter().map(|h| h.join().unwrap()).collect()
}

/// Every acknowledged event is there, in order, numbered 1.. in its session.
fn assert_acked(store: &dyn SessionStore, prefix: &str, acked: &[Vec<Event>]) {
    for (t, events) in acked.iter().enumerate() {
        let got = all(store, &format!("{prefix}{t}"));
        assert_eq!(&got, events, "session {prefix}{t}");
        let seqs: Vec<u64> = got.iter().map(|e| e.sequence_number.unwrap()).collect();
        assert_eq!(seqs, (1..=events.len() as u64).collect::<Vec<_>>());
    }
}

#[test]
fn lone_and_crowded_phases_alternate_without_losing_a_wake_up() {
    within(Duration::from_secs(120), || {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(LogStore::open(dir.path()).unwrap());
        let mut phases = Vec::new();
        for round in 0..12 {
            // One appender (leads its own groups), then many (the committer
            // leads), then one again: each switch is a hand-over.
            let threads = if round % 2 == 0 { 1 } else { 12 };
            let prefix = format!("r{round}-");
            let acked = append_from_threads(&store, &prefix, threads, 30);
            assert_acked(&*store, &prefix, &acked);
            phases.push((prefix, acked));
        }
        drop(store);
        let store = LogStore::open(dir.path()).unwrap();
        for (prefix, acked) in &phases {
            assert_acked(&store, prefix, acked);
        }
    });
}

#[test]
fn explicit_syncs_racing_appenders_return() {
    within(Duration::from_secs(120), || {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(LogStore::open(dir.path()).unwrap());
        let syncer = {
            let store = Arc::clone(&store);
            std::thread::spawn(move || {
                for _ in 0..400 {
                    store.sync().unwrap();
                }
            })
        };
        let acked = append_from_threads(&store, "s", 8, 60);
        syncer.join().unwrap();
        assert_acked(&*store, "s", &acked);
    });
}

#[test]
fn batches_and_duplicates_from_many_threads_are_acknowledged_durable() {
    within(Duration::from_secs(120), || {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(LogStore::open(dir.path()).unwrap());
        let handles: Vec<_> = (0..8)
            .map(|t| {
                let store = Arc::clone(&store);
                std::thread::spawn(move || {
                    let session = format!("b{t}");
                    let mut acked = Vec::new();
                    for i in 0..20u64 {
                        let batch: Vec<Event> =
                            (0..3).map(|k| ev(&session, i * 3 + k, 30)).collect();
                        let stored = store.append_events(batch.clone()).unwrap();
                        // The same batch again: duplicates, answered with the stored events.
                        assert_eq!(store.append_events(batch).unwrap(), stored);
                        acked.extend(stored);
                    }
                    acked
                })
            })
            .collect();
        let acked: Vec<Vec<Event>> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        drop(store);
        let store = LogStore::open(dir.path()).unwrap();
        assert_acked(&store, "b", &acked);
    });
}

#[test]
fn a_failed_sync_under_the_committer_fails_every_waiter_and_nothing_hangs() {
    within(Duration::from_secs(120), || {
        let dir = tempfile::tempdir().unwrap();
        let faults = FaultInjector::new();
        let opts = LogOptions {
            faults: Some(faults.clone()),
            ..LogOptions::default()
        };
        let store = Arc::new(LogStore::open_with(dir.path(), opts).unwrap());
        let handles: Vec<_> = (0..16)
            .map(|t| {
                let store = Arc::clone(&store);
                std::thread::spawn(move || {
                    let session = format!("f{t}");
                    let mut acked = Vec::new();
                    let mut i = 0;
                    loop {
                        match store.append_event_with_sequence(ev(&session, i, 30)) {
                            Ok(e) => acked.push(e),
                            // The leader of the failed group gets the sync's
                            // own error, everyone after it `Failed`.
                            Err(sessionlog::Error::Failed(_) | sessionlog::Error::Io { .. }) => {
                                return acked;
                            }
                            Err(e) => panic!("unexpected error {e}"),
                        }
                        i += 1;
                    }
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(30));
        faults.fail_syncs(true);
        let acked: Vec<Vec<Event>> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        faults.heal();
        // Refused until reopened, even with the disk healed.
        let refused = store.append_event_with_sequence(ev("f0", 999_999, 1));
        assert!(matches!(refused, Err(sessionlog::Error::Failed(_))));
        drop(store);
        let store = LogStore::open(dir.path()).unwrap();
        for (t, events) in acked.iter().enumerate() {
            let got = all(&store, &format!("f{t}"));
            assert!(
                got.len() >= events.len(),
                "f{t}: an acknowledged append is lost"
            );
            assert_eq!(&got[..events.len()], &events[..], "f{t}");
        }
    });
}
