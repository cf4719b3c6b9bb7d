//! Corruption: random bit flips anywhere in any file either fail the open
//! with an error naming the file and offset, or leave a log that returns only
//! events that were really written. Damage after opening is caught on read.

mod logstore_util;

use std::os::unix::fs::FileExt;
use std::path::Path;

use logstore_util::{Expected, all, copy_dir, corrupt_on_open, ev, open_small_buffered, segments};
use sessionlog::engine::inspect;
use sessionlog::{Error, LogOptions, LogStore, SessionStore};

const SESSIONS: [&str; 3] = ["a", "b", "c"];

/// A log over several small segments; returns what it holds.
fn build(dir: &Path) -> Expected {
    let store = open_small_buffered(dir, 4096);
    let mut expected = Expected::default();
    for n in 0..120u64 {
        let s = SESSIONS[(n % 3) as usize];
        if n % 10 == 0 {
            for e in store
                .append_events(vec![ev(s, n, 20), ev(s, n + 1000, 5)])
                .unwrap()
            {
                expected.add(&e);
            }
        } else {
            expected.add(
                &store
                    .append_event_with_sequence(ev(s, n, (n % 50) as usize))
                    .unwrap(),
            );
        }
    }
    store.close().unwrap();
    expected
}

/// Flips one bit at `offset` of `path`, in place.
fn flip(path: &Path, offset: u64, bit: u8) {
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    let mut b = [0u8; 1];
    f.read_exact_at(&mut b, offset).unwrap();
    b[0] ^= 1 << bit;
    f.write_all_at(&b, offset).unwrap();
}

#[test]
fn random_bit_flips_in_every_file_never_yield_a_wrong_event() {
    let dir = tempfile::tempdir().unwrap();
    let expected = build(dir.path());
    let files = segments(dir.path());
    assert!(files.len() >= 4, "several segments");
    let newest = files.last().unwrap().clone();
    let last_record = last_record_start(dir.path(), &newest);
    let (mut refused, mut opened) = (0, 0);
    for (i, file) in files.iter().enumerate() {
        let len = std::fs::metadata(file).unwrap().len();
        let flips = if i + 1 == files.len() { 60 } else { 25 };
        for k in 0..flips {
            let copy = tempfile::tempdir().unwrap();
            copy_dir(dir.path(), copy.path());
            let target = copy.path().join(file.file_name().unwrap());
            // Half the newest segment's flips land in its last record: the
            // one place a flip reads as a torn tail, cut on open. Uniform
            // flips alone would rarely reach it and leave that path untested.
            let offset = if *file == newest && k % 2 == 0 {
                last_record + rand::random::<u64>() % (len - last_record)
            } else {
                rand::random::<u64>() % len
            };
            flip(&target, offset, rand::random::<u8>() % 8);
            match LogStore::open(copy.path()) {
                Err(Error::Corrupt {
                    file,
                    offset: at,
                    reason,
                }) => {
                    assert!(
                        file.starts_with(copy.path()),
                        "names a file of the log: {}",
                        file.display()
                    );
                    assert!(at <= len && !reason.is_empty());
                    refused += 1;
                }
                Err(other) => panic!(
                    "flip at {offset} of {}: unexpected error {other}",
                    target.display()
                ),
                Ok(store) => {
                    expected.check_prefix(&store);
                    opened += 1;
                }
            }
        }
    }
    assert!(
        refused > 0 && opened > 0,
        "refused {refused}, opened {opened}"
    );
}

/// The byte offset of the last record in `segment`.
fn last_record_start(dir: &Path, segment: &Path) -> u64 {
    let mut last = None;
    inspect::scan(dir, |r| {
        if r.file == segment {
            last = Some(r.offset);
        }
    })
    .unwrap();
    last.expect("the newest segment holds records")
}

#[test]
fn damage_in_a_sealed_segment_names_the_file_and_offset() {
    let dir = tempfile::tempdir().unwrap();
    build(dir.path());
    let second = segments(dir.path())[1].clone();
    let mut records = Vec::new();
    inspect::scan(dir.path(), |r| {
        if r.file == second {
            records.push(r.clone())
        }
    })
    .unwrap();
    let victim = &records[records.len() / 2];
    flip(&second, victim.offset + victim.len - 1, 3);
    let (file, offset, reason) = corrupt_on_open(dir.path(), LogOptions::default());
    assert_eq!(file, second);
    assert_eq!(offset, victim.offset);
    assert!(reason.contains("checksum"), "{reason}");
    let report = inspect::verify(dir.path()).unwrap();
    assert!(!report.is_openable());
    assert!(
        report
            .problems
            .iter()
            .any(|p| p.file == second && p.offset == victim.offset)
    );
}

#[test]
fn a_missing_segment_is_named() {
    let dir = tempfile::tempdir().unwrap();
    build(dir.path());
    let gone = segments(dir.path())[1].clone();
    std::fs::remove_file(&gone).unwrap();
    let (file, _, _) = corrupt_on_open(dir.path(), LogOptions::default());
    assert_eq!(file, gone);
    assert!(LogStore::open_read_only(dir.path()).is_err());
}

#[test]
fn damage_after_open_is_caught_on_read_not_returned() {
    let dir = tempfile::tempdir().unwrap();
    let expected = build(dir.path());
    let store = LogStore::open(dir.path()).unwrap();
    // Bit rot in a sealed (mapped) segment and in the active (pread) one.
    let files = segments(dir.path());
    for file in [&files[0], files.last().unwrap()] {
        let mut records = Vec::new();
        inspect::scan(dir.path(), |r| {
            if &r.file == file {
                records.push(r.clone())
            }
        })
        .unwrap();
        let victim = records.last().unwrap();
        flip(file, victim.offset + victim.len - 2, 0);
        let err = store
            .get_events(&victim.session_id, &Default::default())
            .unwrap_err();
        match err {
            Error::Corrupt {
                file: f, offset, ..
            } => {
                assert_eq!(&f, file);
                assert_eq!(offset, victim.offset);
            }
            other => panic!("{other}"),
        }
    }
    // Untouched sessions still read fine, and nothing wrong was ever returned.
    for s in SESSIONS {
        if let Ok(events) = store.get_events(s, &Default::default()) {
            assert_eq!(events, expected.sessions[s]);
        }
    }
    drop(all(&store, "nobody"));
}

#[test]
fn an_id_stored_twice_is_damage() {
    // Two logs with the same event id in different sessions; splicing the
    // second's record onto the first gives a valid record whose id repeats.
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    for (dir, session) in [(&a, "x"), (&b, "y")] {
        let store = LogStore::open(dir.path()).unwrap();
        store
            .append_event_with_sequence(ev(session, 1, 3).with_id("dup"))
            .unwrap();
        store.append_event_with_sequence(ev(session, 2, 3)).unwrap();
    }
    let other = std::fs::read(&segments(b.path())[0]).unwrap();
    let body_len = u32::from_le_bytes(other[36..40].try_into().unwrap()) as usize;
    let spliced = other[32..64 + body_len].to_vec(); // just the "dup" record
    let target = segments(a.path())[0].clone();
    let len = std::fs::metadata(&target).unwrap().len();
    std::fs::OpenOptions::new()
        .append(true)
        .open(&target)
        .unwrap()
        .write_all_at(&spliced, len)
        .unwrap();
    let (file, offset, reason) = corrupt_on_open(a.path(), LogOptions::default());
    assert_eq!((file, offset), (target, len));
    assert!(reason.contains("stored twice"), "{reason}");
    let report = inspect::verify(a.path()).unwrap();
    assert!(
        report
            .problems
            .iter()
            .any(|p| p.reason.contains("more than once"))
    );
}

/// Sealed segments are scanned on a second thread ahead of their indexing;
/// what opening reports must not change: with damage in several sealed
/// segments, the error names the first in log order, and once that is
/// mended, the next.
#[test]
fn of_several_damaged_sealed_segments_the_first_is_named() {
    let dir = tempfile::tempdir().unwrap();
    build(dir.path());
    let files = segments(dir.path());
    assert!(files.len() >= 4, "three sealed segments and the newest");
    // Segment 1: a record's checksum fails.
    let victim = last_record_start(dir.path(), &files[0]);
    flip(&files[0], victim + 40, 2);
    // Segment 2: a valid header naming another segment.
    write_header(&files[1], 99);
    // Segment 3: shorter than a header, so it cannot even be mapped as one.
    let whole_third = std::fs::read(&files[2]).unwrap();
    std::fs::write(&files[2], &whole_third[..10]).unwrap();

    let (file, offset, reason) = corrupt_on_open(dir.path(), LogOptions::default());
    assert_eq!((&file, offset), (&files[0], victim), "{reason}");
    assert!(reason.contains("checksum"), "{reason}");
    flip(&files[0], victim + 40, 2);

    let (file, offset, reason) = corrupt_on_open(dir.path(), LogOptions::default());
    assert_eq!((&file, offset), (&files[1], 16), "{reason}");
    assert!(reason.contains("names segment 99"), "{reason}");
    write_header(&files[1], 2);

    let (file, offset, reason) = corrupt_on_open(dir.path(), LogOptions::default());
    assert_eq!((&file, offset), (&files[2], 0), "{reason}");
    assert!(reason.contains("sealed segment"), "{reason}");
    std::fs::write(&files[2], &whole_third).unwrap();

    let store = LogStore::open_with(dir.path(), LogOptions::default()).unwrap();
    store.close().unwrap();
}

/// Overwrites the header of the segment file `path` with a valid one naming
/// segment `number`.
fn write_header(path: &Path, number: u64) {
    let header = sessionlog::format::segment::encode_segment_header(number);
    let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    f.write_all_at(&header, 0).unwrap();
}
