//! One module per fuzz target; each `run(&[u8])` panics on any violation.
//!
//! - [`decode`]: the event body, record and segment header decoders;
//! - [`open_dir`]: opening a log directory whose segment files hold arbitrary
//!   or damaged bytes, after the inspection tool's walks over the same files
//!   ([`inspect_dir`]);
//! - [`model`]: random operations, reopens and crashes against `LogStore`,
//!   compared with the reference model.

pub mod decode;
pub mod input;
pub mod inspect_dir;
pub mod model;
pub mod open_dir;
