//! The public contract of `../shared/API.md`, pinned at compile time: every
//! name is imported from the crate root, and every signature, derive and
//! trait bound the contract states is used here exactly as written. A change
//! that breaks code written against API.md breaks this file.

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use sessionlog::{
    Error, Event, EventQuery, EventType, LogOptions, LogStore, MemoryStore, Result, SessionEvent,
    SessionServer, SessionStore, StreamOptions, SubscribeOptions, Subscription, SyncPolicy,
    stream_session_events, subscribe,
};

fn bounds<T: Send + Sync>() {}
fn send_static<T: Send + 'static>() {}
fn copy_eq_hash<T: Clone + Copy + std::fmt::Debug + PartialEq + Eq + std::hash::Hash>() {}
fn error_bounds<E: std::error::Error + Send + Sync + 'static + std::fmt::Display>() {}

#[test]
fn types_have_the_contracted_traits() {
    copy_eq_hash::<EventType>();
    bounds::<MemoryStore>();
    bounds::<LogStore>();
    error_bounds::<Error>();
    send_static::<Subscription>();
    fn event_stream<I: Iterator<Item = Result<Event>> + Send + 'static>(_: &I) {}
    let store: Arc<dyn SessionStore> = Arc::new(MemoryStore::default());
    event_stream(&stream_session_events(store, "s", StreamOptions::default()));
    fn clone_debug<T: Clone + std::fmt::Debug>() {}
    clone_debug::<StreamOptions>();
    clone_debug::<EventQuery>();
    clone_debug::<SubscribeOptions>();
    clone_debug::<SessionEvent>();
    clone_debug::<Event>();
    fn sync_policy<T: Clone + Copy + std::fmt::Debug + PartialEq + Eq>(_: T) {}
    sync_policy(SyncPolicy::Always);
    assert_eq!(LogOptions::default().sync, SyncPolicy::Always);
}

#[test]
fn event_type_api() {
    let all: [EventType; 28] = EventType::ALL;
    assert_eq!(all[0], EventType::SessionCreated);
    assert_eq!(all[27], EventType::ToolApprovalDenied);
    assert_eq!(EventType::RunStarted.as_str(), "run_started");
    assert_eq!(EventType::RunStarted.to_string(), "run_started");
    let parsed: std::result::Result<EventType, Error> = EventType::from_str("tool_call_failed");
    assert_eq!(parsed.unwrap(), EventType::ToolCallFailed);
    let bad = EventType::from_str("nope").unwrap_err().to_string();
    assert!(
        bad.contains("nope"),
        "the error names the bad string: {bad}"
    );
    assert_eq!(
        serde_json::to_string(&EventType::MessageSent).unwrap(),
        "\"message_sent\""
    );
}

#[test]
fn event_api_and_serde_shape() {
    let e: Event = Event::new(String::from("s"), EventType::MessageSent);
    assert!(e.id.starts_with("evt_") && e.id.len() == 36);
    assert!(
        e.id[4..]
            .chars()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
    );
    let Event {
        id: _,
        session_id,
        run_id,
        event_type: _,
        timestamp: _,
        sequence_number,
        data,
        metadata,
    } = e;
    assert_eq!(
        (session_id.as_str(), run_id, sequence_number),
        ("s", None, None)
    );
    assert!(data.is_empty() && metadata.is_empty());

    let minimal = r#"{"id":"x","session_id":"s","event_type":"run_started",
                      "timestamp":"2025-06-15T12:30:00.123456789+02:00"}"#;
    let e: Event = serde_json::from_str(minimal).unwrap();
    let json = serde_json::to_value(&e).unwrap();
    assert_eq!(json["timestamp"], "2025-06-15T10:30:00.123456789Z");
    assert_eq!(json["sequence_number"], serde_json::Value::Null);
    assert_eq!(json["run_id"], serde_json::Value::Null);
    assert_eq!(json["event_type"], "run_started");
    assert!(json["data"].is_object() && json["metadata"].is_object());
}

#[test]
fn query_fields_are_public_and_default() {
    let q = EventQuery {
        after: Some(1),
        before: Some(10),
        run_id: Some("r".into()),
        event_type: Some(EventType::RunStarted),
        since: Some(SystemTime::UNIX_EPOCH),
        limit: Some(5),
        wait_timeout: Some(Duration::from_millis(1)),
    };
    assert_eq!(q.limit, Some(5));
    let d = EventQuery::default();
    assert!(d.after.is_none() && d.limit.is_none() && d.wait_timeout.is_none());
}

#[test]
fn store_constructors_and_options() {
    let dir = tempfile::tempdir().unwrap();
    let path: &Path = dir.path();
    let opts = LogOptions {
        sync: SyncPolicy::Never,
        ..LogOptions::default()
    };
    let store: LogStore = LogStore::open_with(path.join("a"), opts).unwrap();
    let _: Result<()> = store.close();
    let store: LogStore = LogStore::open(path.join("b")).unwrap();
    assert!(matches!(
        LogStore::open(path.join("b")),
        Err(Error::Locked { .. })
    ));
    drop(store);
    let _memory: MemoryStore = MemoryStore::new();
    let defaults = StreamOptions::default();
    assert_eq!((defaults.after, defaults.limit), (0, 100));
    assert_eq!(defaults.poll_interval, Duration::from_millis(250));
    assert!(
        defaults.wait_timeout.is_none()
            && defaults.run_id.is_none()
            && defaults.event_type.is_none()
    );
}

#[test]
fn subscription_api() {
    let store = Arc::new(MemoryStore::new());
    let stored = store
        .append_event_with_sequence(Event::new("s", EventType::RunStarted))
        .unwrap();
    let opts = SubscribeOptions {
        from_sequence: 0,
        run_id: None,
        event_type: None,
    };
    let sub: Subscription = subscribe(store.clone() as Arc<dyn SessionStore>, "s", opts).unwrap();
    let got: Option<SessionEvent> = sub.recv_timeout(Duration::from_secs(10));
    let SessionEvent { session_id, event } = got.unwrap();
    assert_eq!((session_id.as_str(), event), ("s", stored));
    let mut iter = sub;
    let _: Option<SessionEvent> = if false { iter.next() } else { None };
    iter.unsubscribe();
    assert_eq!(
        Arc::strong_count(&store),
        1,
        "unsubscribe released the store"
    );
}

/// `SessionServer::subscribe(&self, SubscribeOptions) -> Result<Subscription>` exists.
#[allow(dead_code)]
fn server_subscribe(server: &SessionServer) -> Result<Subscription> {
    server.subscribe(SubscribeOptions::default())
}
