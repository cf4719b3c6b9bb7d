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

/// Event-id hash → record position, compact and verified by the caller.
pub(crate) struct IdIndex {
    /// Per slot: 0 when empty, else `0x80 | (hash & 0x7F)`.
    ctrl: Vec<u8>,
    /// `[hash_hi, low word, high word]` of each used slot.
    slots: Vec<[u32; 3]>,
    len: usize,
}

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

impl IdIndex {
    /// An empty index.
    pub fn new() -> IdIndex {
        IdIndex {
            ctrl: vec![0; INITIAL_SLOTS],
            slots: vec![[0; 3]; INITIAL_SLOTS],
            len: 0,
        }
    }

    /// How many ids are indexed.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Bytes of heap the index holds.
    pub fn heap_bytes(&self) -> usize {
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
    fn probe(
        &self,
        hash: u64,
        is_match: &mut impl FnMut(u64) -> Result<bool>,
    ) -> Result<Probe> {
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
        self.reserve(1);
        let i = match self.probe(hash, &mut is_match)? {
            Probe::Found(existing) => return Ok(Some(existing)),
            Probe::Vacant(i) => i,
        };
        let (ctrl, hi, tag) = split(hash);
        let word = (position & POS_MASK) | (tag << POS_BITS);
        self.ctrl[i] = ctrl;
        self.slots[i] = [hi, word as u32, (word >> 32) as u32];
        self.len += 1;
        Ok(None)
    }

    /// Makes room for `additional` more ids without growing on the way.
    pub fn reserve(&mut self, additional: usize) {
        let mut slots = self.ctrl.len();
        while (self.len + additional).saturating_mul(8) > slots.saturating_mul(7) {
            slots *= 2;
        }
        if slots != self.ctrl.len() {
            self.resize(slots);
        }
    }

    /// Adds `hash → position`. The caller has made sure the id is not indexed
    /// yet, and that `position` has a segment number of at most
    /// [`MAX_INDEXED_SEGMENT`].
    pub fn insert(&mut self, hash: u64, position: u64) {
        debug_assert!(position <= POS_MASK);
        self.reserve(1);
        let (ctrl, hi, tag) = split(hash);
        self.place(ctrl, hi, (position & POS_MASK) | (tag << POS_BITS));
        self.len += 1;
    }

    fn place(&mut self, ctrl: u8, hi: u32, word: u64) {
        let mask = self.mask();
        let mut i = self.home(hi);
        while self.ctrl[i] != 0 {
            i = (i + 1) & mask;
        }
        self.ctrl[i] = ctrl;
        self.slots[i] = [hi, word as u32, (word >> 32) as u32];
    }

    /// Rehashes into `slots` slots (a power of two, more than now).
    fn resize(&mut self, slots: usize) {
        let old_ctrl = std::mem::replace(&mut self.ctrl, vec![0; slots]);
        let old_slots = std::mem::replace(&mut self.slots, vec![[0; 3]; slots]);
        for (&c, slot) in old_ctrl.iter().zip(&old_slots).filter(|(c, _)| **c != 0) {
            self.place(c, slot[0], stored(slot));
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
}
