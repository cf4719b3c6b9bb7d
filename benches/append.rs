//! Append benches: `SyncPolicy::Never` and `Always`, durable appends from
//! 1, 4, 16 and 64 threads (group commit), `append_events` batches, and the
//! duplicate-id path. Bodies are 256 B.
//!
//! `cargo bench --bench append`

mod support;

use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use sessionlog::{EventType, SessionStore, SyncPolicy};
use support::{event_of_size, fresh, open};

fn single(c: &mut Criterion) {
    let mut g = c.benchmark_group("append/single");
    g.throughput(Throughput::Elements(1));
    for (name, sync) in [("never", SyncPolicy::Never), ("always", SyncPolicy::Always)] {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = open(dir.path(), sync);
        let template = event_of_size("bench", EventType::MessageSent, 256);
        g.bench_function(name, |b| {
            b.iter(|| {
                store
                    .append_event_with_sequence(fresh(&template))
                    .expect("append")
            })
        });
    }
    g.finish();
}

/// `iters` durable appends spread over `threads` threads, each on its own session.
fn durable_from_threads(store: &Arc<sessionlog::LogStore>, threads: usize, iters: u64) -> Duration {
    let per_thread = iters.div_ceil(threads as u64);
    let barrier = Arc::new(Barrier::new(threads + 1));
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let (store, barrier) = (store.clone(), barrier.clone());
            std::thread::spawn(move || {
                let template = event_of_size(&format!("thread-{t}"), EventType::MessageSent, 256);
                barrier.wait();
                for _ in 0..per_thread {
                    store
                        .append_event_with_sequence(fresh(&template))
                        .expect("append");
                }
            })
        })
        .collect();
    barrier.wait();
    let start = Instant::now();
    handles
        .into_iter()
        .for_each(|h| h.join().expect("appender"));
    // Per event of `iters` (a thread may do a few more than its share).
    start
        .elapsed()
        .mul_f64(iters as f64 / (per_thread * threads as u64) as f64)
}

fn durable_threads(c: &mut Criterion) {
    let mut g = c.benchmark_group("append/durable_threads");
    g.throughput(Throughput::Elements(1));
    g.measurement_time(Duration::from_secs(5));
    for threads in [1usize, 4, 16, 64] {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = open(dir.path(), SyncPolicy::Always);
        g.bench_with_input(BenchmarkId::from_parameter(threads), &threads, |b, &t| {
            b.iter_custom(|iters| durable_from_threads(&store, t, iters));
        });
    }
    g.finish();
}

fn batches(c: &mut Criterion) {
    let mut g = c.benchmark_group("append/batch");
    for (name, sync) in [("never", SyncPolicy::Never), ("always", SyncPolicy::Always)] {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = open(dir.path(), sync);
        let template = event_of_size("bench", EventType::MessageSent, 256);
        for size in [10usize, 100] {
            g.throughput(Throughput::Elements(size as u64));
            g.bench_with_input(BenchmarkId::new(name, size), &size, |b, &n| {
                b.iter(|| {
                    store
                        .append_events((0..n).map(|_| fresh(&template)).collect())
                        .expect("batch")
                });
            });
        }
    }
    g.finish();
}

fn duplicates(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = open(dir.path(), SyncPolicy::Never);
    let template = event_of_size("bench", EventType::MessageSent, 256);
    let stored: Vec<_> = (0..10_000)
        .map(|_| {
            store
                .append_event_with_sequence(fresh(&template))
                .expect("append")
        })
        .collect();
    let mut i = 0;
    let mut g = c.benchmark_group("append/duplicate");
    g.throughput(Throughput::Elements(1));
    g.bench_function("known_id_in_10k", |b| {
        b.iter(|| {
            i = (i + 7919) % stored.len();
            store
                .append_event_with_sequence(stored[i].clone())
                .expect("duplicate")
        });
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).warm_up_time(Duration::from_millis(500));
    targets = single, durable_threads, batches, duplicates
}
criterion_main!(benches);
