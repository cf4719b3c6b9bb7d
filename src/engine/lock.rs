//! One writer per directory: an exclusive `flock` on `<dir>/LOCK`.
//!
//! `flock` locks belong to the open file description, so a second open in
//! the same process conflicts just like one in another process, and the
//! operating system drops the lock when the process dies, so a crash never
//! leaves a stale lock behind.

use std::fs::{File, TryLockError};
use std::path::Path;

use super::io::Io;
use crate::error::{Error, Result};

/// The name of the writer lock file inside a log directory (the lock is an
/// exclusive `flock` on it).
pub const LOCK_FILE_NAME: &str = "LOCK";

/// The held writer lock of a log directory; dropping it releases the lock.
///
/// A [`LogStore`](crate::LogStore) opened for writing holds one for as long
/// as it is open. Tools that must keep writers away while they read a log
/// they cannot open as a store take one with
/// [`inspect::lock_dir`](super::inspect::lock_dir).
#[derive(Debug)]
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct DirLock {
    _file: File,
}

impl DirLock {
    /// Takes the writer lock of `dir`, or fails with [`Error::Locked`] when
    /// another store (in this or another process) holds it.
    pub(crate) fn acquire(io: &Io, dir: &Path) -> Result<DirLock> {
        let path = dir.join(LOCK_FILE_NAME);
        let created = !path.exists();
        let file = io.open_or_create(&path)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                return Err(Error::Locked {
                    dir: dir.to_path_buf(),
                });
            }
            Err(TryLockError::Error(e)) => return Err(Error::io("lock", &path, e)),
        }
        if created {
            io.sync_dir(dir)?;
        }
        Ok(DirLock { _file: file })
    }
}
