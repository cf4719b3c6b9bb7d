//! Torn tails: the newest segment cut at every byte offset inside its last
//! records opens with exactly the complete records (and complete batches);
//! damage that is not a tail is reported, not cut.

mod logstore_util;

use std::io::Write;
use std::path::Path;

use logstore_util::{Expected, copy_dir, corrupt_on_open, ev, segments};
use sessionlog::format::record::{is_close_mark_at, trailing_close_mark};
use sessionlog::{Event, LogOptions, LogStore, RecoveryMode, SessionStore};

fn set_len(path: &Path, len: u64) {
    std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .unwrap()
        .set_len(len)
        .unwrap();
}

fn append_bytes(path: &Path, bytes: &[u8]) {
    std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .unwrap()
        .write_all(bytes)
        .unwrap();
}

/// Bytes of a close mark (format §5).
const MARK: u64 = 32;

/// A log whose last appends are singles and a batch; returns, per append,
/// the end of the segment's records after it and what the log holds then.
/// The store is closed after each append: an open writer keeps zeros
/// preallocated past its records, which closing cuts off and follows with a
/// close mark, so the records end where the mark starts (the next open goes
/// on writing after the mark).
fn build(dir: &Path) -> (Vec<(u64, Expected)>, std::path::PathBuf) {
    let mut store = LogStore::open(dir).unwrap();
    let seg = segments(dir).pop().unwrap();
    let mut expected = Expected::default();
    let mut steps = vec![(std::fs::metadata(&seg).unwrap().len(), expected.clone())];
    let appends: Vec<Vec<Event>> = vec![
        vec![ev("a", 1, 30)],
        vec![ev("b", 1, 5)],
        vec![ev("a", 2, 0), ev("b", 2, 40), ev("a", 3, 3)],
        vec![ev("a", 4, 20)],
        vec![ev("c", 1, 1), ev("c", 2, 1)],
    ];
    for batch in appends {
        for e in store.append_events(batch).unwrap() {
            expected.add(&e);
        }
        store.close().unwrap();
        let bytes = std::fs::read(&seg).unwrap();
        let mark = trailing_close_mark(&bytes).expect("a clean close ends in a close mark");
        steps.push((mark as u64, expected.clone()));
        store = LogStore::open(dir).unwrap();
    }
    store.close().unwrap();
    (steps, seg)
}

#[test]
fn a_cut_at_every_offset_keeps_exactly_the_complete_records() {
    let dir = tempfile::tempdir().unwrap();
    let (steps, seg) = build(dir.path());
    let first_cut = steps[1].0 - 1;
    let full = steps.last().unwrap().0 + MARK;
    let original = std::fs::read(&seg).unwrap();
    let work = tempfile::tempdir().unwrap();
    copy_dir(dir.path(), work.path());
    let work_seg = work.path().join(seg.file_name().unwrap());
    for cut in first_cut..full {
        std::fs::write(&work_seg, &original[..cut as usize]).unwrap();
        let (end, want) = steps.iter().rev().find(|(len, _)| *len <= cut).unwrap();
        // A close mark cut short is a torn tail too; a whole one stays.
        let marked = is_close_mark_at(&original[*end as usize..], *end);
        let kept_len = &if marked && cut >= end + MARK {
            end + MARK
        } else {
            *end
        };
        let store = LogStore::open(work.path()).unwrap_or_else(|e| panic!("cut at {cut}: {e}"));
        want.check(&store);
        for s in ["a", "b", "c"] {
            let latest = want.sessions.get(s).map_or(0, Vec::len) as u64;
            assert_eq!(
                store.get_latest_sequence(s).unwrap(),
                latest,
                "cut at {cut}"
            );
        }
        // Cut back, unless what is left of the next record is all zero bytes
        // (its checksum's first byte is 0 in 1 of 256 logs): that reads as
        // preallocated space, the log's end, and stays (format §5).
        let tail_is_zeros = original[*kept_len as usize..cut as usize]
            .iter()
            .all(|&b| b == 0);
        let len = std::fs::metadata(&work_seg).unwrap().len();
        assert!(
            len == *kept_len || (tail_is_zeros && len == cut),
            "tail cut back: {len} bytes, not {kept_len} (cut at {cut})"
        );
        // Appending after the cut continues the sequences (checked at some cuts:
        // each one costs an fdatasync).
        if cut % 16 == 0 {
            let next = store.append_event_with_sequence(ev("a", 99, 1)).unwrap();
            let a_len = want.sessions.get("a").map_or(0, Vec::len) as u64;
            assert_eq!(next.sequence_number, Some(a_len + 1));
        }
    }
}

#[test]
fn a_zero_filled_or_garbage_tail_is_cut() {
    for tail in [
        vec![0u8; 4096],
        (0..3000).map(|i| (i * 7 + 3) as u8).collect(),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let (steps, seg) = build(dir.path());
        append_bytes(&seg, &tail);
        let store = LogStore::open(dir.path()).unwrap();
        steps.last().unwrap().1.check(&store);
    }
}

#[test]
fn strict_recovery_refuses_a_torn_tail_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (steps, seg) = build(dir.path());
    set_len(&seg, steps.last().unwrap().0 - 3);
    // The last append starts after the previous close's mark.
    let cut = steps[steps.len() - 2].0 + MARK;
    let before = std::fs::read(&seg).unwrap();
    let strict = LogOptions {
        recovery: RecoveryMode::Strict,
        ..LogOptions::default()
    };
    let (file, offset, _) = corrupt_on_open(dir.path(), strict);
    assert_eq!(file, seg);
    assert_eq!(offset, cut);
    assert_eq!(std::fs::read(&seg).unwrap(), before);
    // The default mode opens it.
    steps[steps.len() - 2]
        .1
        .check(&LogStore::open(dir.path()).unwrap());
}

#[test]
fn damage_followed_by_valid_records_is_not_a_tail() {
    let dir = tempfile::tempdir().unwrap();
    let (steps, seg) = build(dir.path());
    let mut bytes = std::fs::read(&seg).unwrap();
    // Inside the batch (after the close mark before it), well before the end.
    let batch_at = steps[2].0 + MARK;
    let damaged_at = batch_at as usize + 40;
    bytes[damaged_at] ^= 0x01;
    std::fs::write(&seg, &bytes).unwrap();
    let (file, offset, reason) = corrupt_on_open(dir.path(), LogOptions::default());
    assert_eq!(file, seg);
    assert_eq!(offset, batch_at, "the damaged record's offset");
    assert!(reason.contains("not a torn tail"), "{reason}");
    assert_eq!(std::fs::read(&seg).unwrap(), bytes, "nothing was cut");
}

#[test]
fn a_torn_segment_creation_is_restarted() {
    let dir = tempfile::tempdir().unwrap();
    let opts = LogOptions {
        segment_size: 2048,
        ..LogOptions::default()
    };
    let mut expected = Expected::default();
    {
        let store = LogStore::open_with(dir.path(), opts.clone()).unwrap();
        for n in 0..30 {
            expected.add(&store.append_event_with_sequence(ev("s", n, 100)).unwrap());
        }
    }
    let segs = segments(dir.path());
    assert!(segs.len() >= 3);
    // A crash right after creating the next segment: its header is torn.
    let next = dir.path().join(format!("{:020}.seg", segs.len() + 1));
    std::fs::write(&next, b"SLOGSEG").unwrap();
    let store = LogStore::open_with(dir.path(), opts).unwrap();
    expected.check(&store);
    expected.add(&store.append_event_with_sequence(ev("s", 99, 100)).unwrap());
    drop(store);
    expected.check(&LogStore::open(dir.path()).unwrap());
}
