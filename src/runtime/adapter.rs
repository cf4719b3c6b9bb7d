//! [`ProviderAdapter`]: the interface to an AI provider that executes runs,
//! and [`AdapterEvent`], what it emits while it does.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::SystemTime;

use serde_json::{Map, Value};

use crate::error::Result;
use crate::event::{Event, EventType};

/// An event type as an adapter gives it: already an [`EventType`], or a
/// string that the runtime maps to one (an unknown string becomes
/// `error_occurred`, with the original kept in `data["original_type"]`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AdapterEventType {
    /// A known type.
    Known(EventType),
    /// A type by name, such as `"message_streamed"`.
    Named(String),
}

impl From<EventType> for AdapterEventType {
    fn from(t: EventType) -> AdapterEventType {
        AdapterEventType::Known(t)
    }
}

impl From<&str> for AdapterEventType {
    fn from(name: &str) -> AdapterEventType {
        AdapterEventType::Named(name.to_string())
    }
}

impl From<String> for AdapterEventType {
    fn from(name: String) -> AdapterEventType {
        AdapterEventType::Named(name)
    }
}

/// One event emitted by an adapter during a run, before it is stored.
///
/// ```
/// use sessionlog::EventType;
/// use sessionlog::runtime::AdapterEvent;
/// let e = AdapterEvent::new(EventType::MessageStreamed)
///     .with_data("delta", "Hel")
///     .with_metadata("model", "m-1");
/// let named = AdapterEvent::new("token_usage_updated").with_data("input_tokens", 12);
/// # let _ = (e, named);
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct AdapterEvent {
    /// What happened.
    pub event_type: AdapterEventType,
    /// The payload, stored as the event's `data`.
    pub data: Map<String, Value>,
    /// When it happened, as the provider says; `None` means "now, when stored".
    pub timestamp: Option<SystemTime>,
    /// Merged into the stored event's `metadata` (`provider` is always overwritten
    /// with the adapter's provider name).
    pub metadata: Map<String, Value>,
}

impl AdapterEvent {
    /// An event of `event_type` (an [`EventType`] or a name), with no data,
    /// metadata or timestamp.
    pub fn new(event_type: impl Into<AdapterEventType>) -> AdapterEvent {
        AdapterEvent {
            event_type: event_type.into(),
            data: Map::new(),
            timestamp: None,
            metadata: Map::new(),
        }
    }

    /// Inserts one `data` entry (builder style).
    pub fn with_data(mut self, key: impl Into<String>, value: impl Into<Value>) -> AdapterEvent {
        self.data.insert(key.into(), value.into());
        self
    }

    /// Inserts one `metadata` entry (builder style).
    pub fn with_metadata(
        mut self,
        key: impl Into<String>,
        value: impl Into<Value>,
    ) -> AdapterEvent {
        self.metadata.insert(key.into(), value.into());
        self
    }

    /// Sets the provider's timestamp (builder style).
    pub fn with_timestamp(mut self, timestamp: SystemTime) -> AdapterEvent {
        self.timestamp = Some(timestamp);
        self
    }
}

/// A run's cancellation flag, shared by the runtime and the adapter.
///
/// [`SessionServer::cancel_run`](crate::SessionServer::cancel_run) sets it
/// before calling [`ProviderAdapter::cancel`], so an adapter may either react
/// to `cancel` or check [`is_cancelled`](CancelToken::is_cancelled) as it goes.
#[derive(Clone, Debug, Default)]
pub struct CancelToken(Arc<AtomicBool>);

impl CancelToken {
    /// A token that is not cancelled.
    pub fn new() -> CancelToken {
        CancelToken::default()
    }

    /// Marks the run cancelled.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::Release);
    }

    /// Whether the run was asked to stop.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// What an adapter is given to execute one run.
#[derive(Clone, Debug)]
pub struct RunContext {
    /// The session the run belongs to.
    pub session_id: String,
    /// The run's id (every stored event of the run carries it).
    pub run_id: String,
    /// The run's input (also stored as the `message_sent` event's data).
    pub input: Map<String, Value>,
    /// Set when the run is cancelled.
    pub cancel: CancelToken,
}

/// The callback through which an adapter emits events during a run.
pub trait EventEmitter: Sync {
    /// Stores `event` as part of the run (see [`SessionManager`](super::SessionManager)
    /// for the rules) and returns it as stored, with its sequence number.
    /// An error means it was not stored; the adapter may stop the run with it.
    fn emit(&self, event: AdapterEvent) -> Result<Event>;
}

/// An AI provider that executes runs.
///
/// `execute` runs one run to its end on the calling thread, emitting events
/// through `events` as they happen, and returns the run's output or an error.
/// `cancel` asks a run in flight to stop: `execute` should then return soon,
/// preferably with [`Error::Cancelled`](crate::Error::Cancelled).
///
/// ```
/// use serde_json::{Map, Value};
/// use sessionlog::{EventType, Result};
/// use sessionlog::runtime::{AdapterEvent, EventEmitter, ProviderAdapter, RunContext};
///
/// struct Echo;
/// impl ProviderAdapter for Echo {
///     fn provider_name(&self) -> &str { "echo" }
///     fn execute(&self, run: &RunContext, events: &dyn EventEmitter) -> Result<Map<String, Value>> {
///         let text = run.input.get("content").cloned().unwrap_or(Value::Null);
///         events.emit(AdapterEvent::new(EventType::MessageReceived).with_data("content", text.clone()))?;
///         Ok(Map::from_iter([("content".to_string(), text)]))
///     }
///     fn cancel(&self, _run_id: &str) -> Result<()> { Ok(()) }
/// }
/// ```
pub trait ProviderAdapter: Send + Sync {
    /// The provider's name, stored as `metadata["provider"]` of every event.
    fn provider_name(&self) -> &str;

    /// Executes one run; returns its output.
    fn execute(&self, run: &RunContext, events: &dyn EventEmitter) -> Result<Map<String, Value>>;

    /// Asks the run `run_id`, in flight, to stop.
    fn cancel(&self, run_id: &str) -> Result<()>;
}
