//! Subscriptions: backfill then live without a gap or a duplicate under
//! concurrent writers, resume from a cursor, filters, waiting past the end,
//! a stalled subscriber, polling fallback, error retry, closing, and the
//! synchronous release of the store. Every check is a function over any
//! `Arc<dyn SessionStore>`; the `memory` and `logstore` modules run them.

mod runtime_support;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crossbeam_channel::select;
use runtime_support::*;
use sessionlog::runtime::{SubscriptionConfig, subscribe_with_config};
use sessionlog::{
    Error, EventType, SessionEvent, SessionStore, SubscribeOptions, Subscription, subscribe,
};

/// `writers` threads each append `per_writer` events to `session`, half one
/// by one and half in batches of 5; returns their join handles.
fn spawn_writers(
    store: &Arc<dyn SessionStore>,
    session: &'static str,
    writers: usize,
    per_writer: usize,
) -> Vec<std::thread::JoinHandle<()>> {
    (0..writers)
        .map(|w| {
            let store = store.clone();
            std::thread::spawn(move || {
                let run = format!("w{w}");
                let mut left = per_writer;
                while left > 0 {
                    let n = if left.is_multiple_of(2) {
                        left.min(5)
                    } else {
                        1
                    };
                    let batch = (0..n)
                        .map(|_| ev(session, EventType::MessageStreamed, Some(&run)))
                        .collect();
                    store.append_events(batch).expect("append batch");
                    left -= n;
                }
            })
        })
        .collect()
}

pub fn backfill_then_live_under_writers(store: Arc<dyn SessionStore>) {
    append_n(&*store, "s", 300, None);
    let sub = subscribe(store.clone(), "s", from(0)).unwrap();
    let writers = spawn_writers(&store, "s", 4, 500);
    let other = spawn_writers(&store, "other", 1, 200);
    let got = take(&sub, 2300);
    for w in writers.into_iter().chain(other) {
        w.join().unwrap();
    }
    assert_eq!(
        seqs(&got),
        (1..=2300).collect::<Vec<_>>(),
        "gap-free, in order"
    );
    assert!(got.iter().all(|e| e.session_id == "s"));
    assert!(
        sub.recv_timeout(SHORT).is_none(),
        "no duplicate after the last event"
    );
}

/// A subscriber that stops and comes back with last seen + 1 misses nothing
/// and sees nothing twice.
pub fn resume_from_cursor(store: Arc<dyn SessionStore>) {
    append_n(&*store, "s", 200, None);
    let sub = subscribe(store.clone(), "s", from(1)).unwrap();
    let first = take(&sub, 100);
    let last_seen = first.last().unwrap().sequence_number.unwrap();
    sub.unsubscribe();
    append_n(&*store, "s", 50, None);
    let sub = subscribe(store.clone(), "s", from(last_seen + 1)).unwrap();
    let rest = take(&sub, 150);
    assert_eq!(
        seqs(first.iter().chain(&rest)),
        (1..=250).collect::<Vec<_>>()
    );
    assert!(sub.recv_timeout(SHORT).is_none());
}

/// Filters by run and by type (and both), over backlog and live events,
/// with a page size small enough that pages skip non-matching events.
pub fn filters_by_run_and_type(store: Arc<dyn SessionStore>) {
    let config = SubscriptionConfig {
        page_size: 3,
        ..SubscriptionConfig::default()
    };
    let mut expected = (Vec::new(), Vec::new(), Vec::new());
    let mut append = |i: usize| {
        let run = ["a", "b", "c"][i % 3];
        let kind = if i.is_multiple_of(5) {
            EventType::RunStarted
        } else {
            EventType::MessageStreamed
        };
        let seq = store
            .append_event_with_sequence(ev("s", kind, Some(run)))
            .unwrap()
            .sequence_number
            .unwrap();
        if run == "b" {
            expected.0.push(seq);
        }
        if kind == EventType::RunStarted {
            expected.1.push(seq);
            if run == "c" && seq >= 20 {
                expected.2.push(seq);
            }
        }
    };
    (0..60).for_each(&mut append);
    let by_run = SubscribeOptions {
        run_id: Some("b".into()),
        ..from(0)
    };
    let by_type = SubscribeOptions {
        event_type: Some(EventType::RunStarted),
        ..from(0)
    };
    let both = SubscribeOptions {
        run_id: Some("c".into()),
        event_type: Some(EventType::RunStarted),
        from_sequence: 20,
    };
    let subs: Vec<Subscription> = [by_run, by_type, both]
        .into_iter()
        .map(|o| subscribe_with_config(store.clone(), "s", o, config.clone()).unwrap())
        .collect();
    (60..120).for_each(&mut append);
    for (sub, want) in subs.iter().zip([&expected.0, &expected.1, &expected.2]) {
        assert_eq!(&seqs(&take(sub, want.len())), want);
        assert!(
            sub.recv_timeout(SHORT).is_none(),
            "nothing beyond the matches"
        );
    }
}

/// Subscribing past the end waits for the events to reach `from_sequence`.
pub fn past_the_end_waits(store: Arc<dyn SessionStore>) {
    append_n(&*store, "s", 10, None);
    let sub = subscribe(store.clone(), "s", from(50)).unwrap();
    assert!(sub.recv_timeout(SHORT).is_none());
    append_n(&*store, "s", 30, None);
    assert!(
        sub.recv_timeout(SHORT).is_none(),
        "still before sequence 50"
    );
    append_n(&*store, "s", 20, None);
    assert_eq!(seqs(&take(&sub, 11)), (50..=60).collect::<Vec<_>>());
    assert!(sub.recv_timeout(SHORT).is_none());
}

/// A subscriber that reads nothing while 20,000 events are appended holds
/// at most its buffer's capacity, blocks no writer, then catches up and gets
/// every event exactly once.
pub fn stalled_subscriber(store: Arc<dyn SessionStore>) {
    let sub = subscribe(store.clone(), "s", from(0)).unwrap();
    let fast = subscribe(store.clone(), "s", from(0)).unwrap();
    let capacity = sub.capacity();
    let writers = spawn_writers(&store, "s", 4, 5000);
    // The fast subscriber keeps up meanwhile: the stalled one blocks nobody.
    let fast_got = take(&fast, 20_000);
    while writers.iter().any(|w| !w.is_finished()) {
        assert!(sub.receiver().len() <= capacity);
        std::thread::sleep(Duration::from_millis(5));
    }
    writers.into_iter().for_each(|w| w.join().unwrap());
    assert!(
        eventually(LONG, || sub.receiver().len() == capacity),
        "the buffer fills up"
    );
    std::thread::sleep(SHORT);
    assert_eq!(sub.receiver().len(), capacity, "and never grows beyond it");
    let got = take(&sub, 20_000);
    let all: Vec<u64> = (1..=20_000).collect();
    assert_eq!(seqs(&got), all);
    assert_eq!(seqs(&fast_got), all);
    assert!(sub.recv_timeout(SHORT).is_none());
}

/// Stores that cannot notify (and may not long-poll) are polled.
pub fn polling_fallback(inner: Arc<dyn SessionStore>, long_poll: bool) {
    let store: Arc<dyn SessionStore> = Wrapped::new(inner, false, long_poll);
    append_n(&*store, "s", 20, None);
    let sub = subscribe(store.clone(), "s", from(0)).unwrap();
    let writers = spawn_writers(&store, "s", 4, 50);
    let got = take(&sub, 220);
    writers.into_iter().for_each(|w| w.join().unwrap());
    assert_eq!(seqs(&got), (1..=220).collect::<Vec<_>>());
    assert!(sub.recv_timeout(SHORT).is_none());
}

/// Read errors are retried from the cursor: nothing skipped, nothing twice.
pub fn errors_are_retried(inner: Arc<dyn SessionStore>) {
    let store = Wrapped::new(inner, true, true);
    append_n(&*store, "s", 30, None);
    let sub = subscribe(store.clone(), "s", from(0)).unwrap();
    let first = take(&sub, 30);
    store.fail_reads.store(3, Ordering::Release);
    append_n(&*store, "s", 30, None);
    let rest = take(&sub, 30);
    assert_eq!(
        store.fail_reads.load(Ordering::Acquire),
        0,
        "the failures were hit"
    );
    assert_eq!(
        seqs(first.iter().chain(&rest)),
        (1..=60).collect::<Vec<_>>()
    );
}

/// A closed store ends the subscription once its buffer is read.
pub fn closed_store_ends_iterator(inner: Arc<dyn SessionStore>) {
    let store = Wrapped::new(inner, true, true);
    append_n(&*store, "s", 5, None);
    let mut sub = subscribe(store.clone(), "s", from(0)).unwrap();
    assert_eq!(seqs(&take(&sub, 5)), [1, 2, 3, 4, 5]);
    store.closed.store(true, Ordering::Release);
    append_n(&*store, "s", 1, None); // wakes the worker, whose read fails
    let (tx, rx) = crossbeam_channel::bounded(1);
    let reader = std::thread::spawn(move || {
        let rest: Vec<SessionEvent> = sub.by_ref().collect();
        tx.send(rest.len()).unwrap();
        sub
    });
    assert!(rx.recv_timeout(LONG).is_ok(), "the iterator ended");
    let sub = reader.join().unwrap();
    assert!(matches!(sub.end_reason(), Some(Error::Closed(_))));
    assert!(
        subscribe(store.clone(), "s", from(0)).is_err(),
        "subscribing to a closed store fails"
    );
}

/// Idle subscribers do not read the store, and appends to other sessions
/// do not wake them.
pub fn idle_costs_nothing(inner: Arc<dyn SessionStore>) {
    let store = Wrapped::new(inner, true, true);
    append_n(&*store, "s", 3, None);
    let subs: Vec<Subscription> = (0..8)
        .map(|_| subscribe(store.clone(), "s", from(0)).unwrap())
        .collect();
    for sub in &subs {
        assert_eq!(take(sub, 3).len(), 3);
    }
    std::thread::sleep(SHORT);
    let before = store.reads_of("s");
    append_n(&*store, "other", 100, None);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(store.reads_of("s"), before, "idle subscribers read nothing");
    append_n(&*store, "s", 1, None);
    for sub in &subs {
        assert_eq!(seqs(&take(sub, 1)), [4]);
    }
}

/// Unsubscribing (or dropping), even with a full buffer, returns with the
/// worker gone and the store reference released.
pub fn unsubscribe_releases_store(store: Arc<dyn SessionStore>) {
    append_n(&*store, "s", 50, None);
    let base = Arc::strong_count(&store);
    let config = SubscriptionConfig {
        buffer: 4,
        page_size: 8,
        ..SubscriptionConfig::default()
    };
    let full = subscribe_with_config(store.clone(), "s", from(0), config).unwrap();
    let idle = subscribe(store.clone(), "s", from(100)).unwrap();
    assert!(eventually(LONG, || full.receiver().len() == 4));
    assert_eq!(Arc::strong_count(&store), base + 2);
    let started = Instant::now();
    full.unsubscribe();
    drop(idle);
    assert_eq!(Arc::strong_count(&store), base, "no reference left");
    assert!(started.elapsed() < LONG);
}

/// Several subscriptions can be multiplexed with `select!` on their receivers.
pub fn select_across_subscriptions(store: Arc<dyn SessionStore>) {
    let a = subscribe(store.clone(), "a", from(0)).unwrap();
    let b = subscribe(store.clone(), "b", from(0)).unwrap();
    append_n(&*store, "a", 3, None);
    append_n(&*store, "b", 2, None);
    let (mut from_a, mut from_b) = (Vec::new(), Vec::new());
    while from_a.len() + from_b.len() < 5 {
        select! {
            recv(a.receiver()) -> e => from_a.push(e.unwrap().event),
            recv(b.receiver()) -> e => from_b.push(e.unwrap().event),
            default(LONG) => panic!("select timed out"),
        }
    }
    assert_eq!((seqs(&from_a), seqs(&from_b)), (vec![1, 2, 3], vec![1, 2]));
    assert!(from_a.iter().all(|e| e.session_id == "a"));
}

fn assert_send<T: Send>() {}

#[test]
fn subscription_basics() {
    assert_send::<Subscription>();
    assert!(matches!(
        subscribe(memory(), "", from(0)),
        Err(Error::InvalidArgument(_))
    ));
    let store = memory();
    append_n(&*store, "s", 2, None);
    let mut sub = subscribe(store, "s", SubscribeOptions::default()).unwrap();
    let first = sub.next().unwrap();
    assert_eq!(
        (first.session_id.as_str(), first.event.sequence_number),
        ("s", Some(1))
    );
    let second = sub.recv_timeout(LONG).unwrap();
    assert_eq!(second.event.sequence_number, Some(2));
    assert!(sub.try_recv().is_none());
    assert_eq!(sub.session_id(), "s");
    assert!(sub.end_reason().is_none());
}

mod memory {
    use super::*;

    #[test]
    fn backfill_and_live_with_four_writers() {
        backfill_then_live_under_writers(memory());
    }

    #[test]
    fn resume() {
        resume_from_cursor(memory());
    }

    #[test]
    fn filters() {
        filters_by_run_and_type(memory());
    }

    #[test]
    fn past_the_end() {
        past_the_end_waits(memory());
    }

    #[test]
    fn stalled() {
        stalled_subscriber(memory());
    }

    #[test]
    fn polling_without_watch_or_long_poll() {
        polling_fallback(memory(), false);
    }

    #[test]
    fn long_polling_without_watch() {
        polling_fallback(memory(), true);
    }

    #[test]
    fn retries() {
        errors_are_retried(memory());
    }

    #[test]
    fn closed() {
        closed_store_ends_iterator(memory());
    }

    #[test]
    fn idle() {
        idle_costs_nothing(memory());
    }

    #[test]
    fn unsubscribe_is_synchronous() {
        unsubscribe_releases_store(memory());
    }

    #[test]
    fn select() {
        select_across_subscriptions(memory());
    }
}

/// The same checks on the durable store: fsync on every append where it is
/// cheap, the OS's write-back for the checks that append tens of thousands.
mod logstore {
    use super::*;
    use sessionlog::SyncPolicy::{Always, Never};

    #[test]
    fn backfill_and_live_with_four_writers() {
        let (_dir, store) = logstore(Always);
        backfill_then_live_under_writers(store);
    }

    #[test]
    fn resume() {
        let (_dir, store) = logstore(Always);
        resume_from_cursor(store);
    }

    #[test]
    fn filters() {
        let (_dir, store) = logstore(Always);
        filters_by_run_and_type(store);
    }

    #[test]
    fn past_the_end() {
        let (_dir, store) = logstore(Always);
        past_the_end_waits(store);
    }

    #[test]
    fn stalled() {
        let (_dir, store) = logstore(Never);
        stalled_subscriber(store);
    }

    #[test]
    fn polling_without_watch_or_long_poll() {
        let (_dir, store) = logstore(Never);
        polling_fallback(store, false);
    }

    #[test]
    fn retries() {
        let (_dir, store) = logstore(Always);
        errors_are_retried(store);
    }

    #[test]
    fn idle() {
        let (_dir, store) = logstore(Always);
        idle_costs_nothing(store);
    }

    #[test]
    fn unsubscribe_is_synchronous() {
        let (_dir, store) = logstore(Always);
        unsubscribe_releases_store(store);
    }
}
