//! An independent reader of a log directory, written from `format/README.md`
//! alone: it uses none of the crate's format or engine code, only `std`,
//! `crc32fast` and `serde_json`. The tests write logs through `LogStore` and
//! read them back both ways, which proves two things the specification
//! claims: that it is precise enough to write a reader from, and that what
//! the engine writes is what it says (headers, records, batches, close marks,
//! preallocated zeros, prepared segments, the event body, the type codes).

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::time::{Duration, SystemTime};

use serde_json::{Map, Value, json};
use sessionlog::{Event, EventQuery, EventType, LogOptions, LogStore, SessionStore, SyncPolicy};

// ---- the reader: format/README.md §1-§5, nothing else ----

/// One event as the specification describes it (§3 header, §4 body).
#[derive(Debug, Clone, PartialEq)]
struct SpecEvent {
    event_type: &'static str,
    timestamp_ns: i64,
    id: String,
    session_id: String,
    run_id: Option<String>,
    data: Value,
    metadata: Value,
    sequence: u64,
}

/// §4: the event type codes, in order.
const TYPE_CODES: [&str; 28] = [
    "session_created",
    "session_started",
    "session_paused",
    "session_resumed",
    "session_completed",
    "session_failed",
    "session_cancelled",
    "run_started",
    "run_completed",
    "run_failed",
    "run_cancelled",
    "run_timeout",
    "message_sent",
    "message_received",
    "message_streamed",
    "tool_call_started",
    "tool_call_completed",
    "tool_call_failed",
    "error_occurred",
    "error_recovered",
    "token_usage_updated",
    "turn_completed",
    "workspace_snapshot_taken",
    "workspace_diff_computed",
    "policy_violation",
    "tool_approval_requested",
    "tool_approval_granted",
    "tool_approval_denied",
];

const MAGIC: &[u8; 8] = b"SLOGSEG\0";
const HEADER_LEN: usize = 32;

/// What the reader counted besides the events, to show each part of the
/// format was met.
#[derive(Debug, Default)]
struct Seen {
    segments: usize,
    close_marks: usize,
    batches_of_more_than_one: usize,
    zero_tail_bytes: usize,
    claims: usize,
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}

/// §1 and §5 step 1: the segment numbers, which must be 1..n.
fn segment_numbers(dir: &Path) -> Result<Vec<u64>, String> {
    let mut numbers = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| e.to_string())? {
        let name = entry.map_err(|e| e.to_string())?.file_name();
        let name = name.to_string_lossy();
        let Some(digits) = name.strip_suffix(".seg") else {
            continue; // LOCK, N.prepared and anything else: not the log.
        };
        if digits.len() == 20 && digits.bytes().all(|c| c.is_ascii_digit()) {
            numbers.push(digits.parse::<u64>().unwrap());
        }
    }
    numbers.sort_unstable();
    for (i, &n) in numbers.iter().enumerate() {
        if n != i as u64 + 1 {
            return Err(format!("segment {} missing", i + 1));
        }
    }
    Ok(numbers)
}

/// §2: checks a segment header; returns its format version.
fn check_segment_header(b: &[u8], number: u64) -> Result<u32, String> {
    if b.len() < HEADER_LEN || &b[..8] != MAGIC {
        return Err(format!("segment {number}: no header"));
    }
    if crc32fast::hash(&b[..28]) != u32_at(b, 28) {
        return Err(format!("segment {number}: header CRC"));
    }
    let version = u32_at(b, 8);
    if !(1..=4).contains(&version) {
        return Err(format!("segment {number}: unsupported version {version}"));
    }
    if u32_at(b, 12) != 32 || u32_at(b, 24) != 0 || u64_at(b, 16) != number {
        return Err(format!("segment {number}: header fields"));
    }
    Ok(version)
}

/// A cursor over an event body (§4).
struct Body<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Body<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.b.len());
        let end = end.ok_or("body too short")?;
        let out = &self.b[self.at..end];
        self.at = end;
        Ok(out)
    }

    fn text(&mut self) -> Result<String, String> {
        let len = u32::from_le_bytes(self.take(4)?.try_into().unwrap()) as usize;
        let bytes = self.take(len)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| "not UTF-8".to_string())
    }

    fn object(&mut self) -> Result<Value, String> {
        let v: Value = serde_json::from_str(&self.text()?).map_err(|e| e.to_string())?;
        v.is_object()
            .then_some(v)
            .ok_or("not an object".to_string())
    }
}

/// §4: decodes an event body; `sequence` comes from the record header.
fn decode_body(b: &[u8], sequence: u64) -> Result<SpecEvent, String> {
    let mut body = Body { b, at: 0 };
    let code = body.take(1)?[0] as usize;
    let event_type = *TYPE_CODES.get(code).ok_or("unknown event type")?;
    let flags = body.take(1)?[0];
    if flags & !1 != 0 {
        return Err("unknown body flags".into());
    }
    let timestamp_ns = i64::from_le_bytes(body.take(8)?.try_into().unwrap());
    let (id, session_id) = (body.text()?, body.text()?);
    if id.is_empty() || session_id.is_empty() {
        return Err("empty id or session".into());
    }
    let run_id = if flags & 1 == 1 {
        Some(body.text()?)
    } else {
        None
    };
    let (data, metadata) = (body.object()?, body.object()?);
    if body.at != b.len() {
        return Err("bytes after metadata".into());
    }
    Ok(SpecEvent {
        event_type,
        timestamp_ns,
        id,
        session_id,
        run_id,
        data,
        metadata,
        sequence,
    })
}

/// A record's 32-byte header (§3).
struct RecordHeader {
    body_len: usize,
    kind: u8,
    flags: u8,
    durable_before: u32,
    sequence: u64,
    prev: u64,
}

/// §3: parses and checks the record at `at`; returns its header and body.
fn read_record(b: &[u8], at: usize, version: u32) -> Result<(RecordHeader, &[u8]), String> {
    let fail = |what: &str| format!("record at {at}: {what}");
    if b.len() - at < 32 {
        return Err(fail("short header"));
    }
    let h = &b[at..at + 32];
    let body_len = u32_at(h, 4) as usize;
    if body_len > 1 << 30 || b.len() - at - 32 < body_len {
        return Err(fail("short body"));
    }
    if crc32fast::hash(&b[at + 4..at + 32 + body_len]) != u32_at(h, 0) {
        return Err(fail("CRC"));
    }
    let header = RecordHeader {
        body_len,
        kind: h[8],
        flags: h[9],
        durable_before: u32_at(h, 10),
        sequence: u64_at(h, 16),
        prev: u64_at(h, 24),
    };
    if h[14] != 0 || h[15] != 0 || header.flags & !1 != 0 {
        return Err(fail("reserved bits set"));
    }
    let claim = header.durable_before as usize;
    if version >= 3 && claim != 0 && !(32..=at).contains(&claim) {
        return Err(fail("a claim past the record itself"));
    }
    Ok((header, &b[at + 32..at + 32 + body_len]))
}

/// §3: a close mark's fields.
fn check_close_mark(h: &RecordHeader, at: usize, in_batch: bool) -> Result<(), String> {
    let zeros = h.body_len == 0 && h.flags == 0 && h.sequence == 0 && h.prev == 0;
    if !zeros || h.durable_before as usize != at || in_batch {
        return Err(format!("close mark at {at}: invalid"));
    }
    Ok(())
}

/// §5 step 2: the events of one segment, in file order, whole batches only.
/// Records carry their position (`segment << 32 | offset`).
fn read_segment(
    b: &[u8],
    number: u64,
    newest: bool,
    seen: &mut Seen,
) -> Result<Vec<(u64, u64, SpecEvent)>, String> {
    let version = check_segment_header(b, number)?;
    let (mut at, mut out, mut batch) = (HEADER_LEN, Vec::new(), Vec::new());
    while at < b.len() {
        if newest && b[at..].iter().all(|&x| x == 0) {
            seen.zero_tail_bytes += b.len() - at;
            break; // §5 preallocated space: the log's end.
        }
        let (h, body) = read_record(b, at, version).map_err(|e| format!("{number}: {e}"))?;
        seen.claims += usize::from(h.durable_before != 0);
        match h.kind {
            2 => {
                check_close_mark(&h, at, !batch.is_empty())?;
                seen.close_marks += 1;
            }
            1 if h.sequence >= 1 && (h.prev == 0) == (h.sequence == 1) => {
                let event =
                    decode_body(body, h.sequence).map_err(|e| format!("{number}@{at}: {e}"))?;
                batch.push(((number << 32) | at as u64, h.prev, event));
                if h.flags & 1 == 0 {
                    seen.batches_of_more_than_one += usize::from(batch.len() > 1);
                    out.append(&mut batch);
                }
            }
            _ => return Err(format!("{number}@{at}: invalid kind or sequence")),
        }
        at += 32 + h.body_len;
    }
    match batch.is_empty() {
        true => Ok(out),
        false => Err(format!("segment {number}: incomplete batch")),
    }
}

/// §5 step 3: every accepted record continues its session, ids are new.
fn check_sessions(records: &[(u64, u64, SpecEvent)]) -> Result<(), String> {
    let mut last: HashMap<&str, (u64, u64)> = HashMap::new();
    let mut ids = HashSet::new();
    for (position, prev, e) in records {
        let (seq, at) = last.get(e.session_id.as_str()).copied().unwrap_or((0, 0));
        if e.sequence != seq + 1 || *prev != at {
            return Err(format!("{} does not continue {}", e.id, e.session_id));
        }
        if !ids.insert(e.id.as_str()) {
            return Err(format!("id {} repeated", e.id));
        }
        last.insert(&e.session_id, (e.sequence, *position));
    }
    Ok(())
}

/// Reads a whole log directory by the specification: every event in log order.
fn read_log(dir: &Path) -> Result<(Vec<SpecEvent>, Seen), String> {
    let numbers = segment_numbers(dir)?;
    let mut seen = Seen {
        segments: numbers.len(),
        ..Seen::default()
    };
    let mut records = Vec::new();
    for &n in &numbers {
        let path = dir.join(format!("{n:020}.seg"));
        let bytes = std::fs::read(&path).map_err(|e| e.to_string())?;
        records.extend(read_segment(
            &bytes,
            n,
            n == numbers.len() as u64,
            &mut seen,
        )?);
    }
    check_sessions(&records)?;
    Ok((records.into_iter().map(|(_, _, e)| e).collect(), seen))
}

// ---- the tests ----

/// What the store says, in the reader's terms.
fn as_spec(e: &Event) -> SpecEvent {
    let ns = match e.timestamp.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(after) => after.as_nanos() as i64,
        Err(before) => -(before.duration().as_nanos() as i64),
    };
    SpecEvent {
        event_type: e.event_type.as_str(),
        timestamp_ns: ns,
        id: e.id.clone(),
        session_id: e.session_id.clone(),
        run_id: e.run_id.clone(),
        data: Value::Object(e.data.clone()),
        metadata: Value::Object(e.metadata.clone()),
        sequence: e.sequence_number.expect("stored events have sequences"),
    }
}

/// Asserts the reader finds exactly what `store` returns, session by session.
fn assert_reads_the_same(dir: &Path, store: &dyn SessionStore, sessions: &[String]) -> Seen {
    let (events, seen) = read_log(dir).expect("the specification reads the log");
    let mut by_session: HashMap<&str, Vec<SpecEvent>> = HashMap::new();
    for e in &events {
        by_session.entry(&e.session_id).or_default().push(e.clone());
    }
    assert_eq!(by_session.len(), sessions.len(), "sessions");
    for s in sessions {
        let stored: Vec<SpecEvent> = store
            .get_events(s, &EventQuery::new())
            .unwrap()
            .iter()
            .map(as_spec)
            .collect();
        assert_eq!(by_session[s.as_str()], stored, "session {s}");
    }
    seen
}

/// An event of every kind the body encodes: each type code, with and
/// without a run, odd timestamps, numbers, text and nesting in the JSON.
fn varied_event(session: &str, n: u64, pad: usize) -> Event {
    let event_type = EventType::from_code((n % 28) as u8).unwrap();
    let at = match n % 3 {
        0 => SystemTime::UNIX_EPOCH + Duration::new(1_749_983_400 + n, (n * 7919) as u32),
        1 => SystemTime::UNIX_EPOCH - Duration::new(86_400 + n, 1),
        _ => SystemTime::UNIX_EPOCH,
    };
    let mut e = Event::new(session, event_type)
        .with_id(format!("{session}/évent-{n}"))
        .with_timestamp(at)
        .with_data("n", n)
        .with_data("f", n as f64 / 3.0 + 1e-300)
        .with_data(
            "nested",
            json!({"a": [1, -2.5, null, true], "ü": {"k": "v\"\n"}}),
        )
        .with_data("pad", "x".repeat(pad));
    if n.is_multiple_of(2) {
        e = e.with_run(format!("run-{}", n / 4));
    }
    let meta: Map<String, Value> = [("provider".to_string(), json!("test"))]
        .into_iter()
        .collect();
    e.metadata = if n.is_multiple_of(5) {
        Map::new()
    } else {
        meta
    };
    e
}

/// Writes `rounds` of singles and batches to `sessions` sessions, the event
/// numbers (and so the ids) starting from `first_round * 100`.
fn write_rounds(store: &LogStore, sessions: &[String], rounds: (u64, u64), pad: usize) {
    for round in rounds.0..rounds.0 + rounds.1 {
        for (i, s) in sessions.iter().enumerate() {
            let n = round * 100 + i as u64 * 10;
            store
                .append_event_with_sequence(varied_event(s, n, pad))
                .unwrap();
            let batch = (1..4).map(|k| varied_event(s, n + k, pad)).collect();
            store.append_events(batch).unwrap();
        }
    }
}

fn sessions(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("session-{i}")).collect()
}

fn options(sync: SyncPolicy, segment_size: u64) -> LogOptions {
    LogOptions {
        sync,
        segment_size,
        ..LogOptions::default()
    }
}

#[test]
fn a_durable_log_over_many_segments_and_clean_closes_reads_the_same_by_the_specification() {
    let dir = tempfile::tempdir().unwrap();
    let names = sessions(5);
    for open in 0..4 {
        let store = LogStore::open_with(dir.path(), options(SyncPolicy::Always, 64 << 10)).unwrap();
        write_rounds(&store, &names, (open * 6, 6), 700);
        let open = assert_reads_the_same(dir.path(), &store, &names);
        assert!(
            open.zero_tail_bytes > 0,
            "an open durable log ends in zeros: {open:?}"
        );
        store.close().unwrap();
    }
    let store = LogStore::open_read_only(dir.path()).unwrap();
    let seen = assert_reads_the_same(dir.path(), &store, &names);
    assert!(seen.segments >= 5, "{seen:?}");
    assert_eq!(seen.close_marks, 4, "one per clean close: {seen:?}");
    assert!(seen.batches_of_more_than_one >= 4 * 6 * 5, "{seen:?}");
    assert!(seen.claims > 0, "durable records claim: {seen:?}");
    assert_eq!(
        seen.zero_tail_bytes, 0,
        "a clean close cuts the zeros: {seen:?}"
    );
}

#[test]
fn a_buffered_log_reads_the_same_by_the_specification() {
    let dir = tempfile::tempdir().unwrap();
    let names = sessions(3);
    let store = LogStore::open_with(dir.path(), options(SyncPolicy::Never, 32 << 10)).unwrap();
    write_rounds(&store, &names, (0, 8), 300);
    store.close().unwrap();
    let store = LogStore::open_read_only(dir.path()).unwrap();
    let seen = assert_reads_the_same(dir.path(), &store, &names);
    assert_eq!(seen.claims, 1, "only the close mark claims: {seen:?}");
}

#[test]
fn prepared_segments_are_read_by_the_specification_once_renamed_and_ignored_before() {
    let dir = tempfile::tempdir().unwrap();
    let names = sessions(2);
    let store = LogStore::open_with(dir.path(), options(SyncPolicy::Always, 4 << 20)).unwrap();
    let batch = |s: &String, r: u64| {
        (0..64)
            .map(|k| varied_event(s, r * 1000 + k, 4096))
            .collect()
    };
    let prepared_file = || {
        let names = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name());
        names
            .into_iter()
            .any(|n| n.to_string_lossy().ends_with(".prepared"))
    };
    let mut r = 0;
    // 256 KiB batches: a segment every 16; the next is prepared from a sixteenth.
    while r < 48 || !prepared_file() {
        store
            .append_events(batch(&names[(r % 2) as usize], r))
            .unwrap();
        r += 1;
        assert!(r < 1000, "no segment was ever prepared");
    }
    let seen = assert_reads_the_same(dir.path(), &store, &names);
    assert!(seen.segments >= 3, "{seen:?}");
    store.close().unwrap();
    let store = LogStore::open_read_only(dir.path()).unwrap();
    assert_reads_the_same(dir.path(), &store, &names);
}

#[test]
fn the_reader_is_not_blind_a_flipped_body_byte_is_a_crc_failure() {
    let dir = tempfile::tempdir().unwrap();
    let store = LogStore::open_with(dir.path(), options(SyncPolicy::Always, 1 << 20)).unwrap();
    write_rounds(&store, &sessions(1), (0, 1), 10);
    store.close().unwrap();
    let seg = dir.path().join(format!("{:020}.seg", 1));
    let mut bytes = std::fs::read(&seg).unwrap();
    bytes[HEADER_LEN + 32 + 3] ^= 0x10;
    std::fs::write(&seg, bytes).unwrap();
    let err = read_log(dir.path()).unwrap_err();
    assert!(err.contains("CRC"), "{err}");
}
