//! [`PendingLog`]: records appended but not yet written to a segment file.
//!
//! Appenders encode their records here under the state lock; the group
//! commit leader takes everything pending as `Chunk`s, writes each with one
//! positioned write, and drops them once written. Until then readers (and
//! duplicate checks) find those records here, so a reader never needs a
//! record to be in the file before it is visible (under `SyncPolicy::Never`
//! records become visible as soon as they are appended and are written in
//! large chunks later).

use std::sync::Arc;

use crate::format::record::{
    RECORD_HEADER_LEN, encode_record_claiming, pack_position, parse_header, position_offset,
    position_segment,
};
use crate::format::segment::SEGMENT_HEADER_LEN;

/// Buffers kept for reuse: one being filled while another is written.
const MAX_SPARES: usize = 2;

/// Contiguous pending bytes of one segment, starting at `offset`.
#[derive(Debug)]
pub(crate) struct Chunk {
    pub segment: u64,
    pub offset: u64,
    pub bytes: Vec<u8>,
}

impl Chunk {
    fn start(&self) -> u64 {
        pack_position(self.segment, self.offset)
    }

    fn end(&self) -> u64 {
        self.start() + self.bytes.len() as u64
    }

    /// The bytes from `pos` to the end of this chunk, if `pos` is inside it.
    fn tail_from(&self, pos: u64) -> Option<&[u8]> {
        let (start, end) = (self.start(), self.end());
        (position_segment(pos) == self.segment && pos >= start && pos < end)
            .then(|| &self.bytes[(pos - start) as usize..])
    }
}

/// The records between the written part of the log and its logical end.
pub(crate) struct PendingLog {
    /// Not taken by a writer yet; appends go to the last one.
    open: Vec<Chunk>,
    /// Taken by the writer and not yet known to be in the file.
    inflight: Vec<Arc<Chunk>>,
    /// Where the next record goes.
    next: u64,
    /// Cleared buffers to reuse for the next chunks (at most `MAX_SPARES`).
    spares: Vec<Vec<u8>>,
    /// The capacity a new chunk starts with when no spare is left, so that
    /// filling it does not reallocate and copy again and again.
    chunk_capacity: usize,
    /// Whether records claim what was durable (`durable_before`): only
    /// when every group is synced (`SyncPolicy::Always`). Under a buffered
    /// policy a record becomes durable long after it is made, so its claim
    /// would say too little for too long (format §3).
    claims: bool,
    /// Whether the current segment is of a format version with claims (3 or
    /// later); a new segment always is.
    segment_claims: bool,
}

impl Default for PendingLog {
    fn default() -> PendingLog {
        PendingLog::starting_at(pack_position(1, SEGMENT_HEADER_LEN as u64), 0, (true, true))
    }
}

impl PendingLog {
    /// Nothing pending; the next record goes to `next`; new chunks start
    /// with room for `chunk_capacity` bytes. `claims`: whether records claim
    /// what was durable, and whether the segment of `next` is of a version
    /// that has claims.
    pub fn starting_at(
        next: u64,
        chunk_capacity: usize,
        (claims, segment_claims): (bool, bool),
    ) -> PendingLog {
        PendingLog {
            open: Vec::new(),
            inflight: Vec::new(),
            next,
            spares: Vec::new(),
            chunk_capacity,
            claims,
            segment_claims,
        }
    }

    /// Where the next record goes (also the logical end of the log).
    pub fn next(&self) -> u64 {
        self.next
    }

    /// Bytes not yet taken by a writer.
    pub fn open_bytes(&self) -> usize {
        self.open.iter().map(|c| c.bytes.len()).sum()
    }

    /// Moves the log's end to the start of the next segment.
    pub fn roll_segment(&mut self) {
        self.next = pack_position(position_segment(self.next) + 1, SEGMENT_HEADER_LEN as u64);
        // A new segment is of the version this code writes.
        self.segment_claims = true;
    }

    /// Appends a record; returns its position. `durable` is a packed
    /// position before which the log is known to be on stable storage (it
    /// may lag: a smaller claim is still true).
    pub fn append(
        &mut self,
        body: &[u8],
        flags: u8,
        (sequence, prev): (u64, u64),
        durable: u64,
    ) -> u64 {
        let pos = self.next;
        let claim = if !(self.claims && self.segment_claims) {
            0 // no claim
        } else if position_segment(durable) == position_segment(pos) {
            // Below 2^32: offsets in a segment are (positions keep 32 bits).
            position_offset(durable) as u32
        } else {
            SEGMENT_HEADER_LEN as u32 // none of this segment's records is durable yet
        };
        let continues = self.open.last().is_some_and(|c| c.end() == pos);
        if !continues {
            let bytes = self
                .spares
                .pop()
                .unwrap_or_else(|| Vec::with_capacity(self.chunk_capacity));
            self.open.push(Chunk {
                segment: position_segment(pos),
                offset: position_offset(pos),
                bytes,
            });
        }
        let chunk = self.open.last_mut().expect("a chunk is open");
        encode_record_claiming(&mut chunk.bytes, body, flags, (sequence, prev), claim);
        self.next = chunk.end();
        pos
    }

    /// Hands every open chunk to a writer (they stay readable as in flight).
    pub fn take(&mut self) -> Vec<Arc<Chunk>> {
        let taken: Vec<Arc<Chunk>> = self.open.drain(..).map(Arc::new).collect();
        self.inflight.extend(taken.iter().cloned());
        taken
    }

    /// Forgets in-flight chunks that end at or before `through` (now in the file).
    pub fn written(&mut self, through: u64) {
        let mut kept = Vec::new();
        for chunk in self.inflight.drain(..) {
            if chunk.end() > through {
                kept.push(chunk);
            } else if self.spares.len() < MAX_SPARES
                && let Ok(mut c) = Arc::try_unwrap(chunk)
            {
                c.bytes.clear();
                self.spares.push(c.bytes);
            }
        }
        self.inflight = kept;
    }

    /// The record at `pos` if it is still pending: its bytes from `pos` to the
    /// end of its chunk (the record's own length is in its header).
    pub fn read(&self, pos: u64) -> Option<&[u8]> {
        let in_open = self.open.iter().find_map(|c| c.tail_from(pos));
        in_open.or_else(|| self.inflight.iter().find_map(|c| c.tail_from(pos)))
    }

    /// A copy of the whole record at `pos`, if it is pending.
    pub fn copy_record(&self, pos: u64) -> Option<Vec<u8>> {
        let tail = self.read(pos)?;
        let len = parse_header(tail).ok()?.record_len();
        tail.get(..len.max(RECORD_HEADER_LEN)).map(<[u8]>::to_vec)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pending_records_are_readable_until_written() {
        let mut p = PendingLog::default();
        let a = p.append(b"aaa", 0, (1, 0), 0);
        let b = p.append(b"bbbb", 0, (2, a), 0);
        p.roll_segment();
        let c = p.append(b"c", 0, (1, 0), 0);
        assert_eq!(position_segment(c), 2);
        assert!(p.copy_record(b).is_some());
        let taken = p.take();
        assert_eq!(taken.len(), 2);
        let d = p.append(b"d", 0, (3, b), 0);
        assert!(p.copy_record(a).is_some() && p.copy_record(d).is_some());
        p.written(taken[0].end());
        assert!(p.copy_record(a).is_none());
        assert!(p.copy_record(c).is_some());
        p.written(taken[1].end());
        assert!(p.copy_record(c).is_none());
        assert!(p.copy_record(d).is_some());
    }

    fn claim_of(p: &PendingLog, pos: u64) -> u32 {
        parse_header(&p.copy_record(pos).unwrap())
            .unwrap()
            .durable_before
    }

    #[test]
    fn records_claim_the_durable_offset_of_their_own_segment_only() {
        let start = pack_position(4, 1000);
        let mut p = PendingLog::starting_at(start, 0, (true, true));
        let a = p.append(b"a", 0, (1, 0), start);
        let b = p.append(b"b", 0, (2, a), pack_position(4, 700));
        // The durable mark still in the segment before: nothing of this one.
        let c = p.append(b"c", 0, (3, b), pack_position(3, 5000));
        assert_eq!(
            (claim_of(&p, a), claim_of(&p, b), claim_of(&p, c)),
            (1000, 700, 32)
        );
        p.roll_segment();
        let d = p.append(b"d", 0, (4, c), c);
        assert_eq!(claim_of(&p, d), 32);
    }

    #[test]
    fn buffered_records_claim_nothing() {
        let start = pack_position(1, 32);
        let mut p = PendingLog::starting_at(start, 0, (false, true));
        let a = p.append(b"a", 0, (1, 0), start);
        p.roll_segment();
        let b = p.append(b"b", 0, (2, a), pack_position(2, 32));
        assert_eq!((claim_of(&p, a), claim_of(&p, b)), (0, 0));
    }

    #[test]
    fn a_segment_of_an_older_version_gets_no_claims_until_the_next_one() {
        let start = pack_position(2, 64);
        let mut p = PendingLog::starting_at(start, 0, (true, false));
        let a = p.append(b"a", 0, (1, 0), start);
        assert_eq!(claim_of(&p, a), 0);
        p.roll_segment();
        let next = p.next();
        let b = p.append(b"b", 0, (2, a), next);
        assert_eq!(claim_of(&p, b), position_offset(next) as u32);
    }
}
