//! [`SparseIndex`]: where every `SPARSE_INTERVAL`-th record of a session is.
//!
//! All sessions share one log, so a session's records are interleaved with
//! others'. Each record carries the position of its session's previous
//! record, so from any record a reader can walk back through exactly its
//! session. The sparse index gives the walk a starting point near the wanted
//! range: the position of every record whose sequence is a multiple of
//! [`SPARSE_INTERVAL`]. A query for `after: k` starts at the first anchor at
//! or above `k + 1` and walks back at most `SPARSE_INTERVAL - 1` records, so
//! it reads only the records it returns plus a bounded few, however long the
//! log, at 8 bytes per `SPARSE_INTERVAL` events.

/// Sequences between anchors. 16 rather than 32 (until the eleventh
/// session): a page of 100 then spans 7 intervals, whose chains the read
/// path walks together (`read::LANES`), for 0.25 B more per event. 10M-event
/// log pages 85.9 → 78.9 µs, 1M 55.8-58.1 → 52.5 µs (BENCHMARKS.md, "Cursor pages").
pub(crate) const SPARSE_INTERVAL: u64 = 16;

/// One session's anchors: `anchors[i]` is the position of sequence
/// `(i + 1) * SPARSE_INTERVAL`.
#[derive(Default, Debug, Clone)]
pub(crate) struct SparseIndex {
    anchors: Vec<u64>,
}

impl SparseIndex {
    /// Notes that sequence `sequence` is at `position` (called for every
    /// record, in sequence order; keeps only the anchors).
    pub fn note(&mut self, sequence: u64, position: u64) {
        if sequence.is_multiple_of(SPARSE_INTERVAL) {
            debug_assert_eq!(self.anchors.len() as u64 + 1, sequence / SPARSE_INTERVAL);
            self.anchors.push(position);
        }
    }

    /// The first anchor at or above `sequence` that is at most `visible`:
    /// `(anchor_sequence, position)`. `None` when there is none yet; the walk
    /// then starts at the session's latest visible record.
    pub fn anchor_at_or_after(&self, sequence: u64, visible: u64) -> Option<(u64, u64)> {
        let k = sequence.max(1).div_ceil(SPARSE_INTERVAL);
        let anchor = k.checked_mul(SPARSE_INTERVAL)?;
        if anchor > visible {
            return None;
        }
        let i = usize::try_from(k - 1).ok()?;
        self.anchors.get(i).map(|&p| (anchor, p))
    }

    /// The last anchor below `sequence`, `(anchor_sequence, position)`
    /// (`None` when there is none): no record of a sequence at or above
    /// `sequence` lies before it.
    pub fn anchor_before(&self, sequence: u64) -> Option<(u64, u64)> {
        let below =
            usize::try_from(sequence.saturating_sub(1) / SPARSE_INTERVAL).unwrap_or(usize::MAX);
        let last = self.anchors.len().checked_sub(1)?;
        let i = below.checked_sub(1)?.min(last);
        Some(((i as u64 + 1) * SPARSE_INTERVAL, self.anchors[i]))
    }

    /// Bytes of heap held.
    pub fn heap_bytes(&self) -> usize {
        self.anchors.capacity() * 8
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anchors_cover_every_multiple_of_the_interval() {
        const I: u64 = SPARSE_INTERVAL;
        let mut s = SparseIndex::default();
        for seq in 1..=100 {
            s.note(seq, seq * 1000);
        }
        let last = 100 / I * I;
        assert_eq!(s.anchor_at_or_after(1, 100), Some((I, I * 1000)));
        assert_eq!(s.anchor_at_or_after(I, 100), Some((I, I * 1000)));
        assert_eq!(
            s.anchor_at_or_after(I + 1, 100),
            Some((2 * I, 2 * I * 1000))
        );
        assert_eq!(s.anchor_at_or_after(last + 1, 100), None);
        assert_eq!(s.anchor_at_or_after(2 * I + 1, 3 * I - 1), None);
        assert_eq!(s.anchor_at_or_after(u64::MAX, u64::MAX), None);
        assert_eq!(s.anchor_before(I), None);
        assert_eq!(s.anchor_before(I + 1), Some((I, I * 1000)));
        assert_eq!(s.anchor_before(2 * I), Some((I, I * 1000)));
        assert_eq!(s.anchor_before(2 * I + 1), Some((2 * I, 2 * I * 1000)));
        assert_eq!(s.anchor_before(u64::MAX), Some((last, last * 1000)));
    }
}
