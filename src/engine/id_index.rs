//! [`IdIndex`]: which record holds an event id, in 13 bytes per slot.
//!
//! The index maps a 64-bit hash of the id to the record's packed position
//! (`segment << 32 | offset`). It does not keep ids, so a hit only says
//! "probably here": the caller verifies it against the record, and hash
//! collisions are simply further candidates on the probe path.
//!
//! Open addressing with linear probing, at most 7/8 full, in two arrays:
//! - a control byte per slot (0 = empty, else `0x80` | 7 hash bits), so a
//!   lookup of a new id (the common case) touches only this small array;
//! - the slot itself, three `u32`s: the hash's high 32 bits (which also pick
//!   the home slot, so growing needs no ids, and ascending hashes have
//!   ascending home slots), then a `u64` holding the
//!   position in its low 52 bits and 12 more hash bits above.
//!
//! That is 51 hash bits compared before a record is read, so a false
//! candidate is rare even in a big log. Nothing is ever removed (the log is
//! append-only), so there are no tombstones.

use crate::error::Result;

/// Position bits kept per slot: segments below 2^20, offsets below 2^32.
const POS_BITS: u32 = 52;
const POS_MASK: u64 = (1 << POS_BITS) - 1;
/// The largest segment number a position in the index can name.
pub(crate) const MAX_INDEXED_SEGMENT: u64 = (1 << (POS_BITS - 32)) - 1;
const INITIAL_SLOTS: usize = 1024;

/// One open-addressing table: control bytes and slots.
struct Table {
    /// Per slot: 0 when empty, else `0x80 | (hash & 0x7F)`.
    ctrl: Vec<u8>,
    /// `[hash_hi, low word, high word]` of each used slot.
    slots: Vec<[u32; 3]>,
}

/// Event-id hash → record position, compact and verified by the caller.
///
/// Growing is incremental: a full table is replaced by one twice its size,
/// and each later insert moves a few of the old table's slots over, so no
/// append waits for millions of ids to be rehashed at once (a one-shot
/// rehash of 917,504 ids stalled an append for 38 ms). Until the move is
/// done, lookups try the new table, then the old one, which stays untouched
/// (and so keeps its probe chains intact) until it is dropped.
pub(crate) struct IdIndex {
    table: Table,
    /// The table being moved out, and the next of its slots to move.
    old: Option<(Table, usize)>,
    len: usize,
}

/// Old slots moved per insert while growing: the old table (at most 7/8
/// full) is gone after `1/MOVE_PER_INSERT` of its size in inserts, long
/// before the new one (then under half full) fills up.
const MOVE_PER_INSERT: usize = 8;

/// The parts of a hash the index keeps: (control byte, high 32 bits, 12-bit tag).
fn split(hash: u64) -> (u8, u32, u64) {
    (
        0x80 | (hash as u8 & 0x7F),
        (hash >> 32) as u32,
        (hash >> 20) & 0xFFF,
    )
}

fn stored(slot: &[u32; 3]) -> u64 {
    u64::from(slot[1]) | (u64::from(slot[2]) << 32)
}

impl Default for IdIndex {
    fn default() -> IdIndex {
        IdIndex::new()
    }
}

/// Where a probe for a hash ended.
enum Probe {
    /// A confirmed match at this record position.
    Found(u64),
    /// No match; this empty slot ends the probe sequence.
    Vacant(usize),
}

impl Table {
    fn with_slots(slots: usize) -> Table {
        Table {
            ctrl: vec![0; slots],
            slots: vec![[0; 3]; slots],
        }
    }

    fn heap_bytes(&self) -> usize {
        self.ctrl.capacity() + self.slots.capacity() * std::mem::size_of::<[u32; 3]>()
    }

    /// The home slot of a hash: its high bits scaled to the table, so
    /// inserting hashes in ascending order walks the table front to back.
    fn home(&self, hi: u32) -> usize {
        ((u64::from(hi) * self.ctrl.len() as u64) >> 32) as usize
    }

    fn mask(&self) -> usize {
        self.ctrl.len() - 1
    }

    /// Probes for `hash`: `Ok(Found(position))` for a confirmed match, else
    /// `Ok(Vacant(slot))` with the empty slot that ends the probe sequence.
    fn probe(&self, hash: u64, is_match: &mut impl FnMut(u64) -> Result<bool>) -> Result<Probe> {
        let (ctrl, hi, tag) = split(hash);
        let mask = self.mask();
        let mut i = self.home(hi);
        loop {
            match self.ctrl[i] {
                0 => return Ok(Probe::Vacant(i)),
                c if c == ctrl => {
                    let slot = &self.slots[i];
                    let word = stored(slot);
                    if slot[0] == hi && word >> POS_BITS == tag && is_match(word & POS_MASK)? {
                        return Ok(Probe::Found(word & POS_MASK));
                    }
                }
                _ => {}
            }
            i = (i + 1) & mask;
        }
    }

    /// Puts an entry in slot `i` (empty).
    fn set(&mut self, i: usize, ctrl: u8, hi: u32, word: u64) {
        self.ctrl[i] = ctrl;
        self.slots[i] = [hi, word as u32, (word >> 32) as u32];
    }

    /// Puts an entry in the first empty slot of its probe sequence.
    fn place(&mut self, ctrl: u8, hi: u32, word: u64) {
        let mask = self.mask();
        let mut i = self.home(hi);
        while self.ctrl[i] != 0 {
            i = (i + 1) & mask;
        }
        self.set(i, ctrl, hi, word);
    }

    /// Moves the used slots of `from` in `range` into this table.
    fn take_from(&mut self, from: &Table, range: std::ops::Range<usize>) {
        for i in range.filter(|&i| from.ctrl[i] != 0) {
            self.place(from.ctrl[i], from.slots[i][0], stored(&from.slots[i]));
        }
    }
}

impl IdIndex {
    /// An empty index.
    pub fn new() -> IdIndex {
        IdIndex {
            table: Table::with_slots(INITIAL_SLOTS),
            old: None,
            len: 0,
        }
    }

    /// How many ids are indexed.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Bytes of heap the index holds (both tables while growing).
    pub fn heap_bytes(&self) -> usize {
        self.table.heap_bytes() + self.old.as_ref().map_or(0, |(t, _)| t.heap_bytes())
    }

    /// Probes the current table, then the one being moved out.
    fn probe(&self, hash: u64, is_match: &mut impl FnMut(u64) -> Result<bool>) -> Result<Probe> {
        let probe = self.table.probe(hash, is_match)?;
        if let (Probe::Vacant(_), Some((old, _))) = (&probe, &self.old)
            && let Probe::Found(position) = old.probe(hash, is_match)?
        {
            return Ok(Probe::Found(position));
        }
        Ok(probe)
    }

    /// The position of the record whose id hashes to `hash` and for which
    /// `is_match(position)` confirms it (by reading the record's id), if any.
    pub fn find(
        &self,
        hash: u64,
        mut is_match: impl FnMut(u64) -> Result<bool>,
    ) -> Result<Option<u64>> {
        Ok(match self.probe(hash, &mut is_match)? {
            Probe::Found(position) => Some(position),
            Probe::Vacant(_) => None,
        })
    }

    /// Like [`find`](Self::find), but when nothing matches, adds
    /// `hash → position` in the same probe and returns `None`.
    pub fn find_or_insert(
        &mut self,
        hash: u64,
        position: u64,
        mut is_match: impl FnMut(u64) -> Result<bool>,
    ) -> Result<Option<u64>> {
        debug_assert!(position <= POS_MASK);
        self.grow_for_one();
        let i = match self.probe(hash, &mut is_match)? {
            Probe::Found(existing) => return Ok(Some(existing)),
            Probe::Vacant(i) => i,
        };
        let (ctrl, hi, tag) = split(hash);
        self.table
            .set(i, ctrl, hi, (position & POS_MASK) | (tag << POS_BITS));
        self.len += 1;
        Ok(None)
    }

    /// Makes room for `additional` more ids at once (finishing any
    /// incremental growth first): for indexing many ids in bulk.
    pub fn reserve(&mut self, additional: usize) {
        self.finish_growing();
        let mut slots = self.table.ctrl.len();
        while (self.len + additional).saturating_mul(8) > slots.saturating_mul(7) {
            slots *= 2;
        }
        if slots != self.table.ctrl.len() {
            let old = std::mem::replace(&mut self.table, Table::with_slots(slots));
            let all = 0..old.ctrl.len();
            self.table.take_from(&old, all);
        }
    }

    /// Adds `hash → position`. The caller has made sure the id is not indexed
    /// yet, and that `position` has a segment number of at most
    /// [`MAX_INDEXED_SEGMENT`].
    pub fn insert(&mut self, hash: u64, position: u64) {
        debug_assert!(position <= POS_MASK);
        self.grow_for_one();
        let (ctrl, hi, tag) = split(hash);
        self.table
            .place(ctrl, hi, (position & POS_MASK) | (tag << POS_BITS));
        self.len += 1;
    }

    /// Before one insert: moves a few old slots over if growing, and starts
    /// growing (a table twice the size) when one more id would pass 7/8.
    fn grow_for_one(&mut self) {
        if let Some((old, next)) = &mut self.old {
            let to = (*next + MOVE_PER_INSERT).min(old.ctrl.len());
            self.table.take_from(old, *next..to);
            *next = to;
            if to == old.ctrl.len() {
                self.old = None;
            }
        }
        if (self.len + 1).saturating_mul(8) > self.table.ctrl.len().saturating_mul(7) {
            self.finish_growing();
            let bigger = Table::with_slots(self.table.ctrl.len() * 2);
            self.old = Some((std::mem::replace(&mut self.table, bigger), 0));
        }
    }

    /// Moves whatever is left of the old table over at once.
    fn finish_growing(&mut self) {
        if let Some((old, next)) = self.old.take() {
            let rest = next..old.ctrl.len();
            self.table.take_from(&old, rest);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn finds_what_was_inserted_through_collisions_and_growth() {
        let mut index = IdIndex::new();
        let mut truth = HashMap::new();
        for n in 1..20_000u64 {
            // Many equal hashes force long probe chains and verification.
            let hash = if n % 7 == 0 {
                0xDEAD_BEEF_0000_0000
            } else {
                n.wrapping_mul(0x9E37_79B9_7F4A_7C15)
            };
            let pos = (1 << 32) | (32 + n);
            index.insert(hash, pos);
            truth.insert(pos, hash);
        }
        for (&pos, &hash) in &truth {
            let found = index.find(hash, |p| Ok(p == pos)).unwrap();
            assert_eq!(found, Some(pos));
        }
        assert_eq!(index.find(12345, |_| Ok(true)).unwrap(), None);
        assert_eq!(index.len(), truth.len());
        assert!(index.heap_bytes() <= 13 * 2 * 32_768);
    }

    /// Every id stays findable at every step of an incremental growth, and
    /// `find_or_insert` finds ids still only in the old table.
    #[test]
    fn growing_moves_slots_over_without_losing_any() {
        let mut index = IdIndex::new();
        let hash = |n: u64| {
            if n.is_multiple_of(5) {
                0xC0FF_EE00_0000_0000 | (n & 3)
            } else {
                n.wrapping_mul(0x9E37_79B9_7F4A_7C15)
            }
        };
        let pos = |n: u64| (1 << 32) | (32 + n);
        let mut grew_while_checking = 0;
        for n in 1..6_000u64 {
            if n % 2 == 0 {
                index.insert(hash(n), pos(n));
            } else {
                assert_eq!(
                    index
                        .find_or_insert(hash(n), pos(n), |_| Ok(false))
                        .unwrap(),
                    None
                );
            }
            if index.old.is_some() {
                grew_while_checking += 1;
                // Every earlier id: found, wherever it lives now.
                for m in (1..=n).step_by(7) {
                    assert_eq!(
                        index.find(hash(m), |p| Ok(p == pos(m))).unwrap(),
                        Some(pos(m))
                    );
                }
                // (Each call moves slots too, so only one per step.)
                let m = n / 2 + 1;
                let again = index.find_or_insert(hash(m), 1, |p| Ok(p == pos(m)));
                assert_eq!(again.unwrap(), Some(pos(m)), "id {m} at insert {n}");
            }
        }
        assert!(grew_while_checking > 100, "growth was seen in progress");
        assert_eq!(index.len(), 5_999);
        index.reserve(10_000);
        assert!(index.old.is_none(), "a bulk reserve finishes growing");
        for m in 1..6_000u64 {
            assert_eq!(
                index.find(hash(m), |p| Ok(p == pos(m))).unwrap(),
                Some(pos(m))
            );
        }
    }
}
