//! What the benches share: event shapes, log building, store opening.

#![allow(dead_code)]

use std::path::Path;
use std::sync::Arc;

use sessionlog::format::event_codec;
use sessionlog::{Event, EventType, LogOptions, LogStore, SessionStore, SyncPolicy};

/// Whether the big sizes (1M and 10M events) are wanted: `SESSIONLOG_BENCH_FULL=1`.
pub fn full() -> bool {
    std::env::var("SESSIONLOG_BENCH_FULL").is_ok_and(|v| v == "1")
}

/// An event whose encoded body is `body` bytes (bodies of at least ~100 B).
pub fn event_of_size(session: &str, kind: EventType, body: usize) -> Event {
    let mut e = Event::new(session, kind);
    e.data.insert("text".into(), "".into());
    let pad = body.saturating_sub(event_codec::encoded_len(&e));
    e.data.insert("text".into(), "x".repeat(pad).into());
    e
}

/// A copy of `template` with a fresh id.
pub fn fresh(template: &Event) -> Event {
    let mut e = template.clone();
    e.id = Event::new("x", EventType::MessageSent).id;
    e
}

/// Opens a `LogStore` in `dir` with `sync`.
pub fn open(dir: &Path, sync: SyncPolicy) -> Arc<LogStore> {
    Arc::new(
        LogStore::open_with(
            dir,
            LogOptions {
                sync,
                ..LogOptions::default()
            },
        )
        .expect("open LogStore"),
    )
}

/// Four event types in turn, so a type filter keeps one event in four.
pub const KINDS: [EventType; 4] = [
    EventType::MessageSent,
    EventType::MessageReceived,
    EventType::ToolCallStarted,
    EventType::ToolCallCompleted,
];

/// The name of query-log session `i`.
pub fn session_name(i: usize) -> String {
    format!("session-{i:07}")
}

/// Fills `store` with `total` 256 B events: sessions of 1000 events appended
/// round-robin (so each session is spread over the whole log), in batches of 1000.
/// Returns the number of sessions.
pub fn build_log(store: &dyn SessionStore, total: usize) -> usize {
    let per_session = 1000.min(total);
    let sessions = total / per_session;
    for round in 0..per_session {
        let kind = KINDS[round % KINDS.len()];
        let mut batch = Vec::with_capacity(1000);
        for s in 0..sessions {
            batch.push(event_of_size(&session_name(s), kind, 256));
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
    sessions
}
