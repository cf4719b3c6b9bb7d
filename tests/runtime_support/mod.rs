//! Shared helpers of the runtime tests: store wrappers that switch off
//! notifications or long-poll, inject read errors or refuse as closed; a
//! blocking test adapter; and small event helpers.
#![allow(dead_code)]

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};
use serde_json::{Map, Value};
use sessionlog::runtime::{AdapterEvent, EventEmitter, ProviderAdapter, RunContext};
use sessionlog::store::Watch;
use sessionlog::{
    Error, Event, EventQuery, EventType, MemoryStore, Result, SessionStore, SubscribeOptions,
    Subscription,
};

/// "Should happen" waits: generous, for a busy 2-core machine.
pub const LONG: Duration = Duration::from_secs(30);
/// "Should not happen yet" waits: short.
pub const SHORT: Duration = Duration::from_millis(150);

/// Receives `n` events, failing the test if one takes too long.
pub fn take(sub: &Subscription, n: usize) -> Vec<Event> {
    (0..n)
        .map(|i| {
            sub.recv_timeout(LONG)
                .unwrap_or_else(|| panic!("event {i} of {n} never came"))
                .event
        })
        .collect()
}

/// Subscription options starting at `from_sequence`.
pub fn from(from_sequence: u64) -> SubscribeOptions {
    SubscribeOptions {
        from_sequence,
        ..SubscribeOptions::default()
    }
}

pub fn memory() -> Arc<dyn SessionStore> {
    Arc::new(MemoryStore::new())
}

/// An event of `session` with a type and optional run.
pub fn ev(session: &str, kind: EventType, run: Option<&str>) -> Event {
    let mut e = Event::new(session, kind);
    e.run_id = run.map(str::to_string);
    e
}

/// Appends `n` `message_streamed` events (of `run`, if given) one by one.
pub fn append_n(
    store: &dyn SessionStore,
    session: &str,
    n: usize,
    run: Option<&str>,
) -> Vec<Event> {
    (0..n)
        .map(|i| {
            let e = ev(session, EventType::MessageStreamed, run).with_data("i", i);
            store.append_event_with_sequence(e).expect("append")
        })
        .collect()
}

pub fn seqs<'a>(events: impl IntoIterator<Item = &'a Event>) -> Vec<u64> {
    events
        .into_iter()
        .map(|e| e.sequence_number.expect("stored"))
        .collect()
}

/// Polls `cond` until it holds or `timeout` passes; returns whether it held.
pub fn eventually(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A store around another that can hide `watch`, ignore `wait_timeout`,
/// fail reads on demand or refuse everything as closed; it counts reads.
pub struct Wrapped {
    pub inner: Arc<dyn SessionStore>,
    pub watch: bool,
    pub long_poll: bool,
    /// The next this-many reads fail with an I/O error.
    pub fail_reads: AtomicUsize,
    pub closed: AtomicBool,
    /// `get_events` calls, per session.
    pub reads: Mutex<HashMap<String, usize>>,
}

impl Wrapped {
    pub fn new(inner: Arc<dyn SessionStore>, watch: bool, long_poll: bool) -> Arc<Wrapped> {
        Arc::new(Wrapped {
            inner,
            watch,
            long_poll,
            fail_reads: AtomicUsize::new(0),
            closed: AtomicBool::new(false),
            reads: Mutex::new(HashMap::new()),
        })
    }

    pub fn reads_of(&self, session: &str) -> usize {
        self.reads.lock().get(session).copied().unwrap_or(0)
    }

    fn check(&self) -> Result<()> {
        if self.closed.load(Ordering::Acquire) {
            return Err(Error::Closed("test store closed".into()));
        }
        let failing = self
            .fail_reads
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
            .is_ok();
        if failing {
            let io = std::io::Error::other("injected read failure");
            return Err(Error::io("read", "/test/wrapped", io));
        }
        Ok(())
    }
}

impl SessionStore for Wrapped {
    fn append_event_with_sequence(&self, event: Event) -> Result<Event> {
        self.inner.append_event_with_sequence(event)
    }

    fn append_events(&self, events: Vec<Event>) -> Result<Vec<Event>> {
        self.inner.append_events(events)
    }

    fn get_events(&self, session_id: &str, query: &EventQuery) -> Result<Vec<Event>> {
        *self.reads.lock().entry(session_id.to_string()).or_default() += 1;
        self.check()?;
        let mut q = query.clone();
        if !self.long_poll {
            q.wait_timeout = None;
        }
        self.inner.get_events(session_id, &q)
    }

    fn get_latest_sequence(&self, session_id: &str) -> Result<u64> {
        if self.closed.load(Ordering::Acquire) {
            return Err(Error::Closed("test store closed".into()));
        }
        self.inner.get_latest_sequence(session_id)
    }

    fn watch(&self, session_id: &str) -> Option<Watch> {
        if self.watch {
            self.inner.watch(session_id)
        } else {
            None
        }
    }
}

/// What a [`GateAdapter`] run does when released.
#[derive(Clone, Debug)]
pub enum Action {
    Complete,
    Fail(String),
    Panic(String),
}

#[derive(Default)]
struct GateState {
    running: HashSet<String>,
    started: Vec<String>,
    max_running: usize,
    released: HashMap<String, Action>,
    cancelled: HashSet<String>,
}

/// A test adapter whose runs block until the test releases (or cancels)
/// them; with `auto` set, each run completes on its own after that delay.
pub struct GateAdapter {
    state: Mutex<GateState>,
    cond: Condvar,
    auto: Option<Duration>,
    /// Adapter events each run emits before blocking.
    pub events_per_run: usize,
}

impl GateAdapter {
    pub fn new() -> Arc<GateAdapter> {
        Arc::new(GateAdapter {
            state: Mutex::default(),
            cond: Condvar::new(),
            auto: None,
            events_per_run: 1,
        })
    }

    pub fn auto(delay: Duration, events_per_run: usize) -> Arc<GateAdapter> {
        Arc::new(GateAdapter {
            state: Mutex::default(),
            cond: Condvar::new(),
            auto: Some(delay),
            events_per_run,
        })
    }

    pub fn release(&self, run_id: &str, action: Action) {
        self.state
            .lock()
            .released
            .insert(run_id.to_string(), action);
        self.cond.notify_all();
    }

    /// Waits until `run_id` has started executing in the adapter.
    pub fn wait_started(&self, run_id: &str) -> bool {
        let deadline = Instant::now() + LONG;
        let mut st = self.state.lock();
        while !st.started.iter().any(|r| r == run_id) {
            if self.cond.wait_until(&mut st, deadline).timed_out() {
                return false;
            }
        }
        true
    }

    pub fn has_started(&self, run_id: &str) -> bool {
        self.state.lock().started.iter().any(|r| r == run_id)
    }

    pub fn started(&self) -> Vec<String> {
        self.state.lock().started.clone()
    }

    pub fn running(&self) -> usize {
        self.state.lock().running.len()
    }

    pub fn max_running(&self) -> usize {
        self.state.lock().max_running
    }

    fn begin(&self, run_id: &str) {
        let mut st = self.state.lock();
        st.running.insert(run_id.to_string());
        st.started.push(run_id.to_string());
        st.max_running = st.max_running.max(st.running.len());
        drop(st);
        self.cond.notify_all();
    }

    fn wait_for_release(&self, run_id: &str) -> std::result::Result<Action, Error> {
        if let Some(delay) = self.auto {
            std::thread::sleep(delay);
            return Ok(Action::Complete);
        }
        let mut st = self.state.lock();
        loop {
            if st.cancelled.contains(run_id) {
                return Err(Error::Cancelled(run_id.to_string()));
            }
            if let Some(action) = st.released.remove(run_id) {
                return Ok(action);
            }
            self.cond.wait(&mut st);
        }
    }
}

impl ProviderAdapter for GateAdapter {
    fn provider_name(&self) -> &str {
        "gate"
    }

    fn execute(&self, run: &RunContext, events: &dyn EventEmitter) -> Result<Map<String, Value>> {
        self.begin(&run.run_id);
        for i in 0..self.events_per_run {
            events.emit(AdapterEvent::new(EventType::MessageStreamed).with_data("i", i))?;
        }
        let action = self.wait_for_release(&run.run_id);
        self.state.lock().running.remove(&run.run_id);
        match action? {
            Action::Complete => Ok(Map::from_iter([("done".to_string(), Value::from(true))])),
            Action::Fail(msg) => Err(Error::Adapter(msg)),
            Action::Panic(msg) => panic!("{msg}"),
        }
    }

    fn cancel(&self, run_id: &str) -> Result<()> {
        self.state.lock().cancelled.insert(run_id.to_string());
        self.cond.notify_all();
        Ok(())
    }
}

/// A run input `{"n": n}`.
pub fn input(n: usize) -> Map<String, Value> {
    Map::from_iter([("n".to_string(), Value::from(n))])
}

/// The session's events of `run`.
pub fn run_events(store: &dyn SessionStore, session: &str, run: &str) -> Vec<Event> {
    store
        .get_events(session, &EventQuery::new().run_id(run))
        .expect("read run events")
}

pub fn types(events: &[Event]) -> Vec<EventType> {
    events.iter().map(|e| e.event_type).collect()
}

/// A fresh `LogStore` in a temporary directory (keep the `TempDir` alive).
pub fn logstore(sync: sessionlog::SyncPolicy) -> (tempfile::TempDir, Arc<dyn SessionStore>) {
    let dir = tempfile::tempdir().expect("temp dir");
    let opts = sessionlog::LogOptions {
        sync,
        ..sessionlog::LogOptions::default()
    };
    let store = sessionlog::LogStore::open_with(dir.path(), opts).expect("open LogStore");
    (dir, Arc::new(store))
}
