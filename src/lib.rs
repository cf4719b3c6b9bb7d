//! # sessionlog
//!
//! An embedded, durable, append-only event log for AI-agent sessions.
//!
//! Every session is a stream of [`Event`]s, each stamped with a per-session
//! sequence number, appended idempotently (by event id), read by cursor
//! ([`EventQuery`]), waited on (long-poll) and followed live by subscribers.
//!
//! The layers, bottom up:
//! - [`format`](mod@format): the on-disk encoding (specified in `format/README.md`);
//! - [`store`]: the [`SessionStore`] contract and what every store shares;
//! - [`MemoryStore`]: the in-memory reference store;
//! - the runtime on top: streams, subscriptions and the `SessionServer`.
//!
//! ```
//! use sessionlog::{Event, EventQuery, EventType, MemoryStore, SessionStore};
//! let store = MemoryStore::new();
//! store.append_event_with_sequence(Event::new("s1", EventType::SessionCreated))?;
//! let events = store.get_events("s1", &EventQuery::new().after(0).limit(100))?;
//! assert_eq!(events[0].sequence_number, Some(1));
//! # Ok::<(), sessionlog::Error>(())
//! ```

#![warn(missing_docs)]

mod error;
mod event;
mod query;
mod time;

pub mod engine;
pub mod format;
mod memory;
pub mod runtime;
pub mod store;

#[cfg(feature = "conformance")]
pub mod conformance;

pub use engine::{BackupReport, LogOptions, LogStore, RecoveryMode, SyncPolicy};
pub use error::{Error, Result};
pub use event::{Event, EventType};
pub use memory::MemoryStore;
pub use query::EventQuery;
pub use runtime::{
    EventStream, SessionEvent, SessionServer, StreamOptions, SubscribeOptions, Subscription,
    stream_session_events, subscribe,
};
pub use store::SessionStore;

/// Timestamp conversions used by the stores and tools (RFC 3339, Unix nanoseconds).
pub mod timestamp {
    pub use crate::time::{format_rfc3339, from_unix_nanos, parse_rfc3339, to_unix_nanos};
}

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
