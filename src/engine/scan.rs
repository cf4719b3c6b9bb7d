//! Walking the records of a segment's bytes, and indexing them.
//!
//! Shared by recovery (on open), the read-only refresher and the inspect
//! tools. A scan decodes only the keys of each body (ids, type, timestamp),
//! never its JSON, and hands over whole batches: the records of a batch that
//! is not closed by its last record are never applied.

use std::path::Path;

use super::hash::FastHash;
use super::segment::SegmentSet;
use super::state::State;
use crate::error::{Error, Result};
use crate::format::event_codec::{self, BodyKeys};
use crate::format::record::{
    RECORD_HEADER_LEN, RecordHeader, RecordParse, pack_position, parse_record, position_segment,
};

/// One complete, checksum-verified record found by a scan.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Found<'a> {
    /// Its byte offset in the segment file.
    pub offset: u64,
    pub header: RecordHeader,
    pub keys: BodyKeys<'a>,
}

/// Where and why a scan stopped before the end of the bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Damage {
    /// Byte offset in the segment file of the first bad record.
    pub offset: u64,
    pub reason: String,
}

/// How a scan of one segment's bytes ended.
#[derive(Debug)]
pub(crate) struct ScanEnd {
    /// File offset just past the last complete batch: everything before it
    /// was applied, everything from it on was not.
    pub valid_end: u64,
    /// The first bad record, if the bytes did not simply end.
    pub damage: Option<Damage>,
}

/// What the record at the start of `bytes` is: a complete record with
/// decodable keys, or why not (`None` reason: the bytes end inside it).
pub(crate) fn parse_found(
    bytes: &[u8],
    offset: u64,
) -> std::result::Result<Found<'_>, Option<String>> {
    match parse_record(bytes) {
        RecordParse::Complete(r) => match event_codec::decode_keys(r.body) {
            Ok(keys) => Ok(Found {
                offset,
                header: r.header,
                keys,
            }),
            Err(e) => Err(Some(format!("event body is undecodable: {e}"))),
        },
        RecordParse::Incomplete => Err(None),
        RecordParse::Invalid(why) => Err(Some(why.to_string())),
    }
}

/// Scans the records in `bytes`, which start at file offset `base`, calling
/// `apply` with each complete batch (a single record is a batch of one).
/// Stops at the first record that is incomplete or invalid.
pub(crate) fn scan_batches<'a>(
    bytes: &'a [u8],
    base: u64,
    mut apply: impl FnMut(&[Found<'a>]) -> Result<()>,
) -> Result<ScanEnd> {
    let mut at = 0usize;
    let mut batch: Vec<Found<'a>> = Vec::new();
    let mut valid_end = base;
    while at < bytes.len() {
        let offset = base + at as u64;
        let found = match parse_found(&bytes[at..], offset) {
            Ok(f) => f,
            Err(why) => {
                let reason = why.unwrap_or_else(|| "record is cut short (torn write)".into());
                let damage = Some(Damage { offset, reason });
                return Ok(ScanEnd { valid_end, damage });
            }
        };
        at += found.header.record_len();
        if batch.is_empty() && !found.header.batch_continues() {
            // A batch of one, the common case: no copy into the batch buffer.
            apply(std::slice::from_ref(&found))?;
            valid_end = base + at as u64;
            continue;
        }
        batch.push(found);
        if !found.header.batch_continues() {
            apply(&batch)?;
            batch.clear();
            valid_end = base + at as u64;
        }
    }
    Ok(ScanEnd {
        valid_end,
        damage: None,
    })
}

/// The offset (relative to `bytes`) of the first complete, valid record that
/// starts at or after `from`: evidence that damage before it is not a torn
/// tail, since a crash only ever tears the end of what was being written.
pub(crate) fn next_valid_record(bytes: &[u8], from: usize) -> Option<usize> {
    (from..bytes.len().saturating_sub(RECORD_HEADER_LEN - 1))
        .find(|&p| parse_found(&bytes[p..], p as u64).is_ok())
}

/// Adds scanned records to the in-memory indexes, checking that each
/// continues its session (next sequence, right previous-record link) and
/// that no id repeats.
///
/// Ids are indexed in bulk by [`finish`](Indexer::finish), sorted by hash:
/// the id index is then filled front to back instead of at random places,
/// which makes indexing a big log several times faster (no cache miss per id).
pub(crate) struct Indexer<'s> {
    state: &'s mut State,
    hasher: &'s FastHash,
    segments: &'s SegmentSet,
    /// (id hash, position) of the records applied but not yet in the id index.
    ids: Vec<(u64, u64)>,
}

impl<'s> Indexer<'s> {
    pub fn new(
        state: &'s mut State,
        hasher: &'s FastHash,
        segments: &'s SegmentSet,
    ) -> Indexer<'s> {
        Indexer {
            state,
            hasher,
            segments,
            ids: Vec::new(),
        }
    }

    /// Adds the ids of every applied record to the id index; fails on an id
    /// stored twice. `current` holds the bytes of segment `segment` from
    /// file offset `current.0` on (to verify hash matches without a read).
    pub fn finish(&mut self, segment: u64, current: (u64, &[u8])) -> Result<()> {
        let ids = sort_by_hash(std::mem::take(&mut self.ids));
        let st = &mut *self.state;
        st.ids.reserve(ids.len());
        let id_of = |p| id_of(self.segments, segment, current, p);
        for (hash, pos) in ids {
            // Ids are read back only for the rare hash match.
            let is_match = |p| Ok(id_of(p)? == id_of(pos)?);
            if let Some(other) = st.ids.find_or_insert(hash, pos, is_match)? {
                let why = format!(
                    "event id {:?} is stored twice (also at {:#x})",
                    id_of(pos)?,
                    pos.min(other)
                );
                return Err(self.segments.corrupt(pos.max(other), why));
            }
        }
        Ok(())
    }

    /// Indexes the records of one complete batch found in segment `segment`
    /// (the file at `path`); their ids follow at [`finish`](Indexer::finish).
    pub fn apply(&mut self, path: &Path, segment: u64, batch: &[Found<'_>]) -> Result<()> {
        for f in batch {
            self.apply_one(path, segment, f)?;
        }
        Ok(())
    }

    fn apply_one(&mut self, path: &Path, segment: u64, f: &Found<'_>) -> Result<()> {
        let pos = pack_position(segment, f.offset);
        let st = &mut *self.state;
        let n = st.sessions.find_or_add(f.keys.session_id);
        let s = st.sessions.get(n);
        if f.header.sequence != s.assigned + 1 || f.header.prev != s.assigned_last {
            let why = format!(
                "session {:?}: record has sequence {} (previous at {:#x}) but the session is at {} (last at {:#x})",
                f.keys.session_id, f.header.sequence, f.header.prev, s.assigned, s.assigned_last
            );
            return Err(Error::corrupt(path, f.offset, why));
        }
        self.ids
            .push((self.hasher.hash_bytes(f.keys.id.as_bytes()), pos));
        let s = st.sessions.get_mut(n);
        s.assigned = f.header.sequence;
        s.assigned_last = pos;
        s.visible = s.assigned;
        s.visible_last = pos;
        s.sparse.note(s.assigned, pos);
        Ok(())
    }
}

/// `entries` ordered by the top 16 bits of their hash (one counting-sort
/// pass: enough for the index's home slots to ascend nearly everywhere).
fn sort_by_hash(entries: Vec<(u64, u64)>) -> Vec<(u64, u64)> {
    let bucket = |h: u64| (h >> 48) as usize;
    let mut starts = vec![0usize; (1 << 16) + 1];
    for &(h, _) in &entries {
        starts[bucket(h) + 1] += 1;
    }
    for i in 1..starts.len() {
        starts[i] += starts[i - 1];
    }
    let mut sorted = vec![(0, 0); entries.len()];
    for e in entries {
        let at = &mut starts[bucket(e.0)];
        sorted[*at] = e;
        *at += 1;
    }
    sorted
}

/// The event id of the record at `pos`. Records of the segment being scanned
/// are looked up in its bytes (`current`: base offset, bytes), earlier ones
/// through `segments`.
fn id_of(segments: &SegmentSet, segment: u64, current: (u64, &[u8]), pos: u64) -> Result<String> {
    let offset = crate::format::record::position_offset(pos);
    if position_segment(pos) == segment && offset >= current.0 {
        let at = (offset - current.0) as usize;
        let bytes = current.1.get(at..).unwrap_or(&[]);
        return parse_found(bytes, offset)
            .map(|f| f.keys.id.to_string())
            .map_err(|_| segments.corrupt(pos, "an indexed record is no longer valid"));
    }
    let record = segments.read_record(pos)?;
    let keys = event_codec::decode_keys(&record[RECORD_HEADER_LEN..])
        .map_err(|e| segments.corrupt(pos, format!("event body is undecodable: {e}")))?;
    Ok(keys.id.to_string())
}
