//! `sessionlog import DIR FILE.jsonl`: stores the events of a JSON Lines file
//! (as `dump` writes them) in a log, keeping their ids.
//!
//! Two passes over the file: the first checks that every line is an `Event`
//! (so a bad line stores nothing at all and is named by its number), the
//! second appends in atomic batches through `append_events`. Ids make it
//! idempotent: an event already stored is returned as stored, not stored again.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;

use sessionlog::{Event, LogOptions, LogStore, SessionStore, SyncPolicy};

use crate::error::{CliError, CliResult};
use crate::logdir::require_import_target;
use crate::output::Out;
use crate::progress::Progress;

/// What an import did.
#[derive(Default)]
struct Counts {
    lines: u64,
    imported: u64,
    already_present: u64,
}

/// Runs `import`.
pub fn run(dir: &Path, file: &Path, batch_size: usize) -> CliResult<u8> {
    require_import_target(dir)?;
    let size = open(file)?.metadata().map(|m| m.len()).unwrap_or(0);
    let progress = Progress::bytes(size.saturating_mul(2), "importing");
    let events = for_each_event(file, &progress, |_, _| Ok(()))?;
    // Sync once at close rather than per batch: a re-run after a crash
    // stores only what is missing, so the speed costs no correctness.
    let opts = LogOptions {
        sync: SyncPolicy::Never,
        ..LogOptions::default()
    };
    let store = LogStore::open_with(dir, opts)?;
    let mut counts = Counts::default();
    let mut batch: Vec<(u64, Event)> = Vec::with_capacity(batch_size.min(events as usize));
    for_each_event(file, &progress, |line, event| {
        batch.push((line, event));
        if batch.len() >= batch_size {
            store_batch(&store, &mut batch, &mut counts)?;
        }
        Ok(())
    })?;
    store_batch(&store, &mut batch, &mut counts)?;
    store.close()?;
    drop(progress);
    let mut out = Out::new();
    out.line(&format!(
        "imported {} events, {} already present ({} events read from {} into {})",
        counts.imported,
        counts.already_present,
        counts.lines,
        file.display(),
        dir.display()
    ))?;
    out.flush()?;
    Ok(0)
}

fn open(file: &Path) -> CliResult<File> {
    File::open(file).map_err(|e| CliError::new(format!("cannot open {}: {e}", file.display())))
}

/// Calls `f` with the line number and event of every non-blank line;
/// returns how many there were. A line that is not an event is an error
/// naming its number.
fn for_each_event(
    file: &Path,
    progress: &Progress,
    mut f: impl FnMut(u64, Event) -> CliResult<()>,
) -> CliResult<u64> {
    let mut reader = BufReader::new(open(file)?);
    let mut text = String::new();
    let (mut number, mut events) = (0u64, 0u64);
    loop {
        text.clear();
        number += 1;
        let read = reader
            .read_line(&mut text)
            .map_err(|e| line_error(file, number, &e.to_string()))?;
        if read == 0 {
            return Ok(events);
        }
        progress.inc(read as u64);
        if text.trim().is_empty() {
            continue;
        }
        let event = parse_line(&text).map_err(|why| line_error(file, number, &why))?;
        events += 1;
        f(number, event)?;
    }
}

/// One line as an event, with the checks the store would otherwise reject
/// the whole batch for.
fn parse_line(text: &str) -> Result<Event, String> {
    let event: Event = serde_json::from_str(text.trim_end()).map_err(|e| {
        // serde's own position counts lines inside this one line; keep the column only.
        let message = e.to_string();
        let suffix = format!(" at line {} column {}", e.line(), e.column());
        let why = message.strip_suffix(&suffix).unwrap_or(&message);
        format!("not a valid event (column {}): {why}", e.column())
    })?;
    if event.id.is_empty() {
        return Err("the event id is empty".into());
    }
    if event.session_id.is_empty() {
        return Err("the session_id is empty".into());
    }
    Ok(event)
}

fn line_error(file: &Path, line: u64, why: &str) -> CliError {
    CliError::new(format!(
        "{}: line {line}: {why}; nothing was imported",
        file.display()
    ))
}

/// Appends `batch` atomically and counts new against already-present events.
fn store_batch(
    store: &LogStore,
    batch: &mut Vec<(u64, Event)>,
    counts: &mut Counts,
) -> CliResult<()> {
    let (Some(first), Some(last)) = (batch.first().map(|b| b.0), batch.last().map(|b| b.0)) else {
        return Ok(());
    };
    // Latest sequences before the batch: an event returned with a higher one
    // was stored by this batch (the writer lock keeps other appenders out).
    let mut before: HashMap<String, u64> = HashMap::new();
    for (_, e) in batch.iter() {
        if !before.contains_key(&e.session_id) {
            before.insert(
                e.session_id.clone(),
                store.get_latest_sequence(&e.session_id)?,
            );
        }
    }
    let events: Vec<Event> = batch.drain(..).map(|(_, e)| e).collect();
    let stored = store.append_events(events).map_err(|e| {
        CliError::new(format!(
            "lines {first}-{last} were rejected (nothing of them stored; {} earlier events were imported): {e}",
            counts.imported
        ))
    })?;
    let mut seen = HashSet::new();
    for s in &stored {
        let fresh = seen.insert(s.id.clone())
            && before
                .get(&s.session_id)
                .is_some_and(|&b| s.sequence_number.unwrap_or(0) > b);
        if fresh {
            counts.imported += 1;
        } else {
            counts.already_present += 1;
        }
    }
    counts.lines += stored.len() as u64;
    Ok(())
}
