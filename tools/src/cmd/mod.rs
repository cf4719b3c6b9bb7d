//! One module per command; each `run` returns the exit code or a [`CliError`](crate::error::CliError).

pub mod backup;
pub mod demo;
pub mod dump;
pub mod import;
pub mod recover;
pub mod stats;
pub mod tail;
pub mod verify;
