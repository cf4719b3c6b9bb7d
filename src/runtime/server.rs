//! [`SessionServer`]: one session's runtime, with a FIFO run queue, a fixed
//! number of run slots and subscriptions to the session's events.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Map, Value};

use super::adapter::{CancelToken, ProviderAdapter};
use super::manager::{RunResult, SessionManager, new_run_id};
use super::scheduler::{QueuedRun, Shared, State};
use super::subscription::{
    SubscribeOptions, Subscription, SubscriptionConfig, subscribe_with_config,
};
use super::telemetry::{self, CancelKind, RuntimeEvent, TelemetrySink};
use crate::error::{Error, Result};
use crate::store::SessionStore;

/// How a [`SessionServer`] runs: its slots, its queue and where its telemetry goes.
///
/// ```
/// use sessionlog::runtime::ServerOptions;
/// let opts = ServerOptions { max_concurrent_runs: 2, max_queued_runs: 10, ..ServerOptions::default() };
/// # let _ = opts;
/// ```
#[derive(Clone, Debug)]
pub struct ServerOptions {
    /// Runs executing at once; at least 1 (default 1).
    pub max_concurrent_runs: usize,
    /// Runs waiting for a slot; a submission beyond it is refused (default 100; 0 = no queue).
    pub max_queued_runs: usize,
    /// Outcomes of ended runs kept for [`SessionServer::await_run`] (default 1024).
    pub finished_runs_kept: usize,
    /// Receives every [`RuntimeEvent`] as a structured value (they also go to `tracing`).
    pub telemetry: Option<TelemetrySink>,
    /// Buffer and page sizes of subscriptions made through the server.
    pub subscription: SubscriptionConfig,
}

impl Default for ServerOptions {
    fn default() -> ServerOptions {
        ServerOptions {
            max_concurrent_runs: 1,
            max_queued_runs: 100,
            finished_runs_kept: 1024,
            telemetry: None,
            subscription: SubscriptionConfig::default(),
        }
    }
}

/// A snapshot of a server's runs, limits and subscribers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerStatus {
    /// The server's session.
    pub session_id: String,
    /// Runs holding a slot, in start order.
    pub in_flight: Vec<String>,
    /// Runs waiting for a slot, next first.
    pub queued: Vec<String>,
    /// The number of slots.
    pub max_concurrent_runs: usize,
    /// The queue bound.
    pub max_queued_runs: usize,
    /// Live subscriptions made through the server.
    pub subscribers: usize,
}

impl ServerStatus {
    /// How many runs are in flight.
    pub fn in_flight_count(&self) -> usize {
        self.in_flight.len()
    }

    /// How many runs are queued.
    pub fn queued_count(&self) -> usize {
        self.queued.len()
    }
}

/// One session's runtime: runs go through a [`ProviderAdapter`] on worker
/// threads, at most `max_concurrent_runs` at once, the rest waiting in a
/// bounded FIFO queue; every event is persisted by a [`SessionManager`], and
/// subscribers follow the session's log.
///
/// An adapter error or panic ends only its own run: the slot is released and
/// the next queued run starts. With more than one slot, events of different
/// runs interleave in the log, each carrying its `run_id`.
///
/// Dropping the server cancels the queued runs, asks the adapter to cancel
/// those in flight and waits for them to end; call [`drain`](SessionServer::drain)
/// first to let them finish.
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use serde_json::{Map, Value};
/// use sessionlog::{EventType, MemoryStore, Result, SessionServer, SubscribeOptions};
/// use sessionlog::runtime::{AdapterEvent, EventEmitter, ProviderAdapter, RunContext, ServerOptions};
///
/// struct Echo;
/// impl ProviderAdapter for Echo {
///     fn provider_name(&self) -> &str { "echo" }
///     fn execute(&self, run: &RunContext, events: &dyn EventEmitter) -> Result<Map<String, Value>> {
///         events.emit(AdapterEvent::new(EventType::MessageReceived).with_data("echo", Value::Object(run.input.clone())))?;
///         Ok(run.input.clone())
///     }
///     fn cancel(&self, _run_id: &str) -> Result<()> { Ok(()) }
/// }
///
/// let server = SessionServer::start(Arc::new(MemoryStore::new()), Arc::new(Echo), "s1", ServerOptions::default())?;
/// let sub = server.subscribe(SubscribeOptions { event_type: Some(EventType::MessageReceived), ..Default::default() })?;
/// let run_id = server.submit_run(Map::from_iter([("content".to_string(), Value::from("hi"))]))?;
/// let result = server.await_run(&run_id, Duration::from_secs(10))?;
/// assert_eq!(result.output["content"], "hi");
/// let seen = sub.recv_timeout(Duration::from_secs(10)).unwrap();
/// assert_eq!(seen.event.run_id.as_deref(), Some(run_id.as_str()));
/// # Ok::<(), sessionlog::Error>(())
/// ```
pub struct SessionServer {
    shared: Arc<Shared>,
    subscribers: Arc<AtomicUsize>,
    subscription: SubscriptionConfig,
}

impl SessionServer {
    /// Starts the runtime of `session_id` on `store` and `adapter`. A new
    /// session (no events yet) gets `session_created` and `session_started`;
    /// an existing one is continued as it is.
    ///
    /// Errors: an empty session id, `max_concurrent_runs: 0`, or the store's error.
    pub fn start(
        store: Arc<dyn SessionStore>,
        adapter: Arc<dyn ProviderAdapter>,
        session_id: impl Into<String>,
        options: ServerOptions,
    ) -> Result<SessionServer> {
        let session_id = session_id.into();
        if session_id.is_empty() {
            return Err(Error::invalid(
                "SessionServer::start: the session id is empty",
            ));
        }
        if options.max_concurrent_runs == 0 {
            return Err(Error::invalid(format!(
                "SessionServer::start for session {session_id:?}: max_concurrent_runs must be at least 1, got 0"
            )));
        }
        let manager = SessionManager::new(store, adapter);
        if manager.store().get_latest_sequence(&session_id)? == 0 {
            manager.start_session(&session_id)?;
            manager.activate_session(&session_id)?;
        }
        let shared = Arc::new(Shared {
            session_id: session_id.clone(),
            manager,
            max_concurrent_runs: options.max_concurrent_runs,
            max_queued_runs: options.max_queued_runs,
            finished_runs_kept: options.finished_runs_kept,
            telemetry: options.telemetry,
            state: Default::default(),
            changed: Default::default(),
        });
        let started = RuntimeEvent::ServerStarted {
            session_id,
            max_concurrent_runs: shared.max_concurrent_runs,
            max_queued_runs: shared.max_queued_runs,
        };
        shared.emit_all(vec![started]);
        Ok(SessionServer {
            shared,
            subscribers: Arc::new(AtomicUsize::new(0)),
            subscription: options.subscription,
        })
    }

    /// The server's session.
    pub fn session_id(&self) -> &str {
        &self.shared.session_id
    }

    /// Submits a run with `input` under a fresh run id, which it returns. The
    /// run starts at once when a slot is free, else it is queued (FIFO).
    ///
    /// Errors: [`Error::QueueFull`] when every slot is busy and the queue is
    /// full; [`Error::Closed`] while the server shuts down.
    pub fn submit_run(&self, input: Map<String, Value>) -> Result<String> {
        let run_id = new_run_id();
        self.submit_run_with_id(run_id.clone(), input)?;
        Ok(run_id)
    }

    /// [`submit_run`](SessionServer::submit_run) with the caller's run id, which
    /// must be non-empty and new to this server.
    pub fn submit_run_with_id(
        &self,
        run_id: impl Into<String>,
        input: Map<String, Value>,
    ) -> Result<()> {
        let run_id = run_id.into();
        if run_id.is_empty() {
            return Err(Error::invalid(format!(
                "submit_run in session {:?}: the run id is empty",
                self.shared.session_id
            )));
        }
        self.shared.admit(QueuedRun {
            run_id,
            input,
            cancel: CancelToken::new(),
        })
    }

    /// Submits a run and waits up to `timeout` for its outcome (see
    /// [`await_run`](SessionServer::await_run)). On timeout the run goes on.
    pub fn execute_run(&self, input: Map<String, Value>, timeout: Duration) -> Result<RunResult> {
        let run_id = self.submit_run(input)?;
        self.await_run(&run_id, timeout)
    }

    /// Waits up to `timeout` for run `run_id` to end; returns its result, or
    /// its error ([`Error::Cancelled`] when cancelled, the adapter's error when
    /// it failed).
    ///
    /// Errors also: [`Error::Timeout`] when it has not ended in time, and
    /// [`Error::InvalidArgument`] for a run this server does not know (or
    /// whose outcome is older than the `finished_runs_kept` latest).
    pub fn await_run(&self, run_id: &str, timeout: Duration) -> Result<RunResult> {
        let deadline = Instant::now().checked_add(timeout);
        let mut st = self.shared.lock();
        loop {
            if let Some(outcome) = st.outcome(run_id) {
                return outcome;
            }
            if !st.knows(run_id) {
                return Err(self.unknown_run("await_run", run_id));
            }
            let timed_out = match deadline {
                Some(d) => self.shared.changed.wait_until(&mut st, d).timed_out(),
                None => {
                    self.shared.changed.wait(&mut st);
                    false
                }
            };
            if timed_out {
                return st.outcome(run_id).unwrap_or_else(|| {
                    Err(Error::Timeout(format!(
                        "run {run_id:?} of session {:?} did not end within {timeout:?}",
                        self.shared.session_id
                    )))
                });
            }
        }
    }

    /// Cancels run `run_id`. A queued run is removed from the queue, a
    /// `run_cancelled` event is stored and its waiters get
    /// [`Error::Cancelled`]. A run in flight has its [`CancelToken`] set and
    /// the adapter's `cancel` called; its slot is freed when it ends.
    ///
    /// Errors: [`Error::InvalidArgument`] when the run is neither queued nor
    /// in flight (unknown or already ended), or the adapter's `cancel` error.
    pub fn cancel_run(&self, run_id: &str) -> Result<()> {
        let st = self.shared.lock();
        if let Some(pos) = st.queue.iter().position(|r| r.run_id == run_id) {
            self.cancel_queued(st, pos);
            return Ok(());
        }
        let Some(token) = st
            .in_flight
            .iter()
            .find(|r| r.run_id == run_id)
            .map(|r| r.cancel.clone())
        else {
            drop(st);
            self.cancel_event(run_id, CancelKind::Failed);
            return Err(Error::invalid(format!(
                "cancel_run: run {run_id:?} of session {:?} is neither queued nor in flight",
                self.shared.session_id
            )));
        };
        drop(st);
        token.cancel();
        match self.shared.manager.adapter().cancel(run_id) {
            Ok(()) => {
                self.cancel_event(run_id, CancelKind::InFlight);
                Ok(())
            }
            Err(e) => {
                self.cancel_event(run_id, CancelKind::Failed);
                Err(e)
            }
        }
    }

    /// Removes the queued run at `pos`, stores its `run_cancelled` event and
    /// wakes its waiters. The event is stored under the lock, so no waiter
    /// sees the run ended before its event is in the log.
    fn cancel_queued(&self, mut st: parking_lot::MutexGuard<'_, State>, pos: usize) {
        let Some(run) = st.queue.remove(pos) else {
            return;
        };
        run.cancel.cancel();
        record_cancelled_while_queued(&self.shared.manager, &self.shared.session_id, &run.run_id);
        let error = Error::Cancelled(run.run_id.clone());
        self.shared.remember(&mut st, &run.run_id, Err(error));
        drop(st);
        self.shared.changed.notify_all();
        self.cancel_event(&run.run_id, CancelKind::Queued);
    }

    fn cancel_event(&self, run_id: &str, kind: CancelKind) {
        let event = RuntimeEvent::RunCancelRequested {
            session_id: self.shared.session_id.clone(),
            run_id: run_id.to_string(),
            kind,
        };
        self.shared.emit_all(vec![event]);
    }

    /// Waits up to `timeout` until no run is queued or in flight.
    ///
    /// Errors: [`Error::Timeout`], saying how many runs are still there.
    pub fn drain(&self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now().checked_add(timeout);
        let mut st = self.shared.lock();
        while !st.idle() {
            let timed_out = match deadline {
                Some(d) => self.shared.changed.wait_until(&mut st, d).timed_out(),
                None => {
                    self.shared.changed.wait(&mut st);
                    false
                }
            };
            if timed_out && !st.idle() {
                return Err(Error::Timeout(format!(
                    "drain of session {:?} did not finish within {timeout:?}: {} runs in flight, {} queued",
                    self.shared.session_id,
                    st.in_flight.len(),
                    st.queue.len()
                )));
            }
        }
        Ok(())
    }

    /// The runs in flight and queued, the limits and the subscriber count.
    pub fn status(&self) -> ServerStatus {
        let st = self.shared.lock();
        ServerStatus {
            session_id: self.shared.session_id.clone(),
            in_flight: st.in_flight.iter().map(|r| r.run_id.clone()).collect(),
            queued: st.queue.iter().map(|r| r.run_id.clone()).collect(),
            max_concurrent_runs: self.shared.max_concurrent_runs,
            max_queued_runs: self.shared.max_queued_runs,
            subscribers: self.subscribers.load(Ordering::Acquire),
        }
    }

    /// Subscribes to this server's session; see [`subscribe`](crate::subscribe).
    /// The server counts the subscription until it is dropped or unsubscribed.
    pub fn subscribe(&self, opts: SubscribeOptions) -> Result<Subscription> {
        let store = Arc::clone(self.shared.manager.store());
        let session_id = self.shared.session_id.clone();
        let mut sub =
            subscribe_with_config(store, session_id.clone(), opts, self.subscription.clone())?;
        let count = Arc::clone(&self.subscribers);
        let subscribers = count.fetch_add(1, Ordering::AcqRel) + 1;
        let sink = self.shared.telemetry.clone();
        telemetry::emit(
            sink.as_ref(),
            RuntimeEvent::Subscribed {
                session_id: session_id.clone(),
                subscribers,
            },
        );
        sub.set_on_close(move || {
            let subscribers = count.fetch_sub(1, Ordering::AcqRel) - 1;
            telemetry::emit(
                sink.as_ref(),
                RuntimeEvent::Unsubscribed {
                    session_id,
                    subscribers,
                },
            );
        });
        Ok(sub)
    }

    /// Ends `subscription` (the same as dropping it); synchronous.
    pub fn unsubscribe(&self, subscription: Subscription) {
        subscription.unsubscribe();
    }

    fn unknown_run(&self, op: &str, run_id: &str) -> Error {
        Error::invalid(format!(
            "{op}: session {:?} has no run {run_id:?} (unknown, or ended too long ago to be remembered)",
            self.shared.session_id
        ))
    }

    /// Stops accepting runs, cancels queued ones, asks the adapter to cancel
    /// the runs in flight and waits for their threads to end.
    fn shut_down(&self) {
        let (queued, in_flight) = {
            let mut st = self.shared.lock();
            st.closed = true;
            let queued: Vec<_> = st.queue.drain(..).collect();
            for run in &queued {
                run.cancel.cancel();
                record_cancelled_while_queued(
                    &self.shared.manager,
                    &self.shared.session_id,
                    &run.run_id,
                );
                self.shared.remember(
                    &mut st,
                    &run.run_id,
                    Err(Error::Cancelled(run.run_id.clone())),
                );
            }
            let in_flight: Vec<_> = st
                .in_flight
                .iter()
                .map(|r| (r.run_id.clone(), r.cancel.clone()))
                .collect();
            (queued, in_flight)
        };
        self.shared.changed.notify_all();
        for run in &queued {
            self.cancel_event(&run.run_id, CancelKind::Queued);
        }
        for (run_id, token) in in_flight {
            token.cancel();
            let kind = match self.shared.manager.adapter().cancel(&run_id) {
                Ok(()) => CancelKind::InFlight,
                Err(_) => CancelKind::Failed,
            };
            self.cancel_event(&run_id, kind);
        }
        for handle in self.shared.take_threads() {
            let _ = handle.join();
        }
    }
}

/// Stores `run_cancelled` for a run that never started; a store failure is
/// logged (the cancellation itself stands).
fn record_cancelled_while_queued(manager: &SessionManager, session_id: &str, run_id: &str) {
    if let Err(e) = manager.record_cancelled_while_queued(session_id, run_id) {
        tracing::warn!(target: telemetry::TARGET, event = "record_failed", session_id = %session_id,
            run_id = %run_id, event_type = "run_cancelled", error = %e);
    }
}

impl Drop for SessionServer {
    fn drop(&mut self) {
        self.shut_down();
    }
}

impl std::fmt::Debug for SessionServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionServer")
            .field("session_id", &self.shared.session_id)
            .field("max_concurrent_runs", &self.shared.max_concurrent_runs)
            .field("max_queued_runs", &self.shared.max_queued_runs)
            .finish_non_exhaustive()
    }
}
