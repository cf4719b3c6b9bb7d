//! `SessionServer` with a blocking test adapter: FIFO with one slot, two
//! slots and three runs, never more in flight than slots, the bounded queue,
//! queued and in-flight cancellation, adapter errors and panics releasing
//! slots, drain, await timeouts, subscriptions and telemetry. Every check is
//! a function over any `Arc<dyn SessionStore>`; `memory` and `logstore` run them.

mod runtime_support;

use std::sync::Arc;
use std::time::Duration;

use runtime_support::*;
use sessionlog::runtime::{CancelKind, RunOutcome, RuntimeEvent, ServerOptions, TelemetrySink};
use sessionlog::{Error, EventQuery, EventType, SessionServer, SessionStore, SubscribeOptions};

fn server(
    store: &Arc<dyn SessionStore>,
    adapter: &Arc<GateAdapter>,
    slots: usize,
    queue: usize,
) -> SessionServer {
    let opts = ServerOptions {
        max_concurrent_runs: slots,
        max_queued_runs: queue,
        ..ServerOptions::default()
    };
    SessionServer::start(store.clone(), adapter.clone(), "s", opts).expect("server starts")
}

pub fn fifo_with_one_slot(store: Arc<dyn SessionStore>) {
    let gate = GateAdapter::new();
    let srv = server(&store, &gate, 1, 10);
    let runs: Vec<String> = (0..3).map(|i| srv.submit_run(input(i)).unwrap()).collect();
    assert!(gate.wait_started(&runs[0]));
    let status = srv.status();
    assert_eq!(status.in_flight, runs[..1]);
    assert_eq!(status.queued, runs[1..]);
    for (i, run) in runs.iter().enumerate() {
        assert!(gate.wait_started(run));
        std::thread::sleep(SHORT);
        assert_eq!(
            gate.started().len(),
            i + 1,
            "the next run waits for the slot"
        );
        gate.release(run, Action::Complete);
        assert_eq!(srv.await_run(run, LONG).unwrap().output["done"], true);
    }
    assert_eq!(gate.started(), runs, "FIFO");
    assert_eq!(gate.max_running(), 1);
}

pub fn two_slots_three_runs(store: Arc<dyn SessionStore>) {
    let gate = GateAdapter::new();
    let srv = server(&store, &gate, 2, 10);
    let runs: Vec<String> = (0..3).map(|i| srv.submit_run(input(i)).unwrap()).collect();
    assert!(gate.wait_started(&runs[0]) && gate.wait_started(&runs[1]));
    let status = srv.status();
    assert_eq!((status.in_flight_count(), status.queued_count()), (2, 1));
    assert_eq!(status.queued, runs[2..]);
    std::thread::sleep(SHORT);
    assert!(!gate.has_started(&runs[2]), "the third waits for a slot");
    gate.release(&runs[1], Action::Complete);
    assert!(
        gate.wait_started(&runs[2]),
        "the third starts when one ends"
    );
    gate.release(&runs[0], Action::Complete);
    gate.release(&runs[2], Action::Complete);
    for run in &runs {
        srv.await_run(run, LONG).unwrap();
    }
    assert_eq!(gate.max_running(), 2);
}

/// Many runs submitted from several threads never exceed the slots, all
/// complete, and their events interleave in the log, each with its run id.
pub fn never_more_than_slots(store: Arc<dyn SessionStore>) {
    let gate = GateAdapter::auto(Duration::from_millis(5), 3);
    let srv = Arc::new(server(&store, &gate, 3, 100));
    let submitters: Vec<_> = (0..3)
        .map(|t| {
            let srv = srv.clone();
            std::thread::spawn(move || {
                (0..8)
                    .map(|i| srv.submit_run(input(t * 8 + i)).unwrap())
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut runs = Vec::new();
    for s in submitters {
        runs.extend(s.join().unwrap());
    }
    while srv.status().in_flight_count() + srv.status().queued_count() > 0 {
        assert!(srv.status().in_flight_count() <= 3);
        std::thread::sleep(Duration::from_millis(1));
    }
    srv.drain(LONG).unwrap();
    assert!(
        gate.max_running() <= 3,
        "max running {}",
        gate.max_running()
    );
    for run in &runs {
        srv.await_run(run, LONG).unwrap();
        let kinds = types(&run_events(&*store, "s", run));
        assert_eq!(kinds.first(), Some(&EventType::RunStarted));
        assert_eq!(kinds.last(), Some(&EventType::RunCompleted));
        assert_eq!(
            kinds.len(),
            6,
            "run_started, message_sent, 3 adapter events, run_completed"
        );
    }
    let all = store.get_events("s", &EventQuery::new()).unwrap();
    assert_eq!(seqs(&all), (1..=all.len() as u64).collect::<Vec<_>>());
}

pub fn queue_bound_and_slot_validation(store: Arc<dyn SessionStore>) {
    let gate = GateAdapter::new();
    let zero = ServerOptions {
        max_concurrent_runs: 0,
        ..ServerOptions::default()
    };
    let err = SessionServer::start(store.clone(), gate.clone(), "s", zero).unwrap_err();
    assert!(
        matches!(err, Error::InvalidArgument(_)) && err.to_string().contains("max_concurrent_runs")
    );
    let srv = server(&store, &gate, 1, 1);
    let a = srv.submit_run(input(0)).unwrap();
    let b = srv.submit_run(input(1)).unwrap();
    let err = srv.submit_run(input(2)).unwrap_err();
    assert!(matches!(err, Error::QueueFull(_)), "{err}");
    assert!(err.to_string().contains("1 of 1 slots busy"), "{err}");
    assert!(
        srv.submit_run_with_id(a.clone(), input(3)).is_err(),
        "duplicate run id"
    );
    assert!(gate.wait_started(&a));
    gate.release(&a, Action::Complete);
    assert!(gate.wait_started(&b));
    srv.submit_run(input(4))
        .expect("a queue place is free again");
    gate.release(&b, Action::Complete);
}

pub fn cancel_queued_run(store: Arc<dyn SessionStore>) {
    let gate = GateAdapter::new();
    let srv = server(&store, &gate, 1, 10);
    let a = srv.submit_run(input(0)).unwrap();
    let b = srv.submit_run(input(1)).unwrap();
    let c = srv.submit_run(input(2)).unwrap();
    assert!(gate.wait_started(&a));
    std::thread::scope(|scope| {
        let waiter = scope.spawn(|| srv.await_run(&b, LONG));
        std::thread::sleep(SHORT);
        srv.cancel_run(&b).unwrap();
        assert!(
            matches!(waiter.join().unwrap(), Err(Error::Cancelled(_))),
            "the waiter is told"
        );
    });
    assert!(matches!(srv.await_run(&b, LONG), Err(Error::Cancelled(_))));
    assert_eq!(srv.status().queued, std::slice::from_ref(&c));
    assert_eq!(
        types(&run_events(&*store, "s", &b)),
        [EventType::RunCancelled]
    );
    gate.release(&a, Action::Complete);
    assert!(gate.wait_started(&c));
    gate.release(&c, Action::Complete);
    srv.drain(LONG).unwrap();
    assert!(!gate.has_started(&b), "a cancelled queued run never starts");
    assert!(srv.cancel_run(&b).is_err(), "nothing left to cancel");
}

pub fn cancel_in_flight_run(store: Arc<dyn SessionStore>) {
    let gate = GateAdapter::new();
    let srv = server(&store, &gate, 1, 10);
    let a = srv.submit_run(input(0)).unwrap();
    let b = srv.submit_run(input(1)).unwrap();
    assert!(gate.wait_started(&a));
    srv.cancel_run(&a).unwrap();
    assert!(matches!(srv.await_run(&a, LONG), Err(Error::Cancelled(_))));
    assert!(
        gate.wait_started(&b),
        "the slot is freed when the cancelled run ends"
    );
    assert_eq!(
        types(&run_events(&*store, "s", &a)).last(),
        Some(&EventType::RunCancelled)
    );
    gate.release(&b, Action::Complete);
    srv.await_run(&b, LONG).unwrap();
}

pub fn errors_and_panics_release_slots(store: Arc<dyn SessionStore>) {
    let gate = GateAdapter::new();
    let srv = server(&store, &gate, 1, 10);
    let runs: Vec<String> = (0..3).map(|i| srv.submit_run(input(i)).unwrap()).collect();
    assert!(gate.wait_started(&runs[0]));
    gate.release(&runs[0], Action::Fail("provider said no".into()));
    let err = srv.await_run(&runs[0], LONG).unwrap_err();
    assert!(
        matches!(&err, Error::Adapter(m) if m.contains("provider said no")),
        "{err}"
    );
    assert!(gate.wait_started(&runs[1]));
    gate.release(&runs[1], Action::Panic("adapter bug".into()));
    let err = srv.await_run(&runs[1], LONG).unwrap_err();
    assert!(
        matches!(&err, Error::Adapter(m) if m.contains("panicked") && m.contains("adapter bug")),
        "{err}"
    );
    assert!(
        gate.wait_started(&runs[2]),
        "the next run starts after a panic"
    );
    gate.release(&runs[2], Action::Complete);
    srv.await_run(&runs[2], LONG).unwrap();
    for run in &runs[..2] {
        let events = run_events(&*store, "s", run);
        let failed = events.last().unwrap();
        assert_eq!(failed.event_type, EventType::RunFailed);
        assert!(failed.data["error"].as_str().unwrap().contains("adapter"));
    }
    // A second waiter gets the same error.
    assert!(matches!(
        srv.await_run(&runs[0], LONG),
        Err(Error::Adapter(_))
    ));
}

pub fn drain_and_timeouts(store: Arc<dyn SessionStore>) {
    let gate = GateAdapter::new();
    let srv = server(&store, &gate, 1, 10);
    srv.drain(LONG).expect("an idle server drains at once");
    let a = srv.submit_run(input(0)).unwrap();
    let b = srv.submit_run(input(1)).unwrap();
    let err = srv.drain(SHORT).unwrap_err();
    assert!(
        matches!(&err, Error::Timeout(m) if m.contains("1 runs in flight, 1 queued")),
        "{err}"
    );
    assert!(matches!(srv.await_run(&a, SHORT), Err(Error::Timeout(_))));
    assert!(matches!(
        srv.await_run("run_nope", SHORT),
        Err(Error::InvalidArgument(_))
    ));
    assert!(gate.wait_started(&a));
    gate.release(&a, Action::Complete);
    assert!(gate.wait_started(&b));
    gate.release(&b, Action::Complete);
    srv.drain(LONG).expect("drains once both end");
    let status = srv.status();
    assert!(status.in_flight.is_empty() && status.queued.is_empty());
}

/// A new session gets its lifecycle events; an existing one is continued.
pub fn new_and_existing_sessions(store: Arc<dyn SessionStore>) {
    let gate = GateAdapter::auto(Duration::ZERO, 1);
    let srv = server(&store, &gate, 1, 10);
    let first = store.get_events("s", &EventQuery::new()).unwrap();
    assert_eq!(
        types(&first),
        [EventType::SessionCreated, EventType::SessionStarted]
    );
    assert_eq!(first[0].metadata["provider"], "gate");
    srv.execute_run(input(0), LONG).unwrap();
    drop(srv);
    let srv = server(&store, &gate, 1, 10);
    let result = srv.execute_run(input(1), LONG).unwrap();
    let all = store.get_events("s", &EventQuery::new()).unwrap();
    assert_eq!(
        all.iter()
            .filter(|e| e.event_type == EventType::SessionCreated)
            .count(),
        1
    );
    assert_eq!(types(&run_events(&*store, "s", &result.run_id)).len(), 4);
}

/// Subscribers of the server see the interleaved events of concurrent runs,
/// each with its run id; the server counts them.
pub fn subscribers_see_interleaved_runs(store: Arc<dyn SessionStore>) {
    let gate = GateAdapter::auto(Duration::from_millis(2), 5);
    let srv = server(&store, &gate, 3, 10);
    let all = srv.subscribe(SubscribeOptions::default()).unwrap();
    assert_eq!(srv.status().subscribers, 1);
    let runs: Vec<String> = (0..3).map(|i| srv.submit_run(input(i)).unwrap()).collect();
    let only_b = srv
        .subscribe(SubscribeOptions {
            run_id: Some(runs[1].clone()),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(srv.status().subscribers, 2);
    srv.drain(LONG).unwrap();
    // 2 session events + 3 runs of (started, message_sent, 5 adapter events, completed).
    let got: Vec<_> = (0..26)
        .map(|_| all.recv_timeout(LONG).expect("event").event)
        .collect();
    assert_eq!(seqs(&got), (1..=26).collect::<Vec<_>>());
    for run in &runs {
        assert_eq!(
            got.iter()
                .filter(|e| e.run_id.as_ref() == Some(run))
                .count(),
            8
        );
    }
    let b: Vec<_> = (0..8)
        .map(|_| only_b.recv_timeout(LONG).expect("event").event)
        .collect();
    assert!(b.iter().all(|e| e.run_id.as_ref() == Some(&runs[1])));
    srv.unsubscribe(only_b);
    assert_eq!(srv.status().subscribers, 1);
    drop(all);
    assert_eq!(srv.status().subscribers, 0);
}

/// Dropping the server cancels queued runs, cancels in-flight ones through
/// the adapter and waits for them: no reference to the store remains.
pub fn drop_cancels_and_releases(store: Arc<dyn SessionStore>) {
    let gate = GateAdapter::new();
    let base = Arc::strong_count(&store);
    let srv = server(&store, &gate, 1, 10);
    let a = srv.submit_run(input(0)).unwrap();
    let b = srv.submit_run(input(1)).unwrap();
    assert!(gate.wait_started(&a));
    drop(srv);
    assert_eq!(Arc::strong_count(&store), base);
    assert_eq!(
        types(&run_events(&*store, "s", &a)).last(),
        Some(&EventType::RunCancelled)
    );
    assert_eq!(
        types(&run_events(&*store, "s", &b)),
        [EventType::RunCancelled]
    );
}

/// Telemetry reaches a sink as structured values.
pub fn telemetry_as_values(store: Arc<dyn SessionStore>) {
    let (sink, rx) = TelemetrySink::channel();
    let gate = GateAdapter::new();
    let opts = ServerOptions {
        telemetry: Some(sink),
        max_queued_runs: 5,
        ..ServerOptions::default()
    };
    let srv = SessionServer::start(store.clone(), gate.clone(), "s", opts).unwrap();
    let sub = srv.subscribe(SubscribeOptions::default()).unwrap();
    let a = srv.submit_run(input(0)).unwrap();
    let b = srv.submit_run(input(1)).unwrap();
    let c = srv.submit_run(input(2)).unwrap();
    srv.cancel_run(&c).unwrap();
    let mut seen: Vec<RuntimeEvent> = Vec::new();
    // Run threads emit after releasing the scheduler lock: wait for what they say.
    let wait_for = |seen: &mut Vec<RuntimeEvent>, what: &dyn Fn(&RuntimeEvent) -> bool| {
        assert!(
            eventually(LONG, || {
                seen.extend(rx.try_iter());
                seen.iter().any(what)
            }),
            "telemetry event never came"
        );
    };
    assert!(gate.wait_started(&a));
    gate.release(&a, Action::Complete);
    wait_for(
        &mut seen,
        &|e| matches!(e, RuntimeEvent::RunStarted { run_id, .. } if *run_id == b),
    );
    srv.cancel_run(&b).unwrap();
    srv.drain(LONG).unwrap();
    wait_for(
        &mut seen,
        &|e| matches!(e, RuntimeEvent::RunStopped { run_id, .. } if *run_id == b),
    );
    let _ = srv.cancel_run("run_unknown");
    drop(sub);
    seen.extend(rx.try_iter());
    let s = || "s".to_string();
    let expect = [
        RuntimeEvent::ServerStarted {
            session_id: s(),
            max_concurrent_runs: 1,
            max_queued_runs: 5,
        },
        RuntimeEvent::Subscribed {
            session_id: s(),
            subscribers: 1,
        },
        RuntimeEvent::RunStarted {
            session_id: s(),
            run_id: a.clone(),
            in_flight: 1,
        },
        RuntimeEvent::RunEnqueued {
            session_id: s(),
            run_id: b.clone(),
            queue_len: 1,
        },
        RuntimeEvent::RunEnqueued {
            session_id: s(),
            run_id: c.clone(),
            queue_len: 2,
        },
        RuntimeEvent::RunCancelRequested {
            session_id: s(),
            run_id: c.clone(),
            kind: CancelKind::Queued,
        },
        RuntimeEvent::RunDequeued {
            session_id: s(),
            run_id: b.clone(),
            queue_len: 0,
        },
        RuntimeEvent::RunStarted {
            session_id: s(),
            run_id: b.clone(),
            in_flight: 1,
        },
        RuntimeEvent::RunCancelRequested {
            session_id: s(),
            run_id: b.clone(),
            kind: CancelKind::InFlight,
        },
        RuntimeEvent::RunCancelRequested {
            session_id: s(),
            run_id: "run_unknown".into(),
            kind: CancelKind::Failed,
        },
        RuntimeEvent::Unsubscribed {
            session_id: s(),
            subscribers: 0,
        },
    ];
    let without_stops: Vec<&RuntimeEvent> = seen
        .iter()
        .filter(|e| !matches!(e, RuntimeEvent::RunStopped { .. }))
        .collect();
    assert_eq!(without_stops, expect.iter().collect::<Vec<_>>());
    let stops: Vec<(String, RunOutcome)> = seen
        .iter()
        .filter_map(|e| match e {
            RuntimeEvent::RunStopped {
                run_id, outcome, ..
            } => Some((run_id.clone(), *outcome)),
            _ => None,
        })
        .collect();
    assert_eq!(
        stops,
        [(a, RunOutcome::Completed), (b, RunOutcome::Cancelled)]
    );
    assert!(seen.iter().all(|e| e.session_id() == "s"));
}

#[test]
fn server_types_and_finished_run_memory() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<SessionServer>();
    let store = memory();
    let gate = GateAdapter::auto(Duration::ZERO, 0);
    let opts = ServerOptions {
        finished_runs_kept: 2,
        ..ServerOptions::default()
    };
    let srv = SessionServer::start(store, gate, "s", opts).unwrap();
    let runs: Vec<String> = (0..3)
        .map(|i| srv.execute_run(input(i), LONG).unwrap().run_id)
        .collect();
    let err = srv.await_run(&runs[0], SHORT).unwrap_err();
    assert!(
        matches!(&err, Error::InvalidArgument(m) if m.contains("too long ago")),
        "{err}"
    );
    assert!(
        srv.await_run(&runs[2], SHORT).is_ok(),
        "recent outcomes are kept"
    );
    assert!(matches!(
        srv.submit_run_with_id("", input(9)),
        Err(Error::InvalidArgument(_))
    ));
    assert!(format!("{srv:?}").contains("SessionServer"));
}

mod memory {
    use super::*;

    #[test]
    fn fifo_one_slot() {
        fifo_with_one_slot(memory());
    }

    #[test]
    fn two_slots() {
        two_slots_three_runs(memory());
    }

    #[test]
    fn slots_bound() {
        never_more_than_slots(memory());
    }

    #[test]
    fn queue_bound() {
        queue_bound_and_slot_validation(memory());
    }

    #[test]
    fn cancel_queued() {
        cancel_queued_run(memory());
    }

    #[test]
    fn cancel_in_flight() {
        cancel_in_flight_run(memory());
    }

    #[test]
    fn errors_and_panics() {
        errors_and_panics_release_slots(memory());
    }

    #[test]
    fn drain() {
        drain_and_timeouts(memory());
    }

    #[test]
    fn sessions() {
        new_and_existing_sessions(memory());
    }

    #[test]
    fn subscribers() {
        subscribers_see_interleaved_runs(memory());
    }

    #[test]
    fn drop_releases() {
        drop_cancels_and_releases(memory());
    }

    #[test]
    fn telemetry() {
        telemetry_as_values(memory());
    }
}

/// The same checks on the durable store.
mod logstore {
    use super::*;
    use sessionlog::SyncPolicy::Always;

    #[test]
    fn fifo_one_slot() {
        let (_dir, store) = logstore(Always);
        fifo_with_one_slot(store);
    }

    #[test]
    fn two_slots() {
        let (_dir, store) = logstore(Always);
        two_slots_three_runs(store);
    }

    #[test]
    fn slots_bound() {
        let (_dir, store) = logstore(Always);
        never_more_than_slots(store);
    }

    #[test]
    fn cancel_queued() {
        let (_dir, store) = logstore(Always);
        cancel_queued_run(store);
    }

    #[test]
    fn cancel_in_flight() {
        let (_dir, store) = logstore(Always);
        cancel_in_flight_run(store);
    }

    #[test]
    fn errors_and_panics() {
        let (_dir, store) = logstore(Always);
        errors_and_panics_release_slots(store);
    }

    #[test]
    fn drain() {
        let (_dir, store) = logstore(Always);
        drain_and_timeouts(store);
    }

    #[test]
    fn subscribers() {
        let (_dir, store) = logstore(Always);
        subscribers_see_interleaved_runs(store);
    }

    #[test]
    fn drop_releases() {
        let (_dir, store) = logstore(Always);
        drop_cancels_and_releases(store);
    }
}
