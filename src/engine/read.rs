//! The read path: a session's events by sequence range, reading only the
//! records it returns (plus at most a sparse interval's worth of headers).
//!
//! A query walks the session's chain of previous-record links backwards from
//! a sparse-index anchor at or above the start of the range, one interval at
//! a time, then decodes that interval's records forward. Records of other
//! sessions are never touched. Every returned record has passed its checksum
//! and is checked to be the session's record with the expected sequence.

use super::core::{Core, Role};
use super::segment::RecordBytes;
use crate::error::{Error, Result};
use crate::event::Event;
use crate::format::event_codec::{self, BodyKeys};
use crate::format::record::{
    RECORD_HEADER_LEN, RecordHeader, parse_header, position_offset, position_segment,
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

impl Core {
    /// Answers `query` for `session_id` now; also returns the session's
    /// latest visible sequence (for the long-poll loop).
    pub fn query_now(&self, session_id: &str, query: &EventQuery) -> Result<(Vec<Event>, u64)> {
        let Some(view) = self.view(session_id) else {
            return Ok((Vec::new(), 0));
        };
        let mut out = Vec::new();
        let Some((first, last)) = query.sequence_range() else {
            return Ok((out, view.visible));
        };
        let last = last.min(view.visible);
        let max = query.max_results();
        let mut lo = first;
        while lo <= last && out.len() < max {
            let anchor = self
                .state
                .read()
                .sessions
                .get(view.number)
                .sparse
                .anchor_at_or_after(lo, view.visible)
                .unwrap_or((view.visible, view.visible_last));
            let hi = anchor.0.min(last);
            for (seq, pos, record) in self.walk_back(session_id, anchor, lo, hi)? {
                if let Some(event) = self.decode_if_match(session_id, (seq, pos), &record, query)? {
                    out.push(event);
                    if out.len() == max {
                        break;
                    }
                }
            }
            lo = anchor.0 + 1;
        }
        Ok((out, view.visible))
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
    /// to sequence `lo`; returns the records of `lo..=hi`, oldest first.
    fn walk_back(
        &self,
        session_id: &str,
        anchor: (u64, u64),
        lo: u64,
        hi: u64,
    ) -> Result<Vec<(u64, u64, RecordBytes)>> {
        let (mut seq, mut pos) = anchor;
        let mut found = Vec::with_capacity((hi + 1).saturating_sub(lo) as usize);
        loop {
            let header = if seq <= hi {
                let record = self.record_at(pos)?;
                let header = self.header_of(&record, pos)?;
                found.push((seq, pos, record));
                header
            } else {
                self.header_at(pos)?
            };
            if header.sequence != seq {
                let why = format!(
                    "expected sequence {seq} of session {session_id:?}, found {}",
                    header.sequence
                );
                return Err(self.corrupt_at(pos, why));
            }
            if seq == lo {
                break;
            }
            seq -= 1;
            pos = header.prev;
        }
        found.reverse();
        Ok(found)
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
        let keys = event_codec::decode_keys(body).map_err(undecodable)?;
        if keys.session_id != session_id {
            let why = format!(
                "record of sequence {seq} belongs to session {:?}, not {session_id:?}",
                keys.session_id
            );
            return Err(self.corrupt_at(pos, why));
        }
        if !keys_match(query, &keys) {
            return Ok(None);
        }
        event_codec::decode(body, seq)
            .map(Some)
            .map_err(undecodable)
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

    /// Just the header at `pos` (to follow its link).
    fn header_at(&self, pos: u64) -> Result<RecordHeader> {
        match self.pending_copy(pos) {
            Some(bytes) => self.header_of(&bytes, pos),
            None => self.segments.read_header(pos),
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

    fn header_of(&self, record: &[u8], pos: u64) -> Result<RecordHeader> {
        parse_header(record).map_err(|_| self.corrupt_at(pos, "bad record header"))
    }

    fn corrupt_at(&self, pos: u64, why: impl Into<String>) -> Error {
        let file = self.dir.join(segment_file_name(position_segment(pos)));
        Error::corrupt(file, position_offset(pos), why)
    }
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
