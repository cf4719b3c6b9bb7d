//! The run queue and slots behind a [`SessionServer`](super::SessionServer).
//!
//! One mutex guards the whole scheduling state (queue, runs in flight,
//! finished outcomes), so "a slot is free" and "take the next queued run" are
//! one step and there are never more runs in flight than slots. Each run
//! executes on its own worker thread; when it ends, that thread records the
//! outcome, frees the slot and starts the next queued run (FIFO). Telemetry is
//! collected while the lock is held and emitted after it is released.

use std::collections::{HashMap, VecDeque};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex, MutexGuard};
use serde_json::{Map, Value};

use super::adapter::{CancelToken, RunContext};
use super::manager::{RunResult, SessionManager};
use super::telemetry::{self, RunOutcome, RuntimeEvent, TARGET, TelemetrySink};
use crate::error::{Error, Result};

/// A run waiting for a slot.
pub(crate) struct QueuedRun {
    pub(crate) run_id: String,
    pub(crate) input: Map<String, Value>,
    pub(crate) cancel: CancelToken,
}

/// A run holding a slot.
pub(crate) struct InFlight {
    pub(crate) run_id: String,
    pub(crate) cancel: CancelToken,
}

/// Everything the mutex guards.
#[derive(Default)]
pub(crate) struct State {
    /// No more runs are accepted or started (the server is shutting down).
    pub(crate) closed: bool,
    pub(crate) queue: VecDeque<QueuedRun>,
    /// In start order.
    pub(crate) in_flight: Vec<InFlight>,
    /// Outcomes of ended runs, the oldest evicted first beyond the limit.
    finished: HashMap<String, Result<RunResult>>,
    finished_order: VecDeque<String>,
    threads: Vec<JoinHandle<()>>,
}

impl State {
    /// Whether `run_id` is queued, in flight or finished (and still remembered).
    pub(crate) fn knows(&self, run_id: &str) -> bool {
        self.finished.contains_key(run_id)
            || self.queue.iter().any(|r| r.run_id == run_id)
            || self.in_flight.iter().any(|r| r.run_id == run_id)
    }

    /// The outcome of `run_id` if it has ended (a copy: several callers may wait on it).
    pub(crate) fn outcome(&self, run_id: &str) -> Option<Result<RunResult>> {
        self.finished.get(run_id).map(|o| match o {
            Ok(result) => Ok(result.clone()),
            Err(e) => Err(duplicate_error(e)),
        })
    }

    /// Whether no run is queued or in flight.
    pub(crate) fn idle(&self) -> bool {
        self.queue.is_empty() && self.in_flight.is_empty()
    }
}

/// The scheduler shared by the server handle and the run threads.
pub(crate) struct Shared {
    pub(crate) session_id: String,
    pub(crate) manager: SessionManager,
    pub(crate) max_concurrent_runs: usize,
    pub(crate) max_queued_runs: usize,
    pub(crate) finished_runs_kept: usize,
    pub(crate) telemetry: Option<TelemetrySink>,
    pub(crate) state: Mutex<State>,
    /// Notified whenever a run ends or leaves the queue.
    pub(crate) changed: Condvar,
}

impl Shared {
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock()
    }

    pub(crate) fn emit_all(&self, events: Vec<RuntimeEvent>) {
        for event in events {
            telemetry::emit(self.telemetry.as_ref(), event);
        }
    }

    /// Starts `run` now if a slot is free and nobody is queued before it,
    /// else queues it, else refuses it with [`Error::QueueFull`].
    pub(crate) fn admit(self: &Arc<Self>, run: QueuedRun) -> Result<()> {
        let mut effects = Vec::new();
        {
            let mut st = self.lock();
            if st.closed {
                return Err(Error::Closed(format!(
                    "session server for {:?} is shutting down",
                    self.session_id
                )));
            }
            if st.knows(&run.run_id) {
                return Err(Error::invalid(format!(
                    "session {:?} already has a run {:?}",
                    self.session_id, run.run_id
                )));
            }
            if st.in_flight.len() < self.max_concurrent_runs && st.queue.is_empty() {
                self.start(&mut st, run, &mut effects);
            } else if st.queue.len() < self.max_queued_runs {
                effects.push(RuntimeEvent::RunEnqueued {
                    session_id: self.session_id.clone(),
                    run_id: run.run_id.clone(),
                    queue_len: st.queue.len() + 1,
                });
                st.queue.push_back(run);
            } else {
                return Err(self.queue_full(&st, &run.run_id));
            }
        }
        self.emit_all(effects);
        Ok(())
    }

    fn queue_full(&self, st: &State, run_id: &str) -> Error {
        Error::QueueFull(format!(
            "session {:?} refused run {run_id:?}: {} of {} slots busy and {} of {} queue places taken",
            self.session_id,
            st.in_flight.len(),
            self.max_concurrent_runs,
            st.queue.len(),
            self.max_queued_runs
        ))
    }

    /// Puts `run` in a slot and spawns its worker thread.
    fn start(self: &Arc<Self>, st: &mut State, run: QueuedRun, effects: &mut Vec<RuntimeEvent>) {
        st.in_flight.push(InFlight {
            run_id: run.run_id.clone(),
            cancel: run.cancel.clone(),
        });
        effects.push(RuntimeEvent::RunStarted {
            session_id: self.session_id.clone(),
            run_id: run.run_id.clone(),
            in_flight: st.in_flight.len(),
        });
        let run_id = run.run_id.clone();
        let shared = Arc::clone(self);
        let spawned = std::thread::Builder::new()
            .name(format!("sessionlog-run-{run_id}"))
            .spawn(move || shared.run_thread(run));
        match spawned {
            Ok(handle) => {
                st.threads.retain(|h| !h.is_finished());
                st.threads.push(handle);
            }
            Err(e) => {
                // No thread, no run: release the slot and report it as failed.
                st.in_flight.retain(|r| r.run_id != run_id);
                let error = Error::io("spawn run thread", &run_id, e);
                self.remember(st, &run_id, Err(error));
                effects.push(self.stopped(&run_id, RunOutcome::Failed, Duration::ZERO));
            }
        }
    }

    /// The body of a run's worker thread.
    fn run_thread(self: Arc<Self>, run: QueuedRun) {
        let started = Instant::now();
        let ctx = RunContext {
            session_id: self.session_id.clone(),
            run_id: run.run_id,
            input: run.input,
            cancel: run.cancel,
        };
        // The manager already turns adapter panics into errors; this guards
        // the rest, so the slot is released whatever happens.
        let outcome = catch_unwind(AssertUnwindSafe(|| self.manager.execute_run(&ctx, &|_| {})))
            .unwrap_or_else(|_| {
                Err(Error::Adapter(format!(
                    "run {} of session {:?} panicked outside the adapter",
                    ctx.run_id, self.session_id
                )))
            });
        self.finish(&ctx.run_id, outcome, started.elapsed());
    }

    /// Records a run's end, frees its slot and starts queued runs (FIFO).
    fn finish(self: &Arc<Self>, run_id: &str, outcome: Result<RunResult>, took: Duration) {
        let kind = match &outcome {
            Ok(_) => RunOutcome::Completed,
            Err(Error::Cancelled(_)) => RunOutcome::Cancelled,
            Err(_) => RunOutcome::Failed,
        };
        if let Err(e) = &outcome {
            tracing::debug!(target: TARGET, event = "run_error", session_id = %self.session_id,
                run_id = %run_id, error = %e);
        }
        let mut effects = vec![self.stopped(run_id, kind, took)];
        {
            let mut st = self.lock();
            st.in_flight.retain(|r| r.run_id != run_id);
            self.remember(&mut st, run_id, outcome);
            self.dispatch(&mut st, &mut effects);
        }
        self.changed.notify_all();
        self.emit_all(effects);
    }

    /// Moves queued runs into free slots, oldest first.
    fn dispatch(self: &Arc<Self>, st: &mut State, effects: &mut Vec<RuntimeEvent>) {
        while !st.closed && st.in_flight.len() < self.max_concurrent_runs {
            let Some(next) = st.queue.pop_front() else {
                break;
            };
            effects.push(RuntimeEvent::RunDequeued {
                session_id: self.session_id.clone(),
                run_id: next.run_id.clone(),
                queue_len: st.queue.len(),
            });
            self.start(st, next, effects);
        }
    }

    /// Keeps `outcome` for `await_run`, forgetting the oldest beyond the limit.
    pub(crate) fn remember(&self, st: &mut State, run_id: &str, outcome: Result<RunResult>) {
        st.finished.insert(run_id.to_string(), outcome);
        st.finished_order.push_back(run_id.to_string());
        while st.finished_order.len() > self.finished_runs_kept.max(1) {
            if let Some(old) = st.finished_order.pop_front() {
                st.finished.remove(&old);
            }
        }
    }

    fn stopped(&self, run_id: &str, outcome: RunOutcome, duration: Duration) -> RuntimeEvent {
        RuntimeEvent::RunStopped {
            session_id: self.session_id.clone(),
            run_id: run_id.to_string(),
            outcome,
            duration,
        }
    }

    /// Takes every run thread's handle (for joining at shutdown).
    pub(crate) fn take_threads(&self) -> Vec<JoinHandle<()>> {
        std::mem::take(&mut self.lock().threads)
    }
}

/// A copy of `e` for one more waiter. `Error` is not `Clone` (it may hold an
/// `io::Error`), so an I/O error keeps its kind and message.
fn duplicate_error(e: &Error) -> Error {
    match e {
        Error::InvalidArgument(s) => Error::InvalidArgument(s.clone()),
        Error::EventTooLarge { id, size, limit } => Error::EventTooLarge {
            id: id.clone(),
            size: *size,
            limit: *limit,
        },
        Error::InvalidTimestamp { id } => Error::InvalidTimestamp { id: id.clone() },
        Error::UnknownEventType(s) => Error::UnknownEventType(s.clone()),
        Error::Io { op, path, source } => Error::Io {
            op,
            path: path.clone(),
            source: std::io::Error::new(source.kind(), source.to_string()),
        },
        Error::Corrupt {
            file,
            offset,
            reason,
        } => Error::corrupt(file.clone(), *offset, reason.clone()),
        Error::Locked { dir } => Error::Locked { dir: dir.clone() },
        Error::ReadOnly { dir } => Error::ReadOnly { dir: dir.clone() },
        Error::Failed(s) => Error::Failed(s.clone()),
        Error::Closed(s) => Error::Closed(s.clone()),
        Error::Encoding(s) => Error::Encoding(s.clone()),
        Error::Cancelled(s) => Error::Cancelled(s.clone()),
        Error::Timeout(s) => Error::Timeout(s.clone()),
        Error::QueueFull(s) => Error::QueueFull(s.clone()),
        Error::Adapter(s) => Error::Adapter(s.clone()),
        // Variants added later keep at least their message.
        #[allow(unreachable_patterns)]
        other => Error::Adapter(other.to_string()),
    }
}
