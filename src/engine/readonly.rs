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
use super::scan::{Indexer, scan_batches};
use super::segment::SegmentFile;
use crate::error::{Error, Result};
use crate::format::segment::{SEGMENT_HEADER_LEN, decode_segment_header, segment_file_name};

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
        let bytes = self.io.read_from(file, &seg.path, cursor.offset)?;
        let mut start = 0usize;
        if cursor.offset == 0 {
            match decode_segment_header(&bytes) {
                Ok(n) if n == seg.number => start = SEGMENT_HEADER_LEN,
                Ok(_) | Err(_) if sealed => {
                    return Err(Error::corrupt(&seg.path, 0, "bad segment header"));
                }
                _ => return Ok(false),
            }
        }
        let base = cursor.offset + start as u64;
        let rest = &bytes[start..];
        let mut st = self.state.write();
        let mut indexer = Indexer::new(&mut st, &self.hasher, &self.segments);
        let end = scan_batches(rest, base, |batch| {
            touched.extend(batch.iter().map(|f| f.keys.session_id.to_string()));
            indexer.apply(&seg.path, seg.number, batch)
        })?;
        indexer.finish(seg.number, (base, rest))?;
        cursor.offset = end.valid_end;
        let complete = end.valid_end == base + rest.len() as u64;
        if sealed && !complete {
            let why = end.damage.map_or(
                "a batch is not finished at the end of a sealed segment".into(),
                |d| d.reason,
            );
            return Err(Error::corrupt(&seg.path, end.valid_end, why));
        }
        Ok(complete)
    }
}
