//! The one error type of sessionlog.
//!
//! Every variant says *what* went wrong and, where it applies, *where*: the
//! file and byte offset of damage on disk, the event id and its size for an
//! oversized event, the directory for a lock conflict.

use std::path::PathBuf;

/// `Result` with sessionlog's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

/// Everything that can go wrong in sessionlog.
///
/// Bad input (`InvalidArgument`, `EventTooLarge`, `InvalidTimestamp`,
/// `UnknownEventType`) never changes the store. I/O and damage errors name the
/// file (and byte offset) involved.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A caller-supplied argument is not acceptable (for example an empty session id).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),

    /// An event's encoded size is over the store's `max_event_size`.
    #[error("event {id:?} is too large: {size} bytes encoded, the limit is {limit}")]
    EventTooLarge {
        /// The id of the rejected event.
        id: String,
        /// Its encoded size in bytes.
        size: usize,
        /// The store's limit in bytes.
        limit: usize,
    },

    /// An event timestamp outside what a store can keep exactly (1677-09-21 to 2262-04-11 UTC).
    #[error(
        "event {id:?} has a timestamp outside 1677-09-21..2262-04-11 UTC that cannot be stored exactly"
    )]
    InvalidTimestamp {
        /// The id of the rejected event.
        id: String,
    },

    /// A string that names no [`EventType`](crate::EventType).
    #[error("unknown event type {0:?}")]
    UnknownEventType(String),

    /// An operating-system I/O error, with the path and the operation that failed.
    #[error("I/O error during {op} on {}: {source}", path.display())]
    Io {
        /// What was being done (`"open"`, `"write"`, `"fdatasync"`, ...).
        op: &'static str,
        /// The file or directory involved.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },

    /// Damage in a log file: a checksum failure, a bad header, a gap.
    #[error("corrupt log: {} at byte offset {offset}: {reason}", file.display())]
    Corrupt {
        /// The damaged file.
        file: PathBuf,
        /// The byte offset of the damage inside `file`.
        offset: u64,
        /// What is wrong there.
        reason: String,
    },

    /// The log directory is already open for writing (in this or another process).
    #[error("log directory {} is locked: it is already open in this or another process", dir.display())]
    Locked {
        /// The locked directory.
        dir: PathBuf,
    },

    /// The store was opened read-only (`LogStore::open_read_only`) and cannot append.
    #[error("log directory {} is open read-only: appends are not allowed", dir.display())]
    ReadOnly {
        /// The log directory.
        dir: PathBuf,
    },

    /// The store refuses writes after an earlier failure it cannot recover from
    /// in place (for example a failed `fdatasync`); reopen it to recover.
    #[error("store is failed and refuses writes until reopened: {0}")]
    Failed(String),

    /// The store, stream or runtime has been closed.
    #[error("closed: {0}")]
    Closed(String),

    /// A value could not be encoded or decoded (JSON, event fields).
    #[error("encoding error: {0}")]
    Encoding(String),

    /// A run was cancelled before it finished.
    #[error("run {0} was cancelled")]
    Cancelled(String),

    /// An operation did not finish within its timeout.
    #[error("timed out: {0}")]
    Timeout(String),

    /// The runtime's slots and queue are full.
    #[error("run queue is full: {0}")]
    QueueFull(String),

    /// A provider adapter reported an error (or panicked) while executing a run.
    #[error("adapter error: {0}")]
    Adapter(String),
}

impl Error {
    /// Builds an [`Error::Io`] from an `io::Error`, the operation and the path.
    pub fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Error {
        Error::Io {
            op,
            path: path.into(),
            source,
        }
    }

    /// Builds an [`Error::Corrupt`] naming the file and byte offset.
    pub fn corrupt(file: impl Into<PathBuf>, offset: u64, reason: impl Into<String>) -> Error {
        Error::Corrupt {
            file: file.into(),
            offset,
            reason: reason.into(),
        }
    }

    /// Builds an [`Error::InvalidArgument`].
    pub fn invalid(msg: impl Into<String>) -> Error {
        Error::InvalidArgument(msg.into())
    }
}

impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Error {
        Error::Encoding(e.to_string())
    }
}
