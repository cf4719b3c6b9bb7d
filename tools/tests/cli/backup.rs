//! `backup`: a checked copy of a log, taken while its writer has it open;
//! the source is never modified, and a failed backup leaves no destination.

use crate::support::*;

#[test]
fn backup_copies_a_log_its_writer_has_open_and_changes_nothing_there() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, dest) = (tmp.path().join("log"), tmp.path().join("copy"));
    let stored = make_log(&dir, small_segments(), &["a", "b"], 10);
    let writer = open_writer(&dir); // holds the lock, as a running application does
    let before = snapshot(&dir);
    let o = run(&["backup", path_str(&dir), path_str(&dest), "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    let json: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(json["records"], 20, "{json}");
    assert_eq!(snapshot(&dir), before, "the source is not modified");
    drop(writer);
    for s in ["a", "b"] {
        assert_eq!(
            read_session(&dest, s),
            of_session(&stored, s),
            "session {s}"
        );
    }
    let o = run_in(&dest, &["verify"]);
    assert!(stdout(&o).contains("closed cleanly"), "{}", stdout(&o));
    let o = run(&["backup", path_str(&dir), path_str(&tmp.path().join("c2"))]);
    assert!(stdout(&o).contains("20 records"), "{}", stdout(&o));
}

#[test]
fn backup_refuses_a_busy_destination_and_names_damage_in_the_source() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, dest) = (tmp.path().join("log"), tmp.path().join("copy"));
    make_log(&dir, small_segments(), &["a", "b"], 10);
    std::fs::create_dir(&dest).unwrap();
    std::fs::write(dest.join("x"), b"x").unwrap();
    let o = run(&["backup", path_str(&dir), path_str(&dest)]);
    assert_fails(&o, 2, &["not an empty directory"]);
    std::fs::remove_dir_all(&dest).unwrap();
    let victim = records(&dir).into_iter().find(|r| r.segment == 1).unwrap();
    flip_bit_in(&victim);
    let o = run(&["backup", path_str(&dir), path_str(&dest)]);
    let name = victim.file.file_name().unwrap().to_str().unwrap();
    assert_fails(&o, 2, &[name, "byte offset"]);
    assert!(!dest.exists(), "no destination after a failed backup");
    let o = run(&[
        "backup",
        path_str(&tmp.path().join("nothing")),
        path_str(&dest),
    ]);
    assert_fails(&o, 2, &["nothing"]);
}
