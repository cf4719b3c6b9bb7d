//! One writer per directory: a second open fails clearly, in this process
//! and in another one, and the directory opens again once released.

mod logstore_util;

use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex, MutexGuard};

use logstore_util::ev;
use sessionlog::{Error, LogStore, SessionStore};

const CHILD_ENV: &str = "SESSIONLOG_LOCK_CHILD_DIR";

/// Held by each test here for its whole run. Starting a child process
/// copies every open file of this process into the child until the child
/// `exec`s, and a copy of a store's `LOCK` keeps its `flock`: a test that
/// reopens a directory just after dropping its store could then find it
/// locked (seen once under load, while the child test was starting its
/// process). `open` now waits up to ~50 ms for such a lock (engine/lock.rs),
/// but a child slower than that to `exec` on a loaded machine would still
/// make these tests flaky, so they do not overlap.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Not a test on its own: the body of the child process the lock test starts
/// (this test binary, re-run with `CHILD_ENV` set). Prints what `open` did.
#[test]
fn lock_child_process() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    match LogStore::open(&dir) {
        Ok(_) => println!("CHILD:OPENED"),
        Err(Error::Locked { .. }) => println!("CHILD:LOCKED"),
        Err(e) => println!("CHILD:ERROR {e}"),
    }
}

/// Runs `lock_child_process` in a new process against `dir`; returns its verdict.
fn open_in_child(dir: &Path) -> String {
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "lock_child_process",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, dir)
        .output()
        .expect("run child");
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!(
        "child: {}",
        stdout.lines().find(|l| l.contains("CHILD:")).unwrap_or("")
    );
    stdout
        .lines()
        .find_map(|l| l.find("CHILD:").map(|i| l[i + 6..].to_string()))
        .unwrap_or_else(|| panic!("child said nothing: {stdout}"))
}

#[test]
fn a_second_open_in_this_process_fails_until_the_first_is_released() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let first = LogStore::open(dir.path()).unwrap();
    let err = LogStore::open(dir.path()).unwrap_err();
    assert!(matches!(err, Error::Locked { .. }), "{err}");
    assert!(
        err.to_string().contains(&dir.path().display().to_string()),
        "{err}"
    );
    // A read-only follower needs no lock.
    LogStore::open_read_only(dir.path()).unwrap();
    drop(first);
    let second = LogStore::open(dir.path()).unwrap();
    second.close().unwrap();
    LogStore::open(dir.path()).unwrap();
}

#[test]
fn a_shared_store_is_released_when_its_last_clone_drops() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(LogStore::open(dir.path()).unwrap());
    let clone: Arc<dyn SessionStore> = store.clone();
    drop(store);
    assert!(matches!(
        LogStore::open(dir.path()),
        Err(Error::Locked { .. })
    ));
    clone.append_event_with_sequence(ev("s", 1, 1)).unwrap();
    drop(clone);
    let again = LogStore::open(dir.path()).unwrap();
    assert_eq!(again.get_latest_sequence("s").unwrap(), 1);
}

#[test]
fn another_process_cannot_open_while_this_one_holds_the_directory() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let store = LogStore::open(dir.path()).unwrap();
    assert_eq!(open_in_child(dir.path()), "LOCKED");
    drop(store);
    assert_eq!(open_in_child(dir.path()), "OPENED");
    // And the child's lock died with it.
    LogStore::open(dir.path()).unwrap();
}
