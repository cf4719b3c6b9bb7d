//! The engine's in-memory state: the sessions, the id index, the records not
//! yet written, the durable watermark. It lives behind one `RwLock`, taken
//! briefly by appenders (to check duplicates and assign sequences) and by
//! readers (to find where a session's records are).

use std::collections::HashMap;
use std::sync::Arc;

use super::group_commit::Ticket;

use super::hash::FastHash;
use super::id_index::IdIndex;
use super::pending::PendingLog;
use super::sparse_index::SparseIndex;

/// One session: how far its sequence has been assigned and how far it is
/// visible to readers, and where its records are.
///
/// `assigned` runs ahead of `visible` while an append waits for its group
/// commit (under `SyncPolicy::Always`): readers only ever look up to `visible`.
#[derive(Debug)]
pub(crate) struct Session {
    pub name: Arc<str>,
    /// The highest sequence handed out.
    pub assigned: u64,
    /// The position of the record with sequence `assigned` (0 when none).
    pub assigned_last: u64,
    /// The highest sequence readers may see.
    pub visible: u64,
    /// The position of the record with sequence `visible` (0 when none).
    pub visible_last: u64,
    pub sparse: SparseIndex,
}

/// Sessions by name, numbered in order of first appearance.
#[derive(Default)]
pub(crate) struct SessionTable {
    by_name: HashMap<Arc<str>, u32, FastHash>,
    list: Vec<Session>,
    /// The session `find_or_add` found last: appends tend to come in runs
    /// per session, and comparing a name is cheaper than hashing it.
    last: u32,
}

impl SessionTable {
    /// The number of the session called `name`, if it exists.
    pub fn find(&self, name: &str) -> Option<u32> {
        self.by_name.get(name).copied()
    }

    /// The number of the session called `name`, creating it empty if needed.
    pub fn find_or_add(&mut self, name: &str) -> u32 {
        if self
            .list
            .get(self.last as usize)
            .is_some_and(|s| *s.name == *name)
        {
            return self.last;
        }
        if let Some(&n) = self.by_name.get(name) {
            self.last = n;
            return n;
        }
        let n = u32::try_from(self.list.len()).expect("fewer than 2^32 sessions");
        let name: Arc<str> = Arc::from(name);
        self.list.push(Session {
            name: Arc::clone(&name),
            assigned: 0,
            assigned_last: 0,
            visible: 0,
            visible_last: 0,
            sparse: SparseIndex::default(),
        });
        self.by_name.insert(name, n);
        self.last = n;
        n
    }

    pub fn get(&self, n: u32) -> &Session {
        &self.list[n as usize]
    }

    pub fn get_mut(&mut self, n: u32) -> &mut Session {
        &mut self.list[n as usize]
    }

    /// Approximate heap bytes held (table, names, sparse anchors).
    pub fn heap_bytes(&self) -> usize {
        let map = self.by_name.capacity() * (std::mem::size_of::<(Arc<str>, u32)>() + 1);
        let list = self.list.capacity() * std::mem::size_of::<Session>();
        let names: usize = self.list.iter().map(|s| s.name.len() + 16).sum();
        let sparse: usize = self.list.iter().map(|s| s.sparse.heap_bytes()).sum();
        map + list + names + sparse
    }
}

/// A record whose visibility waits for its group commit: (session, sequence, position).
pub(crate) type Unpublished = (u32, u64, u64);

/// Everything the engine keeps in memory, behind the state lock.
#[derive(Default)]
pub(crate) struct State {
    pub ids: IdIndex,
    pub sessions: SessionTable,
    /// Records appended but not yet written to their segment file.
    pub pending: PendingLog,
    /// Records made visible by the next group commit (per session, the last one).
    pub unpublished: Vec<Unpublished>,
    /// Set after a write or sync failure: appends are refused until reopen.
    pub failed: Option<String>,
    /// Commit groups that have taken pending records so far (the latest one's number).
    pub groups_taken: u64,
    /// The end of the records the latest group took.
    pub taken_end: u64,
}

impl State {
    /// Makes every record in `unpublished` visible; returns the sessions to
    /// wake, with their new latest sequence.
    pub fn publish(&mut self, unpublished: &[Unpublished]) -> Vec<(Arc<str>, u64)> {
        let mut wake = Vec::with_capacity(unpublished.len());
        for &(n, seq, pos) in unpublished {
            let s = self.sessions.get_mut(n);
            if seq > s.visible {
                s.visible = seq;
                s.visible_last = pos;
                wake.push((Arc::clone(&s.name), seq));
            }
        }
        wake
    }

    /// Remembers that session `n` reached `seq` at `pos`, for the next publish.
    pub fn defer_publish(&mut self, n: u32, seq: u64, pos: u64) {
        match self.unpublished.last_mut() {
            Some(last) if last.0 == n => *last = (n, seq, pos),
            _ => self.unpublished.push((n, seq, pos)),
        }
    }

    /// What an appender waits for to see every record appended so far
    /// committed: their end, and the number of the group that takes them
    /// (the latest group if it took them already, else the next one).
    pub fn ticket(&self) -> Ticket {
        let target = self.pending.next();
        let group = if target <= self.taken_end {
            self.groups_taken
        } else {
            self.groups_taken + 1
        };
        Ticket { target, group }
    }

    /// Approximate heap bytes held for the stored events (indexes, sessions).
    pub fn heap_bytes(&self) -> usize {
        self.ids.heap_bytes() + self.sessions.heap_bytes()
    }
}
