//! Segment files: their names and their 32-byte header (format v4; v1 to v3 are read too).
//!
//! A log directory holds segment files named by their segment number, 20
//! decimal digits with leading zeros and the extension `.seg`
//! (`00000000000000000001.seg`). Numbers start at 1 and are consecutive.
//!
//! Every segment starts with this header, little-endian:
//!
//! | offset | size | field                                   |
//! |--------|------|-----------------------------------------|
//! | 0      | 8    | magic `SLOGSEG\0`                       |
//! | 8      | 4    | format version, u32 = 4 (1-3 read too)  |
//! | 12     | 4    | header length, u32 = 32                 |
//! | 16     | 8    | segment number, u64 (equals the file name's) |
//! | 24     | 4    | reserved, zero                          |
//! | 28     | 4    | CRC32 (IEEE) of bytes 0..28             |
//!
//! Records (see [`record`](super::record)) follow from byte 32 on.

/// The first 8 bytes of every segment file.
pub const SEGMENT_MAGIC: [u8; 8] = *b"SLOGSEG\0";
/// The format version this code writes.
pub const FORMAT_VERSION: u32 = 4;
/// The oldest format version this code reads. Version 1 has the same bytes;
/// its writers just never preallocate (format §5, §7).
pub const OLDEST_READABLE_VERSION: u32 = 1;
/// The first version whose writers keep preallocated zeros after the
/// newest segment's records; a writer continuing an older segment does not.
pub const PREALLOCATING_VERSION: u32 = 2;
/// The first version whose records claim what was durable when they were
/// written (`durable_before`, format §3), which lets recovery cut a torn
/// write that a valid record follows (§6). Records of older segments claim
/// nothing, and a writer continuing such a segment keeps it that way.
pub const CLAIMING_VERSION: u32 = 3;
/// The first version whose writers end the newest segment with a close mark
/// when they close cleanly (format §5): a writer continuing an older segment
/// writes none into it, so that segment stays valid in its own version.
pub const CLOSE_MARK_VERSION: u32 = 4;
/// Bytes of the segment header; the first record starts here.
pub const SEGMENT_HEADER_LEN: usize = 32;
/// The extension of segment file names.
pub const SEGMENT_EXTENSION: &str = "seg";
/// The extension of a segment file being prepared (see [`prepared_file_name`]).
pub const PREPARED_EXTENSION: &str = "prepared";

/// Why a segment header is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SegmentHeaderError {
    /// Fewer than [`SEGMENT_HEADER_LEN`] bytes (a torn creation).
    Short(usize),
    /// The bytes are not a sessionlog segment header (bad magic or checksum).
    Damaged(String),
    /// A well-formed header of a format version this code does not read.
    UnsupportedVersion(u32),
}

impl std::fmt::Display for SegmentHeaderError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SegmentHeaderError::Short(n) => {
                write!(
                    f,
                    "segment header is incomplete ({n} of {SEGMENT_HEADER_LEN} bytes)"
                )
            }
            SegmentHeaderError::Damaged(why) => write!(f, "segment header is damaged: {why}"),
            SegmentHeaderError::UnsupportedVersion(v) => {
                write!(
                    f,
                    "segment format version {v} is not supported (this build reads {OLDEST_READABLE_VERSION} to {FORMAT_VERSION})"
                )
            }
        }
    }
}

/// The file name of segment `number` (`00000000000000000001.seg`).
pub fn segment_file_name(number: u64) -> String {
    format!("{number:020}.{SEGMENT_EXTENSION}")
}

/// The segment number a file name stands for, if it is a segment file name.
pub fn parse_segment_file_name(name: &str) -> Option<u64> {
    let digits = number_digits(name, SEGMENT_EXTENSION)?;
    digits.parse().ok().filter(|&n| n > 0)
}

/// The 20 decimal digits of `name` if it is `<20 digits>.<extension>`.
fn number_digits<'a>(name: &'a str, extension: &str) -> Option<&'a str> {
    let digits = name.strip_suffix(extension)?.strip_suffix('.')?;
    (digits.len() == 20 && digits.bytes().all(|b| b.is_ascii_digit())).then_some(digits)
}

/// The file name segment `number` is prepared under before it becomes a
/// segment (`00000000000000000002.prepared`, format §1): header and zeros,
/// renamed to its segment file name when the writer starts it. Readers
/// ignore such files; the writer removes any it finds when it opens a log.
pub fn prepared_file_name(number: u64) -> String {
    format!("{number:020}.{PREPARED_EXTENSION}")
}

/// Whether `name` is the name of a prepared segment file.
pub fn is_prepared_file_name(name: &str) -> bool {
    number_digits(name, PREPARED_EXTENSION).is_some()
}

/// The header of segment `number`, of the version this code writes.
pub fn encode_segment_header(number: u64) -> [u8; SEGMENT_HEADER_LEN] {
    encode_segment_header_of_version(number, FORMAT_VERSION)
}

/// The header of segment `number` stating format version `version` (for
/// tools and tests that need an older or unknown version's header).
pub fn encode_segment_header_of_version(number: u64, version: u32) -> [u8; SEGMENT_HEADER_LEN] {
    let mut h = [0u8; SEGMENT_HEADER_LEN];
    h[0..8].copy_from_slice(&SEGMENT_MAGIC);
    h[8..12].copy_from_slice(&version.to_le_bytes());
    h[12..16].copy_from_slice(&(SEGMENT_HEADER_LEN as u32).to_le_bytes());
    h[16..24].copy_from_slice(&number.to_le_bytes());
    let crc = crc32fast::hash(&h[0..28]);
    h[28..32].copy_from_slice(&crc.to_le_bytes());
    h
}

fn le_u32(b: &[u8]) -> u32 {
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

/// Checks a segment header and returns the segment number it names.
///
/// `bytes` is the start of the file (it may be longer than the header).
pub fn decode_segment_header(bytes: &[u8]) -> Result<u64, SegmentHeaderError> {
    if bytes.len() < SEGMENT_HEADER_LEN {
        return Err(SegmentHeaderError::Short(bytes.len()));
    }
    let h = &bytes[..SEGMENT_HEADER_LEN];
    if h[0..8] != SEGMENT_MAGIC {
        return Err(SegmentHeaderError::Damaged("bad magic".into()));
    }
    if crc32fast::hash(&h[0..28]) != le_u32(&h[28..32]) {
        return Err(SegmentHeaderError::Damaged(
            "header checksum mismatch".into(),
        ));
    }
    let version = le_u32(&h[8..12]);
    if !(OLDEST_READABLE_VERSION..=FORMAT_VERSION).contains(&version) {
        return Err(SegmentHeaderError::UnsupportedVersion(version));
    }
    if le_u32(&h[12..16]) as usize != SEGMENT_HEADER_LEN || le_u32(&h[24..28]) != 0 {
        return Err(SegmentHeaderError::Damaged(
            "bad header length or reserved field".into(),
        ));
    }
    let mut n = [0u8; 8];
    n.copy_from_slice(&h[16..24]);
    Ok(u64::from_le_bytes(n))
}

/// Checks a segment header like [`decode_segment_header`] and returns the
/// format version it states (one this code reads).
pub fn decode_segment_version(bytes: &[u8]) -> Result<u32, SegmentHeaderError> {
    decode_segment_header(bytes).map(|_| le_u32(&bytes[8..12]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips_and_rejects_damage() {
        let h = encode_segment_header(42);
        assert_eq!(decode_segment_header(&h), Ok(42));
        for i in 0..SEGMENT_HEADER_LEN {
            let mut bad = h;
            bad[i] ^= 0x10;
            assert!(decode_segment_header(&bad).is_err(), "flip at {i}");
        }
        assert_eq!(
            decode_segment_header(&h[..5]),
            Err(SegmentHeaderError::Short(5))
        );
    }

    /// The header of format/README.md's example, byte for byte.
    #[test]
    fn header_matches_the_specs_example() {
        let spec = [
            0x53, 0x4c, 0x4f, 0x47, 0x53, 0x45, 0x47, 0x00, 0x04, 0x00, 0x00, 0x00, 0x20, 0x00,
            0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
            0x77, 0x19, 0x0f, 0x3b,
        ];
        assert_eq!(encode_segment_header(1), spec);
    }

    #[test]
    fn every_readable_version_decodes_and_others_are_unsupported() {
        for v in OLDEST_READABLE_VERSION..=FORMAT_VERSION {
            let h = encode_segment_header_of_version(7, v);
            assert_eq!(decode_segment_header(&h), Ok(7));
            assert_eq!(decode_segment_version(&h), Ok(v));
        }
        assert_eq!(
            decode_segment_version(&encode_segment_header(7)),
            Ok(FORMAT_VERSION)
        );
        for v in [0, FORMAT_VERSION + 1] {
            let h = encode_segment_header_of_version(7, v);
            assert_eq!(
                decode_segment_header(&h),
                Err(SegmentHeaderError::UnsupportedVersion(v))
            );
        }
    }

    #[test]
    fn file_names_round_trip() {
        assert_eq!(segment_file_name(1), "00000000000000000001.seg");
        assert_eq!(parse_segment_file_name(&segment_file_name(987)), Some(987));
        assert_eq!(parse_segment_file_name("00000000000000000000.seg"), None);
        assert_eq!(parse_segment_file_name("1.seg"), None);
        assert_eq!(parse_segment_file_name("LOCK"), None);
    }
}
