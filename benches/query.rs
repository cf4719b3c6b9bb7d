//! Cursor page benches: `get_events(after: k, limit: 100)`, with and without
//! a type filter, on sessions inside logs of 10 thousand and 100 thousand
//! events, and with `SESSIONLOG_BENCH_FULL=1` also 1 million and 10 million
//! (building 10M events takes minutes and ~3 GB of disk).
//!
//! `SESSIONLOG_BENCH_FULL=1 cargo bench --bench query`

mod support;

use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use sessionlog::{EventQuery, EventType, SessionStore, SyncPolicy};
use support::{build_log, full, open, session_name};

fn pages(c: &mut Criterion) {
    let sizes: &[usize] = if full() {
        &[10_000, 1_000_000, 10_000_000]
    } else {
        &[10_000, 100_000]
    };
    let mut g = c.benchmark_group("query/page100");
    g.throughput(Throughput::Elements(100));
    for &total in sizes {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = open(dir.path(), SyncPolicy::Never);
        let sessions = build_log(&*store, total);
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for filtered in [false, true] {
            let name = if filtered { "by_type" } else { "all" };
            g.bench_with_input(BenchmarkId::new(name, total), &total, |b, _| {
                b.iter(|| {
                    // xorshift picks of session and cursor.
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    let session = session_name(x as usize % sessions);
                    let span = if filtered { 600 } else { 900 };
                    let mut q = EventQuery::new().after((x >> 32) % span).limit(100);
                    if filtered {
                        q = q.event_type(EventType::MessageSent);
                    }
                    let page = store.get_events(&session, &q).expect("page");
                    assert_eq!(page.len(), 100);
                    page
                });
            });
        }
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).measurement_time(Duration::from_secs(3));
    targets = pages
}
criterion_main!(benches);
