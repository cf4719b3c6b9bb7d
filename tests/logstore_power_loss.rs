//! Power loss: a write that was not yet synced can reach the disk in any
//! order of its pages, so after a power loss valid records may follow a hole
//! in the last write. Records claim what was durable when they were made
//! (format §3, `durable_before`), and recovery cuts such a torn write like
//! any torn tail, while damage to bytes that were durable stays an error
//! (format §6). Also: the first record of a fresh log is byte for byte the
//! example of the format specification.

mod logstore_util;

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use logstore_util::{Expected, as_if_crashed, corrupt_on_open, ev, segments};
use sessionlog::format::record::{RECORD_HEADER_LEN, parse_header};
use sessionlog::format::segment::encode_segment_header_of_version;
use sessionlog::{Event, EventType, LogOptions, LogStore, RecoveryMode, SessionStore, SyncPolicy};

/// A log of `singles` events appended one at a time (each its own durable
/// group), then one batch of `batch` events (one group, one write), closed,
/// then its close mark cut off: as a crash right after the last sync leaves
/// it (a power loss's damage is only ever to such a log). Returns what the singles stored, what the batch stored, the newest
/// segment and the offsets of the batch's records in it.
fn singles_then_batch(
    dir: &Path,
    singles: u64,
    batch: u64,
) -> (Expected, Expected, PathBuf, Vec<usize>) {
    let store = LogStore::open(dir).unwrap();
    let mut before = Expected::default();
    for n in 0..singles {
        before.add(&store.append_event_with_sequence(ev("s", n, 50)).unwrap());
    }
    let events: Vec<Event> = (0..batch).map(|n| ev("t", n, 300)).collect();
    let mut all = before.clone();
    for e in store.append_events(events).unwrap() {
        all.add(&e);
    }
    store.close().unwrap();
    // (A segment of version 2, continued, has none: its close wrote no mark.)
    as_if_crashed(dir);
    let seg = segments(dir).pop().unwrap();
    let offsets = record_offsets(&std::fs::read(&seg).unwrap());
    let batch_offsets = offsets[offsets.len() - batch as usize..].to_vec();
    (before, all, seg, batch_offsets)
}

/// The offset of every event record of a segment's bytes (all valid; close
/// marks skipped).
fn record_offsets(bytes: &[u8]) -> Vec<usize> {
    let mut at = 32;
    let mut offsets = Vec::new();
    while at < bytes.len() {
        let header = parse_header(&bytes[at..]).unwrap();
        if !header.is_close_mark() {
            offsets.push(at);
        }
        at += header.record_len();
    }
    offsets
}

/// What a power loss can leave of the last write: one 512-byte sector in
/// the middle of the record at `at` never reached the disk (zeros), while
/// every later sector did.
fn lose_a_sector(seg: &Path, at: usize) {
    let mut bytes = std::fs::read(seg).unwrap();
    let sector = (at + RECORD_HEADER_LEN + 100) / 512 * 512;
    bytes[sector..sector + 512].fill(0);
    std::fs::write(seg, &bytes).unwrap();
}

#[test]
fn a_torn_last_write_that_valid_records_follow_is_cut_like_a_torn_tail() {
    let dir = tempfile::tempdir().unwrap();
    let (before, _, seg, batch) = singles_then_batch(dir.path(), 10, 12);
    lose_a_sector(&seg, batch[4]);
    let damaged = std::fs::read(&seg).unwrap();

    // Strict recovery refuses (it is a tear) and changes nothing.
    let strict = LogOptions {
        recovery: RecoveryMode::Strict,
        ..LogOptions::default()
    };
    let (_, offset, reason) = corrupt_on_open(dir.path(), strict);
    assert_eq!(offset, batch[0] as u64, "the cut: where the batch starts");
    assert!(reason.contains("strict"), "{reason}");
    assert_eq!(std::fs::read(&seg).unwrap(), damaged);

    // A read-only follower reads up to the tear and changes nothing either.
    let follower = LogStore::open_read_only(dir.path()).unwrap();
    before.check(&follower);
    assert_eq!(follower.get_latest_sequence("t").unwrap(), 0);
    drop(follower);
    assert_eq!(std::fs::read(&seg).unwrap(), damaged);

    // The default recovery cuts the whole torn batch: none of it was durable.
    let store = LogStore::open(dir.path()).unwrap();
    before.check(&store);
    assert_eq!(store.get_latest_sequence("t").unwrap(), 0);
    let mut after = before.clone();
    after.add(&store.append_event_with_sequence(ev("t", 0, 10)).unwrap());
    store.close().unwrap();
    after.check(&LogStore::open(dir.path()).unwrap());
}

#[test]
fn damage_to_a_record_that_was_durable_is_an_error_even_in_the_last_segment() {
    let dir = tempfile::tempdir().unwrap();
    let (_, _, seg, _) = singles_then_batch(dir.path(), 10, 3);
    let mut bytes = std::fs::read(&seg).unwrap();
    let offsets = record_offsets(&bytes);
    // The 6th single was synced before the 7th was made, which claims so.
    bytes[offsets[5] + 40] ^= 0x01;
    std::fs::write(&seg, &bytes).unwrap();
    let (file, offset, reason) = corrupt_on_open(dir.path(), LogOptions::default());
    assert_eq!(file, seg);
    assert_eq!(offset, offsets[5] as u64);
    let proof = format!("durable follows at offset {}", offsets[6]);
    assert!(reason.contains(&proof), "{reason}");
    assert!(reason.contains("not a torn tail"), "{reason}");
    assert_eq!(std::fs::read(&seg).unwrap(), bytes, "nothing was cut");
}

#[test]
fn an_older_segment_without_claims_is_continued_without_them_and_judged_as_before() {
    let dir = tempfile::tempdir().unwrap();
    // A log whose newest segment is of format version 2.
    let seg = dir.path().join(format!("{:020}.seg", 1));
    std::fs::write(&seg, encode_segment_header_of_version(1, 2)).unwrap();
    let (_, _, seg2, batch) = singles_then_batch(dir.path(), 4, 6);
    assert_eq!(seg, seg2, "continued, not rolled");
    let bytes = std::fs::read(&seg).unwrap();
    for at in record_offsets(&bytes) {
        assert_eq!(&bytes[at + 10..at + 16], &[0; 6], "no claim at {at}");
    }
    // The same tear as above: without claims it cannot be told from damage.
    lose_a_sector(&seg, batch[2]);
    let (_, _, reason) = corrupt_on_open(dir.path(), LogOptions::default());
    assert!(reason.contains("not a torn tail"), "{reason}");
}

#[test]
fn records_claim_what_was_durable_when_they_were_made() {
    let dir = tempfile::tempdir().unwrap();
    let (_, _, seg, batch) = singles_then_batch(dir.path(), 3, 4);
    let bytes = std::fs::read(&seg).unwrap();
    let claim = |at: usize| parse_header(&bytes[at..]).unwrap().durable_before as usize;
    let offsets = record_offsets(&bytes);
    // Each single was made once the one before it was durable; the batch's
    // records all once the last single was.
    assert_eq!(claim(offsets[0]), 32);
    assert_eq!(claim(offsets[1]), offsets[1]);
    assert_eq!(claim(offsets[2]), offsets[2]);
    for &at in &batch {
        assert_eq!(claim(at), batch[0], "batch record at {at}");
    }
}

#[test]
fn buffered_appends_claim_nothing_and_a_tear_among_them_is_an_error_as_before() {
    let dir = tempfile::tempdir().unwrap();
    let opts = LogOptions {
        sync: SyncPolicy::Never,
        ..LogOptions::default()
    };
    let store = LogStore::open_with(dir.path(), opts).unwrap();
    for n in 0..5 {
        store.append_event_with_sequence(ev("b", n, 20)).unwrap();
    }
    let events: Vec<Event> = (0..6).map(|n| ev("t", n, 300)).collect();
    store.append_events(events).unwrap();
    store.close().unwrap();
    let seg = segments(dir.path()).pop().unwrap();
    let bytes = std::fs::read(&seg).unwrap();
    let offsets = record_offsets(&bytes);
    for &at in &offsets {
        // Made long before they were durable: a claim would say too little.
        let claim = parse_header(&bytes[at..]).unwrap().durable_before;
        assert_eq!(claim, 0, "no claim at {at}");
    }
    // The clean close made them all durable: damage among them is damage.
    lose_a_sector(&seg, offsets[offsets.len() - 4]);
    let (_, _, reason) = corrupt_on_open(dir.path(), LogOptions::default());
    assert!(reason.contains("not a torn tail"), "{reason}");
}

/// The bytes of format/README.md's example, read from the specification.
fn spec_example() -> Vec<u8> {
    let spec = include_str!("../format/README.md");
    let block = spec.split("### Example").nth(1).unwrap();
    let block = block.split("```").nth(1).unwrap();
    let mut bytes = Vec::new();
    for line in block.lines().filter(|l| l.len() > 10) {
        let hex = line[10..].split("  ").next().unwrap();
        bytes.extend(
            hex.split_whitespace()
                .map(|b| u8::from_str_radix(b, 16).unwrap()),
        );
    }
    bytes
}

#[test]
fn a_fresh_log_with_one_event_closed_is_the_specifications_example() {
    let dir = tempfile::tempdir().unwrap();
    let store = LogStore::open(dir.path()).unwrap();
    let at = SystemTime::UNIX_EPOCH + Duration::new(1_749_983_400, 123_456_789);
    let event = Event::new("s1", EventType::RunStarted)
        .with_id("e1")
        .with_run("r1")
        .with_timestamp(at)
        .with_data("k", 1);
    store.append_event_with_sequence(event).unwrap();
    store.close().unwrap();
    let bytes = std::fs::read(segments(dir.path()).pop().unwrap()).unwrap();
    let spec = spec_example();
    assert_eq!(spec.len(), 0x8d, "header, record, close mark");
    assert_eq!(bytes, spec);
}

#[test]
fn any_sectors_of_the_last_write_lost_leave_exactly_what_was_acknowledged() {
    use rand::{Rng, SeedableRng};
    let dir = tempfile::tempdir().unwrap();
    let (before, all, seg, batch) = singles_then_batch(dir.path(), 8, 16);
    let original = std::fs::read(&seg).unwrap();
    let (first, last) = (batch[0] / 512, original.len().div_ceil(512));
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x5e55_1071);
    for round in 0..40 {
        // Each sector of the unsynced write reached the disk, or not (zeros;
        // the first may hold durable records too, so it is always kept).
        let mut bytes = original.clone();
        let mut lost = 0;
        for sector in first + 1..last {
            if rng.random_bool(0.3) {
                let end = ((sector + 1) * 512).min(bytes.len());
                bytes[sector * 512..end].fill(0);
                lost += 1;
            }
        }
        std::fs::write(&seg, &bytes).unwrap();
        let store = LogStore::open(dir.path())
            .unwrap_or_else(|e| panic!("round {round}, {lost} sectors lost: {e}"));
        if lost == 0 {
            all.check(&store);
        } else {
            before.check(&store);
            assert_eq!(store.get_latest_sequence("t").unwrap(), 0, "round {round}");
        }
        drop(store);
    }
}

#[test]
fn a_new_segment_whose_header_a_power_loss_dropped_is_started_afresh() {
    let dir = tempfile::tempdir().unwrap();
    let opts = LogOptions {
        segment_size: 4096,
        ..LogOptions::default()
    };
    let store = LogStore::open_with(dir.path(), opts.clone()).unwrap();
    let mut before = Expected::default();
    for n in 0..4 {
        before.add(&store.append_event_with_sequence(ev("s", n, 300)).unwrap());
    }
    assert_eq!(segments(dir.path()).len(), 1);
    // A batch that does not fit starts the second segment, as its first
    // write. The new segment's header is synced only with that write, so a
    // power loss may keep the batch's later sectors and lose the first one,
    // header and all.
    let events: Vec<Event> = (0..8).map(|n| ev("t", n, 300)).collect();
    store.append_events(events).unwrap();
    store.close().unwrap();
    assert!(as_if_crashed(dir.path()));
    let last = segments(dir.path()).pop().unwrap();
    assert_eq!(segments(dir.path()).len(), 2);
    let bytes = std::fs::read(&last).unwrap();
    let offsets = record_offsets(&bytes);
    let claim = |at: usize| parse_header(&bytes[at..]).unwrap().durable_before;
    assert_eq!(offsets.len(), 8, "the batch, alone in the segment");
    assert!(
        offsets.iter().all(|&at| claim(at) == 32),
        "nothing of it was durable"
    );
    let mut torn = bytes.clone();
    torn[..512].fill(0);
    std::fs::write(&last, &torn).unwrap();

    let store = LogStore::open_with(dir.path(), opts.clone()).unwrap();
    before.check(&store);
    assert_eq!(store.get_latest_sequence("t").unwrap(), 0);
    assert_eq!(
        std::fs::metadata(&last).unwrap().len(),
        32,
        "started afresh"
    );
    store.close().unwrap();

    // Without that claim (a record claiming nothing), it stays damage.
    let mut old = bytes.clone();
    old[..512].fill(0);
    let at = offsets[offsets.len() - 1];
    old[at + 10..at + 14].fill(0);
    sessionlog::format::record::seal_record(&mut old[at..]);
    std::fs::write(&last, &old).unwrap();
    let (_, offset, _) = corrupt_on_open(dir.path(), opts);
    assert_eq!(offset, 0);
}
