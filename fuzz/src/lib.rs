//! The bodies of sessionlog's fuzz targets, kept in `targets/` so that the
//! root crate's `tests/fuzz_corpus.rs` replays the committed corpus through
//! the very same code without libFuzzer.

pub mod targets;
