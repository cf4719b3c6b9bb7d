//! [`ScanAhead`]: the sealed segments of a log scanned on a second thread,
//! one step ahead of the thread that indexes them.
//!
//! Opening a big log spends over 40% of its time checking checksums and
//! decoding record keys, and most of the rest indexing (sessions,
//! sequences, ids). The scan needs nothing from the indexing, so a scanner
//! thread walks the segments while the opening thread indexes what it has
//! found so far: on a 10M-event log, the two cores share the work.
//!
//! Nothing about *what* opening reports changes. The scanner sends, for each
//! segment in log order, its complete batches and then how its scan ended;
//! the indexer applies every batch before it looks at that end, exactly as
//! a scan on one thread would. So the first damage in log order is still the
//! one reported, with the same file and offset. When the indexer stops early
//! (an error), the channel closes and the scanner stops at its next send.
//!
//! [`ScanAhead::finish`] joins the scanner thread, on success and on error
//! alike. A scope alone waits only until the thread's work is done, not until
//! the thread has exited, so its thread-local state would be freed after the
//! open returned (LeakSanitizer in the fuzz targets reports that as a leak).

use std::path::Path;
use std::thread::{Builder, Scope, ScopedJoinHandle};

use crossbeam_channel::{Receiver, Sender, bounded};

use super::scan::{Found, ScanEnd, scan_batches};
use crate::error::{Error, Result};
use crate::format::segment::SEGMENT_HEADER_LEN;

/// Records per message: big enough to make a send rare, small enough that
/// the scanner runs at most a few MiB ahead (a message of 4096 records is
/// ~430 KB; at most `IN_FLIGHT` wait, one is being filled, one applied).
const CHUNK_RECORDS: usize = 4096;
/// Messages in flight between the scanner and the indexer.
const IN_FLIGHT: usize = 4;

/// What the scanner sends, segment after segment, in log order.
enum Scanned<'a> {
    /// Complete batches of the current segment, in order: batch `i` is
    /// `records[ends[i - 1]..ends[i]]` (the first starts at 0).
    Batches {
        records: Vec<Found<'a>>,
        ends: Vec<usize>,
    },
    /// The current segment's scan is over (the next message is the next
    /// segment's).
    End(ScanEnd),
}

/// The indexer's end of the scan: receives each segment's batches in order.
pub(crate) struct ScanAhead<'scope, 'a> {
    rx: Receiver<Scanned<'a>>,
    scanner: ScopedJoinHandle<'scope, ()>,
}

impl<'scope, 'a: 'scope> ScanAhead<'scope, 'a> {
    /// Starts scanning `segments` (each a sealed segment's bytes, header
    /// included; the indexer refuses one shorter than a header) on a thread
    /// of `scope`; fails if no thread can be started (the log in `dir`
    /// stays as it is). Call [`finish`](Self::finish) when done.
    pub fn start(
        scope: &'scope Scope<'scope, '_>,
        segments: Vec<&'a [u8]>,
        dir: &Path,
    ) -> Result<Self> {
        let (tx, rx) = bounded(IN_FLIGHT);
        let scanner = Builder::new()
            .name("sessionlog-scan".into())
            .spawn_scoped(scope, move || {
                for bytes in segments {
                    if scan_segment(bytes, &tx).is_err() {
                        return; // The indexer stopped: nothing more is wanted.
                    }
                }
            })
            .map_err(|e| Error::io("start a scanner thread", dir, e))?;
        Ok(ScanAhead { rx, scanner })
    }

    /// Stops the scan (if the indexer stopped early) and joins the scanner
    /// thread, passing on its panic if it had one.
    pub fn finish(self) {
        let ScanAhead { rx, scanner } = self;
        drop(rx); // A scanner waiting to send now gives up.
        if let Err(panic) = scanner.join() {
            std::panic::resume_unwind(panic);
        }
    }

    /// Hands the next segment's complete batches to `apply`, in order, and
    /// returns how its scan ended. Stops at the first error `apply` returns.
    pub fn segment(&self, mut apply: impl FnMut(&[Found<'a>]) -> Result<()>) -> Result<ScanEnd> {
        loop {
            match self.rx.recv() {
                Ok(Scanned::Batches { records, ends }) => {
                    let mut start = 0;
                    for end in ends {
                        apply(&records[start..end])?;
                        start = end;
                    }
                }
                Ok(Scanned::End(end)) => return Ok(end),
                // Only a panic ends the scanner early; `finish` passes it on.
                Err(_) => return Err(Error::Failed("the segment scanner stopped".into())),
            }
        }
    }
}

/// The sender was dropped: the indexer needs nothing more.
struct Disconnected;

/// Scans one segment's records and sends them, then how the scan ended.
fn scan_segment<'a>(
    bytes: &'a [u8],
    tx: &Sender<Scanned<'a>>,
) -> std::result::Result<(), Disconnected> {
    let mut records = Vec::new();
    let mut ends = Vec::new();
    // The indexer checks the header; a map shorter than one was refused before.
    let body = bytes.get(SEGMENT_HEADER_LEN..).unwrap_or(&[]);
    let scanned = scan_batches(body, SEGMENT_HEADER_LEN as u64, |batch| {
        records.extend_from_slice(batch);
        ends.push(records.len());
        if records.len() >= CHUNK_RECORDS {
            let full = Scanned::Batches {
                records: std::mem::replace(&mut records, Vec::with_capacity(CHUNK_RECORDS)),
                ends: std::mem::take(&mut ends),
            };
            tx.send(full).map_err(|_| Error::Failed(String::new()))?;
        }
        Ok(())
    });
    // `scan_batches` fails only when its callback does: the send above.
    let end = scanned.map_err(|_| Disconnected)?;
    if !records.is_empty() {
        let rest = Scanned::Batches { records, ends };
        tx.send(rest).map_err(|_| Disconnected)?;
    }
    tx.send(Scanned::End(end)).map_err(|_| Disconnected)
}
