//! The append path: validate and encode (no lock), check duplicates and
//! assign sequences (state lock), then wait for the group commit.
//!
//! A batch is atomic twice over: in memory, all of its records are assigned
//! under one hold of the state lock after every check has passed (nothing
//! after the checks can fail); on disk, every record but the last carries the
//! "batch continues" flag, so recovery drops a batch a crash cut short.

use std::cell::Cell;
use std::collections::HashMap;

use super::core::Core;
use super::group_commit::{GroupCommit, Ticket, Wake};
use super::id_index::MAX_INDEXED_SEGMENT;
use super::options::SyncPolicy;
use super::state::State;
use crate::error::{Error, Result};
use crate::event::Event;
use crate::format::event_codec;
use crate::format::record::{
    FLAG_BATCH_CONTINUES, RECORD_HEADER_LEN, position_offset, position_segment,
};
use crate::format::segment::SEGMENT_HEADER_LEN;
use crate::store::{check_size, validate_fields};

/// A batch's records may not add up to more than this (keeps offsets < 2^32).
const MAX_BATCH_BYTES: u64 = 2 << 30;

thread_local! {
    /// Each appending thread encodes its bodies into the same buffer, so a
    /// steady stream of appends allocates nothing for encoding.
    static ENCODE_BUFFER: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
}
/// Under `Never`/`Interval`, an appender writes the buffer itself only once
/// this much (or 4 write buffers, if more) waits for the background writer:
/// enough to ride out the writer's longest stop, the `fdatasync` of a sealed
/// segment (25-28 ms for 64 MiB here, ~8 MB of appends at full speed), while
/// still bounding the memory a disk slower than the appends can make us hold.
const FAR_BEHIND: usize = 16 << 20;

/// An encode buffer grown past this is not kept for the next append.
const KEEP_BUFFER: usize = 1 << 20;

/// A validated batch: its events, their bodies back to back (body `i` ends
/// at `ends[i]`) and their id hashes.
struct Prepared<'a> {
    events: &'a [Event],
    bodies: &'a [u8],
    ends: &'a [usize],
    hashes: &'a [u64],
}

impl Prepared<'_> {
    fn body(&self, i: usize) -> &[u8] {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.bodies[start..self.ends[i]]
    }

    fn record_bytes(&self) -> u64 {
        (self.bodies.len() + RECORD_HEADER_LEN * self.events.len()) as u64
    }
}

/// What the state lock decided for each event of a batch.
#[derive(Clone, Copy)]
enum Outcome {
    /// Stored now with this sequence.
    New(u64),
    /// Already stored, at this position.
    Stored(u64),
    /// A repeat of the batch's event at this index.
    Repeat(usize),
}

impl Core {
    /// Appends one event (the common case, without per-append allocations).
    pub fn append_one(&self, mut event: Event) -> Result<Event> {
        let mut buf = ENCODE_BUFFER.take();
        buf.clear();
        let encoded = self.encode(&event, &mut buf);
        let outcome = encoded.and_then(|hash| self.store_one(&event, &buf, hash));
        if buf.capacity() <= KEEP_BUFFER {
            ENCODE_BUFFER.set(buf);
        }
        match outcome? {
            Outcome::New(seq) => {
                event.sequence_number = Some(seq);
                Ok(event)
            }
            Outcome::Stored(pos) => self.read_event(pos),
            Outcome::Repeat(_) => unreachable!("a single event repeats nothing"),
        }
    }

    /// Appends a batch atomically; one stored event per input.
    pub fn append(&self, events: Vec<Event>) -> Result<Vec<Event>> {
        let mut bodies = Vec::with_capacity(events.len() * 256);
        let mut ends = Vec::with_capacity(events.len());
        let mut hashes = Vec::with_capacity(events.len());
        for event in &events {
            hashes.push(self.encode(event, &mut bodies)?);
            ends.push(bodies.len());
        }
        let p = Prepared {
            events: &events,
            bodies: &bodies,
            ends: &ends,
            hashes: &hashes,
        };
        if p.record_bytes() > MAX_BATCH_BYTES {
            let why = format!(
                "a batch of {} bytes is over the limit of {MAX_BATCH_BYTES}",
                p.record_bytes()
            );
            return Err(Error::invalid(why));
        }
        let mut outcomes = vec![Outcome::New(0); events.len()];
        self.store(&p, &mut outcomes)?;
        self.results(events, &outcomes)
    }

    /// Validates `event` and encodes its body onto `out` (outside any lock);
    /// returns the hash of its id.
    fn encode(&self, event: &Event, out: &mut Vec<u8>) -> Result<u64> {
        // The same checks as every store, with the encoded body as the size.
        let nanos = validate_fields(event)?;
        let start = out.len();
        event_codec::encode_with_timestamp(event, nanos, out);
        check_size(event, out.len() - start, self.opts.max_event_size)?;
        Ok(self.hasher.hash_bytes(event.id.as_bytes()))
    }

    /// Under `Never`/`Interval`: the background thread writes the buffer
    /// once it reaches `write_buffer_size`; only when it falls far behind
    /// does the appender write itself, so the buffer stays bounded.
    fn let_buffer_be_written(&self, buffered: Buffered) -> Result<()> {
        let size = self.opts.write_buffer_size;
        if buffered.after >= size.saturating_mul(4).max(FAR_BEHIND) {
            return self.flush();
        }
        // One kick when this append filled the buffer: the thread then writes
        // everything buffered, so kicking on every later append (as it did)
        // only spent a channel operation per append until the thread ran.
        if buffered.before < size
            && buffered.after >= size
            && let Some(kick) = &self.flush_kick
        {
            // A full channel already holds a pending kick.
            let _ = kick.0.try_send(());
        }
        Ok(())
    }

    /// Stores a prepared batch: assigns under the state lock, then waits for
    /// the group commit (`Always`) or lets the buffer be written (otherwise).
    fn store(&self, p: &Prepared<'_>, outcomes: &mut [Outcome]) -> Result<()> {
        let commit = self.writer()?;
        let (target, wake, buffered) = {
            let mut st = self.state.write();
            self.assign(&mut st, p, outcomes, commit.durable())?
        };
        self.after_assign(commit, target, &wake, buffered)
    }

    /// [`store`](Self::store) for a single event, without a batch's
    /// bookkeeping (slices of bodies and outcomes, repeats within the batch,
    /// "batch continues" flags): the common append, so worth its own path.
    fn store_one(&self, event: &Event, body: &[u8], hash: u64) -> Result<Outcome> {
        let commit = self.writer()?;
        let (outcome, target, wake, buffered) = {
            let mut st = self.state.write();
            self.assign_one(&mut st, event, body, hash, commit.durable())?
        };
        self.after_assign(commit, target, &wake, buffered)?;
        Ok(outcome)
    }

    /// The group commit of a writer; a read-only store refuses appends.
    fn writer(&self) -> Result<&GroupCommit> {
        self.commit().ok_or_else(|| Error::ReadOnly {
            dir: self.dir.clone(),
        })
    }

    /// After the state lock: wakes watchers, then waits for the group commit
    /// (`Always`) or lets the buffer be written (otherwise).
    fn after_assign(
        &self,
        commit: &GroupCommit,
        target: Ticket,
        wake: &Wake,
        buffered: Buffered,
    ) -> Result<()> {
        self.wake(wake);
        if self.opts.sync == SyncPolicy::Always {
            if target.target > commit.durable() {
                let wake = commit.commit_durable(&self.state, &self.segments, target)?;
                self.wake(&wake);
            }
        } else {
            self.let_buffer_be_written(buffered)?;
        }
        Ok(())
    }

    /// Under the state lock: finds duplicates, then stores the new events.
    /// Fills `outcomes`; returns what the caller must see durable (a ticket
    /// with target 0 for nothing), the sessions to wake now, and the bytes
    /// buffered before and after.
    fn assign(
        &self,
        st: &mut State,
        p: &Prepared<'_>,
        outcomes: &mut [Outcome],
        durable: u64,
    ) -> Result<(Ticket, Wake, Buffered)> {
        refuse_if_failed(st)?;
        let before = st.pending.open_bytes();
        self.find_duplicates(st, p, outcomes)?;
        let mut target = Ticket {
            target: 0,
            group: 0,
        };
        if outcomes
            .iter()
            .any(|o| matches!(*o, Outcome::Stored(pos) if pos >= durable))
        {
            target = st.ticket();
        }
        let wake = if outcomes.iter().any(|o| matches!(o, Outcome::New(_))) {
            self.make_room(st, p.record_bytes())?;
            let wake = self.store_new(st, p, outcomes, durable);
            target = st.ticket();
            wake
        } else {
            Wake::new()
        };
        Ok((target, wake, buffered_since(st, before)))
    }

    /// [`assign`](Self::assign) for a single event: its outcome, what the
    /// caller must see durable, the sessions to wake, the bytes buffered.
    fn assign_one(
        &self,
        st: &mut State,
        event: &Event,
        body: &[u8],
        hash: u64,
        durable: u64,
    ) -> Result<(Outcome, Ticket, Wake, Buffered)> {
        refuse_if_failed(st)?;
        let before = st.pending.open_bytes();
        let found = {
            let st: &State = st;
            st.ids
                .find(hash, |pos| self.id_matches(st, pos, &event.id))?
        };
        if let Some(pos) = found {
            let target = if pos >= durable {
                st.ticket()
            } else {
                Ticket {
                    target: 0,
                    group: 0,
                }
            };
            let buffered = buffered_since(st, before);
            return Ok((Outcome::Stored(pos), target, Wake::new(), buffered));
        }
        self.make_room(st, (RECORD_HEADER_LEN + body.len()) as u64)?;
        let mut wake = Wake::new();
        // Under the state lock, which queries take (see `is_watched`).
        let watched = self.notifier.is_watched();
        let to_wake = watched.then_some(&mut wake);
        let seq = self.store_record(st, (event, body, hash), (0, durable), to_wake);
        Ok((
            Outcome::New(seq),
            st.ticket(),
            wake,
            buffered_since(st, before),
        ))
    }

    /// Classifies every event: already stored, a repeat within the batch, or new.
    fn find_duplicates(
        &self,
        st: &State,
        p: &Prepared<'_>,
        outcomes: &mut [Outcome],
    ) -> Result<()> {
        let mut first_of: HashMap<&str, usize> = HashMap::new();
        for (i, event) in p.events.iter().enumerate() {
            let found = st
                .ids
                .find(p.hashes[i], |pos| self.id_matches(st, pos, &event.id))?;
            outcomes[i] = match found {
                Some(pos) => Outcome::Stored(pos),
                None if p.events.len() == 1 => Outcome::New(0),
                None => match first_of.get(event.id.as_str()) {
                    Some(&j) => Outcome::Repeat(j),
                    None => {
                        first_of.insert(&event.id, i);
                        Outcome::New(0)
                    }
                },
            };
        }
        Ok(())
    }

    /// Whether the record at `pos` (pending or in a file) has event id `id`.
    fn id_matches(&self, st: &State, pos: u64, id: &str) -> Result<bool> {
        let record = match st.pending.copy_record(pos) {
            Some(bytes) => super::segment::RecordBytes::Owned(bytes),
            None => self.segments.read_record(pos)?,
        };
        let keys = event_codec::decode_keys(&record[RECORD_HEADER_LEN..]).map_err(|e| {
            let file = self
                .dir
                .join(crate::format::segment::segment_file_name(position_segment(
                    pos,
                )));
            Error::corrupt(file, position_offset(pos), e.0)
        })?;
        Ok(keys.id == id)
    }

    /// Starts a new segment when `bytes` more would overflow the active one.
    fn make_room(&self, st: &mut State, bytes: u64) -> Result<()> {
        let next = st.pending.next();
        let used = position_offset(next);
        if used > SEGMENT_HEADER_LEN as u64 && used + bytes > self.opts.segment_size {
            if position_segment(next) >= MAX_INDEXED_SEGMENT {
                return Err(Error::Failed(format!(
                    "the log in {} has reached the maximum of {MAX_INDEXED_SEGMENT} segments",
                    self.dir.display()
                )));
            }
            st.pending.roll_segment();
        }
        Ok(())
    }

    /// Encodes every new event's record into the pending log and indexes it.
    /// Nothing here can fail: all checks happened before.
    fn store_new(
        &self,
        st: &mut State,
        p: &Prepared<'_>,
        outcomes: &mut [Outcome],
        durable: u64,
    ) -> Wake {
        // Under the state lock, which queries take (see `is_watched`).
        let watched = self.notifier.is_watched();
        let last_new = outcomes.iter().rposition(|o| matches!(o, Outcome::New(_)));
        let mut wake = Wake::new();
        for (i, event) in p.events.iter().enumerate() {
            if !matches!(outcomes[i], Outcome::New(_)) {
                continue;
            }
            let flags = if Some(i) == last_new {
                0
            } else {
                FLAG_BATCH_CONTINUES
            };
            let to_wake = watched.then_some(&mut wake);
            let record = (event, p.body(i), p.hashes[i]);
            let seq = self.store_record(st, record, (flags, durable), to_wake);
            outcomes[i] = Outcome::New(seq);
        }
        wake
    }

    /// Stores one new event (its encoded `body`, its id's `hash`): assigns
    /// its sequence, appends its record (with `flags`, claiming `durable`)
    /// to the pending log, indexes it and makes it visible (or defers that
    /// to its group commit under `Always`). Returns the sequence. Its
    /// wake-up goes to `wake`, given only when someone watches (else there
    /// is no session name to clone).
    fn store_record(
        &self,
        st: &mut State,
        (event, body, hash): (&Event, &[u8], u64),
        (flags, durable): (u8, u64),
        wake: Option<&mut Wake>,
    ) -> u64 {
        let n = st.sessions.find_or_add(&event.session_id);
        let s = st.sessions.get(n);
        let (seq, prev) = (s.assigned + 1, s.assigned_last);
        let pos = st.pending.append(body, flags, (seq, prev), durable);
        st.ids.insert(hash, pos);
        let s = st.sessions.get_mut(n);
        s.assigned = seq;
        s.assigned_last = pos;
        s.sparse.note(seq, pos);
        if self.opts.sync == SyncPolicy::Always {
            st.defer_publish(n, seq, pos);
        } else {
            s.visible = seq;
            s.visible_last = pos;
            if let Some(wake) = wake {
                push_wake(wake, &s.name, seq);
            }
        }
        seq
    }

    /// The stored events, in input order (originals read back for duplicates).
    fn results(&self, events: Vec<Event>, outcomes: &[Outcome]) -> Result<Vec<Event>> {
        let mut out: Vec<Event> = Vec::with_capacity(events.len());
        for (mut event, outcome) in events.into_iter().zip(outcomes) {
            let stored = match *outcome {
                Outcome::New(seq) => {
                    event.sequence_number = Some(seq);
                    event
                }
                Outcome::Repeat(j) => out[j].clone(),
                Outcome::Stored(pos) => self.read_event(pos)?,
            };
            out.push(stored);
        }
        Ok(out)
    }
}

/// Bytes not yet taken by the writer, before and after one append.
#[derive(Clone, Copy)]
struct Buffered {
    before: usize,
    after: usize,
}

fn buffered_since(st: &State, before: usize) -> Buffered {
    Buffered {
        before,
        after: st.pending.open_bytes(),
    }
}

/// Appends are refused after a write or sync failure, until reopen.
fn refuse_if_failed(st: &State) -> Result<()> {
    match &st.failed {
        Some(why) => Err(Error::Failed(why.clone())),
        None => Ok(()),
    }
}

/// Adds (or, for the same session as the last entry, raises) a wake-up.
fn push_wake(wake: &mut Wake, session: &std::sync::Arc<str>, seq: u64) {
    match wake.last_mut() {
        Some(last) if std::sync::Arc::ptr_eq(&last.0, session) => last.1 = seq,
        _ => wake.push((std::sync::Arc::clone(session), seq)),
    }
}
