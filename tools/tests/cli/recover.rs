//! `recover`: a torn tail is cut in place; damage elsewhere is left alone
//! unless salvaged into a new log, which keeps every valid record.

use std::fs::{self, OpenOptions};
use std::io::Write;

use sessionlog::{Event, LogStore, SessionStore};

use crate::support::*;

/// `verify` reports a torn tail (exit 1), then `recover` repairs it (exit
/// 0); returns what `recover` printed.
fn verify_finds_a_torn_tail_and_recover_cuts_it(dir: &std::path::Path) -> String {
    let v = run_in(dir, &["verify"]);
    assert_eq!(v.status.code(), Some(1));
    assert!(stdout(&v).contains("torn tail"), "{}", stdout(&v));
    let o = run_writer_in(dir, &["recover"]);
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(0), "{out}{}", stderr(&o));
    out
}

#[test]
fn recover_cuts_garbage_appended_to_the_tail() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    let stored = make_log(&dir, small_segments(), &["s"], 12);
    let newest = newest_segment(&dir);
    let good_len = fs::metadata(&newest).unwrap().len();
    let mut f = OpenOptions::new().append(true).open(&newest).unwrap();
    f.write_all(&[0xAB; 45]).unwrap();
    drop(f);

    let out = verify_finds_a_torn_tail_and_recover_cuts_it(&dir);
    assert!(
        out.contains("cut 45 bytes") && out.contains("clean"),
        "{out}"
    );
    assert_eq!(fs::metadata(&newest).unwrap().len(), good_len);
    assert_eq!(run_in(&dir, &["verify"]).status.code(), Some(0));
    assert_eq!(read_session(&dir, "s"), stored);
}

#[test]
fn recover_cuts_a_record_torn_in_the_middle() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    let stored = make_log(&dir, small_segments(), &["s"], 12);
    let last = records(&dir).pop().unwrap();
    let f = OpenOptions::new().write(true).open(&last.file).unwrap();
    f.set_len(last.offset + last.len / 2).unwrap();
    drop(f);

    let o = run_writer_in(&dir, &["recover"]);
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(0), "{out}{}", stderr(&o));
    assert!(
        out.contains(&format!("at byte offset {}", last.offset)),
        "{out}"
    );
    assert_eq!(run_in(&dir, &["verify"]).status.code(), Some(0));
    assert_eq!(read_session(&dir, "s"), stored[..stored.len() - 1].to_vec());
    // Nothing to do the second time.
    let again = run_writer_in(&dir, &["recover"]);
    assert_eq!(again.status.code(), Some(0));
    assert!(
        stdout(&again).contains("nothing to repair"),
        "{}",
        stdout(&again)
    );
}

#[test]
fn salvage_recovers_every_valid_record_and_never_touches_the_original() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    let out_dir = tmp.path().join("salvaged");
    let stored = make_log(&dir, small_segments(), &["a", "b"], 12);
    let recs = records(&dir);
    let victim = recs.iter().find(|r| r.segment == 2).unwrap().clone();
    flip_bit_in(&victim);
    let before = snapshot(&dir);

    // Without --salvage: the damage is reported and nothing changes.
    let o = run_writer_in(&dir, &["recover"]);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    assert!(stdout(&o).contains("--salvage"), "{}", stdout(&o));
    assert_eq!(snapshot(&dir), before);

    let o = run_writer_in(&dir, &["recover", "--salvage", path_str(&out_dir)]);
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(0), "{out}{}", stderr(&o));
    let want: Vec<_> = stored.iter().filter(|e| e.id != victim.event_id).collect();
    assert!(
        out.contains(&format!("salvaged {} events", want.len())),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "session {:?}: sequences {}",
            victim.session_id, victim.sequence
        )),
        "the loss should be reported: {out}"
    );
    assert_eq!(snapshot(&dir), before, "the original must be unchanged");
    assert_eq!(run_in(&out_dir, &["verify"]).status.code(), Some(0));

    for session in ["a", "b"] {
        let got: Vec<_> = read_session(&out_dir, session)
            .iter()
            .map(unsequenced)
            .collect();
        let want: Vec<_> = want
            .iter()
            .filter(|e| e.session_id == session)
            .map(|e| unsequenced(e))
            .collect();
        assert_eq!(got, want, "session {session}");
    }

    // A used target is refused.
    let again = run_writer_in(&dir, &["recover", "--salvage", path_str(&out_dir)]);
    assert_fails(&again, 2, &["not empty"]);
}

#[test]
fn salvage_refuses_a_directory_whose_writer_lock_is_held() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    let out_dir = tmp.path().join("salvaged");
    make_log(&dir, small_segments(), &["a"], 12);
    let victim = records(&dir).into_iter().find(|r| r.segment == 2).unwrap();
    flip_bit_in(&victim);
    // The engine's lock, as a writer holds it.
    let held = sessionlog::engine::inspect::lock_dir(&dir).unwrap();
    let o = run_in(&dir, &["recover", "--salvage", path_str(&out_dir)]);
    assert_fails(&o, 2, &["locked"]);
    assert!(!out_dir.exists(), "nothing salvaged while locked");
    drop(held);
    let o = run_writer_in(&dir, &["recover", "--salvage", path_str(&out_dir)]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
}

#[test]
fn recover_cuts_a_write_a_power_loss_tore_with_valid_records_after_its_hole() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    // Durable appends (the default policy): each record claims how far the
    // log was durable when it was made (format §3).
    let store = LogStore::open(&dir).unwrap();
    let mut stored = Vec::new();
    for i in 0..6 {
        stored.push(
            store
                .append_event_with_sequence(sample_event("s", i))
                .unwrap(),
        );
    }
    let batch: Vec<Event> = (6..16).map(|i| sample_event("s", i)).collect();
    store.append_events(batch).unwrap();
    store.close().unwrap();
    as_if_crashed(&dir);
    // The batch was one write; a power loss (before the close) kept its
    // later pages and not a sector in its middle.
    let recs = records(&dir);
    let middle = &recs[11];
    let mut bytes = fs::read(&middle.file).unwrap();
    let sector = (middle.offset as usize + 40) / 512 * 512;
    assert!(sector > recs[6].offset as usize, "inside the batch");
    bytes[sector..sector + 512].fill(0);
    fs::write(&middle.file, &bytes).unwrap();

    let out = verify_finds_a_torn_tail_and_recover_cuts_it(&dir);
    // Cut where the batch starts; then the tool's clean close ended the log
    // with a close mark (format §5).
    let cut = recs[6].offset;
    assert_eq!(fs::metadata(&middle.file).unwrap().len(), cut + 32);
    assert!(
        out.contains(&format!("cut {} bytes", bytes.len() as u64 - cut)),
        "{out}"
    );
    assert_eq!(run_in(&dir, &["verify"]).status.code(), Some(0));
    assert_eq!(
        read_session(&dir, "s"),
        stored,
        "the torn batch is cut, nothing before it"
    );
}
