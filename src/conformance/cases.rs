//! Conformance cases that need one thread: sequencing, idempotency,
//! atomicity, filters, round trips and input validation.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::json;

use super::Harness;
use crate::{Error, Event, EventQuery, EventType};

/// A fresh event with a readable id (`<session>-<n>`) and a payload.
pub fn event(session: &str, n: u64, event_type: EventType) -> Event {
    Event::new(session, event_type)
        .with_id(format!("{session}-{n}-{}", rand::random::<u32>()))
        .with_data("n", n)
}

fn append(h: &Harness, e: Event) -> Event {
    h.store.append_event_with_sequence(e).expect("append")
}

fn all(h: &Harness, session: &str) -> Vec<Event> {
    query(h, session, EventQuery::new())
}

/// The events `q` selects from `session` (the query must succeed).
fn query(h: &Harness, session: &str, q: EventQuery) -> Vec<Event> {
    h.store.get_events(session, &q).expect("get_events")
}

fn seqs(events: &[Event]) -> Vec<u64> {
    events
        .iter()
        .map(|e| e.sequence_number.expect("stored events have a sequence"))
        .collect()
}

/// Appends `n` events to `session`, alternating runs `r1`/`r2` and types
/// `MessageSent`/`ToolCallStarted`/`MessageReceived`.
pub fn fill(h: &Harness, session: &str, n: u64) -> Vec<Event> {
    const TYPES: [EventType; 3] = [
        EventType::MessageSent,
        EventType::ToolCallStarted,
        EventType::MessageReceived,
    ];
    (1..=n)
        .map(|i| {
            let e = event(session, i, TYPES[(i % 3) as usize]).with_run(format!("r{}", 1 + i % 2));
            append(h, e)
        })
        .collect()
}

/// The first event of a session gets 1 and each next one the previous + 1, per session.
pub fn sequences_start_at_one_per_session(h: &Harness) {
    assert_eq!(h.store.get_latest_sequence("a").unwrap(), 0);
    for i in 1..=5u64 {
        assert_eq!(
            append(h, event("a", i, EventType::MessageSent)).sequence_number,
            Some(i)
        );
        if i <= 3 {
            assert_eq!(
                append(h, event("b", i, EventType::MessageSent)).sequence_number,
                Some(i)
            );
        }
    }
    assert_eq!(h.store.get_latest_sequence("a").unwrap(), 5);
    assert_eq!(h.store.get_latest_sequence("b").unwrap(), 3);
    assert_eq!(seqs(&all(h, "a")), vec![1, 2, 3, 4, 5]);
}

/// A caller-supplied sequence number is ignored and overwritten.
pub fn caller_sequence_is_overwritten(h: &Harness) {
    let mut e = event("s", 1, EventType::RunStarted);
    e.sequence_number = Some(999);
    assert_eq!(append(h, e).sequence_number, Some(1));
    let mut batch = vec![
        event("s", 2, EventType::RunStarted),
        event("s", 3, EventType::RunStarted),
    ];
    batch[0].sequence_number = Some(0);
    batch[1].sequence_number = Some(77);
    assert_eq!(seqs(&h.store.append_events(batch).unwrap()), vec![2, 3]);
    assert_eq!(h.store.get_latest_sequence("s").unwrap(), 3);
}

/// Appending a stored id again returns the original and stores nothing.
pub fn duplicate_in_same_session_returns_original(h: &Harness) {
    let first = append(h, event("s", 1, EventType::MessageSent));
    append(h, event("s", 2, EventType::MessageSent));
    let mut again = first.clone();
    again.data.insert("changed".into(), json!(true));
    again.sequence_number = None;
    assert_eq!(append(h, again), first);
    assert_eq!(h.store.get_latest_sequence("s").unwrap(), 2);
    assert_eq!(all(h, "s").len(), 2);
}

/// Idempotency is by id across the whole store, not per session.
pub fn duplicate_in_other_session_returns_original(h: &Harness) {
    let first = append(h, event("s1", 1, EventType::MessageSent));
    let mut elsewhere = event("s2", 1, EventType::ErrorOccurred);
    elsewhere.id = first.id.clone();
    assert_eq!(append(h, elsewhere), first);
    assert_eq!(h.store.get_latest_sequence("s2").unwrap(), 0);
    assert!(all(h, "s2").is_empty());
}

/// A repeat inside a batch, and a batch element already stored, give the stored original.
pub fn duplicates_within_a_batch_return_the_original(h: &Harness) {
    let stored = append(h, event("s", 1, EventType::MessageSent));
    let x = event("s", 2, EventType::MessageSent);
    let mut x_again = x.clone();
    x_again.data.insert("other".into(), json!("payload"));
    let batch = vec![
        x.clone(),
        stored.clone(),
        x_again,
        event("s", 3, EventType::MessageSent),
    ];
    let out = h.store.append_events(batch).unwrap();
    assert_eq!(out.len(), 4);
    assert_eq!(out[0].sequence_number, Some(2));
    assert_eq!(out[1], stored);
    assert_eq!(out[2], out[0]);
    assert_eq!(out[0].data, x.data);
    assert_eq!(out[3].sequence_number, Some(3));
    assert_eq!(seqs(&all(h, "s")), vec![1, 2, 3]);
}

/// One result per input, in input order, with contiguous sequences per session.
pub fn batch_results_follow_input_order_across_sessions(h: &Harness) {
    append(h, event("b", 1, EventType::MessageSent));
    let batch: Vec<Event> = (0..10)
        .map(|i| {
            event(
                if i % 2 == 0 { "a" } else { "b" },
                i,
                EventType::MessageStreamed,
            )
        })
        .collect();
    let ids: Vec<String> = batch.iter().map(|e| e.id.clone()).collect();
    let out = h.store.append_events(batch).unwrap();
    assert_eq!(out.iter().map(|e| e.id.clone()).collect::<Vec<_>>(), ids);
    let a: Vec<u64> = out
        .iter()
        .filter(|e| e.session_id == "a")
        .map(|e| e.sequence_number.unwrap())
        .collect();
    let b: Vec<u64> = out
        .iter()
        .filter(|e| e.session_id == "b")
        .map(|e| e.sequence_number.unwrap())
        .collect();
    assert_eq!(a, vec![1, 2, 3, 4, 5]);
    assert_eq!(b, vec![2, 3, 4, 5, 6]);
    assert_eq!(
        all(h, "a"),
        out.iter()
            .filter(|e| e.session_id == "a")
            .cloned()
            .collect::<Vec<_>>()
    );
}

/// One invalid element rejects the whole batch; nothing of it is stored.
pub fn batch_with_invalid_element_stores_nothing(h: &Harness) {
    append(h, event("s", 1, EventType::MessageSent));
    let good = event("s", 2, EventType::MessageSent);
    for bad in [
        Event::new("", EventType::MessageSent),
        event("s", 3, EventType::MessageSent).with_id(""),
        event("s", 4, EventType::MessageSent)
            .with_timestamp(UNIX_EPOCH + Duration::from_secs(1 << 40)),
    ] {
        let res = h.store.append_events(vec![
            good.clone(),
            bad,
            event("t", 1, EventType::MessageSent),
        ]);
        assert!(
            res.is_err(),
            "a batch with an invalid element must be rejected"
        );
    }
    assert_eq!(h.store.get_latest_sequence("s").unwrap(), 1);
    assert_eq!(h.store.get_latest_sequence("t").unwrap(), 0);
    // The valid element was not stored: appending it now stores it fresh.
    assert_eq!(append(h, good).sequence_number, Some(2));
}

/// A 3,000-event batch gets 3,000 contiguous sequences in input order.
pub fn large_batch_stays_contiguous(h: &Harness) {
    append(h, event("s", 0, EventType::SessionCreated));
    let batch: Vec<Event> = (1..=3000)
        .map(|i| event("s", i, EventType::MessageStreamed))
        .collect();
    let out = h.store.append_events(batch.clone()).unwrap();
    assert_eq!(seqs(&out), (2..=3001).collect::<Vec<_>>());
    for (input, stored) in batch.iter().zip(&out) {
        assert_eq!(input.id, stored.id);
    }
    let stored = all(h, "s");
    assert_eq!(seqs(&stored), (1..=3001).collect::<Vec<_>>());
    assert_eq!(&stored[1..], &out[..]);
}

/// `after` is exclusive.
pub fn filter_after(h: &Harness) {
    fill(h, "s", 10);
    let got = query(h, "s", EventQuery::new().after(7));
    assert_eq!(seqs(&got), vec![8, 9, 10]);
    assert_eq!(seqs(&query(h, "s", EventQuery::new().after(0))).len(), 10);
    assert!(query(h, "s", EventQuery::new().after(10)).is_empty());
    assert!(query(h, "s", EventQuery::new().after(u64::MAX)).is_empty());
}

/// `before` is exclusive.
pub fn filter_before(h: &Harness) {
    fill(h, "s", 10);
    assert_eq!(
        seqs(&query(h, "s", EventQuery::new().before(4))),
        vec![1, 2, 3]
    );
    assert_eq!(
        seqs(&query(h, "s", EventQuery::new().before(100))).len(),
        10
    );
    assert!(query(h, "s", EventQuery::new().before(1)).is_empty());
}

/// `after` and `before` together give the open window between them.
pub fn filter_after_and_before(h: &Harness) {
    fill(h, "s", 20);
    let q = EventQuery::new().after(5).before(9);
    assert_eq!(seqs(&h.store.get_events("s", &q).unwrap()), vec![6, 7, 8]);
    let q = EventQuery::new().after(5).before(7);
    assert_eq!(seqs(&h.store.get_events("s", &q).unwrap()), vec![6]);
}

/// `limit` keeps the oldest N; `Some(0)` returns nothing.
pub fn filter_limit(h: &Harness) {
    fill(h, "s", 10);
    assert_eq!(
        seqs(&query(h, "s", EventQuery::new().limit(3))),
        vec![1, 2, 3]
    );
    assert_eq!(
        seqs(&query(h, "s", EventQuery::new().after(8).limit(5))),
        vec![9, 10]
    );
    assert!(query(h, "s", EventQuery::new().limit(0)).is_empty());
    let waited = EventQuery::new()
        .limit(0)
        .wait_timeout(Duration::from_secs(30));
    assert!(h.store.get_events("s", &waited).unwrap().is_empty());
}

/// `run_id` keeps only that run's events.
pub fn filter_run_id(h: &Harness) {
    let events = fill(h, "s", 10);
    append(h, event("s", 11, EventType::MessageSent));
    let got = query(h, "s", EventQuery::new().run_id("r1"));
    let want: Vec<Event> = events
        .into_iter()
        .filter(|e| e.run_id.as_deref() == Some("r1"))
        .collect();
    assert_eq!(got, want);
    assert!(query(h, "s", EventQuery::new().run_id("nope")).is_empty());
}

/// `event_type` keeps only that type.
pub fn filter_event_type(h: &Harness) {
    let events = fill(h, "s", 12);
    let got = query(
        h,
        "s",
        EventQuery::new().event_type(EventType::ToolCallStarted),
    );
    let want: Vec<Event> = events
        .into_iter()
        .filter(|e| e.event_type == EventType::ToolCallStarted)
        .collect();
    assert_eq!(got.len(), 4);
    assert_eq!(got, want);
}

/// `since` is exclusive, to the nanosecond.
pub fn filter_since_is_exclusive_to_the_nanosecond(h: &Harness) {
    let base = UNIX_EPOCH + Duration::from_nanos(1_750_000_000_123_456_789);
    for i in 0..5u64 {
        let e =
            event("s", i, EventType::MessageSent).with_timestamp(base + Duration::from_nanos(i));
        append(h, e);
    }
    let got = query(
        h,
        "s",
        EventQuery::new().since(base + Duration::from_nanos(2)),
    );
    assert_eq!(seqs(&got), vec![4, 5]);
    let got = query(
        h,
        "s",
        EventQuery::new().since(base - Duration::from_nanos(1)),
    );
    assert_eq!(got.len(), 5);
    let got = query(
        h,
        "s",
        EventQuery::new().since(base + Duration::from_nanos(4)),
    );
    assert!(got.is_empty());
}

/// All filters combine with AND; `limit` applies to the filtered, oldest-first list.
pub fn filters_combine_and_limit_applies_last(h: &Harness) {
    let events = fill(h, "s", 60);
    let since = events[9].timestamp;
    let q = EventQuery::new()
        .after(5)
        .before(50)
        .run_id("r2")
        .event_type(EventType::MessageSent)
        .since(since);
    let want: Vec<Event> = events
        .iter()
        .filter(|e| {
            let s = e.sequence_number.unwrap();
            s > 5
                && s < 50
                && e.run_id.as_deref() == Some("r2")
                && e.event_type == EventType::MessageSent
                && e.timestamp > since
        })
        .cloned()
        .collect();
    assert!(want.len() >= 3, "the data set must leave several matches");
    assert_eq!(h.store.get_events("s", &q).unwrap(), want);
    assert_eq!(
        h.store.get_events("s", &q.clone().limit(2)).unwrap(),
        want[..2].to_vec()
    );
}

/// A range that `after`/`before` leave empty returns `[]` at once, even with a wait.
pub fn empty_range_returns_at_once(h: &Harness) {
    fill(h, "s", 5);
    let wait = Duration::from_secs(60);
    for q in [
        EventQuery::new().after(5).before(6),
        EventQuery::new().after(3).before(2),
        EventQuery::new().before(0),
        EventQuery::new().after(u64::MAX),
    ] {
        assert!(
            h.store
                .get_events("s", &q.clone().wait_timeout(wait))
                .unwrap()
                .is_empty(),
            "{q:?}"
        );
    }
}

/// A session with no events reads as empty with latest sequence 0.
pub fn unknown_session_is_empty(h: &Harness) {
    fill(h, "known", 3);
    assert!(all(h, "unknown").is_empty());
    assert_eq!(h.store.get_latest_sequence("unknown").unwrap(), 0);
    assert!(query(h, "unknown", EventQuery::new().after(1).limit(5)).is_empty());
}

/// Events with nested JSON, unicode and extreme timestamps come back exactly.
pub fn round_trip_is_field_exact(h: &Harness) {
    let mut e = Event::new("sess-ünï-🚀", EventType::ToolApprovalRequested).with_run("run/名前");
    e.data = json!({
        "nested": {"list": [1, -2, 3.5, 1e300, 0.1, null, true, "ß"], "empty": {}},
        "big": u64::MAX, "neg": i64::MIN, "text": "line\nbreak \"quoted\" \u{0}",
    })
    .as_object()
    .unwrap()
    .clone();
    e.metadata.insert("provider".into(), json!("mock"));
    let times = [
        UNIX_EPOCH - Duration::from_nanos(9_000_000_000_000_000_001), // 1684
        UNIX_EPOCH - Duration::from_nanos(1),
        UNIX_EPOCH,
        UNIX_EPOCH + Duration::from_nanos(7_500_000_000_123_456_789), // 2207
        SystemTime::now(),
    ];
    for (i, t) in times.into_iter().enumerate() {
        let mut input = e.clone().with_id(format!("exact-{i}")).with_timestamp(t);
        input.run_id = (i % 2 == 0).then(|| "run/名前".to_string());
        let stored = append(h, input.clone());
        assert_eq!(
            stored,
            Event {
                sequence_number: Some(i as u64 + 1),
                ..input.clone()
            }
        );
        let read = h
            .store
            .get_events(&input.session_id, &EventQuery::new().after(i as u64))
            .unwrap();
        assert_eq!(read[0], stored);
    }
}

/// A timestamp an `i64` of nanoseconds cannot hold is rejected at append.
pub fn timestamps_outside_the_storable_range_are_rejected(h: &Harness) {
    let too_late = UNIX_EPOCH + Duration::from_secs(9_300_000_000);
    let too_early = UNIX_EPOCH - Duration::from_secs(9_300_000_000);
    for t in [too_late, too_early] {
        let res = h
            .store
            .append_event_with_sequence(event("s", 1, EventType::MessageSent).with_timestamp(t));
        assert!(
            matches!(res, Err(Error::InvalidTimestamp { .. })),
            "{res:?}"
        );
    }
    assert_eq!(h.store.get_latest_sequence("s").unwrap(), 0);
}

/// Empty session ids (in writes and reads) and empty event ids are errors that change nothing.
pub fn bad_input_is_rejected_and_changes_nothing(h: &Harness) {
    append(h, event("s", 1, EventType::MessageSent));
    assert!(
        h.store
            .append_event_with_sequence(Event::new("", EventType::MessageSent))
            .is_err()
    );
    assert!(
        h.store
            .append_event_with_sequence(event("s", 2, EventType::MessageSent).with_id(""))
            .is_err()
    );
    assert!(
        h.store
            .append_events(vec![Event::new("", EventType::MessageSent)])
            .is_err()
    );
    assert!(h.store.get_events("", &EventQuery::new()).is_err());
    assert!(h.store.get_latest_sequence("").is_err());
    let err = h
        .store
        .get_events("", &EventQuery::new())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("session_id"),
        "the error must say what is wrong: {err}"
    );
    assert!(h.store.append_events(Vec::new()).unwrap().is_empty());
    assert_eq!(h.store.get_latest_sequence("s").unwrap(), 1);
    assert_eq!(
        append(h, event("s", 3, EventType::MessageSent)).sequence_number,
        Some(2)
    );
}

/// `data` nested 127 levels deep (the map is level 1) round-trips; one level
/// more is rejected and changes nothing (it could never be read back).
pub fn nesting_deeper_than_readers_allow_is_rejected(h: &Harness) {
    let nested = |levels: usize| {
        let mut v = json!(1);
        for _ in 0..levels {
            v = json!([v]);
        }
        event("s", levels as u64, EventType::MessageSent).with_data("deep", v)
    };
    let ok = nested(crate::store::MAX_NESTING - 1);
    assert_eq!(append(h, ok.clone()).data, ok.data);
    for e in [nested(crate::store::MAX_NESTING), nested(5000)] {
        let res = h.store.append_event_with_sequence(e.clone());
        assert!(
            matches!(res, Err(Error::InvalidArgument(_))),
            "{:?}",
            res.map(|e| e.id)
        );
        let mut meta = event("s", 9, EventType::MessageSent);
        meta.metadata = e.data.clone();
        assert!(h.store.append_events(vec![meta]).is_err());
    }
    assert_eq!(h.store.get_latest_sequence("s").unwrap(), 1);
    let page = all(h, "s");
    assert_eq!(page.len(), 1);
    assert_eq!(page[0].data, ok.data);
}

/// An event whose encoded size is over the limit is rejected; one at the limit's edge is not.
pub fn oversized_event_is_rejected(h: &Harness) {
    let mut big = event("s", 1, EventType::WorkspaceSnapshotTaken);
    big.data
        .insert("blob".into(), json!("x".repeat(h.max_event_size)));
    let res = h.store.append_event_with_sequence(big.clone());
    assert!(
        matches!(res, Err(Error::EventTooLarge { .. })),
        "{:?}",
        res.map(|e| e.id)
    );
    let res = h
        .store
        .append_events(vec![event("s", 2, EventType::MessageSent), big]);
    assert!(matches!(res, Err(Error::EventTooLarge { .. })));
    assert_eq!(h.store.get_latest_sequence("s").unwrap(), 0);
    let mut fits = event("s", 3, EventType::WorkspaceSnapshotTaken);
    fits.data
        .insert("blob".into(), json!("y".repeat(h.max_event_size / 2)));
    assert_eq!(append(h, fits.clone()).data, fits.data);
    assert_eq!(h.store.get_latest_sequence("s").unwrap(), 1);
}
