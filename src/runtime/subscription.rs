//! [`subscribe`] and [`Subscription`]: gap-free, duplicate-free delivery of a
//! session's events, first the backlog then live.
//!
//! Each subscription has one worker thread (see [`follower`](super::follower))
//! that owns the subscriber's cursor. It reads the store in pages after the
//! cursor and sends every event into a bounded channel, the subscriber's
//! buffer. Because every event, backlog or live, comes from the same cursor
//! walk over the store, there is no seam between backfill and live delivery:
//! nothing is skipped and nothing is sent twice. When the buffer is full the
//! worker simply waits, holding at most one page, so a slow subscriber costs
//! bounded memory and never blocks writers or other subscribers; when it is
//! caught up it sleeps on the store's [`Watch`](crate::store::Watch) (or polls,
//! for stores that cannot notify).

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};
use parking_lot::Mutex;

use super::follower::{Follower, Stop};
use crate::error::{Error, Result};
use crate::event::{Event, EventType};
use crate::store::SessionStore;

/// What a subscription delivers: where it starts and its filters.
///
/// ```
/// use sessionlog::{EventType, SubscribeOptions};
/// // Resume after the last event seen, run starts only.
/// let last_seen = 41;
/// let opts = SubscribeOptions {
///     from_sequence: last_seen + 1,
///     event_type: Some(EventType::RunStarted),
///     ..SubscribeOptions::default()
/// };
/// # let _ = opts;
/// ```
#[derive(Clone, Debug, Default)]
pub struct SubscribeOptions {
    /// The first sequence to deliver, inclusive: resume with `last_seen + 1`;
    /// 0 or 1 start from the beginning.
    pub from_sequence: u64,
    /// Only events of this run.
    pub run_id: Option<String>,
    /// Only events of this type.
    pub event_type: Option<EventType>,
}

/// One delivered event and the session it belongs to.
#[derive(Clone, Debug, PartialEq)]
pub struct SessionEvent {
    /// The session subscribed to.
    pub session_id: String,
    /// The stored event, with its `sequence_number`.
    pub event: Event,
}

/// Tuning of a subscription's worker; [`subscribe`] uses the default.
#[derive(Clone, Debug)]
pub struct SubscriptionConfig {
    /// Capacity of the subscriber's buffer, in events (0 is taken as 1). The
    /// worker waits while it is full; the buffer never holds more.
    pub buffer: usize,
    /// Events read from the store per query (0 is taken as 1).
    pub page_size: usize,
    /// How often to re-read the store when it cannot notify (no `watch`).
    pub poll_interval: Duration,
    /// The longest wait between retries after a store error (retries start at
    /// 10 ms and double up to this).
    pub max_retry_backoff: Duration,
}

impl Default for SubscriptionConfig {
    fn default() -> SubscriptionConfig {
        SubscriptionConfig {
            buffer: 1024,
            page_size: 256,
            poll_interval: Duration::from_millis(100),
            max_retry_backoff: Duration::from_secs(1),
        }
    }
}

/// A live subscription to one session; see [`subscribe`].
///
/// Receive with [`recv_timeout`](Subscription::recv_timeout), by iterating
/// (blocks for the next event), or with
/// [`receiver`](Subscription::receiver) in `crossbeam_channel::select!`.
/// [`unsubscribe`](Subscription::unsubscribe) and drop are synchronous: when
/// they return, the worker has stopped and nothing of this subscription
/// references the store any more.
pub struct Subscription {
    session_id: String,
    rx: Receiver<SessionEvent>,
    capacity: usize,
    /// Dropping it tells the worker to stop.
    stop: Option<Sender<()>>,
    worker: Option<JoinHandle<()>>,
    /// Why the worker ended on its own (store closed or failed), if it did.
    end: Arc<Mutex<Option<Error>>>,
    /// Called once when the subscription goes away (the server's subscriber count).
    on_close: Option<Box<dyn FnOnce() + Send + Sync>>,
}

/// Subscribes to `session_id` with the default [`SubscriptionConfig`].
///
/// Every matching stored event with `sequence_number >= opts.from_sequence`
/// is delivered exactly once, in sequence order: first the backlog, then live
/// events as they are appended, however many writers append meanwhile. Store
/// errors are retried from the cursor (never skipped); the subscription ends
/// (the iterator returns `None` once the buffer is empty) only when the store
/// reports it is closed or failed for good, see [`Subscription::end_reason`].
///
/// Errors: an empty `session_id`, or a store that fails its first read (for
/// example because it is closed).
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use sessionlog::{subscribe, Event, EventType, MemoryStore, SessionStore, SubscribeOptions};
/// let store = Arc::new(MemoryStore::new());
/// store.append_event_with_sequence(Event::new("s", EventType::SessionCreated))?;
/// let sub = subscribe(store.clone(), "s", SubscribeOptions::default())?;
/// store.append_event_with_sequence(Event::new("s", EventType::SessionStarted))?;
/// let a = sub.recv_timeout(Duration::from_secs(5)).unwrap();
/// let b = sub.recv_timeout(Duration::from_secs(5)).unwrap();
/// assert_eq!((a.event.sequence_number, b.event.sequence_number), (Some(1), Some(2)));
/// sub.unsubscribe(); // the worker has stopped when this returns
/// # Ok::<(), sessionlog::Error>(())
/// ```
pub fn subscribe(
    store: Arc<dyn SessionStore>,
    session_id: impl Into<String>,
    opts: SubscribeOptions,
) -> Result<Subscription> {
    subscribe_with_config(store, session_id, opts, SubscriptionConfig::default())
}

/// [`subscribe`] with an explicit buffer size, page size and polling interval.
pub fn subscribe_with_config(
    store: Arc<dyn SessionStore>,
    session_id: impl Into<String>,
    opts: SubscribeOptions,
    config: SubscriptionConfig,
) -> Result<Subscription> {
    let session_id = session_id.into();
    if session_id.is_empty() {
        return Err(Error::invalid("subscribe: the session id is empty"));
    }
    // Fail fast on a closed or broken store rather than in the worker.
    store.get_latest_sequence(&session_id)?;
    let capacity = config.buffer.max(1);
    let (tx, rx) = crossbeam_channel::bounded(capacity);
    let (stop_tx, stop_rx) = crossbeam_channel::bounded(0);
    let end = Arc::new(Mutex::new(None));
    let follower = Follower::new(store, session_id.clone(), &opts, &config, tx, Stop(stop_rx));
    let worker_end = Arc::clone(&end);
    let worker = std::thread::Builder::new()
        .name(format!("sessionlog-sub-{session_id}"))
        .spawn(move || {
            if let Some(err) = follower.run() {
                *worker_end.lock() = Some(err);
            }
        })
        .map_err(|e| Error::io("spawn subscription thread", &session_id, e))?;
    tracing::debug!(target: super::telemetry::TARGET, event = "subscription_started",
        session_id = %session_id, from_sequence = opts.from_sequence);
    Ok(Subscription {
        session_id,
        rx,
        capacity,
        stop: Some(stop_tx),
        worker: Some(worker),
        end,
        on_close: None,
    })
}

impl Subscription {
    /// The next event, waiting up to `timeout`; `None` when nothing arrived in
    /// time (or the subscription has ended and its buffer is empty).
    pub fn recv_timeout(&self, timeout: Duration) -> Option<SessionEvent> {
        self.rx.recv_timeout(timeout).ok()
    }

    /// The next event if one is buffered, without waiting.
    pub fn try_recv(&self) -> Option<SessionEvent> {
        self.rx.try_recv().ok()
    }

    /// The underlying channel, for `crossbeam_channel::select!` over several
    /// subscriptions. It disconnects when the subscription ends.
    pub fn receiver(&self) -> &Receiver<SessionEvent> {
        &self.rx
    }

    /// The session subscribed to.
    pub fn session_id(&self) -> &str {
        &self.session_id
    }

    /// The capacity of the buffer: it never holds more events than this.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Why the subscription ended on its own (the store is closed or failed),
    /// or `None` while it is live. Taken once: a second call returns `None`.
    pub fn end_reason(&self) -> Option<Error> {
        self.end.lock().take()
    }

    /// Stops the subscription; when this returns the worker has exited and
    /// nothing of the subscription references the store. Dropping does the same.
    pub fn unsubscribe(self) {
        drop(self);
    }

    /// Runs `f` once when the subscription goes away (used for subscriber counts).
    pub(crate) fn set_on_close(&mut self, f: impl FnOnce() + Send + Sync + 'static) {
        self.on_close = Some(Box::new(f));
    }
}

impl Iterator for Subscription {
    type Item = SessionEvent;

    /// Blocks for the next event; `None` only after the store was closed or
    /// failed for good and every buffered event was received.
    fn next(&mut self) -> Option<SessionEvent> {
        self.rx.recv().ok()
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        // Disconnecting the stop channel wakes the worker wherever it waits.
        drop(self.stop.take());
        if let Some(worker) = self.worker.take() {
            // The worker catches nothing that could panic, but a panic there
            // must not turn into a second panic here.
            let _ = worker.join();
        }
        if let Some(f) = self.on_close.take() {
            f();
        }
        tracing::debug!(target: super::telemetry::TARGET, event = "subscription_stopped",
            session_id = %self.session_id);
    }
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription")
            .field("session_id", &self.session_id)
            .field("buffered", &self.rx.len())
            .field("capacity", &self.capacity)
            .finish_non_exhaustive()
    }
}
