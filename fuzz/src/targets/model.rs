//! Target `model`: arbitrary sequences of appends, batches, duplicates,
//! queries, reopens and simulated crashes applied to a `LogStore` and to the
//! reference model (`sessionlog::conformance::model`), answer by answer.
//!
//! A crash is simulated by closing the store and cutting its newest segment
//! at an arbitrary byte offset (what a torn write leaves). The reopened store
//! must then hold exactly a prefix of everything stored, in append order, that
//! ends on a batch boundary (a batch is all or nothing across crashes too);
//! the model is cut to that prefix and the run goes on.
//!
//! With bit 5 of the first byte set, a reopen is instead a backup
//! (`LogStore::backup_to`) into a new directory, and the run goes on from
//! the copy, which must hold everything stored.
//!
//! A power loss (under `SyncPolicy::Always`) is simulated by closing the
//! store and zeroing arbitrary 512-byte sectors of the last write (the last
//! append call's records): the pages a power loss may drop from a write that
//! was not yet synced, in any order. The reopen must succeed and keep
//! everything stored before that write (format §6), and the same prefix
//! rule holds.

use std::path::{Path, PathBuf};

use sessionlog::conformance::model::{EventSpec, ModelChecker, Op};
use sessionlog::format::record::trailing_close_mark;
use sessionlog::format::segment::{SEGMENT_HEADER_LEN, parse_segment_file_name};
use sessionlog::{Event, EventQuery, LogOptions, LogStore, SessionStore, SyncPolicy};

use super::input::Input;

/// Operations per input at most, to keep each run short.
const MAX_OPS: usize = 48;
/// Sessions 1..=3 (0 is the invalid empty session id).
const SESSIONS: u8 = 3;

/// What the harness does besides the model's own operations.
enum Step {
    Op(Op),
    /// Close and reopen.
    Reopen,
    /// Close, cut the newest segment at this byte offset (taken modulo its
    /// length past the header), reopen.
    Crash(u32),
    /// Close, zero the sectors of the last write this seed picks, reopen
    /// (a crash as above under a buffered sync policy).
    PowerLoss(u32),
}

/// Everything stored so far, in append order, with the batch it came in.
#[derive(Default)]
struct Stored {
    events: Vec<(Event, usize)>,
    batches: usize,
}

impl Stored {
    /// Records the newly stored events of one successful append call.
    fn push(&mut self, results: &[Event]) {
        self.batches += 1;
        for e in results {
            if !self.events.iter().any(|(s, _)| s.id == e.id) {
                self.events.push((e.clone(), self.batches));
            }
        }
    }
}

/// The target's body.
pub fn run(data: &[u8]) {
    let mut input = Input::new(data);
    let mut dir = super::input::scratch_dir();
    let b = input.u8();
    let (opts, backup_on_reopen) = (options(b), b & 0x20 != 0);
    let mut store = Some(LogStore::open_with(dir.path(), opts.clone()).expect("open a new log"));
    let mut checker = ModelChecker::new();
    let mut stored = Stored::default();
    for _ in 0..MAX_OPS {
        if input.is_empty() {
            break;
        }
        let step = step(&mut input);
        let log = store.take().expect("open store");
        store = Some(match step {
            Step::Op(op) => {
                apply(&log, &mut checker, &mut stored, &op);
                log
            }
            Step::Reopen if backup_on_reopen => {
                let (log, copy) = go_on_from_a_backup(log, &opts);
                dir = copy;
                checker
                    .check_contents(&log)
                    .unwrap_or_else(|d| panic!("after a backup: {d}"));
                log
            }
            Step::Reopen => {
                log.close().expect("close");
                let log = LogStore::open_with(dir.path(), opts.clone())
                    .expect("reopen after a clean close");
                checker
                    .check_contents(&log)
                    .unwrap_or_else(|d| panic!("after reopen: {d}"));
                log
            }
            Step::Crash(cut) => crash(log, dir.path(), &opts, cut, &mut checker, &mut stored),
            Step::PowerLoss(seed) if opts.sync == SyncPolicy::Always => {
                power_loss(log, dir.path(), &opts, seed, &mut checker, &mut stored)
            }
            Step::PowerLoss(cut) => crash(log, dir.path(), &opts, cut, &mut checker, &mut stored),
        });
    }
    let log = store.expect("open store");
    checker
        .check_contents(&log)
        .unwrap_or_else(|d| panic!("at the end: {d}"));
    log.close().expect("close");
}

/// Backs the open store up into a new directory, closes it, and opens the
/// copy, on which the run goes on: the copy must hold everything stored, and
/// take appends, crashes and power losses like the original.
fn go_on_from_a_backup(log: LogStore, opts: &LogOptions) -> (LogStore, tempfile::TempDir) {
    let copy = super::input::scratch_dir();
    log.backup_to(copy.path())
        .expect("back up into an empty directory");
    log.close().expect("close");
    let log = LogStore::open_with(copy.path(), opts.clone()).expect("open the backup");
    (log, copy)
}

/// Small segments (so crashes hit sealed/active boundaries), a sync policy,
/// and how many sealed segments keep their pages cached (the others are
/// released while the model reads them).
fn options(b: u8) -> LogOptions {
    let sync = if b & 1 == 0 {
        SyncPolicy::Never
    } else {
        SyncPolicy::Always
    };
    LogOptions {
        sync,
        segment_size: 1024 << (b >> 1 & 3),
        cached_sealed_segments: [None, Some(0), Some(1), None][usize::from(b >> 3 & 3)],
        ..LogOptions::default()
    }
}

fn apply(log: &LogStore, checker: &mut ModelChecker, stored: &mut Stored, op: &Op) {
    checker.step(log, op).unwrap_or_else(|d| panic!("{d}"));
    // The checker compared the answers; mirror what was newly stored.
    let batch: Vec<EventSpec> = match op {
        Op::Append(s) => vec![s.clone()],
        Op::Batch(b) => b.clone(),
        _ => return,
    };
    if batch.iter().all(|s| s.session != 0 && s.id != 0) {
        let results: Vec<Event> = batch
            .iter()
            .map(|s| {
                let e = s.to_event();
                let q = EventQuery::new();
                let all = log.get_events(&e.session_id, &q).expect("read");
                // The stored event with this id (in any session).
                all.into_iter()
                    .find(|x| x.id == e.id)
                    .or_else(|| find_anywhere(log, &e.id))
                    .expect("stored")
            })
            .collect();
        stored.push(&results);
    }
}

fn find_anywhere(log: &LogStore, id: &str) -> Option<Event> {
    (1..=SESSIONS).find_map(|s| {
        let all = log
            .get_events(&format!("session-{s}"), &EventQuery::new())
            .ok()?;
        all.into_iter().find(|e| e.id == id)
    })
}

fn step(input: &mut Input<'_>) -> Step {
    match input.below(16) {
        0..=5 => Step::Op(Op::Append(spec(input))),
        6..=8 => {
            let n = input.below(5);
            Step::Op(Op::Batch((0..n).map(|_| spec(input)).collect()))
        }
        9..=11 => Step::Op(query(input)),
        12 => Step::Op(Op::Latest {
            session: input.below(u32::from(SESSIONS) + 1) as u8,
        }),
        13 => Step::Reopen,
        14 => Step::Crash(input.u32()),
        _ => Step::PowerLoss(input.u32()),
    }
}

fn spec(input: &mut Input<'_>) -> EventSpec {
    let b = input.u8();
    EventSpec {
        // 1 in 32 invalid (0), else 1..=3.
        session: if b & 31 == 0 { 0 } else { 1 + b % SESSIONS },
        id: input.u8() % 40,
        run: input.maybe(|i| i.below(3) as u8),
        event_type: input.below(6) as u8,
        ts: input.below(8) as u8,
        payload: input.u16(),
    }
}

fn query(input: &mut Input<'_>) -> Op {
    let seq = |i: &mut Input<'_>| i.maybe(|i| u64::from(i.below(25)));
    Op::Query {
        session: input.below(u32::from(SESSIONS) + 1) as u8,
        after: seq(input),
        before: seq(input),
        run: input.maybe(|i| i.below(3) as u8),
        event_type: input.maybe(|i| i.below(6) as u8),
        since: input.maybe(|i| i.below(8) as u8),
        limit: input.maybe(|i| i.below(6) as usize),
    }
}

/// The newest segment file of `dir`.
fn newest_segment(dir: &Path) -> Option<PathBuf> {
    std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok())
        .filter_map(|e| parse_segment_file_name(e.file_name().to_str()?).map(|n| (n, e.path())))
        .max_by_key(|(n, _)| *n)
        .map(|(_, p)| p)
}

/// Closes, tears the newest segment's tail, reopens and re-bases the model on
/// what survived.
fn crash(
    log: LogStore,
    dir: &Path,
    opts: &LogOptions,
    cut: u32,
    checker: &mut ModelChecker,
    stored: &mut Stored,
) -> LogStore {
    log.close().expect("close");
    if let Some(path) = newest_segment(dir) {
        let len = std::fs::metadata(&path).expect("segment").len();
        let header = SEGMENT_HEADER_LEN as u64;
        if len > header {
            let at = header + u64::from(cut) % (len - header + 1);
            let f = std::fs::OpenOptions::new()
                .write(true)
                .open(&path)
                .expect("open segment");
            f.set_len(at).expect("truncate");
        }
    }
    let log = LogStore::open_with(dir, opts.clone()).expect("a torn tail must not fail the open");
    rebase(log, checker, stored)
}

/// Cuts the close mark a clean close ends the newest segment with (format
/// §5): a power loss strikes before the close, which would have made the
/// last write durable and claimed so.
fn forget_close(dir: &Path) {
    let Some(path) = newest_segment(dir) else {
        return;
    };
    let bytes = std::fs::read(&path).expect("segment");
    if let Some(mark) = trailing_close_mark(&bytes) {
        std::fs::write(&path, &bytes[..mark]).expect("cut the close mark");
    }
}

/// Closes, zeroes the sectors of the last write that `seed` picks, reopens
/// and re-bases the model on what survived: at least everything before that
/// write.
fn power_loss(
    log: LogStore,
    dir: &Path,
    opts: &LogOptions,
    seed: u32,
    checker: &mut ModelChecker,
    stored: &mut Stored,
) -> LogStore {
    log.close().expect("close");
    forget_close(dir);
    let last = stored.events.last().map_or(0, |(_, batch)| *batch);
    let before = stored.events.iter().filter(|(_, b)| *b < last).count();
    let written: Vec<(String, u64)> = stored.events[before..]
        .iter()
        .map(|(e, _)| (e.session_id.clone(), e.sequence_number.expect("stored")))
        .collect();
    // Where the last write starts: its first record (a batch is written in
    // log order, within one segment). Only a write to the newest segment
    // can be torn: a segment is synced before the next one is created (a
    // crash step may have cut records of a newer segment, leaving it empty).
    let newest = newest_segment(dir);
    let mut start: Option<u64> = None;
    sessionlog::engine::inspect::scan(dir, |r| {
        let ours = written
            .iter()
            .any(|(s, n)| *s == r.session_id && *n == r.sequence);
        if start.is_none() && ours && Some(&r.file) == newest.as_ref() {
            start = Some(r.offset);
        }
    })
    .expect("scan");
    if let (Some(path), Some(start)) = (&newest, start) {
        drop_sectors(path, start, seed);
    }
    let log = LogStore::open_with(dir, opts.clone()).expect("a power loss must not fail the open");
    let log = rebase(log, checker, stored);
    assert!(
        stored.events.len() >= before,
        "a power loss lost what was durable before the last write"
    );
    log
}

/// Zeroes the 512-byte sectors (clipped to the write) of `path` from `start`
/// to its end that bits of `seed` pick, as a power loss may leave them.
fn drop_sectors(path: &Path, start: u64, seed: u32) {
    let mut bytes = std::fs::read(path).expect("segment");
    let start = usize::try_from(start).expect("small");
    let mut bits = seed;
    let mut at = start;
    while at < bytes.len() {
        let end = ((at / 512 + 1) * 512).min(bytes.len());
        if bits & 1 == 1 {
            bytes[at..end].fill(0);
        }
        bits = bits.rotate_right(1);
        at = end;
    }
    std::fs::write(path, bytes).expect("write segment");
}

/// Re-bases the model on what `log` kept of `stored` after a crash.
fn rebase(log: LogStore, checker: &mut ModelChecker, stored: &mut Stored) -> LogStore {
    let kept = surviving_prefix(&log, stored);
    stored.events.truncate(kept);
    *checker = ModelChecker::new();
    let events: Vec<Event> = stored.events.iter().map(|(e, _)| e.clone()).collect();
    if !events.is_empty() {
        checker.model.append(events);
    }
    checker
        .check_contents(&log)
        .unwrap_or_else(|d| panic!("after a crash: {d}"));
    log
}

/// How many of the stored events survived: they must be a prefix of the
/// append order that ends on a batch boundary.
fn surviving_prefix(log: &LogStore, stored: &Stored) -> usize {
    let kept: u64 = (1..=SESSIONS)
        .map(|s| {
            log.get_latest_sequence(&format!("session-{s}"))
                .expect("latest")
        })
        .sum();
    let kept = usize::try_from(kept).expect("small");
    assert!(
        kept <= stored.events.len(),
        "more events after a crash than were stored"
    );
    for (e, _) in &stored.events[..kept] {
        let got = log
            .get_events(&e.session_id, &EventQuery::new())
            .expect("read");
        assert!(got.contains(e), "a crash kept a later event but lost {e:?}");
    }
    if let (Some((_, last)), Some((_, next))) =
        (stored.events[..kept].last(), stored.events.get(kept))
    {
        assert_ne!(last, next, "a crash kept part of a batch");
    }
    kept
}
