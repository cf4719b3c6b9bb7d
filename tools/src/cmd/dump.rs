//! `sessionlog dump DIR`: events as JSON Lines (re-importable) or a table.
//!
//! Opens the log with `LogStore::open_read_only` (no lock, no changes) and
//! pages through each session by cursor, so memory stays bounded however
//! long a session is.

use std::collections::HashSet;
use std::path::Path;

use sessionlog::engine::inspect;
use sessionlog::{Event, EventQuery, LogStore, SessionStore};

use crate::Filters;
use crate::error::CliResult;
use crate::logdir::require_log_dir;
use crate::output::{EventFormat, Out, note};

/// Events fetched per query.
const PAGE: usize = 1000;

/// Runs `dump`.
pub fn run(
    dir: &Path,
    session: Option<&str>,
    filters: &Filters,
    format: EventFormat,
) -> CliResult<u8> {
    require_log_dir(dir)?;
    let store = LogStore::open_read_only(dir)?;
    let sessions = match session {
        Some(s) => vec![s.to_string()],
        None => sessions_in_log_order(dir)?,
    };
    let mut out = Out::new();
    out.event_header(format)?;
    let mut printed = 0u64;
    for s in &sessions {
        printed += dump_session(&store, s, filters, format, &mut out)?;
    }
    out.flush()?;
    if printed == 0 {
        match session {
            Some(s) => note(&format!("no matching events in session {s:?}")),
            None => note("no matching events"),
        }
    }
    Ok(0)
}

/// Every session id, in the order of its first record in the log.
fn sessions_in_log_order(dir: &Path) -> CliResult<Vec<String>> {
    let mut seen = HashSet::new();
    let mut order = Vec::new();
    inspect::scan(dir, |r| {
        if seen.insert(r.session_id.clone()) {
            order.push(r.session_id.clone());
        }
    })?;
    Ok(order)
}

/// The query for `filters`, without paging.
pub fn base_query(filters: &Filters) -> EventQuery {
    EventQuery {
        after: filters.after,
        before: filters.before,
        run_id: filters.run.clone(),
        event_type: filters.event_type,
        since: filters.since,
        limit: None,
        wait_timeout: None,
    }
}

/// Prints the matching events of one session, page by page. Returns how many.
fn dump_session(
    store: &LogStore,
    session: &str,
    filters: &Filters,
    format: EventFormat,
    out: &mut Out,
) -> CliResult<u64> {
    let mut query = base_query(filters);
    let mut remaining = filters.limit.unwrap_or(usize::MAX);
    let mut printed = 0;
    while remaining > 0 {
        let page = PAGE.min(remaining);
        query.limit = Some(page);
        let events: Vec<Event> = store.get_events(session, &query)?;
        for e in &events {
            out.event(e, format)?;
        }
        printed += events.len() as u64;
        remaining -= events.len();
        match events.last().and_then(|e| e.sequence_number) {
            Some(last) if events.len() == page => query.after = Some(last),
            _ => break,
        }
    }
    Ok(printed)
}
