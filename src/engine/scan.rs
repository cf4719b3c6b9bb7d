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
use crate::format::segment::SEGMENT_HEADER_LEN;

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
    /// Whether the bytes from `valid_end` on are all zeros: space the writer
    /// preallocated in the newest segment, not damage (format §5). Anywhere
    /// else the caller reports `damage`.
    pub preallocated: bool,
    /// Whether the bytes ended inside a record or an open batch: more bytes
    /// from `valid_end` on may complete it (a reader that read only part of
    /// a file reads further).
    pub cut_short: bool,
}

/// Whether `rest`, the bytes after the last complete batch, is preallocated
/// space: not empty, and nothing but zeros.
pub(crate) fn is_preallocated(rest: &[u8]) -> bool {
    !rest.is_empty() && rest.iter().all(|&b| b == 0)
}

/// A complete, checksum-verified record: an event with decodable keys, or
/// a close mark (format §5).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Parsed<'a> {
    Event(Found<'a>),
    CloseMark(RecordHeader),
}

impl Parsed<'_> {
    pub fn header(&self) -> &RecordHeader {
        match self {
            Parsed::Event(found) => &found.header,
            Parsed::CloseMark(header) => header,
        }
    }
}

/// What the record at the start of `bytes` is: a complete event record with
/// decodable keys or a close mark, or why neither (`None` reason: the bytes
/// end inside it).
pub(crate) fn parse_any(
    bytes: &[u8],
    offset: u64,
) -> std::result::Result<Parsed<'_>, Option<String>> {
    match parse_record(bytes) {
        RecordParse::Complete(r) if r.header.is_close_mark() => {
            if u64::from(r.header.durable_before) == offset {
                Ok(Parsed::CloseMark(r.header))
            } else {
                Err(Some("close mark claims another offset than its own".into()))
            }
        }
        RecordParse::Complete(r) => match event_codec::decode_keys(r.body) {
            Ok(keys) => Ok(Parsed::Event(Found {
                offset,
                header: r.header,
                keys,
            })),
            Err(e) => Err(Some(format!("event body is undecodable: {e}"))),
        },
        RecordParse::Incomplete => Err(None),
        RecordParse::Invalid(why) => Err(Some(why.to_string())),
    }
}

/// [`parse_any`] where only an event record will do.
pub(crate) fn parse_found(
    bytes: &[u8],
    offset: u64,
) -> std::result::Result<Found<'_>, Option<String>> {
    match parse_any(bytes, offset)? {
        Parsed::Event(found) => Ok(found),
        Parsed::CloseMark(_) => Err(Some("a close mark, not an event record".into())),
    }
}

/// Why a close mark found inside an unfinished batch is damage: a writer
/// writes whole batches, and a mark only after its last one.
pub(crate) const MARK_IN_BATCH: &str = "close mark inside an unfinished batch";

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
        let parsed = match parse_any(&bytes[at..], offset) {
            Ok(Parsed::CloseMark(_)) if !batch.is_empty() => Err(Some(MARK_IN_BATCH.into())),
            parsed => parsed,
        };
        let found = match parsed {
            Ok(Parsed::Event(f)) => f,
            Ok(Parsed::CloseMark(mark)) => {
                // A clean close, after which the writer went on: nothing to index.
                at += mark.record_len();
                valid_end = base + at as u64;
                continue;
            }
            Err(why) => {
                let preallocated = batch.is_empty() && is_preallocated(&bytes[at..]);
                let cut_short = why.is_none() && !preallocated;
                let reason = match why {
                    _ if preallocated => {
                        "zero-filled (preallocated) space after the last record".into()
                    }
                    Some(why) => why,
                    None => "record is cut short (torn write)".into(),
                };
                let damage = Some(Damage { offset, reason });
                return Ok(ScanEnd {
                    valid_end,
                    damage,
                    preallocated,
                    cut_short,
                });
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
        preallocated: false,
        cut_short: !batch.is_empty(),
    })
}

/// The offset (relative to `bytes`) of the first complete, valid record that
/// starts at or after `from`.
pub(crate) fn next_valid_record(bytes: &[u8], from: usize) -> Option<usize> {
    (from..bytes.len().saturating_sub(RECORD_HEADER_LEN - 1))
        .find(|&p| parse_any(&bytes[p..], p as u64).is_ok())
}

/// The offset of a valid record in `bytes`, a newest segment whose header
/// is bad, showing that the header was durable before (so its damage is not
/// a torn creation), or `None`. Claims are read whatever the version (the
/// header that would tell it is gone): records of segments before version 3
/// and buffered ones claim nothing, which counts as evidence as before, and
/// a claim of at most 32 says that nothing of this segment was durable.
pub(crate) fn header_tear_refuted(bytes: &[u8]) -> Option<usize> {
    torn_write_refuted(bytes, 0, SEGMENT_HEADER_LEN as u64, true)
}

/// The offset of a valid record after the damage at `damaged` (both
/// relative to `bytes`, a whole newest segment) showing that the damage is
/// not a torn write, or `None` when it may be one (format §6). `cut` is
/// where recovery would cut: the end of the last complete batch before the
/// damage.
///
/// A crash tears only what was being written and not yet durable. Without
/// claims (segments before format version 3), any valid record after the
/// damage is evidence against a tear, since a write's pages were taken to
/// reach the disk in order. They need not: after a power loss, any of the
/// pages of a write that was not synced may be missing. With claims, a
/// record is evidence only if it was written once the log was durable past
/// `cut`: then the damage lies in bytes that were durable. Records claiming
/// less may be the rest of the torn write itself. A record that claims
/// nothing (0: written under a buffered sync policy) is evidence as before.
pub(crate) fn torn_write_refuted(
    bytes: &[u8],
    damaged: usize,
    cut: u64,
    claims: bool,
) -> Option<usize> {
    let mut from = damaged + 1;
    loop {
        let mut at = next_valid_record(bytes, from)?;
        if !claims {
            return Some(at);
        }
        // The run of valid records from there, each checked.
        while let Ok(parsed) = parse_any(&bytes[at..], at as u64) {
            let header = parsed.header();
            let claim = u64::from(header.durable_before);
            if claim == 0 || claim > cut {
                return Some(at);
            }
            at += header.record_len();
        }
        from = at + 1;
    }
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
    /// Recently applied records as (position, session number), by a hash
    /// of the position: a record's previous-record link then names its
    /// session's candidate without hashing the session name.
    recent: Vec<(u64, u32)>,
}

/// Slots of [`Indexer::recent`]: enough for sessions interleaved a few
/// hundred ways; more just fall back to the name lookup.
const RECENT_SLOTS: usize = 1024;

/// The `recent` slot of position `pos`.
fn recent_slot(pos: u64) -> usize {
    (pos.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 54) as usize % RECENT_SLOTS
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
            recent: vec![(0, 0); RECENT_SLOTS],
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
        let n = self.session_of(f);
        let st = &mut *self.state;
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
        self.recent[recent_slot(pos)] = (pos, n);
        Ok(())
    }

    /// The number of the session `f` names (added if new). The session of
    /// the record its link points to is tried first: it is the answer
    /// whenever its name matches, as names are unique.
    fn session_of(&mut self, f: &Found<'_>) -> u32 {
        let sessions = &mut self.state.sessions;
        let (at, n) = self.recent[recent_slot(f.header.prev)];
        if f.header.prev != 0 && at == f.header.prev && *sessions.get(n).name == *f.keys.session_id
        {
            return n;
        }
        sessions.find_or_add(f.keys.session_id)
    }
}

/// Below this many entries [`sort_by_hash`] sorts in place.
const SMALL_SORT: usize = 4096;

/// `entries` ordered by the top 16 bits of their hash (one counting-sort
/// pass: enough for the index's home slots to ascend nearly everywhere).
fn sort_by_hash(mut entries: Vec<(u64, u64)>) -> Vec<(u64, u64)> {
    let bucket = |h: u64| (h >> 48) as usize;
    if entries.len() < SMALL_SORT {
        // A follower's refresh finds a few records: a 512 KiB table of
        // bucket starts per refresh would cost more than the sort.
        entries.sort_unstable_by_key(|&(h, _)| bucket(h));
        return entries;
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Event, EventType};
    use crate::format::record::{encode_record_into, position_offset};

    /// Bytes of one record of a one-letter session (every such record is as long).
    fn record_len() -> u64 {
        let body = event_codec::encode(&Event::new("a", EventType::MessageSent));
        (RECORD_HEADER_LEN + body.len()) as u64
    }

    /// The position of the `i`-th record of segment 1.
    fn pos(i: u64) -> u64 {
        pack_position(1, 32 + i * record_len())
    }

    /// Indexes `records` (session, sequence, index of the previous record)
    /// as segment 1 from offset 32.
    fn index(records: &[(&str, u64, Option<u64>)]) -> Result<ScanEnd> {
        let mut bytes = Vec::new();
        for &(session, seq, prev) in records {
            let body = event_codec::encode(&Event::new(session, EventType::MessageSent));
            encode_record_into(&mut bytes, &body, 0, seq, prev.map_or(0, pos));
        }
        let mut state = State::default();
        let hasher = FastHash::new();
        let io = super::super::io::Io::new(None);
        let segments = SegmentSet::new(io, Path::new("/nonexistent"));
        let mut indexer = Indexer::new(&mut state, &hasher, &segments);
        let path = Path::new("/nonexistent/1");
        scan_batches(&bytes, 32, |batch| indexer.apply(path, 1, batch))
    }

    #[test]
    fn interleaved_sessions_index() {
        let records: Vec<_> = (0..300u64)
            .map(|i| {
                let seq = i / 3 + 1;
                (
                    ["x", "y", "z"][(i % 3) as usize],
                    seq,
                    (seq > 1).then(|| i - 3),
                )
            })
            .collect();
        assert!(index(&records).unwrap().damage.is_none());
    }

    /// A segment's bytes (a blank header, then a record per claim, sequences
    /// 1, 2, ... of session "a") and the offset of each record.
    fn claiming_segment(claims: &[u32]) -> (Vec<u8>, Vec<usize>) {
        let mut bytes = vec![0u8; 32];
        let mut offsets = Vec::new();
        let body = event_codec::encode(&Event::new("a", EventType::MessageSent));
        for (i, &claim) in claims.iter().enumerate() {
            let prev = offsets.last().map_or(0, |&o| pack_position(1, o as u64));
            offsets.push(bytes.len());
            let links = (i as u64 + 1, prev);
            crate::format::record::encode_record_claiming(&mut bytes, &body, 0, links, claim);
        }
        (bytes, offsets)
    }

    #[test]
    fn records_of_the_same_unsynced_write_after_damage_do_not_refute_a_tear() {
        // Records 1-4 were one write, made while the log was durable up to
        // record 1: a power loss lost record 2's page and kept 3's and 4's.
        let (_, o) = claiming_segment(&[32, 0, 0, 0, 0]);
        let group = o[1] as u32;
        let (mut bytes, o) = claiming_segment(&[32, group, group, group, group]);
        bytes[o[2] + 40] ^= 0xFF;
        let cut = o[2] as u64;
        assert_eq!(torn_write_refuted(&bytes, o[2], cut, true), None);
        // Without claims (an older segment), record 3 refutes the tear.
        assert_eq!(torn_write_refuted(&bytes, o[2], cut, false), Some(o[3]));
        // So does a record that claims nothing (a buffered writer's).
        let (mut bytes, o) = claiming_segment(&[32, group, group, 0, group]);
        bytes[o[2] + 40] ^= 0xFF;
        assert_eq!(torn_write_refuted(&bytes, o[2], cut, true), Some(o[3]));
    }

    #[test]
    fn a_record_written_after_the_damaged_bytes_were_durable_refutes_a_tear() {
        let (_, o) = claiming_segment(&[0; 5]);
        // Record 4 was written once everything before it was durable, so
        // the damage to record 2 (and 3) hit durable bytes.
        let claims = [32, o[1] as u32, o[1] as u32, o[1] as u32, o[4] as u32];
        let (mut bytes, o) = claiming_segment(&claims);
        bytes[o[2] + 40] ^= 0xFF;
        bytes[o[3] + 40] ^= 0xFF;
        let cut = o[2] as u64;
        assert_eq!(torn_write_refuted(&bytes, o[2], cut, true), Some(o[4]));
        // Zeros after the damage (pages that never reached the disk) are no evidence.
        let (mut bytes, o) = claiming_segment(&claims[..4]);
        bytes.resize(bytes.len() + 4096, 0);
        bytes[o[1] + 40] ^= 0xFF;
        assert_eq!(torn_write_refuted(&bytes, o[1], o[1] as u64, true), None);
    }

    #[test]
    fn a_link_to_another_sessions_record_is_damage() {
        // b's second record links to a's second record (the one just before it).
        let records = [
            ("a", 1, None),
            ("b", 1, None),
            ("a", 2, Some(0)),
            ("b", 2, Some(2)),
        ];
        match index(&records) {
            Err(Error::Corrupt { offset, reason, .. }) => {
                assert_eq!(offset, position_offset(pos(3)));
                assert!(reason.starts_with("session \"b\""), "{reason}");
            }
            other => panic!("{other:?}"),
        }
    }
}
