//! Segment files: reading records out of them ([`SegmentSet`]) and appending
//! to the active one ([`SegmentWriter`]).
//!
//! Sealed segments (those with a successor) never change again, so they are
//! read through a read-only memory map, made when they are sealed; their file
//! descriptor is closed then, so a log of thousands of segments does not hold
//! thousands of open files. The active segment is still growing: it is
//! mapped too, but read in place only below its settled mark, the bytes
//! written for good (see [`ActiveMap`]); a record past that mark (being
//! written) or past the map is read with a positioned read (`pread`).

use std::collections::BTreeMap;
use std::fs::File;
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use memmap2::Mmap;
use parking_lot::RwLock;

use super::io::Io;
use super::mmap::ActiveMap;
use super::next_segment::{MIN_PREPARED_SEGMENT, PreparedSegment, SegmentPreparer};
use super::sealed_pages::SealedPages;
use crate::error::{Error, Result};
use crate::format::record::{
    RECORD_HEADER_LEN, RecordParse, encode_close_mark, is_close_mark_at, parse_header,
    parse_record, position_offset, position_segment,
};
use crate::format::segment::{
    CLAIMING_VERSION, CLOSE_MARK_VERSION, FORMAT_VERSION, PREALLOCATING_VERSION,
    SEGMENT_HEADER_LEN, decode_segment_version, encode_segment_header, segment_file_name,
};

/// How much a positioned read of a record asks for at once: most records
/// fit, so one `pread` usually brings header and body together.
const SPECULATIVE_READ: usize = 1024;

/// How a segment's bytes are reached.
enum Backing {
    /// The active segment: open and written with positioned I/O, read
    /// through its map up to the settled mark (or with `pread` when it could
    /// not be mapped, and past the map).
    Open { file: File, map: Option<ActiveMap> },
    /// A sealed segment: all of it mapped read-only.
    Mapped(Mmap),
}

/// One segment file: open while active, mapped once sealed.
pub(crate) struct SegmentFile {
    pub number: u64,
    pub path: PathBuf,
    backing: Backing,
}

impl SegmentFile {
    /// The active (or newest) segment, open as `file`; nothing of it is
    /// settled yet (see [`settle`](Self::settle)).
    pub fn open(number: u64, path: PathBuf, file: File) -> SegmentFile {
        // Without a map, reads fall back to `pread`: slower, still correct.
        let map = map_active(&file);
        SegmentFile {
            number,
            path,
            backing: Backing::Open { file, map },
        }
    }

    /// Loads a byte of every cache line of the first [`TOUCH_BYTES`] of the
    /// record at `pos` if this segment is mapped, and does nothing with
    /// them: a walk of several chains touches each chain's next record
    /// before reading any, so that their cache misses overlap. (The loads
    /// of all chains must lie within a few hundred instructions of each
    /// other for the CPU to have them in flight together, which is why the
    /// walk keeps each chain's segment rather than looking it up here.)
    pub fn touch(&self, pos: u64) {
        if let Some(bytes) = self.bytes_from(position_offset(pos) as usize) {
            for line in (0..TOUCH_BYTES).step_by(64) {
                std::hint::black_box(bytes.get(line).copied());
            }
        }
    }

    /// Declares this active segment's bytes below `end` written for good:
    /// in the file, and never written or cut again (see [`ActiveMap`]).
    pub fn settle(&self, end: u64) {
        if let Backing::Open { map: Some(map), .. } = &self.backing {
            map.settle(end);
        }
    }

    /// The bytes from `offset` on that can be read in place: to the end of
    /// a sealed segment, or to the settled mark of an active one.
    pub fn bytes_from(&self, offset: usize) -> Option<&[u8]> {
        match &self.backing {
            Backing::Mapped(m) => m.get(offset..),
            Backing::Open { map, .. } => map.as_ref()?.settled_from(offset),
        }
    }

    /// Whether this is an active segment read through its map.
    pub fn has_active_map(&self) -> bool {
        matches!(&self.backing, Backing::Open { map: Some(_), .. })
    }

    /// Whether records are read in place: sealed, or active with a map.
    pub fn reads_in_place(&self) -> bool {
        self.mapped().is_some() || self.has_active_map()
    }

    /// A sealed segment: maps `file`, which may be closed afterwards.
    pub fn sealed(io: &Io, number: u64, path: PathBuf, file: &File) -> Result<SegmentFile> {
        let map = io.map(file, &path)?;
        Ok(SegmentFile {
            number,
            path,
            backing: Backing::Mapped(map),
        })
    }

    /// This segment sealed: the same bytes, mapped.
    pub fn to_sealed(&self, io: &Io) -> Result<SegmentFile> {
        match &self.backing {
            Backing::Open { file, .. } => {
                SegmentFile::sealed(io, self.number, self.path.clone(), file)
            }
            Backing::Mapped(_) => Err(Error::Failed(format!(
                "{} is sealed twice",
                self.path.display()
            ))),
        }
    }

    /// The open file of an active segment (`None` once sealed).
    pub fn file(&self) -> Option<&File> {
        match &self.backing {
            Backing::Open { file, .. } => Some(file),
            Backing::Mapped(_) => None,
        }
    }

    /// The whole segment, for a sealed one (`None` while active).
    pub fn mapped(&self) -> Option<&[u8]> {
        match &self.backing {
            Backing::Mapped(m) => Some(m),
            Backing::Open { .. } => None,
        }
    }

    /// Has the kernel map every page of this sealed segment now
    /// (`MADV_POPULATE_READ`; a hint, so a failure is ignored).
    pub fn populate(&self) {
        #[cfg(target_os = "linux")]
        if let Backing::Mapped(map) = &self.backing {
            let _ = map.advise(memmap2::Advice::PopulateRead);
        }
    }

    /// Lets the kernel free the cached pages of this sealed segment: drops
    /// this process's mappings of them, then evicts them from the page
    /// cache. Reads still work; each page's first touch afterwards reads it
    /// from the disk again. A hint, so a failure is ignored.
    pub fn release_pages(&self, io: &Io) {
        if let Backing::Mapped(map) = &self.backing {
            super::mmap::unmap_pages(map);
            io.drop_cached_pages(&self.path);
        }
    }

    /// The open file, or an error saying this segment is sealed.
    fn open_file(&self) -> Result<&File> {
        self.file().ok_or_else(|| {
            Error::Failed(format!(
                "{} is sealed and cannot be written",
                self.path.display()
            ))
        })
    }
}

/// The active segment's map (`None` when mapping fails, and in tests of
/// the `pread` path, see `tests::without_active_map`).
fn map_active(file: &File) -> Option<ActiveMap> {
    #[cfg(test)]
    if tests::WITHOUT_ACTIVE_MAP.with(std::cell::Cell::get) {
        return None;
    }
    ActiveMap::new(file).ok()
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
            RecordBytes::Mapped(seg, range) => seg
                .bytes_from(range.start)
                .and_then(|b| b.get(..range.len()))
                .unwrap_or(&[]),
            RecordBytes::Owned(v) => v,
        }
    }
}

/// Every segment of the log, by number, for reading.
pub(crate) struct SegmentSet {
    io: Io,
    dir: PathBuf,
    files: RwLock<BTreeMap<u64, Arc<SegmentFile>>>,
    sealed_pages: SealedPages,
}

impl SegmentSet {
    pub fn new(io: Io, dir: &Path) -> SegmentSet {
        SegmentSet {
            dir: dir.to_path_buf(),
            files: RwLock::new(BTreeMap::new()),
            sealed_pages: SealedPages::default(),
            io,
        }
    }

    /// How many of the segments this process seals keep their pages cached
    /// (`LogOptions::cached_sealed_segments`; see [`SealedPages`]).
    pub fn set_cached_window(&mut self, window: Option<usize>) {
        self.sealed_pages.set_window(window);
    }

    /// An [`Error::Corrupt`] naming the file and offset of position `pos`.
    pub fn corrupt(&self, pos: u64, why: impl Into<String>) -> Error {
        let file = self.dir.join(segment_file_name(position_segment(pos)));
        Error::corrupt(file, position_offset(pos), why)
    }

    pub fn insert(&self, segment: Arc<SegmentFile>) {
        self.files.write().insert(segment.number, segment);
    }

    /// Adds `segment`, which this process just sealed, and has its pages
    /// mapped, or later released, in the background (see [`SealedPages`]).
    pub fn insert_just_sealed(&self, segment: SegmentFile) {
        let segment = Arc::new(segment);
        self.sealed_pages.sealed(Arc::clone(&segment), &self.io);
        self.insert(segment);
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

    /// The segment of the record at `pos` if that record can be read in
    /// place: in a sealed segment, or settled in the active one's map.
    pub fn in_place_segment(&self, pos: u64) -> Option<Arc<SegmentFile>> {
        let off = position_offset(pos) as usize;
        self.get(position_segment(pos))
            .filter(|seg| seg.bytes_from(off).is_some())
    }

    /// Makes `seg` the segment of the record at `pos`, looking it up only
    /// when `pos` is in another one: a walk that keeps its segment spares
    /// a lookup per record (and keeps its touches close together; see
    /// [`SegmentFile::touch`]).
    pub fn follow(&self, seg: &mut Arc<SegmentFile>, pos: u64) -> Result<()> {
        if seg.number != position_segment(pos) {
            *seg = self.segment_of(pos)?;
        }
        Ok(())
    }

    /// The checksum-verified record at `pos`.
    pub fn read_record(&self, pos: u64) -> Result<RecordBytes> {
        self.read_record_in(&self.segment_of(pos)?, pos)
    }

    /// [`read_record`](Self::read_record) of a record in `seg` (its segment).
    pub fn read_record_in(&self, seg: &Arc<SegmentFile>, pos: u64) -> Result<RecordBytes> {
        let seg = Arc::clone(seg);
        let off = position_offset(pos) as usize;
        if let Some(bytes) = seg.mapped() {
            let len = check_record(bytes.get(off..).unwrap_or(&[]), &seg.path, off)?;
            return Ok(RecordBytes::Mapped(seg, off..off + len));
        }
        // An active segment's record, in place when all of it is settled
        // (a record being written is read, and judged, with `pread`).
        if let Some(bytes) = seg.bytes_from(off)
            && let RecordParse::Complete(r) = parse_record(bytes)
        {
            let len = r.header.record_len();
            return Ok(RecordBytes::Mapped(seg, off..off + len));
        }
        self.pread_record(&seg, off)
    }

    /// Reads the record at `off` of the active segment `seg`: one `pread`
    /// into a stack buffer for a record that fits, a second for the rest.
    fn pread_record(&self, seg: &SegmentFile, off: usize) -> Result<RecordBytes> {
        let file = seg.open_file()?;
        let mut first = [0u8; SPECULATIVE_READ];
        let got = self.io.read_at(file, &seg.path, &mut first, off as u64)?;
        let need = parse_header(&first[..got]).map_or(RECORD_HEADER_LEN, |h| h.record_len());
        let mut buf = first[..got.min(need)].to_vec();
        if need > got && got == SPECULATIVE_READ {
            buf.resize(need, 0);
            let more = self
                .io
                .read_at(file, &seg.path, &mut buf[got..], (off + got) as u64)?;
            buf.truncate(got + more);
        }
        let len = check_record(&buf, &seg.path, off)?;
        buf.truncate(len);
        Ok(RecordBytes::Owned(buf))
    }

    /// The (unverified) header fields of the record at `pos`: enough to follow
    /// its previous-record link. Cheaper than [`read_record`](Self::read_record).
    pub fn read_header(&self, pos: u64) -> Result<crate::format::record::RecordHeader> {
        self.read_header_in(&*self.segment_of(pos)?, pos)
    }

    /// [`read_header`](Self::read_header) of a record in `seg` (its segment).
    pub fn read_header_in(
        &self,
        seg: &SegmentFile,
        pos: u64,
    ) -> Result<crate::format::record::RecordHeader> {
        let off = position_offset(pos) as usize;
        let mut local = [0u8; RECORD_HEADER_LEN];
        let in_place = match seg.mapped() {
            Some(m) => Some(m.get(off..).unwrap_or(&[])),
            None => seg.bytes_from(off).filter(|b| b.len() >= RECORD_HEADER_LEN),
        };
        let bytes: &[u8] = match in_place {
            Some(b) => b,
            None => {
                let got = self
                    .io
                    .read_at(seg.open_file()?, &seg.path, &mut local, off as u64)?;
                &local[..got]
            }
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

/// How far ahead of its records the active segment is filled with zeros.
///
/// Writing into bytes the file already has makes each group's `fdatasync`
/// cheap: no block to allocate and no size to change, so no metadata to write,
/// only the data and a cache flush (on this machine's ext4, one 10 KB group
/// took 271 µs to make durable when appended and 135 µs when written over
/// zeros). The cost moves to one extension every `PREALLOCATE` bytes. Only
/// worth it when every group is synced (`SyncPolicy::Always`): a buffered log
/// syncs rarely, and would write each byte twice for nothing.
pub(crate) const PREALLOCATE: u64 = 256 << 10;

/// The next segment is asked for once the active one holds a
/// `1 / PREPARE_AT` part of the segment size (a sixteenth: 4 MiB of a 64 MiB
/// segment).
///
/// Why so early: the preparer writes a whole segment of zeros in the time
/// the log takes to fill the rest of this one, and at full speed the two
/// write about as fast (64 × 4 KiB events: ~300 MB/s of records, the same of
/// zeros). Asked for at half full, the next segment was not ready at 1 to 5
/// of 11 to 16 rollovers in a run, and the writer then created it itself,
/// its zeros on the groups' path, the preparer's half-written file wasted;
/// at a sixteenth, at 0 or 1 of 13 to 18 (BENCHMARKS.md, sixteenth
/// session). Why not at once: a log smaller than this never gets a second
/// file.
pub(crate) const PREPARE_AT: u64 = 16;

/// Zeros to extend a segment with, written a piece at a time.
static ZEROS: [u8; 64 << 10] = [0; 64 << 10];

/// Appends to the active segment and starts new ones: owned by whoever holds
/// the group-commit lock.
pub(crate) struct SegmentWriter {
    io: Io,
    dir: PathBuf,
    active: Arc<SegmentFile>,
    /// Whether bytes were written to `active` since its last `fdatasync`.
    unsynced: bool,
    /// The end of the records written to `active`.
    end: u64,
    /// The length of `active`'s file: from `end` on, zeros (preallocated).
    len: u64,
    /// Segments are not preallocated past this size.
    segment_size: u64,
    /// Whether the sync policy wants preallocation (`SyncPolicy::Always`).
    preallocate: bool,
    /// How far ahead to preallocate in `active`: [`PREALLOCATE`], or 0 (not
    /// wanted, or `active` is of a format version before preallocation).
    ahead: u64,
    /// The format version of `active` (a new segment's is [`FORMAT_VERSION`]).
    version: u32,
    /// Whether `active` ends in a close mark: nothing written since the last
    /// clean close, so closing again adds no second one.
    marked: bool,
    /// Prepares the next segment ahead (`SyncPolicy::Always`, segments of
    /// at least [`MIN_PREPARED_SEGMENT`]), once `active` holds
    /// `segment_size / PREPARE_AT` bytes of records.
    /// (Boxed: a writer without one stays small.)
    preparer: Option<Box<SegmentPreparer>>,
    /// Whether the segment after `active` was asked for.
    asked_next: bool,
}

impl SegmentWriter {
    /// A writer appending to `active` at `end`, keeping zeros preallocated
    /// ahead of its records when `preallocate` and `active`'s format version
    /// allows it (a version 1 segment is continued without: format §7).
    pub fn new(
        io: Io,
        dir: PathBuf,
        active: Arc<SegmentFile>,
        end: u64,
        (segment_size, preallocate): (u64, bool),
    ) -> Result<SegmentWriter> {
        let file = active.open_file()?;
        // Recovery kept the records before `end`; nothing cuts them now.
        active.settle(end);
        let len = io.file_len(file, &active.path)?;
        let mut header = [0u8; SEGMENT_HEADER_LEN];
        let got = io.read_at(file, &active.path, &mut header, 0)?;
        let version = decode_segment_version(&header[..got]).unwrap_or(FORMAT_VERSION);
        let ahead = if preallocate && version >= PREALLOCATING_VERSION {
            PREALLOCATE
        } else {
            0
        };
        let marked = ends_in_close_mark_at(&io, file, &active.path, end)?;
        let preparer = (preallocate && segment_size >= MIN_PREPARED_SEGMENT)
            .then(|| Box::new(SegmentPreparer::new(io.clone(), dir.clone(), segment_size)));
        Ok(SegmentWriter {
            io,
            dir,
            active,
            // What recovery found may still be only in the page cache (a
            // buffered writer that crashed): the first sync covers it.
            unsynced: true,
            end,
            len: len.max(end),
            segment_size,
            preallocate,
            ahead,
            version,
            marked,
            preparer,
            asked_next: false,
        })
    }

    /// Whether the active segment's records claim what was durable (its
    /// format version has `durable_before`, format §3).
    pub fn claims(&self) -> bool {
        self.version >= CLAIMING_VERSION
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
        self.marked = false;
        let end = offset + bytes.len() as u64;
        self.preallocate(end)?;
        let file = self.active.open_file()?;
        self.io
            .write_all_at(file, &self.active.path, bytes, offset)?;
        // Written once, over the zeros put there before: readers may now
        // read these bytes in place.
        self.active.settle(end);
        self.end = self.end.max(end);
        self.ask_for_next();
        Ok(())
    }

    /// Once `active` holds `segment_size / PREPARE_AT` bytes of records,
    /// asks for the next segment to be prepared ([`PREPARE_AT`] says why then).
    fn ask_for_next(&mut self) {
        if self.asked_next || self.end < self.segment_size / PREPARE_AT {
            return;
        }
        if let Some(preparer) = &mut self.preparer {
            preparer.request(self.active.number + 1);
        }
        self.asked_next = true;
    }

    /// Makes sure the file reaches past `need`, extending it with zeros by
    /// `ahead` bytes (not past the segment size) when it does not.
    fn preallocate(&mut self, need: u64) -> Result<()> {
        if need <= self.len {
            return Ok(());
        }
        let target = (need + self.ahead).min(self.segment_size.max(need));
        let file = self.active.open_file()?;
        let mut at = need.max(self.len);
        while at < target {
            let n = (target - at).min(ZEROS.len() as u64);
            self.io
                .write_all_at(file, &self.active.path, &ZEROS[..n as usize], at)?;
            at += n;
        }
        self.len = target;
        Ok(())
    }

    /// Makes everything written so far durable (`fdatasync` of the active segment).
    pub fn sync(&mut self) -> Result<()> {
        if self.unsynced {
            self.io
                .sync_data(self.active.open_file()?, &self.active.path)?;
            self.unsynced = false;
        }
        Ok(())
    }

    /// Seals the active segment (cut back to its last record and synced
    /// first, so only the newest segment can ever have a torn tail or
    /// preallocated zeros; then mapped, its file closed once no reader holds
    /// it any more) and creates segment `number` with its header.
    fn start_segment(&mut self, set: &SegmentSet, number: u64) -> Result<()> {
        self.trim()?;
        let prepared = self.preparer.as_mut().and_then(|p| p.take(number));
        let (created, len) = match prepared {
            Some(prepared) => adopt_prepared(&self.io, &self.dir, prepared)?,
            None => (create_segment(&self.io, &self.dir, number)?, 0),
        };
        set.insert_just_sealed(self.active.to_sealed(&self.io)?);
        set.insert(Arc::clone(&created));
        self.active = created;
        self.unsynced = true;
        self.end = SEGMENT_HEADER_LEN as u64;
        self.len = self.end.max(len);
        self.asked_next = false;
        // A new segment is of the version this code writes.
        self.ahead = if self.preallocate { PREALLOCATE } else { 0 };
        self.version = FORMAT_VERSION;
        self.marked = false;
        Ok(())
    }

    /// Cuts the preallocated zeros off the active segment and makes its
    /// records and its new size durable (`fsync`: the size shrinks).
    pub fn trim(&mut self) -> Result<()> {
        let file = self.active.open_file()?;
        if self.len > self.end {
            self.io.set_len(file, &self.active.path, self.end)?;
            self.len = self.end;
            self.io.sync_all(file, &self.active.path)?;
            self.unsynced = false;
        }
        self.sync()
    }

    /// Ends a clean close (format §5): cuts the zeros, makes every record
    /// durable, then appends a close mark claiming all of them and syncs it.
    /// Damage to any record before the mark is then reported by the next
    /// open, never cut as if it were a torn tail. The mark is written only
    /// once all before it is durable, so its claim is true; if a crash tears
    /// the mark itself, only the mark is lost. Segments of a version before
    /// close marks get none (they stay valid in their own version).
    pub fn close(&mut self) -> Result<()> {
        if let Some(preparer) = &mut self.preparer {
            preparer.stop();
        }
        self.trim()?;
        let at = self.end;
        if !takes_close_mark(self.version, self.marked, at) {
            return Ok(());
        }
        let mut mark = Vec::with_capacity(RECORD_HEADER_LEN);
        encode_close_mark(&mut mark, at as u32);
        let file = self.active.open_file()?;
        self.io.write_all_at(file, &self.active.path, &mark, at)?;
        self.io.sync_data(file, &self.active.path)?;
        self.end = at + mark.len() as u64;
        self.len = self.len.max(self.end);
        self.marked = true;
        Ok(())
    }
}

/// Whether a segment of format `version` whose records end at `at` takes a
/// close mark there (format §5): its version has them, it does not already
/// end in one (`marked`), it holds records (an empty segment has nothing a
/// mark would protect), and the mark, like any record, lies within the
/// 32-bit offsets of a segment.
pub(crate) fn takes_close_mark(version: u32, marked: bool, at: u64) -> bool {
    let wanted = !marked && version >= CLOSE_MARK_VERSION;
    let fits =
        at > SEGMENT_HEADER_LEN as u64 && at + RECORD_HEADER_LEN as u64 <= u64::from(u32::MAX);
    wanted && fits
}

/// Whether the record that ends at `end` of the segment `file` is a close mark.
pub(crate) fn ends_in_close_mark_at(io: &Io, file: &File, path: &Path, end: u64) -> Result<bool> {
    let Some(at) = end.checked_sub(RECORD_HEADER_LEN as u64) else {
        return Ok(false);
    };
    let mut tail = [0u8; RECORD_HEADER_LEN];
    let got = io.read_at(file, path, &mut tail, at)?;
    Ok(is_close_mark_at(&tail[..got], at))
}

/// Creates segment file `number` in `dir` with its header, and makes the new
/// name durable (directory fsync). The header itself is synced with the
/// segment's first records.
pub(crate) fn create_segment(io: &Io, dir: &Path, number: u64) -> Result<Arc<SegmentFile>> {
    let path = dir.join(segment_file_name(number));
    let file = io.create_new(&path)?;
    io.write_all_at(&file, &path, &encode_segment_header(number), 0)?;
    io.sync_dir(dir)?;
    Ok(Arc::new(SegmentFile::open(number, path, file)))
}

/// Makes a prepared segment (header and synced zeros) segment `number`:
/// renamed into place, the new name made durable before anything is written
/// to it. Returns it and its length.
fn adopt_prepared(
    io: &Io,
    dir: &Path,
    prepared: PreparedSegment,
) -> Result<(Arc<SegmentFile>, u64)> {
    let path = dir.join(segment_file_name(prepared.number));
    io.rename(&prepared.path, &path)?;
    io.sync_dir(dir)?;
    let segment = SegmentFile::open(prepared.number, path, prepared.file);
    Ok((Arc::new(segment), prepared.len))
}

/// How much of a record [`SegmentFile::touch`] loads, a byte per cache line:
/// the header and the body of a typical event of a few hundred bytes.
/// Touching only the first line left the rest of each record to miss on
/// its own when it was read (1M-event log pages 67-70 µs, against 56-57 µs
/// touching five lines).
const TOUCH_BYTES: usize = 320;

#[cfg(test)]
pub(crate) mod tests {
    use std::cell::Cell;

    use super::*;
    use crate::format::record::{encode_record_into, pack_position};

    thread_local! {
        /// Segments opened on this thread get no map while this is set.
        pub(crate) static WITHOUT_ACTIVE_MAP: Cell<bool> = const { Cell::new(false) };
    }

    /// Runs `f` with the segments this thread opens left unmapped, so their
    /// records are read with `pread` (the fallback when mapping fails).
    pub(crate) fn without_active_map<T>(f: impl FnOnce() -> T) -> T {
        WITHOUT_ACTIVE_MAP.with(|w| w.set(true));
        let result = f();
        WITHOUT_ACTIVE_MAP.with(|w| w.set(false));
        result
    }

    /// Two records: their offsets and bytes.
    type Written = [(u64, Vec<u8>); 2];

    /// Segment 1 in a fresh directory, with two records written after its
    /// header and nothing settled yet; returns the set, the segment, and the
    /// two records.
    fn two_records() -> (tempfile::TempDir, SegmentSet, Arc<SegmentFile>, Written) {
        let dir = tempfile::tempdir().expect("temp dir");
        let io = Io::new(None);
        let seg = create_segment(&io, dir.path(), 1).expect("create");
        let set = SegmentSet::new(io.clone(), dir.path());
        set.insert(Arc::clone(&seg));
        let mut at = SEGMENT_HEADER_LEN as u64;
        let mut prev = 0;
        let records = [1u64, 2].map(|seq| {
            let mut bytes = Vec::new();
            encode_record_into(&mut bytes, format!("body {seq}").as_bytes(), 0, seq, prev);
            let offset = at;
            prev = pack_position(1, offset);
            let file = seg.open_file().expect("open");
            io.write_all_at(file, &seg.path, &bytes, offset)
                .expect("write");
            at += bytes.len() as u64;
            (offset, bytes)
        });
        (dir, set, seg, records)
    }

    #[test]
    fn active_records_are_read_in_place_once_settled_and_never_before() {
        let (_dir, set, seg, [(a, first), (b, second)]) = two_records();
        assert!(seg.has_active_map());
        let read = |off: u64| set.read_record(pack_position(1, off)).expect("read");
        // Nothing settled: both come from `pread`.
        assert!(matches!(read(a), RecordBytes::Owned(_)));
        assert_eq!(&*read(a), &first[..]);
        // The first settled, the second not all of it: only the first in place.
        seg.settle(b + 5);
        assert!(matches!(read(a), RecordBytes::Mapped(..)));
        assert_eq!(&*read(a), &first[..]);
        assert!(matches!(read(b), RecordBytes::Owned(_)));
        assert_eq!(&*read(b), &second[..]);
        let header = set.read_header(pack_position(1, b)).expect("header");
        assert_eq!(header.sequence, 2);
        // Both settled.
        seg.settle(b + second.len() as u64);
        assert!(matches!(read(b), RecordBytes::Mapped(..)));
        assert_eq!(&*read(b), &second[..]);
        // Settling never goes back.
        seg.settle(a);
        assert!(matches!(read(b), RecordBytes::Mapped(..)));
    }

    #[test]
    fn an_unmapped_active_segment_is_read_with_pread() {
        let (_dir, set, seg, [(a, first), _]) = without_active_map(two_records);
        assert!(!seg.has_active_map());
        seg.settle(a + first.len() as u64);
        let record = set.read_record(pack_position(1, a)).expect("read");
        assert!(matches!(record, RecordBytes::Owned(_)));
        assert_eq!(&*record, &first[..]);
    }

    #[test]
    fn a_sealed_segment_reads_the_same_bytes_as_its_active_map() {
        let (_dir, set, seg, [(a, first), (b, second)]) = two_records();
        seg.settle(b + second.len() as u64);
        let io = Io::new(None);
        set.insert(Arc::new(seg.to_sealed(&io).expect("seal")));
        drop(seg);
        let read = |off: u64| set.read_record(pack_position(1, off)).expect("read");
        assert_eq!(&*read(a), &first[..]);
        assert_eq!(&*read(b), &second[..]);
    }
}
