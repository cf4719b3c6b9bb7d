//! A deliberately simple model of the store contract, and a checker that
//! applies the same operations to a store and to the model and compares
//! every answer.
//!
//! The model is one flat list of events scanned in full for every question:
//! slow and obviously right. Operations name sessions, ids, runs and types by
//! small numbers so that random sequences hit duplicates and filters often.

use std::time::{Duration, UNIX_EPOCH};

use serde_json::{Map, Value};

use crate::{Event, EventQuery, EventType, SessionStore};

/// One event to append, by small numbers.
#[derive(Clone, Debug)]
pub struct EventSpec {
    /// Session number; 0 means an empty (invalid) session id.
    pub session: u8,
    /// Id number; 0 means an empty (invalid) id. A small pool makes duplicates likely.
    pub id: u8,
    /// Run number, if any.
    pub run: Option<u8>,
    /// Index into `EventType::ALL` (taken modulo 28).
    pub event_type: u8,
    /// Timestamp in whole seconds after 2025-01-01 (may repeat).
    pub ts: u8,
    /// Payload discriminator (differs between duplicates of one id).
    pub payload: u16,
}

/// One operation against a store.
#[derive(Clone, Debug)]
pub enum Op {
    /// `append_event_with_sequence`.
    Append(EventSpec),
    /// `append_events`.
    Batch(Vec<EventSpec>),
    /// `get_events` (without waiting).
    Query {
        /// Session number (0: the invalid empty id).
        session: u8,
        /// `after`.
        after: Option<u64>,
        /// `before`.
        before: Option<u64>,
        /// `run_id` by number.
        run: Option<u8>,
        /// `event_type` by index.
        event_type: Option<u8>,
        /// `since` in seconds, as [`EventSpec::ts`].
        since: Option<u8>,
        /// `limit`.
        limit: Option<usize>,
    },
    /// `get_latest_sequence`.
    Latest {
        /// Session number (0: the invalid empty id).
        session: u8,
    },
}

fn session_name(n: u8) -> String {
    if n == 0 {
        String::new()
    } else {
        format!("session-{n}")
    }
}

fn timestamp(ts: u8) -> std::time::SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_735_689_600 + u64::from(ts))
}

impl EventSpec {
    /// The event this spec describes.
    pub fn to_event(&self) -> Event {
        let mut data = Map::new();
        data.insert("payload".into(), Value::from(self.payload));
        Event {
            id: if self.id == 0 {
                String::new()
            } else {
                format!("id-{}", self.id)
            },
            session_id: session_name(self.session),
            run_id: self.run.map(|r| format!("run-{r}")),
            event_type: EventType::ALL[usize::from(self.event_type) % EventType::ALL.len()],
            timestamp: timestamp(self.ts),
            sequence_number: None,
            data,
            metadata: Map::new(),
        }
    }
}

/// The model: every stored event in append order.
#[derive(Default, Debug)]
pub struct Model {
    events: Vec<Event>,
}

impl Model {
    fn valid(e: &Event) -> bool {
        !e.id.is_empty() && !e.session_id.is_empty()
    }

    fn store_one(&mut self, mut e: Event) -> Event {
        if let Some(found) = self.events.iter().find(|s| s.id == e.id) {
            return found.clone();
        }
        e.sequence_number = Some(self.latest(&e.session_id) + 1);
        self.events.push(e.clone());
        e
    }

    /// What `append_events` must answer (`None`: an error).
    pub fn append(&mut self, batch: Vec<Event>) -> Option<Vec<Event>> {
        if !batch.iter().all(Model::valid) {
            return None;
        }
        Some(batch.into_iter().map(|e| self.store_one(e)).collect())
    }

    /// What `get_latest_sequence` must answer.
    pub fn latest(&self, session: &str) -> u64 {
        self.events
            .iter()
            .filter(|e| e.session_id == session)
            .count() as u64
    }

    /// What `get_events` must answer.
    pub fn query(&self, session: &str, q: &EventQuery) -> Vec<Event> {
        self.events
            .iter()
            .filter(|e| e.session_id == session)
            .filter(|e| q.after.is_none_or(|a| e.sequence_number.unwrap() > a))
            .filter(|e| q.before.is_none_or(|b| e.sequence_number.unwrap() < b))
            .filter(|e| q.run_id.is_none() || e.run_id == q.run_id)
            .filter(|e| q.event_type.is_none_or(|t| e.event_type == t))
            .filter(|e| q.since.is_none_or(|s| e.timestamp > s))
            .take(q.limit.unwrap_or(usize::MAX))
            .cloned()
            .collect()
    }
}

/// Applies operations to a store and to a [`Model`] and compares the answers.
#[derive(Default, Debug)]
pub struct ModelChecker {
    /// The model's state so far.
    pub model: Model,
}

impl ModelChecker {
    /// A checker whose model is empty (the store must be empty too).
    pub fn new() -> ModelChecker {
        ModelChecker::default()
    }

    /// Applies `op` to both; `Err` describes the first difference.
    pub fn step(&mut self, store: &dyn SessionStore, op: &Op) -> Result<(), String> {
        match op {
            Op::Append(spec) => {
                let want = self.model.append(vec![spec.to_event()]);
                let got = store
                    .append_event_with_sequence(spec.to_event())
                    .map(|e| vec![e]);
                compare(op, want, got)
            }
            Op::Batch(specs) => {
                let events: Vec<Event> = specs.iter().map(EventSpec::to_event).collect();
                let want = self.model.append(events.clone());
                compare(op, want, store.append_events(events))
            }
            Op::Query {
                session,
                after,
                before,
                run,
                event_type,
                since,
                limit,
            } => {
                let q = EventQuery {
                    after: *after,
                    before: *before,
                    run_id: run.map(|r| format!("run-{r}")),
                    event_type: event_type
                        .map(|t| EventType::ALL[usize::from(t) % EventType::ALL.len()]),
                    since: since.map(timestamp),
                    limit: *limit,
                    wait_timeout: None,
                };
                let name = session_name(*session);
                let want = (*session != 0).then(|| self.model.query(&name, &q));
                compare(op, want, store.get_events(&name, &q))
            }
            Op::Latest { session } => {
                let name = session_name(*session);
                let want = (*session != 0).then(|| self.model.latest(&name));
                let got = store.get_latest_sequence(&name);
                match (want, got) {
                    (None, Err(_)) => Ok(()),
                    (Some(w), Ok(g)) if w == g => Ok(()),
                    (w, g) => Err(format!("{op:?}: model {w:?}, store {g:?}")),
                }
            }
        }
    }

    /// Checks that the store holds exactly what the model holds, session by session.
    pub fn check_contents(&self, store: &dyn SessionStore) -> Result<(), String> {
        let mut sessions: Vec<&str> = self
            .model
            .events
            .iter()
            .map(|e| e.session_id.as_str())
            .collect();
        sessions.sort_unstable();
        sessions.dedup();
        for s in sessions {
            let want = self.model.query(s, &EventQuery::new());
            let got = store
                .get_events(s, &EventQuery::new())
                .map_err(|e| e.to_string())?;
            if want != got {
                return Err(format!(
                    "session {s}: model has {} events, store {}",
                    want.len(),
                    got.len()
                ));
            }
        }
        Ok(())
    }
}

fn compare<T: PartialEq + std::fmt::Debug>(
    op: &Op,
    want: Option<T>,
    got: crate::Result<T>,
) -> Result<(), String> {
    match (want, got) {
        (None, Err(_)) => Ok(()),
        (Some(w), Ok(g)) if w == g => Ok(()),
        (w, g) => Err(format!("{op:?}:\n model {w:?}\n store {g:?}")),
    }
}
