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

/// The name of the lock file inside a log directory.
pub(crate) const LOCK_FILE_NAME: &str = "LOCK";

/// The held writer lock of a log directory; dropping it releases the lock.
pub(crate) struct DirLock {
    _file: File,
}

impl DirLock {
    /// Takes the writer lock of `dir`, or fails with [`Error::Locked`] when
    /// another store (in this or another process) holds it.
    pub fn acquire(io: &Io, dir: &Path) -> Result<DirLock> {
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
