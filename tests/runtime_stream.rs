//! `stream_session_events`: pagination, following in polling and long-poll
//! modes, filters and error recovery. Every check is a function over any
//! `Arc<dyn SessionStore>`; the `memory` and `logstore` modules run them.

mod runtime_support;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;
use runtime_support::*;
use sessionlog::{
    Event, EventStream, EventType, Result, SessionStore, StreamOptions, stream_session_events,
};

/// Consumes `stream` on a thread (it never ends), handing items back.
fn drive(stream: EventStream) -> Receiver<Result<Event>> {
    let (tx, rx) = crossbeam_channel::unbounded();
    std::thread::spawn(move || {
        for item in stream {
            if tx.send(item).is_err() {
                return;
            }
        }
    });
    rx
}

/// Takes `n` Ok events from `rx`, failing the test on an error or a long wait.
fn take_ok(rx: &Receiver<Result<Event>>, n: usize) -> Vec<Event> {
    (0..n)
        .map(|i| {
            rx.recv_timeout(LONG)
                .unwrap_or_else(|_| panic!("event {i} of {n} never came"))
                .expect("no stream error")
        })
        .collect()
}

fn polling() -> StreamOptions {
    StreamOptions {
        poll_interval: Duration::from_millis(10),
        ..StreamOptions::default()
    }
}

fn long_poll() -> StreamOptions {
    StreamOptions {
        wait_timeout: Some(Duration::from_secs(5)),
        ..StreamOptions::default()
    }
}

pub fn pages_through_backlog(store: Arc<dyn SessionStore>) {
    append_n(&*store, "s", 250, None);
    for limit in [0, 1, 7, 100, 1000] {
        let opts = StreamOptions { limit, ..polling() };
        let got: Vec<Event> = stream_session_events(store.clone(), "s", opts)
            .take(250)
            .collect::<Result<_>>()
            .unwrap();
        assert_eq!(seqs(&got), (1..=250).collect::<Vec<_>>(), "limit {limit}");
    }
    let opts = StreamOptions {
        after: 240,
        ..polling()
    };
    let mut stream = stream_session_events(store, "s", opts);
    assert_eq!(stream.cursor(), 240);
    let got: Vec<Event> = stream.by_ref().take(10).collect::<Result<_>>().unwrap();
    assert_eq!(seqs(&got), (241..=250).collect::<Vec<_>>());
    assert_eq!(stream.cursor(), 250);
}

/// The stream follows appends made after it started, in either wait mode.
pub fn follows_new_events(store: Arc<dyn SessionStore>, opts: StreamOptions) {
    append_n(&*store, "s", 5, None);
    let rx = drive(stream_session_events(
        store.clone(),
        "s",
        StreamOptions { limit: 3, ..opts },
    ));
    assert_eq!(seqs(&take_ok(&rx, 5)), [1, 2, 3, 4, 5]);
    assert!(rx.recv_timeout(SHORT).is_err(), "nothing new yet");
    let writer = {
        let store = store.clone();
        std::thread::spawn(move || {
            for _ in 0..40 {
                append_n(&*store, "s", 1, None);
                append_n(&*store, "other", 1, None);
                std::thread::sleep(Duration::from_millis(2));
            }
        })
    };
    assert_eq!(seqs(&take_ok(&rx, 40)), (6..=45).collect::<Vec<_>>());
    writer.join().unwrap();
    assert!(
        rx.recv_timeout(SHORT).is_err(),
        "no duplicates after the end"
    );
}

/// Run and type filters, alone and together, while following.
pub fn filters_while_following(store: Arc<dyn SessionStore>, opts: StreamOptions) {
    let by_run = StreamOptions {
        run_id: Some("b".into()),
        limit: 4,
        ..opts.clone()
    };
    let by_type = StreamOptions {
        event_type: Some(EventType::ToolCallStarted),
        ..opts.clone()
    };
    let both = StreamOptions {
        run_id: Some("a".into()),
        event_type: Some(EventType::ToolCallStarted),
        ..opts
    };
    let runs = drive(stream_session_events(store.clone(), "s", by_run));
    let tools = drive(stream_session_events(store.clone(), "s", by_type));
    let a_tools = drive(stream_session_events(store.clone(), "s", both));
    let mut expected = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..60 {
        let run = ["a", "b", "c"][i % 3];
        let kind = if i.is_multiple_of(4) {
            EventType::ToolCallStarted
        } else {
            EventType::MessageStreamed
        };
        let stored = store
            .append_event_with_sequence(ev("s", kind, Some(run)))
            .unwrap();
        let seq = stored.sequence_number.unwrap();
        if run == "b" {
            expected.0.push(seq);
        }
        if kind == EventType::ToolCallStarted {
            expected.1.push(seq);
            if run == "a" {
                expected.2.push(seq);
            }
        }
    }
    assert_eq!(seqs(&take_ok(&runs, expected.0.len())), expected.0);
    assert_eq!(seqs(&take_ok(&tools, expected.1.len())), expected.1);
    assert_eq!(seqs(&take_ok(&a_tools, expected.2.len())), expected.2);
    for rx in [&runs, &tools, &a_tools] {
        assert!(
            rx.recv_timeout(SHORT).is_err(),
            "nothing beyond the matches"
        );
    }
}

/// A read error comes out as an `Err` item; the stream then resumes from
/// the same cursor, skipping nothing.
pub fn errors_are_items_and_resume(inner: Arc<dyn SessionStore>) {
    let store = Wrapped::new(inner, true, true);
    append_n(&*store, "s", 10, None);
    let opts = StreamOptions {
        limit: 4,
        ..polling()
    };
    let mut stream = stream_session_events(store.clone(), "s", opts);
    let first: Vec<Event> = stream.by_ref().take(4).collect::<Result<_>>().unwrap();
    store.fail_reads.store(2, Ordering::Release);
    assert!(stream.next().unwrap().is_err());
    assert!(stream.next().unwrap().is_err());
    let rest: Vec<Event> = stream.by_ref().take(6).collect::<Result<_>>().unwrap();
    assert_eq!(
        seqs(first.iter().chain(&rest)),
        (1..=10).collect::<Vec<_>>()
    );
}

/// With `wait_timeout` on a store that ignores it, the stream sleeps
/// `poll_interval` between empty reads instead of spinning.
pub fn no_spin_without_long_poll(inner: Arc<dyn SessionStore>) {
    let store = Wrapped::new(inner, false, false);
    let opts = StreamOptions {
        wait_timeout: Some(Duration::from_secs(10)),
        poll_interval: Duration::from_millis(50),
        ..StreamOptions::default()
    };
    let rx = drive(stream_session_events(store.clone(), "s", opts));
    std::thread::sleep(Duration::from_millis(500));
    // About two reads per 50 ms interval; a spinning stream does thousands.
    let reads = store.reads_of("s");
    assert!(reads < 100, "{reads} reads in 500 ms: the stream spins");
    append_n(&*store, "s", 3, None);
    assert_eq!(seqs(&take_ok(&rx, 3)), [1, 2, 3]);
}

/// `wait_timeout: Some(0)` is no wait: the stream still follows by polling.
pub fn zero_wait_is_polling(store: Arc<dyn SessionStore>) {
    let opts = StreamOptions {
        wait_timeout: Some(Duration::ZERO),
        ..polling()
    };
    let rx = drive(stream_session_events(store.clone(), "s", opts));
    let started = Instant::now();
    append_n(&*store, "s", 2, None);
    assert_eq!(seqs(&take_ok(&rx, 2)), [1, 2]);
    assert!(started.elapsed() < LONG);
}

fn assert_send_static<T: Send + 'static>() {}

#[test]
fn options_and_stream_types() {
    assert_send_static::<EventStream>();
    let d = StreamOptions::default();
    assert_eq!(
        (d.after, d.limit, d.poll_interval),
        (0, 100, Duration::from_millis(250))
    );
    assert!(d.wait_timeout.is_none() && d.run_id.is_none() && d.event_type.is_none());
    let s = stream_session_events(memory(), "s", d.clone());
    assert!(format!("{s:?}").contains("EventStream"));
}

mod memory {
    use super::*;

    #[test]
    fn pagination() {
        pages_through_backlog(memory());
    }

    #[test]
    fn follows_when_polling() {
        follows_new_events(memory(), polling());
    }

    #[test]
    fn follows_when_long_polling() {
        follows_new_events(memory(), long_poll());
    }

    #[test]
    fn filters_when_polling() {
        filters_while_following(memory(), polling());
    }

    #[test]
    fn filters_when_long_polling() {
        filters_while_following(memory(), long_poll());
    }

    #[test]
    fn errors_resume_from_cursor() {
        errors_are_items_and_resume(memory());
    }

    #[test]
    fn ignored_long_poll_does_not_spin() {
        no_spin_without_long_poll(memory());
    }

    #[test]
    fn zero_wait_timeout() {
        zero_wait_is_polling(memory());
    }
}

/// The same checks on the durable store (group-committed, fsync on every append).
mod logstore {
    use super::*;
    use sessionlog::SyncPolicy::Always;

    #[test]
    fn pagination() {
        let (_dir, store) = logstore(Always);
        pages_through_backlog(store);
    }

    #[test]
    fn follows_when_polling() {
        let (_dir, store) = logstore(Always);
        follows_new_events(store, polling());
    }

    #[test]
    fn follows_when_long_polling() {
        let (_dir, store) = logstore(Always);
        follows_new_events(store, long_poll());
    }

    #[test]
    fn filters_when_polling() {
        let (_dir, store) = logstore(Always);
        filters_while_following(store, polling());
    }

    #[test]
    fn filters_when_long_polling() {
        let (_dir, store) = logstore(Always);
        filters_while_following(store, long_poll());
    }

    #[test]
    fn errors_resume_from_cursor() {
        let (_dir, store) = logstore(Always);
        errors_are_items_and_resume(store);
    }

    #[test]
    fn ignored_long_poll_does_not_spin() {
        let (_dir, store) = logstore(Always);
        no_spin_without_long_poll(store);
    }
}
