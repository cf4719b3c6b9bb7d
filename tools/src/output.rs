//! Writing to stdout: JSON Lines and table rows for events, JSON documents,
//! and a closed pipe treated as a quiet end rather than a panic (`println!`
//! panics when the reader of a pipe has gone away).

use std::io::{self, BufWriter, StdoutLock, Write};

use sessionlog::Event;
use sessionlog::timestamp::format_rfc3339;

use crate::error::{CliError, CliResult};

/// How events are printed by `dump` and `tail`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum EventFormat {
    /// One `Event` per line, exactly as serde writes it (re-importable).
    #[default]
    Jsonl,
    /// A readable table: sequence, time, type, run, session, data.
    Table,
}

/// Buffered, lock-held stdout whose write errors become [`CliError`]s.
pub struct Out {
    inner: BufWriter<StdoutLock<'static>>,
}

impl Out {
    /// Locks stdout for the whole command.
    pub fn new() -> Out {
        Out {
            inner: BufWriter::new(io::stdout().lock()),
        }
    }

    /// Writes one line.
    pub fn line(&mut self, text: &str) -> CliResult<()> {
        writeln!(self.inner, "{text}").map_err(write_error)
    }

    /// Writes `value` as pretty JSON followed by a newline.
    pub fn json<T: serde::Serialize>(&mut self, value: &T) -> CliResult<()> {
        serde_json::to_writer_pretty(&mut self.inner, value)
            .map_err(|e| CliError::new(format!("cannot write JSON output: {e}")))?;
        writeln!(self.inner).map_err(write_error)
    }

    /// Writes `event` in `format`.
    pub fn event(&mut self, event: &Event, format: EventFormat) -> CliResult<()> {
        match format {
            EventFormat::Jsonl => {
                let text = serde_json::to_string(event).map_err(|e| {
                    CliError::new(format!("cannot encode event {:?}: {e}", event.id))
                })?;
                self.line(&text)
            }
            EventFormat::Table => self.line(&table_row(event)),
        }
    }

    /// Writes the table header (only for [`EventFormat::Table`]).
    pub fn event_header(&mut self, format: EventFormat) -> CliResult<()> {
        match format {
            EventFormat::Jsonl => Ok(()),
            EventFormat::Table => self.line(&format!(
                "{:>6}  {:<30}  {:<25}  {:<14}  {:<16}  DATA",
                "SEQ", "TIMESTAMP", "TYPE", "RUN", "SESSION"
            )),
        }
    }

    /// Pushes buffered output out (after each batch of a follow).
    pub fn flush(&mut self) -> CliResult<()> {
        self.inner.flush().map_err(write_error)
    }
}

impl Default for Out {
    fn default() -> Out {
        Out::new()
    }
}

/// Writes one line to stderr (messages, reports of what a command did
/// besides its output). A failing stderr is ignored: there is nowhere left
/// to say so, and `eprintln!` would panic.
pub fn note(text: &str) {
    let _ = writeln!(io::stderr().lock(), "{text}");
}

fn write_error(e: io::Error) -> CliError {
    if e.kind() == io::ErrorKind::BrokenPipe {
        CliError::quiet(0)
    } else {
        CliError::new(format!("cannot write to stdout: {e}"))
    }
}

/// `"1 segment"`, `"2 segments"`.
pub fn count(n: u64, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// The longest data column shown in a table row; the rest is elided.
const DATA_WIDTH: usize = 60;

fn table_row(e: &Event) -> String {
    let seq = e
        .sequence_number
        .map_or_else(|| "-".to_string(), |s| s.to_string());
    let time = format_rfc3339(e.timestamp).unwrap_or_else(|| "?".into());
    let run = e.run_id.as_deref().unwrap_or("-");
    let data = if e.data.is_empty() {
        String::new()
    } else {
        elide(
            &serde_json::Value::Object(e.data.clone()).to_string(),
            DATA_WIDTH,
        )
    };
    format!(
        "{seq:>6}  {time:<30}  {:<25}  {run:<14}  {:<16}  {data}",
        e.event_type.as_str(),
        e.session_id
    )
}

/// Cuts `text` to at most `max` characters, marking the cut.
fn elide(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut cut: String = text.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elide_keeps_short_text_and_marks_cuts() {
        assert_eq!(elide("abc", 5), "abc");
        assert_eq!(elide("abcdef", 4), "abc…");
        assert_eq!(elide("ééééé", 3), "éé…");
    }
}
