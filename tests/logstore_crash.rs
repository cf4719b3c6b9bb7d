//! Crash test: a child process appends with `SyncPolicy::Always` from several
//! threads and prints every acknowledged append; it is killed with SIGKILL at
//! a random moment, and after every kill the log must hold every acknowledged
//! event with its sequence, with no gap and no duplicate in any session.

mod logstore_util;

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use logstore_util::{ChildTest, prepared_files};
use sessionlog::{Event, EventQuery, EventType, LogOptions, LogStore, SessionStore};

const CHILD_DIR: &str = "SESSIONLOG_CRASH_CHILD_DIR";
const CHILD_CYCLE: &str = "SESSIONLOG_CRASH_CHILD_CYCLE";
/// Set for a child that writes big events into segments big enough to be
/// prepared ahead (`N.prepared`, renamed into place at each rollover).
const CHILD_PREPARED: &str = "SESSIONLOG_CRASH_CHILD_PREPARED";
const KILL_CYCLES: u32 = 24;
const PREPARED_KILL_CYCLES: u32 = 8;
/// Set to a number to run that many kill cycles in each test instead, for a
/// soak run: `SESSIONLOG_CRASH_CYCLES=500 cargo test --release --test logstore_crash`.
const CYCLES_OVERRIDE: &str = "SESSIONLOG_CRASH_CYCLES";
const THREADS: u64 = 4;
const SESSIONS: u64 = 3;

/// Not a test on its own: the child process's body (this binary re-run with
/// `CHILD_DIR` set). Appends until killed, printing `ACK <id> <session> <seq>`
/// after each append returns.
#[test]
fn crash_child_process() {
    let Ok(dir) = std::env::var(CHILD_DIR) else {
        return;
    };
    let cycle: u64 = std::env::var(CHILD_CYCLE).unwrap().parse().unwrap();
    let prepared = std::env::var(CHILD_PREPARED).is_ok();
    // Small segments, so kills also land around segment rollovers (with
    // big events, the smallest segments that are prepared ahead).
    let opts = LogOptions {
        segment_size: if prepared { 4 << 20 } else { 32 * 1024 },
        ..LogOptions::default()
    };
    let pad = if prepared { 3500 } else { 0 };
    let store = LogStore::open_with(&dir, opts).expect("child open");
    let out = Mutex::new(std::io::stdout());
    std::thread::scope(|scope| {
        for t in 0..THREADS {
            let (store, out) = (&store, &out);
            scope.spawn(move || append_forever(store, out, (cycle, t), pad));
        }
    });
}

fn append_forever(
    store: &LogStore,
    out: &Mutex<std::io::Stdout>,
    (cycle, t): (u64, u64),
    pad: u64,
) {
    for n in 0u64.. {
        let event = |k: u64| {
            Event::new(
                format!("s{}", (n + k + t) % SESSIONS),
                EventType::MessageSent,
            )
            .with_id(format!("c{cycle}-t{t}-n{n}-k{k}"))
            .with_data("pad", "p".repeat((pad + (n * 37 + k) % 300) as usize))
        };
        // Every fifth append is a batch of three.
        let batch: Vec<Event> = (0..if n % 5 == 0 { 3 } else { 1 }).map(event).collect();
        let stored = store.append_events(batch).expect("append");
        let mut out = out.lock().unwrap();
        for e in stored {
            writeln!(
                out,
                "ACK {} {} {}",
                e.id,
                e.session_id,
                e.sequence_number.unwrap()
            )
            .unwrap();
        }
        out.flush().unwrap();
    }
}

/// One run of the child, killed `delay` after its first acknowledgement
/// (or after its start, when `wait_for_ack` is false: the kill may then land
/// while it is still recovering the log). Returns the acknowledged events it
/// printed: id -> (session, sequence).
fn run_child_and_kill(
    dir: &Path,
    (cycle, prepared): (u32, bool),
    delay: Duration,
    wait_for_ack: bool,
) -> HashMap<String, (String, u64)> {
    let mut envs = vec![
        (CHILD_DIR, dir.as_os_str().to_owned()),
        (CHILD_CYCLE, cycle.to_string().into()),
    ];
    if prepared {
        envs.push((CHILD_PREPARED, "1".into()));
    }
    let child = ChildTest::spawn("crash_child_process", &envs);
    let lines = &child.lines;
    let mut seen = Vec::new();
    if wait_for_ack {
        // Generous: a busy machine may take a while to start the child.
        while let Ok(line) = lines.recv_timeout(Duration::from_secs(60)) {
            let is_ack = line.starts_with("ACK ");
            seen.push(line);
            if is_ack {
                break;
            }
        }
    }
    std::thread::sleep(delay);
    seen.extend(child.kill());
    let mut acked = HashMap::new();
    for line in seen {
        let parts: Vec<&str> = line.split(' ').collect();
        // A line cut by the kill is not an acknowledgement anybody saw whole.
        if let ["ACK", id, session, seq] = parts[..]
            && let Ok(seq) = seq.parse()
        {
            acked.insert(id.to_string(), (session.to_string(), seq));
        }
    }
    acked
}

/// Every acknowledged event is there with its sequence; every session runs
/// 1..=n without gap; no id appears twice.
fn check(dir: &Path, acked: &HashMap<String, (String, u64)>) -> usize {
    let store = LogStore::open(dir).expect("reopen after SIGKILL");
    let mut ids = HashSet::new();
    let mut by_session: HashMap<String, Vec<String>> = HashMap::new();
    for s in 0..SESSIONS {
        let session = format!("s{s}");
        let events = store.get_events(&session, &EventQuery::new()).unwrap();
        for (i, e) in events.iter().enumerate() {
            assert_eq!(e.sequence_number, Some(i as u64 + 1), "gap in {session}");
            assert!(ids.insert(e.id.clone()), "duplicate id {}", e.id);
        }
        assert_eq!(
            store.get_latest_sequence(&session).unwrap(),
            events.len() as u64
        );
        by_session.insert(session, events.into_iter().map(|e| e.id).collect());
    }
    for (id, (session, seq)) in acked {
        let at = by_session[session].get(*seq as usize - 1);
        assert_eq!(at, Some(id), "acknowledged {id} missing at {session}/{seq}");
    }
    ids.len()
}

#[test]
fn every_acknowledged_append_survives_sigkill() {
    kill_and_check(KILL_CYCLES, false);
}

/// The same with events of about 4 KiB in 4 MiB segments: kills land while
/// the next segment is being prepared, just after it was renamed into
/// place, and while records go into it; no kill may leave anything a
/// reopen trips over, and the reopen removes a leftover prepared file.
#[test]
fn every_acknowledged_append_survives_sigkill_across_prepared_segments() {
    kill_and_check(PREPARED_KILL_CYCLES, true);
}

fn kill_and_check(cycles: u32, prepared: bool) {
    let cycles = match std::env::var(CYCLES_OVERRIDE) {
        Ok(n) => n.parse().expect("SESSIONLOG_CRASH_CYCLES is a number"),
        Err(_) => cycles,
    };
    let dir = tempfile::tempdir().unwrap();
    let mut acked = HashMap::new();
    let mut acks_per_cycle = Vec::new();
    let mut killed_with_prepared = 0;
    for cycle in 0..cycles {
        // Every fourth kill comes at a random moment after the start, which
        // may be while the child is still opening (recovering) the log.
        let wait_for_ack = cycle % 4 != 3;
        let delay = Duration::from_millis(rand::random::<u64>() % 200);
        let new = run_child_and_kill(dir.path(), (cycle, prepared), delay, wait_for_ack);
        acks_per_cycle.push(new.len());
        acked.extend(new);
        killed_with_prepared += prepared_files(dir.path()).len();
        let stored = check(dir.path(), &acked);
        assert!(stored >= acked.len());
        let left = prepared_files(dir.path()).len();
        assert_eq!(left, 0, "a reopened and closed log holds no prepared file");
    }
    eprintln!(
        "acknowledged appends per kill cycle: {acks_per_cycle:?}; \
         kills that left a prepared file: {killed_with_prepared}"
    );
    // The children did get to append (on a very slow machine some cycles may not).
    assert!(
        acked.len() > cycles as usize,
        "acks per cycle: {acks_per_cycle:?}"
    );
}
