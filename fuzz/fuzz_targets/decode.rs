#![no_main]
//! cargo-fuzz entry point; the body is `sessionlog_fuzz::targets::decode::run`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| sessionlog_fuzz::targets::decode::run(data));
