//! `SessionManager`: adapter events persisted with the seeds' rules (their
//! timestamps and metadata kept, the provider set, string types mapped) and
//! the lifecycle events of `execute_run` and `run_once`.

mod runtime_support;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
use runtime_support::*;
use serde_json::{Map, Value, json};
use sessionlog::runtime::{
    AdapterEvent, CancelToken, EventEmitter, ProviderAdapter, RunContext, SessionManager,
};
use sessionlog::{Error, Event, EventQuery, EventType, Result, SessionStore};

/// An adapter that emits a fixed list of events, then returns or fails.
struct Scripted {
    events: Vec<AdapterEvent>,
    fail: Option<&'static str>,
    panic: bool,
}

impl ProviderAdapter for Scripted {
    fn provider_name(&self) -> &str {
        "scripted"
    }

    fn execute(&self, _run: &RunContext, events: &dyn EventEmitter) -> Result<Map<String, Value>> {
        for e in &self.events {
            let stored = events.emit(e.clone())?;
            assert!(
                stored.sequence_number.is_some(),
                "emit returns the stored event"
            );
        }
        if self.panic {
            panic!("scripted panic");
        }
        match self.fail {
            Some(msg) => Err(Error::Adapter(msg.into())),
            None => Ok(Map::from_iter([("answer".to_string(), json!(42))])),
        }
    }

    fn cancel(&self, _run_id: &str) -> Result<()> {
        Ok(())
    }
}

fn manager(store: &Arc<dyn SessionStore>, script: Scripted) -> SessionManager {
    SessionManager::new(store.clone(), Arc::new(script))
}

fn script(events: Vec<AdapterEvent>) -> Scripted {
    Scripted {
        events,
        fail: None,
        panic: false,
    }
}

fn run_ctx(run_id: &str, input: Map<String, Value>) -> RunContext {
    RunContext {
        session_id: "s".into(),
        run_id: run_id.into(),
        input,
        cancel: CancelToken::new(),
    }
}

pub fn adapter_timestamps_and_metadata(store: Arc<dyn SessionStore>) {
    let when = UNIX_EPOCH + Duration::new(1_700_000_000, 123_456_789);
    let events = vec![
        AdapterEvent::new(EventType::MessageStreamed)
            .with_timestamp(when)
            .with_metadata("model", "m-1")
            .with_metadata("provider", "spoofed")
            .with_data("delta", "Hel"),
        AdapterEvent::new(EventType::TokenUsageUpdated).with_data("input_tokens", 12),
    ];
    let m = manager(&store, script(events));
    let before = SystemTime::now();
    m.execute_run(&run_ctx("r1", Map::new()), &|_| {}).unwrap();
    let stored = store
        .get_events(
            "s",
            &EventQuery::new().event_type(EventType::MessageStreamed),
        )
        .unwrap();
    assert_eq!(stored[0].timestamp, when, "the adapter's timestamp is kept");
    assert_eq!(
        stored[0].metadata["model"], "m-1",
        "adapter metadata merged"
    );
    assert_eq!(
        stored[0].metadata["provider"], "scripted",
        "provider always set"
    );
    assert_eq!(stored[0].data["delta"], "Hel");
    assert_eq!(stored[0].run_id.as_deref(), Some("r1"));
    let usage = store
        .get_events(
            "s",
            &EventQuery::new().event_type(EventType::TokenUsageUpdated),
        )
        .unwrap();
    assert!(usage[0].timestamp >= before, "no adapter timestamp: now");
    assert_eq!(
        usage[0].metadata,
        Map::from_iter([("provider".to_string(), json!("scripted"))])
    );
    let all = store.get_events("s", &EventQuery::new()).unwrap();
    assert!(all.iter().all(|e| e.metadata["provider"] == "scripted"));
}

pub fn string_types_normalised(store: Arc<dyn SessionStore>) {
    let events = vec![
        AdapterEvent::new("message_streamed").with_data("delta", "x"),
        AdapterEvent::new("tool_call_started".to_string()),
        AdapterEvent::new("reasoning_trace").with_data("detail", "kept"),
    ];
    let m = manager(&store, script(events));
    m.execute_run(&run_ctx("r1", Map::new()), &|_| {}).unwrap();
    let run = run_events(&*store, "s", "r1");
    let adapter: Vec<&Event> = run[2..5].iter().collect();
    assert_eq!(adapter[0].event_type, EventType::MessageStreamed);
    assert_eq!(adapter[1].event_type, EventType::ToolCallStarted);
    assert_eq!(adapter[2].event_type, EventType::ErrorOccurred);
    assert_eq!(adapter[2].data["original_type"], "reasoning_trace");
    assert_eq!(adapter[2].data["detail"], "kept");
}

/// `execute_run`'s events, in order, and the callback sees each one stored.
pub fn execute_run_lifecycle(store: Arc<dyn SessionStore>) {
    let m = manager(
        &store,
        script(vec![AdapterEvent::new(EventType::MessageReceived)]),
    );
    let seen = Mutex::new(Vec::new());
    let input = Map::from_iter([("content".to_string(), json!("hello"))]);
    let on_event = |e: &Event| {
        let stored = store
            .get_events(
                "s",
                &EventQuery::new()
                    .after(e.sequence_number.unwrap() - 1)
                    .limit(1),
            )
            .unwrap();
        assert_eq!(stored[0], *e, "the callback runs after the event is stored");
        seen.lock().push(e.clone());
    };
    let result = m
        .execute_run(&run_ctx("r1", input.clone()), &on_event)
        .unwrap();
    assert_eq!(result.output["answer"], 42);
    let run = run_events(&*store, "s", "r1");
    assert_eq!(
        types(&run),
        [
            EventType::RunStarted,
            EventType::MessageSent,
            EventType::MessageReceived,
            EventType::RunCompleted
        ]
    );
    assert_eq!(
        run[1].data, input,
        "the input is stored before any adapter event"
    );
    assert_eq!(run[3].data["output"]["answer"], 42);
    assert_eq!(*seen.lock(), run);
}

pub fn run_once_success_and_failure(store: Arc<dyn SessionStore>) {
    let ok = manager(
        &store,
        script(vec![AdapterEvent::new(EventType::MessageReceived)]),
    );
    ok.run_once("ok", Map::new(), &|_| {}).unwrap();
    let kinds = types(&store.get_events("ok", &EventQuery::new()).unwrap());
    use EventType::*;
    assert_eq!(
        kinds,
        [
            SessionCreated,
            SessionStarted,
            RunStarted,
            MessageSent,
            MessageReceived,
            RunCompleted,
            SessionCompleted
        ]
    );
    let failing = manager(
        &store,
        Scripted {
            events: vec![],
            fail: Some("quota exceeded"),
            panic: false,
        },
    );
    let err = failing.run_once("bad", Map::new(), &|_| {}).unwrap_err();
    assert!(matches!(&err, Error::Adapter(m) if m == "quota exceeded"));
    let events = store.get_events("bad", &EventQuery::new()).unwrap();
    assert_eq!(
        types(&events),
        [
            SessionCreated,
            SessionStarted,
            RunStarted,
            MessageSent,
            RunFailed,
            SessionFailed
        ]
    );
    assert!(
        events[4].data["error"]
            .as_str()
            .unwrap()
            .contains("quota exceeded")
    );
    let panicking = manager(
        &store,
        Scripted {
            events: vec![],
            fail: None,
            panic: true,
        },
    );
    let err = panicking.run_once("boom", Map::new(), &|_| {}).unwrap_err();
    assert!(
        matches!(&err, Error::Adapter(m) if m.contains("scripted panic")),
        "{err}"
    );
    let kinds = types(&store.get_events("boom", &EventQuery::new()).unwrap());
    assert_eq!(kinds[4..], [RunFailed, SessionFailed]);
}

/// A run whose token is cancelled and that then fails is stored as cancelled.
pub fn cancelled_run_recorded_as_cancelled(store: Arc<dyn SessionStore>) {
    let m = manager(
        &store,
        Scripted {
            events: vec![],
            fail: Some("stopped"),
            panic: false,
        },
    );
    let ctx = run_ctx("r1", Map::new());
    ctx.cancel.cancel();
    assert!(matches!(m.execute_run(&ctx, &|_| {}), Err(Error::Cancelled(id)) if id == "r1"));
    assert_eq!(
        types(&run_events(&*store, "s", "r1")).last(),
        Some(&EventType::RunCancelled)
    );
}

mod memory {
    use super::*;

    #[test]
    fn timestamps_and_metadata() {
        adapter_timestamps_and_metadata(memory());
    }

    #[test]
    fn string_types() {
        string_types_normalised(memory());
    }

    #[test]
    fn execute_run() {
        execute_run_lifecycle(memory());
    }

    #[test]
    fn run_once() {
        run_once_success_and_failure(memory());
    }

    #[test]
    fn cancelled() {
        cancelled_run_recorded_as_cancelled(memory());
    }
}

/// The same checks on the durable store: timestamps and metadata survive encoding.
mod logstore {
    use super::*;
    use sessionlog::SyncPolicy::Always;

    #[test]
    fn timestamps_and_metadata() {
        let (_dir, store) = logstore(Always);
        adapter_timestamps_and_metadata(store);
    }

    #[test]
    fn string_types() {
        let (_dir, store) = logstore(Always);
        string_types_normalised(store);
    }

    #[test]
    fn run_once() {
        let (_dir, store) = logstore(Always);
        run_once_success_and_failure(store);
    }
}
