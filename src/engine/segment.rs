//! Segment files: reading records out of them ([`SegmentSet`]) and appending
//! to the active one ([`SegmentWriter`]).
//!
//! Sealed segments (those with a successor) never change again, so they are
//! read through a read-only memory map, made on first use. The active segment
//! is read with positioned reads (`pread`), since it is still growing.

use std::collections::BTreeMap;
use std::fs::File;
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use parking_lot::RwLock;

use super::io::Io;
use crate::error::{Error, Result};
use crate::format::record::{
    RECORD_HEADER_LEN, RecordParse, parse_header, parse_record, position_offset, position_segment,
};
use crate::format::segment::{encode_segment_header, segment_file_name};

/// How much a positioned read of a record asks for at once: most records
/// fit, so one `pread` usually brings header and body together.
const SPECULATIVE_READ: usize = 1024;

/// One segment file, open for reading (and, when active, written by the
/// [`SegmentWriter`] through the same handle).
pub(crate) struct SegmentFile {
    pub number: u64,
    pub path: PathBuf,
    pub file: File,
    sealed: AtomicBool,
    map: OnceLock<memmap2::Mmap>,
}

impl SegmentFile {
    pub fn new(number: u64, path: PathBuf, file: File, sealed: bool) -> SegmentFile {
        SegmentFile {
            number,
            path,
            file,
            sealed: AtomicBool::new(sealed),
            map: OnceLock::new(),
        }
    }

    /// Marks the segment as never written again (it has a successor now).
    pub fn seal(&self) {
        self.sealed.store(true, Ordering::Release);
    }

    pub fn is_sealed(&self) -> bool {
        self.sealed.load(Ordering::Acquire)
    }

    /// The whole sealed segment, mapped (once; later calls reuse the map).
    pub fn mapped(&self, io: &Io) -> Result<&[u8]> {
        if let Some(m) = self.map.get() {
            return Ok(m);
        }
        let m = io.map(&self.file, &self.path)?;
        // Two readers may race to map; either map is the same bytes.
        let _ = self.map.set(m);
        Ok(self.map.get().map_or(&[][..], |m| &m[..]))
    }
}

/// A record's bytes (header and body): borrowed from a map or read into memory.
pub(crate) enum RecordBytes {
    Mapped(Arc<SegmentFile>, std::ops::Range<usize>),
    Owned(Vec<u8>),
}

impl Deref for RecordBytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            RecordBytes::Mapped(seg, range) => seg.map.get().map_or(&[][..], |m| &m[range.clone()]),
            RecordBytes::Owned(v) => v,
        }
    }
}

/// Every segment of the log, by number, for reading.
pub(crate) struct SegmentSet {
    io: Io,
    dir: PathBuf,
    files: RwLock<BTreeMap<u64, Arc<SegmentFile>>>,
}

impl SegmentSet {
    pub fn new(io: Io, dir: &Path) -> SegmentSet {
        SegmentSet {
            io,
            dir: dir.to_path_buf(),
            files: RwLock::new(BTreeMap::new()),
        }
    }

    /// An [`Error::Corrupt`] naming the file and offset of position `pos`.
    pub fn corrupt(&self, pos: u64, why: impl Into<String>) -> Error {
        let file = self.dir.join(segment_file_name(position_segment(pos)));
        Error::corrupt(file, position_offset(pos), why)
    }

    pub fn insert(&self, segment: Arc<SegmentFile>) {
        self.files.write().insert(segment.number, segment);
    }

    /// The segment numbered `number`.
    pub fn get(&self, number: u64) -> Option<Arc<SegmentFile>> {
        self.files.read().get(&number).cloned()
    }

    fn segment_of(&self, pos: u64) -> Result<Arc<SegmentFile>> {
        let n = position_segment(pos);
        self.get(n)
            .ok_or_else(|| self.corrupt(pos, "a record points into a segment that does not exist"))
    }

    /// The checksum-verified record at `pos`.
    pub fn read_record(&self, pos: u64) -> Result<RecordBytes> {
        let seg = self.segment_of(pos)?;
        let off = position_offset(pos) as usize;
        if seg.is_sealed() {
            let bytes = seg.mapped(&self.io)?;
            let len = check_record(bytes.get(off..).unwrap_or(&[]), &seg.path, off)?;
            return Ok(RecordBytes::Mapped(seg, off..off + len));
        }
        self.pread_record(&seg, off)
    }

    /// Reads the record at `off` of the active segment `seg`: one `pread`
    /// into a stack buffer for a record that fits, a second for the rest.
    fn pread_record(&self, seg: &SegmentFile, off: usize) -> Result<RecordBytes> {
        let mut first = [0u8; SPECULATIVE_READ];
        let got = self
            .io
            .read_at(&seg.file, &seg.path, &mut first, off as u64)?;
        let need = parse_header(&first[..got]).map_or(RECORD_HEADER_LEN, |h| h.record_len());
        let mut buf = first[..got.min(need)].to_vec();
        if need > got && got == SPECULATIVE_READ {
            buf.resize(need, 0);
            let more =
                self.io
                    .read_at(&seg.file, &seg.path, &mut buf[got..], (off + got) as u64)?;
            buf.truncate(got + more);
        }
        let len = check_record(&buf, &seg.path, off)?;
        buf.truncate(len);
        Ok(RecordBytes::Owned(buf))
    }

    /// The (unverified) header fields of the record at `pos`: enough to follow
    /// its previous-record link. Cheaper than [`read_record`](Self::read_record).
    pub fn read_header(&self, pos: u64) -> Result<crate::format::record::RecordHeader> {
        let seg = self.segment_of(pos)?;
        let off = position_offset(pos) as usize;
        let mut local = [0u8; RECORD_HEADER_LEN];
        let bytes: &[u8] = if seg.is_sealed() {
            seg.mapped(&self.io)?.get(off..).unwrap_or(&[])
        } else {
            let got = self
                .io
                .read_at(&seg.file, &seg.path, &mut local, off as u64)?;
            &local[..got]
        };
        parse_header(bytes).map_err(|e| {
            let why = match e {
                crate::format::record::RecordParseError::Incomplete => "record header cut short",
                crate::format::record::RecordParseError::Invalid(why) => why,
            };
            Error::corrupt(&seg.path, off as u64, why)
        })
    }
}

/// Verifies the record at the start of `bytes` (found at `offset` of `path`);
/// returns its length.
fn check_record(bytes: &[u8], path: &Path, offset: usize) -> Result<usize> {
    match parse_record(bytes) {
        RecordParse::Complete(r) => Ok(r.header.record_len()),
        RecordParse::Incomplete => Err(Error::corrupt(path, offset as u64, "record cut short")),
        RecordParse::Invalid(why) => Err(Error::corrupt(path, offset as u64, why)),
    }
}

/// Appends to the active segment and starts new ones: owned by whoever holds
/// the group-commit lock.
pub(crate) struct SegmentWriter {
    io: Io,
    dir: PathBuf,
    active: Arc<SegmentFile>,
    /// Whether bytes were written to `active` since its last `fdatasync`.
    unsynced: bool,
}

impl SegmentWriter {
    pub fn new(io: Io, dir: PathBuf, active: Arc<SegmentFile>) -> SegmentWriter {
        SegmentWriter {
            io,
            dir,
            active,
            unsynced: false,
        }
    }

    /// Writes `bytes` at `offset` of segment `segment`, first starting that
    /// segment when it is the next one.
    pub fn write(
        &mut self,
        set: &SegmentSet,
        segment: u64,
        offset: u64,
        bytes: &[u8],
    ) -> Result<()> {
        if segment != self.active.number {
            self.start_segment(set, segment)?;
        }
        self.unsynced = true;
        self.io
            .write_all_at(&self.active.file, &self.active.path, bytes, offset)
    }

    /// Makes everything written so far durable (`fdatasync` of the active segment).
    pub fn sync(&mut self) -> Result<()> {
        if self.unsynced {
            self.io.sync_data(&self.active.file, &self.active.path)?;
            self.unsynced = false;
        }
        Ok(())
    }

    /// Seals the active segment (synced first, so only the newest segment can
    /// ever have a torn tail) and creates segment `number` with its header.
    fn start_segment(&mut self, set: &SegmentSet, number: u64) -> Result<()> {
        self.sync()?;
        let created = create_segment(&self.io, &self.dir, number)?;
        self.active.seal();
        set.insert(Arc::clone(&created));
        self.active = created;
        self.unsynced = true;
        Ok(())
    }
}

/// Creates segment file `number` in `dir` with its header, and makes the new
/// name durable (directory fsync). The header itself is synced with the
/// segment's first records.
pub(crate) fn create_segment(io: &Io, dir: &Path, number: u64) -> Result<Arc<SegmentFile>> {
    let path = dir.join(segment_file_name(number));
    let file = io.create_new(&path)?;
    io.write_all_at(&file, &path, &encode_segment_header(number), 0)?;
    io.sync_dir(dir)?;
    Ok(Arc::new(SegmentFile::new(number, path, file, false)))
}
