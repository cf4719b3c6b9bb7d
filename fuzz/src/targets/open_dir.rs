//! Target `open_dir`: opening a log directory whose segment files hold
//! arbitrary bytes, or a real log damaged by arbitrary edits.
//!
//! Whatever the files hold, opening never panics, and when it succeeds every
//! event it returns was really written:
//! - arbitrary files: each returned event is carried by a checksum-valid
//!   record somewhere in the files as they were before the open;
//! - a damaged real log: each returned event equals one that was appended,
//!   with its sequence number (for `Salvage`, which renumbers, up to it).
//!
//! In both cases each session reads as sequences 1..=latest without gaps.
//! Before the open, the inspection tool's walks run over the same files
//! ([`inspect_dir`]); the open with `TolerateTail` (`Strict`) must succeed
//! exactly when `verify` calls the log openable (clean), and an open that
//! fails with `Corrupt` must name a place where `verify` found the problem.
//! A backup (`LogStore::backup_to`) of the read-only follower, and of the
//! damaged log once opened, either fails and leaves no copy, or gives a copy
//! that verifies clean and holds exactly the store's events.

use std::path::Path;

use sessionlog::engine::inspect;
use sessionlog::format::event_codec;
use sessionlog::format::record::{RecordParse, parse_record};
use sessionlog::format::segment::{encode_segment_header, segment_file_name};
use sessionlog::{
    Event, EventQuery, EventType, LogOptions, LogStore, RecoveryMode, SessionStore, SyncPolicy,
};

use super::input::Input;
use super::inspect_dir;

/// The target's body.
pub fn run(data: &[u8]) {
    let mut input = Input::new(data);
    let dir = super::input::scratch_dir();
    let mode = input.u8();
    let recovery = [
        RecoveryMode::TolerateTail,
        RecoveryMode::Strict,
        RecoveryMode::Salvage,
    ][usize::from(mode >> 2) % 3];
    if mode & 1 == 0 {
        arbitrary_files(dir.path(), &mut input, recovery);
    } else {
        damaged_log(dir.path(), &mut input, recovery);
    }
}

/// Options for opening: small segments so that logs span several files.
fn options(recovery: RecoveryMode) -> LogOptions {
    LogOptions {
        sync: SyncPolicy::Never,
        segment_size: 1024,
        recovery,
        ..LogOptions::default()
    }
}

/// Writes up to 3 segment files of arbitrary bytes (most with a valid header,
/// so the fuzzer reaches the records), then opens them.
fn arbitrary_files(dir: &Path, input: &mut Input<'_>, recovery: RecoveryMode) {
    let files = 1 + input.below(3);
    for i in 0..files {
        let flags = input.u8();
        // Mostly consecutive numbers; sometimes a hole.
        let number = u64::from(i) + 1 + u64::from(flags >> 7);
        let mut bytes = Vec::new();
        if flags & 1 == 0 {
            bytes.extend_from_slice(&encode_segment_header(number));
        }
        let len = usize::from(input.u16() % 4096);
        bytes.extend_from_slice(input.take(len));
        std::fs::write(dir.join(segment_file_name(number)), &bytes).expect("write segment");
    }
    let carried = valid_records(dir);
    follow_read_only(dir, &carried);
    let verdict = inspect_dir::check(dir, &carried);
    let store = match LogStore::open_with(dir, options(recovery)) {
        Ok(store) => store,
        Err(e) => return verdict.check_open(recovery, Err(&e)),
    };
    verdict.check_open(recovery, Ok(()));
    let salvage = recovery == RecoveryMode::Salvage;
    for session in sessions_of(&carried) {
        for event in read_session(&store, &session) {
            assert!(
                carried.iter().any(|c| same(c, &event, salvage)),
                "open returned an event no checksum-valid record carries: {event:?}"
            );
        }
    }
    let _ = store.close();
}

/// A read-only follower of the same files (its queries refresh, reading
/// past where its open stopped) returns only events that `carried` holds,
/// each session as sequences 1..=n; an error is a fine answer too.
fn follow_read_only(dir: &Path, carried: &[Event]) {
    let Ok(reader) = LogStore::open_read_only(dir) else {
        return;
    };
    let sessions = sessions_of(carried);
    for session in &sessions {
        let Ok(events) = reader.get_events(session, &EventQuery::new()) else {
            return;
        };
        for (i, event) in events.iter().enumerate() {
            assert_eq!(
                event.sequence_number,
                Some(i as u64 + 1),
                "a follower's sequences have a gap"
            );
            assert!(
                carried.iter().any(|c| same(c, event, false)),
                "a read-only follower returned an event no checksum-valid record carries: {event:?}"
            );
        }
    }
    backup_matches(&reader, &sessions);
}

/// A backup of what an opened store (a follower, or a writer after
/// recovery) sees is an error that leaves no copy, or a copy that verifies
/// clean and holds exactly the store's events.
fn backup_matches(reader: &LogStore, sessions: &[String]) {
    let scratch = super::input::scratch_dir();
    let dest = scratch.path().join("copy");
    if reader.backup_to(&dest).is_err() {
        assert!(!dest.exists(), "a failed backup left its destination");
        return;
    }
    let v = inspect::verify(&dest).expect("verify the copy");
    assert!(
        v.problems.is_empty(),
        "a backup that does not verify: {:?}",
        v.problems
    );
    let copy = LogStore::open_read_only(&dest).expect("open the copy");
    let q = EventQuery::new();
    for s in sessions {
        if let Ok(theirs) = reader.get_events(s, &q) {
            let ours = copy.get_events(s, &q).expect("read the copy");
            assert_eq!(ours, theirs, "the backup of session {s}");
        }
    }
}

/// Every event carried by a checksum-valid, decodable record at any offset of
/// any file in `dir`, with its record's sequence number.
fn valid_records(dir: &Path) -> Vec<Event> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).expect("list dir") {
        let bytes = std::fs::read(entry.expect("entry").path()).unwrap_or_default();
        for at in 0..bytes.len() {
            if let RecordParse::Complete(r) = parse_record(&bytes[at..])
                && let Ok(e) = event_codec::decode(r.body, r.header.sequence)
            {
                out.push(e);
            }
        }
    }
    out
}

pub(crate) fn sessions_of(events: &[Event]) -> Vec<String> {
    let mut s: Vec<String> = events
        .iter()
        .map(|e| e.session_id.clone())
        .filter(|s| !s.is_empty())
        .collect();
    s.sort_unstable();
    s.dedup();
    s
}

/// Equal events; with `any_sequence`, up to the sequence number.
pub(crate) fn same(a: &Event, b: &Event, any_sequence: bool) -> bool {
    if any_sequence {
        Event {
            sequence_number: None,
            ..a.clone()
        } == Event {
            sequence_number: None,
            ..b.clone()
        }
    } else {
        a == b
    }
}

/// All of a session's events, checking that they are numbered 1..=latest.
pub(crate) fn read_session(store: &LogStore, session: &str) -> Vec<Event> {
    let events = store
        .get_events(session, &EventQuery::new())
        .expect("read an opened log");
    let latest = store.get_latest_sequence(session).expect("latest");
    let seqs: Vec<u64> = events
        .iter()
        .map(|e| e.sequence_number.unwrap_or(0))
        .collect();
    assert_eq!(
        seqs,
        (1..=latest).collect::<Vec<_>>(),
        "session {session} is not numbered 1..={latest}"
    );
    for e in &events {
        assert_eq!(e.session_id, session, "an event of another session");
    }
    events
}

/// Writes a real log from the input's recipe, damages it as the input says,
/// then opens it.
fn damaged_log(dir: &Path, input: &mut Input<'_>, recovery: RecoveryMode) {
    let written = write_log(dir, input);
    let edits = damage(dir, input);
    let verdict = inspect_dir::check(dir, &valid_records(dir));
    let store = match LogStore::open_with(dir, options(recovery)) {
        Ok(store) => store,
        Err(e) => {
            verdict.check_open(recovery, Err(&e));
            assert!(
                edits > 0 || recovery == RecoveryMode::Salvage,
                "an undamaged log fails to open"
            );
            return;
        }
    };
    verdict.check_open(recovery, Ok(()));
    let salvage = recovery == RecoveryMode::Salvage;
    let mut found = 0;
    for session in sessions_of(&written) {
        for event in read_session(&store, &session) {
            assert!(
                written.iter().any(|w| same(w, &event, salvage)),
                "open returned an event never written: {event:?}"
            );
            found += 1;
        }
    }
    if edits == 0 {
        assert_eq!(found, written.len(), "an undamaged log lost events");
    }
    backup_matches(&store, &sessions_of(&written));
    let _ = store.close();
}

/// Appends 1..=48 events (single appends and batches, 3 sessions, bodies of
/// varied size) and closes; returns them as stored.
fn write_log(dir: &Path, input: &mut Input<'_>) -> Vec<Event> {
    let store = LogStore::open_with(dir, options(RecoveryMode::TolerateTail)).expect("create log");
    let count = 1 + input.below(48);
    let mut written = Vec::new();
    let mut i = 0;
    while i < count {
        let batch = 1 + input.below(4).min(count - i);
        let events: Vec<Event> = (i..i + batch)
            .map(|n| recipe_event(n, input.u8()))
            .collect();
        written.extend(store.append_events(events).expect("append"));
        i += batch;
    }
    store.close().expect("close");
    written
}

/// Event `n` of a log recipe; `shape` picks its session, run and size.
fn recipe_event(n: u32, shape: u8) -> Event {
    let mut e = Event::new(
        format!("s{}", shape % 3),
        EventType::ALL[usize::from(shape) % 28],
    )
    .with_id(format!("e{n}"))
    .with_data("pad", "p".repeat(usize::from(shape >> 2) * 8));
    if shape & 0x20 != 0 {
        e = e.with_run("r");
    }
    e
}

/// Applies up to 4 edits to the segment files; returns how many changed something.
fn damage(dir: &Path, input: &mut Input<'_>) -> usize {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .expect("list dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .collect();
    files.sort();
    let edits = input.below(5);
    let mut changed = 0;
    for _ in 0..edits {
        let Some(path) = files.get(input.below(files.len() as u32) as usize).cloned() else {
            break;
        };
        let mut bytes = std::fs::read(&path).unwrap_or_default();
        let at = input.u16() as usize % bytes.len().max(1);
        match input.below(4) {
            0 if !bytes.is_empty() => bytes[at] ^= 1 << input.below(8),
            1 => bytes.truncate(at),
            2 => {
                let n = usize::from(input.u8() % 64);
                bytes.extend_from_slice(input.take(n));
            }
            _ if !bytes.is_empty() => bytes[at] = input.u8(),
            _ => {}
        }
        std::fs::write(&path, &bytes).expect("rewrite segment");
        changed += 1;
    }
    changed
}
