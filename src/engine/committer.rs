//! [`Committer`]: the thread that leads group commits under
//! `SyncPolicy::Always` (see `group_commit` for the protocol and why).
//!
//! It sleeps while no appender waits for it; woken, it leads groups of
//! everything pending until nobody waits, then sleeps again. If a write or
//! sync fails it ends: the store is failed, every waiting appender has been
//! woken with the error, and later appends are refused. However it ends, it
//! says so first, and an appender that finds it gone leads its own group
//! (so even a bug that ended the thread could not leave an appender
//! waiting forever). It is stopped and joined before the store closes, so
//! the close's final sync never races it.

use std::sync::Arc;
use std::thread::JoinHandle;

use super::core::Core;
use super::group_commit::GroupCommit;

/// The running committer thread of one open log.
pub(crate) struct Committer {
    core: Arc<Core>,
    thread: Option<JoinHandle<()>>,
}

impl Committer {
    /// Starts the committer of a writer's `core`. If the thread cannot be
    /// started (`None`), the appenders go on leading their groups
    /// themselves, as under the buffered policies: slower with many
    /// appenders, but never waiting for a thread that does not exist.
    pub fn start(core: &Arc<Core>) -> Option<Committer> {
        let commit = core.commit()?;
        // Before the thread runs, so that its end, however early, is the last word.
        commit.committer_started();
        let for_thread = Arc::clone(core);
        let started = std::thread::Builder::new()
            .name("sessionlog-commit".into())
            .spawn(move || run(&for_thread));
        match started {
            Ok(thread) => Some(Committer {
                core: Arc::clone(core),
                thread: Some(thread),
            }),
            Err(_) => {
                commit.committer_ended();
                None
            }
        }
    }
}

/// The thread's loop: lead while appenders wait, sleep otherwise.
fn run(core: &Core) {
    let Some(commit) = core.commit() else {
        return;
    };
    let _ended = Ended(commit);
    while !commit.committer_stopping() {
        if !commit.committer_wanted() {
            commit.committer_sleep();
            continue;
        }
        match commit.commit_wanted(&core.state, &core.segments) {
            Ok(wake) => core.wake(&wake),
            // The failure is the store's now; its waiters have the error.
            Err(_) => return,
        }
    }
}

/// Tells the barrier the thread has ended when it does, by any way out
/// (unwinding too): waiting appenders then lead their groups themselves.
struct Ended<'a>(&'a GroupCommit);

impl Drop for Ended<'_> {
    fn drop(&mut self) {
        self.0.committer_ended();
    }
}

impl Drop for Committer {
    fn drop(&mut self) {
        if let Some(commit) = self.core.commit() {
            commit.stop_committer();
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
