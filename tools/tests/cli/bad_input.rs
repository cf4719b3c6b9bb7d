//! Bad input of every kind: a clear message on stderr, a non-zero exit, no panic.

use std::fs;

use crate::support::*;

/// Every command that takes a log directory.
const DIRECTORY_COMMANDS: [&[&str]; 5] = [
    &["stats"],
    &["verify"],
    &["dump"],
    &["tail", "--session", "s"],
    &["recover"],
];

#[test]
fn a_missing_directory_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("nope");
    for cmd in DIRECTORY_COMMANDS {
        let o = run_in(&missing, cmd);
        assert_fails(&o, 2, &["no such directory", "nope"]);
    }
    assert!(
        !missing.exists(),
        "no command may create a directory it was only asked to read"
    );
}

#[test]
fn a_directory_without_a_log_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let other = tmp.path().join("other");
    fs::create_dir(&other).unwrap();
    fs::write(other.join("notes.txt"), "hello").unwrap();
    for cmd in DIRECTORY_COMMANDS {
        let o = run_in(&other, cmd);
        assert_fails(&o, 2, &["not a sessionlog log directory"]);
    }
    let file = tmp.path().join("e.jsonl");
    fs::write(&file, "").unwrap();
    assert_fails(
        &run(&["import", path_str(&other), path_str(&file)]),
        2,
        &["neither empty nor a sessionlog"],
    );
    // A file where a directory is expected.
    assert_fails(&run(&["stats", path_str(&file)]), 2, &["not a directory"]);
}

#[test]
fn writing_commands_refuse_a_locked_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    make_log(&dir, small_segments(), &["s"], 3);
    let file = tmp.path().join("e.jsonl");
    fs::write(&file, stdout(&run_in(&dir, &["dump"]))).unwrap();
    let holder = open_writer(&dir);
    assert_fails(&run_in(&dir, &["recover"]), 2, &["locked"]);
    assert_fails(
        &run(&["import", path_str(&dir), path_str(&file)]),
        2,
        &["locked"],
    );
    holder.close().unwrap();
    assert_eq!(run_writer_in(&dir, &["recover"]).status.code(), Some(0));
}

#[test]
fn bad_flags_and_values_are_explained() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    make_log(&dir, small_segments(), &["s"], 2);
    assert_fails(&run_in(&dir, &["stats", "--bogus"]), 2, &["--bogus"]);
    assert_fails(
        &run_in(&dir, &["dump", "--type", "nope"]),
        2,
        &["unknown event type", "message_sent"],
    );
    assert_fails(
        &run_in(&dir, &["dump", "--since", "yesterday"]),
        2,
        &["RFC 3339"],
    );
    assert_fails(
        &run_in(&dir, &["dump", "--limit", "many"]),
        2,
        &["--limit", "many"],
    );
    assert_fails(&run_in(&dir, &["tail"]), 2, &["--session"]);
    assert_fails(&run(&["frobnicate"]), 2, &["frobnicate"]);
    assert_fails(
        &run(&["import", path_str(&dir), "/no/such/file.jsonl"]),
        2,
        &["/no/such/file.jsonl"],
    );
}

#[test]
fn a_damaged_file_is_an_error_naming_it_not_a_panic() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    make_log(&dir, small_segments(), &["s"], 12);
    let victim = records(&dir).into_iter().find(|r| r.segment == 1).unwrap();
    flip_bit_in(&victim);
    let name = victim
        .file
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    assert_fails(&run_in(&dir, &["dump"]), 2, &[&name]);
    assert_fails(&run_in(&dir, &["tail", "--session", "s"]), 2, &[&name]);
    // A segment cut to a few bytes: a broken header.
    fs::write(&victim.file, b"SLOG").unwrap();
    assert_fails(&run_in(&dir, &["dump", "--session", "s"]), 2, &[&name]);
    let v = run_in(&dir, &["verify"]);
    assert_eq!(v.status.code(), Some(1));
    assert!(stdout(&v).contains(&name), "{}", stdout(&v));
    // stats still reports what is readable.
    let s = run_in(&dir, &["stats"]);
    assert_eq!(s.status.code(), Some(0), "{}", stderr(&s));
    assert!(!stderr(&s).contains("panicked"));
}
