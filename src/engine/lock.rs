//! One writer per directory: an exclusive `flock` on `<dir>/LOCK`.
//!
//! `flock` locks belong to the open file description, so a second open in
//! the same process conflicts just like one in another process, and the
//! operating system drops the lock when the process dies, so a crash never
//! leaves a stale lock behind.
//!
//! The lock also belongs to every copy of that file description, and a
//! child process holds a copy of each open file from its `fork` until its
//! `exec`. A program that starts processes (an agent running tools) while
//! it drops and reopens its store can find the lock still held for that
//! moment. So a lock found held is tried again a few times, for at most
//! [`LOCK_RETRY_DELAYS_MS`] in all, before the open fails with
//! [`Error::Locked`].

use std::fs::{File, TryLockError};
use std::path::Path;
use std::time::Duration;

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
    /// another store (in this or another process) holds it, still after
    /// the short waits of [`LOCK_RETRY_DELAYS_MS`] (module docs).
    pub(crate) fn acquire(io: &Io, dir: &Path) -> Result<DirLock> {
        Self::acquire_waiting(io, dir, |attempt| {
            let ms = LOCK_RETRY_DELAYS_MS.get(attempt)?;
            std::thread::sleep(Duration::from_millis(*ms));
            Some(())
        })
    }

    /// [`acquire`](Self::acquire), calling `wait(n)` after the `n`th try
    /// found the lock held (from 0): it returns `None` to give up.
    fn acquire_waiting(
        io: &Io,
        dir: &Path,
        mut wait: impl FnMut(usize) -> Option<()>,
    ) -> Result<DirLock> {
        let path = dir.join(LOCK_FILE_NAME);
        let created = !path.exists();
        let file = io.open_or_create(&path)?;
        let mut attempt = 0;
        loop {
            match file.try_lock() {
                Ok(()) => break,
                Err(TryLockError::WouldBlock) => {
                    if wait(attempt).is_none() {
                        return Err(Error::Locked {
                            dir: dir.to_path_buf(),
                        });
                    }
                    attempt += 1;
                }
                Err(TryLockError::Error(e)) => return Err(Error::io("lock", &path, e)),
            }
        }
        if created {
            io.sync_dir(dir)?;
        }
        Ok(DirLock { _file: file })
    }
}

/// How long to wait, in turn, before each new try at a lock found held: at
/// most 47 ms in all, enough for a child process to `exec` and let go of
/// its copy of the lock (module docs), short enough not to delay much the
/// clear error of a directory another store really has open.
pub(crate) const LOCK_RETRY_DELAYS_MS: [u64; 6] = [1, 2, 4, 8, 16, 16];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lock_kept_only_by_a_copy_of_its_file_is_taken_once_the_copy_closes() {
        let dir = tempfile::tempdir().unwrap();
        let io = Io::default();
        let first = DirLock::acquire(&io, dir.path()).unwrap();
        // What a child process between `fork` and `exec` holds: a copy of
        // the same open file description, which keeps the `flock`.
        let mut copy = Some(first._file.try_clone().unwrap());
        drop(first);
        let mut waits = Vec::new();
        let second = DirLock::acquire_waiting(&io, dir.path(), |attempt| {
            waits.push(attempt);
            copy.take().map(drop) // the child execs: its copy closes
        });
        assert!(second.is_ok(), "{:?}", second.err());
        assert_eq!(waits, [0], "held once, then free");
    }

    #[test]
    fn a_lock_really_held_fails_after_every_wait() {
        let dir = tempfile::tempdir().unwrap();
        let io = Io::default();
        let _held = DirLock::acquire(&io, dir.path()).unwrap();
        let mut waits = 0;
        let err = DirLock::acquire_waiting(&io, dir.path(), |attempt| {
            waits += 1;
            (attempt < 3).then_some(())
        })
        .unwrap_err();
        assert!(matches!(err, Error::Locked { .. }), "{err}");
        assert_eq!(waits, 4, "three waits, then the fourth try gives up");
        let err = DirLock::acquire(&io, dir.path()).unwrap_err();
        assert!(matches!(err, Error::Locked { .. }), "{err}");
        assert!(LOCK_RETRY_DELAYS_MS.iter().sum::<u64>() < 100);
    }
}
