//! `sessionlog tail DIR --session S [-n N] [--follow]`: the last events of a
//! session, then (with `--follow`) every new one as another process appends it.
//!
//! Opens the log with `LogStore::open_read_only`: no lock is taken, so the
//! writing application keeps running; the read-only store refreshes as the
//! log grows and wakes a long-polling `get_events`, so following costs no
//! busy polling.

use std::path::Path;
use std::time::Duration;

use sessionlog::{EventQuery, LogStore, SessionStore};

use crate::error::{CliError, CliResult};
use crate::logdir::require_log_dir;
use crate::output::{EventFormat, Out};

/// How long one long-poll waits before asking again (the loop runs until
/// the process is interrupted; this only bounds one call).
const WAIT: Duration = Duration::from_secs(1);
/// Events fetched per query while following.
const PAGE: usize = 1000;

/// Runs `tail`.
pub fn run(
    dir: &Path,
    session: &str,
    lines: u64,
    follow: bool,
    format: EventFormat,
) -> CliResult<u8> {
    if session.is_empty() {
        return Err(CliError::new("--session must not be empty"));
    }
    require_log_dir(dir)?;
    let store = LogStore::open_read_only(dir)?;
    let mut out = Out::new();
    out.event_header(format)?;
    let mut cursor = print_last(&store, session, lines, format, &mut out)?;
    out.flush()?;
    if !follow {
        return Ok(0);
    }
    loop {
        let query = EventQuery::new()
            .after(cursor)
            .limit(PAGE)
            .wait_timeout(WAIT);
        let events = store.get_events(session, &query)?;
        for e in &events {
            out.event(e, format)?;
            cursor = e.sequence_number.unwrap_or(cursor).max(cursor);
        }
        out.flush()?;
    }
}

/// Prints the last `lines` events; returns the sequence to follow from.
fn print_last(
    store: &LogStore,
    session: &str,
    lines: u64,
    format: EventFormat,
    out: &mut Out,
) -> CliResult<u64> {
    let latest = store.get_latest_sequence(session)?;
    let mut cursor = latest.saturating_sub(lines);
    while cursor < latest {
        let events = store.get_events(session, &EventQuery::new().after(cursor).limit(PAGE))?;
        let Some(last) = events.last().and_then(|e| e.sequence_number) else {
            break;
        };
        for e in &events {
            out.event(e, format)?;
        }
        cursor = last;
    }
    Ok(cursor.max(latest))
}
