//! Runtime telemetry: what the [`SessionServer`](crate::SessionServer) does
//! with its queue, slots and subscribers, without adding event types to the log.
//!
//! Every [`RuntimeEvent`] is emitted twice: as a `tracing` event under the
//! target `sessionlog::runtime` (for logs), and as a structured value to the
//! [`TelemetrySink`] given in the server's options (for metrics).
//!
//! ```
//! use sessionlog::runtime::{RuntimeEvent, TelemetrySink};
//! let (sink, events) = TelemetrySink::channel();
//! sink.emit(RuntimeEvent::RunEnqueued {
//!     session_id: "s".into(),
//!     run_id: "r".into(),
//!     queue_len: 1,
//! });
//! assert_eq!(events.try_recv().unwrap().name(), "run_enqueued");
//! ```

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::Receiver;

/// The `tracing` target of every runtime event.
pub const TARGET: &str = "sessionlog::runtime";

/// How a run ended, as reported by [`RuntimeEvent::RunStopped`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RunOutcome {
    /// The adapter returned a result.
    Completed,
    /// The adapter returned an error, panicked, or its events could not be stored.
    Failed,
    /// The run was cancelled (while queued or in flight).
    Cancelled,
}

impl RunOutcome {
    /// The snake_case name (`"completed"`).
    pub fn as_str(&self) -> &'static str {
        match self {
            RunOutcome::Completed => "completed",
            RunOutcome::Failed => "failed",
            RunOutcome::Cancelled => "cancelled",
        }
    }
}

/// Which kind of cancellation a [`RuntimeEvent::RunCancelRequested`] reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CancelKind {
    /// A queued run was removed from the queue.
    Queued,
    /// The adapter was asked to cancel a run in flight.
    InFlight,
    /// The cancellation failed (unknown or finished run, or the adapter refused).
    Failed,
}

impl CancelKind {
    /// The snake_case name (`"in_flight"`).
    pub fn as_str(&self) -> &'static str {
        match self {
            CancelKind::Queued => "queued",
            CancelKind::InFlight => "in_flight",
            CancelKind::Failed => "failed",
        }
    }
}

/// One thing the runtime did, as a structured value.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum RuntimeEvent {
    /// A server started for a session.
    ServerStarted {
        /// The server's session.
        session_id: String,
        /// Its run slots.
        max_concurrent_runs: usize,
        /// Its queue bound.
        max_queued_runs: usize,
    },
    /// A subscriber was added.
    Subscribed {
        /// The session subscribed to.
        session_id: String,
        /// Subscribers of the server after the change.
        subscribers: usize,
    },
    /// A subscriber went away (unsubscribed or dropped).
    Unsubscribed {
        /// The session.
        session_id: String,
        /// Subscribers of the server after the change.
        subscribers: usize,
    },
    /// A run was put in the queue because every slot was busy.
    RunEnqueued {
        /// The session.
        session_id: String,
        /// The queued run.
        run_id: String,
        /// Queue length after the change.
        queue_len: usize,
    },
    /// A queued run left the queue to take a free slot.
    RunDequeued {
        /// The session.
        session_id: String,
        /// The run that leaves the queue.
        run_id: String,
        /// Queue length after the change.
        queue_len: usize,
    },
    /// A run took a slot and started executing.
    RunStarted {
        /// The session.
        session_id: String,
        /// The run.
        run_id: String,
        /// Runs in flight, this one included.
        in_flight: usize,
    },
    /// A run that had started ended, releasing its slot.
    RunStopped {
        /// The session.
        session_id: String,
        /// The run.
        run_id: String,
        /// How it ended.
        outcome: RunOutcome,
        /// How long it ran.
        duration: Duration,
    },
    /// `cancel_run` was called.
    RunCancelRequested {
        /// The session.
        session_id: String,
        /// The run to cancel.
        run_id: String,
        /// Whether it was queued, in flight, or the cancellation failed.
        kind: CancelKind,
    },
}

impl RuntimeEvent {
    /// A short snake_case name of the event kind (`"run_started"`), also the
    /// `event` field of the `tracing` event.
    pub fn name(&self) -> &'static str {
        match self {
            RuntimeEvent::ServerStarted { .. } => "server_started",
            RuntimeEvent::Subscribed { .. } => "subscribed",
            RuntimeEvent::Unsubscribed { .. } => "unsubscribed",
            RuntimeEvent::RunEnqueued { .. } => "run_enqueued",
            RuntimeEvent::RunDequeued { .. } => "run_dequeued",
            RuntimeEvent::RunStarted { .. } => "run_started",
            RuntimeEvent::RunStopped { .. } => "run_stopped",
            RuntimeEvent::RunCancelRequested { .. } => "run_cancel_requested",
        }
    }

    /// The session the event is about.
    pub fn session_id(&self) -> &str {
        match self {
            RuntimeEvent::ServerStarted { session_id, .. }
            | RuntimeEvent::Subscribed { session_id, .. }
            | RuntimeEvent::Unsubscribed { session_id, .. }
            | RuntimeEvent::RunEnqueued { session_id, .. }
            | RuntimeEvent::RunDequeued { session_id, .. }
            | RuntimeEvent::RunStarted { session_id, .. }
            | RuntimeEvent::RunStopped { session_id, .. }
            | RuntimeEvent::RunCancelRequested { session_id, .. } => session_id,
        }
    }
}

type SinkFn = dyn Fn(&RuntimeEvent) + Send + Sync;

/// Where a server sends its [`RuntimeEvent`]s as structured values.
///
/// The sink is called on the thread that caused the event (a caller's thread
/// or a run's worker thread), never while the runtime holds a lock, so it may
/// call back into the server. Keep it quick: it runs inline.
#[derive(Clone)]
pub struct TelemetrySink {
    f: Arc<SinkFn>,
}

impl TelemetrySink {
    /// A sink that calls `f` with each event.
    pub fn new(f: impl Fn(&RuntimeEvent) + Send + Sync + 'static) -> TelemetrySink {
        TelemetrySink { f: Arc::new(f) }
    }

    /// A sink that sends each event into an unbounded channel, and its receiver.
    ///
    /// Read the receiver (or drop it, which turns the sink into a no-op):
    /// events accumulate in it until read.
    pub fn channel() -> (TelemetrySink, Receiver<RuntimeEvent>) {
        let (tx, rx) = crossbeam_channel::unbounded();
        let sink = TelemetrySink::new(move |e: &RuntimeEvent| {
            // A dropped receiver means nobody listens any more: not an error.
            let _ = tx.send(e.clone());
        });
        (sink, rx)
    }

    /// Delivers `event` to the sink only (no `tracing` event).
    pub fn emit(&self, event: RuntimeEvent) {
        (self.f)(&event);
    }
}

impl fmt::Debug for TelemetrySink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TelemetrySink(..)")
    }
}

/// Emits `event` as a `tracing` event under [`TARGET`] and, when given, to `sink`.
pub(crate) fn emit(sink: Option<&TelemetrySink>, event: RuntimeEvent) {
    trace_event(&event);
    if let Some(sink) = sink {
        sink.emit(event);
    }
}

/// The `tracing` form of `event`: its fields as structured key-values.
fn trace_event(event: &RuntimeEvent) {
    let name = event.name();
    match event {
        RuntimeEvent::ServerStarted {
            session_id,
            max_concurrent_runs,
            max_queued_runs,
        } => tracing::info!(target: TARGET, event = name, session_id = %session_id,
            max_concurrent_runs, max_queued_runs, "session server started"),
        RuntimeEvent::Subscribed {
            session_id,
            subscribers,
        }
        | RuntimeEvent::Unsubscribed {
            session_id,
            subscribers,
        } => {
            tracing::debug!(target: TARGET, event = name, session_id = %session_id, subscribers)
        }
        RuntimeEvent::RunEnqueued {
            session_id,
            run_id,
            queue_len,
        }
        | RuntimeEvent::RunDequeued {
            session_id,
            run_id,
            queue_len,
        } => {
            tracing::debug!(target: TARGET, event = name, session_id = %session_id,
                run_id = %run_id, queue_len)
        }
        RuntimeEvent::RunStarted {
            session_id,
            run_id,
            in_flight,
        } => {
            tracing::info!(target: TARGET, event = name, session_id = %session_id,
                run_id = %run_id, in_flight)
        }
        RuntimeEvent::RunStopped {
            session_id,
            run_id,
            outcome,
            duration,
        } => tracing::info!(target: TARGET, event = name, session_id = %session_id,
            run_id = %run_id, outcome = outcome.as_str(),
            duration_ms = duration.as_secs_f64() * 1000.0),
        RuntimeEvent::RunCancelRequested {
            session_id,
            run_id,
            kind,
        } => {
            tracing::info!(target: TARGET, event = name, session_id = %session_id,
                run_id = %run_id, kind = kind.as_str())
        }
    }
}
