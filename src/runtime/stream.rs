//! [`stream_session_events`]: a cursor stream that follows one session forever.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::error::Result;
use crate::event::{Event, EventType};
use crate::query::EventQuery;
use crate::store::SessionStore;

/// How [`stream_session_events`] reads: where it starts, its page size, how it
/// waits for new events, and its filters.
///
/// The default is `after: 0`, `limit: 100`, `poll_interval: 250 ms`, no
/// long-poll and no filters.
///
/// ```
/// use std::time::Duration;
/// use sessionlog::StreamOptions;
/// let opts = StreamOptions {
///     after: 41,
///     wait_timeout: Some(Duration::from_secs(5)),
///     ..StreamOptions::default()
/// };
/// assert_eq!(opts.limit, 100);
/// ```
#[derive(Clone, Debug)]
pub struct StreamOptions {
    /// The start cursor, exclusive: the first event yielded has a greater sequence.
    pub after: u64,
    /// The page size of each query (0 is taken as 1).
    pub limit: usize,
    /// How long to sleep after an empty page when `wait_timeout` is `None`.
    pub poll_interval: Duration,
    /// Long-poll for up to this long after an empty page instead of sleeping
    /// (`Some(0)` is taken as `None`). Stores without long-poll answer at once;
    /// the stream then sleeps the rest of `poll_interval` so it never spins.
    pub wait_timeout: Option<Duration>,
    /// Only events of this run.
    pub run_id: Option<String>,
    /// Only events of this type.
    pub event_type: Option<EventType>,
}

impl Default for StreamOptions {
    fn default() -> StreamOptions {
        StreamOptions {
            after: 0,
            limit: 100,
            poll_interval: Duration::from_millis(250),
            wait_timeout: None,
            run_id: None,
            event_type: None,
        }
    }
}

/// The iterator of [`stream_session_events`]: every matching event after the
/// cursor, exactly once, in sequence order, blocking for new ones.
///
/// It never ends on its own. A store error is yielded as an `Err` item, and
/// the next call retries from the same cursor, so nothing is skipped.
pub struct EventStream {
    store: Arc<dyn SessionStore>,
    session_id: String,
    opts: StreamOptions,
    /// The sequence of the last event yielded (or the start cursor).
    yielded: u64,
    /// Where the next query starts: past `buffer` and past non-matching events.
    scanned: u64,
    buffer: VecDeque<Event>,
}

/// Follows `session_id` from `opts.after`: yields each matching stored event
/// exactly once, in sequence order, then blocks for new ones (long-polling
/// with `wait_timeout` where the store supports it, else polling every
/// `poll_interval`).
///
/// ```
/// use std::sync::Arc;
/// use sessionlog::{stream_session_events, Event, EventType, MemoryStore, SessionStore, StreamOptions};
/// let store = Arc::new(MemoryStore::new());
/// store.append_event_with_sequence(Event::new("s", EventType::SessionCreated))?;
/// store.append_event_with_sequence(Event::new("s", EventType::SessionStarted))?;
/// let mut stream = stream_session_events(store, "s", StreamOptions::default());
/// let first = stream.next().unwrap()?;
/// assert_eq!(first.sequence_number, Some(1));
/// assert_eq!(stream.next().unwrap()?.event_type, EventType::SessionStarted);
/// assert_eq!(stream.cursor(), 2);
/// # Ok::<(), sessionlog::Error>(())
/// ```
pub fn stream_session_events(
    store: Arc<dyn SessionStore>,
    session_id: impl Into<String>,
    opts: StreamOptions,
) -> EventStream {
    let mut opts = opts;
    opts.limit = opts.limit.max(1);
    opts.wait_timeout = opts.wait_timeout.filter(|d| !d.is_zero());
    EventStream {
        store,
        session_id: session_id.into(),
        yielded: opts.after,
        scanned: opts.after,
        opts,
        buffer: VecDeque::new(),
    }
}

impl EventStream {
    /// The sequence number of the last event yielded (the start cursor before
    /// the first): pass it as `after` to resume a new stream where this one left off.
    pub fn cursor(&self) -> u64 {
        self.yielded
    }

    /// The session this stream follows.
    pub fn session_id(&self) -> &str {
        &self.session_id
    }

    fn filtered(&self) -> bool {
        self.opts.run_id.is_some() || self.opts.event_type.is_some()
    }

    /// Reads the next page after `scanned` into `buffer`; returns whether it found any.
    fn fetch(&mut self, wait: Option<Duration>) -> Result<bool> {
        // With filters, the latest sequence read *before* the query bounds what
        // the query has seen: a short page then proves nothing up to it
        // matched, so the next query starts past it instead of rescanning.
        let seen = if self.filtered() {
            self.store.get_latest_sequence(&self.session_id)?
        } else {
            0
        };
        let query = EventQuery {
            after: Some(self.scanned),
            run_id: self.opts.run_id.clone(),
            event_type: self.opts.event_type,
            limit: Some(self.opts.limit),
            wait_timeout: wait,
            ..EventQuery::default()
        };
        let page = self.store.get_events(&self.session_id, &query)?;
        let last = page.last().and_then(|e| e.sequence_number);
        if let Some(last) = last {
            self.scanned = self.scanned.max(last);
        }
        if page.len() < self.opts.limit {
            self.scanned = self.scanned.max(seen);
        }
        let found = !page.is_empty();
        self.buffer.extend(page);
        Ok(found)
    }

    /// Waits for new events after an empty page: long-poll, else sleep.
    fn wait_for_more(&mut self) -> Result<()> {
        let Some(wait) = self.opts.wait_timeout else {
            std::thread::sleep(self.opts.poll_interval);
            return Ok(());
        };
        let started = Instant::now();
        if self.fetch(Some(wait))? {
            return Ok(());
        }
        // A store that ignores `wait_timeout` answers at once: do not spin.
        let remaining = wait.saturating_sub(started.elapsed());
        std::thread::sleep(remaining.min(self.opts.poll_interval));
        Ok(())
    }

    fn next_event(&mut self) -> Result<Event> {
        loop {
            if let Some(event) = self.buffer.pop_front() {
                self.yielded = event.sequence_number.unwrap_or(self.yielded);
                return Ok(event);
            }
            if !self.fetch(None)? {
                self.wait_for_more()?;
            }
        }
    }
}

impl Iterator for EventStream {
    type Item = Result<Event>;

    /// The next matching event; blocks until there is one. Never `None`.
    fn next(&mut self) -> Option<Result<Event>> {
        Some(self.next_event())
    }
}

impl std::fmt::Debug for EventStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventStream")
            .field("session_id", &self.session_id)
            .field("cursor", &self.yielded)
            .field("opts", &self.opts)
            .finish_non_exhaustive()
    }
}
