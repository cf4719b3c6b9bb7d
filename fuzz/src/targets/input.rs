//! Reads fuzz input bytes as small numbers; an exhausted input reads as zeros,
//! so every byte string is a valid program.

/// A cursor over the fuzz input.
pub struct Input<'a> {
    bytes: &'a [u8],
}

impl<'a> Input<'a> {
    /// A reader over `bytes`.
    pub fn new(bytes: &'a [u8]) -> Input<'a> {
        Input { bytes }
    }

    /// Whether every byte has been read.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// The next byte (0 once exhausted).
    pub fn u8(&mut self) -> u8 {
        match self.bytes.split_first() {
            Some((&b, rest)) => {
                self.bytes = rest;
                b
            }
            None => 0,
        }
    }

    /// The next two bytes, little-endian.
    pub fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }

    /// The next four bytes, little-endian.
    pub fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }

    /// A number below `n` (`n` > 0).
    pub fn below(&mut self, n: u32) -> u32 {
        u32::from(self.u8()) % n
    }

    /// `Some` of `f` when the next byte is odd.
    pub fn maybe<T>(&mut self, f: impl FnOnce(&mut Input<'a>) -> T) -> Option<T> {
        if self.u8() & 1 == 1 {
            Some(f(self))
        } else {
            None
        }
    }

    /// The next `n` bytes (fewer at the end).
    pub fn take(&mut self, n: usize) -> &'a [u8] {
        let n = n.min(self.bytes.len());
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        head
    }
}

/// A fresh temporary directory for one input, on tmpfs (`/dev/shm`) where
/// there is one: the targets sync their files, which costs real disk flushes
/// elsewhere and makes no difference to what is checked.
pub fn scratch_dir() -> tempfile::TempDir {
    let shm = std::path::Path::new("/dev/shm");
    if shm.is_dir()
        && let Ok(dir) = tempfile::tempdir_in(shm)
    {
        return dir;
    }
    tempfile::tempdir().expect("temp dir")
}
