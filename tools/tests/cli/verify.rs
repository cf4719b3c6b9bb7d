//! `verify`: clean logs pass; a flipped bit is named by file and offset;
//! nothing is ever modified.

use crate::support::*;

#[test]
fn verify_is_clean_on_a_good_log() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    make_log(&dir, small_segments(), &["a", "b"], 10);
    let o = run_in(&dir, &["verify"]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    assert!(stdout(&o).contains("clean"), "{}", stdout(&o));
    assert!(stdout(&o).contains("closed cleanly"), "{}", stdout(&o));
    // As a crash leaves it: still clean, but without a close mark.
    as_if_crashed(&dir);
    let o = run_in(&dir, &["verify", "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    let json: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(
        (&json["clean"], &json["closed_cleanly"]),
        (&true.into(), &false.into())
    );
}

#[test]
fn verify_names_the_file_and_offset_of_a_flipped_bit_and_changes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    make_log(&dir, small_segments(), &["a", "b"], 10);
    let recs = records(&dir);
    let last_segment = recs.iter().map(|r| r.segment).max().unwrap();
    assert!(last_segment >= 3, "the log should span several segments");
    // A record in the middle of a sealed segment.
    let in_first: Vec<_> = recs.iter().filter(|r| r.segment == 1).collect();
    let victim = in_first[in_first.len() / 2].clone();
    flip_bit_in(&victim);
    let before = snapshot(&dir);

    let o = run_in(&dir, &["verify"]);
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    let name = victim.file.file_name().unwrap().to_str().unwrap();
    assert!(
        out.lines()
            .any(|l| l.contains(name) && l.contains(&format!("byte offset {}", victim.offset))),
        "should name {name} at offset {}: {out}",
        victim.offset
    );

    let o = run_in(&dir, &["verify", "--json"]);
    assert_eq!(o.status.code(), Some(1));
    let json: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(json["clean"], false);
    assert_eq!(json["openable"], false);
    let problems = json["problems"].as_array().unwrap();
    assert!(
        problems
            .iter()
            .any(|p| p["offset"] == victim.offset && p["file"].as_str().unwrap().ends_with(name)),
        "{json}"
    );
    assert_eq!(
        snapshot(&dir),
        before,
        "verify must not modify the directory"
    );
}

#[test]
fn long_commands_print_no_progress_when_stderr_is_not_a_terminal() {
    // The tests capture stderr through a pipe, so it is not a terminal.
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    make_log(&dir, small_segments(), &["a", "b"], 20);
    let quiet = |o: &std::process::Output, code: i32| {
        assert_eq!(o.status.code(), Some(code), "{}{}", stdout(o), stderr(o));
        assert_eq!(stderr(o), "", "stderr should stay empty");
        assert!(!stdout(o).contains('\u{1b}'), "no escape sequences");
    };
    quiet(&run_in(&dir, &["verify"]), 0);
    quiet(&run_in(&dir, &["verify", "--json"]), 0);
    quiet(&run_in(&dir, &["stats", "--sessions"]), 0);
    // Damaged: verify still walks everything, and so does a salvage.
    let recs = records(&dir);
    flip_bit_in(recs.iter().find(|r| r.segment == 2).unwrap());
    quiet(&run_in(&dir, &["verify"]), 1);
    let out = tmp.path().join("salvaged");
    quiet(
        &run_writer_in(&dir, &["recover", "--salvage", path_str(&out)]),
        0,
    );
}
