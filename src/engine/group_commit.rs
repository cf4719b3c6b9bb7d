//! [`GroupCommit`]: the write barrier that makes concurrent appends durable
//! together, with one write and one `fdatasync` per group.
//!
//! Appenders put their records into the pending log (under the state lock)
//! and then call [`GroupCommit::commit_through`] with the log position just
//! past their records. Whoever finds the writer free is the leader: it takes
//! *everything* pending at that moment (its own records and those of every
//! appender that queued up meanwhile), writes it with one positioned write,
//! syncs once, makes those records visible and advances the durable
//! watermark. The others follow: they park until the leader is done, and are
//! all woken at once (not handed the lock one by one, which on a busy machine
//! would cost a context switch per follower). A follower whose records the
//! watermark now covers returns; one whose records came too late for the
//! group leads the next. An append is acknowledged only once the durable
//! watermark covers it.
//!
//! A failed write or sync puts the store into the failed state: nothing of
//! that group becomes visible, every waiting appender gets an error, and all
//! later appends are refused until the store is reopened (which recovers
//! exactly what reached the disk). Retrying an `fdatasync` after a failure
//! cannot be trusted (the kernel may have dropped the dirty pages), so the
//! engine does not pretend.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::Thread;
use std::time::Duration;

use parking_lot::{Mutex, RwLock};

use super::segment::{SegmentSet, SegmentWriter};
use super::state::State;
use crate::error::{Error, Result};

/// Sessions to wake after a commit: (session, its new latest visible sequence).
pub(crate) type Wake = Vec<(Arc<str>, u64)>;

/// Leader/follower group commit over the active [`SegmentWriter`].
pub(crate) struct GroupCommit {
    writer: Mutex<SegmentWriter>,
    /// Packed position up to which records are in the segment files.
    written: AtomicU64,
    /// Packed position up to which records are on stable storage.
    durable: AtomicU64,
    /// Appenders waiting for the current leader to finish: (their target,
    /// whether they wait for durability, their thread).
    followers: Mutex<Vec<(u64, bool, Thread)>>,
}

/// How long a follower sleeps at most before it looks again by itself.
const FOLLOWER_NAP: Duration = Duration::from_millis(20);

impl GroupCommit {
    /// A barrier over `writer`, whose log is written and durable up to `end`.
    pub fn new(writer: SegmentWriter, end: u64) -> GroupCommit {
        GroupCommit {
            writer: Mutex::new(writer),
            written: AtomicU64::new(end),
            durable: AtomicU64::new(end),
            followers: Mutex::new(Vec::new()),
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

    /// Makes every record before `target` written to its file and, when
    /// `sync`, durable, leading a group commit if nobody has yet. Returns the
    /// sessions whose deferred records this call made visible.
    pub fn commit_through(
        &self,
        state: &RwLock<State>,
        segments: &SegmentSet,
        target: u64,
        sync: bool,
    ) -> Result<Wake> {
        let done = || if sync { self.durable() } else { self.written() };
        loop {
            if done() >= target {
                return Ok(Wake::new());
            }
            if let Some(mut writer) = self.writer.try_lock() {
                let result = self.lead(&mut writer, state, segments, sync);
                drop(writer);
                self.wake_followers(result.is_err());
                return result;
            }
            // Follow: register, then sleep until the leader is done. The
            // leader wakes every registered follower after it lets go of the
            // writer, so registering before looking at the lock cannot miss it.
            self.followers
                .lock()
                .push((target, sync, std::thread::current()));
            if done() >= target {
                return Ok(Wake::new());
            }
            if self.writer.is_locked() {
                // The timeout is only a safety net; wake-ups come from the leader.
                std::thread::park_timeout(FOLLOWER_NAP);
            }
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
    ) -> Result<Wake> {
        let (chunks, unpublished, end) = {
            let mut st = state.write();
            if let Some(why) = &st.failed {
                return Err(Error::Failed(why.clone()));
            }
            let unpublished = std::mem::take(&mut st.unpublished);
            (st.pending.take(), unpublished, st.pending.next())
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
        Ok(wake)
    }

    /// Wakes the followers whose records are now covered, and one whose
    /// records are not (it leads the next group); after a failure, all of
    /// them (they all get the error). The others sleep on: every wake-up is a
    /// context switch, which on a busy machine costs more than the append.
    fn wake_followers(&self, failed: bool) {
        let (written, durable) = (self.written(), self.durable());
        let mut woken_leader = false;
        let mut wake = Vec::new();
        self.followers.lock().retain(|(target, needs_sync, thread)| {
            let done = failed || *target <= if *needs_sync { durable } else { written };
            let lead = !done && !woken_leader;
            woken_leader |= lead;
            if done || lead {
                wake.push(thread.clone());
            }
            !(done || lead)
        });
        // Outside the lock: new followers register meanwhile without waiting.
        for thread in wake {
            thread.unpark();
        }
    }

    /// Syncs what is written so far (for `SyncPolicy::Interval` and close).
    pub fn sync_written(&self, state: &RwLock<State>, segments: &SegmentSet) -> Result<Wake> {
        let end = state.read().pending.next();
        self.commit_through(state, segments, end, true)
    }
}
