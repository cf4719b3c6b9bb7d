//! The inspect tools: scan, verify, stats and salvage, and opening with
//! `RecoveryMode::Salvage`.

mod logstore_util;

use std::ffi::OsString;
use std::path::Path;

use logstore_util::{Expected, all, ev, open_small_buffered, segments};
use sessionlog::engine::inspect;
use sessionlog::{Error, LogOptions, LogStore, RecoveryMode, SessionStore, SyncPolicy};

fn build(dir: &Path) -> Expected {
    let store = open_small_buffered(dir, 4096);
    let mut expected = Expected::default();
    for n in 0..90u64 {
        let s = ["a", "b", "c"][(n % 3) as usize];
        expected.add(&store.append_event_with_sequence(ev(s, n, 40)).unwrap());
    }
    store.close().unwrap();
    expected
}

/// Breaks the checksum of the `k`-th record of the second segment; returns it.
fn damage_second_segment(dir: &Path, k: usize) -> inspect::RecordInfo {
    let second = segments(dir)[1].clone();
    let mut records = Vec::new();
    inspect::scan(dir, |r| {
        if r.file == second {
            records.push(r.clone())
        }
    })
    .unwrap();
    let victim = records[k].clone();
    let mut bytes = std::fs::read(&second).unwrap();
    bytes[(victim.offset + victim.len - 1) as usize] ^= 0x40;
    std::fs::write(&second, bytes).unwrap();
    victim
}

#[test]
fn verify_and_stats_describe_a_clean_log() {
    let dir = tempfile::tempdir().unwrap();
    let expected = build(dir.path());
    let report = inspect::verify(dir.path()).unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert_eq!(report.records, 90);
    assert_eq!(report.segments, segments(dir.path()).len() as u64);
    let stats = inspect::stats(dir.path()).unwrap();
    assert_eq!(stats.segments.len(), segments(dir.path()).len());
    assert_eq!(stats.segments.iter().map(|s| s.records).sum::<u64>(), 90);
    assert_eq!(stats.segments[0].first, Some(("a".to_string(), 1)));
    for s in &stats.sessions {
        assert_eq!(s.events, expected.sessions[&s.session_id].len() as u64);
        assert_eq!(s.latest_sequence, s.events);
    }
    let mut seen = 0;
    inspect::scan(dir.path(), |r| {
        seen += 1;
        assert!(r.offset >= 32 && r.len > 32);
    })
    .unwrap();
    assert_eq!(seen, 90);
}

#[test]
fn verify_reports_damage_with_file_and_offset_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    build(dir.path());
    let victim = damage_second_segment(dir.path(), 2);
    let before: Vec<Vec<u8>> = segments(dir.path())
        .iter()
        .map(|p| std::fs::read(p).unwrap())
        .collect();
    let report = inspect::verify(dir.path()).unwrap();
    let p = report
        .problems
        .iter()
        .find(|p| !p.torn_tail)
        .expect("a problem");
    assert_eq!(
        (p.file.clone(), p.offset),
        (victim.file.clone(), victim.offset)
    );
    assert!(p.to_string().contains(&victim.offset.to_string()));
    // The chain check notices the hole the skipped record leaves.
    assert!(report.problems.iter().any(|p| {
        p.reason
            .contains(&format!("session {:?}", victim.session_id))
    }));
    let after: Vec<Vec<u8>> = segments(dir.path())
        .iter()
        .map(|p| std::fs::read(p).unwrap())
        .collect();
    assert_eq!(before, after);
}

#[test]
fn salvage_copies_every_valid_record_and_reports_the_loss() {
    let dir = tempfile::tempdir().unwrap();
    let expected = build(dir.path());
    let victim = damage_second_segment(dir.path(), 1);
    let dst = tempfile::tempdir().unwrap();
    let report = inspect::salvage(dir.path(), dst.path().join("new")).unwrap();
    assert_eq!(report.copied, 89);
    let lost = &report.lost;
    assert_eq!(lost.len(), 1);
    assert_eq!(
        (lost[0].session_id.as_str(), lost[0].first, lost[0].last),
        (victim.session_id.as_str(), victim.sequence, victim.sequence)
    );
    assert_eq!(report.renumbered.len(), 1);
    assert_eq!(report.renumbered[0].original, victim.sequence + 1);
    assert_eq!(report.renumbered[0].now, victim.sequence);
    let store = LogStore::open(dst.path().join("new")).unwrap();
    for (s, events) in &expected.sessions {
        let got = all(&store, s);
        let want: Vec<_> = events.iter().filter(|e| e.id != victim.event_id).collect();
        assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(want) {
            assert_eq!((&g.id, &g.data, g.timestamp), (&w.id, &w.data, w.timestamp));
        }
    }
    assert!(
        inspect::verify(dst.path().join("new"))
            .unwrap()
            .problems
            .is_empty()
    );
    // A target that already holds a log is refused.
    assert!(matches!(
        inspect::salvage(dir.path(), dst.path().join("new")),
        Err(Error::InvalidArgument(_))
    ));
}

#[test]
fn salvage_recovery_mode_repairs_in_place_and_keeps_the_damaged_files() {
    let dir = tempfile::tempdir().unwrap();
    let expected = build(dir.path());
    let victim = damage_second_segment(dir.path(), 0);
    assert!(matches!(
        LogStore::open(dir.path()),
        Err(Error::Corrupt { .. })
    ));
    let opts = LogOptions {
        recovery: RecoveryMode::Salvage,
        ..LogOptions::default()
    };
    let store = LogStore::open_with(dir.path(), opts).unwrap();
    let total: usize = ["a", "b", "c"].iter().map(|s| all(&store, s).len()).sum();
    assert_eq!(total, 89);
    let next = store
        .append_event_with_sequence(ev(&victim.session_id, 7, 1))
        .unwrap();
    assert_eq!(
        next.sequence_number,
        Some(expected.sessions[&victim.session_id].len() as u64)
    );
    drop(store);
    assert!(
        dir.path()
            .join("damaged-1")
            .join(victim.file.file_name().unwrap())
            .exists()
    );
    let store = LogStore::open(dir.path()).unwrap();
    assert_eq!(
        store.get_latest_sequence(&victim.session_id).unwrap(),
        next.sequence_number.unwrap()
    );
}

#[test]
fn an_interrupted_in_place_salvage_is_finished_by_the_next_open() {
    let dir = tempfile::tempdir().unwrap();
    build(dir.path());
    damage_second_segment(dir.path(), 0);
    // What `RecoveryMode::Salvage` does, stopped by a "crash" after the commit
    // point, with only some of the old segments moved away.
    let ready = dir.path().join("salvage.ready");
    inspect::salvage(dir.path(), &ready).unwrap();
    let want: Vec<_> = {
        let copy = tempfile::tempdir().unwrap();
        for seg in segments(&ready) {
            std::fs::copy(&seg, copy.path().join(seg.file_name().unwrap())).unwrap();
        }
        let store = LogStore::open(copy.path()).unwrap();
        ["a", "b", "c"].iter().map(|s| all(&store, s)).collect()
    };
    let damaged = dir.path().join("damaged-1");
    std::fs::create_dir(&damaged).unwrap();
    let old = segments(dir.path());
    for seg in &old[..old.len() / 2] {
        std::fs::rename(seg, damaged.join(seg.file_name().unwrap())).unwrap();
    }
    // A read-only open refuses the half-swapped directory; a writer finishes it.
    assert!(LogStore::open_read_only(dir.path()).is_err());
    let store = LogStore::open(dir.path()).unwrap();
    let got: Vec<_> = ["a", "b", "c"].iter().map(|s| all(&store, s)).collect();
    assert_eq!(got, want);
    assert!(!ready.exists());
    assert!(inspect::verify(dir.path()).unwrap().problems.is_empty());
}

/// Checks the documented progress contract: first 0, strictly increasing,
/// a constant total, last == total == the segment files' sizes.
fn assert_progress(calls: &[inspect::Progress], dir: &Path) {
    let total: u64 = segments(dir)
        .iter()
        .map(|p| std::fs::metadata(p).unwrap().len())
        .sum();
    assert!(!calls.is_empty());
    assert_eq!(calls[0].bytes_done, 0);
    assert!(calls.iter().all(|p| p.bytes_total == total), "{calls:?}");
    assert!(
        calls.windows(2).all(|w| w[0].bytes_done < w[1].bytes_done),
        "{calls:?}"
    );
    assert_eq!(calls.last().unwrap().bytes_done, total);
}

#[test]
fn progress_variants_report_increasing_bytes_up_to_the_total() {
    let dir = tempfile::tempdir().unwrap();
    build(dir.path());
    let n_segments = segments(dir.path()).len();
    assert!(n_segments >= 3);

    let mut calls = Vec::new();
    let report = inspect::verify_with_progress(dir.path(), |p| calls.push(p)).unwrap();
    assert_eq!(report, inspect::verify(dir.path()).unwrap());
    assert_progress(&calls, dir.path());
    // Small segments: one report per segment, after the initial one.
    assert_eq!(calls.len(), n_segments + 1);

    let mut calls = Vec::new();
    let stats = inspect::stats_with_progress(dir.path(), |p| calls.push(p)).unwrap();
    assert_eq!(stats, inspect::stats(dir.path()).unwrap());
    assert_progress(&calls, dir.path());

    // On a damaged log too, and for salvage (over the source's bytes).
    damage_second_segment(dir.path(), 1);
    let mut calls = Vec::new();
    let report = inspect::verify_with_progress(dir.path(), |p| calls.push(p)).unwrap();
    assert!(!report.problems.is_empty());
    assert_progress(&calls, dir.path());
    let dst = tempfile::tempdir().unwrap();
    let mut calls = Vec::new();
    let report =
        inspect::salvage_with_progress(dir.path(), dst.path().join("new"), |p| calls.push(p))
            .unwrap();
    assert_eq!(report.copied, 89);
    assert_progress(&calls, dir.path());
}

#[test]
fn progress_is_reported_every_few_mib_inside_a_large_segment() {
    let dir = tempfile::tempdir().unwrap();
    let opts = LogOptions {
        sync: SyncPolicy::Never,
        ..LogOptions::default()
    };
    let store = LogStore::open_with(dir.path(), opts).unwrap();
    // About 10 MiB in one (64 MiB) segment.
    for n in 0..160u64 {
        let batch: Vec<_> = (0..16).map(|k| ev("big", n * 16 + k, 4000)).collect();
        store.append_events(batch).unwrap();
    }
    store.close().unwrap();
    assert_eq!(segments(dir.path()).len(), 1);
    let mut calls = Vec::new();
    inspect::verify_with_progress(dir.path(), |p| calls.push(p)).unwrap();
    assert_progress(&calls, dir.path());
    assert!(calls.len() >= 3, "{calls:?}");
}

#[test]
fn progress_on_a_log_without_segments_is_one_report_of_zero() {
    let dir = tempfile::tempdir().unwrap();
    let mut calls = Vec::new();
    let report = inspect::verify_with_progress(dir.path(), |p| calls.push(p)).unwrap();
    assert_eq!(report, inspect::VerifyReport::default());
    assert_eq!(calls, vec![inspect::Progress::default()]);
    let mut calls = Vec::new();
    inspect::stats_with_progress(dir.path(), |p| calls.push(p)).unwrap();
    assert_eq!(calls, vec![inspect::Progress::default()]);
}

#[test]
fn lock_dir_conflicts_with_an_open_store_and_is_released_on_drop() {
    let dir = tempfile::tempdir().unwrap();
    let store = LogStore::open(dir.path()).unwrap();
    assert!(matches!(
        inspect::lock_dir(dir.path()),
        Err(Error::Locked { dir: d }) if d == dir.path()
    ));
    store.close().unwrap();

    let guard = inspect::lock_dir(dir.path()).unwrap();
    assert!(dir.path().join(inspect::LOCK_FILE_NAME).exists());
    assert!(matches!(
        LogStore::open(dir.path()),
        Err(Error::Locked { .. })
    ));
    assert!(matches!(
        inspect::lock_dir(dir.path()),
        Err(Error::Locked { .. })
    ));
    // Readers are not kept out.
    LogStore::open_read_only(dir.path()).unwrap();
    inspect::verify(dir.path()).unwrap();
    drop(guard);

    LogStore::open(dir.path()).unwrap().close().unwrap();
    // A missing directory is an error, not a panic (and nothing is created).
    let missing = dir.path().join("missing");
    assert!(inspect::lock_dir(&missing).is_err());
    assert!(!missing.exists());
}

#[test]
fn format_version_comes_from_the_segment_headers() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(inspect::format_version(dir.path()).unwrap(), None);
    build(dir.path());
    let v = sessionlog::format::segment::FORMAT_VERSION;
    assert_eq!(inspect::format_version(dir.path()).unwrap(), Some(v));
    let stats = inspect::stats(dir.path()).unwrap();
    assert_eq!(stats.format_version(), Some(v));
    assert!(stats.segments.iter().all(|s| s.format_version == Some(v)));

    // A damaged first header: the next readable one answers; stats says
    // which segment's header is unreadable.
    let segs = segments(dir.path());
    let mut first = std::fs::read(&segs[0]).unwrap();
    first[3] ^= 0xff;
    std::fs::write(&segs[0], &first).unwrap();
    assert_eq!(inspect::format_version(dir.path()).unwrap(), Some(v));
    let stats = inspect::stats(dir.path()).unwrap();
    assert_eq!(stats.segments[0].format_version, None);
    assert_eq!(stats.segments[1].format_version, Some(v));
    assert_eq!(stats.format_version(), Some(v));

    // A well-formed header of another version is named, though not readable.
    let unknown = v + 1;
    let header = sessionlog::format::segment::encode_segment_header_of_version(1, unknown);
    first[..32].copy_from_slice(&header);
    std::fs::write(&segs[0], &first).unwrap();
    assert_eq!(inspect::format_version(dir.path()).unwrap(), Some(unknown));
    assert!(inspect::stats(dir.path()).is_err());

    // Only headers that are too short or garbage: no version.
    let other = tempfile::tempdir().unwrap();
    std::fs::write(other.path().join("00000000000000000001.seg"), b"SLOG").unwrap();
    assert_eq!(inspect::format_version(other.path()).unwrap(), None);
}

/// A small deterministic generator for the damage below (xorshift64*).
struct Dice(u64);

impl Dice {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n.max(1)
    }
}

/// Damages the log in `dir` once, as `dice` says: a bit flipped anywhere, the
/// newest segment cut short, or a 512-byte sector of it zeroed.
fn damage_once(dir: &Path, dice: &mut Dice) {
    let files = segments(dir);
    let kind = dice.below(3);
    let file = if kind == 0 {
        files[dice.below(files.len() as u64) as usize].clone()
    } else {
        files.last().unwrap().clone()
    };
    let mut bytes = std::fs::read(&file).unwrap();
    if bytes.is_empty() {
        return;
    }
    let at = dice.below(bytes.len() as u64) as usize;
    match kind {
        0 => bytes[at] ^= 1 << dice.below(8),
        1 => bytes.truncate(at),
        _ => {
            let start = at / 512 * 512;
            let end = (start + 512).min(bytes.len());
            bytes[start..end].fill(0);
        }
    }
    std::fs::write(&file, bytes).unwrap();
}

/// Opens a copy of the log in `dir` with `recovery`: `Ok` if it opens, else
/// the file name and offset its `Corrupt` error names; any other error fails
/// the test.
fn opens(dir: &Path, recovery: RecoveryMode) -> Result<(), (OsString, u64)> {
    let copy = tempfile::tempdir().unwrap();
    logstore_util::copy_dir(dir, copy.path());
    let opts = LogOptions {
        recovery,
        segment_size: 4096,
        ..LogOptions::default()
    };
    match LogStore::open_with(copy.path(), opts) {
        Ok(store) => {
            store.close().unwrap();
            Ok(())
        }
        Err(Error::Corrupt { file, offset, .. }) => {
            assert!(file.starts_with(copy.path()), "{file:?} is not in the log");
            Err((file.file_name().unwrap().to_owned(), offset))
        }
        Err(e) => panic!("open failed with something other than Corrupt: {e}"),
    }
}

/// `verify`'s verdict is what opening does: a log it calls openable opens
/// with `TolerateTail` and one it finds clean opens with `Strict`, and the
/// other way round, over a few hundred random damages of buffered and
/// durable logs (the `sessionlog verify` command prints this verdict).
#[test]
fn verify_predicts_whether_the_log_opens() {
    for (sync, seed) in [(SyncPolicy::Never, 7), (SyncPolicy::Always, 11)] {
        let base = tempfile::tempdir().unwrap();
        let store = LogStore::open_with(
            base.path(),
            LogOptions {
                sync,
                segment_size: 4096,
                ..LogOptions::default()
            },
        )
        .unwrap();
        for n in 0..60u64 {
            let s = ["a", "b", "c"][(n % 3) as usize];
            store.append_event_with_sequence(ev(s, n, 40)).unwrap();
        }
        if sync == SyncPolicy::Always {
            // Left as a crash leaves it: the newest segment keeps its
            // preallocated zeros (the leaked store holds only its own LOCK).
            std::mem::forget(store);
        } else {
            store.close().unwrap();
        }
        let mut dice = Dice(seed);
        let mut verdicts = [0; 3];
        for trial in 0..150 {
            let dir = tempfile::tempdir().unwrap();
            logstore_util::copy_dir(base.path(), dir.path());
            for _ in 0..=dice.below(2) {
                damage_once(dir.path(), &mut dice);
            }
            let report = inspect::verify(dir.path()).unwrap();
            let context = format!("{sync:?} trial {trial}: {:?}", report.problems);
            let tolerant = opens(dir.path(), RecoveryMode::TolerateTail);
            let strict = opens(dir.path(), RecoveryMode::Strict);
            assert_eq!(
                report.is_openable(),
                tolerant.is_ok(),
                "TolerateTail, {context}"
            );
            assert_eq!(
                report.problems.is_empty(),
                strict.is_ok(),
                "Strict, {context}"
            );
            // Where an open fails, verify names that place too (file and
            // offset), as damage the tolerant open cannot cut or, for the
            // strict open, any problem at all.
            for (failed, only_damage) in [(tolerant, true), (strict, false)] {
                let Err((file, offset)) = failed else {
                    continue;
                };
                let named = report.problems.iter().any(|p| {
                    p.file.file_name() == Some(&*file)
                        && p.offset == offset
                        && !(only_damage && p.torn_tail)
                });
                assert!(named, "open failed at {file:?} offset {offset}, {context}");
            }
            verdicts
                [usize::from(report.is_openable()) + usize::from(report.problems.is_empty())] += 1;
        }
        // Both verdicts on damage (refused, only a torn tail) came up often
        // (the third, clean, only when the damage missed every record).
        eprintln!("{sync:?}: refused, torn tail, clean: {verdicts:?}");
        assert!(
            verdicts[..2].iter().all(|&n| n >= 20),
            "{sync:?}: {verdicts:?}"
        );
    }
}
