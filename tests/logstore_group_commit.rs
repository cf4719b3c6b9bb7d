//! Group commit under contention: many durable appenders, duplicates of
//! records still in flight, and `sync` / buffered flushes running at the same
//! time. Every append returns (no follower sleeps forever), every returned
//! event is stored with the sequence it was given, and nothing is doubled.

use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

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
