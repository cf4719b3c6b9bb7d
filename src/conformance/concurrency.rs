//! Conformance cases with threads: long-poll, concurrent appenders, races.
//!
//! None of these measure speed. Waits that *should* end use long timeouts
//! (a busy machine only makes them slower); checks that something has *not*
//! happened look after a short pause, which a slow machine cannot make fail.

use std::collections::HashSet;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use super::Harness;
use super::cases::{event, fill};
use crate::{Event, EventQuery, EventType, SessionStore};

/// Long enough that reaching it means something is broken.
const LONG: Duration = Duration::from_secs(60);
/// How long a waiter must stay blocked to count as "not released".
const PAUSE: Duration = Duration::from_millis(150);

fn spawn_get(
    store: &Arc<dyn SessionStore>,
    session: &str,
    query: EventQuery,
) -> thread::JoinHandle<Vec<Event>> {
    let store = Arc::clone(store);
    let session = session.to_string();
    thread::spawn(move || store.get_events(&session, &query).expect("get_events"))
}

/// With matching events present, a long-poll returns them without waiting.
pub fn long_poll_returns_at_once_when_events_exist(h: &Harness) {
    fill(h, "s", 3);
    let start = Instant::now();
    let got = h
        .store
        .get_events("s", &EventQuery::new().after(1).wait_timeout(LONG))
        .unwrap();
    assert_eq!(got.len(), 2);
    assert!(
        start.elapsed() < LONG / 2,
        "a satisfiable long-poll must not wait"
    );
}

/// With nothing to return, a long-poll returns `[]` after its wait (not before).
pub fn long_poll_times_out_empty(h: &Harness) {
    fill(h, "s", 2);
    let wait = Duration::from_millis(200);
    let start = Instant::now();
    let got = h
        .store
        .get_events("s", &EventQuery::new().after(2).wait_timeout(wait))
        .unwrap();
    assert!(got.is_empty());
    assert!(
        start.elapsed() >= wait,
        "returned after {:?}",
        start.elapsed()
    );
    let got = h
        .store
        .get_events("nobody", &EventQuery::new().wait_timeout(wait))
        .unwrap();
    assert!(got.is_empty());
}

/// Appends to other sessions, runs or types leave the waiter blocked; a matching one releases it.
pub fn long_poll_is_released_only_by_a_matching_append(h: &Harness) {
    fill(h, "s", 2);
    let query = EventQuery::new()
        .after(2)
        .run_id("wanted")
        .event_type(EventType::ToolCallCompleted)
        .wait_timeout(LONG);
    let started = Instant::now();
    let waiter = spawn_get(&h.store, "s", query);
    thread::sleep(PAUSE);
    let decoys = [
        event("other", 1, EventType::ToolCallCompleted).with_run("wanted"),
        event("s", 3, EventType::ToolCallCompleted).with_run("unwanted"),
        event("s", 4, EventType::MessageSent).with_run("wanted"),
        event("s", 5, EventType::ToolCallCompleted),
    ];
    for decoy in decoys {
        h.store.append_event_with_sequence(decoy).unwrap();
        thread::sleep(PAUSE / 3);
        assert!(
            !waiter.is_finished(),
            "a non-matching append released the waiter"
        );
    }
    let wanted = event("s", 7, EventType::ToolCallCompleted).with_run("wanted");
    let stored = h.store.append_event_with_sequence(wanted).unwrap();
    let got = waiter.join().unwrap();
    assert_eq!(got, vec![stored]);
    assert!(
        started.elapsed() < LONG,
        "released by the append, not the timeout"
    );
}

/// Many waiters on several sessions are all released by their own sessions' appends.
pub fn many_waiters_on_several_sessions_are_all_released(h: &Harness) {
    let sessions = ["w1", "w2", "w3", "w4"];
    let waiters: Vec<_> = (0..24)
        .map(|i| {
            let s = sessions[i % sessions.len()];
            (
                s,
                spawn_get(&h.store, s, EventQuery::new().wait_timeout(LONG)),
            )
        })
        .collect();
    thread::sleep(PAUSE);
    let mut stored = std::collections::HashMap::new();
    for s in sessions {
        stored.insert(
            s,
            h.store
                .append_event_with_sequence(event(s, 1, EventType::MessageSent))
                .unwrap(),
        );
    }
    for (s, w) in waiters {
        assert_eq!(w.join().unwrap(), vec![stored[s].clone()]);
    }
}

/// Appends go through while waiters on the same session are blocked.
pub fn writers_are_not_blocked_by_waiters(h: &Harness) {
    let never = EventQuery::new()
        .event_type(EventType::PolicyViolation)
        .wait_timeout(LONG);
    let waiters: Vec<_> = (0..8)
        .map(|_| spawn_get(&h.store, "s", never.clone()))
        .collect();
    thread::sleep(PAUSE);
    let batch: Vec<Event> = (0..200)
        .map(|i| event("s", i, EventType::MessageSent))
        .collect();
    h.store.append_events(batch).unwrap();
    fill(h, "s", 100);
    assert_eq!(h.store.get_latest_sequence("s").unwrap(), 300);
    assert!(
        waiters.iter().all(|w| !w.is_finished()),
        "writers finished while waiters wait"
    );
    let release = h
        .store
        .append_event_with_sequence(event("s", 0, EventType::PolicyViolation))
        .unwrap();
    for w in waiters {
        assert_eq!(w.join().unwrap(), vec![release.clone()]);
    }
}

/// 16 threads appending single events and batches to shared sessions: contiguous, nothing lost.
pub fn concurrent_appenders_get_contiguous_sequences(h: &Harness) {
    const THREADS: usize = 16;
    const PER_THREAD: usize = 60;
    let barrier = Arc::new(Barrier::new(THREADS));
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let store = Arc::clone(&h.store);
            let barrier = Arc::clone(&barrier);
            thread::spawn(move || {
                barrier.wait();
                let session = if t % 2 == 0 { "even" } else { "odd" };
                let mut ids = Vec::new();
                for i in 0..PER_THREAD {
                    let e = event(session, (t * 1000 + i) as u64, EventType::MessageStreamed);
                    if i % 10 == 0 {
                        let pair = vec![e, event(session, 1, EventType::MessageStreamed)];
                        ids.extend(store.append_events(pair).unwrap().into_iter().map(|e| e.id));
                    } else {
                        ids.push(store.append_event_with_sequence(e).unwrap().id);
                    }
                }
                ids
            })
        })
        .collect();
    let acked: HashSet<String> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    let expected = THREADS * (PER_THREAD + PER_THREAD / 10);
    assert_eq!(acked.len(), expected);
    let mut seen = HashSet::new();
    for session in ["even", "odd"] {
        let events = h.store.get_events(session, &EventQuery::new()).unwrap();
        let seqs: Vec<u64> = events.iter().map(|e| e.sequence_number.unwrap()).collect();
        assert_eq!(
            seqs,
            (1..=events.len() as u64).collect::<Vec<_>>(),
            "gap or reorder in {session}"
        );
        assert_eq!(
            h.store.get_latest_sequence(session).unwrap(),
            events.len() as u64
        );
        seen.extend(events.into_iter().map(|e| e.id));
    }
    assert_eq!(
        seen, acked,
        "every acknowledged event is stored exactly once"
    );
}

/// Threads racing to append the same new id: one event is stored and all get it back.
pub fn racing_the_same_new_id_stores_it_once(h: &Harness) {
    for round in 0..20 {
        let e = event("race", round, EventType::MessageSent);
        let barrier = Arc::new(Barrier::new(8));
        let handles: Vec<_> = (0..8)
            .map(|i| {
                let (store, barrier) = (Arc::clone(&h.store), Arc::clone(&barrier));
                let mut e = e.clone();
                e.data.insert("racer".into(), i.into());
                thread::spawn(move || {
                    barrier.wait();
                    if i % 2 == 0 {
                        store.append_event_with_sequence(e).unwrap()
                    } else {
                        store.append_events(vec![e]).unwrap().remove(0)
                    }
                })
            })
            .collect();
        let results: Vec<Event> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        assert!(
            results.iter().all(|r| *r == results[0]),
            "racers got different events"
        );
        assert_eq!(results[0].sequence_number, Some(round + 1));
    }
    assert_eq!(
        h.store
            .get_events("race", &EventQuery::new())
            .unwrap()
            .len(),
        20
    );
}

/// A reader paging with long-poll while a writer appends sees every sequence exactly once.
pub fn paging_reader_with_long_poll_sees_every_sequence_once(h: &Harness) {
    const TOTAL: u64 = 2000;
    let reader = {
        let store = Arc::clone(&h.store);
        thread::spawn(move || {
            let mut cursor = 0;
            let mut seen = Vec::new();
            while cursor < TOTAL {
                let q = EventQuery::new().after(cursor).limit(64).wait_timeout(LONG);
                let page = store.get_events("s", &q).unwrap();
                assert!(
                    !page.is_empty(),
                    "long-poll timed out with a writer running"
                );
                for e in page {
                    cursor = e.sequence_number.unwrap();
                    seen.push(cursor);
                }
            }
            seen
        })
    };
    let mut written = 0;
    while written < TOTAL {
        if written % 3 == 0 {
            let n = (TOTAL - written).min(7);
            let batch = (0..n)
                .map(|i| event("s", written + i, EventType::MessageStreamed))
                .collect();
            h.store.append_events(batch).unwrap();
            written += n;
        } else {
            h.store
                .append_event_with_sequence(event("s", written, EventType::MessageStreamed))
                .unwrap();
            written += 1;
        }
    }
    assert_eq!(reader.join().unwrap(), (1..=TOTAL).collect::<Vec<_>>());
}

/// Readers racing writers never see sequence n+1 without n, nor a half event.
pub fn readers_never_see_a_gap_while_writers_append(h: &Harness) {
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let readers: Vec<_> = (0..3)
        .map(|_| {
            let (store, stop) = (Arc::clone(&h.store), Arc::clone(&stop));
            thread::spawn(move || {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let events = store.get_events("g", &EventQuery::new()).unwrap();
                    for (i, e) in events.iter().enumerate() {
                        assert_eq!(e.sequence_number, Some(i as u64 + 1));
                        assert_eq!(
                            e.data.get("payload").and_then(|v| v.as_str()).map(str::len),
                            Some(300)
                        );
                    }
                    let latest = store.get_latest_sequence("g").unwrap();
                    assert!(latest >= events.len() as u64);
                }
            })
        })
        .collect();
    let writers: Vec<_> = (0..2)
        .map(|t| {
            let store = Arc::clone(&h.store);
            thread::spawn(move || {
                for i in 0..300u64 {
                    let e = event("g", t * 1000 + i, EventType::MessageSent)
                        .with_data("payload", "p".repeat(300));
                    store.append_event_with_sequence(e).unwrap();
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for r in readers {
        r.join().unwrap();
    }
    assert_eq!(h.store.get_latest_sequence("g").unwrap(), 600);
}
