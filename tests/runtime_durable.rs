//! A durable cursor across restarts: a subscriber stops, the process
//! reopens the `LogStore`, and resubscribing from its last sequence + 1 gets
//! every later event exactly once, backlog and live.

mod runtime_support;

use std::sync::Arc;
use std::time::Duration;

use runtime_support::*;
use sessionlog::runtime::ServerOptions;
use sessionlog::{
    EventQuery, EventType, LogStore, SessionServer, SessionStore, Subscription, subscribe,
};

#[test]
fn cursor_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    // First process: 100 events, a subscriber reads 60 of them and stops;
    // 40 more arrive while nobody listens, some from server runs.
    let last_seen = {
        let store = Arc::new(LogStore::open(dir.path()).unwrap());
        append_n(&*store, "s", 100, None);
        let sub = subscribe(store.clone(), "s", from(1)).unwrap();
        let seen = take(&sub, 60);
        sub.unsubscribe();
        append_n(&*store, "s", 34, None);
        let gate = GateAdapter::auto(Duration::ZERO, 0);
        let server =
            SessionServer::start(store.clone(), gate, "s", ServerOptions::default()).unwrap();
        server.execute_run(input(0), LONG).unwrap(); // run_started, message_sent, run_completed
        server.execute_run(input(1), LONG).unwrap();
        drop(server);
        assert_eq!(store.get_latest_sequence("s").unwrap(), 140);
        // Nothing else holds the store: it can be closed, releasing the directory.
        Arc::into_inner(store)
            .expect("the only reference left")
            .close()
            .unwrap();
        seen.last().unwrap().sequence_number.unwrap()
    };
    assert_eq!(last_seen, 60);

    // Second process: reopen, resubscribe from last + 1 while writers add more.
    let store: Arc<dyn SessionStore> = Arc::new(LogStore::open(dir.path()).unwrap());
    let sub = subscribe(store.clone(), "s", from(last_seen + 1)).unwrap();
    let writer = {
        let store = store.clone();
        std::thread::spawn(move || append_n(&*store, "s", 40, None))
    };
    let got = take(&sub, 120);
    writer.join().unwrap();
    assert_eq!(
        seqs(&got),
        (61..=180).collect::<Vec<_>>(),
        "every later event exactly once"
    );
    assert!(sub.recv_timeout(SHORT).is_none(), "and nothing twice");
    let stored = store.get_events("s", &EventQuery::new().after(60)).unwrap();
    assert_eq!(got, stored, "delivered exactly as stored");

    // A server on the reopened session continues it (no new session events)
    // and its subscription resumes from a cursor as well.
    let gate = GateAdapter::auto(Duration::ZERO, 2);
    let server = SessionServer::start(store.clone(), gate, "s", ServerOptions::default()).unwrap();
    let resumed = server.subscribe(from(181)).unwrap();
    let run = server.execute_run(input(2), LONG).unwrap();
    let run_events = take(&resumed, 5);
    assert_eq!(seqs(&run_events), (181..=185).collect::<Vec<_>>());
    assert!(
        run_events
            .iter()
            .all(|e| e.run_id.as_ref() == Some(&run.run_id))
    );
    assert_eq!(
        run_events[0].event_type,
        EventType::RunStarted,
        "no new session events"
    );
    assert_eq!(store.get_latest_sequence("s").unwrap(), 185);
}

/// Subscriptions and streams hold the store only while they live: after
/// unsubscribing, the last `Arc` can be taken back and the store closed.
#[test]
fn subscriptions_release_the_store_for_close() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(LogStore::open(dir.path()).unwrap());
    let subs: Vec<Subscription> = (0..4)
        .map(|i| subscribe(store.clone(), "s", from(i)).unwrap())
        .collect();
    append_n(&*store, "s", 10, None);
    for sub in &subs {
        assert!(sub.recv_timeout(LONG).is_some());
    }
    drop(subs);
    let store = Arc::into_inner(store).expect("no subscription holds the store");
    store.close().unwrap();
    // The directory is free again: a second open succeeds.
    let reopened = LogStore::open(dir.path()).unwrap();
    assert_eq!(reopened.get_latest_sequence("s").unwrap(), 10);
    reopened.close().unwrap();
}

/// A subscriber on a read-only follower of the log directory gets the
/// writer's events live (the follower's refresher wakes its watchers).
#[test]
fn subscription_on_a_read_only_follower() {
    let dir = tempfile::tempdir().unwrap();
    let writer = Arc::new(LogStore::open(dir.path()).unwrap());
    append_n(&*writer, "s", 10, None);
    let follower = Arc::new(LogStore::open_read_only(dir.path()).unwrap());
    let sub = subscribe(follower.clone(), "s", from(5)).unwrap();
    assert_eq!(seqs(&take(&sub, 6)), (5..=10).collect::<Vec<_>>());
    append_n(&*writer, "s", 30, None);
    assert_eq!(seqs(&take(&sub, 30)), (11..=40).collect::<Vec<_>>());
    assert!(sub.recv_timeout(SHORT).is_none());
}
