//! The worker behind a [`Subscription`](super::Subscription): one cursor walk
//! over a session, from the backlog into live delivery.
//!
//! The loop: read a page after the cursor, send each event into the
//! subscriber's bounded buffer (waiting while it is full), and when a page
//! comes back short (caught up), sleep until the store's [`Watch`] says
//! something was appended. The watch is registered *before* the first read,
//! and it keeps one pending wake-up, so an append that lands between a read
//! and the sleep still wakes the worker: there is no window to lose an event
//! in. Stores without a watch are polled (with long-poll where they support it).

use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, select};

use super::subscription::{SessionEvent, SubscribeOptions, SubscriptionConfig};
use super::telemetry::TARGET;
use crate::error::{Error, Result};
use crate::event::{Event, EventType};
use crate::query::EventQuery;
use crate::store::{SessionStore, Watch};

/// The first wait after a store error; it doubles on each further error.
const INITIAL_BACKOFF: Duration = Duration::from_millis(10);

/// The stop signal: the subscription drops its sender, which disconnects this.
pub(crate) struct Stop(pub(crate) Receiver<()>);

/// A subscription's worker state: the cursor, the filters and the two channels.
pub(crate) struct Follower {
    store: Arc<dyn SessionStore>,
    session_id: String,
    run_id: Option<String>,
    event_type: Option<EventType>,
    /// Every event up to here was delivered or did not match.
    cursor: u64,
    page_size: usize,
    poll_interval: Duration,
    max_backoff: Duration,
    tx: Sender<SessionEvent>,
    stop: Stop,
}

/// One page read after the cursor.
struct Page {
    events: Vec<Event>,
    /// The page was full: more may be there already, read again at once.
    full: bool,
}

impl Follower {
    pub(crate) fn new(
        store: Arc<dyn SessionStore>,
        session_id: String,
        opts: &SubscribeOptions,
        config: &SubscriptionConfig,
        tx: Sender<SessionEvent>,
        stop: Stop,
    ) -> Follower {
        Follower {
            store,
            session_id,
            run_id: opts.run_id.clone(),
            event_type: opts.event_type,
            cursor: opts.from_sequence.saturating_sub(1),
            page_size: config.page_size.max(1),
            poll_interval: config.poll_interval,
            max_backoff: config.max_retry_backoff.max(INITIAL_BACKOFF),
            tx,
            stop,
        }
    }

    /// Runs until stopped (returns `None`) or until the store is closed or
    /// failed for good (returns that error). Consumes the follower, so the
    /// store reference is gone when this returns.
    pub(crate) fn run(mut self) -> Option<Error> {
        let watch = self.store.watch(&self.session_id);
        let mut backoff = INITIAL_BACKOFF;
        loop {
            let started = Instant::now();
            let page = match self.read_page(watch.is_none()) {
                Ok(page) => page,
                Err(e @ (Error::Closed(_) | Error::Failed(_))) => return Some(e),
                Err(e) => {
                    tracing::warn!(target: TARGET, event = "subscription_retry",
                        session_id = %self.session_id, cursor = self.cursor,
                        backoff_ms = backoff.as_millis() as u64, error = %e);
                    if !self.sleep(backoff) {
                        return None;
                    }
                    backoff = (backoff * 2).min(self.max_backoff);
                    continue;
                }
            };
            backoff = INITIAL_BACKOFF;
            let empty = page.events.is_empty();
            if !self.deliver(page.events) {
                return None;
            }
            if page.full {
                continue;
            }
            let keep_going = match &watch {
                Some(watch) => self.wait_for_append(watch),
                // Polling: a page with events may have more behind it; an
                // empty one waits out the rest of the interval (all of it when
                // the store ignored the long-poll).
                None if empty => self.sleep(self.poll_interval.saturating_sub(started.elapsed())),
                None => true,
            };
            if !keep_going {
                return None;
            }
        }
    }

    fn filtered(&self) -> bool {
        self.run_id.is_some() || self.event_type.is_some()
    }

    /// Reads the page after the cursor and moves the cursor past it.
    /// `long_poll` asks the store to wait up to the poll interval when nothing matches.
    fn read_page(&mut self, long_poll: bool) -> Result<Page> {
        // With filters, the latest sequence read before the query bounds what
        // the query saw: after a short page nothing up to it is left to match,
        // so the cursor skips non-matching events instead of rescanning them.
        let seen = if self.filtered() {
            self.store.get_latest_sequence(&self.session_id)?
        } else {
            0
        };
        let query = EventQuery {
            after: Some(self.cursor),
            run_id: self.run_id.clone(),
            event_type: self.event_type,
            limit: Some(self.page_size),
            wait_timeout: long_poll.then_some(self.poll_interval),
            ..EventQuery::default()
        };
        let events = self.store.get_events(&self.session_id, &query)?;
        if let Some(last) = events.last().and_then(|e| e.sequence_number) {
            self.cursor = self.cursor.max(last);
        }
        let full = events.len() >= self.page_size;
        if !full {
            self.cursor = self.cursor.max(seen);
        }
        Ok(Page { events, full })
    }

    /// Sends each event into the buffer, waiting while it is full; false when stopped.
    fn deliver(&self, events: Vec<Event>) -> bool {
        for event in events {
            let item = SessionEvent {
                session_id: self.session_id.clone(),
                event,
            };
            select! {
                send(self.tx, item) -> sent => {
                    if sent.is_err() {
                        return false;
                    }
                }
                recv(self.stop.0) -> _ => return false,
            }
        }
        true
    }

    /// Sleeps until the store signals an append; false when stopped.
    fn wait_for_append(&self, watch: &Watch) -> bool {
        select! {
            recv(watch.receiver()) -> woke => match woke {
                Ok(()) => true,
                // The store dropped its side: fall back to one poll interval.
                Err(_) => self.sleep(self.poll_interval),
            },
            recv(self.stop.0) -> _ => false,
        }
    }

    /// Sleeps for `d` unless stopped first; false when stopped.
    fn sleep(&self, d: Duration) -> bool {
        select! {
            recv(self.stop.0) -> _ => false,
            default(d) => true,
        }
    }
}
