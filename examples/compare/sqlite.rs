//! SQLite as a careful user would set it up for this job, behind the same
//! [`SessionStore`] trait so that every workload runs unchanged on it.
//!
//! - WAL journal; `synchronous=FULL` for durable runs, `OFF` for buffered ones.
//! - One table keyed by `(session_id, sequence_number)`, a unique index on the
//!   event id.
//! - One transaction per append (`BEGIN IMMEDIATE`, duplicate check,
//!   `SELECT max`, `INSERT`, `COMMIT`), so the sequence is assigned inside it.
//! - A connection per thread (a pool that grows to the number of concurrent
//!   callers), each with a busy timeout.
//!
//! Long-poll is not offered: SQLite has no way to wait for a row.

use std::path::{Path, PathBuf};
use std::time::Duration;

use parking_lot::Mutex;
use rusqlite::{Connection, OptionalExtension, Row, TransactionBehavior, params};
use sessionlog::{Error, Event, EventQuery, EventType, Result, SessionStore, timestamp};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS events (
    session_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    id TEXT NOT NULL,
    run_id TEXT,
    event_type TEXT NOT NULL,
    ts INTEGER NOT NULL,
    data TEXT NOT NULL,
    metadata TEXT NOT NULL,
    PRIMARY KEY (session_id, seq)
);
CREATE UNIQUE INDEX IF NOT EXISTS events_id ON events(id);";

const COLUMNS: &str = "session_id, seq, id, run_id, event_type, ts, data, metadata";

/// A SQLite-backed store with a connection per concurrent caller.
pub struct SqliteStore {
    path: PathBuf,
    durable: bool,
    pool: Mutex<Vec<Connection>>,
}

fn sql_err(e: rusqlite::Error) -> Error {
    Error::InvalidArgument(format!("sqlite: {e}"))
}

impl SqliteStore {
    /// Opens (creating) the database `dir/events.db`; `durable` picks
    /// `synchronous=FULL` over `OFF`.
    pub fn open(dir: &Path, durable: bool) -> Result<SqliteStore> {
        let store = SqliteStore {
            path: dir.join("events.db"),
            durable,
            pool: Mutex::new(Vec::new()),
        };
        let conn = store.connect()?;
        conn.execute_batch(SCHEMA).map_err(sql_err)?;
        store.pool.lock().push(conn);
        Ok(store)
    }

    fn connect(&self) -> Result<Connection> {
        let conn = Connection::open(&self.path).map_err(sql_err)?;
        conn.busy_timeout(Duration::from_secs(60))
            .map_err(sql_err)?;
        let sync = if self.durable { "FULL" } else { "OFF" };
        // journal_mode answers with a row, so it is queried rather than executed.
        let _: String = conn
            .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
            .map_err(sql_err)?;
        conn.execute_batch(&format!(
            "PRAGMA synchronous={sync}; PRAGMA cache_size=-16384;"
        ))
        .map_err(sql_err)?;
        Ok(conn)
    }

    /// Runs `f` on a pooled connection (a new one when all are in use).
    fn with_conn<T>(&self, f: impl FnOnce(&mut Connection) -> Result<T>) -> Result<T> {
        let pooled = self.pool.lock().pop();
        let mut conn = match pooled {
            Some(c) => c,
            None => self.connect()?,
        };
        let out = f(&mut conn);
        self.pool.lock().push(conn);
        out
    }
}

fn row_to_event(r: &Row<'_>) -> rusqlite::Result<Event> {
    let kind: String = r.get(4)?;
    let data: String = r.get(6)?;
    let metadata: String = r.get(7)?;
    let bad = |e: String| rusqlite::Error::InvalidColumnName(e);
    Ok(Event {
        session_id: r.get(0)?,
        sequence_number: Some(r.get::<_, i64>(1)? as u64),
        id: r.get(2)?,
        run_id: r.get(3)?,
        event_type: kind.parse::<EventType>().map_err(|e| bad(e.to_string()))?,
        timestamp: timestamp::from_unix_nanos(r.get(5)?),
        data: serde_json::from_str(&data).map_err(|e| bad(e.to_string()))?,
        metadata: serde_json::from_str(&metadata).map_err(|e| bad(e.to_string()))?,
    })
}

/// Inserts one event inside an open transaction, or returns the stored original.
fn insert(tx: &rusqlite::Transaction<'_>, mut event: Event) -> rusqlite::Result<Event> {
    let found = tx
        .prepare_cached(&format!("SELECT {COLUMNS} FROM events WHERE id = ?1"))?
        .query_row([&event.id], row_to_event)
        .optional()?;
    if let Some(original) = found {
        return Ok(original);
    }
    let latest: i64 = tx
        .prepare_cached("SELECT COALESCE(MAX(seq), 0) FROM events WHERE session_id = ?1")?
        .query_row([&event.session_id], |r| r.get(0))?;
    event.sequence_number = Some(latest as u64 + 1);
    let nanos = timestamp::to_unix_nanos(event.timestamp).unwrap_or(0);
    tx.prepare_cached(&format!(
        "INSERT INTO events ({COLUMNS}) VALUES (?1,?2,?3,?4,?5,?6,?7,?8)"
    ))?
    .execute(params![
        event.session_id,
        latest + 1,
        event.id,
        event.run_id,
        event.event_type.as_str(),
        nanos,
        serde_json::Value::Object(event.data.clone()).to_string(),
        serde_json::Value::Object(event.metadata.clone()).to_string(),
    ])?;
    Ok(event)
}

fn query_sql(q: &EventQuery) -> String {
    let mut sql =
        format!("SELECT {COLUMNS} FROM events WHERE session_id = ?1 AND seq > ?2 AND seq < ?3");
    if q.run_id.is_some() {
        sql.push_str(" AND run_id = ?4");
    }
    if q.event_type.is_some() {
        sql.push_str(" AND event_type = ?5");
    }
    if q.since.is_some() {
        sql.push_str(" AND ts > ?6");
    }
    sql.push_str(" ORDER BY seq LIMIT ?7");
    sql
}

impl SessionStore for SqliteStore {
    fn append_event_with_sequence(&self, event: Event) -> Result<Event> {
        Ok(self.append_events(vec![event])?.remove(0))
    }

    fn append_events(&self, events: Vec<Event>) -> Result<Vec<Event>> {
        self.with_conn(|conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(sql_err)?;
            let out = events
                .into_iter()
                .map(|e| insert(&tx, e))
                .collect::<rusqlite::Result<Vec<_>>>();
            let out = out.map_err(sql_err)?;
            tx.commit().map_err(sql_err)?;
            Ok(out)
        })
    }

    fn get_events(&self, session_id: &str, q: &EventQuery) -> Result<Vec<Event>> {
        let after = q.after.unwrap_or(0) as i64;
        let before = q.before.map_or(i64::MAX, |b| b as i64);
        let limit = q.limit.map_or(-1, |l| l as i64);
        let since = q.since.and_then(timestamp::to_unix_nanos);
        self.with_conn(|conn| {
            let mut stmt = conn.prepare_cached(&query_sql(q)).map_err(sql_err)?;
            // Unused numbered parameters are simply left NULL.
            let kind = q.event_type.map(|t| t.as_str());
            let rows = stmt
                .query_map(
                    params![session_id, after, before, q.run_id, kind, since, limit],
                    row_to_event,
                )
                .map_err(sql_err)?;
            rows.collect::<rusqlite::Result<Vec<_>>>().map_err(sql_err)
        })
    }

    fn get_latest_sequence(&self, session_id: &str) -> Result<u64> {
        self.with_conn(|conn| {
            conn.prepare_cached("SELECT COALESCE(MAX(seq), 0) FROM events WHERE session_id = ?1")
                .and_then(|mut s| s.query_row([session_id], |r| r.get::<_, i64>(0)))
                .map(|n| n as u64)
                .map_err(sql_err)
        })
    }
}
