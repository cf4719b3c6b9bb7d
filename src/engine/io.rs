//! The one door to the file system: every file operation of the engine goes
//! through [`Io`], so tests can make any of them fail ([`FaultInjector`]).
//!
//! `Io` also turns `std::io::Error`s into [`Error::Io`] naming the operation
//! and the path, so callers never lose the "what and where".

use std::ffi::OsString;
use std::fs::{DirBuilder, File, OpenOptions};
use std::os::unix::fs::{DirBuilderExt, FileExt, OpenOptionsExt};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};

use crate::error::{Error, Result};

/// Owner-only permissions for the files the engine creates.
const FILE_MODE: u32 = 0o600;
/// Owner-only permissions for the directories the engine creates.
const DIR_MODE: u32 = 0o700;

/// Makes the engine's file I/O fail on purpose, for tests.
///
/// Cloning shares the same plan, so a test keeps a clone and changes the plan
/// while a store uses it (`LogOptions::faults`). Only writes and syncs are
/// affected; a fresh injector lets everything through.
///
/// ```
/// use sessionlog::engine::FaultInjector;
/// let faults = FaultInjector::new();
/// faults.disk_full_after(4096); // the write crossing 4 KiB is cut short, then ENOSPC
/// faults.fail_syncs(true);      // every fdatasync/fsync fails with EIO
/// faults.heal();                // back to normal
/// ```
#[derive(Clone, Default)]
pub struct FaultInjector {
    plan: Arc<FaultPlan>,
}

#[derive(Default)]
struct FaultPlan {
    /// Whether `write_budget` limits writes at all.
    limited: AtomicBool,
    /// Bytes that may still be written before writes fail.
    write_budget: AtomicU64,
    /// The errno writes fail with once the budget is spent.
    write_errno: AtomicI32,
    fail_syncs: AtomicBool,
}

impl FaultInjector {
    /// An injector that lets everything through (until told otherwise).
    pub fn new() -> FaultInjector {
        FaultInjector::default()
    }

    /// Lets `bytes` more bytes be written; the write that crosses the limit is
    /// cut short there and fails with EIO, as does every write after it.
    pub fn fail_writes_after(&self, bytes: u64) {
        self.limit_writes(bytes, libc_errno::EIO);
    }

    /// Like [`fail_writes_after`](Self::fail_writes_after), but the error is
    /// ENOSPC: the disk is full.
    pub fn disk_full_after(&self, bytes: u64) {
        self.limit_writes(bytes, libc_errno::ENOSPC);
    }

    /// Makes every `fdatasync`/`fsync` fail with EIO (`true`) or succeed again.
    pub fn fail_syncs(&self, fail: bool) {
        self.plan.fail_syncs.store(fail, Ordering::SeqCst);
    }

    /// Lets every operation through again.
    pub fn heal(&self) {
        self.plan.limited.store(false, Ordering::SeqCst);
        self.plan.fail_syncs.store(false, Ordering::SeqCst);
    }

    fn limit_writes(&self, bytes: u64, errno: i32) {
        self.plan.write_budget.store(bytes, Ordering::SeqCst);
        self.plan.write_errno.store(errno, Ordering::SeqCst);
        self.plan.limited.store(true, Ordering::SeqCst);
    }

    /// How many of `wanted` bytes may be written now, and the error to report
    /// for the rest (if any).
    fn allow_write(&self, wanted: usize) -> (usize, Option<std::io::Error>) {
        if !self.plan.limited.load(Ordering::SeqCst) {
            return (wanted, None);
        }
        let budget = self.plan.write_budget.load(Ordering::SeqCst);
        let allowed = usize::try_from(budget).unwrap_or(usize::MAX).min(wanted);
        self.plan
            .write_budget
            .fetch_sub(allowed as u64, Ordering::SeqCst);
        let err = (allowed < wanted).then(|| {
            std::io::Error::from_raw_os_error(self.plan.write_errno.load(Ordering::SeqCst))
        });
        (allowed, err)
    }

    /// The bytes writes may still use, when they are limited.
    fn write_budget(&self) -> Option<u64> {
        let p = &self.plan;
        p.limited
            .load(Ordering::SeqCst)
            .then(|| p.write_budget.load(Ordering::SeqCst))
    }

    fn sync_error(&self) -> Option<std::io::Error> {
        self.plan
            .fail_syncs
            .load(Ordering::SeqCst)
            .then(|| std::io::Error::from_raw_os_error(libc_errno::EIO))
    }
}

impl std::fmt::Debug for FaultInjector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let p = &self.plan;
        f.debug_struct("FaultInjector")
            .field("writes_limited", &p.limited.load(Ordering::Relaxed))
            .field("write_budget", &p.write_budget.load(Ordering::Relaxed))
            .field("fail_syncs", &p.fail_syncs.load(Ordering::Relaxed))
            .finish()
    }
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn free_space(dir: &Path) -> std::io::Result<u64> {
    let st = rustix::fs::statvfs(dir)?;
    Ok(st.f_bavail.saturating_mul(st.f_frsize))
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn free_space(_dir: &Path) -> std::io::Result<u64> {
    Ok(0)
}

/// The two errno values the injector reports (Linux numbering, which is what
/// `from_raw_os_error` interprets them as on the platforms we run on).
mod libc_errno {
    pub const EIO: i32 = 5;
    pub const ENOSPC: i32 = 28;
}

/// The engine's file-system layer: thin wrappers that name what failed and
/// where, and consult the [`FaultInjector`] when there is one.
#[derive(Clone, Default)]
pub(crate) struct Io {
    faults: Option<FaultInjector>,
}

impl Io {
    /// An `Io` that injects the faults `faults` plans (none when `None`).
    pub fn new(faults: Option<FaultInjector>) -> Io {
        Io { faults }
    }

    /// Creates `dir` (and missing parents) owner-only.
    pub fn create_dir_all(&self, dir: &Path) -> Result<()> {
        DirBuilder::new()
            .recursive(true)
            .mode(DIR_MODE)
            .create(dir)
            .map_err(|e| Error::io("create directory", dir, e))
    }

    /// Creates a new file, owner-only, for reading and writing; fails if it exists.
    pub fn create_new(&self, path: &Path) -> Result<File> {
        OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(FILE_MODE)
            .open(path)
            .map_err(|e| Error::io("create", path, e))
    }

    /// Opens (creating if missing, owner-only) a file for reading and writing.
    pub fn open_or_create(&self, path: &Path) -> Result<File> {
        OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(FILE_MODE)
            .open(path)
            .map_err(|e| Error::io("open", path, e))
    }

    /// Opens an existing file for reading and writing.
    pub fn open_rw(&self, path: &Path) -> Result<File> {
        OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(|e| Error::io("open", path, e))
    }

    /// Opens an existing file for reading only.
    pub fn open_ro(&self, path: &Path) -> Result<File> {
        File::open(path).map_err(|e| Error::io("open", path, e))
    }

    /// Writes all of `buf` at `offset` (a failed or short write is an error).
    pub fn write_all_at(&self, file: &File, path: &Path, buf: &[u8], offset: u64) -> Result<()> {
        let (allowed, injected) = match &self.faults {
            Some(f) => f.allow_write(buf.len()),
            None => (buf.len(), None),
        };
        file.write_all_at(&buf[..allowed], offset)
            .map_err(|e| Error::io("write", path, e))?;
        match injected {
            Some(e) => Err(Error::io("write", path, e)),
            None => Ok(()),
        }
    }

    /// `fdatasync`: the file's data (and the size) reach stable storage.
    pub fn sync_data(&self, file: &File, path: &Path) -> Result<()> {
        if let Some(e) = self.faults.as_ref().and_then(FaultInjector::sync_error) {
            return Err(Error::io("fdatasync", path, e));
        }
        file.sync_data()
            .map_err(|e| Error::io("fdatasync", path, e))
    }

    /// `fsync`: the file's data and all of its metadata reach stable storage
    /// (used where the size shrinks and nothing else would carry it).
    pub fn sync_all(&self, file: &File, path: &Path) -> Result<()> {
        if let Some(e) = self.faults.as_ref().and_then(FaultInjector::sync_error) {
            return Err(Error::io("fsync", path, e));
        }
        file.sync_all().map_err(|e| Error::io("fsync", path, e))
    }

    /// `fsync` of a directory, so created, renamed or removed entries are durable.
    pub fn sync_dir(&self, dir: &Path) -> Result<()> {
        if let Some(e) = self.faults.as_ref().and_then(FaultInjector::sync_error) {
            return Err(Error::io("fsync directory", dir, e));
        }
        let d = File::open(dir).map_err(|e| Error::io("open directory", dir, e))?;
        d.sync_all()
            .map_err(|e| Error::io("fsync directory", dir, e))
    }

    /// Reads up to `buf.len()` bytes at `offset`; fewer only at the end of the file.
    pub fn read_at(&self, file: &File, path: &Path, buf: &mut [u8], offset: u64) -> Result<usize> {
        let mut done = 0;
        while done < buf.len() {
            match file.read_at(&mut buf[done..], offset + done as u64) {
                Ok(0) => break,
                Ok(n) => done += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Error::io("read", path, e)),
            }
        }
        Ok(done)
    }

    /// Reads the whole file from `offset` to its current end.
    pub fn read_from(&self, file: &File, path: &Path, offset: u64) -> Result<Vec<u8>> {
        self.read_window(file, path, offset, usize::MAX)
    }

    /// Reads at most `max` bytes at `offset` (fewer at the end of the file).
    pub fn read_window(
        &self,
        file: &File,
        path: &Path,
        offset: u64,
        max: usize,
    ) -> Result<Vec<u8>> {
        let len = self.file_len(file, path)?;
        let left = len.saturating_sub(offset).min(max as u64);
        let want = usize::try_from(left)
            .map_err(|_| Error::io("read", path, std::io::ErrorKind::OutOfMemory.into()))?;
        let mut buf = vec![0u8; want];
        let got = self.read_at(file, path, &mut buf, offset)?;
        buf.truncate(got);
        Ok(buf)
    }

    /// The file's current length.
    pub fn file_len(&self, file: &File, path: &Path) -> Result<u64> {
        file.metadata()
            .map(|m| m.len())
            .map_err(|e| Error::io("stat", path, e))
    }

    /// The length of the file at `path`.
    pub fn file_size(&self, path: &Path) -> Result<u64> {
        std::fs::metadata(path)
            .map(|m| m.len())
            .map_err(|e| Error::io("stat", path, e))
    }

    /// Cuts (or extends) the file to `len` bytes.
    pub fn set_len(&self, file: &File, path: &Path, len: u64) -> Result<()> {
        file.set_len(len)
            .map_err(|e| Error::io("truncate", path, e))
    }

    /// The names of the entries of `dir`.
    pub fn list_dir(&self, dir: &Path) -> Result<Vec<OsString>> {
        let entries = std::fs::read_dir(dir).map_err(|e| Error::io("read directory", dir, e))?;
        entries
            .map(|e| {
                e.map(|e| e.file_name())
                    .map_err(|e| Error::io("read directory", dir, e))
            })
            .collect()
    }

    /// Asks the kernel to evict the clean pages of the file at `path` from
    /// the page cache (`POSIX_FADV_DONTNEED`). Pages some process still maps
    /// stay. A hint: nothing is changed on disk, and a failure is ignored.
    pub fn drop_cached_pages(&self, path: &Path) {
        #[cfg(any(target_os = "linux", target_os = "android"))]
        if let Ok(file) = File::open(path) {
            let _ = rustix::fs::fadvise(&file, 0, None, rustix::fs::Advice::DontNeed);
        }
        #[cfg(not(any(target_os = "linux", target_os = "android")))]
        let _ = path;
    }

    /// Renames `from` to `to` (atomically, on one file system).
    pub fn rename(&self, from: &Path, to: &Path) -> Result<()> {
        std::fs::rename(from, to).map_err(|e| Error::io("rename", from, e))
    }

    /// The bytes free for us on the file system holding `dir` (what
    /// `statvfs` calls available), or at most what an injected write limit
    /// still lets through. 0 where it cannot be known (not Linux).
    pub fn available_space(&self, dir: &Path) -> Result<u64> {
        let free = free_space(dir).map_err(|e| Error::io("statvfs", dir, e))?;
        let budget = self.faults.as_ref().and_then(FaultInjector::write_budget);
        Ok(budget.map_or(free, |b| b.min(free)))
    }

    /// Removes a file.
    pub fn remove_file(&self, path: &Path) -> Result<()> {
        std::fs::remove_file(path).map_err(|e| Error::io("remove", path, e))
    }

    /// Removes a directory and everything in it.
    pub fn remove_dir_all(&self, dir: &Path) -> Result<()> {
        std::fs::remove_dir_all(dir).map_err(|e| Error::io("remove directory", dir, e))
    }

    /// Maps a file that is never written again read-only into memory.
    pub fn map(&self, file: &File, path: &Path) -> Result<memmap2::Mmap> {
        super::mmap::map_read_only(file).map_err(|e| Error::io("mmap", path, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn injected_write_limit_cuts_short_then_fails() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let faults = FaultInjector::new();
        let io = Io::new(Some(faults.clone()));
        let f = io.create_new(&path).unwrap();
        io.write_all_at(&f, &path, b"0123", 0).unwrap();
        faults.disk_full_after(2);
        let err = io.write_all_at(&f, &path, b"4567", 4).unwrap_err();
        assert!(err.to_string().contains("write"), "{err}");
        assert_eq!(std::fs::read(&path).unwrap(), b"012345");
        faults.fail_syncs(true);
        assert!(io.sync_data(&f, &path).is_err());
        faults.heal();
        io.sync_data(&f, &path).unwrap();
        io.write_all_at(&f, &path, b"67", 6).unwrap();
    }
}
