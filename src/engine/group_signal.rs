//! [`GroupSignal`]: the word the appenders of one commit group sleep on.
//!
//! A leader that finishes a group wakes every follower of that group with one
//! system call (a futex broadcast on Linux), instead of one `unpark` per
//! follower. That matters on a small machine: a per-thread wake-up lets each
//! woken follower preempt the leader before it wakes the next, so the last
//! follower of a 30-append group waited for 29 context switches; a broadcast
//! puts them all on the run queues at once.
//!
//! The protocol is the futex one: read the word, check the condition, then
//! sleep only if the word still has the value read. A waker changes the condition,
//! then bumps the word, then wakes; so a waiter either sees the new condition
//! or finds the word changed and does not sleep. No wake-up is lost.

#[cfg(any(target_os = "linux", target_os = "android"))]
mod imp {
    use std::sync::atomic::{AtomicU32, Ordering};

    use rustix::thread::futex;

    /// A futex word.
    pub(crate) struct GroupSignal(AtomicU32);

    impl GroupSignal {
        pub const fn new() -> GroupSignal {
            GroupSignal(AtomicU32::new(0))
        }

        /// The word's value, to pass to [`wait`](Self::wait).
        pub fn value(&self) -> u32 {
            self.0.load(Ordering::Acquire)
        }

        /// Sleeps while the word is still `value` (may return early; callers loop).
        pub fn wait(&self, value: u32) {
            // EAGAIN (the word changed) and EINTR just mean "look again".
            let _ = futex::wait(&self.0, futex::Flags::PRIVATE, value, None);
        }

        /// Changes the word and wakes up to `n` sleepers.
        pub fn wake(&self, n: u32) {
            self.0.fetch_add(1, Ordering::Release);
            let _ = futex::wake(&self.0, futex::Flags::PRIVATE, n);
        }
    }
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
mod imp {
    use std::sync::{Condvar, Mutex};

    /// The same contract over a mutex and a condition variable.
    pub(crate) struct GroupSignal {
        word: Mutex<u32>,
        changed: Condvar,
    }

    impl GroupSignal {
        pub const fn new() -> GroupSignal {
            GroupSignal {
                word: Mutex::new(0),
                changed: Condvar::new(),
            }
        }

        pub fn value(&self) -> u32 {
            *self.word.lock().unwrap_or_else(|e| e.into_inner())
        }

        pub fn wait(&self, value: u32) {
            let word = self.word.lock().unwrap_or_else(|e| e.into_inner());
            if *word == value {
                drop(self.changed.wait(word));
            }
        }

        pub fn wake(&self, n: u32) {
            let mut word = self.word.lock().unwrap_or_else(|e| e.into_inner());
            *word = word.wrapping_add(1);
            drop(word);
            if n == 1 {
                self.changed.notify_one();
            } else {
                self.changed.notify_all();
            }
        }
    }
}

pub(crate) use imp::GroupSignal;

/// Wakes every sleeper.
pub(crate) const ALL: u32 = i32::MAX as u32;
