//! [`MemoryStore`]: the in-memory reference store.
//!
//! Each session is a vector whose slot `i` holds sequence `i + 1`, so a
//! cursor (`after`/`before`) is an index computation and a query touches only
//! the events it returns or filters out inside its range; other sessions are
//! never looked at. One `RwLock` makes sequence assignment, the duplicate
//! check and the insert a single atomic step; readers share it, and long-poll
//! waiters never hold it while they sleep.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::Arc;

use parking_lot::RwLock;

use crate::error::Result;
use crate::event::Event;
use crate::query::EventQuery;
use crate::store::{
    DEFAULT_MAX_EVENT_SIZE, SessionNotifier, SessionStore, Watch, long_poll, validate_batch,
    validate_session_id,
};

/// The in-memory store: every [`SessionStore`] guarantee except durability.
///
/// ```
/// use std::sync::Arc;
/// use sessionlog::{Event, EventQuery, EventType, MemoryStore, SessionStore};
/// let store = Arc::new(MemoryStore::new());
/// let stored = store.append_event_with_sequence(Event::new("s", EventType::RunStarted))?;
/// assert_eq!(stored.sequence_number, Some(1));
/// // Appending the same id again returns the original, unchanged.
/// assert_eq!(store.append_event_with_sequence(stored.clone())?, stored);
/// assert_eq!(store.get_events("s", &EventQuery::new())?.len(), 1);
/// # Ok::<(), sessionlog::Error>(())
/// ```
pub struct MemoryStore {
    inner: RwLock<Inner>,
    notifier: Arc<SessionNotifier>,
    max_event_size: usize,
}

#[derive(Default)]
struct Inner {
    /// Per session, slot `i` holds the event with sequence `i + 1`.
    sessions: HashMap<String, Vec<Arc<Event>>>,
    /// Every stored event by id, for idempotency across sessions.
    ids: HashMap<String, Arc<Event>>,
}

impl Default for MemoryStore {
    fn default() -> MemoryStore {
        MemoryStore::new()
    }
}

impl MemoryStore {
    /// An empty store with the default 16 MiB event size limit.
    pub fn new() -> MemoryStore {
        MemoryStore::with_max_event_size(DEFAULT_MAX_EVENT_SIZE)
    }

    /// An empty store that rejects events whose encoded size is over `max_event_size` bytes.
    pub fn with_max_event_size(max_event_size: usize) -> MemoryStore {
        MemoryStore {
            inner: RwLock::new(Inner::default()),
            notifier: Arc::new(SessionNotifier::new()),
            max_event_size,
        }
    }

    /// The number of events stored, over all sessions.
    pub fn len(&self) -> usize {
        self.inner.read().ids.len()
    }

    /// Whether no event is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Answers `query` now; also returns the session's latest sequence.
    fn query_now(&self, session_id: &str, query: &EventQuery) -> (Vec<Event>, u64) {
        let inner = self.inner.read();
        let Some(events) = inner.sessions.get(session_id) else {
            return (Vec::new(), 0);
        };
        let latest = events.len() as u64;
        let Some((first, last)) = query.sequence_range() else {
            return (Vec::new(), latest);
        };
        let start = usize::try_from(first - 1)
            .unwrap_or(usize::MAX)
            .min(events.len());
        let end = usize::try_from(last)
            .unwrap_or(usize::MAX)
            .min(events.len());
        let found = events[start..end]
            .iter()
            .filter(|e| query.matches_fields(e))
            .take(query.max_results())
            .map(|e| Event::clone(e))
            .collect();
        (found, latest)
    }
}

impl Inner {
    /// Stores `event` (validated) unless its id is known; returns the stored
    /// event and whether it is new.
    fn insert(&mut self, mut event: Event) -> (Event, bool) {
        match self.ids.entry(event.id.clone()) {
            Entry::Occupied(existing) => (Event::clone(existing.get()), false),
            Entry::Vacant(slot) => {
                let log = self.sessions.entry(event.session_id.clone()).or_default();
                event.sequence_number = Some(log.len() as u64 + 1);
                let stored = Arc::new(event);
                log.push(Arc::clone(&stored));
                slot.insert(stored);
                let out = Event::clone(log.last().expect("just pushed"));
                (out, true)
            }
        }
    }

    fn latest(&self, session_id: &str) -> u64 {
        self.sessions.get(session_id).map_or(0, |v| v.len() as u64)
    }
}

impl SessionStore for MemoryStore {
    fn append_event_with_sequence(&self, event: Event) -> Result<Event> {
        let mut out = self.append_events(vec![event])?;
        Ok(out.pop().expect("one result per input"))
    }

    fn append_events(&self, events: Vec<Event>) -> Result<Vec<Event>> {
        // Validation first: one bad event rejects the batch before anything changes.
        validate_batch(&events, self.max_event_size)?;
        let mut results = Vec::with_capacity(events.len());
        let mut touched: Vec<(String, u64)> = Vec::new();
        {
            let mut inner = self.inner.write();
            for event in events {
                let (stored, new) = inner.insert(event);
                if new && !touched.iter().any(|(s, _)| *s == stored.session_id) {
                    touched.push((stored.session_id.clone(), 0));
                }
                results.push(stored);
            }
            for (session, latest) in &mut touched {
                *latest = inner.latest(session);
            }
        }
        // Wake waiters only after the lock is released: they query right away.
        for (session, latest) in &touched {
            self.notifier.publish(session, *latest);
        }
        Ok(results)
    }

    fn get_events(&self, session_id: &str, query: &EventQuery) -> Result<Vec<Event>> {
        validate_session_id(session_id)?;
        long_poll(&self.notifier, session_id, query, |q| {
            Ok(self.query_now(session_id, q))
        })
    }

    fn get_latest_sequence(&self, session_id: &str) -> Result<u64> {
        validate_session_id(session_id)?;
        Ok(self.inner.read().latest(session_id))
    }

    fn watch(&self, session_id: &str) -> Option<Watch> {
        Some(self.notifier.watch(session_id))
    }
}
