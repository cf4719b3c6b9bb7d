//! Helpers shared by the `logstore_*` integration tests.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use sessionlog::{Event, EventQuery, EventType, LogOptions, LogStore, SessionStore, SyncPolicy};

/// An event of `session` with a readable id and a payload of about `pad` bytes.
pub fn ev(session: &str, n: u64, pad: usize) -> Event {
    Event::new(session, EventType::MessageSent)
        .with_id(format!("{session}-{n}-{:08x}", rand::random::<u32>()))
        .with_run(format!("r{}", n % 3))
        .with_data("n", n)
        .with_data("pad", "x".repeat(pad))
}

/// Every event of `session`, oldest first.
pub fn all(store: &dyn SessionStore, session: &str) -> Vec<Event> {
    store
        .get_events(session, &EventQuery::new())
        .expect("get_events")
}

/// The segment files of a log directory, in order.
pub fn segments(dir: &Path) -> Vec<PathBuf> {
    files_ending_in(dir, "seg")
}

/// The prepared segment files (`N.prepared`, format §1) of a log directory, in order.
pub fn prepared_files(dir: &Path) -> Vec<PathBuf> {
    files_ending_in(dir, "prepared")
}

/// The files of `dir` with this extension, in order.
fn files_ending_in(dir: &Path, extension: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("read dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == extension))
        .collect();
    v.sort();
    v
}

/// Makes a cleanly closed log look like one a crash left after its last
/// sync: cuts the close mark (format §5) off the end of its newest segment.
/// Returns whether there was one. Tests that damage a log as a crash or a
/// power loss would do it first: a real crash writes no close mark.
pub fn as_if_crashed(dir: &Path) -> bool {
    let Some(newest) = segments(dir).pop() else {
        return false;
    };
    let bytes = std::fs::read(&newest).expect("read the newest segment");
    let Some(mark) = sessionlog::format::record::trailing_close_mark(&bytes) else {
        return false;
    };
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&newest)
        .expect("open");
    file.set_len(mark as u64).expect("cut the close mark");
    true
}

/// Copies every regular file of `src` into `dst` (created).
pub fn copy_dir(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst).expect("create copy");
    for e in std::fs::read_dir(src).expect("read dir") {
        let e = e.expect("entry");
        if e.file_type().expect("type").is_file() {
            std::fs::copy(e.path(), dst.join(e.file_name())).expect("copy");
        }
    }
}

/// What a test expects a log to hold: per session, the events in sequence order.
#[derive(Default, Clone)]
pub struct Expected {
    pub sessions: HashMap<String, Vec<Event>>,
}

impl Expected {
    pub fn add(&mut self, stored: &Event) {
        let v = self.sessions.entry(stored.session_id.clone()).or_default();
        assert_eq!(
            stored.sequence_number,
            Some(v.len() as u64 + 1),
            "sequence continues"
        );
        v.push(stored.clone());
    }

    /// Asserts `store` holds exactly these events.
    pub fn check(&self, store: &dyn SessionStore) {
        for (session, events) in &self.sessions {
            assert_eq!(&all(store, session), events, "session {session}");
            assert_eq!(
                store.get_latest_sequence(session).unwrap(),
                events.len() as u64
            );
        }
    }

    /// Asserts every event in `store`'s sessions is one of these, each
    /// session a prefix of what was written (nothing wrong, nothing invented).
    pub fn check_prefix(&self, store: &dyn SessionStore) -> usize {
        let mut total = 0;
        for (session, events) in &self.sessions {
            let got = all(store, session);
            assert!(
                got.len() <= events.len(),
                "session {session} has more than was written"
            );
            assert_eq!(&got[..], &events[..got.len()], "session {session}");
            total += got.len();
        }
        total
    }
}

/// Opens a writer with small segments (durable appends, the default).
pub fn open_small(dir: &Path, segment_size: u64) -> LogStore {
    open_small_with(dir, segment_size, SyncPolicy::Always)
}

/// Opens a writer with small segments and buffered appends (`Never`).
pub fn open_small_buffered(dir: &Path, segment_size: u64) -> LogStore {
    open_small_with(dir, segment_size, SyncPolicy::Never)
}

fn open_small_with(dir: &Path, segment_size: u64, sync: SyncPolicy) -> LogStore {
    let opts = LogOptions {
        sync,
        segment_size,
        ..LogOptions::default()
    };
    LogStore::open_with(dir, opts).expect("open")
}

/// Opens `dir` with `opts`, which must fail with `Error::Corrupt`; returns
/// the file, offset and reason it names (any other outcome fails the test).
pub fn corrupt_on_open(dir: &Path, opts: LogOptions) -> (PathBuf, u64, String) {
    match LogStore::open_with(dir, opts) {
        Err(sessionlog::Error::Corrupt {
            file,
            offset,
            reason,
        }) => (file, offset, reason),
        Err(other) => panic!("not a Corrupt error: {other}"),
        Ok(_) => panic!("{} opened, but it is damaged", dir.display()),
    }
}

/// This test binary run again as a child process that runs only the test
/// `name` (a child's body, which does nothing unless its environment says
/// so), with `envs` set; its stdout is read a line at a time on a thread,
/// so that a full pipe never blocks the child.
pub struct ChildTest {
    child: std::process::Child,
    reader: std::thread::JoinHandle<()>,
    /// What the child printed, a line at a time.
    pub lines: crossbeam_channel::Receiver<String>,
}

impl ChildTest {
    pub fn spawn(name: &str, envs: &[(&str, std::ffi::OsString)]) -> ChildTest {
        use std::io::BufRead;
        let mut child = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", name, "--nocapture", "--test-threads=1"])
            .envs(envs.iter().map(|(k, v)| (k, v)))
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn child");
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = crossbeam_channel::unbounded();
        let reader = std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                let _ = tx.send(line);
            }
        });
        ChildTest {
            child,
            reader,
            lines,
        }
    }

    /// SIGKILLs the child and reaps it; returns the lines it printed that
    /// were not received yet.
    pub fn kill(mut self) -> Vec<String> {
        self.child.kill().expect("SIGKILL the child");
        self.child.wait().unwrap();
        self.reader.join().unwrap();
        self.lines.try_iter().collect()
    }
}
