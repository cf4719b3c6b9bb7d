//! `dump` and `stats`: the output reproduces the log exactly.

use std::fs;

use sessionlog::LogOptions;

use crate::support::*;

#[test]
fn dump_reproduces_appended_events_exactly() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    let stored = make_log(&dir, small_segments(), &["alpha", "beta"], 12);

    let all = run_in(&dir, &["dump"]);
    assert_eq!(all.status.code(), Some(0), "{}", stderr(&all));
    let dumped = parse_events(&stdout(&all));
    assert_eq!(dumped.len(), stored.len());
    for session in ["alpha", "beta"] {
        let (got, want) = (of_session(&dumped, session), of_session(&stored, session));
        assert_eq!(got, want, "session {session}");
    }
    // Each line is exactly what serde writes for the event.
    let first_line = stdout(&all).lines().next().unwrap().to_string();
    assert_eq!(first_line, serde_json::to_string(&stored[0]).unwrap());
}

#[test]
fn dump_filters_combine_and_limit_applies_last() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    let stored = make_log(&dir, LogOptions::default(), &["s"], 40);
    let want: Vec<_> = stored
        .iter()
        .filter(|e| {
            let seq = e.sequence_number.unwrap();
            seq > 5 && seq < 35 && e.run_id.as_deref() == Some("run-1")
        })
        .take(4)
        .cloned()
        .collect();
    let o = run_in(
        &dir,
        &[
            "dump",
            "--session",
            "s",
            "--after",
            "5",
            "--before",
            "35",
            "--run",
            "run-1",
            "--limit",
            "4",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(parse_events(&stdout(&o)), want);

    let t = stored[3].event_type.as_str();
    let since = sessionlog::timestamp::format_rfc3339(stored[10].timestamp).unwrap();
    let o = run_in(
        &dir,
        &["dump", "--session", "s", "--type", t, "--since", &since],
    );
    let want: Vec<_> = stored
        .iter()
        .filter(|e| e.event_type.as_str() == t && e.timestamp > stored[10].timestamp)
        .cloned()
        .collect();
    assert_eq!(parse_events(&stdout(&o)), want);

    let table = run_in(
        &dir,
        &[
            "dump",
            "--session",
            "s",
            "--format",
            "table",
            "--limit",
            "3",
        ],
    );
    assert_eq!(table.status.code(), Some(0));
    let text = stdout(&table);
    assert_eq!(text.lines().count(), 4, "header and three rows: {text}");
    assert!(
        text.contains(stored[0].event_type.as_str()) && text.contains("SEQ"),
        "{text}"
    );
}

#[test]
fn read_only_commands_work_while_a_writer_holds_the_log() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    let stored = make_log(&dir, small_segments(), &["s"], 10);
    let writer = open_writer(&dir);

    let dump = run_in(&dir, &["dump", "--session", "s"]);
    assert_eq!(parse_events(&stdout(&dump)), stored, "{}", stderr(&dump));
    let verify = run_in(&dir, &["verify"]);
    assert_eq!(verify.status.code(), Some(0), "{}", stdout(&verify));

    let stats = run_in(&dir, &["stats", "--sessions", "--json"]);
    assert_eq!(stats.status.code(), Some(0), "{}", stderr(&stats));
    let json: serde_json::Value = serde_json::from_str(&stdout(&stats)).unwrap();
    assert_eq!(json["total_events"], 10);
    assert_eq!(
        json["format_version"],
        sessionlog::format::segment::FORMAT_VERSION
    );
    assert_eq!(json["session_count"], 1);
    assert_eq!(json["sessions"][0]["latest_sequence"], 10);
    assert!(json["segment_count"].as_u64().unwrap() > 1, "{json}");
    let segs = json["segments"].as_array().unwrap();
    assert_eq!(segs[0]["first"]["sequence"], 1);
    assert_eq!(segs.last().unwrap()["last"]["sequence"], 10);
    assert_eq!(json["prepared"], serde_json::json!([]));
    // A live writer's next segment, prepared ahead (format §5), is listed
    // apart: it holds no events.
    let prepared = dir.join("00000000000000000099.prepared");
    fs::write(&prepared, [0u8; 64]).unwrap();
    let stats = run_in(&dir, &["stats", "--json"]);
    let json: serde_json::Value = serde_json::from_str(&stdout(&stats)).unwrap();
    assert_eq!(json["prepared"][0]["size_bytes"], 64, "{json}");
    assert_eq!(json["total_events"], 10);
    let text = stdout(&run_in(&dir, &["stats"]));
    assert!(text.contains("00000000000000000099.prepared"), "{text}");
    fs::remove_file(&prepared).unwrap();
    writer.close().unwrap();

    let text = stdout(&run_in(&dir, &["stats", "--sessions"]));
    assert!(
        text.contains(&format!(
            "format version  {}",
            sessionlog::format::segment::FORMAT_VERSION
        )) && text.contains("events          10"),
        "{text}"
    );
}
