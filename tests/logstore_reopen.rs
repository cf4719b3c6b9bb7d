//! LogStore across close/drop/reopen: events, sequences and idempotency
//! survive; big logs with many segments reopen; options, permissions,
//! oversized events, and read-only followers.

mod logstore_util;

use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use logstore_util::{Expected, all, as_if_crashed, ev, open_small, segments};
use sessionlog::engine::inspect;
use sessionlog::{
    Error, Event, EventQuery, EventType, LogOptions, LogStore, SessionStore, SyncPolicy,
};

#[test]
fn events_sequences_and_ids_survive_many_reopens() {
    let dir = tempfile::tempdir().unwrap();
    let mut expected = Expected::default();
    let mut first_of_round = Vec::new();
    for round in 0..12u64 {
        let store = open_small(dir.path(), 16 * 1024);
        expected.check(&store);
        // Every earlier round's first event is still a duplicate, returning the original.
        for original in &first_of_round {
            let mut again: Event = Event::clone(original);
            again.data.insert("changed".into(), true.into());
            assert_eq!(&store.append_event_with_sequence(again).unwrap(), original);
        }
        for s in ["a", "b", "c"] {
            let one = store.append_event_with_sequence(ev(s, round, 50)).unwrap();
            expected.add(&one);
            if s == "a" {
                first_of_round.push(one);
            }
            let batch = (0..5).map(|i| ev(s, round * 100 + i, 10)).collect();
            for e in store.append_events(batch).unwrap() {
                expected.add(&e);
            }
        }
        expected.check(&store);
        if round % 2 == 0 {
            store.close().unwrap();
        } else {
            drop(store);
        }
    }
    let store = LogStore::open(dir.path()).unwrap();
    expected.check(&store);
    assert_eq!(store.get_latest_sequence("a").unwrap(), 12 * 6);
}

#[test]
fn a_large_log_with_many_segments_reopens_and_seeks() {
    let dir = tempfile::tempdir().unwrap();
    let opts = LogOptions {
        sync: SyncPolicy::Never,
        segment_size: 8 * 1024,
        ..LogOptions::default()
    };
    let mut expected = Expected::default();
    {
        let store = LogStore::open_with(dir.path(), opts.clone()).unwrap();
        for chunk in 0..60u64 {
            let batch: Vec<Event> = (0..50)
                .map(|i| ev(&format!("s{}", (chunk + i) % 7), chunk * 50 + i, 40))
                .collect();
            for e in store.append_events(batch).unwrap() {
                expected.add(&e);
            }
        }
        store.close().unwrap();
    }
    assert!(
        segments(dir.path()).len() > 50,
        "many segments: {}",
        segments(dir.path()).len()
    );
    let open_fds = || std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count());
    let fds_before = open_fds();
    let store = LogStore::open_with(dir.path(), opts).unwrap();
    // Sealed segments are mapped, not held open (other tests of this binary
    // run meanwhile, hence the slack).
    let segment_count = segments(dir.path()).len();
    assert!(
        open_fds() < fds_before + segment_count / 2,
        "an open file per segment?"
    );
    expected.check(&store);
    // Cursor queries anywhere in a session return exactly the right page.
    let s3 = &expected.sessions["s3"];
    for after in [
        0u64,
        1,
        31,
        32,
        33,
        100,
        250,
        s3.len() as u64 - 1,
        s3.len() as u64,
    ] {
        let q = EventQuery::new().after(after).limit(40);
        let want: Vec<Event> = s3.iter().skip(after as usize).take(40).cloned().collect();
        assert_eq!(store.get_events("s3", &q).unwrap(), want, "after {after}");
        let q = EventQuery::new().after(after).before(after + 7);
        let want: Vec<Event> = s3.iter().skip(after as usize).take(6).cloned().collect();
        assert_eq!(
            store.get_events("s3", &q).unwrap(),
            want,
            "after {after} before {}",
            after + 7
        );
    }
    let runs = store
        .get_events("s3", &EventQuery::new().run_id("r1").after(10).limit(5))
        .unwrap();
    let want: Vec<Event> = s3
        .iter()
        .skip(10)
        .filter(|e| e.run_id.as_deref() == Some("r1"))
        .take(5)
        .cloned()
        .collect();
    assert_eq!(runs, want);
    assert!(inspect::verify(dir.path()).unwrap().problems.is_empty());
}

/// Sealed segments of thousands of records: the open's scanner thread hands
/// each over in several messages (of 4,096 records), with batches ending on
/// both sides of every message boundary. The reopened log holds exactly what
/// was written, and an id from the first segment is still known.
#[test]
fn full_sealed_segments_reopen_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let opts = || LogOptions {
        sync: SyncPolicy::Never,
        segment_size: 2 << 20,
        ..LogOptions::default()
    };
    let store = LogStore::open_with(dir.path(), opts()).unwrap();
    let mut expected = Expected::default();
    let first = store.append_event_with_sequence(ev("a", 0, 0)).unwrap();
    expected.add(&first);
    for n in 1..40_000u64 {
        let s = ["a", "b", "c", "d", "e"][(n % 5) as usize];
        if n % 97 == 0 {
            let batch = (0..7).map(|i| ev(s, n * 10 + i, 0)).collect();
            store
                .append_events(batch)
                .unwrap()
                .iter()
                .for_each(|e| expected.add(e));
        } else {
            expected.add(&store.append_event_with_sequence(ev(s, n, 0)).unwrap());
        }
    }
    store.close().unwrap();
    let stats = inspect::stats(dir.path()).unwrap();
    let (newest, sealed) = stats.segments.split_last().unwrap();
    assert!(sealed.len() >= 2, "{} segments", stats.segments.len());
    assert!(sealed.iter().all(|s| s.records > 3 * 4096), "{sealed:?}");
    assert!(newest.records > 0);

    let store = LogStore::open_with(dir.path(), opts()).unwrap();
    expected.check(&store);
    assert_eq!(
        store.append_event_with_sequence(first.clone()).unwrap(),
        first
    );
    store.close().unwrap();
}

#[test]
fn buffered_and_interval_policies_keep_everything_on_close() {
    for sync in [
        SyncPolicy::Never,
        SyncPolicy::Interval(Duration::from_millis(5)),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let opts = LogOptions {
            sync,
            ..LogOptions::default()
        };
        let mut expected = Expected::default();
        let store = LogStore::open_with(dir.path(), opts.clone()).unwrap();
        for n in 0..500 {
            expected.add(&store.append_event_with_sequence(ev("s", n, 100)).unwrap());
        }
        expected.check(&store); // served from memory before any write
        std::thread::sleep(Duration::from_millis(30));
        drop(store);
        expected.check(&LogStore::open_with(dir.path(), opts).unwrap());
    }
}

#[test]
fn files_are_owner_only() {
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("log");
    let store = LogStore::open(&dir).unwrap();
    store.append_event_with_sequence(ev("s", 1, 1)).unwrap();
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dir), 0o700);
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        assert_eq!(mode(&path), 0o600, "{}", path.display());
    }
}

#[test]
fn oversized_events_and_bad_options_are_rejected_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let opts = LogOptions {
        max_event_size: 1000,
        ..LogOptions::default()
    };
    let store = LogStore::open_with(dir.path(), opts.clone()).unwrap();
    let ok = store.append_event_with_sequence(ev("s", 1, 10)).unwrap();
    let err = store
        .append_event_with_sequence(ev("s", 2, 2000))
        .unwrap_err();
    assert!(
        matches!(err, Error::EventTooLarge { limit: 1000, .. }),
        "{err}"
    );
    let err = store
        .append_events(vec![ev("s", 3, 1), ev("s", 4, 5000)])
        .unwrap_err();
    assert!(matches!(err, Error::EventTooLarge { .. }), "{err}");
    drop(store);
    let store = LogStore::open_with(dir.path(), opts).unwrap();
    assert_eq!(all(&store, "s"), vec![ok]);
    drop(store);
    for bad in [
        LogOptions {
            segment_size: 10,
            ..LogOptions::default()
        },
        LogOptions {
            max_event_size: 0,
            ..LogOptions::default()
        },
        LogOptions {
            sync: SyncPolicy::Interval(Duration::ZERO),
            ..LogOptions::default()
        },
    ] {
        let err = LogStore::open_with(dir.path(), bad).unwrap_err();
        assert!(matches!(err, Error::InvalidArgument(_)), "{err}");
    }
}

#[test]
fn timestamps_are_kept_to_the_nanosecond_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let times = [
        sessionlog::timestamp::from_unix_nanos(i64::MIN),
        sessionlog::timestamp::from_unix_nanos(-1),
        sessionlog::timestamp::from_unix_nanos(1_750_000_000_123_456_789),
        sessionlog::timestamp::from_unix_nanos(i64::MAX),
    ];
    let stored: Vec<Event> = {
        let store = LogStore::open(dir.path()).unwrap();
        times
            .iter()
            .map(|&t| {
                store
                    .append_event_with_sequence(ev("t", 0, 0).with_timestamp(t))
                    .unwrap()
            })
            .collect()
    };
    let store = LogStore::open(dir.path()).unwrap();
    let back = all(&store, "t");
    assert_eq!(back, stored);
    assert_eq!(back.iter().map(|e| e.timestamp).collect::<Vec<_>>(), times);
}

#[test]
fn read_only_follower_sees_the_writer_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let writer = Arc::new(open_small(dir.path(), 4096));
    let first = writer.append_event_with_sequence(ev("s", 1, 10)).unwrap();
    let reader = Arc::new(LogStore::open_read_only(dir.path()).unwrap());
    assert!(reader.is_read_only());
    assert_eq!(all(&*reader, "s"), vec![first.clone()]);
    let err = reader
        .append_event_with_sequence(ev("s", 2, 1))
        .unwrap_err();
    assert!(matches!(err, Error::ReadOnly { .. }), "{err}");

    // Refresh on query, across segment rollovers.
    let mut expected = vec![first];
    for n in 2..200 {
        expected.push(writer.append_event_with_sequence(ev("s", n, 60)).unwrap());
    }
    assert_eq!(all(&*reader, "s"), expected);
    assert_eq!(reader.get_latest_sequence("s").unwrap(), 199);

    // A long-poll on the follower is released by the writer's append.
    let r = Arc::clone(&reader);
    let waiter = std::thread::spawn(move || {
        let q = EventQuery::new()
            .after(199)
            .wait_timeout(Duration::from_secs(20));
        let started = Instant::now();
        (r.get_events("s", &q).unwrap(), started.elapsed())
    });
    std::thread::sleep(Duration::from_millis(100));
    let late = writer.append_event_with_sequence(ev("s", 200, 1)).unwrap();
    let (got, waited) = waiter.join().unwrap();
    assert_eq!(got, vec![late]);
    assert!(waited < Duration::from_secs(20));

    // A watch on the follower fires too.
    let watch = reader.watch("w").unwrap();
    writer.append_event_with_sequence(ev("w", 1, 1)).unwrap();
    assert!(
        watch
            .receiver()
            .recv_timeout(Duration::from_secs(20))
            .is_ok()
    );
}

#[test]
fn read_only_follower_reads_past_its_window_and_the_writers_zeros() {
    // A refresh reads the live segment a window at a time (4 KiB first,
    // growing): records longer than a window, a batch longer than the largest
    // window, and runs of records over many windows all arrive whole, while
    // the writer's preallocated zeros lie after them.
    let dir = tempfile::tempdir().unwrap();
    let writer = LogStore::open(dir.path()).unwrap();
    let reader = LogStore::open_read_only(dir.path()).unwrap();
    let mut expected = vec![writer.append_event_with_sequence(ev("s", 0, 10)).unwrap()];
    assert_eq!(all(&reader, "s"), expected);
    // Nothing new: the same answer, again and again.
    for _ in 0..3 {
        assert_eq!(all(&reader, "s"), expected);
    }
    expected.push(
        writer
            .append_event_with_sequence(ev("s", 1, 100_000))
            .unwrap(),
    );
    assert_eq!(all(&reader, "s"), expected);
    let batch: Vec<Event> = (0..300).map(|i| ev("s", 10 + i, 4096)).collect();
    expected.extend(writer.append_events(batch).unwrap());
    for i in 0..2000 {
        expected.push(
            writer
                .append_event_with_sequence(ev("s", 1000 + i, 200))
                .unwrap(),
        );
    }
    assert_eq!(all(&reader, "s"), expected);
    assert_eq!(
        reader.get_latest_sequence("s").unwrap(),
        expected.len() as u64
    );
}

#[test]
fn read_only_open_ignores_a_torn_tail_without_touching_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = LogStore::open(dir.path()).unwrap();
    let kept = store.append_event_with_sequence(ev("s", 1, 10)).unwrap();
    store.append_event_with_sequence(ev("s", 2, 10)).unwrap();
    store.close().unwrap();
    assert!(as_if_crashed(dir.path()), "a crash writes no close mark");
    let seg = segments(dir.path()).pop().unwrap();
    let len = std::fs::metadata(&seg).unwrap().len();
    let f = std::fs::OpenOptions::new().write(true).open(&seg).unwrap();
    f.set_len(len - 5).unwrap();
    let before = std::fs::read(&seg).unwrap();
    let reader = LogStore::open_read_only(dir.path()).unwrap();
    assert_eq!(all(&reader, "s"), vec![kept.clone()]);
    drop(reader);
    assert_eq!(
        std::fs::read(&seg).unwrap(),
        before,
        "read-only open modified the file"
    );
    // The writer cuts the tail and appends after it; the follower picks that up.
    let reader = LogStore::open_read_only(dir.path()).unwrap();
    let writer = LogStore::open(dir.path()).unwrap();
    let next = writer.append_event_with_sequence(ev("s", 3, 10)).unwrap();
    assert_eq!(next.sequence_number, Some(2));
    assert_eq!(all(&reader, "s"), vec![kept, next]);
}

#[test]
fn read_only_open_of_a_missing_directory_fails_clearly() {
    let parent = tempfile::tempdir().unwrap();
    let err = LogStore::open_read_only(parent.path().join("nope")).unwrap_err();
    assert!(matches!(err, Error::Io { .. }), "{err}");
    assert!(err.to_string().contains("nope"), "{err}");
}

#[test]
fn index_memory_stays_compact() {
    let dir = tempfile::tempdir().unwrap();
    let opts = LogOptions {
        sync: SyncPolicy::Never,
        ..LogOptions::default()
    };
    let store = LogStore::open_with(dir.path(), opts).unwrap();
    let n = 100_000u64;
    for chunk in 0..(n / 1000) {
        let batch = (0..1000).map(|i| {
            Event::new(format!("session-{}", i % 10), EventType::MessageStreamed)
                .with_data("i", chunk * 1000 + i)
        });
        store.append_events(batch.collect()).unwrap();
    }
    let per_event = store.index_memory_bytes() as f64 / n as f64;
    assert!(per_event <= 32.0, "{per_event} bytes of index per event");
}
