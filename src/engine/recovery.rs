//! Opening a log directory: find the segments, check and index every record,
//! and deal with damage as the [`RecoveryMode`] says.
//!
//! - Segments must be numbered 1, 2, ... without holes; a missing one is an
//!   error naming it.
//! - Every segment but the newest is sealed: any bad header or record in it,
//!   or an unfinished batch at its end, is an error naming file and offset.
//! - The newest segment may end in a torn tail: an incomplete or
//!   checksum-failing record (or an unfinished batch) after which no valid
//!   record follows. The writer cuts it (`TolerateTail`) or refuses
//!   (`Strict`); a read-only opener just ignores it. A bad record that *is*
//!   followed by valid ones is damage, not a tear, and fails the open,
//!   unless (format version 3 and later) every record after it was written
//!   before the log was durable past the cut: then a power loss kept some
//!   pages of the last unsynced write and not others, and it is a torn tail
//!   too. A clean close's close mark (version 4) is such a later record,
//!   claiming everything before it: damage before it is never a tear.
//! - A record that is valid on its own but does not continue its session
//!   (sequence gap, wrong previous-record link, repeated id) is damage.

use std::path::Path;
use std::sync::Arc;

use super::hash::FastHash;
use super::id_index::MAX_INDEXED_SEGMENT;
use super::io::Io;
use super::options::RecoveryMode;
use super::scan::{Indexer, ScanEnd, header_tear_refuted, scan_batches, torn_write_refuted};
use super::scan_ahead::ScanAhead;
use super::segment::{SegmentFile, SegmentSet, create_segment};
use super::state::State;
use crate::error::{Error, Result};
use crate::format::record::{pack_position, parse_header};
use crate::format::segment::{
    CLAIMING_VERSION, SEGMENT_HEADER_LEN, SegmentHeaderError, decode_segment_header,
    decode_segment_version, encode_segment_header, parse_segment_file_name, segment_file_name,
};

/// What opening found: the indexed state and where the log ends.
pub(crate) struct Recovered {
    pub state: State,
    pub segments: SegmentSet,
    /// The newest segment (`None` only for a read-only open of an empty directory).
    pub active: Option<Arc<SegmentFile>>,
    /// File offset in `active` just past the last complete batch.
    pub active_end: u64,
}

/// How the newest segment may be treated.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    /// The writer: may cut a torn tail (per mode) and create segment 1.
    Write(RecoveryMode),
    /// A read-only opener: changes nothing, ignores an incomplete tail.
    ReadOnly,
}

/// The segment numbers in `dir`, ascending, checked to be 1, 2, ... n.
pub(crate) fn list_segments(io: &Io, dir: &Path) -> Result<Vec<u64>> {
    let mut numbers: Vec<u64> = io
        .list_dir(dir)?
        .iter()
        .filter_map(|name| name.to_str().and_then(parse_segment_file_name))
        .collect();
    numbers.sort_unstable();
    for (expected, &n) in (1..).zip(&numbers) {
        if n != expected {
            let missing = dir.join(segment_file_name(expected));
            let why = format!(
                "segment file is missing (the next one present is {})",
                segment_file_name(n)
            );
            return Err(Error::corrupt(missing, 0, why));
        }
    }
    if let Some(&last) = numbers.last()
        && last > MAX_INDEXED_SEGMENT
    {
        let why = format!("the log has more than {MAX_INDEXED_SEGMENT} segments");
        return Err(Error::corrupt(dir.join(segment_file_name(last)), 0, why));
    }
    Ok(numbers)
}

/// Opens, checks and indexes the log in `dir`.
pub(crate) fn recover(io: &Io, dir: &Path, access: Access, hasher: &FastHash) -> Result<Recovered> {
    let numbers = list_segments(io, dir)?;
    let mut rec = Recovered {
        state: State::default(),
        segments: SegmentSet::new(io.clone(), dir),
        active: None,
        active_end: 0,
    };
    let Some((&newest, sealed)) = numbers.split_last() else {
        if let Access::Write(_) = access {
            rec.active = Some(create_segment(io, dir, 1)?);
            rec.active_end = SEGMENT_HEADER_LEN as u64;
            rec.segments
                .insert(Arc::clone(rec.active.as_ref().expect("just created")));
        }
        return Ok(rec);
    };
    recover_sealed(io, dir, (sealed, &numbers), hasher, &mut rec)?;
    recover_newest(io, dir, newest, access, hasher, &mut rec)?;
    Ok(rec)
}

/// Sizes the id index for the whole log from the first segment's density,
/// so indexing a big log does not rehash it again and again while it grows.
fn presize_id_index(io: &Io, dir: &Path, numbers: &[u64], rec: &mut Recovered) -> Result<()> {
    let mut total = 0u64;
    for &n in numbers {
        total += io.file_size(&dir.join(segment_file_name(n)))?;
    }
    let first = io.file_size(&dir.join(segment_file_name(1)))?.max(1);
    let per_byte = rec.state.ids.len() as f64 / first as f64;
    rec.state
        .ids
        .reserve((per_byte * total.saturating_sub(first) as f64) as usize);
    Ok(())
}

/// Opens, checks and indexes the sealed segments `sealed` of the log whose
/// segments are `numbers`, in log order. Each is scanned on a second thread
/// while the one before it is indexed ([`ScanAhead`]); the first problem in
/// log order is the one reported, as it would be on one thread.
fn recover_sealed(
    io: &Io,
    dir: &Path,
    (sealed, numbers): (&[u64], &[u64]),
    hasher: &FastHash,
    rec: &mut Recovered,
) -> Result<()> {
    let (opened, failed) = open_sealed(io, dir, sealed);
    if opened.is_empty() {
        // A log in one segment (or whose first cannot be opened): no thread.
        return failed.map_or(Ok(()), Err);
    }
    std::thread::scope(|scope| {
        let maps = opened.iter().map(|seg| seg.mapped().unwrap_or(&[]));
        let scan = ScanAhead::start(scope, maps.collect(), dir)?;
        let indexed = index_all_sealed(&opened, &scan, (io, dir, numbers), hasher, rec);
        scan.finish();
        indexed
    })?;
    // Every segment before the one that could not be opened was fine.
    failed.map_or(Ok(()), Err)
}

/// Indexes the `opened` sealed segments in order, as `scan` hands them over.
fn index_all_sealed(
    opened: &[Arc<SegmentFile>],
    scan: &ScanAhead<'_, '_>,
    (io, dir, numbers): (&Io, &Path, &[u64]),
    hasher: &FastHash,
    rec: &mut Recovered,
) -> Result<()> {
    for seg in opened {
        index_sealed(seg, scan, hasher, rec)?;
        if seg.number == 1 {
            presize_id_index(io, dir, numbers, rec)?;
        }
    }
    Ok(())
}

/// The sealed segments `sealed` opened and mapped, in order, up to the first
/// that cannot be; that one's error comes beside them.
fn open_sealed(io: &Io, dir: &Path, sealed: &[u64]) -> (Vec<Arc<SegmentFile>>, Option<Error>) {
    let mut opened = Vec::with_capacity(sealed.len());
    for &n in sealed {
        match open_one_sealed(io, dir, n) {
            Ok(seg) => opened.push(seg),
            Err(e) => return (opened, Some(e)),
        }
    }
    (opened, None)
}

fn open_one_sealed(io: &Io, dir: &Path, n: u64) -> Result<Arc<SegmentFile>> {
    let path = dir.join(segment_file_name(n));
    let file = io.open_ro(&path)?;
    let len = io.file_len(&file, &path)?;
    check_segment_size(len, &path)?;
    if len < SEGMENT_HEADER_LEN as u64 {
        let why = SegmentHeaderError::Short(len as usize).to_string();
        return Err(Error::corrupt(
            &path,
            0,
            format!("{why} (in a sealed segment)"),
        ));
    }
    Ok(Arc::new(SegmentFile::sealed(io, n, path, &file)?))
}

/// Checks and indexes the sealed segment `seg`, whose records `scan` is
/// about to hand over.
fn index_sealed(
    seg: &Arc<SegmentFile>,
    scan: &ScanAhead<'_, '_>,
    hasher: &FastHash,
    rec: &mut Recovered,
) -> Result<()> {
    let (n, path) = (seg.number, seg.path.as_path());
    rec.segments.insert(Arc::clone(seg));
    let map = seg.mapped().unwrap_or(&[]);
    check_header(map, n, path)?;
    let mut indexer = Indexer::new(&mut rec.state, hasher, &rec.segments);
    let end = scan.segment(|batch| indexer.apply(path, n, batch))?;
    let records = (SEGMENT_HEADER_LEN as u64, &map[SEGMENT_HEADER_LEN..]);
    indexer.finish(n, records)?;
    if let Some(d) = end.damage {
        return Err(Error::corrupt(
            path,
            d.offset,
            format!("{} (in a sealed segment)", d.reason),
        ));
    }
    if end.valid_end != map.len() as u64 {
        let why = "a batch is not finished at the end of a sealed segment";
        return Err(Error::corrupt(path, end.valid_end, why));
    }
    Ok(())
}

/// Record positions hold 32-bit offsets: a bigger segment file was not
/// written by sessionlog.
pub(crate) fn check_segment_size(len: u64, path: &Path) -> Result<()> {
    if len > u64::from(u32::MAX) {
        let why = format!("segment file is {len} bytes, more than a segment can hold (4 GiB)");
        return Err(Error::corrupt(path, u64::from(u32::MAX), why));
    }
    Ok(())
}

fn check_header(bytes: &[u8], n: u64, path: &Path) -> Result<()> {
    match decode_segment_header(bytes) {
        Ok(found) => check_header_number(found, n, path),
        Err(e) => Err(Error::corrupt(path, 0, e.to_string())),
    }
}

/// A segment's header must name the number its file name gives.
fn check_header_number(found: u64, n: u64, path: &Path) -> Result<()> {
    if found == n {
        return Ok(());
    }
    let why = format!("header names segment {found}, not {n}");
    Err(Error::corrupt(path, 16, why))
}

/// Indexes the records in `bytes` (file offset `base` on) of segment `n`.
fn index_bytes(
    bytes: &[u8],
    base: u64,
    n: u64,
    path: &Path,
    hasher: &FastHash,
    rec: &mut Recovered,
) -> Result<ScanEnd> {
    let mut indexer = Indexer::new(&mut rec.state, hasher, &rec.segments);
    let end = scan_batches(bytes, base, |batch| indexer.apply(path, n, batch))?;
    indexer.finish(n, (base, bytes))?;
    Ok(end)
}

fn recover_newest(
    io: &Io,
    dir: &Path,
    n: u64,
    access: Access,
    hasher: &FastHash,
    rec: &mut Recovered,
) -> Result<()> {
    let path = dir.join(segment_file_name(n));
    let file = match access {
        Access::Write(_) => io.open_rw(&path)?,
        Access::ReadOnly => io.open_ro(&path)?,
    };
    check_segment_size(io.file_len(&file, &path)?, &path)?;
    let bytes = io.read_from(&file, &path, 0)?;
    let seg = Arc::new(SegmentFile::open(n, path.clone(), file));
    rec.segments.insert(Arc::clone(&seg));
    rec.active = Some(Arc::clone(&seg));
    match decode_segment_header(&bytes) {
        Ok(found) => check_header_number(found, n, &path)?,
        Err(e) => return torn_header(io, &seg, &bytes, e, access, rec),
    }
    let end = index_bytes(
        &bytes[SEGMENT_HEADER_LEN..],
        SEGMENT_HEADER_LEN as u64,
        n,
        &path,
        hasher,
        rec,
    )?;
    rec.active_end = end.valid_end;
    if end.valid_end == bytes.len() as u64 || end.preallocated {
        // The log ends here; zeros after it are the writer's preallocated
        // space, which it writes over next (not a tear: in every mode).
        return Ok(());
    }
    // Something follows the last complete batch: a tear, or damage.
    if access != Access::ReadOnly {
        refuse_damage_before_valid_records(&bytes, &end, &path)?;
    }
    cut_torn_tail(io, &seg, end, bytes.len() as u64, access)
}

/// What follows the newest segment's last complete batch is damage, not a
/// torn tail, when a valid record follows it that a torn last write could
/// not have left (format §3): then opening fails, naming the damage.
fn refuse_damage_before_valid_records(bytes: &[u8], end: &ScanEnd, path: &Path) -> Result<()> {
    let Some(d) = &end.damage else {
        return Ok(());
    };
    let claims = decode_segment_version(bytes).is_ok_and(|v| v >= CLAIMING_VERSION);
    let Some(p) = torn_write_refuted(bytes, d.offset as usize, end.valid_end, claims) else {
        return Ok(());
    };
    let claim = parse_header(&bytes[p..]).map_or(0, |h| h.durable_before);
    let after = if claims && claim != 0 {
        format!(" written after offset {} was durable", end.valid_end)
    } else {
        String::new()
    };
    let why = format!(
        "{}; a valid record{after} follows at offset {p}, so this is not a torn tail",
        d.reason
    );
    Err(Error::corrupt(path, d.offset, why))
}

/// The newest segment's header is bad. If nothing valid follows it, or only
/// records claiming that none of this segment was durable (format §3: the
/// header is synced with the segment's first write, which a power loss may
/// have kept in part), the segment's creation was torn by a crash: start it
/// afresh. Otherwise it is damage.
fn torn_header(
    io: &Io,
    seg: &SegmentFile,
    bytes: &[u8],
    err: SegmentHeaderError,
    access: Access,
    rec: &mut Recovered,
) -> Result<()> {
    let damaged = matches!(err, SegmentHeaderError::UnsupportedVersion(_))
        || header_tear_refuted(bytes).is_some();
    match access {
        _ if damaged => Err(Error::corrupt(&seg.path, 0, err.to_string())),
        Access::ReadOnly => Ok(()),
        Access::Write(RecoveryMode::Strict) => Err(Error::corrupt(
            &seg.path,
            0,
            format!("{err} (torn segment creation; strict recovery)"),
        )),
        Access::Write(_) => {
            let file = seg
                .file()
                .ok_or_else(|| Error::Failed("newest segment is not open".into()))?;
            io.set_len(file, &seg.path, 0)?;
            io.write_all_at(file, &seg.path, &encode_segment_header(seg.number), 0)?;
            io.sync_data(file, &seg.path)?;
            rec.active_end = SEGMENT_HEADER_LEN as u64;
            Ok(())
        }
    }
}

/// Cuts the newest segment back to `end.valid_end` (the writer under
/// `TolerateTail`/`Salvage`), refuses (`Strict`), or ignores the tail (read-only).
fn cut_torn_tail(io: &Io, seg: &SegmentFile, end: ScanEnd, len: u64, access: Access) -> Result<()> {
    match access {
        Access::ReadOnly => Ok(()),
        Access::Write(RecoveryMode::Strict) => {
            let why = end.damage.map_or_else(
                || "a batch is not finished (torn tail; strict recovery)".to_string(),
                |d| format!("{} (torn tail; strict recovery)", d.reason),
            );
            Err(Error::corrupt(&seg.path, end.valid_end, why))
        }
        Access::Write(_) => {
            debug_assert!(end.valid_end < len);
            let file = seg
                .file()
                .ok_or_else(|| Error::Failed("newest segment is not open".into()))?;
            io.set_len(file, &seg.path, end.valid_end)?;
            io.sync_data(file, &seg.path)
        }
    }
}

/// The packed position where the next record of a recovered log goes.
pub(crate) fn end_position(rec: &Recovered) -> u64 {
    rec.active
        .as_ref()
        .map_or(pack_position(1, SEGMENT_HEADER_LEN as u64), |a| {
            pack_position(a.number, rec.active_end)
        })
}
