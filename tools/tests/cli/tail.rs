//! `tail`: the last events, and `--follow` printing what another process appends.

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use sessionlog::{Event, EventType, SessionStore};

use crate::support::*;

/// Generous: what must happen eventually, on a busy machine.
const EVENTUALLY: Duration = Duration::from_secs(15);

#[test]
fn tail_prints_the_last_n_events() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    let stored = make_log(&dir, small_segments(), &["s", "other"], 8);
    let o = run_in(&dir, &["tail", "--session", "s", "-n", "3"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let want = of_session(&stored, "s")[5..].to_vec();
    assert_eq!(parse_events(&stdout(&o)), want);
}

/// Kills the child when the test ends, however it ends.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn tail_follow_prints_events_appended_by_another_process_within_a_second() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    let stored = make_log(&dir, small_segments(), &["s"], 2);

    let mut child = bin()
        .args(["tail", path_str(&dir), "--session", "s", "--follow"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().expect("piped stdout");
    let child = KillOnDrop(child);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let next = |what: &str| -> Event {
        let line = rx
            .recv_timeout(EVENTUALLY)
            .unwrap_or_else(|_| panic!("no line for {what}"));
        serde_json::from_str(&line).unwrap()
    };
    assert_eq!(next("backlog 1"), stored[0]);
    assert_eq!(next("backlog 2"), stored[1]);

    // This test process is the other process: it appends while the child follows.
    let writer = open_writer(&dir);
    let mut latencies = Vec::new();
    for i in 0..3 {
        let appended = writer
            .append_event_with_sequence(
                Event::new("s", EventType::MessageStreamed).with_data("i", i),
            )
            .unwrap();
        let at = Instant::now();
        // Another session's events must not show up.
        writer
            .append_event_with_sequence(Event::new("other", EventType::MessageSent))
            .unwrap();
        assert_eq!(next("a live event"), appended);
        latencies.push(at.elapsed());
    }
    writer.close().unwrap();
    drop(child);
    latencies.sort();
    assert!(
        latencies[1] < Duration::from_secs(1),
        "followed events should arrive within a second: {latencies:?}"
    );
}
