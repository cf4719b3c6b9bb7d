//! Read-only memory maps of segments: the only `unsafe` in the crate.
//!
//! Two kinds, each with its reason to be sound:
//! - A sealed segment is never written again by any sessionlog process: the
//!   writer only ever appends to (or, on open, truncates the torn tail of)
//!   the newest segment, and a segment with a successor is never the newest.
//!   So the bytes behind its map do not change while the map is alive, which
//!   is what makes handing out `&[u8]` into it sound.
//! - The active segment is still being written, so its map ([`ActiveMap`])
//!   hands out only bytes below a *settled* mark: bytes already written to
//!   the file that no sessionlog code writes or truncates again. A record
//!   is written once (over zeros written before it), the writer never
//!   writes below its end again, and a segment is cut only past its last
//!   record: the zeros when sealing or closing, a torn tail when opening
//!   (before anything of it is settled in that process). A read-only
//!   follower settles only the complete batches it has read, which the
//!   writer (in any process) keeps.
//!
//! Besides mapping, [`unmap_pages`] lets go of a sealed map's pages
//! (`MADV_DONTNEED`), which is sound for the same reason: the file behind
//! the map never changes, so the pages read back are the same bytes.

use std::fs::File;
use std::sync::atomic::{AtomicU64, Ordering};

use memmap2::{Mmap, MmapOptions, MmapRaw};

/// Maps all of `file` read-only. `file` must be a sealed segment (see the
/// module docs) or a file nobody writes while the map lives.
pub(crate) fn map_read_only(file: &File) -> std::io::Result<Mmap> {
    // SAFETY: memmap2 requires that the mapped file is not modified or
    // truncated while the map is alive, or reads through the map could see
    // changing bytes (or fault with SIGBUS). The engine maps only sealed
    // segments, which no sessionlog code writes or truncates (module docs);
    // another program tampering with the file is outside what any on-disk
    // store can defend against, and the checksums of every record read
    // through the map still catch bytes that changed.
    unsafe { MmapOptions::new().map(file) }
}

/// How much of an active segment is mapped: any segment this engine writes
/// by default, and more (address space only; nothing is read or reserved).
/// Bytes past it are read with `pread`.
pub(crate) const ACTIVE_MAP_LEN: usize = 1 << 30;

/// A read-only map of the segment being written, reaching past the file's
/// end; only its settled bytes are ever read (module docs).
pub(crate) struct ActiveMap {
    /// A raw map: it never hands out the whole map as `&[u8]`, only the
    /// settled part, since the rest may change (or lie past the file's end).
    raw: MmapRaw,
    /// Bytes below this offset are written for good.
    settled: AtomicU64,
}

impl ActiveMap {
    /// Maps the first [`ACTIVE_MAP_LEN`] bytes of `file`, none settled yet.
    pub fn new(file: &File) -> std::io::Result<ActiveMap> {
        let raw = MmapOptions::new()
            .len(ACTIVE_MAP_LEN)
            .map_raw_read_only(file)?;
        Ok(ActiveMap {
            raw,
            settled: AtomicU64::new(0),
        })
    }

    /// Declares the file's bytes below `end` written for good: in the file
    /// (the write that put them there has returned, or they were read from
    /// it) and never to be written or cut again by any sessionlog code.
    pub fn settle(&self, end: u64) {
        self.settled.fetch_max(end, Ordering::AcqRel);
    }

    /// The settled bytes from `offset` on (`None` when there are none).
    pub fn settled_from(&self, offset: usize) -> Option<&[u8]> {
        let settled = self.settled.load(Ordering::Acquire);
        let end = usize::try_from(settled).ok()?.min(self.raw.len());
        if offset >= end {
            return None;
        }
        // SAFETY: `offset..end` lies inside the map (`end` is at most its
        // length). Those bytes are settled: already in the file, so reading
        // them cannot fault past its end, and never written or truncated
        // again by sessionlog code while this map lives (module docs;
        // `settle`'s callers promise both). So no write races the shared
        // slice handed out here, which borrows the map and cannot outlive it.
        // As with sealed segments, another program changing the file is out
        // of any store's reach; every record read is checksummed.
        let bytes =
            unsafe { std::slice::from_raw_parts(self.raw.as_ptr().add(offset), end - offset) };
        Some(bytes)
    }
}

/// Drops this process's page-table entries for all of `map`, a sealed
/// segment's map, so that the kernel can free its pages (see
/// [`Io::drop_cached_pages`](super::io::Io::drop_cached_pages), which then
/// evicts them from the page cache). A hint: an error is ignored.
pub(crate) fn unmap_pages(map: &Mmap) {
    // SAFETY: memmap2 marks `MADV_DONTNEED` unchecked because on a private
    // or anonymous mapping it discards contents (the next read sees zeros,
    // or the file without what was written to the map).
    // `map` comes from `map_read_only`, a shared (MAP_SHARED) read-only map
    // of a file, for which Linux documents that later accesses repopulate
    // the pages "from the up-to-date contents of the underlying mapped
    // file". A sealed segment's contents never change (module docs), so
    // every `&[u8]` borrowed from `map`, now or later, reads the same bytes
    // as before; only the first touch of a page after this costs a fault.
    let _ = unsafe { map.unchecked_advise(memmap2::UncheckedAdvice::DontNeed) };
}
