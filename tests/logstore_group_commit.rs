//! Group commit under contention: many durable appenders, duplicates of
//! records still in flight, and `sync` / buffered flushes running at the same
//! time. Every append returns (no follower sleeps forever), every returned
//! event is stored with the sequence it was given, and nothing is doubled.
//! Under `SyncPolicy::Always` also the committer thread's hand-overs: a lone
//! appender leading its own groups and the committer leading for many, in
//! turn, and a failed sync while the committer leads.

mod logstore_util;

use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use logstore_util::{all, ev};
use sessionlog::engine::FaultInjector;
use sessionlog::{Event, EventQuery, EventType, LogOptions, LogStore, SessionStore, SyncPolicy};

const THREADS: usize = 24;
const PER_THREAD: usize = 400;

/// Runs `work` on another thread and fails the test if it has not finished
/// within `limit` (a lost wake-up shows as a hang).
fn within<T: Send + 'static>(limit: Duration, work: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || tx.send(work()).expect("send result"));
    rx.recv_timeout(limit)
        .expect("appenders did not finish: a wake-up was lost")
}

/// Each thread appends to its own session (every third event is sent twice,
/// the repeat racing its own group commit) while one more thread keeps
/// calling `sync`. Returns every thread's acknowledged sequences.
fn hammer(store: Arc<LogStore>) -> Vec<Vec<u64>> {
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let syncer = {
        let (store, stop) = (Arc::clone(&store), Arc::clone(&stop));
        std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                store.sync().expect("sync");
            }
        })
    };
    let appenders: Vec<_> = (0..THREADS)
        .map(|t| {
            let store = Arc::clone(&store);
            std::thread::spawn(move || {
                let session = format!("s-{t}");
                let mut seqs = Vec::new();
                for i in 0..PER_THREAD {
                    let e = Event::new(session.as_str(), EventType::MessageSent)
                        .with_data("i", i as u64);
                    let stored = store.append_event_with_sequence(e.clone()).expect("append");
                    if i % 3 == 0 {
                        let again = store.append_event_with_sequence(e).expect("repeat");
                        assert_eq!(again.sequence_number, stored.sequence_number);
                    }
                    seqs.push(stored.sequence_number.expect("a sequence"));
                }
                seqs
            })
        })
        .collect();
    let seqs = appenders
        .into_iter()
        .map(|h| h.join().expect("appender"))
        .collect();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    syncer.join().expect("syncer");
    seqs
}

fn check(dir: &std::path::Path, seqs: &[Vec<u64>]) {
    let store = LogStore::open(dir).expect("reopen");
    for (t, got) in seqs.iter().enumerate() {
        let want: Vec<u64> = (1..=PER_THREAD as u64).collect();
        assert_eq!(got, &want, "thread {t} acknowledged sequences");
        let stored = store
            .get_events(&format!("s-{t}"), &EventQuery::new())
            .expect("read");
        let on_disk: Vec<u64> = stored.iter().filter_map(|e| e.sequence_number).collect();
        assert_eq!(on_disk, want, "thread {t} events after reopen");
    }
}

fn run(sync: SyncPolicy) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().to_path_buf();
    let opts = LogOptions {
        sync,
        // Small segments: groups also cross segment boundaries.
        segment_size: 64 << 10,
        ..LogOptions::default()
    };
    let seqs = within(Duration::from_secs(60), move || {
        let store = Arc::new(LogStore::open_with(&path, opts).expect("open"));
        let seqs = hammer(Arc::clone(&store));
        Arc::try_unwrap(store)
            .unwrap_or_else(|_| panic!("store still shared"))
            .close()
            .expect("close");
        seqs
    });
    check(dir.path(), &seqs);
}

#[test]
fn durable_appenders_with_repeats_and_syncs_all_return() {
    run(SyncPolicy::Always);
}

#[test]
fn buffered_appenders_with_flushes_and_syncs_all_return() {
    run(SyncPolicy::Never);
    run(SyncPolicy::Interval(Duration::from_millis(1)));
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
    within(Duration::from_secs(60), || {
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
fn batches_and_duplicates_from_many_threads_are_acknowledged_durable() {
    within(Duration::from_secs(60), || {
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
    within(Duration::from_secs(60), || {
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
