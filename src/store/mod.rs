//! The store contract: the [`SessionStore`] trait every store implements, the
//! input validation all stores share, and the long-poll loop built on
//! [`notify`].

mod longpoll;
pub mod notify;
mod validate;

pub(crate) use longpoll::long_poll;
pub use notify::{SessionNotifier, Watch};
pub use validate::MAX_NESTING;
pub(crate) use validate::{
    DEFAULT_MAX_EVENT_SIZE, check_size, validate_batch, validate_fields, validate_session_id,
};

use crate::error::Result;
use crate::event::Event;
use crate::query::EventQuery;

/// A store of sessions' event logs.
///
/// Semantics every store keeps (the conformance suite, `sessionlog::conformance`
/// behind the `conformance` feature, checks them):
///
/// - Sequences are per session, start at 1 and grow by exactly 1 per newly
///   stored event, with no gap or reuse under any number of concurrent
///   appenders; a caller's `sequence_number` is overwritten.
/// - Assigning the sequence and storing the event are one atomic step.
/// - An event whose `id` is already stored (in any session) is not stored
///   again: the call returns the stored original.
/// - `append_events` stores all of the batch or nothing.
/// - `get_events` returns matches oldest first, all filters ANDed, `limit` last;
///   with `wait_timeout` it long-polls when the result would be empty.
/// - Bad input is an `Err` that changes nothing.
///
/// ```
/// use sessionlog::{Event, EventQuery, EventType, MemoryStore, SessionStore};
/// let store = MemoryStore::new();
/// let a = store.append_event_with_sequence(Event::new("s1", EventType::SessionCreated))?;
/// let b = store.append_event_with_sequence(Event::new("s1", EventType::MessageSent))?;
/// assert_eq!((a.sequence_number, b.sequence_number), (Some(1), Some(2)));
/// let page = store.get_events("s1", &EventQuery::new().after(1))?;
/// assert_eq!(page, vec![b]);
/// assert_eq!(store.get_latest_sequence("s1")?, 2);
/// # Ok::<(), sessionlog::Error>(())
/// ```
pub trait SessionStore: Send + Sync {
    /// Appends one event, assigning the session's next sequence number, and
    /// returns it as stored (or the stored original when its id is known).
    fn append_event_with_sequence(&self, event: Event) -> Result<Event>;

    /// Appends a batch atomically; one result per input, in input order.
    fn append_events(&self, events: Vec<Event>) -> Result<Vec<Event>>;

    /// The session's events matching `query`, oldest first.
    fn get_events(&self, session_id: &str, query: &EventQuery) -> Result<Vec<Event>>;

    /// The session's highest sequence number, 0 when it has no events.
    fn get_latest_sequence(&self, session_id: &str) -> Result<u64>;

    /// A wake-up channel for appends to `session_id`, or `None` when the store
    /// cannot notify (subscribers then fall back to polling). The default is `None`.
    fn watch(&self, session_id: &str) -> Option<Watch> {
        let _ = session_id;
        None
    }
}
