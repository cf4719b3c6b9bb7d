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
//! `COMPARE_KILL_BODY` (body size of its events, 4096),
//! `COMPARE_DIR` (where the files go; the system temp dir by default) and
//! `COMPARE_ONLY` (comma list of sections: disk,durable,threads,buffered,query,
//! longpoll,reopen), `COMPARE_BODIES` (body sizes of the append sections,
//! `256,4096`), `COMPARE_SQLITE=0` (no SQLite in the buffered and
//! query sections: for profiling LogStore, and for 10M-event query logs, whose
//! SQLite build alone takes most of an hour here) and `COMPARE_CACHED_SEALED`
//! (the durable stores' `cached_sealed_segments`: `none` or a number, 2 by
//! default; see `compare/logstore.rs`).

#[path = "compare/alloc.rs"]
mod alloc;
#[path = "compare/disk.rs"]
mod disk;
#[path = "compare/logstore.rs"]
mod logstore;
#[path = "compare/raw_group.rs"]
mod raw_group;
#[path = "compare/sqlite.rs"]
mod sqlite;
#[path = "compare/zero_ahead.rs"]
mod zero_ahead;

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
    /// The slowest operation.
    pub max: Duration,
}

impl Stats {
    /// Stats from per-operation latencies and the case's wall time.
    pub fn from_latencies(mut lat: Vec<Duration>, elapsed: Duration) -> Stats {
        lat.sort_unstable();
        let pick = |q: f64| {
            lat.get(((lat.len() as f64 - 1.0) * q).round() as usize)
                .copied()
                .unwrap_or_default()
        };
        Stats {
            ops: lat.len(),
            elapsed,
            p50: pick(0.5),
            p99: pick(0.99),
            max: lat.last().copied().unwrap_or_default(),
        }
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
    kill_body: usize,
    dir: PathBuf,
    only: Option<Vec<String>>,
    /// `COMPARE_SQLITE=0` leaves SQLite out of the buffered and query sections
    /// (for profiling runs, and 10M-event logs in minutes rather than an hour).
    sqlite: bool,
    /// Body sizes of the append sections (`COMPARE_BODIES`, default `256,4096`).
    bodies: Vec<usize>,
}

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

impl Config {
    fn from_env() -> Config {
        let full = std::env::var("COMPARE_FULL").is_ok_and(|v| v == "1");
        let dir = std::env::var_os("COMPARE_DIR").map_or_else(std::env::temp_dir, PathBuf::from);
        Config {
            secs: Duration::from_secs(env_num("COMPARE_SECS", if full { 10 } else { 3 })),
            threads: env_num("COMPARE_THREADS", 64) as usize,
            buffered_n: env_num("COMPARE_BUFFERED_N", if full { 1_000_000 } else { 300_000 })
                as usize,
            big: env_num("COMPARE_BIG", if full { 10_000_000 } else { 1_000_000 }) as usize,
            small: env_num("COMPARE_SMALL", 10_000) as usize,
            kill_bytes: env_num("COMPARE_KILL_MB", 1024) << 20,
            kill_body: env_num("COMPARE_KILL_BODY", 4096) as usize,
            dir,
            bodies: std::env::var("COMPARE_BODIES")
                .ok()
                .map_or(vec![256, 4096], |v| {
                    v.split(',').filter_map(|b| b.parse().ok()).collect()
                }),
            sqlite: std::env::var("COMPARE_SQLITE").map_or(true, |v| v != "0"),
            only: std::env::var("COMPARE_ONLY")
                .ok()
                .map(|v| v.split(',').map(str::to_string).collect()),
        }
    }

    fn runs(&self, section: &str) -> bool {
        self.only
            .as_ref()
            .is_none_or(|o| o.iter().any(|s| s == section))
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
        let row = Row {
            name: name.into(),
            disk,
            log,
            sqlite,
        };
        println!(
            "  {:<44} disk {:<26} log {:<26} sqlite {}",
            row.name, row.disk, row.log, row.sqlite
        );
        self.rows.push(row);
    }

    fn ratio(&mut self, name: impl Into<String>, value: f64, target: &str, met: bool) {
        self.ratios
            .push((name.into(), value, target.to_string(), met));
    }

    fn print(&self) {
        let log = if logstore::REAL {
            "LogStore"
        } else {
            "MemoryStore (LogStore stand-in)"
        };
        println!("\n| workload | disk limit | {log} | SQLite |\n|---|---|---|---|");
        for r in &self.rows {
            println!("| {} | {} | {} | {} |", r.name, r.disk, r.log, r.sqlite);
        }
        println!("\n| ratio (issue 6 target) | measured | target | met |\n|---|---|---|---|");
        for (name, value, target, met) in &self.ratios {
            // A ratio without a target (`-`) is only information.
            let verdict = match (target.as_str(), met) {
                ("-", _) => "-",
                (_, true) => "yes",
                (_, false) => "NO",
            };
            println!("| {name} | {value:.3} | {target} | {verdict} |");
        }
    }
}

fn fmt_rate(s: &Stats) -> String {
    format!(
        "{:.0}/s p50 {} p99 {} max {}",
        s.rate(),
        fmt_dur(s.p50),
        fmt_dur(s.p99),
        fmt_dur(s.max)
    )
}

fn fmt_dur(d: Duration) -> String {
    let us = d.as_secs_f64() * 1e6;
    if us < 1000.0 {
        format!("{us:.1}µs")
    } else {
        format!("{:.2}ms", us / 1000.0)
    }
}

fn fmt_mem(m: Mem, events: usize) -> String {
    let per = |b: i64| b as f64 / events.max(1) as f64;
    format!(
        "heap {:.1} B/ev, anon RSS {:.1} B/ev",
        per(m.heap),
        per(m.rss)
    )
}

/// Appends `body`-byte events to one session until `max` or `budget` runs out.
fn append_loop(
    store: &dyn SessionStore,
    session: &str,
    body: usize,
    max: usize,
    budget: Duration,
) -> Stats {
    let lat = append_latencies(store, session, body, max, budget);
    // The rate over the appends alone (event generation is left out).
    let busy = lat.iter().sum();
    Stats::from_latencies(lat, busy)
}

/// The latency of each append of [`append_loop`]. Events are made before the
/// clock starts (in chunks), so the rate is the store's, not the id generator's.
/// Chunks start small and double (up to 1 MiB of bodies).
fn append_latencies(
    store: &dyn SessionStore,
    session: &str,
    body: usize,
    max: usize,
    budget: Duration,
) -> Vec<Duration> {
    append_from(store, Vec::new(), (session, body), max, budget).0
}

/// [`append_latencies`], appending the events of `made` first. Also returns
/// the last chunk's events, for the caller to drop after timing: those the
/// store returned (appended) and those made but not appended. Dropping an
/// event is the client's work, as making it is, so neither is on the clock.
fn append_from(
    store: &dyn SessionStore,
    mut made: Vec<Event>,
    (session, body): (&str, usize),
    max: usize,
    budget: Duration,
) -> (Vec<Duration>, Vec<Option<Event>>) {
    let template = event_of_size(session, EventType::MessageSent, body);
    let mut lat = Vec::new();
    let mut spent = Duration::ZERO;
    let mut chunk_len = 64;
    let mut slots: Vec<Option<Event>> = Vec::new();
    while lat.len() < max && spent < budget {
        let chunk = if made.is_empty() {
            chunk_len = (chunk_len * 2).min((1 << 20) / body).max(1);
            make_events(&template, (max - lat.len()).min(chunk_len))
        } else {
            std::mem::take(&mut made)
        };
        // The previous chunk is dropped here, between timed parts.
        slots = chunk.into_iter().map(Some).collect();
        lat.reserve(slots.len());
        let start = Instant::now();
        for slot in slots.iter_mut() {
            let event = slot.take().expect("a made event");
            let t = Instant::now();
            let stored = store.append_event_with_sequence(event).expect("append");
            lat.push(t.elapsed());
            *slot = Some(stored);
            if lat.len() == max || start.elapsed() + spent >= budget {
                break;
            }
        }
        spent += start.elapsed();
    }
    (lat, slots)
}

/// `n` copies of `template`, each with its own id.
fn make_events(template: &Event, n: usize) -> Vec<Event> {
    (0..n)
        .map(|_| Event {
            id: Event::new(&*template.session_id, template.event_type).id,
            ..template.clone()
        })
        .collect()
}

/// Bytes of events all appender threads together make before the clock starts.
const PREMADE_BYTES: usize = 1 << 30;

/// `threads` appenders, each on its own session, for `budget`. Each makes
/// its events before the clock starts, as many as a thread of 64 could
/// append at 4,000/s (within [`PREMADE_BYTES`]; more are made in chunks
/// if it runs out): with 64 threads sharing two cores, events made while
/// the clock runs would take the store's share of the cores. For the same
/// reason the events the store returns are dropped only after the clock stops.
fn append_threads(
    store: Arc<dyn SessionStore>,
    threads: usize,
    body: usize,
    budget: Duration,
) -> Stats {
    let barrier = Arc::new(Barrier::new(threads + 1));
    let premade = ((budget.as_secs_f64() * 4000.0) as usize)
        .min(PREMADE_BYTES / threads / (body + 256))
        .max(1);
    let handles: Vec<_> = (0..threads)
        .map(|i| {
            let (store, barrier) = (store.clone(), barrier.clone());
            std::thread::spawn(move || {
                let session = format!("thread-{i}");
                let made = make_events(
                    &event_of_size(&session, EventType::MessageSent, body),
                    premade,
                );
                barrier.wait();
                append_from(&*store, made, (&session, body), usize::MAX, budget)
            })
        })
        .collect();
    barrier.wait();
    let start = Instant::now();
    let done: Vec<_> = handles
        .into_iter()
        .map(|h| h.join().expect("appender"))
        .collect();
    let elapsed = start.elapsed();
    // Appended and unused events are dropped here, off the clock.
    Stats::from_latencies(
        done.into_iter().flat_map(|(lat, _events)| lat).collect(),
        elapsed,
    )
}

/// Rounds each timed comparison is cut into: the systems take turns, so a
/// disk whose speed drifts (a shared virtual disk does) is seen alike by all.
const ROUNDS: u32 = 6;

fn section_disk(cfg: &Config, res: &mut Results) {
    println!("== disk limit: sequential bandwidth");
    let tmp = cfg.tempdir();
    let bw = disk::sequential_bandwidth(tmp.path(), 1 << 30);
    res.row(
        "sequential write 1 GiB + fdatasync",
        format!("{:.0} MiB/s", bw / f64::from(1 << 20)),
        "-".into(),
        "-".into(),
    );
}

/// Stats of latencies gathered over several rounds (the rate is over the
/// time spent in the operations).
fn merged(lat: Vec<Duration>) -> Stats {
    let busy = lat.iter().sum();
    Stats::from_latencies(lat, busy)
}

fn section_durable(cfg: &Config, res: &mut Results) {
    println!("== single durable appender vs raw write+fdatasync (interleaved rounds)");
    let slice = cfg.secs / ROUNDS;
    for &body in &cfg.bodies {
        let (rd, ld, sd) = (cfg.tempdir(), cfg.tempdir(), cfg.tempdir());
        let mut raw = disk::RawAppender::new(rd.path(), "raw.bin");
        let mut raw_pre = disk::RawAppender::preallocated(rd.path(), "raw-preallocated.bin");
        let log = Log::open(ld.path(), true);
        let sq = SqliteStore::open(sd.path(), true).expect("sqlite");
        let (mut r, mut rp, mut l, mut s) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for _ in 0..ROUNDS {
            // A record on disk is the body plus the engine's 32-byte header.
            r.extend(raw.run(body + 32, slice));
            rp.extend(raw_pre.run(body + 32, slice));
            l.extend(append_latencies(
                &*log.store(),
                "single",
                body,
                usize::MAX,
                slice,
            ));
            s.extend(append_latencies(&sq, "single", body, usize::MAX, slice));
        }
        log.close();
        let (r, rp, l, s) = (merged(r), merged(rp), merged(l), merged(s));
        res.row(
            format!("durable append, 1 thread, {body} B"),
            fmt_rate(&r),
            fmt_rate(&l),
            fmt_rate(&s),
        );
        res.row(
            format!("raw write+fdatasync over preallocated zeros, {body} B"),
            fmt_rate(&rp),
            "-".into(),
            "-".into(),
        );
        let v = l.rate() / r.rate();
        res.ratio(
            format!("single durable {body} B / raw write+fdatasync"),
            v,
            ">= 0.85",
            v >= 0.85,
        );
        let v = l.rate() / rp.rate();
        res.ratio(
            format!("single durable {body} B / raw over preallocated zeros"),
            v,
            ">= 0.85",
            v >= 0.85,
        );
    }
}

fn section_threads(cfg: &Config, res: &mut Results) {
    let n = cfg.threads;
    println!("== {n} durable appenders vs 1 (interleaved rounds)");
    let slice = cfg.secs / ROUNDS;
    for &body in &cfg.bodies {
        let (rd, ld, sd) = (cfg.tempdir(), cfg.tempdir(), cfg.tempdir());
        let raw = raw_group::RawGroupCommit::new(rd.path(), "raw-group.bin");
        let grown = raw_group::RawGroupCommit::growing(rd.path(), "raw-group-grown.bin");
        let ahead = raw_group::RawGroupCommit::zeroing_ahead(rd.path(), "raw-group-ahead");
        let log = Log::open(ld.path(), true);
        let sq: Arc<dyn SessionStore> =
            Arc::new(SqliteStore::open(sd.path(), true).expect("sqlite"));
        // A record on disk is the body plus the engine's 32-byte header.
        let record = body + 32;
        let mut runs: [Vec<Stats>; 7] = Default::default();
        for _ in 0..ROUNDS {
            // Run in this order, named in this order below.
            let round = [
                append_threads(log.store(), 1, body, slice),
                append_threads(log.store(), n, body, slice),
                append_threads(sq.clone(), n, body, slice),
                raw.run(n, record, slice),
                grown.run(n, record, slice),
                ahead.run(n, record, slice),
                ahead.run(1, record, slice),
            ];
            for (all, this) in runs.iter_mut().zip(round) {
                all.push(this);
            }
        }
        log.close();
        let [one, many, sqm, rawm, rawg, rawa, rawa1] = runs.map(|r| sum_rounds(&r));
        res.row(
            format!("durable append, 1 thread, {body} B (this section)"),
            "-".into(),
            fmt_rate(&one),
            "-".into(),
        );
        res.row(
            format!("durable append, {n} threads, {body} B (disk: bare group commit)"),
            fmt_rate(&rawm),
            fmt_rate(&many),
            fmt_rate(&sqm),
        );
        for (stats, what) in [
            (&rawg, format!("{n} threads, {body} B, file growing")),
            (&rawa, format!("{n} threads, {body} B, zeros written ahead")),
            (&rawa1, format!("1 thread, {body} B, zeros written ahead")),
        ] {
            let row = format!("bare group commit, {what}");
            res.row(row, fmt_rate(stats), "-".into(), "-".into());
        }
        for (limit, what) in [
            (&rawm, "bare group commit"),
            (&rawg, "bare growing"),
            (&rawa, "bare zeroing ahead"),
        ] {
            res.ratio(
                format!("{n} durable {body} B / {what} {n} threads"),
                many.rate() / limit.rate(),
                "-",
                true,
            );
        }
        res.ratio(
            format!("bare zeroing ahead {body} B: {n} threads / 1 thread"),
            rawa.rate() / rawa1.rate(),
            "-",
            true,
        );
        let v = many.rate() / one.rate();
        res.ratio(
            format!("{n} durable {body} B / single durable"),
            v,
            ">= 20",
            v >= 20.0,
        );
        let v = many.rate() / sqm.rate();
        res.ratio(
            format!("{n} durable {body} B / SQLite {n} durable"),
            v,
            ">= 30",
            v >= 30.0,
        );
    }
}

/// Rounds of a multi-threaded case as one: operations and wall time added,
/// the worst round's percentiles.
fn sum_rounds(rounds: &[Stats]) -> Stats {
    Stats {
        ops: rounds.iter().map(|s| s.ops).sum(),
        elapsed: rounds.iter().map(|s| s.elapsed).sum(),
        p50: rounds.iter().map(|s| s.p50).max().unwrap_or_default(),
        p99: rounds.iter().map(|s| s.p99).max().unwrap_or_default(),
        max: rounds.iter().map(|s| s.max).max().unwrap_or_default(),
    }
}

fn section_buffered(cfg: &Config, res: &mut Results) {
    println!("== buffered single appender");
    for &body in &cfg.bodies {
        let (ld, sd) = (cfg.tempdir(), cfg.tempdir());
        let log = Log::open(ld.path(), false);
        let l = append_loop(
            &*log.store(),
            "buffered",
            body,
            cfg.buffered_n,
            cfg.secs * 3,
        );
        log.close();
        if !cfg.sqlite {
            res.row(
                format!("buffered append, 1 thread, {body} B"),
                "-".into(),
                fmt_rate(&l),
                "skipped".into(),
            );
            continue;
        }
        let sq = SqliteStore::open(sd.path(), false).expect("sqlite");
        let s = append_loop(&sq, "buffered", body, cfg.buffered_n, cfg.secs * 3);
        res.row(
            format!("buffered append, 1 thread, {body} B"),
            "-".into(),
            fmt_rate(&l),
            fmt_rate(&s),
        );
        if body == 256 {
            res.ratio(
                "buffered 256 B events/s",
                l.rate(),
                ">= 1,000,000",
                l.rate() >= 1e6,
            );
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
        Shape {
            sessions: total / per_session,
            per_session,
        }
    }
}

/// Four event types in turn, so a type filter keeps one event in four.
const KINDS: [EventType; 4] = [
    EventType::MessageSent,
    EventType::MessageReceived,
    EventType::ToolCallStarted,
    EventType::ToolCallCompleted,
];

/// Fills `store` with a log of `shape`, 256 B events, in batches of 1000.
fn build_log(store: &dyn SessionStore, shape: Shape) -> Duration {
    let start = Instant::now();
    for round in 0..shape.per_session {
        let kind = KINDS[round % KINDS.len()];
        let mut batch = Vec::with_capacity(1000);
        for s in 0..shape.sessions {
            batch.push(event_of_size(&format!("session-{s:07}"), kind, 256));
            if batch.len() == 1000 {
                store
                    .append_events(std::mem::take(&mut batch))
                    .expect("build");
            }
        }
        if !batch.is_empty() {
            store.append_events(batch).expect("build");
        }
    }
    start.elapsed()
}

/// Median latency of `get_events(after: k, limit: 100)` at random sessions
/// and cursors (picked from `seed`).
fn page_queries(
    store: &dyn SessionStore,
    shape: Shape,
    filtered: bool,
    samples: usize,
    seed: u64,
) -> Stats {
    let mut lat = Vec::with_capacity(samples);
    let mut x: u64 = seed;
    let start = Instant::now();
    for _ in 0..samples {
        // xorshift: cheap, reproducible pseudo-random picks.
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let session = format!("session-{:07}", x as usize % shape.sessions);
        let span = if filtered {
            shape.per_session.saturating_sub(400)
        } else {
            shape.per_session - 100
        };
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

/// Page timings of one store on one log, its files settled first.
struct Pages {
    /// The first round of unfiltered pages, each on records this process
    /// had not read yet (a mapped page's first touch costs a page fault).
    first: Stats,
    /// A second round, at other cursors: the steady state.
    unfiltered: Stats,
    by_type: Stats,
}

fn time_pages(store: &dyn SessionStore, shape: Shape) -> Pages {
    Pages {
        first: page_queries(store, shape, false, 2000, 0x2545_F491_4F6C_DD1D),
        unfiltered: page_queries(store, shape, false, 2000, 0x9E37_79B9_7F4A_7C15),
        by_type: page_queries(store, shape, true, 1000, 0x9E37_79B9_7F4A_7C15),
    }
}

/// A store's query log: its build time, memory after the build, and pages.
struct QueryLog {
    build: Duration,
    mem: Mem,
    pages: Pages,
}

fn sqlite_pages(cfg: &Config, shape: Shape) -> Option<QueryLog> {
    if !cfg.sqlite {
        return None;
    }
    let sd = cfg.tempdir();
    let before = Mem::now();
    let sq = SqliteStore::open(sd.path(), false).expect("sqlite");
    let build = build_log(&sq, shape);
    let mem = Mem::now().since(before);
    disk::settle(sd.path());
    let pages = time_pages(&sq, shape);
    Some(QueryLog { build, mem, pages })
}

fn section_query(cfg: &Config, res: &mut Results) {
    println!(
        "== cursor pages (after k, limit 100) on {} and {} event logs",
        cfg.small, cfg.big
    );
    let mut log_p50 = Vec::new();
    let mut sql_p50 = Vec::new();
    for total in [cfg.small, cfg.big] {
        let shape = Shape::of(total);
        let ld = cfg.tempdir();
        let before = Mem::now();
        let log = Log::open(ld.path(), false);
        let build = build_log(&*log.store(), shape);
        let mem = Mem::now().since(before);
        log.sync();
        disk::settle(ld.path());
        let pages = time_pages(&*log.store(), shape);
        log.close();
        let reopened = reopen_memory(ld.path(), shape);
        drop(ld);
        let sq = sqlite_pages(cfg, shape);
        log_p50.push((pages.first.p50, pages.unfiltered.p50));
        sql_p50.push(sq.as_ref().map(|s| s.pages.unfiltered.p50));
        let log = QueryLog { build, mem, pages };
        query_rows(res, shape, &log, sq.as_ref(), reopened);
        if total == cfg.big {
            let events = shape.sessions * shape.per_session;
            let per = reopened.unwrap_or(mem).heap as f64 / events as f64;
            res.ratio(
                format!("memory B/event at {events} events (heap)"),
                per,
                "<= 32 (at 10M)",
                per <= 32.0,
            );
        }
    }
    query_ratios(cfg, res, &log_p50, sql_p50[1]);
}

/// The rows of one query log: LogStore's build, pages and memory (`log`)
/// beside SQLite's (`sq`, `None` when skipped).
fn query_rows(
    res: &mut Results,
    shape: Shape,
    log: &QueryLog,
    sq: Option<&QueryLog>,
    reopened: Option<Mem>,
) {
    let events = shape.sessions * shape.per_session;
    let built = |s: &QueryLog| format!("built in {:.1}s", s.build.as_secs_f64());
    let mut row = |what: String, f: &dyn Fn(&QueryLog) -> String| {
        let sql = sq.map_or("skipped".to_string(), f);
        res.row(what, "-".into(), f(log), sql);
    };
    row(format!("build {events} events (batches of 1000)"), &built);
    row(
        format!("page of 100, {events}-event log, first touch"),
        &|s| fmt_rate(&s.pages.first),
    );
    row(format!("page of 100, {events}-event log"), &|s| {
        fmt_rate(&s.pages.unfiltered)
    });
    row(format!("page of 100 by type, {events}-event log"), &|s| {
        fmt_rate(&s.pages.by_type)
    });
    row(format!("memory after build, {events} events"), &|s| {
        fmt_mem(s.mem, events)
    });
    if let Some(m) = reopened {
        res.row(
            format!("memory after reopen, {events} events"),
            "-".into(),
            fmt_mem(m, events),
            "-".into(),
        );
    }
}

/// The page ratios: the big log against the small one (`log_p50`: first
/// touch and steady p50 of each), and SQLite against LogStore on the big one.
fn query_ratios(
    cfg: &Config,
    res: &mut Results,
    log_p50: &[(Duration, Duration)],
    sql_big_p50: Option<Duration>,
) {
    let v = log_p50[1].1.as_secs_f64() / log_p50[0].1.as_secs_f64();
    res.ratio(
        format!("page p50 on {} / on {} events", cfg.big, cfg.small),
        v,
        "<= 2 (10M vs 10k)",
        v <= 2.0,
    );
    let v = log_p50[1].0.as_secs_f64() / log_p50[0].0.as_secs_f64();
    res.ratio(
        format!(
            "first-touch page p50 on {} / on {} events",
            cfg.big, cfg.small
        ),
        v,
        "reported",
        v <= 2.0,
    );
    if let Some(sql) = sql_big_p50 {
        let v = sql.as_secs_f64() / log_p50[1].1.as_secs_f64();
        res.ratio(
            format!("SQLite page p50 / LogStore page p50, {} events", cfg.big),
            v,
            ">= 2",
            v >= 2.0,
        );
    }
}

/// Memory the durable store holds after reopening a query log of `shape`.
fn reopen_memory(dir: &Path, shape: Shape) -> Option<Mem> {
    let count = |s: &dyn SessionStore| -> u64 {
        (0..shape.sessions)
            .map(|i| {
                s.get_latest_sequence(&format!("session-{i:07}"))
                    .expect("latest")
            })
            .sum()
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
                let q = EventQuery::new()
                    .after(after)
                    .limit(100)
                    .wait_timeout(Duration::from_secs(5));
                let got = store.get_events("poll", &q).expect("long-poll");
                assert!(!got.is_empty(), "long-poll timed out");
                done_tx.send(Instant::now()).expect("report");
            }
        })
    };
    let start = Instant::now();
    let (mut after_ack, mut after_call) =
        (Vec::with_capacity(samples), Vec::with_capacity(samples));
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
    (
        Stats::from_latencies(after_ack, elapsed),
        Stats::from_latencies(after_call, elapsed),
    )
}

fn section_longpoll(cfg: &Config, res: &mut Results) {
    println!("== long-poll wake-up (append returns -> waiting reader returns)");
    let fmt = |s: &Stats| format!("p50 {} p99 {}", fmt_dur(s.p50), fmt_dur(s.p99));
    let (m, mc) = longpoll(Arc::new(MemoryStore::new()), 1000);
    res.row(
        "long-poll wake-up after append returns, MemoryStore",
        "-".into(),
        fmt(&m),
        "n/a (no wait)".into(),
    );
    res.row(
        "long-poll wake-up after append call, MemoryStore",
        "-".into(),
        fmt(&mc),
        "n/a (no wait)".into(),
    );
    for durable in [false, true] {
        let d = cfg.tempdir();
        let log = Log::open(d.path(), durable);
        let (s, sc) = longpoll(log.store(), 1000);
        log.close();
        let name = if durable {
            "SyncPolicy::Always"
        } else {
            "SyncPolicy::Never"
        };
        res.row(
            format!("long-poll wake-up after append returns, {name}"),
            "-".into(),
            fmt(&s),
            "n/a (no wait)".into(),
        );
        res.row(
            format!("long-poll wake-up after append call, {name}"),
            "-".into(),
            fmt(&sc),
            "n/a (no wait)".into(),
        );
        // Under `Never` the conservative measure (from the append call) is
        // taken; under `Always` that one holds the fdatasync, so the wake-up
        // is measured from the append returning, as the target defines it.
        let (w, how) = if durable {
            (&s, "after append returns")
        } else {
            (&sc, "after append call")
        };
        let us = |d: Duration| d.as_secs_f64() * 1e6;
        res.ratio(
            format!("long-poll p50 µs, {how} ({name})"),
            us(w.p50),
            "<= 50",
            w.p50 <= Duration::from_micros(50),
        );
        res.ratio(
            format!("long-poll p99 µs, {how} ({name})"),
            us(w.p99),
            "<= 500",
            w.p99 <= Duration::from_micros(500),
        );
    }
}

fn section_reopen(cfg: &Config, res: &mut Results) {
    let mib = cfg.kill_bytes >> 20;
    let body = cfg.kill_body;
    println!(
        "== reopen of a {mib} MiB log of {body} B events after SIGKILL and after a clean close, then a backup of it"
    );
    let d = cfg.tempdir();
    let mut child = std::process::Command::new(std::env::current_exe().expect("exe"))
        .arg("--fill-until-killed")
        .arg(d.path())
        .arg(cfg.kill_bytes.to_string())
        .arg(cfg.kill_body.to_string())
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
        (0..logstore::FILL_SESSIONS)
            .map(|i| s.get_latest_sequence(&format!("fill-{i}")).expect("latest"))
            .sum()
    };
    let killed = logstore::reopen(d.path(), &count);
    let clean = logstore::reopen(d.path(), &count);
    let fmt = |r: Option<logstore::Reopen>| {
        r.map_or("n/a".to_string(), |(t, n, m)| {
            format!(
                "{:.3}s ({n} events, heap {} MiB)",
                t.as_secs_f64(),
                m.heap >> 20
            )
        })
    };
    res.row(
        format!("reopen {mib} MiB log ({body} B events) after SIGKILL"),
        "-".into(),
        fmt(killed),
        "-".into(),
    );
    res.row(
        format!("reopen {mib} MiB log ({body} B events) after clean close"),
        "-".into(),
        fmt(clean),
        "-".into(),
    );
    let copy = cfg.tempdir();
    let (took, report) = logstore::backup(d.path(), &copy.path().join("copy"));
    res.row(
        format!("backup_to of that {mib} MiB log (read-only store; copy, sync, check)"),
        "-".into(),
        format!(
            "{:.3}s ({} records, {:.0} MiB/s)",
            took.as_secs_f64(),
            report.records,
            report.bytes as f64 / 1048576.0 / took.as_secs_f64()
        ),
        "-".into(),
    );
    if let Some((t, _, _)) = killed {
        let name = format!("reopen s after SIGKILL, {mib} MiB of {body} B events");
        res.ratio(
            name,
            t.as_secs_f64(),
            "<= 2 (1 GiB)",
            t.as_secs_f64() <= 2.0,
        );
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).is_some_and(|a| a == "--fill-until-killed") {
        logstore::fill_until_killed(
            Path::new(&args[2]),
            args[3].parse().expect("bytes"),
            args[4].parse().expect("body"),
        );
        return;
    }
    let cfg = Config::from_env();
    if !logstore::REAL {
        println!("NOTE: LogStore is not in the crate yet; MemoryStore stands in for it.");
    }
    let mut res = Results::default();
    if cfg.runs("disk") {
        section_disk(&cfg, &mut res);
    }
    if cfg.runs("durable") {
        section_durable(&cfg, &mut res);
    }
    if cfg.runs("threads") {
        section_threads(&cfg, &mut res);
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
