//! [`GroupCommit`]: the write barrier that makes concurrent appends durable
//! together, with one write and one `fdatasync` per group.
//!
//! Appenders put their records into the pending log (under the state lock)
//! and then ask for them to be committed. Whoever leads a group takes
//! *everything* pending at that moment (its own records, if it is an
//! appender, and those of every appender that queued up meanwhile), writes it
//! with one positioned write, syncs once, makes those records visible and
//! advances the durable watermark. The others follow: each knows the number
//! of the group that takes its records (its [`Ticket`]) and sleeps on that
//! group's [`GroupSignal`]; the leader wakes all of them with one broadcast.
//! Groups alternate between two signals, so a broadcast wakes only appenders
//! it finished. An append is acknowledged only once the durable watermark
//! covers it.
//!
//! Who leads depends on the store's sync policy:
//!
//! - Under `SyncPolicy::Always` a committer thread (`committer`) leads
//!   whenever appenders wait for it ([`commit_durable`](GroupCommit::commit_durable)).
//!   A lone appender, which finds the committer asleep and the writer free,
//!   leads its own group instead and spares itself two thread hops. Why a
//!   thread: the appenders a group's broadcast wakes come back with their
//!   next appends while the committer is still waking the rest, so the next
//!   group holds nearly all of them. Led by an appender (the first to find
//!   the writer free, which then returns), a group held about half: the
//!   next leader started as soon as the previous sync ended, before the
//!   woken half was back (BENCHMARKS.md, eleventh session: at 64 threads
//!   ~1.7× fewer `fdatasync`s for the same appends and a median 1.09× the
//!   rate; unchanged for one appender).
//! - Otherwise (buffered policies, closing, explicit syncs) the caller of
//!   [`commit_through`](GroupCommit::commit_through) leads if it finds the
//!   writer free; when it finishes it wakes one follower of the next group,
//!   if one sleeps, to lead that group.
//!
//! A failed write or sync puts the store into the failed state: nothing of
//! that group becomes visible, every waiting appender gets an error, and all
//! later appends are refused until the store is reopened (which recovers
//! exactly what reached the disk). Retrying an `fdatasync` after a failure
//! cannot be trusted (the kernel may have dropped the dirty pages), so the
//! engine does not pretend.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use parking_lot::{Mutex, MutexGuard, RwLock};

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

/// Group commit over the active [`SegmentWriter`], led by the committer
/// thread, a lone appender, or whoever finds the writer free (see the module docs).
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
    /// A write or sync failed (set before the failure's wake-up).
    failed: AtomicBool,
    /// The committer thread's side, under `SyncPolicy::Always`.
    committer: CommitterLink,
}

/// What appenders and the committer thread share.
struct CommitterLink {
    /// A committer thread serves this barrier.
    running: AtomicBool,
    /// It sleeps on `work` (or is about to: so from the start, as its
    /// thread's first step is to sleep); an appender that needs it clears
    /// this and wakes it.
    idle: AtomicBool,
    /// It is asked to stop.
    stopping: AtomicBool,
    /// The highest position an appender waits to see durable.
    wanted: AtomicU64,
    /// The word the committer sleeps on.
    work: GroupSignal,
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
            failed: AtomicBool::new(false),
            committer: CommitterLink {
                running: AtomicBool::new(false),
                idle: AtomicBool::new(true),
                stopping: AtomicBool::new(false),
                wanted: AtomicU64::new(end),
                work: GroupSignal::new(),
            },
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
            if let Some(writer) = self.writer.try_lock() {
                return self.lead_and_wake(writer, state, segments, sync);
            }
            self.follow(ticket, &done);
        }
    }

    /// Makes every record before `ticket.target` durable (`SyncPolicy::Always`).
    /// With a committer thread: leads the group itself when the committer
    /// sleeps and the writer is free (a lone appender), else wakes the
    /// committer if it sleeps and waits for the group that takes the records.
    /// Without one (it could not be started), as [`commit_through`](Self::commit_through).
    pub fn commit_durable(
        &self,
        state: &RwLock<State>,
        segments: &SegmentSet,
        ticket: Ticket,
    ) -> Result<Wake> {
        let link = &self.committer;
        if !link.running.load(Ordering::Acquire) {
            return self.commit_through(state, segments, ticket, true);
        }
        if self.durable() >= ticket.target {
            return Ok(Wake::new());
        }
        if link.idle.load(Ordering::SeqCst)
            && let Some(writer) = self.writer.try_lock()
        {
            // The writer free means no group is in flight: this one takes
            // our records, which are pending.
            return self.lead_and_wake(writer, state, segments, true);
        }
        // `wanted` first, then `idle`: the committer sets `idle` first, then
        // looks at `wanted`, so either it sees our records or we see it idle.
        link.wanted.fetch_max(ticket.target, Ordering::SeqCst);
        if link.idle.swap(false, Ordering::SeqCst) {
            link.work.wake(1);
        }
        if self.await_group(state, ticket)? {
            Ok(Wake::new())
        } else {
            // The committer is gone (it can only end by a bug): lead ourselves.
            self.commit_through(state, segments, ticket, true)
        }
    }

    /// Sleeps until the durable watermark covers `ticket` (woken by the
    /// broadcast of the group that takes it; `true`), the store fails, or
    /// the committer thread is gone (`false`).
    fn await_group(&self, state: &RwLock<State>, ticket: Ticket) -> Result<bool> {
        let signal = &self.signals[(ticket.group % 2) as usize];
        loop {
            let value = signal.value();
            // Looked at after reading the signal: a leader advances the
            // watermark (or sets `failed`) before it changes the signal, and
            // so does a committer that ends.
            if self.durable() >= ticket.target {
                return Ok(true);
            }
            if self.failed.load(Ordering::Acquire) {
                let why = state.read().failed.clone().unwrap_or_default();
                return Err(Error::Failed(why));
            }
            if !self.committer.running.load(Ordering::Acquire) {
                return Ok(false);
            }
            signal.wait(value);
        }
    }

    /// Marks this barrier as served by a committer thread.
    pub fn committer_started(&self) {
        self.committer.running.store(true, Ordering::Release);
    }

    /// Marks the committer thread as ended (however it ends, a panic
    /// included) and wakes every waiter, so none waits for it in vain.
    pub fn committer_ended(&self) {
        self.committer.running.store(false, Ordering::Release);
        self.wake_every_group();
    }

    /// The committer thread's check: whether an appender waits for it.
    pub fn committer_wanted(&self) -> bool {
        self.committer.wanted.load(Ordering::SeqCst) > self.durable()
    }

    /// The committer thread's check: whether it is asked to stop.
    pub fn committer_stopping(&self) -> bool {
        self.committer.stopping.load(Ordering::SeqCst)
    }

    /// The committer thread's round: waits for the writer (it never
    /// follows, so no group waits on it for a hand-over), then leads a
    /// group of everything pending, if an appender still waits.
    pub fn commit_wanted(&self, state: &RwLock<State>, segments: &SegmentSet) -> Result<Wake> {
        let writer = self.writer.lock();
        if !self.committer_wanted() {
            return Ok(Wake::new());
        }
        self.lead_and_wake(writer, state, segments, true)
    }

    /// The committer thread's sleep, until an appender wants it or it is
    /// asked to stop (may return early; it loops). Only an appender clears
    /// `idle` while the committer sleeps (it swaps it off and wakes it), so
    /// after a spurious wake-up the committer still counts as asleep and a
    /// lone appender still leads its own group: which of the two leads
    /// decides who gets a failed write's own error (the leader) and who
    /// `Failed`, so a lone appender must not meet a committer that only
    /// looked awake.
    pub fn committer_sleep(&self) {
        let link = &self.committer;
        let value = link.work.value();
        link.idle.store(true, Ordering::SeqCst);
        if self.committer_wanted() || self.committer_stopping() {
            link.idle.store(false, Ordering::SeqCst);
            return;
        }
        link.work.wait(value);
    }

    /// Asks the committer thread to stop (the caller then joins it).
    pub fn stop_committer(&self) {
        self.committer.stopping.store(true, Ordering::SeqCst);
        self.committer.work.wake(1);
    }

    /// Leads one group with the writer taken, then wakes its followers (or,
    /// after a failure, everyone).
    fn lead_and_wake(
        &self,
        mut writer: MutexGuard<'_, SegmentWriter>,
        state: &RwLock<State>,
        segments: &SegmentSet,
        sync: bool,
    ) -> Result<Wake> {
        let result = self.lead(&mut writer, state, segments, sync);
        drop(writer);
        match result {
            Ok((wake, group)) => {
                self.wake_after(group);
                Ok(wake)
            }
            Err(e) => {
                self.wake_all();
                Err(e)
            }
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
    /// would sleep only if it still saw the writer taken. With a committer
    /// thread nobody waits to be handed the next group: the committer leads
    /// every group an appender waits for, so that wake-up is skipped (it
    /// would only wake an appender to find itself not yet done).
    fn wake_after(&self, group: u64) {
        self.finished.fetch_max(group, Ordering::AcqRel);
        if !self.committer.running.load(Ordering::Acquire) {
            self.signals[((group + 1) % 2) as usize].wake(1);
        }
        self.signals[(group % 2) as usize].wake(group_signal::ALL);
    }

    /// After a failure: every follower (each then gets the error).
    fn wake_all(&self) {
        self.failed.store(true, Ordering::Release);
        self.finished.fetch_max(self.started(), Ordering::AcqRel);
        self.wake_every_group();
    }

    /// Wakes every follower of every group, to look again at what changed.
    fn wake_every_group(&self) {
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

    /// Syncs what is written so far (`SyncPolicy::Interval`, [`LogStore::sync`](crate::LogStore::sync), close).
    pub fn sync_written(&self, state: &RwLock<State>, segments: &SegmentSet) -> Result<Wake> {
        let ticket = state.read().ticket();
        self.commit_through(state, segments, ticket, true)
    }
}
