//! End-to-end tests of the `sessionlog` binary: each runs the built
//! executable on a real log directory and checks its output, exit code and
//! what it did (or did not do) to the files.

mod backup;
mod bad_input;
mod dump;
mod import;
mod recover;
mod support;
mod tail;
mod verify;
