//! Online backup: a consistent, checked copy of an open log
//! ([`LogStore::backup_to`]).
//!
//! Why it can run beside appenders: the copy is cut at a batch boundary
//! that nothing will write again. For a writer that is its durable
//! watermark after a sync; for a read-only store, the end of what its
//! refresh indexed (the writer never rewrites complete batches). Segments
//! before the cut's segment are sealed and never change; the cut's segment
//! is only written past the cut. So the bytes before the cut are read while
//! the log goes on growing, with no lock held.
//!
//! Why a copy is never mistaken for a complete one: it is built in a hidden
//! directory beside the destination, every file synced, checked whole (every
//! checksum, session chain and id, as `inspect::verify` does), ended with a
//! close mark (format §5), and only then renamed into place, with the parent
//! directory synced. An error or a crash before the rename leaves no
//! destination, only the hidden directory (removed on error).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use super::LogStore;
use super::core::{Core, Role};
use super::inspect;
use super::io::Io;
use super::segment::{ends_in_close_mark_at, takes_close_mark};
use crate::error::{Error, Result};
use crate::format::record::{
    RECORD_HEADER_LEN, encode_close_mark, position_offset, position_segment,
};
use crate::format::segment::{SEGMENT_HEADER_LEN, decode_segment_version, segment_file_name};

/// Bytes copied per read and write.
const COPY_CHUNK: usize = 1 << 20;

/// What [`LogStore::backup_to`] copied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupReport {
    /// Where the copy is.
    pub dest: PathBuf,
    /// Segment files copied.
    pub segments: u64,
    /// Bytes copied (segment files, with the close mark the copy ends with).
    pub bytes: u64,
    /// Valid records in the copy, as `inspect::verify` counts them.
    pub records: u64,
}

impl LogStore {
    /// Writes a consistent copy of the log into `dest`, which must not exist
    /// or be an empty directory, while the store stays open and appenders
    /// go on.
    ///
    /// The copy holds every event appended through this store before the call
    /// (a writer syncs first, so under every `SyncPolicy`) or, for a read-only
    /// store, every event the writer had made durable when this call
    /// refreshed it; and nothing partial: it ends at a batch boundary. It is
    /// checked whole before it is put in place (a damaged record in the
    /// source is an error naming the source file and offset, never copied),
    /// ends with a close mark, and opens like any cleanly closed log. It is
    /// built in a hidden directory beside `dest` (`.NAME.backup-PID-N`) and
    /// renamed to `dest` only once complete; an error removes that
    /// directory, a crash leaves it behind (never anything at `dest`).
    ///
    /// ```
    /// use sessionlog::{Event, EventType, LogStore, SessionStore};
    /// # let dir = tempfile::tempdir()?;
    /// # let (log, copy) = (dir.path().join("log"), dir.path().join("copy"));
    /// let store = LogStore::open(&log)?;
    /// store.append_event_with_sequence(Event::new("s", EventType::MessageSent))?;
    /// let report = store.backup_to(&copy)?;
    /// assert_eq!(report.records, 1);
    /// assert_eq!(LogStore::open(&copy)?.get_latest_sequence("s")?, 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn backup_to(&self, dest: impl AsRef<Path>) -> Result<BackupReport> {
        let (dest, io) = (dest.as_ref(), &self.core.io);
        check_destination(io, dest)?;
        let cut = backup_cut(&self.core)?;
        let partial = partial_dir(io, dest)?;
        io.create_dir_all(&partial)?;
        let made = copy_log(&self.core, cut, &partial).and_then(|bytes| {
            let records = match cut.last {
                0 => 0, // An empty log: nothing to check.
                _ => check_copy(&self.core.dir, &partial)?,
            };
            io.rename(&partial, dest)?;
            io.sync_dir(parent_of(dest))?;
            Ok((bytes, records))
        });
        let (bytes, records) = made.inspect_err(|_| {
            let _ = io.remove_dir_all(&partial);
        })?;
        Ok(BackupReport {
            dest: dest.to_path_buf(),
            segments: cut.last,
            bytes,
            records,
        })
    }
}

/// A destination that is missing, or an empty directory (rename replaces it).
fn check_destination(io: &Io, dest: &Path) -> Result<()> {
    let busy = dest.exists() && (!dest.is_dir() || !io.list_dir(dest)?.is_empty());
    if busy {
        return Err(Error::InvalidArgument(format!(
            "backup destination {} exists and is not an empty directory",
            dest.display()
        )));
    }
    Ok(())
}

/// Where the copy ends: segments 1 ..= `last`, the last one cut at `end`
/// bytes (`None`: whole, it is sealed). A batch boundary nothing rewrites,
/// covering every append this store returned (a writer syncs first).
#[derive(Clone, Copy, Debug)]
struct Cut {
    last: u64,
    end: Option<u64>,
}

fn backup_cut(core: &Core) -> Result<Cut> {
    match &core.role {
        Role::Writer { commit, .. } => {
            core.sync_all()?;
            let durable = commit.durable();
            let end = Some(position_offset(durable));
            Ok(Cut {
                last: position_segment(durable),
                end,
            })
        }
        Role::ReadOnly { .. } => {
            core.refresh()?;
            Ok(match core.read_cursor_position() {
                // Segment `n`'s header is not read yet: `n - 1` is sealed.
                (n, 0) => Cut {
                    last: n.saturating_sub(1),
                    end: None,
                },
                (n, offset) => Cut {
                    last: n,
                    end: Some(offset),
                },
            })
        }
    }
}

fn parent_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// A hidden directory beside `dest` to build the copy in (its parent is
/// created if missing), named so that no other backup picks the same.
fn partial_dir(io: &Io, dest: &Path) -> Result<PathBuf> {
    static TAKEN: AtomicU64 = AtomicU64::new(0);
    let name = dest.file_name().ok_or_else(|| {
        Error::InvalidArgument(format!("backup destination {} has no name", dest.display()))
    })?;
    let parent = parent_of(dest);
    io.create_dir_all(parent)?;
    let unique = format!(
        ".{}.backup-{}-{}",
        name.to_string_lossy(),
        std::process::id(),
        TAKEN.fetch_add(1, Ordering::Relaxed)
    );
    Ok(parent.join(unique))
}

/// Copies the segments the cut covers, ends the copy with a close mark,
/// syncs every file and the directory. Returns the bytes written.
fn copy_log(core: &Core, cut: Cut, to: &Path) -> Result<u64> {
    let mut bytes = 0;
    for number in 1..=cut.last {
        let name = segment_file_name(number);
        let from = core.dir.join(&name);
        let is_last = number == cut.last;
        let len = match cut.end {
            Some(end) if is_last => end,
            _ => core.io.file_size(&from)?,
        };
        bytes += copy_segment(&core.io, &from, &to.join(&name), len, is_last)?;
    }
    core.io.sync_dir(to)?;
    Ok(bytes)
}

/// Copies the first `len` bytes of `from` into a new file `to`, appending a
/// close mark when `last` asks for one, and syncs it. Returns its length.
fn copy_segment(io: &Io, from: &Path, to: &Path, len: u64, last: bool) -> Result<u64> {
    let src = io.open_ro(from)?;
    let dst = io.create_new(to)?;
    let mut buf = vec![0u8; COPY_CHUNK];
    let mut at = 0;
    while at < len {
        let want = (len - at).min(COPY_CHUNK as u64) as usize;
        let got = io.read_at(&src, from, &mut buf[..want], at)?;
        if got < want {
            let why = "segment ended before the backup's cut";
            return Err(Error::corrupt(from, at + got as u64, why));
        }
        io.write_all_at(&dst, to, &buf[..want], at)?;
        at += want as u64;
    }
    if last && wants_close_mark(io, &dst, to, len)? {
        let mut mark = Vec::with_capacity(RECORD_HEADER_LEN);
        encode_close_mark(&mut mark, len as u32);
        io.write_all_at(&dst, to, &mark, len)?;
        at += mark.len() as u64;
    }
    io.sync_data(&dst, to)?;
    Ok(at)
}

/// Whether the copy's newest segment, `len` bytes long, takes a close mark
/// ([`takes_close_mark`], read off its header and its last record).
fn wants_close_mark(io: &Io, file: &std::fs::File, path: &Path, len: u64) -> Result<bool> {
    let mut header = [0u8; SEGMENT_HEADER_LEN];
    io.read_at(file, path, &mut header, 0)?;
    let version = decode_segment_version(&header).unwrap_or(0);
    let marked = ends_in_close_mark_at(io, file, path, len)?;
    Ok(takes_close_mark(version, marked, len))
}

/// Checks the copy whole; returns its valid records. A problem is reported
/// against the source file it came from.
fn check_copy(source: &Path, copy: &Path) -> Result<u64> {
    let report = inspect::verify(copy)?;
    match report.problems.first() {
        None => Ok(report.records),
        Some(p) => {
            let name = p.file.file_name().map(PathBuf::from).unwrap_or_default();
            Err(Error::corrupt(
                source.join(name),
                p.offset,
                p.reason.clone(),
            ))
        }
    }
}
