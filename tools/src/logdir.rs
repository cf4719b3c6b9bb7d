//! Checking the DIR argument before any command touches it, so that a
//! missing path, a file or a directory that holds no log gets a clear
//! message instead of a low-level I/O error (or, for writers, a new log
//! created somewhere by mistake).

use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use sessionlog::engine::inspect::LOCK_FILE_NAME;
use sessionlog::format::segment::{
    is_prepared_file_name, parse_segment_file_name, segment_file_name,
};

use crate::error::{CliError, CliResult};

/// One segment file of a log directory.
#[derive(Clone, Debug)]
pub struct SegmentFile {
    /// Its number (from the file name).
    pub number: u64,
    /// Its path.
    pub path: PathBuf,
    /// Its size in bytes.
    pub size: u64,
}

/// Checks that `dir` exists, is a directory and holds a log (at least one
/// segment file).
pub fn require_log_dir(dir: &Path) -> CliResult<()> {
    require_dir(dir)?;
    if segment_files(dir)?.is_empty() {
        return Err(CliError::new(format!(
            "{} is not a sessionlog log directory: it holds no segment files (like {})",
            dir.display(),
            segment_file_name(1)
        )));
    }
    Ok(())
}

/// Checks that `dir` can receive events: it is missing (a new log is
/// created), empty, or already a log directory.
pub fn require_import_target(dir: &Path) -> CliResult<()> {
    match fs::metadata(dir) {
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
        _ => require_dir(dir)?,
    }
    let names = list(dir)?;
    let is_log = names
        .iter()
        .any(|n| n == LOCK_FILE_NAME || parse_segment_file_name(n).is_some());
    if names.is_empty() || is_log {
        Ok(())
    } else {
        Err(CliError::new(format!(
            "{} is neither empty nor a sessionlog log directory; choose a new or existing log directory",
            dir.display()
        )))
    }
}

/// Checks that `dir` is a directory, with a message for each way it is not.
pub fn require_dir(dir: &Path) -> CliResult<()> {
    match fs::metadata(dir) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(CliError::new(format!(
            "{} is not a directory",
            dir.display()
        ))),
        Err(e) if e.kind() == ErrorKind::NotFound => Err(CliError::new(format!(
            "no such directory: {}",
            dir.display()
        ))),
        Err(e) => Err(CliError::new(format!("cannot read {}: {e}", dir.display()))),
    }
}

/// The segment files of `dir`, by number.
pub fn segment_files(dir: &Path) -> CliResult<Vec<SegmentFile>> {
    let mut segments = Vec::new();
    for name in list(dir)? {
        let Some(number) = parse_segment_file_name(&name) else {
            continue;
        };
        let path = dir.join(&name);
        let size = fs::metadata(&path)
            .map_err(|e| CliError::new(format!("cannot read {}: {e}", path.display())))?
            .len();
        segments.push(SegmentFile { number, path, size });
    }
    segments.sort_by_key(|s| s.number);
    Ok(segments)
}

/// The prepared segment files of `dir` (a live writer's next segment,
/// format §5: not part of the log), with their sizes, by name.
pub fn prepared_files(dir: &Path) -> CliResult<Vec<(PathBuf, u64)>> {
    let mut files = Vec::new();
    for name in list(dir)?.into_iter().filter(|n| is_prepared_file_name(n)) {
        let path = dir.join(&name);
        // Gone since the listing: the writer renamed or removed it.
        if let Ok(m) = fs::metadata(&path) {
            files.push((path, m.len()));
        }
    }
    files.sort();
    Ok(files)
}

/// The file names in `dir` (names that are not UTF-8 are no segment files).
fn list(dir: &Path) -> CliResult<Vec<String>> {
    let entries = fs::read_dir(dir)
        .map_err(|e| CliError::new(format!("cannot list {}: {e}", dir.display())))?;
    let mut names = Vec::new();
    for entry in entries {
        let entry =
            entry.map_err(|e| CliError::new(format!("cannot list {}: {e}", dir.display())))?;
        if let Ok(name) = entry.file_name().into_string() {
            names.push(name);
        }
    }
    Ok(names)
}
