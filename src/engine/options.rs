//! [`LogOptions`], [`SyncPolicy`] and [`RecoveryMode`]: how a `LogStore` is opened.

use std::time::Duration;

use super::io::FaultInjector;
use crate::error::{Error, Result};
use crate::store::DEFAULT_MAX_EVENT_SIZE;

/// When an append reaches stable storage.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum SyncPolicy {
    /// An append returns only once it is on stable storage (`fdatasync`),
    /// group-committed with concurrent appenders. No reader, waiter or
    /// duplicate append sees an event before it is durable. The default.
    #[default]
    Always,
    /// The OS decides when data reaches the disk. Appends are buffered in
    /// memory (visible to readers at once) and written in large chunks, at
    /// the latest after `LogOptions::flush_interval`; a process crash can
    /// lose what was not written yet, a power loss what was not synced.
    Never,
    /// Like `Never`, plus an `fdatasync` of everything appended at least
    /// every given interval: a crash loses at most about that much.
    Interval(Duration),
}

/// What opening a log does about damage it finds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum RecoveryMode {
    /// Any damage, a torn tail included, fails the open (nothing is changed).
    Strict,
    /// A torn or checksum-failing tail of the newest segment (what a crash
    /// leaves) is cut; any other damage fails the open with an error naming
    /// the file and byte offset. The default.
    #[default]
    TolerateTail,
    /// Keep every valid record: when there is damage beyond a torn tail, the
    /// log is rebuilt from every record that passes its checksum (sessions
    /// whose records were lost are renumbered contiguously after the loss),
    /// and the damaged segment files are moved into a `damaged-<n>`
    /// subdirectory. For the repair tool; see `engine::inspect::salvage`.
    Salvage,
}

/// How a [`LogStore`](crate::LogStore) is opened.
///
/// ```
/// use sessionlog::{LogOptions, SyncPolicy};
/// let opts = LogOptions { sync: SyncPolicy::Never, ..LogOptions::default() };
/// assert_eq!(opts.max_event_size, 16 * 1024 * 1024);
/// ```
#[derive(Clone, Debug)]
pub struct LogOptions {
    /// When appends reach stable storage. Default: [`SyncPolicy::Always`].
    pub sync: SyncPolicy,
    /// The largest encoded event accepted, in bytes (default 16 MiB, at most 1 GiB).
    pub max_event_size: usize,
    /// A segment is sealed and a new one started once it would grow past
    /// this many bytes (default 64 MiB; 1 KiB to 1 GiB). A batch is never
    /// split across segments, so one can end up larger.
    pub segment_size: u64,
    /// What opening does about damage. Default: [`RecoveryMode::TolerateTail`].
    pub recovery: RecoveryMode,
    /// Under `Never`/`Interval`: buffered bytes that trigger a write (default 256 KiB).
    pub write_buffer_size: usize,
    /// Under `Never`/`Interval`: the longest buffered appends wait before
    /// they are written to the file (default 10 ms).
    pub flush_interval: Duration,
    /// For stores opened read-only: how often the files are checked for new
    /// records to wake long-poll waiters and watchers (default 20 ms).
    pub refresh_interval: Duration,
    /// How many of the newest segments that this store sealed keep their
    /// pages in the page cache. Once a segment has that many newer sealed
    /// segments, its pages are unmapped and evicted (in the background), so
    /// the memory goes to the segments being written next; reading it later
    /// reads from the disk, as after a restart. `None` (the default) leaves
    /// every page to the kernel; `Some(0)` releases each segment as it is
    /// sealed. Pages another process maps stay. Only the writer releases;
    /// a read-only store ignores this.
    ///
    /// Worth setting for a log written faster than it is read back, on a VM
    /// whose host takes back the guest's free memory: there, a page-cache
    /// page not used lately costs a host fault each time it is filled. On
    /// the benchmark machine, `Some(2)` kept 64 durable appenders of 4 KiB
    /// events ~20% faster over repeated runs (BENCHMARKS.md).
    ///
    /// ```
    /// use sessionlog::LogOptions;
    /// assert_eq!(LogOptions::default().cached_sealed_segments, None);
    /// // Keep the two newest sealed segments cached, release the older ones.
    /// let opts = LogOptions { cached_sealed_segments: Some(2), ..LogOptions::default() };
    /// assert_eq!(opts.segment_size, 64 * 1024 * 1024);
    /// ```
    pub cached_sealed_segments: Option<usize>,
    /// Fault injection for tests: when set, the store's writes and syncs fail
    /// as the injector is told. `None` (the default) in real use.
    pub faults: Option<FaultInjector>,
}

impl Default for LogOptions {
    fn default() -> LogOptions {
        LogOptions {
            sync: SyncPolicy::Always,
            max_event_size: DEFAULT_MAX_EVENT_SIZE,
            segment_size: 64 * 1024 * 1024,
            recovery: RecoveryMode::TolerateTail,
            write_buffer_size: 256 * 1024,
            flush_interval: Duration::from_millis(10),
            refresh_interval: Duration::from_millis(20),
            cached_sealed_segments: None,
            faults: None,
        }
    }
}

/// The largest `segment_size` and `max_event_size`: keeps every record
/// offset below 2^32, as positions need.
pub(crate) const MAX_SEGMENT_SIZE: u64 = 1 << 30;
const MIN_SEGMENT_SIZE: u64 = 1024;
pub(crate) const MAX_EVENT_SIZE_LIMIT: usize = 1 << 30;

impl LogOptions {
    /// Checks the options; an out-of-range value is an `InvalidArgument`.
    pub(crate) fn validate(&self) -> Result<()> {
        if !(MIN_SEGMENT_SIZE..=MAX_SEGMENT_SIZE).contains(&self.segment_size) {
            return Err(Error::invalid(format!(
                "segment_size {} is outside {MIN_SEGMENT_SIZE}..={MAX_SEGMENT_SIZE}",
                self.segment_size
            )));
        }
        if self.max_event_size == 0 || self.max_event_size > MAX_EVENT_SIZE_LIMIT {
            return Err(Error::invalid(format!(
                "max_event_size {} is outside 1..={MAX_EVENT_SIZE_LIMIT}",
                self.max_event_size
            )));
        }
        if let SyncPolicy::Interval(d) = self.sync
            && d.is_zero()
        {
            return Err(Error::invalid(
                "SyncPolicy::Interval needs a nonzero interval",
            ));
        }
        Ok(())
    }
}
