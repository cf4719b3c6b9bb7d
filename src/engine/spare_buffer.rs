//! One read buffer kept between queries, so a query's read window does not
//! allocate (and zero) a fresh buffer of up to a few hundred KiB each time.
//!
//! Queries take it and give it back; a query running while another holds it
//! simply starts with an empty buffer, as every query did before.

use parking_lot::Mutex;

/// A spare buffer, empty until the first query gives one back.
pub(crate) struct SpareBuffer {
    buf: Mutex<Vec<u8>>,
    /// Buffers larger than this are dropped rather than kept (a window grows
    /// past its usual size only for a very large record).
    keep_up_to: usize,
}

impl SpareBuffer {
    /// A spare that keeps buffers of at most `keep_up_to` bytes.
    pub fn keeping_up_to(keep_up_to: usize) -> SpareBuffer {
        SpareBuffer {
            buf: Mutex::new(Vec::new()),
            keep_up_to,
        }
    }

    /// The spare buffer (its bytes are stale), or an empty one.
    pub fn take(&self) -> Vec<u8> {
        std::mem::take(&mut *self.buf.lock())
    }

    /// Keeps `buf` for the next query, unless it is too large or the
    /// spare already held is at least as large.
    pub fn give_back(&self, buf: Vec<u8>) {
        if buf.len() > self.keep_up_to {
            return;
        }
        let mut held = self.buf.lock();
        if buf.len() > held.len() {
            *held = buf;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_larger_buffer_within_the_limit() {
        let spare = SpareBuffer::keeping_up_to(100);
        spare.give_back(vec![1; 10]);
        spare.give_back(vec![2; 5]);
        assert_eq!(spare.take(), vec![1; 10]);
        assert!(spare.take().is_empty());
        spare.give_back(vec![3; 101]);
        assert!(spare.take().is_empty());
    }
}
