//! Following a session: long-poll wake-up latency (from `append` returning to
//! the waiting reader returning) and subscription throughput (events appended
//! and delivered through `sessionlog::subscribe`).
//!
//! `cargo bench --bench wait`

mod support;

use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sessionlog::{EventQuery, EventType, SessionStore, SubscribeOptions, SyncPolicy, subscribe};
use support::{event_of_size, fresh, open};

/// The summed wake-up latency of `iters` long-polls.
fn wakeups(store: &Arc<sessionlog::LogStore>, iters: u64) -> Duration {
    let (go_tx, go_rx) = mpsc::channel::<u64>();
    let (done_tx, done_rx) = mpsc::channel::<Instant>();
    let reader = {
        let store = store.clone();
        std::thread::spawn(move || {
            for after in go_rx {
                let q = EventQuery::new()
                    .after(after)
                    .limit(100)
                    .wait_timeout(Duration::from_secs(5));
                assert!(
                    !store.get_events("poll", &q).expect("long-poll").is_empty(),
                    "timed out"
                );
                done_tx.send(Instant::now()).expect("report");
            }
        })
    };
    let template = event_of_size("poll", EventType::MessageSent, 256);
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let after = store.get_latest_sequence("poll").expect("latest");
        go_tx.send(after).expect("go");
        // Let the reader park in its wait before the append.
        std::thread::sleep(Duration::from_micros(300));
        store
            .append_event_with_sequence(fresh(&template))
            .expect("append");
        let acked = Instant::now();
        total += done_rx
            .recv()
            .expect("reader")
            .saturating_duration_since(acked);
    }
    drop(go_tx);
    reader.join().expect("reader");
    total
}

fn longpoll(c: &mut Criterion) {
    let mut g = c.benchmark_group("wait/longpoll_wakeup");
    for (name, sync) in [("never", SyncPolicy::Never), ("always", SyncPolicy::Always)] {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = open(dir.path(), sync);
        g.bench_function(name, |b| b.iter_custom(|iters| wakeups(&store, iters)));
    }
    g.finish();
}

/// Appends `iters` events on one thread while a subscriber receives them.
fn delivered(store: &Arc<sessionlog::LogStore>, session: &str, iters: u64) -> Duration {
    let from = store.get_latest_sequence(session).expect("latest") + 1;
    let sub = subscribe(
        store.clone(),
        session,
        SubscribeOptions {
            from_sequence: from,
            ..Default::default()
        },
    )
    .expect("subscribe");
    let start = Instant::now();
    let writer = {
        let (store, session) = (store.clone(), session.to_string());
        std::thread::spawn(move || {
            let template = event_of_size(&session, EventType::MessageStreamed, 256);
            for _ in 0..iters {
                store
                    .append_event_with_sequence(fresh(&template))
                    .expect("append");
            }
        })
    };
    for _ in 0..iters {
        sub.recv_timeout(Duration::from_secs(10))
            .expect("delivered");
    }
    let took = start.elapsed();
    writer.join().expect("writer");
    sub.unsubscribe();
    took
}

fn subscription(c: &mut Criterion) {
    let mut g = c.benchmark_group("wait/subscription");
    g.throughput(Throughput::Elements(1));
    let dir = tempfile::tempdir().expect("temp dir");
    let store = open(dir.path(), SyncPolicy::Never);
    g.bench_function("append_to_delivery_never", |b| {
        b.iter_custom(|iters| delivered(&store, "sub", iters))
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(Duration::from_secs(3));
    targets = longpoll, subscription
}
criterion_main!(benches);
