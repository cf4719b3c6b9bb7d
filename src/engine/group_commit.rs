//! [`GroupCommit`]: the write barrier that makes concurrent appends durable
//! together, with one write and one `fdatasync` per group.
//!
//! Appenders put their records into the pending log (under the state lock)
//! and then call [`GroupCommit::commit_through`] with the log position just
//! past their records. Whoever finds the writer free is the leader: it takes
//! *everything* pending at that moment (its own records and those of every
//! appender that queued up meanwhile), writes it with one positioned write,
//! syncs once, makes those records visible and advances the durable
//! watermark. The others follow: each knows the number of the group that
//! takes its records (its [`Ticket`]) and sleeps on that group's
//! [`GroupSignal`]; the leader wakes all of them with one broadcast, and
//! wakes one follower of the next group, if records are pending, to lead it.
//! Groups alternate between two signals, so a broadcast wakes only appenders
//! it finished. An append is acknowledged only once the durable watermark
//! covers it.
//!
//! A failed write or sync puts the store into the failed state: nothing of
//! that group becomes visible, every waiting appender gets an error, and all
//! later appends are refused until the store is reopened (which recovers
//! exactly what reached the disk). Retrying an `fdatasync` after a failure
//! cannot be trusted (the kernel may have dropped the dirty pages), so the
//! engine does not pretend.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::{Mutex, RwLock};

use super::group_signal::{self, GroupSignal};
use super::segment::{SegmentSet, SegmentWriter};
use super::state::State;
use crate::error::{Error, Result};

/// Sessions to wake after a commit: (session, its new latest visible sequence).
pub(crate) type Wake = Vec<(Arc<str>, u64)>;

/// What an appender waits for: its records' end, and the group that takes them.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Ticket {
    /// Records before this packed position must be committed.
    pub target: u64,
    /// The number of the group that takes them (groups count from 1).
    pub group: u64,
}

/// Leader/follower group commit over the active [`SegmentWriter`].
pub(crate) struct GroupCommit {
    writer: Mutex<SegmentWriter>,
    /// Packed position up to which records are in the segment files.
    written: AtomicU64,
    /// Packed position up to which records are on stable storage.
    durable: AtomicU64,
    /// The latest group that took its records, and the latest that finished.
    started: AtomicU64,
    finished: AtomicU64,
    /// Group `g`'s followers sleep on `signals[g % 2]`.
    signals: [GroupSignal; 2],
}

impl GroupCommit {
    /// A barrier over `writer`, whose log is written and durable up to `end`.
    pub fn new(writer: SegmentWriter, end: u64) -> GroupCommit {
        GroupCommit {
            writer: Mutex::new(writer),
            written: AtomicU64::new(end),
            durable: AtomicU64::new(end),
            started: AtomicU64::new(0),
            finished: AtomicU64::new(0),
            signals: [GroupSignal::new(), GroupSignal::new()],
        }
    }

    /// Records before this packed position are in the segment files.
    pub fn written(&self) -> u64 {
        self.written.load(Ordering::Acquire)
    }

    /// Records before this packed position are on stable storage.
    pub fn durable(&self) -> u64 {
        self.durable.load(Ordering::Acquire)
    }

    /// Makes every record before `ticket.target` written to its file and,
    /// when `sync`, durable, leading a group commit if nobody has yet.
    /// Returns the sessions whose deferred records this call made visible.
    pub fn commit_through(
        &self,
        state: &RwLock<State>,
        segments: &SegmentSet,
        ticket: Ticket,
        sync: bool,
    ) -> Result<Wake> {
        let done = || {
            let mark = if sync { self.durable() } else { self.written() };
            mark >= ticket.target
        };
        loop {
            if done() {
                return Ok(Wake::new());
            }
            if let Some(mut writer) = self.writer.try_lock() {
                let result = self.lead(&mut writer, state, segments, sync);
                drop(writer);
                return match result {
                    Ok((wake, group)) => {
                        self.wake_after(group);
                        Ok(wake)
                    }
                    Err(e) => {
                        self.wake_all();
                        Err(e)
                    }
                };
            }
            self.follow(ticket, &done);
        }
    }

    /// Sleeps until the group that can finish `ticket` ends (or this
    /// follower is asked to lead the next one). May return early.
    fn follow(&self, ticket: Ticket, done: &dyn Fn() -> bool) {
        let (started, finished) = (self.started(), self.finished.load(Ordering::Acquire));
        // A group in flight, or else the next to start, is the earliest that
        // can still finish this ticket (after a group that wrote without
        // syncing, a later one must sync).
        let current = if started > finished {
            started
        } else {
            started + 1
        };
        let signal = &self.signals[(ticket.group.max(current) % 2) as usize];
        let value = signal.value();
        // Looked at after reading the signal: a leader changes these before
        // it changes the signal, so either we see the change or we do not sleep.
        if done() || !self.writer.is_locked() || self.started() != started {
            return;
        }
        signal.wait(value);
    }

    fn started(&self) -> u64 {
        self.started.load(Ordering::Acquire)
    }

    /// After group `group` (the writer already let go): wakes one follower of
    /// the next group, if any sleeps, to lead it (first, so the next sync does
    /// not queue for a core behind the whole woken group), then all of this
    /// group's followers. The next group's leader is woken always, not only
    /// when records are pending: an appender that queued after such a check
    /// would sleep only if it still saw the writer taken.
    fn wake_after(&self, group: u64) {
        self.finished.fetch_max(group, Ordering::AcqRel);
        self.signals[((group + 1) % 2) as usize].wake(1);
        self.signals[(group % 2) as usize].wake(group_signal::ALL);
    }

    /// After a failure: every follower (each then gets the error).
    fn wake_all(&self) {
        self.finished.fetch_max(self.started(), Ordering::AcqRel);
        for signal in &self.signals {
            signal.wake(group_signal::ALL);
        }
    }

    /// One group: takes everything pending, writes it, syncs when `sync`,
    /// then advances the watermarks and makes the records visible.
    fn lead(
        &self,
        writer: &mut SegmentWriter,
        state: &RwLock<State>,
        segments: &SegmentSet,
        sync: bool,
    ) -> Result<(Wake, u64)> {
        let (chunks, unpublished, end, group) = {
            let mut st = state.write();
            if let Some(why) = &st.failed {
                return Err(Error::Failed(why.clone()));
            }
            st.groups_taken += 1;
            st.taken_end = st.pending.next();
            self.started.store(st.groups_taken, Ordering::Release);
            let unpublished = std::mem::take(&mut st.unpublished);
            (
                st.pending.take(),
                unpublished,
                st.taken_end,
                st.groups_taken,
            )
        };
        let mut result = chunks
            .iter()
            .try_for_each(|c| writer.write(segments, c.segment, c.offset, &c.bytes));
        if result.is_ok() && sync {
            result = writer.sync();
        }
        // Let go of the chunks first, so the pending log can reuse their buffers.
        drop(chunks);
        let mut st = state.write();
        if let Err(e) = result {
            st.failed = Some(format!("an earlier write or sync failed: {e}"));
            return Err(e);
        }
        st.pending.written(end);
        // Visible first, then the watermark: a follower that sees its append
        // covered finds it readable.
        let wake = st.publish(&unpublished);
        self.written.fetch_max(end, Ordering::AcqRel);
        if sync {
            self.durable.fetch_max(end, Ordering::AcqRel);
        }
        Ok((wake, group))
    }

    /// Closes the active segment cleanly (after a sync): cuts its
    /// preallocated zeros and ends it with a close mark.
    pub fn close(&self) -> Result<()> {
        self.writer.lock().close()
    }

    /// Syncs what is written so far (for `SyncPolicy::Interval` and close).
    pub fn sync_written(&self, state: &RwLock<State>, segments: &SegmentSet) -> Result<Wake> {
        let ticket = state.read().ticket();
        self.commit_through(state, segments, ticket, true)
    }
}
