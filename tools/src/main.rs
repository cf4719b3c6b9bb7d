//! `sessionlog`: look inside, check, repair, back up, export, follow and import
//! sessionlog event logs from the command line.
//!
//! This file holds the command-line definition (clap derive) and the
//! dispatch; each command lives in `cmd/<command>.rs`. Every failure comes
//! back as a [`CliError`] and is printed on stderr with a non-zero exit
//! code: bad input never panics.

mod cmd;
mod error;
mod logdir;
mod output;
mod progress;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::SystemTime;

use clap::{Parser, Subcommand};
use sessionlog::EventType;

use crate::error::CliError;
use crate::output::EventFormat;

const ABOUT: &str =
    "Inspect, verify, recover, back up, dump, follow and import sessionlog event logs";

const LONG_ABOUT: &str = "\
Inspect, verify, recover, back up, dump, follow and import sessionlog event logs.

Read-only commands (stats, verify, dump, tail, backup) take no lock and never modify
the log directory, so they work on the log of a running application. Commands
that write (recover, import) take the directory's writer lock and fail with a
clear message while another process holds it.

Exit codes: 0 success; 1 the command found problems (verify, recover);
2 an error (bad arguments, a missing, locked or unreadable directory).";

const EXAMPLES: &str = "\
Examples:
  sessionlog demo                                 # write, read and follow a demo session in ./sessionlog-data
  sessionlog stats ./sessionlog-data --sessions
  sessionlog verify ./sessionlog-data
  sessionlog dump ./sessionlog-data --session demo-session --format table
  sessionlog tail ./sessionlog-data --session demo-session --follow
  sessionlog recover ./damaged-log --salvage ./salvaged-log
  sessionlog backup ./sessionlog-data ./backups/2026-12-07
  sessionlog dump ./old-log > events.jsonl && sessionlog import ./new-log events.jsonl";

#[derive(Parser, Debug)]
#[command(name = "sessionlog", version, about = ABOUT, long_about = LONG_ABOUT, after_help = EXAMPLES)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Segments, sessions, event and byte counts, and the format version of a log.
    #[command(after_help = "\
Examples:
  sessionlog stats ./sessionlog-data
  sessionlog stats ./sessionlog-data --sessions       # also every session's latest sequence and event count
  sessionlog stats ./sessionlog-data --json | jq .total_events")]
    Stats {
        /// The log directory.
        dir: PathBuf,
        /// Also list every session with its latest sequence and event count.
        #[arg(long)]
        sessions: bool,
        /// Print machine-readable JSON instead of text.
        #[arg(long)]
        json: bool,
    },

    /// Check every record's checksum, the segment chain and per-session sequences.
    #[command(
        long_about = "Check every record's checksum and fields, the segment headers and numbering, \
that batches are complete, that every session's sequences run 1, 2, 3, ... with correct \
previous-record links, and that no event id is stored twice. (The log keeps its indexes in \
memory only, so there is no persisted index to check.)

Strictly read-only: it takes no lock and changes nothing. Exit 0 when the log is clean; exit 1 \
and a list of every problem with its file and byte offset otherwise.",
        after_help = "\
Examples:
  sessionlog verify ./sessionlog-data
  sessionlog verify ./sessionlog-data --json"
    )]
    Verify {
        /// The log directory.
        dir: PathBuf,
        /// Print machine-readable JSON instead of text.
        #[arg(long)]
        json: bool,
    },

    /// Repair a torn tail in place; with --salvage, copy every valid record into a new log.
    #[command(
        long_about = "Repair in place what opening the log repairs: a torn or checksum-failing tail \
of the newest segment (what a crash leaves, or a power loss: a last write with a hole that valid \
records follow) is cut, keeping every complete record before it. It reports what was cut and \
checks the log again afterwards.

With --salvage OUT it also copies every valid record, in log order, into the new log directory OUT \
and reports what was lost: which sessions, which sequence ranges, and where numbering shifted. \
Damage beyond a torn tail cannot be repaired in place; --salvage is the way to keep everything \
valid. The original data is never deleted.

Takes the directory's writer lock: stop the application using the log first.",
        after_help = "\
Examples:
  sessionlog recover ./sessionlog-data
  sessionlog recover ./sessionlog-data --salvage ./sessionlog-salvaged"
    )]
    Recover {
        /// The log directory.
        dir: PathBuf,
        /// Copy every valid record into this new log directory (must not exist or be empty).
        #[arg(long, value_name = "OUT")]
        salvage: Option<PathBuf>,
    },

    /// Copy a log, consistent and checked, while its application keeps running.
    #[command(
        long_about = "Copy the log in DIR into DEST (which must not exist or be an empty directory) \
while the application writing it keeps running. The copy holds every event the writer had made \
durable when the command started, ends at a batch boundary, is checked whole (every checksum, \
session chain and id) and ends with a close mark, so it opens like a cleanly closed log. It is \
built in a hidden directory beside DEST and renamed into place only once complete: an error or a \
crash leaves no DEST.

Read-only on DIR: it takes no lock and changes nothing there. A damaged record in DIR fails the \
backup with the file and byte offset; nothing damaged is copied.",
        after_help = "\
Examples:
  sessionlog backup ./sessionlog-data ./backups/2026-12-07
  sessionlog backup ./sessionlog-data /mnt/other-disk/log-copy --json"
    )]
    Backup {
        /// The log directory.
        dir: PathBuf,
        /// Where the copy goes (must not exist or be an empty directory).
        dest: PathBuf,
        /// Print machine-readable JSON instead of text.
        #[arg(long)]
        json: bool,
    },

    /// Print events as JSON Lines (one Event per line) or as a table.
    #[command(
        long_about = "Print events as JSON Lines (one Event per line, exactly as serde writes it, \
so the output can be imported again) or as a readable table. Without --session every session is \
dumped, each in sequence order, sessions in the order they first appear in the log. The filters \
combine (AND); --limit applies per session, to the oldest matches first.",
        after_help = "\
Examples:
  sessionlog dump ./sessionlog-data > all.jsonl
  sessionlog dump ./sessionlog-data --session s1 --after 100 --limit 50
  sessionlog dump ./sessionlog-data --session s1 --type tool_call_failed --format table
  sessionlog dump ./sessionlog-data --since 2025-06-15T10:30:00Z --run run-7"
    )]
    Dump {
        /// The log directory.
        dir: PathBuf,
        /// Only this session (default: every session).
        #[arg(long, value_name = "S")]
        session: Option<String>,
        #[command(flatten)]
        filters: Filters,
        /// Output format.
        #[arg(long, value_enum, default_value_t = EventFormat::Jsonl)]
        format: EventFormat,
    },

    /// Print the last events of a session; with --follow, keep printing new ones.
    #[command(
        long_about = "Print the last N events of a session. With --follow it then keeps printing \
every event another process appends to the session, as soon as it is durable, until interrupted \
(Ctrl-C). Opens the log read-only, so it can follow the log of a running application.",
        after_help = "\
Examples:
  sessionlog tail ./sessionlog-data --session s1
  sessionlog tail ./sessionlog-data --session s1 -n 50 --format table
  sessionlog tail ./sessionlog-data --session s1 --follow"
    )]
    Tail {
        /// The log directory.
        dir: PathBuf,
        /// The session.
        #[arg(long, value_name = "S")]
        session: String,
        /// How many of the last events to print first.
        #[arg(short = 'n', long = "lines", value_name = "N", default_value_t = 10)]
        lines: u64,
        /// Keep printing new events until interrupted.
        #[arg(short, long)]
        follow: bool,
        /// Output format.
        #[arg(long, value_enum, default_value_t = EventFormat::Jsonl)]
        format: EventFormat,
    },

    /// Store the events of a JSON Lines file in a log, keeping their ids.
    #[command(
        long_about = "Store every line of FILE (one Event as JSON per line, as `dump` writes them) \
in the log in DIR (created if missing), in batches, in file order. Event ids are kept, so \
importing the same file twice stores nothing twice: the report counts imported and \
already-present events. Sequence numbers in the file are ignored; each session's events are \
numbered after its latest stored one.

The whole file is checked first: a line that is not a valid Event is reported with its line \
number and nothing is stored. Takes the directory's writer lock.",
        after_help = "\
Examples:
  sessionlog import ./sessionlog-data events.jsonl
  sessionlog dump ./old-log --session s1 > s1.jsonl && sessionlog import ./new-log s1.jsonl"
    )]
    Import {
        /// The log directory (created if missing).
        dir: PathBuf,
        /// The JSON Lines file to import.
        file: PathBuf,
        /// Events per atomic batch.
        #[arg(long, value_name = "N", default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
        batch_size: u64,
    },

    /// Append, read by cursor and follow a demo session (the quick tour).
    #[command(after_help = "\
Examples:
  sessionlog demo
  sessionlog demo /tmp/my-log")]
    Demo {
        /// The log directory to write to.
        #[arg(default_value = "./sessionlog-data")]
        dir: PathBuf,
    },
}

/// The event filters of `dump`.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct Filters {
    /// Only events with a sequence number greater than N.
    #[arg(long, value_name = "N")]
    pub after: Option<u64>,
    /// Only events with a sequence number less than N.
    #[arg(long, value_name = "N")]
    pub before: Option<u64>,
    /// Only events of this run.
    #[arg(long, value_name = "R")]
    pub run: Option<String>,
    /// Only events of this type (snake_case, e.g. message_sent).
    #[arg(long = "type", value_name = "T", value_parser = parse_event_type)]
    pub event_type: Option<EventType>,
    /// Only events after this time (exclusive), RFC 3339 (e.g. 2025-06-15T10:30:00Z).
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub since: Option<SystemTime>,
    /// At most N events (per session).
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
}

fn parse_event_type(s: &str) -> Result<EventType, String> {
    s.parse::<EventType>().map_err(|_| {
        let all: Vec<&str> = EventType::ALL.iter().map(|t| t.as_str()).collect();
        format!(
            "unknown event type {s:?}; expected one of: {}",
            all.join(", ")
        )
    })
}

fn parse_time(s: &str) -> Result<SystemTime, String> {
    sessionlog::timestamp::parse_rfc3339(s)
        .ok_or_else(|| format!("{s:?} is not an RFC 3339 time (like 2025-06-15T10:30:00Z)"))
}

fn run(cli: Cli) -> Result<u8, CliError> {
    match cli.command {
        Command::Stats {
            dir,
            sessions,
            json,
        } => cmd::stats::run(&dir, sessions, json),
        Command::Verify { dir, json } => cmd::verify::run(&dir, json),
        Command::Recover { dir, salvage } => cmd::recover::run(&dir, salvage.as_deref()),
        Command::Backup { dir, dest, json } => cmd::backup::run(&dir, &dest, json),
        Command::Dump {
            dir,
            session,
            filters,
            format,
        } => cmd::dump::run(&dir, session.as_deref(), &filters, format),
        Command::Tail {
            dir,
            session,
            lines,
            follow,
            format,
        } => cmd::tail::run(&dir, &session, lines, follow, format),
        Command::Import {
            dir,
            file,
            batch_size,
        } => cmd::import::run(&dir, &file, usize::try_from(batch_size).unwrap_or(1000)),
        Command::Demo { dir } => cmd::demo::run(&dir),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            if let Some(message) = &e.message {
                output::note(&format!("error: {message}"));
            }
            ExitCode::from(e.code)
        }
    }
}
