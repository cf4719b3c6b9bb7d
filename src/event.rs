//! [`Event`] and [`EventType`]: what a session's log is made of.

use std::fmt;
use std::str::FromStr;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::Error;
use crate::time;

macro_rules! event_types {
    ($($variant:ident => $name:literal,)*) => {
        /// The 28 kinds of session event, serialised as snake_case strings.
        ///
        /// ```
        /// use sessionlog::EventType;
        /// assert_eq!(EventType::RunStarted.as_str(), "run_started");
        /// assert_eq!("run_started".parse::<EventType>().unwrap(), EventType::RunStarted);
        /// assert_eq!(EventType::ALL.len(), 28);
        /// ```
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum EventType {
            $(
                #[doc = concat!("`", $name, "`")]
                $variant,
            )*
        }

        impl EventType {
            /// Every event type, in the order of the contract.
            pub const ALL: [EventType; 28] = [$(EventType::$variant,)*];

            /// The snake_case name (`"run_started"`).
            pub fn as_str(&self) -> &'static str {
                match self {
                    $(EventType::$variant => $name,)*
                }
            }
        }
    };
}

event_types! {
    SessionCreated => "session_created",
    SessionStarted => "session_started",
    SessionPaused => "session_paused",
    SessionResumed => "session_resumed",
    SessionCompleted => "session_completed",
    SessionFailed => "session_failed",
    SessionCancelled => "session_cancelled",
    RunStarted => "run_started",
    RunCompleted => "run_completed",
    RunFailed => "run_failed",
    RunCancelled => "run_cancelled",
    RunTimeout => "run_timeout",
    MessageSent => "message_sent",
    MessageReceived => "message_received",
    MessageStreamed => "message_streamed",
    ToolCallStarted => "tool_call_started",
    ToolCallCompleted => "tool_call_completed",
    ToolCallFailed => "tool_call_failed",
    ErrorOccurred => "error_occurred",
    ErrorRecovered => "error_recovered",
    TokenUsageUpdated => "token_usage_updated",
    TurnCompleted => "turn_completed",
    WorkspaceSnapshotTaken => "workspace_snapshot_taken",
    WorkspaceDiffComputed => "workspace_diff_computed",
    PolicyViolation => "policy_violation",
    ToolApprovalRequested => "tool_approval_requested",
    ToolApprovalGranted => "tool_approval_granted",
    ToolApprovalDenied => "tool_approval_denied",
}

impl EventType {
    /// The position of this type in [`EventType::ALL`] (its on-disk code).
    pub fn code(&self) -> u8 {
        // ALL is tiny and in declaration order, so the discriminant is the index.
        *self as u8
    }

    /// The type whose [`code`](EventType::code) is `code`, if any.
    pub fn from_code(code: u8) -> Option<EventType> {
        EventType::ALL.get(code as usize).copied()
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for EventType {
    type Err = Error;

    fn from_str(s: &str) -> Result<EventType, Error> {
        EventType::ALL
            .iter()
            .find(|t| t.as_str() == s)
            .copied()
            .ok_or_else(|| Error::UnknownEventType(s.to_string()))
    }
}

/// One event of a session: the unit the log stores.
///
/// `id` is the idempotency key (unique in the whole store), `session_id` the
/// stream it belongs to, and `sequence_number` is assigned by the store when
/// the event is appended (a caller's value is ignored).
///
/// ```
/// use sessionlog::{Event, EventType};
/// let mut e = Event::new("sess-1", EventType::MessageSent);
/// e.data.insert("text".into(), "hello".into());
/// assert!(e.id.starts_with("evt_") && e.id.len() == 36);
/// assert_eq!(e.sequence_number, None);
/// let json = serde_json::to_string(&e).unwrap();
/// let back: Event = serde_json::from_str(&json).unwrap();
/// assert_eq!(back, e);
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Idempotency key, unique in the whole store.
    pub id: String,
    /// The stream key; must be non-empty.
    pub session_id: String,
    /// The run this event belongs to, if any.
    #[serde(default)]
    pub run_id: Option<String>,
    /// What happened.
    pub event_type: EventType,
    /// When it happened; kept to the nanosecond (RFC 3339 in JSON).
    #[serde(with = "time::rfc3339")]
    pub timestamp: SystemTime,
    /// The per-session sequence number: `None` until stored, then assigned by the store.
    #[serde(default)]
    pub sequence_number: Option<u64>,
    /// The event's payload.
    #[serde(default)]
    pub data: Map<String, Value>,
    /// Free-form metadata (the runtime puts `provider` here).
    #[serde(default)]
    pub metadata: Map<String, Value>,
}

impl Event {
    /// A new event of `event_type` in `session_id`: a fresh random id
    /// (`"evt_"` + 32 lowercase hex digits), timestamp now, no run, no
    /// sequence, empty `data` and `metadata`.
    pub fn new(session_id: impl Into<String>, event_type: EventType) -> Event {
        Event {
            id: format!("evt_{:032x}", rand::random::<u128>()),
            session_id: session_id.into(),
            run_id: None,
            event_type,
            timestamp: SystemTime::now(),
            sequence_number: None,
            data: Map::new(),
            metadata: Map::new(),
        }
    }

    /// Sets `run_id` (builder style).
    pub fn with_run(mut self, run_id: impl Into<String>) -> Event {
        self.run_id = Some(run_id.into());
        self
    }

    /// Sets `id` (builder style).
    pub fn with_id(mut self, id: impl Into<String>) -> Event {
        self.id = id.into();
        self
    }

    /// Inserts one `data` entry (builder style).
    pub fn with_data(mut self, key: impl Into<String>, value: impl Into<Value>) -> Event {
        self.data.insert(key.into(), value.into());
        self
    }

    /// Sets `timestamp` (builder style).
    pub fn with_timestamp(mut self, timestamp: SystemTime) -> Event {
        self.timestamp = timestamp;
        self
    }
}
