//! Side-by-side comparison, in one process, of the disk's limit, `LogStore`
//! and SQLite on the same workloads and event sizes (issue 6).
//!
//! ```text
//! cargo run --release --example compare                 # quick run, ~2-3 minutes
//! COMPARE_FULL=1 cargo run --release --example compare  # 10M-event logs, 10 s per timed case
//! ```
//!
//! Settings (environment): `COMPARE_SECS` (time budget of each timed case),
//! `COMPARE_THREADS` (concurrent appenders, 64), `COMPARE_BUFFERED_N` (events
//! of the buffered runs), `COMPARE_BIG` / `COMPARE_SMALL` (events in the big and
//! small query logs), `COMPARE_KILL_MB` (log size killed with SIGKILL, 1024),
//! `COMPARE_DIR` (where the files go; the system temp dir by default) and
//! `COMPARE_ONLY` (comma list of sections: disk,durable,threads,buffered,query,
//! longpoll,reopen).

#[path = "compare/alloc.rs"]
mod alloc;
#[path = "compare/disk.rs"]
mod disk;
#[path = "compare/logstore.rs"]
mod logstore;
#[path = "compare/sqlite.rs"]
mod sqlite;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Barrier, mpsc};
use std::time::{Duration, Instant};

use sessionlog::format::event_codec;
use sessionlog::{Event, EventQuery, EventType, MemoryStore, SessionStore};

use alloc::Mem;
use logstore::Log;
use sqlite::SqliteStore;

#[global_allocator]
static GLOBAL: alloc::Counting = alloc::Counting;

/// Latencies and throughput of one timed case.
#[derive(Clone, Debug, Default)]
pub struct Stats {
    /// Operations done.
    pub ops: usize,
    /// Wall time of the whole case.
    pub elapsed: Duration,
    /// Median latency of one operation.
    pub p50: Duration,
    /// 99th percentile latency.
    pub p99: Duration,
}

impl Stats {
    /// Stats from per-operation latencies and the case's wall time.
    pub fn from_latencies(mut lat: Vec<Duration>, elapsed: Duration) -> Stats {
        lat.sort_unstable();
        let pick = |q: f64| lat.get(((lat.len() as f64 - 1.0) * q).round() as usize).copied().unwrap_or_default();
        Stats { ops: lat.len(), elapsed, p50: pick(0.5), p99: pick(0.99) }
    }

    /// Operations per second.
    pub fn rate(&self) -> f64 {
        self.ops as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Run settings.
struct Config {
    secs: Duration,
    threads: usize,
    buffered_n: usize,
    big: usize,
    small: usize,
    kill_bytes: u64,
    dir: PathBuf,
    only: Option<Vec<String>>,
}

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

impl Config {
    fn from_env() -> Config {
        let full = std::env::var("COMPARE_FULL").is_ok_and(|v| v == "1");
        let dir = std::env::var_os("COMPARE_DIR").map_or_else(std::env::temp_dir, PathBuf::from);
        Config {
            secs: Duration::from_secs(env_num("COMPARE_SECS", if full { 10 } else { 3 })),
            threads: env_num("COMPARE_THREADS", 64) as usize,
            buffered_n: env_num("COMPARE_BUFFERED_N", if full { 1_000_000 } else { 300_000 }) as usize,
            big: env_num("COMPARE_BIG", if full { 10_000_000 } else { 1_000_000 }) as usize,
            small: env_num("COMPARE_SMALL", 10_000) as usize,
            kill_bytes: env_num("COMPARE_KILL_MB", 1024) << 20,
            dir,
            only: std::env::var("COMPARE_ONLY").ok().map(|v| v.split(',').map(str::to_string).collect()),
        }
    }

    fn runs(&self, section: &str) -> bool {
        self.only.as_ref().is_none_or(|o| o.iter().any(|s| s == section))
    }

    fn tempdir(&self) -> tempfile::TempDir {
        tempfile::tempdir_in(&self.dir).expect("temp dir")
    }
}

/// An event whose encoded body is exactly `body` bytes (for bodies ≥ ~100 B).
fn event_of_size(session: &str, kind: EventType, body: usize) -> Event {
    let mut e = Event::new(session, kind);
    e.data.insert("text".into(), "".into());
    let pad = body.saturating_sub(event_codec::encoded_len(&e));
    e.data.insert("text".into(), "x".repeat(pad).into());
    e
}

/// One results row: a label and what each system measured.
struct Row {
    name: String,
    disk: String,
    log: String,
    sqlite: String,
}

/// Everything measured, for the table and the ratios.
#[derive(Default)]
struct Results {
    rows: Vec<Row>,
    ratios: Vec<(String, f64, String, bool)>,
}

impl Results {
    fn row(&mut self, name: impl Into<String>, disk: String, log: String, sqlite: String) {
        let row = Row { name: name.into(), disk, log, sqlite };
        println!("  {:<44} disk {:<26} log {:<26} sqlite {}", row.name, row.disk, row.log, row.sqlite);
        self.rows.push(row);
    }

    fn ratio(&mut self, name: impl Into<String>, value: f64, target: &str, met: bool) {
        self.ratios.push((name.into(), value, target.to_string(), met));
    }

    fn print(&self) {
        let log = if logstore::REAL { "LogStore" } else { "MemoryStore (LogStore stand-in)" };
        println!("\n| workload | disk limit | {log} | SQLite |\n|---|---|---|---|");
        for r in &self.rows {
            println!("| {} | {} | {} | {} |", r.name, r.disk, r.log, r.sqlite);
        }
        println!("\n| ratio (issue 6 target) | measured | target | met |\n|---|---|---|---|");
        for (name, value, target, met) in &self.ratios {
            println!("| {name} | {value:.3} | {target} | {} |", if *met { "yes" } else { "NO" });
        }
    }
}

fn fmt_rate(s: &Stats) -> String {
    format!("{:.0}/s p50 {} p99 {}", s.rate(), fmt_dur(s.p50), fmt_dur(s.p99))
}

fn fmt_dur(d: Duration) -> String {
    let us = d.as_secs_f64() * 1e6;
    if us < 1000.0 { format!("{us:.1}µs") } else { format!("{:.2}ms", us / 1000.0) }
}

fn fmt_mem(m: Mem, events: usize) -> String {
    let per = |b: i64| b as f64 / events.max(1) as f64;
    format!("heap {:.1} B/ev, anon RSS {:.1} B/ev", per(m.heap), per(m.rss))
}

/// Appends `body`-byte events to one session until `max` or `budget` runs out.
fn append_loop(store: &dyn SessionStore, session: &str, body: usize, max: usize, budget: Duration) -> Stats {
    let lat = append_latencies(store, session, body, max, budget);
    // The rate over the appends alone (event generation is left out).
    let busy = lat.iter().sum();
    Stats::from_latencies(lat, busy)
}

/// The latency of each append of [`append_loop`]. Events are made before the
/// clock starts (in chunks), so the rate is the store's, not the id generator's.
fn append_latencies(store: &dyn SessionStore, session: &str, body: usize, max: usize, budget: Duration) -> Vec<Duration> {
    let template = event_of_size(session, EventType::MessageSent, body);
    let mut lat = Vec::new();
    let mut spent = Duration::ZERO;
    while lat.len() < max && spent < budget {
        let chunk: Vec<Event> = (0..(max - lat.len()).min((1 << 20) / body).max(1))
            .map(|_| Event { id: Event::new(session, EventType::MessageSent).id, ..template.clone() })
            .collect();
        let start = Instant::now();
        for e in chunk {
            let t = Instant::now();
            store.append_event_with_sequence(e).expect("append");
            lat.push(t.elapsed());
            if start.elapsed() + spent >= budget {
                break;
            }
        }
        spent += start.elapsed();
    }
    lat
}

/// `threads` appenders, each on its own session, for `budget`.
fn append_threads(store: Arc<dyn SessionStore>, threads: usize, body: usize, budget: Duration) -> Stats {
    let barrier = Arc::new(Barrier::new(threads + 1));
    let handles: Vec<_> = (0..threads)
        .map(|i| {
            let (store, barrier) = (store.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                append_latencies(&*store, &format!("thread-{i}"), body, usize::MAX, budget)
            })
        })
        .collect();
    barrier.wait();
    let start = Instant::now();
    let lat: Vec<Duration> = handles.into_iter().flat_map(|h| h.join().expect("appender")).collect();
    Stats::from_latencies(lat, start.elapsed())
}

fn section_disk(cfg: &Config, res: &mut Results) -> [Stats; 2] {
    println!("== disk limit");
    let tmp = cfg.tempdir();
    let bw = disk::sequential_bandwidth(tmp.path(), 1 << 30);
    res.row("sequential write 1 GiB + fdatasync", format!("{:.0} MiB/s", bw / f64::from(1 << 20)), "-".into(), "-".into());
    [256, 4096].map(|body| {
        // A record on disk is the body plus the engine's header; 32 B is ample.
        let s = disk::write_fdatasync_loop(tmp.path(), body + 32, usize::MAX, cfg.secs);
        res.row(format!("write+fdatasync loop, {body} B"), fmt_rate(&s), "-".into(), "-".into());
        s
    })
}

fn section_durable(cfg: &Config, res: &mut Results, raw: Option<&[Stats; 2]>) -> [(Stats, Stats); 2] {
    println!("== single durable appender");
    [256usize, 4096].map(|body| {
        let (ld, sd) = (cfg.tempdir(), cfg.tempdir());
        let log = Log::open(ld.path(), true);
        let l = append_loop(&*log.store(), "single", body, usize::MAX, cfg.secs);
        log.close();
        let sq = SqliteStore::open(sd.path(), true).expect("sqlite");
        let s = append_loop(&sq, "single", body, usize::MAX, cfg.secs);
        let disk = raw.map_or("-".to_string(), |r| fmt_rate(&r[usize::from(body == 4096)]));
        res.row(format!("durable append, 1 thread, {body} B"), disk, fmt_rate(&l), fmt_rate(&s));
        if let Some(r) = raw {
            let v = l.rate() / r[usize::from(body == 4096)].rate();
            res.ratio(format!("single durable {body} B / raw write+fdatasync"), v, ">= 0.85", v >= 0.85);
        }
        (l, s)
    })
}

fn section_threads(cfg: &Config, res: &mut Results, single: Option<&[(Stats, Stats); 2]>) {
    let n = cfg.threads;
    println!("== {n} durable appenders");
    for (i, body) in [256usize, 4096].into_iter().enumerate() {
        let (ld, sd) = (cfg.tempdir(), cfg.tempdir());
        let log = Log::open(ld.path(), true);
        let l = append_threads(log.store(), n, body, cfg.secs);
        log.close();
        let sq: Arc<dyn SessionStore> = Arc::new(SqliteStore::open(sd.path(), true).expect("sqlite"));
        let s = append_threads(sq, n, body, cfg.secs);
        res.row(format!("durable append, {n} threads, {body} B"), "-".into(), fmt_rate(&l), fmt_rate(&s));
        if let Some(single) = single {
            let v = l.rate() / single[i].0.rate();
            res.ratio(format!("{n} durable {body} B / single durable"), v, ">= 20", v >= 20.0);
        }
        let v = l.rate() / s.rate();
        res.ratio(format!("{n} durable {body} B / SQLite {n} durable"), v, ">= 30", v >= 30.0);
    }
}

fn section_buffered(cfg: &Config, res: &mut Results) {
    println!("== buffered single appender");
    for body in [256usize, 4096] {
        let (ld, sd) = (cfg.tempdir(), cfg.tempdir());
        let log = Log::open(ld.path(), false);
        let l = append_loop(&*log.store(), "buffered", body, cfg.buffered_n, cfg.secs * 3);
        log.close();
        let sq = SqliteStore::open(sd.path(), false).expect("sqlite");
        let s = append_loop(&sq, "buffered", body, cfg.buffered_n, cfg.secs * 3);
        res.row(format!("buffered append, 1 thread, {body} B"), "-".into(), fmt_rate(&l), fmt_rate(&s));
        if body == 256 {
            res.ratio("buffered 256 B events/s", l.rate(), ">= 1,000,000", l.rate() >= 1e6);
            let v = l.rate() / s.rate();
            res.ratio("buffered 256 B / SQLite buffered", v, ">= 5", v >= 5.0);
        }
    }
}

/// The shape of a query log: `sessions` sessions of `per_session` events,
/// appended round-robin so a session's events are spread over the whole log.
#[derive(Clone, Copy)]
struct Shape {
    sessions: usize,
    per_session: usize,
}

impl Shape {
    fn of(total: usize) -> Shape {
        let per_session = 1000.min(total);
        Shape { sessions: total / per_session, per_session }
    }
}

/// Four event types in turn, so a type filter keeps one event in four.
const KINDS: [EventType; 4] =
    [EventType::MessageSent, EventType::MessageReceived, EventType::ToolCallStarted, EventType::ToolCallCompleted];

/// Fills `store` with a log of `shape`, 256 B events, in batches of 1000.
fn build_log(store: &dyn SessionStore, shape: Shape) -> Duration {
    let start = Instant::now();
    for round in 0..shape.per_session {
        let kind = KINDS[round % KINDS.len()];
        let mut batch = Vec::with_capacity(1000);
        for s in 0..shape.sessions {
            batch.push(event_of_size(&format!("session-{s:07}"), kind, 256));
            if batch.len() == 1000 {
                store.append_events(std::mem::take(&mut batch)).expect("build");
            }
        }
        if !batch.is_empty() {
            store.append_events(batch).expect("build");
        }
    }
    start.elapsed()
}

/// Median latency of `get_events(after: k, limit: 100)` at random sessions and cursors.
fn page_queries(store: &dyn SessionStore, shape: Shape, filtered: bool, samples: usize) -> Stats {
    let mut lat = Vec::with_capacity(samples);
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let start = Instant::now();
    for _ in 0..samples {
        // xorshift: cheap, reproducible pseudo-random picks.
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let session = format!("session-{:07}", x as usize % shape.sessions);
        let span = if filtered { shape.per_session.saturating_sub(400) } else { shape.per_session - 100 };
        let after = (x >> 32) as usize % span.max(1);
        let mut q = EventQuery::new().after(after as u64).limit(100);
        if filtered {
            q = q.event_type(EventType::MessageSent);
        }
        let t = Instant::now();
        let page = store.get_events(&session, &q).expect("query");
        lat.push(t.elapsed());
        assert_eq!(page.len(), 100.min(shape.per_session), "a full page");
    }
    Stats::from_latencies(lat, start.elapsed())
}

/// Page timings of one store on one log: (unfiltered, filtered by type).
fn time_pages(store: &dyn SessionStore, shape: Shape) -> (Stats, Stats) {
    (page_queries(store, shape, false, 2000), page_queries(store, shape, true, 1000))
}

fn section_query(cfg: &Config, res: &mut Results) {
    println!("== cursor pages (after k, limit 100) on {} and {} event logs", cfg.small, cfg.big);
    let mut log_p50 = Vec::new();
    let mut sql_p50 = Vec::new();
    for total in [cfg.small, cfg.big] {
        let shape = Shape::of(total);
        let events = shape.sessions * shape.per_session;
        let (ld, sd) = (cfg.tempdir(), cfg.tempdir());
        let before = Mem::now();
        let log = Log::open(ld.path(), false);
        let build = build_log(&*log.store(), shape);
        let mem = Mem::now().since(before);
        let (lu, lf) = time_pages(&*log.store(), shape);
        log.close();
        let reopened = reopen_memory(ld.path(), shape);
        let before = Mem::now();
        let sq = SqliteStore::open(sd.path(), false).expect("sqlite");
        let sbuild = build_log(&sq, shape);
        let smem = Mem::now().since(before);
        let (su, sf) = time_pages(&sq, shape);
        drop(sq);
        let t = |d: Duration| format!("built in {:.1}s", d.as_secs_f64());
        res.row(format!("build {events} events (batches of 1000)"), "-".into(), t(build), t(sbuild));
        res.row(format!("page of 100, {events}-event log"), "-".into(), fmt_rate(&lu), fmt_rate(&su));
        res.row(format!("page of 100 by type, {events}-event log"), "-".into(), fmt_rate(&lf), fmt_rate(&sf));
        res.row(format!("memory after build, {events} events"), "-".into(), fmt_mem(mem, events), fmt_mem(smem, events));
        if let Some(m) = reopened {
            res.row(format!("memory after reopen, {events} events"), "-".into(), fmt_mem(m, events), "-".into());
        }
        if total == cfg.big {
            let per = reopened.unwrap_or(mem).heap as f64 / events as f64;
            res.ratio(format!("memory B/event at {events} events (heap)"), per, "<= 32 (at 10M)", per <= 32.0);
        }
        log_p50.push(lu.p50);
        sql_p50.push(su.p50);
    }
    let v = log_p50[1].as_secs_f64() / log_p50[0].as_secs_f64();
    res.ratio(format!("page p50 on {} / on {} events", cfg.big, cfg.small), v, "<= 2 (10M vs 10k)", v <= 2.0);
    let v = sql_p50[1].as_secs_f64() / log_p50[1].as_secs_f64();
    res.ratio(format!("SQLite page p50 / LogStore page p50, {} events", cfg.big), v, ">= 2", v >= 2.0);
}

/// Memory the durable store holds after reopening a query log of `shape`.
fn reopen_memory(dir: &Path, shape: Shape) -> Option<Mem> {
    let count = |s: &dyn SessionStore| -> u64 {
        (0..shape.sessions).map(|i| s.get_latest_sequence(&format!("session-{i:07}")).expect("latest")).sum()
    };
    let (took, found, mem) = logstore::reopen(dir, &count)?;
    println!("  reopened {found} events in {:.2}s", took.as_secs_f64());
    Some(mem)
}

/// Wake-up latency of a waiting reader: from `append` returning (0 when the
/// reader was back first), and from `append` being called.
fn longpoll(store: Arc<dyn SessionStore>, samples: usize) -> (Stats, Stats) {
    let (go_tx, go_rx) = mpsc::channel::<u64>();
    let (done_tx, done_rx) = mpsc::channel::<Instant>();
    let reader = {
        let store = store.clone();
        std::thread::spawn(move || {
            for after in go_rx {
                let q = EventQuery::new().after(after).limit(100).wait_timeout(Duration::from_secs(5));
                let got = store.get_events("poll", &q).expect("long-poll");
                assert!(!got.is_empty(), "long-poll timed out");
                done_tx.send(Instant::now()).expect("report");
            }
        })
    };
    let start = Instant::now();
    let (mut after_ack, mut after_call) = (Vec::with_capacity(samples), Vec::with_capacity(samples));
    for i in 0..samples as u64 {
        go_tx.send(i).expect("go");
        // Give the reader time to park in its wait before the append.
        std::thread::sleep(Duration::from_micros(500));
        let event = event_of_size("poll", EventType::MessageSent, 256);
        let called = Instant::now();
        store.append_event_with_sequence(event).expect("append");
        let acked = Instant::now();
        let woke = done_rx.recv().expect("reader");
        after_ack.push(woke.saturating_duration_since(acked));
        after_call.push(woke.saturating_duration_since(called));
    }
    drop(go_tx);
    reader.join().expect("reader");
    let elapsed = start.elapsed();
    (Stats::from_latencies(after_ack, elapsed), Stats::from_latencies(after_call, elapsed))
}

fn section_longpoll(cfg: &Config, res: &mut Results) {
    println!("== long-poll wake-up (append returns -> waiting reader returns)");
    let fmt = |s: &Stats| format!("p50 {} p99 {}", fmt_dur(s.p50), fmt_dur(s.p99));
    let (m, mc) = longpoll(Arc::new(MemoryStore::new()), 1000);
    res.row("long-poll wake-up after append returns, MemoryStore", "-".into(), fmt(&m), "n/a (no wait)".into());
    res.row("long-poll wake-up after append call, MemoryStore", "-".into(), fmt(&mc), "n/a (no wait)".into());
    for durable in [false, true] {
        let d = cfg.tempdir();
        let log = Log::open(d.path(), durable);
        let (s, sc) = longpoll(log.store(), 1000);
        log.close();
        let name = if durable { "SyncPolicy::Always" } else { "SyncPolicy::Never" };
        res.row(format!("long-poll wake-up after append returns, {name}"), "-".into(), fmt(&s), "n/a (no wait)".into());
        res.row(format!("long-poll wake-up after append call, {name}"), "-".into(), fmt(&sc), "n/a (no wait)".into());
        res.ratio(format!("long-poll p50 µs ({name})"), s.p50.as_secs_f64() * 1e6, "<= 50", s.p50 <= Duration::from_micros(50));
        res.ratio(format!("long-poll p99 µs ({name})"), s.p99.as_secs_f64() * 1e6, "<= 500", s.p99 <= Duration::from_micros(500));
    }
}

fn section_reopen(cfg: &Config, res: &mut Results) {
    let mib = cfg.kill_bytes >> 20;
    println!("== reopen of a {mib} MiB log after SIGKILL and after a clean close");
    let d = cfg.tempdir();
    let mut child = std::process::Command::new(std::env::current_exe().expect("exe"))
        .arg("--fill-until-killed")
        .arg(d.path())
        .arg(cfg.kill_bytes.to_string())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("child");
    let mut line = String::new();
    let out = child.stdout.take().expect("stdout");
    std::io::BufRead::read_line(&mut std::io::BufReader::new(out), &mut line).expect("ready");
    std::thread::sleep(Duration::from_millis(50));
    child.kill().expect("SIGKILL");
    child.wait().expect("reaped");
    let count = |s: &dyn SessionStore| -> u64 {
        (0..logstore::FILL_SESSIONS).map(|i| s.get_latest_sequence(&format!("fill-{i}")).expect("latest")).sum()
    };
    let killed = logstore::reopen(d.path(), &count);
    let clean = logstore::reopen(d.path(), &count);
    let fmt = |r: Option<logstore::Reopen>| {
        r.map_or("n/a".to_string(), |(t, n, m)| {
            format!("{:.3}s ({n} events, heap {} MiB)", t.as_secs_f64(), m.heap >> 20)
        })
    };
    res.row(format!("reopen {mib} MiB log after SIGKILL"), "-".into(), fmt(killed), "-".into());
    res.row(format!("reopen {mib} MiB log after clean close"), "-".into(), fmt(clean), "-".into());
    if let Some((t, _, _)) = killed {
        res.ratio(format!("reopen s after SIGKILL, {mib} MiB"), t.as_secs_f64(), "<= 2 (1 GiB)", t.as_secs_f64() <= 2.0);
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).is_some_and(|a| a == "--fill-until-killed") {
        logstore::fill_until_killed(Path::new(&args[2]), args[3].parse().expect("bytes"));
        return;
    }
    let cfg = Config::from_env();
    if !logstore::REAL {
        println!("NOTE: LogStore is not in the crate yet; MemoryStore stands in for it.");
    }
    let mut res = Results::default();
    let raw = cfg.runs("disk").then(|| section_disk(&cfg, &mut res));
    let single = cfg.runs("durable").then(|| section_durable(&cfg, &mut res, raw.as_ref()));
    if cfg.runs("threads") {
        section_threads(&cfg, &mut res, single.as_ref());
    }
    if cfg.runs("buffered") {
        section_buffered(&cfg, &mut res);
    }
    if cfg.runs("query") {
        section_query(&cfg, &mut res);
    }
    if cfg.runs("longpoll") {
        section_longpoll(&cfg, &mut res);
    }
    if cfg.runs("reopen") {
        section_reopen(&cfg, &mut res);
    }
    res.print();
}
