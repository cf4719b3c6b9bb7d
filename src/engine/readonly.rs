//! Following a log read-only: picking up the records a writer (in this or
//! another process) has added since the last look.
//!
//! A read-only store keeps a cursor: the segment and offset up to which it
//! has indexed complete batches. A refresh reads what lies beyond, indexes
//! every complete batch, and stops before an incomplete or bad record (the
//! writer may be in the middle of writing it, or a crash left it for the
//! writer's next open to cut): nothing is ever modified. A segment is left
//! for the next one only once that next one exists, since the writer fills a
//! segment completely before it starts the next.

use std::collections::HashSet;
use std::sync::Arc;

use super::core::{Core, Role};
use super::recovery::{Recovered, check_segment_size};
use super::scan::{Indexer, ScanEnd, scan_batches};
use super::segment::SegmentFile;
use crate::error::{Error, Result};
use crate::format::segment::{SEGMENT_HEADER_LEN, decode_segment_header, segment_file_name};

/// A refresh first reads this much of the followed segment past its cursor,
/// then windows twice as large while it keeps finding records (up to
/// [`MAX_REFRESH_WINDOW`], or past it when one batch is longer). A live
/// writer keeps up to 256 KiB of zeros ahead of its records: reading all of
/// them on every query, as refreshes did, cost a follower 62-154 µs with
/// nothing new to find.
const REFRESH_WINDOW: usize = 4 << 10;

/// The largest window a refresh grows to while records keep coming.
const MAX_REFRESH_WINDOW: usize = 1 << 20;

/// How far a read-only store has indexed the log.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ReadCursor {
    /// The segment being followed (0: none exists yet).
    segment: u64,
    /// Offset in it just past the last indexed batch (0: header not read yet).
    offset: u64,
}

impl ReadCursor {
    /// Where recovery left off.
    pub fn after_recovery(rec: &Recovered) -> ReadCursor {
        match &rec.active {
            Some(seg) => ReadCursor {
                segment: seg.number,
                offset: rec.active_end,
            },
            None => ReadCursor {
                segment: 0,
                offset: 0,
            },
        }
    }
}

impl Core {
    /// The read cursor: the segment followed and the offset just past its
    /// last indexed batch (0: its header not read yet; `(0, 0)`: no segment
    /// exists yet). `(0, 0)` for a writer, which has no cursor.
    pub fn read_cursor_position(&self) -> (u64, u64) {
        match &self.role {
            Role::ReadOnly { cursor } => {
                let c = cursor.lock();
                (c.segment, c.offset)
            }
            Role::Writer { .. } => (0, 0),
        }
    }

    /// Indexes what the writer added since the last refresh and wakes the
    /// sessions that grew. A no-op for a writer.
    pub fn refresh(&self) -> Result<()> {
        let Role::ReadOnly { cursor } = &self.role else {
            return Ok(());
        };
        let mut cursor = cursor.lock();
        let mut touched = HashSet::new();
        loop {
            if cursor.segment == 0 && !self.follow_segment(&mut cursor, 1)? {
                break;
            }
            let next = cursor.segment + 1;
            // Checked before reading: if the next segment exists now, this one is complete.
            let next_exists = self.dir.join(segment_file_name(next)).exists();
            let complete = self.refresh_segment(&mut cursor, next_exists, &mut touched)?;
            if !(next_exists && complete && self.follow_segment(&mut cursor, next)?) {
                break;
            }
        }
        drop(cursor);
        let wake: Vec<_> = {
            let st = self.state.read();
            touched
                .iter()
                .filter_map(|name: &String| st.sessions.find(name))
                .map(|n| st.sessions.get(n))
                .map(|s| (Arc::clone(&s.name), s.visible))
                .collect()
        };
        self.wake(&wake);
        Ok(())
    }

    /// Moves the cursor to segment `number` if its file exists; seals the one before.
    fn follow_segment(&self, cursor: &mut ReadCursor, number: u64) -> Result<bool> {
        let path = self.dir.join(segment_file_name(number));
        let file = match std::fs::File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(Error::io("open", &path, e)),
        };
        if let Some(prev) = self.segments.get(cursor.segment)
            && prev.file().is_some()
        {
            self.segments.insert_just_sealed(prev.to_sealed(&self.io)?);
        }
        self.segments
            .insert(Arc::new(SegmentFile::open(number, path, file)));
        *cursor = ReadCursor {
            segment: number,
            offset: 0,
        };
        Ok(true)
    }

    /// Indexes the complete batches past the cursor in its segment. Returns
    /// whether the segment was read to its very end. When `sealed` (a next
    /// segment exists), anything left over is damage.
    fn refresh_segment(
        &self,
        cursor: &mut ReadCursor,
        sealed: bool,
        touched: &mut HashSet<String>,
    ) -> Result<bool> {
        let seg = self.segments.get(cursor.segment).ok_or_else(|| {
            Error::corrupt(
                self.dir.join(segment_file_name(cursor.segment)),
                0,
                "segment vanished",
            )
        })?;
        let file = seg
            .file()
            .ok_or_else(|| Error::corrupt(&seg.path, 0, "followed segment is sealed"))?;
        check_segment_size(self.io.file_len(file, &seg.path)?, &seg.path)?;
        if cursor.offset == 0 {
            let head = self
                .io
                .read_window(file, &seg.path, 0, SEGMENT_HEADER_LEN)?;
            match decode_segment_header(&head) {
                Ok(n) if n == seg.number => cursor.offset = SEGMENT_HEADER_LEN as u64,
                Ok(_) | Err(_) if sealed => {
                    return Err(Error::corrupt(&seg.path, 0, "bad segment header"));
                }
                _ => return Ok(false),
            }
        }
        let mut window = REFRESH_WINDOW;
        loop {
            let from = cursor.offset;
            let bytes = self.io.read_window(file, &seg.path, from, window)?;
            let end = self.index_window(&seg, from, &bytes, touched)?;
            cursor.offset = end.valid_end;
            // Complete batches: the writer never writes or cuts them again.
            seg.settle(end.valid_end);
            let at_file_end = bytes.len() < window;
            let consumed = end.valid_end == from + bytes.len() as u64;
            if !at_file_end && (consumed || end.cut_short) {
                // More to read: in larger windows while records keep coming,
                // and past any size when one batch does not fit.
                if end.valid_end == from || window < MAX_REFRESH_WINDOW {
                    window = window.saturating_mul(2);
                }
                continue;
            }
            let complete = at_file_end && consumed;
            if sealed && !complete {
                let why = end.damage.map_or(
                    "a batch is not finished at the end of a sealed segment".into(),
                    |d| d.reason,
                );
                return Err(Error::corrupt(&seg.path, end.valid_end, why));
            }
            return Ok(complete);
        }
    }

    /// Indexes the complete batches in `bytes`, read from file offset `from`
    /// of `seg`; returns how the scan ended.
    fn index_window(
        &self,
        seg: &SegmentFile,
        from: u64,
        bytes: &[u8],
        touched: &mut HashSet<String>,
    ) -> Result<ScanEnd> {
        let mut st = self.state.write();
        let mut indexer = Indexer::new(&mut st, &self.hasher, &self.segments);
        let end = scan_batches(bytes, from, |batch| {
            touched.extend(batch.iter().map(|f| f.keys.session_id.to_string()));
            indexer.apply(&seg.path, seg.number, batch)
        })?;
        indexer.finish(seg.number, (from, bytes))?;
        Ok(end)
    }
}
