//! The on-disk format: how events and records are laid out as bytes.
//!
//! The byte-exact specification lives in `format/README.md` at the repository
//! root; this module is its implementation. It does no I/O.

pub mod event_codec;
