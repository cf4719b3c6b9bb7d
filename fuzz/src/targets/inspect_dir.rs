//! The inspection tool's walks (`engine::inspect`: `scan`, `verify`, `stats`
//! and `salvage`, what the `sessionlog` command runs) over the same damaged
//! or arbitrary directories as `open_dir`, before anything opens them.
//!
//! Whatever the files hold, none of them panics, and:
//! - `scan` reports only records that a checksum-valid record of the files
//!   carries (same session, sequence, id and type), inside their file;
//! - `verify` and `stats` count the records `scan` reports;
//! - `verify`'s verdict holds: a log opens with `TolerateTail` exactly when
//!   it calls it openable, and with `Strict` exactly when it finds no problem,
//!   and an open that fails with `Corrupt` names a file and offset where
//!   `verify` found a problem (for `TolerateTail`, one that is not a torn
//!   tail); checked by the caller, which opens the directory next, see
//!   [`Verdict`];
//! - a `salvage` that succeeds leaves a log that opens strictly, every
//!   session numbered 1..=latest, holding only carried events (up to their
//!   sequence numbers, which salvage may change), as many as it says it copied.

use std::ffi::OsString;
use std::path::Path;

use sessionlog::engine::inspect::{self, RecordInfo};
use sessionlog::{Error, Event, LogOptions, LogStore, RecoveryMode, SyncPolicy};

use super::open_dir::{read_session, same, sessions_of};

/// What `verify` said about opening the directory.
#[derive(Clone, Debug, Default)]
pub struct Verdict {
    /// `verify` gave a report (rather than an error).
    known: bool,
    /// Only torn-tail problems (or none): `TolerateTail` opens it.
    openable: bool,
    /// No problem at all: `Strict` opens it too.
    clean: bool,
    /// Where each problem is: (file name, offset, whether a torn tail).
    places: Vec<(OsString, u64, bool)>,
}

impl Verdict {
    /// Checks that opening the directory with `recovery` succeeded (`open`
    /// is `Ok`) exactly when the verdict said it would, and that a `Corrupt`
    /// failure names a place of a problem that explains it.
    pub fn check_open(&self, recovery: RecoveryMode, open: Result<(), &Error>) {
        let expected = match recovery {
            RecoveryMode::Strict => self.clean,
            RecoveryMode::TolerateTail => self.openable,
            _ => return,
        };
        let outcome = if open.is_ok() { "succeeds" } else { "fails" };
        assert!(
            !self.known || open.is_ok() == expected,
            "verify said {self:?}, but opening with {recovery:?} {outcome}"
        );
        if let (true, Err(Error::Corrupt { file, offset, .. })) = (self.known, open) {
            let only_damage = recovery == RecoveryMode::TolerateTail;
            let named = self.places.iter().any(|(name, at, torn)| {
                file.file_name() == Some(name) && at == offset && !(only_damage && *torn)
            });
            assert!(
                named,
                "opening with {recovery:?} failed at {} offset {offset}, where verify found no such problem: {self:?}",
                file.display()
            );
        }
    }
}

/// Runs every inspection over `dir`, whose checksum-valid records carry
/// exactly `carried`; returns what `verify` promised.
pub fn check(dir: &Path, carried: &[Event]) -> Verdict {
    let scanned = check_scan(dir, carried);
    let verdict = check_verify(dir, scanned.as_deref());
    check_stats(dir, scanned.as_deref());
    check_salvage(dir, carried);
    verdict
}

/// `scan`'s records, each checked against `carried` and its file's length.
fn check_scan(dir: &Path, carried: &[Event]) -> Option<Vec<RecordInfo>> {
    let mut records = Vec::new();
    inspect::scan(dir, |r| records.push(r.clone())).ok()?;
    for r in &records {
        let len = std::fs::metadata(&r.file).map_or(0, |m| m.len());
        assert!(
            r.offset.checked_add(r.len).is_some_and(|end| end <= len),
            "scan reports a record past the end of {}: {r:?}",
            r.file.display()
        );
        assert!(
            carried.iter().any(|c| c.session_id == r.session_id
                && c.id == r.event_id
                && c.event_type == r.event_type
                && c.sequence_number == Some(r.sequence)),
            "scan reports a record no checksum-valid record carries: {r:?}"
        );
    }
    Some(records)
}

fn check_verify(dir: &Path, scanned: Option<&[RecordInfo]>) -> Verdict {
    let Ok(report) = inspect::verify(dir) else {
        return Verdict::default();
    };
    if let Some(scanned) = scanned {
        assert_eq!(
            report.records,
            scanned.len() as u64,
            "verify and scan count different records"
        );
    }
    let places = report.problems.iter().map(|p| {
        let name = p.file.file_name().unwrap_or_default().to_owned();
        (name, p.offset, p.torn_tail)
    });
    Verdict {
        known: true,
        openable: report.is_openable(),
        clean: report.problems.is_empty(),
        places: places.collect(),
    }
}

fn check_stats(dir: &Path, scanned: Option<&[RecordInfo]>) {
    let Ok(stats) = inspect::stats(dir) else {
        return;
    };
    if let Some(scanned) = scanned {
        let counted: u64 = stats.segments.iter().map(|s| s.records).sum();
        assert_eq!(
            counted,
            scanned.len() as u64,
            "stats and scan count different records"
        );
    }
}

/// Salvages `dir` into a fresh directory and reads the copy back.
fn check_salvage(dir: &Path, carried: &[Event]) {
    let target = super::input::scratch_dir();
    let out = target.path().join("salvaged");
    let Ok(report) = inspect::salvage(dir, &out) else {
        return;
    };
    let opts = LogOptions {
        sync: SyncPolicy::Never,
        recovery: RecoveryMode::Strict,
        ..LogOptions::default()
    };
    let store = LogStore::open_with(&out, opts).expect("a salvaged log opens strictly");
    let mut copied = 0;
    for session in sessions_of(carried) {
        for event in read_session(&store, &session) {
            assert!(
                carried.iter().any(|c| same(c, &event, true)),
                "salvage copied an event no checksum-valid record carries: {event:?}"
            );
            copied += 1;
        }
    }
    assert_eq!(copied, report.copied, "salvage copied a different count");
    let _ = store.close();
}
