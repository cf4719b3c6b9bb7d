//! Per-session wake-ups for long-poll waiters and subscription watchers.
//!
//! Each session that somebody waits on or watches has one `Signal`: the
//! latest sequence published for it, a condvar for long-poll waiters and a
//! list of watcher channels. A store calls [`SessionNotifier::publish`] once an
//! append is visible (for a durable store: durable), so an append wakes only
//! its own session's waiters, and a store with no waiters pays one atomic load.
//!
//! Why a published counter and not just a condvar: a waiter reads the counter
//! *before* it runs its query and then sleeps only while the counter is still
//! at that value, so an append that lands between the query and the sleep
//! cannot be missed.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Instant;

use crossbeam_channel::{Receiver, Sender, TrySendError};
use parking_lot::{Condvar, Mutex};

/// One session's wake-up state.
#[derive(Default)]
struct Signal {
    /// The highest sequence published for the session.
    published: Mutex<u64>,
    cond: Condvar,
    watchers: Mutex<Vec<(u64, Sender<()>)>>,
}

/// The registry of `Signal`s of the sessions somebody waits on or watches.
#[derive(Default)]
pub struct SessionNotifier {
    signals: Mutex<HashMap<String, Arc<Signal>>>,
    /// How many handles exist; zero lets `publish` skip the map entirely.
    handles: AtomicUsize,
    next_watch_id: AtomicU64,
}

impl SessionNotifier {
    /// A notifier with nobody waiting.
    pub fn new() -> SessionNotifier {
        SessionNotifier::default()
    }

    /// Announces that `session_id`'s events up to `latest` are visible, waking
    /// that session's waiters and watchers (and nobody else).
    pub fn publish(&self, session_id: &str, latest: u64) {
        if self.handles.load(Ordering::Acquire) == 0 {
            return;
        }
        let signal = match self.signals.lock().get(session_id) {
            Some(s) => Arc::clone(s),
            None => return,
        };
        {
            let mut published = signal.published.lock();
            *published = (*published).max(latest);
        }
        signal.cond.notify_all();
        for (_, tx) in signal.watchers.lock().iter() {
            // A full channel already holds a pending wake-up: coalesce.
            if let Err(TrySendError::Disconnected(_)) = tx.try_send(()) {
                // The watch is being dropped; it removes itself.
            }
        }
    }

    /// Whether anybody waits on or watches any session. A store may skip
    /// collecting what to [`publish`](Self::publish) when this is false
    /// *while holding the lock its queries take*: whoever registers later
    /// queries after that lock is free, and finds the appended events.
    pub(crate) fn is_watched(&self) -> bool {
        self.handles.load(Ordering::Acquire) != 0
    }

    /// Registers interest in `session_id` for a long-poll waiter.
    pub fn waiter(self: &Arc<Self>, session_id: &str) -> Waiter {
        Waiter {
            handle: self.handle(session_id),
        }
    }

    /// A [`Watch`] that receives a message after appends to `session_id`.
    pub fn watch(self: &Arc<Self>, session_id: &str) -> Watch {
        let handle = self.handle(session_id);
        let (tx, rx) = crossbeam_channel::bounded(1);
        let id = self.next_watch_id.fetch_add(1, Ordering::Relaxed);
        handle.signal.watchers.lock().push((id, tx));
        Watch { handle, id, rx }
    }

    fn handle(self: &Arc<Self>, session_id: &str) -> Handle {
        let mut map = self.signals.lock();
        let signal = Arc::clone(map.entry(session_id.to_string()).or_default());
        self.handles.fetch_add(1, Ordering::AcqRel);
        Handle {
            notifier: Arc::clone(self),
            session_id: session_id.to_string(),
            signal,
        }
    }
}

/// A registration in the notifier; removes the session's signal when the last one goes.
struct Handle {
    notifier: Arc<SessionNotifier>,
    session_id: String,
    signal: Arc<Signal>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        let mut map = self.notifier.signals.lock();
        self.notifier.handles.fetch_sub(1, Ordering::AcqRel);
        // The map holds one reference and this handle another: nobody else is left.
        if Arc::strong_count(&self.signal) == 2 {
            map.remove(&self.session_id);
        }
    }
}

/// A long-poll waiter's registration for one session.
pub struct Waiter {
    handle: Handle,
}

impl Waiter {
    /// The latest sequence published so far: read it before running the query.
    pub fn published(&self) -> u64 {
        *self.handle.signal.published.lock()
    }

    /// Sleeps until something past `seen` is published (true) or `deadline` passes (false).
    pub fn wait_past(&self, seen: u64, deadline: Option<Instant>) -> bool {
        let signal = &self.handle.signal;
        let mut published = signal.published.lock();
        while *published <= seen {
            match deadline {
                Some(d) => {
                    if signal.cond.wait_until(&mut published, d).timed_out() {
                        return *published > seen;
                    }
                }
                None => signal.cond.wait(&mut published),
            }
        }
        true
    }
}

/// A subscription's wake-up channel for one session: a message arrives (coalesced,
/// at most one pending) after each append to the session becomes visible.
///
/// Dropping it unregisters it. It holds no reference to the store.
pub struct Watch {
    handle: Handle,
    id: u64,
    rx: Receiver<()>,
}

impl Watch {
    /// The channel to wait on (usable in `crossbeam_channel::select!`).
    pub fn receiver(&self) -> &Receiver<()> {
        &self.rx
    }
}

impl std::fmt::Debug for Watch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watch")
            .field("session_id", &self.handle.session_id)
            .finish()
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.handle
            .signal
            .watchers
            .lock()
            .retain(|(id, _)| *id != self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn signals_are_removed_with_their_last_handle() {
        let n = Arc::new(SessionNotifier::new());
        let w1 = n.waiter("a");
        let w2 = n.watch("a");
        assert_eq!(n.signals.lock().len(), 1);
        drop(w1);
        assert_eq!(n.signals.lock().len(), 1);
        drop(w2);
        assert!(n.signals.lock().is_empty());
        assert_eq!(n.handles.load(Ordering::Acquire), 0);
    }

    #[test]
    fn publish_wakes_only_its_session() {
        let n = Arc::new(SessionNotifier::new());
        let wa = n.watch("a");
        let wb = n.watch("b");
        n.publish("a", 3);
        assert!(wa.receiver().try_recv().is_ok());
        assert!(wb.receiver().try_recv().is_err());
        let waiter = n.waiter("b");
        let seen = waiter.published();
        let deadline = Instant::now() + Duration::from_millis(20);
        assert!(!waiter.wait_past(seen, Some(deadline)));
        n.publish("b", 1);
        assert!(waiter.wait_past(seen, Some(Instant::now())));
    }
}
