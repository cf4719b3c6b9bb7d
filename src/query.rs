//! [`EventQuery`]: the filters of `get_events`, and how a store applies them.

use std::time::{Duration, SystemTime};

use crate::event::{Event, EventType};

/// Which events of a session `get_events` returns. Every filter is optional
/// and they combine with AND; `limit` applies last, to the oldest-first list.
///
/// ```
/// use std::time::Duration;
/// use sessionlog::{EventQuery, EventType};
/// let q = EventQuery::new()
///     .after(41)
///     .event_type(EventType::MessageSent)
///     .limit(100)
///     .wait_timeout(Duration::from_secs(5));
/// assert_eq!(q.after, Some(41));
/// assert_eq!(q.limit, Some(100));
/// ```
#[derive(Clone, Debug, Default)]
pub struct EventQuery {
    /// Only events with `sequence_number > after`.
    pub after: Option<u64>,
    /// Only events with `sequence_number < before`.
    pub before: Option<u64>,
    /// Only events of this run.
    pub run_id: Option<String>,
    /// Only events of this type.
    pub event_type: Option<EventType>,
    /// Only events with `timestamp > since` (exclusive, to the nanosecond).
    pub since: Option<SystemTime>,
    /// At most this many events, the oldest first; `Some(0)` returns `[]` at once.
    pub limit: Option<usize>,
    /// Long-poll: when the result would be empty, wait up to this long for a matching event.
    pub wait_timeout: Option<Duration>,
}

impl EventQuery {
    /// A query that matches every event of the session.
    pub fn new() -> EventQuery {
        EventQuery::default()
    }

    /// Only `sequence_number > after`.
    pub fn after(mut self, after: u64) -> EventQuery {
        self.after = Some(after);
        self
    }

    /// Only `sequence_number < before`.
    pub fn before(mut self, before: u64) -> EventQuery {
        self.before = Some(before);
        self
    }

    /// Only events of run `run_id`.
    pub fn run_id(mut self, run_id: impl Into<String>) -> EventQuery {
        self.run_id = Some(run_id.into());
        self
    }

    /// Only events of type `event_type`.
    pub fn event_type(mut self, event_type: EventType) -> EventQuery {
        self.event_type = Some(event_type);
        self
    }

    /// Only events with `timestamp > since`.
    pub fn since(mut self, since: SystemTime) -> EventQuery {
        self.since = Some(since);
        self
    }

    /// At most `limit` events.
    pub fn limit(mut self, limit: usize) -> EventQuery {
        self.limit = Some(limit);
        self
    }

    /// Long-poll for up to `timeout` when nothing matches yet.
    pub fn wait_timeout(mut self, timeout: Duration) -> EventQuery {
        self.wait_timeout = Some(timeout);
        self
    }

    /// The inclusive sequence range `after`/`before` allow, or `None` when it is
    /// empty (no event can ever match: the call returns `[]` at once).
    pub fn sequence_range(&self) -> Option<(u64, u64)> {
        let first = self.after.unwrap_or(0).checked_add(1)?;
        let last = match self.before {
            Some(0) => return None,
            Some(b) => b - 1,
            None => u64::MAX,
        };
        (first <= last).then_some((first, last))
    }

    /// Whether the query can never return anything (empty range or `limit: Some(0)`).
    pub fn is_empty_by_construction(&self) -> bool {
        self.limit == Some(0) || self.sequence_range().is_none()
    }

    /// Whether `event` passes the non-sequence filters (`run_id`, `event_type`, `since`).
    pub fn matches_fields(&self, event: &Event) -> bool {
        self.event_type.is_none_or(|t| event.event_type == t)
            && self
                .run_id
                .as_deref()
                .is_none_or(|r| event.run_id.as_deref() == Some(r))
            && self.since.is_none_or(|since| event.timestamp > since)
    }

    /// The wait to use for long-poll: `None` for no wait (`None` or zero).
    pub fn effective_wait(&self) -> Option<Duration> {
        self.wait_timeout.filter(|d| !d.is_zero())
    }

    /// The limit as a count (`usize::MAX` when unset).
    pub fn max_results(&self) -> usize {
        self.limit.unwrap_or(usize::MAX)
    }
}
