//! [`SessionManager`]: runs a [`ProviderAdapter`] and persists what happens,
//! lifecycle and adapter events alike, with sequenced appends.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::Instant;

use serde_json::{Map, Value};

use super::adapter::{AdapterEvent, AdapterEventType, EventEmitter, ProviderAdapter, RunContext};
use super::telemetry::TARGET;
use crate::error::{Error, Result};
use crate::event::{Event, EventType};
use crate::store::SessionStore;

/// The outcome of a run that completed.
#[derive(Clone, Debug, PartialEq)]
pub struct RunResult {
    /// The run's session.
    pub session_id: String,
    /// The run.
    pub run_id: String,
    /// What the adapter returned (also stored in `run_completed`'s `data["output"]`).
    pub output: Map<String, Value>,
}

/// A fresh run id: `"run_"` and 32 lowercase hex digits.
pub fn new_run_id() -> String {
    format!("run_{:032x}", rand::random::<u128>())
}

/// Executes runs through a [`ProviderAdapter`] and persists their events.
///
/// Every event goes through `append_event_with_sequence`. Adapter events are
/// stored with these rules: the adapter's timestamp is kept (now when it gives
/// none); its metadata is merged into the event's; `metadata["provider"]` is
/// always the adapter's [`provider_name`](ProviderAdapter::provider_name); a
/// type given as a string is mapped to its [`EventType`], and an unknown one is
/// stored as `error_occurred` with the original name in `data["original_type"]`.
/// Lifecycle events carry `metadata["provider"]` as well.
///
/// The `on_event` callbacks see each event after it is stored, with its
/// sequence number, on the thread that stored it.
///
/// ```
/// use std::sync::Arc;
/// use serde_json::{Map, Value};
/// use sessionlog::{EventQuery, EventType, MemoryStore, Result, SessionStore};
/// use sessionlog::runtime::{AdapterEvent, EventEmitter, ProviderAdapter, RunContext, SessionManager};
///
/// struct Hello;
/// impl ProviderAdapter for Hello {
///     fn provider_name(&self) -> &str { "hello" }
///     fn execute(&self, _run: &RunContext, events: &dyn EventEmitter) -> Result<Map<String, Value>> {
///         events.emit(AdapterEvent::new("message_received").with_data("content", "hi"))?;
///         Ok(Map::new())
///     }
///     fn cancel(&self, _run_id: &str) -> Result<()> { Ok(()) }
/// }
///
/// let store = Arc::new(MemoryStore::new());
/// let manager = SessionManager::new(store.clone(), Arc::new(Hello));
/// manager.run_once("s1", Map::new(), &|e| println!("{} {}", e.sequence_number.unwrap(), e.event_type))?;
/// let types: Vec<EventType> = store.get_events("s1", &EventQuery::new())?
///     .into_iter().map(|e| e.event_type).collect();
/// assert_eq!(types, [
///     EventType::SessionCreated, EventType::SessionStarted, EventType::RunStarted,
///     EventType::MessageSent, EventType::MessageReceived, EventType::RunCompleted,
///     EventType::SessionCompleted,
/// ]);
/// # Ok::<(), sessionlog::Error>(())
/// ```
#[derive(Clone)]
pub struct SessionManager {
    store: Arc<dyn SessionStore>,
    adapter: Arc<dyn ProviderAdapter>,
}

impl SessionManager {
    /// A manager persisting into `store` what `adapter` does.
    pub fn new(store: Arc<dyn SessionStore>, adapter: Arc<dyn ProviderAdapter>) -> SessionManager {
        SessionManager { store, adapter }
    }

    /// The store events go to.
    pub fn store(&self) -> &Arc<dyn SessionStore> {
        &self.store
    }

    /// The adapter runs go through.
    pub fn adapter(&self) -> &Arc<dyn ProviderAdapter> {
        &self.adapter
    }

    /// Stores `session_created` for `session_id`.
    pub fn start_session(&self, session_id: &str) -> Result<Event> {
        self.record(
            self.lifecycle(session_id, None, EventType::SessionCreated),
            &|_| {},
        )
    }

    /// Stores `session_started` (the session is active).
    pub fn activate_session(&self, session_id: &str) -> Result<Event> {
        self.record(
            self.lifecycle(session_id, None, EventType::SessionStarted),
            &|_| {},
        )
    }

    /// Stores `session_completed`.
    pub fn complete_session(&self, session_id: &str) -> Result<Event> {
        self.record(
            self.lifecycle(session_id, None, EventType::SessionCompleted),
            &|_| {},
        )
    }

    /// Stores `session_failed` with `data["error"] = error`.
    pub fn fail_session(&self, session_id: &str, error: &str) -> Result<Event> {
        let event = self
            .lifecycle(session_id, None, EventType::SessionFailed)
            .with_data("error", error);
        self.record(event, &|_| {})
    }

    /// Stores one adapter event of run `run_id` with the rules above; returns it as stored.
    pub fn handle_adapter_event(
        &self,
        session_id: &str,
        run_id: &str,
        event: AdapterEvent,
    ) -> Result<Event> {
        self.record(self.adapter_event(session_id, run_id, event), &|_| {})
    }

    /// Stores `run_cancelled` for run `run_id`, cancelled before it started.
    pub(crate) fn record_cancelled_while_queued(
        &self,
        session_id: &str,
        run_id: &str,
    ) -> Result<Event> {
        let event = self
            .lifecycle(session_id, Some(run_id), EventType::RunCancelled)
            .with_data("reason", "cancelled while queued");
        self.record(event, &|_| {})
    }

    /// Executes one run: stores `run_started` and `message_sent` (the input),
    /// runs the adapter, storing each event it emits, then `run_completed`
    /// (with the output) or, on error, `run_failed` (`run_cancelled` when the
    /// run was cancelled). A panicking adapter is caught and reported as
    /// [`Error::Adapter`]. Returns the output, or the run's error
    /// ([`Error::Cancelled`] when cancelled).
    pub fn execute_run(
        &self,
        run: &RunContext,
        on_event: &(dyn Fn(&Event) + Sync),
    ) -> Result<RunResult> {
        let started = Instant::now();
        let session = run.session_id.as_str();
        let run_id = Some(run.run_id.as_str());
        self.record(
            self.lifecycle(session, run_id, EventType::RunStarted),
            on_event,
        )?;
        let mut input = self.lifecycle(session, run_id, EventType::MessageSent);
        input.data = run.input.clone();
        self.record(input, on_event)?;
        let emitter = RunEmitter {
            manager: self,
            run,
            on_event,
        };
        let outcome = catch_unwind(AssertUnwindSafe(|| self.adapter.execute(run, &emitter)))
            .unwrap_or_else(|panic| Err(self.panic_error(run, panic.as_ref())));
        let millis = started.elapsed().as_millis() as u64;
        match outcome {
            Ok(output) => {
                let done = self
                    .lifecycle(session, run_id, EventType::RunCompleted)
                    .with_data("output", Value::Object(output.clone()))
                    .with_data("duration_ms", millis);
                self.record(done, on_event)?;
                Ok(RunResult {
                    session_id: run.session_id.clone(),
                    run_id: run.run_id.clone(),
                    output,
                })
            }
            Err(e) => Err(self.record_failure(run, e, millis, on_event)),
        }
    }

    /// A whole session around one run: `session_created`, `session_started`,
    /// the run (see [`execute_run`](SessionManager::execute_run), with a fresh
    /// run id), then `session_completed`, or `session_failed` when the run failed.
    pub fn run_once(
        &self,
        session_id: &str,
        input: Map<String, Value>,
        on_event: &(dyn Fn(&Event) + Sync),
    ) -> Result<RunResult> {
        self.record(
            self.lifecycle(session_id, None, EventType::SessionCreated),
            on_event,
        )?;
        self.record(
            self.lifecycle(session_id, None, EventType::SessionStarted),
            on_event,
        )?;
        let run = RunContext {
            session_id: session_id.to_string(),
            run_id: new_run_id(),
            input,
            cancel: Default::default(),
        };
        match self.execute_run(&run, on_event) {
            Ok(result) => {
                let done = self.lifecycle(session_id, None, EventType::SessionCompleted);
                self.record(done, on_event)?;
                Ok(result)
            }
            Err(e) => {
                let failed = self
                    .lifecycle(session_id, None, EventType::SessionFailed)
                    .with_data("error", e.to_string());
                self.record_best_effort(failed, on_event);
                Err(e)
            }
        }
    }

    /// Stores `run_cancelled` or `run_failed` for `error`; returns the error for the caller.
    fn record_failure(
        &self,
        run: &RunContext,
        error: Error,
        millis: u64,
        on_event: &(dyn Fn(&Event) + Sync),
    ) -> Error {
        let cancelled = matches!(error, Error::Cancelled(_)) || run.cancel.is_cancelled();
        let (event_type, error) = if cancelled {
            (
                EventType::RunCancelled,
                Error::Cancelled(run.run_id.clone()),
            )
        } else {
            (EventType::RunFailed, error)
        };
        let event = self
            .lifecycle(&run.session_id, Some(&run.run_id), event_type)
            .with_data("error", error.to_string())
            .with_data("duration_ms", millis);
        self.record_best_effort(event, on_event);
        error
    }

    /// Stores `event` while already reporting another error: a store failure
    /// here is logged, and the original error is what the caller gets.
    fn record_best_effort(&self, event: Event, on_event: &(dyn Fn(&Event) + Sync)) {
        let (session, kind) = (event.session_id.clone(), event.event_type);
        if let Err(e) = self.record(event, on_event) {
            tracing::warn!(target: TARGET, event = "record_failed", session_id = %session,
                event_type = kind.as_str(), error = %e);
        }
    }

    fn panic_error(&self, run: &RunContext, panic: &(dyn std::any::Any + Send)) -> Error {
        let message = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "non-string panic payload".to_string());
        Error::Adapter(format!(
            "provider {:?} panicked during run {} of session {}: {message}",
            self.adapter.provider_name(),
            run.run_id,
            run.session_id
        ))
    }

    /// A lifecycle event of the session (and run), stamped with the provider.
    fn lifecycle(&self, session_id: &str, run_id: Option<&str>, kind: EventType) -> Event {
        let mut event = Event::new(session_id, kind);
        event.run_id = run_id.map(str::to_string);
        event
            .metadata
            .insert("provider".into(), self.provider_value());
        event
    }

    /// The stored form of an adapter event (the rules in the type's docs).
    fn adapter_event(&self, session_id: &str, run_id: &str, source: AdapterEvent) -> Event {
        let AdapterEvent {
            event_type,
            mut data,
            timestamp,
            metadata,
        } = source;
        let kind = match event_type {
            AdapterEventType::Known(kind) => kind,
            AdapterEventType::Named(name) => match name.trim().parse::<EventType>() {
                Ok(kind) => kind,
                Err(_) => {
                    data.insert("original_type".into(), Value::String(name));
                    EventType::ErrorOccurred
                }
            },
        };
        let mut event = Event::new(session_id, kind).with_run(run_id);
        event.data = data;
        if let Some(timestamp) = timestamp {
            event.timestamp = timestamp;
        }
        event.metadata = metadata;
        event
            .metadata
            .insert("provider".into(), self.provider_value());
        event
    }

    fn provider_value(&self) -> Value {
        Value::String(self.adapter.provider_name().to_string())
    }

    /// Appends `event` and shows the stored result to `on_event`.
    fn record(&self, event: Event, on_event: &(dyn Fn(&Event) + Sync)) -> Result<Event> {
        let stored = self.store.append_event_with_sequence(event)?;
        on_event(&stored);
        Ok(stored)
    }
}

impl std::fmt::Debug for SessionManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionManager")
            .field("provider", &self.adapter.provider_name())
            .finish_non_exhaustive()
    }
}

/// The [`EventEmitter`] handed to the adapter for one run.
struct RunEmitter<'a> {
    manager: &'a SessionManager,
    run: &'a RunContext,
    on_event: &'a (dyn Fn(&Event) + Sync),
}

impl EventEmitter for RunEmitter<'_> {
    fn emit(&self, event: AdapterEvent) -> Result<Event> {
        let event = self
            .manager
            .adapter_event(&self.run.session_id, &self.run.run_id, event);
        self.manager.record(event, self.on_event)
    }
}
