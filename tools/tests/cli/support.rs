//! Helpers: running the binary, building logs, damaging files.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, SystemTime};

use sessionlog::engine::inspect::{self, RecordInfo};
use sessionlog::{Event, EventQuery, EventType, LogOptions, LogStore, SessionStore};

/// The binary under test.
pub fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_sessionlog"))
}

/// Runs the binary with `args`.
pub fn run(args: &[&str]) -> Output {
    bin()
        .args(args)
        .output()
        .expect("the sessionlog binary runs")
}

/// Runs with a path argument list (paths need not be UTF-8 in general, but
/// temp dirs are).
pub fn run_in(dir: &Path, args: &[&str]) -> Output {
    let mut full = vec![args[0], path_str(dir)];
    full.extend_from_slice(&args[1..]);
    run(&full)
}

pub fn path_str(p: &Path) -> &str {
    p.to_str().expect("temp paths are UTF-8")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Asserts a clean failure: the exit code, a message on stderr containing
/// every one of `needles`, and no panic.
pub fn assert_fails(o: &Output, code: i32, needles: &[&str]) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(code), "exit code; stderr: {err}");
    assert!(!err.contains("panicked"), "panic in stderr: {err}");
    assert!(
        !err.contains("RUST_BACKTRACE"),
        "backtrace hint in stderr: {err}"
    );
    for n in needles {
        assert!(err.contains(n), "stderr should mention {n:?}: {err}");
    }
}

/// How long a lock left behind by a fork in a parallel test may linger.
const LOCK_RETRY: Duration = Duration::from_secs(5);

/// Like [`run`], for a command that needs the writer lock and is expected to
/// get it. Tests run in parallel threads: a child forked by another test
/// inherits this process's open `LOCK` descriptors until it calls `exec`,
/// and so can hold a just-released lock for a moment. Retried while locked.
pub fn run_writer(args: &[&str]) -> Output {
    let start = std::time::Instant::now();
    loop {
        let o = run(args);
        if !stderr(&o).contains("is locked") || start.elapsed() > LOCK_RETRY {
            return o;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// [`run_writer`] with the directory as the second argument.
pub fn run_writer_in(dir: &Path, args: &[&str]) -> Output {
    let mut full = vec![args[0], path_str(dir)];
    full.extend_from_slice(&args[1..]);
    run_writer(&full)
}

/// `LogStore::open`, retried while locked (see [`run_writer`]).
pub fn open_writer(dir: &Path) -> LogStore {
    let start = std::time::Instant::now();
    loop {
        match LogStore::open(dir) {
            Err(sessionlog::Error::Locked { .. }) if start.elapsed() < LOCK_RETRY => {
                std::thread::sleep(Duration::from_millis(20));
            }
            other => return other.expect("open for writing"),
        }
    }
}

/// Small segments, so a few dozen events span several files; no fsync, to keep tests fast.
pub fn small_segments() -> LogOptions {
    LogOptions {
        segment_size: 1024,
        sync: sessionlog::SyncPolicy::Never,
        ..LogOptions::default()
    }
}

/// A varied event: types, runs, nested data, unicode, metadata, nanosecond timestamps.
pub fn sample_event(session: &str, i: usize) -> Event {
    let event_type = EventType::ALL[i % EventType::ALL.len()];
    let ts =
        SystemTime::UNIX_EPOCH + Duration::new(1_750_000_000 + i as u64, 123_456_789 + i as u32);
    let mut e = Event::new(session, event_type)
        .with_timestamp(ts)
        .with_data("i", i as u64)
        .with_data("text", format!("héllo {i} ✓"))
        .with_data(
            "nested",
            serde_json::json!({"a": [1, 2.5, null, true], "b": {"c": "d"}}),
        );
    if !i.is_multiple_of(3) {
        e = e.with_run(format!("run-{}", i % 3));
    }
    e.metadata.insert("source".into(), "test".into());
    e
}

/// Appends `per_session` events to each of `sessions`, interleaved, one
/// append per event; returns the stored events.
pub fn make_log(dir: &Path, opts: LogOptions, sessions: &[&str], per_session: usize) -> Vec<Event> {
    let store = LogStore::open_with(dir, opts).expect("open");
    let mut stored = Vec::new();
    for i in 0..per_session {
        for s in sessions {
            stored.push(
                store
                    .append_event_with_sequence(sample_event(s, i))
                    .expect("append"),
            );
        }
    }
    store.close().expect("close");
    stored
}

/// Every event of `session` in the log, read through the library.
pub fn read_session(dir: &Path, session: &str) -> Vec<Event> {
    let store = LogStore::open_read_only(dir).expect("open read-only");
    store.get_events(session, &EventQuery::new()).expect("read")
}

/// The events of `session` among `events`, in their order.
pub fn of_session(events: &[Event], session: &str) -> Vec<Event> {
    events
        .iter()
        .filter(|e| e.session_id == session)
        .cloned()
        .collect()
}

/// Every record of the log with its file and offset.
pub fn records(dir: &Path) -> Vec<RecordInfo> {
    let mut all = Vec::new();
    inspect::scan(dir, |r| all.push(r.clone())).expect("scan");
    all
}

/// Parses JSON Lines output into events.
pub fn parse_events(text: &str) -> Vec<Event> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not an event: {e}: {l}")))
        .collect()
}

/// Flips one bit in the middle of `record`'s body.
pub fn flip_bit_in(record: &RecordInfo) {
    let mut bytes = fs::read(&record.file).expect("read segment");
    let at = (record.offset + record.len / 2) as usize;
    bytes[at] ^= 0x10;
    fs::write(&record.file, bytes).expect("write segment");
}

/// The newest segment file of `dir`.
pub fn newest_segment(dir: &Path) -> PathBuf {
    let mut segs: Vec<PathBuf> = fs::read_dir(dir)
        .expect("list")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .collect();
    segs.sort();
    segs.pop().expect("a segment")
}

/// Cuts the close mark a clean close left at the end of the newest segment
/// (format §5): the log is then as a crash right after its last sync left
/// it, the only kind of log a power loss can tear.
pub fn as_if_crashed(dir: &Path) {
    let newest = newest_segment(dir);
    let bytes = fs::read(&newest).expect("read segment");
    let mark = sessionlog::format::record::trailing_close_mark(&bytes).expect("a close mark");
    fs::write(&newest, &bytes[..mark]).expect("write segment");
}

/// Every file of `dir` (recursively) with its bytes, to check nothing changed.
pub fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut files = BTreeMap::new();
    for entry in fs::read_dir(dir).expect("list") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            files.extend(snapshot(&path));
        } else {
            files.insert(path.clone(), fs::read(&path).expect("read"));
        }
    }
    files
}

/// An event without its sequence number, to compare across logs.
pub fn unsequenced(e: &Event) -> Event {
    Event {
        sequence_number: None,
        ..e.clone()
    }
}
