//! `import`: events keep their ids, so importing twice stores each once; a
//! bad line stores nothing.

use std::fs;

use crate::support::*;

#[test]
fn import_twice_stores_each_event_once() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    let dst = tmp.path().join("dst");
    let stored = make_log(&src, small_segments(), &["a", "b", "c"], 9);
    let file = tmp.path().join("events.jsonl");
    let dump = run_in(&src, &["dump"]);
    assert_eq!(dump.status.code(), Some(0));
    fs::write(&file, dump.stdout).unwrap();

    let n = stored.len();
    for (round, (imported, present)) in [(n, 0), (0, n)].into_iter().enumerate() {
        let o = run_writer(&[
            "import",
            path_str(&dst),
            path_str(&file),
            "--batch-size",
            "10",
        ]);
        assert_eq!(o.status.code(), Some(0), "round {round}: {}", stderr(&o));
        let want = format!("imported {imported} events, {present} already present");
        assert!(stdout(&o).contains(&want), "round {round}: {}", stdout(&o));
    }
    for session in ["a", "b", "c"] {
        let want = of_session(&stored, session);
        assert_eq!(read_session(&dst, session), want, "session {session}");
    }
    assert_eq!(run_in(&dst, &["verify"]).status.code(), Some(0));
}

#[test]
fn import_with_a_bad_line_names_it_and_stores_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    let dst = tmp.path().join("dst");
    make_log(&src, small_segments(), &["a"], 5);
    let mut text = stdout(&run_in(&src, &["dump"]));
    text.push_str("{\"id\": \"x\", \"session_id\": \"a\", \"event_type\": \"no_such_type\"}\n");
    let file = tmp.path().join("bad.jsonl");
    fs::write(&file, text).unwrap();

    let o = run(&["import", path_str(&dst), path_str(&file)]);
    assert_fails(&o, 2, &["line 6", "nothing was imported"]);
    assert!(
        read_session_if_log(&dst).is_empty(),
        "nothing may be stored"
    );

    fs::write(&file, "not json\n").unwrap();
    let o = run(&["import", path_str(&dst), path_str(&file)]);
    assert_fails(&o, 2, &["line 1"]);
}

/// The events of session `a` if `dir` holds a log at all.
fn read_session_if_log(dir: &std::path::Path) -> Vec<sessionlog::Event> {
    if dir.exists() {
        read_session(dir, "a")
    } else {
        Vec::new()
    }
}
