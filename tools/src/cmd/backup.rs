//! `sessionlog backup DIR DEST`: a consistent, checked copy of a log,
//! taken while the application that writes it keeps running.
//!
//! Opens the log with `LogStore::open_read_only` (no lock, nothing changed)
//! and calls `LogStore::backup_to`: the copy holds every event the writer
//! had made durable, ends at a batch boundary, is checked whole and ends
//! with a close mark before it is renamed into place.

use std::path::{Path, PathBuf};

use serde::Serialize;
use sessionlog::LogStore;

use crate::error::CliResult;
use crate::logdir::require_log_dir;
use crate::output::{Out, count};
use crate::progress::Progress;

/// The `--json` document.
#[derive(Serialize)]
struct Report {
    dir: PathBuf,
    dest: PathBuf,
    segments: u64,
    records: u64,
    bytes: u64,
}

/// Runs `backup`: exit 0 once the copy is in place.
pub fn run(dir: &Path, dest: &Path, json: bool) -> CliResult<u8> {
    require_log_dir(dir)?;
    let report = {
        let _spinner = Progress::spinner("backing up the log");
        LogStore::open_read_only(dir)?.backup_to(dest)?
    };
    let mut out = Out::new();
    if json {
        out.json(&Report {
            dir: dir.to_path_buf(),
            dest: report.dest,
            segments: report.segments,
            records: report.records,
            bytes: report.bytes,
        })?;
    } else {
        out.line(&format!(
            "backed up {} to {}: {}, {}, {} bytes, checked",
            dir.display(),
            report.dest.display(),
            count(report.records, "record"),
            count(report.segments, "segment"),
            report.bytes
        ))?;
    }
    out.flush()?;
    Ok(0)
}
