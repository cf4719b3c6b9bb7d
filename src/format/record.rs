//! Log records: a 32-byte header followed by an event body (one layout in
//! format v1-v4; v3 gave four reserved bytes a meaning, `durable_before`;
//! v4 added the close mark, a record of kind 2 without a body).
//!
//! Record layout, little-endian:
//!
//! | offset | size | field                                                        |
//! |--------|------|--------------------------------------------------------------|
//! | 0      | 4    | CRC32 (IEEE) of bytes 4 .. 32 + body_len (header and body)   |
//! | 4      | 4    | body_len, u32: bytes of body after the header                |
//! | 8      | 1    | kind, u8: 1 = event, 2 = close mark (v4)                     |
//! | 9      | 1    | flags, u8: bit 0 = batch continues; other bits zero          |
//! | 10     | 4    | durable_before, u32 (v3; zero before): see [`RecordHeader`]  |
//! | 14     | 2    | reserved, zero                                               |
//! | 16     | 8    | sequence number in its session, u64, at least 1              |
//! | 24     | 8    | position of the session's previous record, u64; 0 for sequence 1 |
//! | 32     | body_len | the event body ([`event_codec`](super::event_codec))     |
//!
//! A reader skips a record by jumping `32 + body_len` bytes. A *position* is
//! `segment_number << 32 | byte_offset_in_segment` (see [`pack_position`]).
//! Records of one batch carry the "batch continues" flag on every record but
//! the last; a run of such records that is not closed by a record without the
//! flag is an incomplete batch.

use std::sync::LazyLock;

/// Bytes of a record header.
pub const RECORD_HEADER_LEN: usize = 32;
/// The `kind` of an event record (the only kind in format v1 to v3).
pub const KIND_EVENT: u8 = 1;
/// The `kind` of a close mark (format v4): a bodiless record a writer adds
/// when it closes the log cleanly, claiming every byte before it durable, so
/// that damage to the records before it is never taken for a torn tail.
pub const KIND_CLOSE_MARK: u8 = 2;
/// Flag: the next record belongs to the same batch.
pub const FLAG_BATCH_CONTINUES: u8 = 0b0000_0001;
/// The largest body length a record may declare (1 GiB); larger is damage.
pub const MAX_BODY_LEN: u32 = 1 << 30;

/// `segment << 32 | offset`: where a record starts, as one ordered number.
pub fn pack_position(segment: u64, offset: u64) -> u64 {
    (segment << 32) | (offset & 0xFFFF_FFFF)
}

/// The segment number of a packed position.
pub fn position_segment(pos: u64) -> u64 {
    pos >> 32
}

/// The byte offset inside its segment of a packed position.
pub fn position_offset(pos: u64) -> u64 {
    pos & 0xFFFF_FFFF
}

/// The fixed fields of a record header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordHeader {
    /// The stored checksum.
    pub crc: u32,
    /// [`KIND_EVENT`] or [`KIND_CLOSE_MARK`].
    pub kind: u8,
    /// Bytes of body after the header.
    pub body_len: u32,
    /// Flag bits ([`FLAG_BATCH_CONTINUES`]).
    pub flags: u8,
    /// The event's sequence number in its session.
    pub sequence: u64,
    /// The packed position of the session's previous record (0 for none).
    pub prev: u64,
    /// What the writer knew to be durable when it made this record: 0 for
    /// no claim, or an offset (at least 32) below which every record byte
    /// of this record's segment was on stable storage. Written since format
    /// version 3, by writers that sync every group; bytes 10..14 of older
    /// records are zero. Recovery uses it to tell a torn write, whose pages
    /// a power loss may keep in any order, from damage to what was already
    /// durable (format §3, §6).
    pub durable_before: u32,
}

impl RecordHeader {
    /// Header plus body bytes.
    pub fn record_len(&self) -> usize {
        RECORD_HEADER_LEN + self.body_len as usize
    }

    /// Whether the next record belongs to the same batch.
    pub fn batch_continues(&self) -> bool {
        self.flags & FLAG_BATCH_CONTINUES != 0
    }

    /// Whether this is a close mark ([`KIND_CLOSE_MARK`]), not an event.
    pub fn is_close_mark(&self) -> bool {
        self.kind == KIND_CLOSE_MARK
    }
}

/// One complete, checksum-verified record inside a byte buffer.
#[derive(Debug, Clone, Copy)]
pub struct Record<'a> {
    /// Its header.
    pub header: RecordHeader,
    /// Its body.
    pub body: &'a [u8],
}

/// What the bytes at a record boundary hold.
#[derive(Debug, Clone, Copy)]
pub enum RecordParse<'a> {
    /// A complete record whose checksum matches.
    Complete(Record<'a>),
    /// The bytes end before the record does (a torn tail, or still being written).
    Incomplete,
    /// Not a valid record: a bad field or a checksum mismatch.
    Invalid(&'static str),
}

fn le_u32(b: &[u8]) -> u32 {
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

fn le_u64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_le_bytes(a)
}

/// Reads the fixed header fields at the start of `bytes` and checks the ones
/// that do not need the body (kind, flags, reserved bytes, length bound,
/// sequence). Does not verify the checksum.
pub fn parse_header(bytes: &[u8]) -> Result<RecordHeader, RecordParseError> {
    if bytes.len() < RECORD_HEADER_LEN {
        return Err(RecordParseError::Incomplete);
    }
    let h = &bytes[..RECORD_HEADER_LEN];
    let header = RecordHeader {
        crc: le_u32(&h[0..4]),
        kind: h[8],
        body_len: le_u32(&h[4..8]),
        flags: h[9],
        sequence: le_u64(&h[16..24]),
        prev: le_u64(&h[24..32]),
        durable_before: le_u32(&h[10..14]),
    };
    let reserved_zero = h[14..16] == [0, 0];
    let invalid = match header.kind {
        KIND_EVENT => event_header_fault(&header, reserved_zero),
        KIND_CLOSE_MARK if !reserved_zero => Some("reserved header bytes are not zero"),
        KIND_CLOSE_MARK => close_mark_fault(&header),
        _ => Some("unknown record kind"),
    };
    match invalid {
        Some(why) => Err(RecordParseError::Invalid(why)),
        None => Ok(header),
    }
}

/// What is wrong with the fields of an event record's header, if anything.
fn event_header_fault(header: &RecordHeader, reserved_zero: bool) -> Option<&'static str> {
    if header.flags & !FLAG_BATCH_CONTINUES != 0 {
        Some("unknown record flag bits")
    } else if !reserved_zero {
        Some("reserved header bytes are not zero")
    } else if header.body_len > MAX_BODY_LEN {
        Some("record length is over the format maximum")
    } else if header.sequence == 0 {
        Some("sequence number 0")
    } else if (header.sequence == 1) != (header.prev == 0) {
        Some("previous-record position does not fit the sequence number")
    } else {
        None
    }
}

/// What is wrong with the fields of a close mark's header, if anything: it
/// has no body, no flags, no session fields, and claims at least the
/// segment header durable.
fn close_mark_fault(header: &RecordHeader) -> Option<&'static str> {
    let bare = header.body_len == 0 && header.flags == 0;
    if !bare || header.sequence != 0 || header.prev != 0 {
        Some("close mark with event fields set")
    } else if (header.durable_before as usize) < RECORD_HEADER_LEN {
        Some("close mark without a durable claim")
    } else {
        None
    }
}

/// Why [`parse_header`] refused a header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordParseError {
    /// Fewer than [`RECORD_HEADER_LEN`] bytes.
    Incomplete,
    /// A field is out of range.
    Invalid(&'static str),
}

/// A CRC32 hasher in its initial state, made once: `crc32fast::hash` builds
/// a new one per call, which checks the CPU's features each time (a sixth
/// of the checksum of a 256-byte record); a clone does not.
static NEW_CRC: LazyLock<crc32fast::Hasher> = LazyLock::new(crc32fast::Hasher::new);

/// The checksum a record with these bytes must carry: CRC32 of everything
/// after the CRC field (`record[4..]`, header and body).
pub fn record_checksum(record: &[u8]) -> u32 {
    let mut crc = NEW_CRC.clone();
    crc.update(&record[4..]);
    crc.finalize()
}

/// Parses the record at the start of `bytes`, verifying its checksum.
pub fn parse_record(bytes: &[u8]) -> RecordParse<'_> {
    let header = match parse_header(bytes) {
        Ok(h) => h,
        Err(RecordParseError::Incomplete) => return RecordParse::Incomplete,
        Err(RecordParseError::Invalid(why)) => return RecordParse::Invalid(why),
    };
    let len = header.record_len();
    if bytes.len() < len {
        return RecordParse::Incomplete;
    }
    if record_checksum(&bytes[..len]) != header.crc {
        return RecordParse::Invalid("checksum mismatch");
    }
    RecordParse::Complete(Record {
        header,
        body: &bytes[RECORD_HEADER_LEN..len],
    })
}

/// Appends one record (header, then `body`) to `out`, claiming nothing
/// durable (`durable_before` 0, as in every record before format version 3).
///
/// `body.len()` must not exceed [`MAX_BODY_LEN`] (the stores validate event
/// sizes far below it first).
pub fn encode_record_into(out: &mut Vec<u8>, body: &[u8], flags: u8, sequence: u64, prev: u64) {
    encode_record_claiming(out, body, flags, (sequence, prev), 0);
}

/// [`encode_record_into`] with a `durable_before` claim (see
/// [`RecordHeader::durable_before`]; only for segments of format version 3).
pub fn encode_record_claiming(
    out: &mut Vec<u8>,
    body: &[u8],
    flags: u8,
    (sequence, prev): (u64, u64),
    durable_before: u32,
) {
    let start = out.len();
    let body_len = u32::try_from(body.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&body_len.to_le_bytes());
    out.extend_from_slice(&[KIND_EVENT, flags]);
    out.extend_from_slice(&durable_before.to_le_bytes());
    out.extend_from_slice(&[0, 0]);
    out.extend_from_slice(&sequence.to_le_bytes());
    out.extend_from_slice(&prev.to_le_bytes());
    out.extend_from_slice(body);
    seal_record(&mut out[start..]);
}

/// Appends a close mark to `out` (format v4): a bodiless record of kind
/// [`KIND_CLOSE_MARK`] claiming `durable_before`, which must be its own offset
/// in its segment, written only once every byte before it is durable.
pub fn encode_close_mark(out: &mut Vec<u8>, durable_before: u32) {
    let start = out.len();
    out.extend_from_slice(&[0; 8]);
    out.extend_from_slice(&[KIND_CLOSE_MARK, 0]);
    out.extend_from_slice(&durable_before.to_le_bytes());
    out.extend_from_slice(&[0; 18]);
    seal_record(&mut out[start..]);
}

/// Whether `record`, the bytes at `offset` of a segment, starts with a close
/// mark claiming its own offset: the mark a writer's clean close leaves.
pub fn is_close_mark_at(record: &[u8], offset: u64) -> bool {
    matches!(parse_record(record),
        RecordParse::Complete(r) if r.header.is_close_mark()
            && u64::from(r.header.durable_before) == offset)
}

/// The offset of the close mark that ends `segment` (a segment file's
/// bytes), if the file ends in one: its writer closed the log cleanly and
/// wrote nothing since (format §5). Tools report it; tests cut it off to
/// make a cleanly closed log look like one a crash left.
pub fn trailing_close_mark(segment: &[u8]) -> Option<usize> {
    let at = segment.len().checked_sub(RECORD_HEADER_LEN)?;
    is_close_mark_at(&segment[at..], at as u64).then_some(at)
}

/// Recomputes and stores the checksum of a complete record in place.
pub fn seal_record(record: &mut [u8]) {
    let crc = record_checksum(record);
    record[0..4].copy_from_slice(&crc.to_le_bytes());
}

/// Sets or clears the "batch continues" flag of an encoded record and reseals it.
pub fn set_batch_continues(record: &mut [u8], continues: bool) {
    if continues {
        record[9] |= FLAG_BATCH_CONTINUES;
    } else {
        record[9] &= !FLAG_BATCH_CONTINUES;
    }
    seal_record(record);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<u8> {
        let mut out = Vec::new();
        encode_record_into(
            &mut out,
            b"hello body",
            FLAG_BATCH_CONTINUES,
            7,
            pack_position(1, 32),
        );
        out
    }

    #[test]
    fn record_round_trips() {
        let bytes = sample();
        let RecordParse::Complete(r) = parse_record(&bytes) else {
            panic!("not complete")
        };
        assert_eq!(r.body, b"hello body");
        assert_eq!(r.header.sequence, 7);
        assert_eq!(r.header.prev, pack_position(1, 32));
        assert!(r.header.batch_continues());
        assert_eq!(r.header.record_len(), bytes.len());
    }

    #[test]
    fn every_truncation_is_incomplete_and_every_flip_is_caught() {
        let bytes = sample();
        for cut in 0..bytes.len() {
            assert!(
                matches!(parse_record(&bytes[..cut]), RecordParse::Incomplete),
                "cut {cut}"
            );
        }
        for i in 0..bytes.len() * 8 {
            let mut bad = bytes.clone();
            bad[i / 8] ^= 1 << (i % 8);
            assert!(
                !matches!(parse_record(&bad), RecordParse::Complete(_)),
                "flip {i}"
            );
        }
    }

    #[test]
    fn a_durable_claim_round_trips_and_the_last_reserved_bytes_stay_checked() {
        let mut bytes = Vec::new();
        encode_record_claiming(
            &mut bytes,
            b"body",
            0,
            (2, pack_position(1, 32)),
            0x0102_0304,
        );
        assert_eq!(&bytes[10..16], &[4, 3, 2, 1, 0, 0]);
        let RecordParse::Complete(r) = parse_record(&bytes) else {
            panic!("not complete")
        };
        assert_eq!(r.header.durable_before, 0x0102_0304);
        assert_eq!(parse_header(&sample()).unwrap().durable_before, 0);
        bytes[14] = 1;
        seal_record(&mut bytes);
        assert!(matches!(parse_record(&bytes), RecordParse::Invalid(_)));
    }

    #[test]
    fn a_close_mark_round_trips_and_must_be_bare() {
        let mut mark = Vec::new();
        encode_close_mark(&mut mark, 4096);
        assert_eq!(mark.len(), RECORD_HEADER_LEN);
        assert!(is_close_mark_at(&mark, 4096));
        assert!(!is_close_mark_at(&mark, 4064), "claims its own offset");
        let RecordParse::Complete(r) = parse_record(&mark) else {
            panic!("not complete")
        };
        assert!(r.header.is_close_mark() && r.body.is_empty());
        // Any event field set (body length, flags, sequence, previous
        // record), or a claim below 32, makes it invalid; resealed, so only
        // the field is wrong.
        for (field, value) in [(4..5, 1), (9..10, 1), (16..17, 1), (24..25, 1), (10..14, 0)] {
            let mut bad = mark.clone();
            bad[field.clone()].fill(value);
            seal_record(&mut bad);
            let parsed = parse_record(&bad);
            assert!(matches!(parsed, RecordParse::Invalid(_)), "{field:?}");
        }
        let mut segment = vec![0u8; 4096];
        segment.extend_from_slice(&mark);
        assert_eq!(trailing_close_mark(&segment), Some(4096));
        assert_eq!(trailing_close_mark(&segment[..4100]), None);
        assert!(!is_close_mark_at(&sample(), 32), "an event is no mark");
    }

    #[test]
    fn flag_change_reseals() {
        let mut bytes = sample();
        set_batch_continues(&mut bytes, false);
        let RecordParse::Complete(r) = parse_record(&bytes) else {
            panic!("not complete")
        };
        assert!(!r.header.batch_continues());
    }

    #[test]
    fn positions_pack_in_order() {
        assert!(pack_position(1, 4000) < pack_position(2, 32));
        assert_eq!(position_segment(pack_position(9, 77)), 9);
        assert_eq!(position_offset(pack_position(9, 77)), 77);
    }
}
