//! Reopen time of a large log (64 MiB; 1 GiB with `SESSIONLOG_BENCH_FULL=1`)
//! after a clean close and after a simulated SIGKILL.
//!
//! The SIGKILL state is made without killing the bench: the segment files
//! are copied while the writer is still open and appending (which is what the
//! disk holds when the process dies; the store's unwritten buffer is lost),
//! and half a record is added to the copy's tail so recovery has a torn tail
//! to cut. `examples/compare.rs` kills a real child process instead.
//!
//! `cargo bench --bench reopen`

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use sessionlog::{Event, EventType, LogOptions, LogStore, SessionStore, SyncPolicy};
use support::{full, open};

/// Appends `bytes` of 4 KiB events to `dir` over 16 sessions.
fn fill(store: &LogStore, bytes: u64) {
    let body = "x".repeat(4000);
    for n in 0..bytes / 4096 {
        let e = Event::new(format!("fill-{}", n % 16), EventType::MessageStreamed)
            .with_data("text", body.as_str());
        store.append_event_with_sequence(e).expect("append");
    }
}

/// Copies every segment file of `from` into `to`, the newest one last and
/// with a torn half-record appended.
fn copy_as_killed(from: &Path, to: &Path) {
    let mut segs: Vec<_> = std::fs::read_dir(from)
        .expect("list")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .collect();
    segs.sort();
    for p in &segs {
        std::fs::copy(p, to.join(p.file_name().expect("name"))).expect("copy segment");
    }
    if let Some(last) = segs.last() {
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(to.join(last.file_name().expect("name")))
            .expect("open");
        std::io::Write::write_all(&mut f, &[7u8; 100]).expect("torn tail");
    }
}

fn time_open(dir: &Path) -> Duration {
    let start = Instant::now();
    let store = LogStore::open_with(
        dir,
        LogOptions {
            sync: SyncPolicy::Never,
            ..LogOptions::default()
        },
    )
    .expect("reopen");
    let took = start.elapsed();
    drop(store);
    took
}

fn reopen(c: &mut Criterion) {
    let bytes: u64 = if full() { 1 << 30 } else { 64 << 20 };
    let mib = bytes >> 20;
    let clean = tempfile::tempdir().expect("temp dir");
    let store = open(clean.path(), SyncPolicy::Never);
    fill(&store, bytes);
    let killed = tempfile::tempdir().expect("temp dir");
    copy_as_killed(clean.path(), killed.path());
    // Keep appending while copying would race; the copy above is of a live
    // writer's files, which is the point. Then close the original cleanly.
    let store = std::sync::Arc::try_unwrap(store).unwrap_or_else(|_| panic!("shared"));
    store.close().expect("close");
    let mut g = c.benchmark_group("reopen");
    g.sample_size(10);
    g.bench_function(format!("clean_close_{mib}MiB"), |b| {
        b.iter_custom(|iters| (0..iters).map(|_| time_open(clean.path())).sum())
    });
    g.bench_function(format!("after_kill_{mib}MiB"), |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| {
                    let fresh = tempfile::tempdir().expect("temp dir");
                    copy_as_killed(killed.path(), fresh.path());
                    time_open(fresh.path())
                })
                .sum()
        })
    });
    g.finish();
}

criterion_group!(benches, reopen);
criterion_main!(benches);
