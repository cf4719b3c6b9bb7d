//! The read path: a session's events by sequence range, reading only the
//! records it returns (plus at most a sparse interval's worth of headers).
//!
//! A query walks the session's chain of previous-record links backwards from
//! a sparse-index anchor at or above the start of the range, one interval at
//! a time, then decodes that interval's records forward. Where the intervals
//! can be read in place (sealed segments, and the active segment's settled
//! bytes), a query walks up to [`LANES`] intervals
//! at once, a hop of each in turn, so that the cache misses of their chains
//! overlap instead of following one another (on a big log each record of a
//! page is a miss of its own); with field filters it walks whole intervals
//! so, round after round, until the page is full. Records of other
//! sessions are never touched. Every returned record has passed its checksum
//! and is checked to be the session's record with the expected sequence.
//!
//! The active segment is read in place too, through a map of its settled
//! bytes (those written for good; see `mmap::ActiveMap`). Where it has no
//! map (mapping failed, or a record lies past the map), a record there costs
//! a `pread`; then, when a session's records lie close together, a query
//! reads the span of an interval with one `pread` into a [`Window`] and
//! serves the walk's records from it; a record the window cannot serve is
//! read on its own.

use std::sync::Arc;

use super::core::{Core, Role};
use super::segment::{RecordBytes, SegmentFile};
use super::spare_buffer::SpareBuffer;
use super::sparse_index::SPARSE_INTERVAL;
use crate::error::{Error, Result};
use crate::event::Event;
use crate::format::event_codec::{self, BodyKeys};
use crate::format::record::{
    RECORD_HEADER_LEN, RecordHeader, RecordParse, parse_header, parse_record, position_offset,
    position_segment,
};
use crate::format::segment::segment_file_name;
use crate::query::EventQuery;
use crate::time;

/// A snapshot of where a session stands for readers.
#[derive(Clone, Copy)]
struct SessionView {
    number: u32,
    visible: u64,
    visible_last: u64,
}

/// What a page's chain walks reuse from interval to interval: the read
/// window and the records found.
struct ChainWalk {
    window: Window,
    found: Found,
}

/// Whether `query` has no field filters: then every record in range is
/// returned, and a page needs exactly as many records as it returns.
fn is_unfiltered(query: &EventQuery) -> bool {
    query.event_type.is_none() && query.run_id.is_none() && query.since.is_none()
}

impl Core {
    /// Answers `query` for `session_id` now; also returns the session's
    /// latest visible sequence (for the long-poll loop).
    pub fn query_now(&self, session_id: &str, query: &EventQuery) -> Result<(Vec<Event>, u64)> {
        let Some(view) = self.view(session_id) else {
            return Ok((Vec::new(), 0));
        };
        let Some((first, last)) = query.sequence_range() else {
            return Ok((Vec::new(), view.visible));
        };
        let last = last.min(view.visible);
        let max = query.max_results();
        // Without field filters every record in range is returned, so the
        // page's size is known (capped: a huge range may still stop early).
        let in_range = (last + 1).saturating_sub(first);
        let mut out = Vec::with_capacity(
            usize::try_from(in_range)
                .unwrap_or(usize::MAX)
                .min(max)
                .min(1024),
        );
        let mut walk = ChainWalk {
            window: Window::over(self.spare_window.take()),
            found: Found::default(),
        };
        let mut lo = first;
        while lo <= last && out.len() < max {
            // Without filters a page needs exactly its records; with them,
            // how many is unknown: lanes over whole intervals (at most
            // `LANES` of them, each walked anyway) find matches until the page is full.
            let wanted = if is_unfiltered(query) {
                u64::try_from(max - out.len()).unwrap_or(u64::MAX)
            } else {
                u64::MAX
            };
            let lanes = self.lanes(view, (lo, last), wanted);
            lo = if lanes.is_empty() {
                self.read_chain(
                    session_id,
                    view,
                    (lo, last),
                    query,
                    &mut walk,
                    (&mut out, max),
                )?
            } else {
                self.read_lanes(session_id, lanes, query, (&mut out, max))?
            };
        }
        self.spare_window.give_back(walk.window.buf);
        Ok((out, view.visible))
    }

    /// One interval the lanes cannot take (its anchor lies past the
    /// settled mark, in the pending log, or in an active segment without
    /// a map: see [`lanes`](Self::lanes)): walks the chain back from the
    /// anchor at or after `lo` and
    /// adds its matches in `lo..=last` to `out` (up to `max`); returns
    /// where the next interval starts.
    fn read_chain(
        &self,
        session_id: &str,
        view: SessionView,
        (lo, last): (u64, u64),
        query: &EventQuery,
        walk: &mut ChainWalk,
        (out, max): (&mut Vec<Event>, usize),
    ) -> Result<u64> {
        let (anchor, floor) = {
            let st = self.state.read();
            let sparse = &st.sessions.get(view.number).sparse;
            let anchor = sparse
                .anchor_at_or_after(lo, view.visible)
                .unwrap_or((view.visible, view.visible_last));
            (anchor, sparse.anchor_before(lo).unwrap_or((0, 0)))
        };
        let mut hi = anchor.0.min(last);
        if is_unfiltered(query) {
            // Records past the page's end would be read and checked for nothing.
            let wanted = u64::try_from(max - out.len()).unwrap_or(u64::MAX);
            hi = hi.min(lo.saturating_add(wanted - 1));
        }
        // Where the anchor's segment is read in place, a window would
        // only copy: decided here once, not again at every record.
        let in_place = self
            .segments
            .get(position_segment(anchor.1))
            .is_some_and(|seg| seg.reads_in_place());
        let ChainWalk { window, found } = walk;
        window.aim(anchor, lo, floor, in_place);
        self.walk_back(session_id, anchor, (lo, hi), window, found)?;
        for (seq, pos, held) in &found.records {
            let record = found.bytes(held);
            if let Some(event) = self.decode_if_match(session_id, (*seq, *pos), record, query)? {
                out.push(event);
                if out.len() == max {
                    break;
                }
            }
        }
        Ok(anchor.0 + 1)
    }

    /// Up to [`LANES`] consecutive intervals from `lo` (at most `wanted`
    /// records up to `last`) whose anchors can be read in place (in a
    /// sealed segment, or settled in the active one), so that every record
    /// of them can too (a chain only goes back, and the settled mark only
    /// grows); none when the first anchor is elsewhere (past the settled
    /// mark, the pending log, an active segment without a map).
    fn lanes(&self, view: SessionView, (mut lo, last): (u64, u64), mut wanted: u64) -> Vec<Lane> {
        let mut lanes = Vec::new();
        let st = self.state.read();
        let sparse = &st.sessions.get(view.number).sparse;
        while lanes.len() < LANES && lo <= last && wanted > 0 {
            let Some(anchor) = sparse.anchor_at_or_after(lo, view.visible) else {
                break;
            };
            let Some(segment) = self.segments.in_place_segment(anchor.1) else {
                break;
            };
            let hi = anchor.0.min(last).min(lo.saturating_add(wanted - 1));
            lanes.push(Lane {
                at: anchor,
                segment,
                range: (lo, hi),
                records: Vec::with_capacity((hi + 1 - lo) as usize),
            });
            wanted -= hi + 1 - lo;
            lo = anchor.0 + 1;
        }
        lanes
    }

    /// Walks `lanes` together, then decodes their records that match
    /// `query` into `out` in order, until it holds `max`; returns the
    /// first sequence after the last lane's interval.
    fn read_lanes(
        &self,
        session_id: &str,
        mut lanes: Vec<Lane>,
        query: &EventQuery,
        (out, max): (&mut Vec<Event>, usize),
    ) -> Result<u64> {
        self.walk_lanes(session_id, &mut lanes)?;
        let mut next = 0;
        for lane in lanes {
            for (seq, pos, record) in lane.records.iter().rev() {
                if out.len() == max {
                    return Ok(next);
                }
                if let Some(event) =
                    self.decode_if_match(session_id, (*seq, *pos), record, query)?
                {
                    out.push(event);
                }
            }
            next = lane.range.1 + 1;
        }
        Ok(next)
    }

    /// [`walk_back`](Self::walk_back) for several intervals at once, a hop of
    /// each in turn. One chain's hops depend on each other (each link is in
    /// the record before), so a walk of one chain waits for one cache miss
    /// after another; the chains of different intervals do not, so each
    /// round first touches every chain's next record and then reads them,
    /// with their misses under way together.
    fn walk_lanes(&self, session_id: &str, lanes: &mut [Lane]) -> Result<()> {
        let mut walking = true;
        while walking {
            walking = false;
            for lane in lanes.iter().filter(|l| !l.done()) {
                lane.segment.touch(lane.at.1);
            }
            for lane in lanes.iter_mut().filter(|l| !l.done()) {
                let (seq, pos) = lane.at;
                let header = if seq <= lane.range.1 {
                    let record = self.segments.read_record_in(&lane.segment, pos)?;
                    let header = self.header_of(&record, pos)?;
                    lane.records.push((seq, pos, record));
                    header
                } else {
                    self.segments.read_header_in(&lane.segment, pos)?
                };
                self.check_sequence(session_id, (seq, pos), &header)?;
                lane.at = (seq.wrapping_sub(1), header.prev);
                if !lane.done() {
                    self.segments.follow(&mut lane.segment, lane.at.1)?;
                    walking = true;
                }
            }
        }
        Ok(())
    }

    /// The session's latest visible sequence (0 for an unknown session).
    pub fn latest(&self, session_id: &str) -> u64 {
        self.view(session_id).map_or(0, |v| v.visible)
    }

    fn view(&self, session_id: &str) -> Option<SessionView> {
        let st = self.state.read();
        let number = st.sessions.find(session_id)?;
        let s = st.sessions.get(number);
        (s.visible > 0).then_some(SessionView {
            number,
            visible: s.visible,
            visible_last: s.visible_last,
        })
    }

    /// Follows previous-record links from `anchor` (sequence, position) down
    /// to sequence `lo`; leaves the records of `lo..=hi` in `found`, oldest first.
    fn walk_back(
        &self,
        session_id: &str,
        anchor: (u64, u64),
        (lo, hi): (u64, u64),
        window: &mut Window,
        found: &mut Found,
    ) -> Result<()> {
        let (mut seq, mut pos) = anchor;
        found.clear();
        loop {
            let header = if seq <= hi {
                let held = self.record_through(window, pos, &mut found.arena)?;
                let header = self.header_of(found.bytes(&held), pos)?;
                found.records.push((seq, pos, held));
                header
            } else {
                self.header_through(window, pos)?
            };
            self.check_sequence(session_id, (seq, pos), &header)?;
            if seq == lo {
                break;
            }
            seq -= 1;
            pos = header.prev;
        }
        found.records.reverse();
        Ok(())
    }

    /// Decodes the record of sequence `seq` if it passes the query's filters
    /// (checked on the keys first, so skipped records' JSON is never parsed).
    fn decode_if_match(
        &self,
        session_id: &str,
        (seq, pos): (u64, u64),
        record: &[u8],
        query: &EventQuery,
    ) -> Result<Option<Event>> {
        let body = &record[RECORD_HEADER_LEN..];
        let undecodable = |e: event_codec::DecodeError| {
            self.corrupt_at(pos, format!("event body is undecodable: {e}"))
        };
        let keyed = event_codec::decode_keyed(body).map_err(undecodable)?;
        let keys = &keyed.keys;
        if keys.session_id != session_id {
            let why = format!(
                "record of sequence {seq} belongs to session {:?}, not {session_id:?}",
                keys.session_id
            );
            return Err(self.corrupt_at(pos, why));
        }
        if !keys_match(query, keys) {
            return Ok(None);
        }
        keyed.into_event(seq).map(Some).map_err(undecodable)
    }

    /// The event stored at `pos`, with its sequence number.
    pub fn read_event(&self, pos: u64) -> Result<Event> {
        let record = self.record_at(pos)?;
        let header = self.header_of(&record, pos)?;
        event_codec::decode(&record[RECORD_HEADER_LEN..], header.sequence)
            .map_err(|e| self.corrupt_at(pos, format!("event body is undecodable: {e}")))
    }

    /// The whole record at `pos`, from the pending log or its segment file.
    fn record_at(&self, pos: u64) -> Result<RecordBytes> {
        if let Some(bytes) = self.pending_copy(pos) {
            return Ok(RecordBytes::Owned(bytes));
        }
        self.segments.read_record(pos)
    }

    /// [`record_at`](Self::record_at), copied into `arena` when `window`
    /// can serve it.
    fn record_through(&self, window: &mut Window, pos: u64, arena: &mut Vec<u8>) -> Result<Held> {
        if let Some(bytes) = self.pending_copy(pos) {
            return Ok(Held::Record(RecordBytes::Owned(bytes)));
        }
        match self.windowed_record(window, pos) {
            Some(bytes) => {
                let start = arena.len();
                arena.extend_from_slice(bytes);
                Ok(Held::InArena(start..arena.len()))
            }
            None => self.segments.read_record(pos).map(Held::Record),
        }
    }

    /// Just the header at `pos` (to follow its link), served from `window`
    /// when it can be.
    fn header_through(&self, window: &mut Window, pos: u64) -> Result<RecordHeader> {
        if let Some(bytes) = self.pending_copy(pos) {
            return self.header_of(&bytes, pos);
        }
        let (segment, off) = (position_segment(pos), position_offset(pos));
        let from_window = self.window_at(window, segment, off, RECORD_HEADER_LEN as u64);
        match from_window.map(parse_header) {
            Some(Ok(header)) => Ok(header),
            // Reading it again on its own reports any damage just as before.
            _ => self.segments.read_header(pos),
        }
    }

    /// The checksum-verified record at `pos`, from the window (refilled if
    /// need be); `None` when the window cannot serve it.
    fn windowed_record<'w>(&self, window: &'w mut Window, pos: u64) -> Option<&'w [u8]> {
        let (segment, off) = (position_segment(pos), position_offset(pos));
        // Its length when the window holds its header; else a guess that most records fit.
        let mut want = window
            .bytes_at(segment, off)
            .and_then(|b| parse_header(b).ok())
            .map_or(FIRST_GUESS, |h| h.record_len() as u64);
        loop {
            let bytes = self.window_at(window, segment, off, want)?;
            match parse_record(bytes) {
                RecordParse::Complete(r) => {
                    let len = r.header.record_len();
                    // Again, to hand out the window's bytes (`bytes` is
                    // only borrowed for this iteration of the loop).
                    return window.bytes_at(segment, off).map(|b| &b[..len]);
                }
                RecordParse::Incomplete => {
                    let len = parse_header(bytes).ok()?.record_len() as u64;
                    if len <= want {
                        return None;
                    }
                    want = len;
                }
                RecordParse::Invalid(_) => return None,
            }
        }
    }

    /// The window's bytes from `off` of `segment` on, once it holds the
    /// `want` bytes there (or those of them that are written); refills it
    /// with one `pread` ending there when it does not. `None` when the
    /// window is off for this interval, the segment is mapped (or gone), or
    /// the read fails: the caller then reads as before.
    fn window_at<'w>(
        &self,
        window: &'w mut Window,
        segment: u64,
        off: u64,
        want: u64,
    ) -> Option<&'w [u8]> {
        if !window.enabled {
            return None;
        }
        let end = off.saturating_add(want).min(self.settled_end(segment));
        if end <= off {
            return None;
        }
        if !window.holds(segment, off, end) {
            // Only an unmapped active segment has a file here: the window
            // is off wherever records are read in place (`Window::aim`).
            let seg = self.segments.get(segment)?;
            let file = seg.file()?;
            let start = end
                .saturating_sub(WINDOW_MAX)
                .max(window.floor_in(segment))
                .max(window.take_hint_in(segment))
                .min(off);
            let buf = window.prepare(segment, start, (end - start) as usize);
            let got = self.io.read_at(file, &seg.path, buf, start).ok()?;
            window.filled(got);
        }
        window.bytes_at(segment, off)
    }

    /// The file offset in `segment` below which its bytes are written for
    /// good: a window never holds bytes a write may still change, so a
    /// record that turns from pending to written during the query is never
    /// served from bytes read before it was written.
    fn settled_end(&self, segment: u64) -> u64 {
        match &self.role {
            Role::Writer { commit, .. } => {
                let written = commit.written();
                match position_segment(written).cmp(&segment) {
                    std::cmp::Ordering::Greater => u64::MAX,
                    std::cmp::Ordering::Equal => position_offset(written),
                    std::cmp::Ordering::Less => 0,
                }
            }
            // A follower's queries only reach records it indexed before the
            // query began, so complete in the file before any window is read.
            Role::ReadOnly { .. } => u64::MAX,
        }
    }

    /// A copy of the record at `pos` if it is not in its file yet.
    fn pending_copy(&self, pos: u64) -> Option<Vec<u8>> {
        match &self.role {
            Role::Writer { commit, .. } if pos >= commit.written() => {
                self.state.read().pending.copy_record(pos)
            }
            _ => None,
        }
    }

    /// A walk's check that the record at `pos` is the one of sequence `seq`
    /// its link promised: else the log is damaged there.
    fn check_sequence(
        &self,
        session_id: &str,
        (seq, pos): (u64, u64),
        header: &RecordHeader,
    ) -> Result<()> {
        if header.sequence == seq {
            return Ok(());
        }
        let why = format!(
            "expected sequence {seq} of session {session_id:?}, found {}",
            header.sequence
        );
        Err(self.corrupt_at(pos, why))
    }

    fn header_of(&self, record: &[u8], pos: u64) -> Result<RecordHeader> {
        parse_header(record).map_err(|_| self.corrupt_at(pos, "bad record header"))
    }

    fn corrupt_at(&self, pos: u64, why: impl Into<String>) -> Error {
        let file = self.dir.join(segment_file_name(position_segment(pos)));
        Error::corrupt(file, position_offset(pos), why)
    }
}

/// How many intervals (of [`SPARSE_INTERVAL`] records) a page walks at once:
/// enough for a page of 100 (7 intervals of 16).
const LANES: usize = 8;

/// One interval's walk among several: where it is, the sequences it
/// returns (`range`, inclusive), and the records found so far, newest first.
struct Lane {
    /// The next record to read: (sequence, position).
    at: (u64, u64),
    /// The segment `at` is in (kept from hop to hop: see `SegmentSet::follow`).
    segment: Arc<SegmentFile>,
    range: (u64, u64),
    records: Vec<(u64, u64, RecordBytes)>,
}

impl Lane {
    /// Whether the walk is past the interval's first record.
    fn done(&self) -> bool {
        self.at.0 < self.range.0
    }
}

/// The records one interval's walk found: `(sequence, position, bytes)`,
/// oldest first. Records read through the window are copied into one
/// arena rather than a buffer each (a page of 100 made 100 allocations).
#[derive(Default)]
struct Found {
    records: Vec<(u64, u64, Held)>,
    arena: Vec<u8>,
}

/// Where a found record's bytes are.
enum Held {
    /// `Found::arena[range]`.
    InArena(std::ops::Range<usize>),
    /// Its own bytes (pending, mapped, or read alone).
    Record(RecordBytes),
}

impl Found {
    fn clear(&mut self) {
        self.records.clear();
        self.arena.clear();
    }

    fn bytes<'a>(&'a self, held: &'a Held) -> &'a [u8] {
        match held {
            Held::InArena(range) => &self.arena[range.clone()],
            Held::Record(record) => record,
        }
    }
}

/// The most one window read brings: the span of a sparse interval of a
/// session whose records are at most `WINDOW_DENSITY` apart on average.
const WINDOW_MAX: u64 = SPARSE_INTERVAL * WINDOW_DENSITY;
/// How far apart (on average) the records an interval's walk reads may be
/// for the walk to use a window: a `pread` costs about as much as copying a
/// few KiB, so for sparser sessions reading each record alone is cheaper.
const WINDOW_DENSITY: u64 = 8 * 1024;

/// The buffer kept for the next query's window: one of the usual size
/// (a large record's window is dropped after its query).
pub(super) fn spare_window() -> SpareBuffer {
    SpareBuffer::keeping_up_to(WINDOW_MAX as usize + FIRST_GUESS as usize)
}

/// What a window asks for past a record's start before its length is known:
/// most records fit, so the read usually brings the whole record.
const FIRST_GUESS: u64 = 1024;

/// Bytes of one segment file read for one query: `bytes[i]` is at file
/// offset `start + i`. The walk goes backwards, so each read ends at the
/// record asked for and reaches back over the rest of the interval.
struct Window {
    segment: u64,
    start: u64,
    /// Grown, never shrunk, and kept between queries (see [`SpareBuffer`]),
    /// so a read does not zero it again: its bytes past `len` are stale.
    buf: Vec<u8>,
    /// How many bytes of `buf` the last read brought.
    len: usize,
    /// No record of the current interval lies before this position: a read
    /// never reaches back past it.
    floor: u64,
    /// Whether the current interval's records are close enough together.
    enabled: bool,
    /// Where the interval's first read may start instead of at `floor`
    /// (0: at `floor`); see [`likely_start`].
    hint: u64,
}

impl Window {
    /// An empty window reading into `buf` (whatever it holds).
    fn over(buf: Vec<u8>) -> Window {
        Window {
            segment: 0,
            start: 0,
            buf,
            len: 0,
            floor: 0,
            enabled: false,
            hint: 0,
        }
    }

    /// Sets the window up for the walk from `anchor` (sequence, position)
    /// down to sequence `lo`, none of whose records is before the anchor
    /// `floor` (sequence, position; (0, 0) when there is none). No window
    /// when the anchor's segment is read `in_place`.
    fn aim(&mut self, anchor: (u64, u64), lo: u64, floor: (u64, u64), in_place: bool) {
        self.floor = floor.1;
        self.hint = likely_start(anchor, lo, floor);
        let records = (anchor.0 + 1).saturating_sub(lo).max(1);
        // The span the first read brings: from the hint when there is one
        // (from the floor, a walk over the few records just below an anchor
        // looked too sparse for a window and read each record alone).
        let segment = position_segment(anchor.1);
        let from = self.floor_in(segment).max(self.hint_in(segment));
        let span = position_offset(anchor.1).saturating_sub(from);
        self.enabled = !in_place && span / records <= WINDOW_DENSITY;
    }

    /// The floor as an offset in `segment` (0 when it is in an earlier one).
    fn floor_in(&self, segment: u64) -> u64 {
        if position_segment(self.floor) == segment {
            position_offset(self.floor)
        } else {
            0
        }
    }

    /// The hint as an offset in `segment` (0 when there is none or it is in
    /// another segment); used up by the interval's first read, so a refill
    /// reaches down to the floor.
    fn take_hint_in(&mut self, segment: u64) -> u64 {
        let offset = self.hint_in(segment);
        self.hint = 0;
        offset
    }

    fn hint_in(&self, segment: u64) -> u64 {
        if self.hint != 0 && position_segment(self.hint) == segment {
            position_offset(self.hint)
        } else {
            0
        }
    }

    /// Whether the window holds file offsets `off..end` of `segment`.
    fn holds(&self, segment: u64, off: u64, end: u64) -> bool {
        self.segment == segment && off >= self.start && end - self.start <= self.len as u64
    }

    /// The window's bytes from `off` of `segment` to its end, if it holds `off`.
    fn bytes_at(&self, segment: u64, off: u64) -> Option<&[u8]> {
        if self.segment != segment || off < self.start {
            return None;
        }
        let at = usize::try_from(off - self.start).ok()?;
        self.buf[..self.len].get(at..)
    }

    /// The buffer for a read of `len` bytes at `start` of `segment`.
    fn prepare(&mut self, segment: u64, start: u64, len: usize) -> &mut [u8] {
        if self.buf.len() < len {
            self.buf.resize(len, 0);
        }
        (self.segment, self.start, self.len) = (segment, start, 0);
        &mut self.buf[..len]
    }

    /// Records that the read brought `got` bytes.
    fn filled(&mut self, got: usize) {
        self.len = got;
    }
}

/// Where the record of sequence `lo` likely starts, less a little slack:
/// the walk's first read can start there rather than at the floor anchor,
/// which is on average half an interval of (mostly other sessions') bytes
/// further back. Estimated from the average spacing of the session's
/// records between the two anchors; when the estimate is too high the walk
/// finds its record outside the window and the window is refilled down to
/// the floor. 0 (no hint) without a floor anchor in the anchor's segment.
fn likely_start((a, a_pos): (u64, u64), lo: u64, (f, f_pos): (u64, u64)) -> u64 {
    /// Records of slack below the estimate (spacing varies a little).
    const SLACK: u64 = 2;
    if f == 0 || lo <= f || a <= f || position_segment(f_pos) != position_segment(a_pos) {
        return 0;
    }
    let spacing = a_pos.saturating_sub(f_pos) / (a - f);
    let behind = (a - lo + SLACK).saturating_mul(spacing);
    a_pos.saturating_sub(behind).max(f_pos)
}

/// `EventQuery::matches_fields` on the keys alone, before any JSON is parsed.
fn keys_match(q: &EventQuery, keys: &BodyKeys<'_>) -> bool {
    q.event_type.is_none_or(|t| keys.event_type == t)
        && q.run_id.as_deref().is_none_or(|r| keys.run_id == Some(r))
        && q.since.is_none_or(|since| {
            // `since` out of the storable range compares on the right side of every event.
            match time::to_unix_nanos(since) {
                Some(s) => keys.timestamp_nanos > s,
                None => since < std::time::UNIX_EPOCH,
            }
        })
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::FileExt;

    use crate::format::segment::segment_file_name;
    use crate::{
        Error, Event, EventQuery, EventType, LogOptions, LogStore, SessionStore, SyncPolicy,
    };

    /// Two sessions interleaved, `n` events each, written to the active segment.
    fn two_sessions(dir: &std::path::Path, n: usize) -> (LogStore, Vec<Vec<Event>>) {
        two_sessions_in(dir, n, LogOptions::default().segment_size)
    }

    /// [`two_sessions`] in segments of `segment_size` bytes.
    pub(super) fn two_sessions_in(
        dir: &std::path::Path,
        n: usize,
        segment_size: u64,
    ) -> (LogStore, Vec<Vec<Event>>) {
        let opts = LogOptions {
            sync: SyncPolicy::Never,
            segment_size,
            ..LogOptions::default()
        };
        let store = LogStore::open_with(dir, opts).unwrap();
        let mut all = vec![Vec::new(), Vec::new()];
        for i in 0..2 * n {
            let e = Event::new(format!("s{}", i % 2), EventType::MessageSent);
            all[i % 2].push(store.append_event_with_sequence(e).unwrap());
        }
        store.sync().unwrap();
        (store, all)
    }

    use crate::engine::segment::tests::without_active_map;

    // Each test runs twice: with the active segment read in place, and
    // without its map, through `pread` windows (the fallback).

    #[test]
    fn pages_return_exactly_the_range() {
        interleaved_pages();
        without_active_map(interleaved_pages);
    }

    fn interleaved_pages() {
        let dir = tempfile::tempdir().unwrap();
        let (store, all) = two_sessions(dir.path(), 200);
        let afters = [0, 1, 5, 31, 32, 33, 63, 64, 100, 150, 199, 200];
        check_pages(&store, "s1", &all[1], afters);
    }

    /// Each `after: k, limit: 100` page of `session` is exactly `all[k..k+100]`.
    fn check_pages(
        store: &LogStore,
        session: &str,
        all: &[Event],
        afters: impl IntoIterator<Item = u64>,
    ) {
        for after in afters {
            let page = store
                .get_events(session, &EventQuery::new().after(after).limit(100))
                .unwrap();
            let want: Vec<Event> = all.iter().skip(after as usize).take(100).cloned().collect();
            assert_eq!(page, want, "after {after}");
        }
    }

    #[test]
    fn unevenly_spaced_pages_return_exactly_the_range() {
        unevenly_spaced_pages();
        without_active_map(unevenly_spaced_pages);
    }

    fn unevenly_spaced_pages() {
        // Between two records of s1 lie 0 to 12 records of s0, so a first
        // read started at the estimated position of a page's first record
        // sometimes misses it and the window is refilled.
        let dir = tempfile::tempdir().unwrap();
        let opts = LogOptions {
            sync: SyncPolicy::Never,
            ..LogOptions::default()
        };
        let store = LogStore::open_with(dir.path(), opts).unwrap();
        let mut mine = Vec::new();
        for i in 0..300usize {
            let e = Event::new("s1", EventType::MessageSent);
            mine.push(store.append_event_with_sequence(e).unwrap());
            for _ in 0..(i * 7 + i / 13) % 13 {
                let e = Event::new("s0", EventType::MessageSent);
                store.append_event_with_sequence(e).unwrap();
            }
        }
        store.sync().unwrap();
        let afters = (0..300)
            .step_by(7)
            .chain([31, 32, 33, 63, 64, 65, 299, 300]);
        check_pages(&store, "s1", &mine, afters);
    }

    #[test]
    fn damage_in_the_active_segment_names_its_record() {
        damage_names_its_record();
        without_active_map(damage_names_its_record);
    }

    fn damage_names_its_record() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = two_sessions(dir.path(), 200);
        let path = dir.path().join(segment_file_name(1));
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .unwrap();
        // Every record has the same length: ids and session names do. (The
        // file's length says nothing: the writer preallocates zeros.)
        let mut header = [0u8; crate::format::record::RECORD_HEADER_LEN];
        file.read_at(&mut header, 32).unwrap();
        let record_len = crate::format::record::parse_header(&header)
            .unwrap()
            .record_len() as u64;
        // Sequence 40 of s0 is the 79th record of the log.
        let victim = 32 + 78 * record_len;
        damage_is_named(&store, (&file, &path), victim, (39, [0, 20, 39]));
    }

    /// Flips a bit inside the body of the record of s0's sequence `seq + 1`
    /// at `victim` of `file` (at `path`): every page from `afters` (which
    /// reach it) reports it by file and offset, and the page after it is
    /// still served.
    pub(super) fn damage_is_named(
        store: &LogStore,
        (file, path): (&std::fs::File, &std::path::Path),
        victim: u64,
        (seq, afters): (u64, [u64; 3]),
    ) {
        let mut byte = [0u8];
        file.read_at(&mut byte, victim + 40).unwrap();
        file.write_at(&[byte[0] ^ 0x20], victim + 40).unwrap();
        for after in afters {
            match store.get_events("s0", &EventQuery::new().after(after).limit(100)) {
                Err(Error::Corrupt { file, offset, .. }) => {
                    assert_eq!((file.as_path(), offset), (path, victim), "after {after}");
                }
                other => panic!("after {after}: {other:?}"),
            }
        }
        let past = store.get_events("s0", &EventQuery::new().after(seq + 1).limit(100));
        assert_eq!(past.unwrap().len(), 100);
    }
}

#[cfg(test)]
mod sealed_tests {
    use std::os::unix::fs::FileExt;

    use crate::format::event_codec::decode_keys;
    use crate::format::record::{RECORD_HEADER_LEN, parse_header};
    use crate::format::segment::{SEGMENT_HEADER_LEN, segment_file_name};
    use crate::{Event, EventQuery, LogStore, SessionStore};

    /// Two sessions' events in turn over many small segments, all sealed
    /// (mapped) but the last: pages there are read by the walk of lanes.
    fn two_sessions_sealed(dir: &std::path::Path, n: usize) -> (LogStore, Vec<Vec<Event>>) {
        super::tests::two_sessions_in(dir, n, 16 << 10)
    }

    #[test]
    fn pages_over_sealed_segments_return_exactly_the_range() {
        let dir = tempfile::tempdir().unwrap();
        let (store, all) = two_sessions_sealed(dir.path(), 600);
        assert!(
            dir.path().join(segment_file_name(8)).exists(),
            "too few segments"
        );
        let afters = (0..=600u64)
            .step_by(11)
            .chain([31, 32, 33, 95, 96, 97, 128, 599, 600]);
        for after in afters {
            for limit in [1usize, 7, 33, 100, 129, 1000] {
                let page = store
                    .get_events("s0", &EventQuery::new().after(after).limit(limit))
                    .unwrap();
                let want: Vec<Event> = all[0]
                    .iter()
                    .skip(after as usize)
                    .take(limit)
                    .cloned()
                    .collect();
                assert_eq!(page, want, "after {after} limit {limit}");
            }
        }
        let everything = store.get_events("s1", &EventQuery::new()).unwrap();
        assert_eq!(everything, all[1]);
    }

    #[test]
    fn filtered_pages_over_sealed_segments_return_exactly_the_matches() {
        use crate::{EventType, LogOptions, SyncPolicy};
        let dir = tempfile::tempdir().unwrap();
        let opts = LogOptions {
            sync: SyncPolicy::Never,
            segment_size: 16 << 10,
            ..LogOptions::default()
        };
        let store = LogStore::open_with(dir.path(), opts).unwrap();
        let kinds = [EventType::MessageSent, EventType::ToolCallStarted];
        let mut all = Vec::new();
        // One session's types in an uneven pattern (runs of matches and of
        // misses, longer than an interval), between another session's events.
        for i in 0..900usize {
            let kind = kinds[usize::from(i % 50 < 7 || (i / 100) % 3 == 1)];
            let e = Event::new("s0", kind).with_run(format!("r{}", i % 3));
            all.push(store.append_event_with_sequence(e).unwrap());
            let other = Event::new("s1", EventType::MessageSent);
            store.append_event_with_sequence(other).unwrap();
        }
        store.sync().unwrap();
        assert!(dir.path().join(segment_file_name(8)).exists());
        for after in (0..=900u64).step_by(37).chain([899, 900]) {
            for limit in [1usize, 5, 100, 1000] {
                for by_run in [false, true] {
                    let mut q = EventQuery::new().after(after).limit(limit);
                    q = q.event_type(EventType::ToolCallStarted);
                    if by_run {
                        q = q.run_id("r1");
                    }
                    let page = store.get_events("s0", &q).unwrap();
                    let want: Vec<Event> = all
                        .iter()
                        .skip(after as usize)
                        .filter(|e| e.event_type == EventType::ToolCallStarted)
                        .filter(|e| !by_run || e.run_id.as_deref() == Some("r1"))
                        .take(limit)
                        .cloned()
                        .collect();
                    assert_eq!(page, want, "after {after} limit {limit} run {by_run}");
                }
            }
        }
    }

    /// The offset and sequence of the first record of `session` in `file`.
    fn first_record_of(file: &std::fs::File, session: &str) -> (u64, u64) {
        let mut off = SEGMENT_HEADER_LEN as u64;
        loop {
            let mut head = [0u8; RECORD_HEADER_LEN];
            file.read_at(&mut head, off).unwrap();
            let header = parse_header(&head).unwrap();
            let mut record = vec![0u8; header.record_len()];
            file.read_at(&mut record, off).unwrap();
            if decode_keys(&record[RECORD_HEADER_LEN..])
                .unwrap()
                .session_id
                == session
            {
                return (off, header.sequence);
            }
            off += header.record_len() as u64;
        }
    }

    #[test]
    fn damage_in_a_sealed_segment_names_its_record() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = two_sessions_sealed(dir.path(), 600);
        let path = dir.path().join(segment_file_name(3));
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .unwrap();
        let (victim, seq) = first_record_of(&file, "s0");
        let afters = [seq - 1, seq.saturating_sub(30), seq.saturating_sub(99)];
        super::tests::damage_is_named(&store, (&file, &path), victim, (seq - 1, afters));
    }
}
