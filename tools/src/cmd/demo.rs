//! `sessionlog demo [DIR]`: the quick tour of the library on a real log
//! directory: append events to a session, read them back by cursor, and
//! follow the session live while another thread appends.
//!
//! Re-running it appends to the same session, so the sequence numbers
//! show that the log survived the previous run.

use std::path::Path;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use sessionlog::{
    Event, EventQuery, EventType, LogStore, SessionStore, SubscribeOptions, subscribe,
};

use crate::error::{CliError, CliResult};
use crate::logdir::require_import_target;
use crate::output::Out;

const SESSION: &str = "demo-session";
/// How long the follower waits for each live event before giving up.
const LIVE_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs `demo`.
pub fn run(dir: &Path) -> CliResult<u8> {
    require_import_target(dir)?;
    let store = Arc::new(LogStore::open(dir)?);
    let mut out = Out::new();
    let start = store.get_latest_sequence(SESSION)?;
    out.line(&format!(
        "log directory {} — session {SESSION:?} has {start} events from earlier runs",
        dir.display()
    ))?;
    let run_id = format!("run-{}", start / 7 + 1);

    out.line("\n1. append (each call returns once the event is durable):")?;
    for event in first_events(&run_id) {
        let stored = store.append_event_with_sequence(event)?;
        out.line(&format!("   stored {}", describe(&stored)))?;
    }

    out.line("\n2. read by cursor, two events per page:")?;
    read_pages(&store, start, &mut out)?;

    out.line("\n3. follow the session while another thread appends:")?;
    out.flush()?;
    follow_live(&store, &run_id, &mut out)?;

    let latest = store.get_latest_sequence(SESSION)?;
    match Arc::try_unwrap(store) {
        Ok(store) => store.close()?,
        Err(store) => drop(store),
    }
    out.line(&format!(
        "\ndone: session {SESSION:?} now ends at sequence {latest}. Look inside with:"
    ))?;
    out.line(&format!("   sessionlog stats {} --sessions", dir.display()))?;
    out.line(&format!(
        "   sessionlog dump {} --session {SESSION} --format table",
        dir.display()
    ))?;
    out.flush()?;
    Ok(0)
}

fn first_events(run_id: &str) -> Vec<Event> {
    vec![
        Event::new(SESSION, EventType::SessionStarted),
        Event::new(SESSION, EventType::RunStarted).with_run(run_id),
        Event::new(SESSION, EventType::MessageSent)
            .with_run(run_id)
            .with_data("text", "What is 6 x 7?"),
        Event::new(SESSION, EventType::MessageReceived)
            .with_run(run_id)
            .with_data("text", "42"),
    ]
}

fn describe(e: &Event) -> String {
    let seq = e.sequence_number.unwrap_or(0);
    let data = if e.data.is_empty() {
        String::new()
    } else {
        format!(" {}", serde_json::Value::Object(e.data.clone()))
    };
    format!("#{seq} {}{data}", e.event_type)
}

/// Pages through the events appended by this run, cursor by cursor.
fn read_pages(store: &LogStore, start: u64, out: &mut Out) -> CliResult<()> {
    let mut cursor = start;
    loop {
        let page = store.get_events(SESSION, &EventQuery::new().after(cursor).limit(2))?;
        let Some(last) = page.last().and_then(|e| e.sequence_number) else {
            break;
        };
        let items: Vec<String> = page.iter().map(describe).collect();
        out.line(&format!("   after {cursor}: {}", items.join(", ")))?;
        cursor = last;
    }
    Ok(())
}

/// Subscribes from the next sequence, appends three events from a thread
/// with pauses, and prints each as the subscription delivers it.
fn follow_live(store: &Arc<LogStore>, run_id: &str, out: &mut Out) -> CliResult<()> {
    let from = store.get_latest_sequence(SESSION)? + 1;
    let dyn_store: Arc<dyn SessionStore> = store.clone();
    let sub = subscribe(
        dyn_store,
        SESSION,
        SubscribeOptions {
            from_sequence: from,
            ..Default::default()
        },
    )?;
    let writer_store = Arc::clone(store);
    let run = run_id.to_string();
    let writer = thread::spawn(move || -> sessionlog::Result<()> {
        let live = [
            Event::new(SESSION, EventType::ToolCallStarted)
                .with_run(run.as_str())
                .with_data("tool", "calculator"),
            Event::new(SESSION, EventType::ToolCallCompleted)
                .with_run(run.as_str())
                .with_data("result", 42),
            Event::new(SESSION, EventType::RunCompleted).with_run(run.as_str()),
        ];
        for event in live {
            thread::sleep(Duration::from_millis(150));
            writer_store.append_event_with_sequence(event)?;
        }
        Ok(())
    });
    for _ in 0..3 {
        let Some(delivered) = sub.recv_timeout(LIVE_TIMEOUT) else {
            return Err(CliError::new("the live event did not arrive within 10 s"));
        };
        out.line(&format!("   live  {}", describe(&delivered.event)))?;
        out.flush()?;
    }
    sub.unsubscribe();
    match writer.join() {
        Ok(result) => Ok(result?),
        Err(_) => Err(CliError::new("the demo's writer thread failed")),
    }
}
