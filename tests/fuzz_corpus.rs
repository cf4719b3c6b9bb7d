//! Replays the committed fuzz corpus (`fuzz/corpus/<target>/*`) through each
//! fuzz target's body, so the normal test run catches regressions without
//! libFuzzer. The bodies are the very files the fuzzer runs
//! (`fuzz/src/targets/`); crashes the fuzzer found live on as files in the
//! corpus and as named cases below.

#[path = "../fuzz/src/targets/mod.rs"]
#[allow(dead_code)]
mod targets;

use std::path::PathBuf;

/// Runs every corpus file of `target` through `body`, naming the file on failure.
fn replay(target: &str, body: fn(&[u8])) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("corpus {}: {e}", dir.display()))
        .map(|e| e.expect("corpus entry").path())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "corpus {} is empty", dir.display());
    for file in &files {
        let bytes = std::fs::read(file).expect("corpus file");
        if std::panic::catch_unwind(|| body(&bytes)).is_err() {
            panic!("fuzz target {target} fails on {}", file.display());
        }
    }
}

#[test]
fn decode_corpus() {
    replay("decode", targets::decode::run);
}

#[test]
fn open_dir_corpus() {
    replay("open_dir", targets::open_dir::run);
}

#[test]
fn model_corpus() {
    replay("model", targets::model::run);
}

#[test]
fn empty_and_tiny_inputs() {
    for input in [&[][..], &[0], &[1], &[0xFF; 3]] {
        targets::decode::run(input);
        targets::open_dir::run(input);
        targets::model::run(input);
    }
}

/// `model` inputs whose power loss zeroes the first sector of a four-event
/// batch and keeps the next, so valid records follow the hole: the reopen
/// must cut the batch and keep everything before it (format §6). They fail
/// when recovery ignores the records' durable claims (checked by hand).
#[test]
fn a_power_loss_inside_the_last_batch() {
    for name in ["power-loss-torn-batch-a", "power-loss-torn-batch-b"] {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("fuzz/corpus/model")
            .join(name);
        targets::model::run(&std::fs::read(&path).expect("corpus file"));
    }
}
