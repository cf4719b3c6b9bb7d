//! Read-only memory maps of sealed segments: the only `unsafe` in the crate.
//!
//! A sealed segment is never written again by any sessionlog process: the
//! writer only ever appends to (or, on open, truncates the torn tail of) the
//! newest segment, and a segment with a successor is never the newest. So
//! the bytes behind a map do not change while it is alive, which is what
//! makes handing out `&[u8]` into it sound.

use std::fs::File;

use memmap2::{Mmap, MmapOptions};

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
