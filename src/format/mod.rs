//! The on-disk format: how events and records are laid out as bytes.
//!
//! The byte-exact specification lives in `format/README.md` at the repository
//! root; this module is its implementation. It does no I/O.
//!
//! - [`segment`]: segment file names and the segment header;
//! - [`record`]: the record header (length, checksum, sequence, batch flag);
//! - [`event_codec`]: the event body a record carries.

#[cfg(test)]
mod arbitrary_json;
pub mod event_codec;
mod json;
mod json_parse;
pub mod record;
pub mod segment;
