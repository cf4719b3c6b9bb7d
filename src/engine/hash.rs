//! [`FastHash`]: the keyed hash of event ids and session names.
//!
//! Recovery hashes every id and session name in the log, and every append
//! hashes one of each, so the std SipHash showed up as a fifth of the
//! recovery time. This is a wyhash-style hash (folded 64x64->128-bit
//! multiplies over 16-byte blocks) with random keys per open log: several
//! times faster, and still unpredictable to someone choosing ids, whose worst
//! case would only be slower probes (every id hit is verified against the
//! record anyway).

use std::hash::{BuildHasher, Hasher};

const P0: u64 = 0xa076_1d64_78bd_642f;
const P1: u64 = 0xe703_7ed1_a0b4_28db;

/// The folded multiply: low and high halves of the 128-bit product, xored.
fn mum(a: u64, b: u64) -> u64 {
    let r = u128::from(a) * u128::from(b);
    (r as u64) ^ ((r >> 64) as u64)
}

/// Up to 8 bytes as a little-endian u64, zero-padded.
fn read_u64(b: &[u8]) -> u64 {
    // Whole words are the common case (an id's 16-byte blocks): one load.
    // A variable-length copy_from_slice is a memcpy call, six per event id.
    if let Some(word) = b.first_chunk::<8>() {
        return u64::from_le_bytes(*word);
    }
    let mut a = [0u8; 8];
    a[..b.len()].copy_from_slice(b);
    u64::from_le_bytes(a)
}

/// A randomly keyed fast hash; also a `BuildHasher` for the session map.
#[derive(Clone, Debug)]
pub(crate) struct FastHash {
    seed: u64,
    k1: u64,
    k2: u64,
}

impl FastHash {
    /// A hash with fresh random keys.
    pub fn new() -> FastHash {
        FastHash {
            seed: rand::random(),
            k1: rand::random::<u64>() | 1,
            k2: rand::random::<u64>() | 1,
        }
    }

    /// The hash of `bytes`.
    pub fn hash_bytes(&self, bytes: &[u8]) -> u64 {
        let mut h = self.seed ^ mum(bytes.len() as u64 ^ P0, self.k1);
        // Whole 16-byte blocks as two fixed-size words (no length checks),
        // then the short last block, zero-padded, as before.
        let (blocks, tail) = bytes.as_chunks::<16>();
        for block in blocks {
            let (a, b) = block.split_at(8);
            h = mum(read_u64(a) ^ self.k1, read_u64(b) ^ self.k2 ^ h);
        }
        if !tail.is_empty() {
            let (a, b) = tail.split_at(tail.len().min(8));
            h = mum(read_u64(a) ^ self.k1, read_u64(b) ^ self.k2 ^ h);
        }
        mum(h ^ P1, bytes.len() as u64 ^ self.k2)
    }
}

impl Default for FastHash {
    fn default() -> FastHash {
        FastHash::new()
    }
}

impl BuildHasher for FastHash {
    type Hasher = FastHasher;

    fn build_hasher(&self) -> FastHasher {
        FastHasher {
            keys: self.clone(),
            state: self.seed,
        }
    }
}

/// The streaming form, for `HashMap` keys.
pub(crate) struct FastHasher {
    keys: FastHash,
    state: u64,
}

impl Hasher for FastHasher {
    fn write(&mut self, bytes: &[u8]) {
        self.state = mum(self.state ^ self.keys.hash_bytes(bytes), P0);
    }

    fn finish(&self) -> u64 {
        mum(self.state, self.keys.k1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    /// The plain definition: every 16-byte block (the last one short),
    /// split into two zero-padded words.
    fn reference_hash(h: &FastHash, bytes: &[u8]) -> u64 {
        let mut x = h.seed ^ mum(bytes.len() as u64 ^ P0, h.k1);
        for block in bytes.chunks(16) {
            let (a, b) = block.split_at(block.len().min(8));
            let word = |w: &[u8]| {
                let mut p = [0u8; 8];
                p[..w.len()].copy_from_slice(w);
                u64::from_le_bytes(p)
            };
            x = mum(word(a) ^ h.k1, word(b) ^ h.k2 ^ x);
        }
        mum(x ^ P1, bytes.len() as u64 ^ h.k2)
    }

    #[test]
    fn block_and_tail_reads_match_the_definition() {
        let h = FastHash::new();
        let bytes: Vec<u8> = (0..70u8).map(|b| b.wrapping_mul(37)).collect();
        for len in 0..bytes.len() {
            assert_eq!(
                h.hash_bytes(&bytes[..len]),
                reference_hash(&h, &bytes[..len]),
                "len {len}"
            );
        }
    }

    #[test]
    fn distinct_inputs_spread_over_all_bits() {
        let h = FastHash::new();
        let hashes: Vec<u64> = (0..50_000)
            .map(|i| h.hash_bytes(format!("evt_{i:032x}").as_bytes()))
            .collect();
        assert_eq!(hashes.iter().collect::<HashSet<_>>().len(), hashes.len());
        // Every bit is set in roughly half of the hashes.
        for bit in 0..64 {
            let ones = hashes.iter().filter(|&&x| x >> bit & 1 == 1).count();
            assert!((20_000..30_000).contains(&ones), "bit {bit}: {ones}");
        }
        assert_ne!(h.hash_bytes(b""), h.hash_bytes(b"\0"));
        assert_ne!(h.hash_bytes(b"ab"), FastHash::new().hash_bytes(b"ab"));
    }
}
