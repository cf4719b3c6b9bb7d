//! Input checks every store makes before it changes anything.

use crate::error::{Error, Result};
use crate::event::Event;
use crate::format::event_codec;
use crate::time;

/// The default `max_event_size`: 16 MiB of encoded event.
pub const DEFAULT_MAX_EVENT_SIZE: usize = 16 * 1024 * 1024;

/// An empty session id is an error, in writes and reads alike.
pub fn validate_session_id(session_id: &str) -> Result<()> {
    if session_id.is_empty() {
        return Err(Error::invalid("session_id must not be empty"));
    }
    Ok(())
}

/// Checks what does not depend on the encoding: non-empty ids and a
/// storable timestamp. Returns the timestamp in its stored form
/// (nanoseconds since the epoch), so the encoder need not convert it again.
pub fn validate_fields(event: &Event) -> Result<i64> {
    validate_session_id(&event.session_id)
        .map_err(|_| Error::invalid(format!("event {:?} has an empty session_id", event.id)))?;
    if event.id.is_empty() {
        return Err(Error::invalid(format!(
            "an event of session {:?} has an empty id",
            event.session_id
        )));
    }
    check_nesting(event)?;
    time::to_unix_nanos(event.timestamp).ok_or_else(|| Error::InvalidTimestamp {
        id: event.id.clone(),
    })
}

/// Arrays and objects inside `data` or `metadata` may nest this deep (the
/// map itself is level 1): JSON readers, serde_json and ours, refuse to read
/// deeper text back, so a deeper event could be stored but never read.
pub const MAX_NESTING: usize = 127;

/// Refuses an event whose `data` or `metadata` nests deeper than [`MAX_NESTING`].
fn check_nesting(event: &Event) -> Result<()> {
    for (field, map) in [("data", &event.data), ("metadata", &event.metadata)] {
        if map.values().any(|v| too_deep(v, MAX_NESTING - 1)) {
            return Err(Error::invalid(format!(
                "event {:?}: {field} nests arrays/objects deeper than {MAX_NESTING} levels",
                event.id
            )));
        }
    }
    Ok(())
}

/// Whether `v` holds arrays/objects nested more than `room` deep (looks no
/// deeper than that, so a hostile value cannot exhaust the stack here).
fn too_deep(v: &serde_json::Value, room: usize) -> bool {
    use serde_json::Value;
    let children: Box<dyn Iterator<Item = &Value>> = match v {
        Value::Array(a) => Box::new(a.iter()),
        Value::Object(o) => Box::new(o.values()),
        _ => return false,
    };
    match room.checked_sub(1) {
        None => true,
        Some(left) => children.into_iter().any(|c| too_deep(c, left)),
    }
}

/// Checks an encoded size against `max_size`.
pub fn check_size(event: &Event, size: usize, max_size: usize) -> Result<()> {
    if size > max_size {
        return Err(Error::EventTooLarge {
            id: event.id.clone(),
            size,
            limit: max_size,
        });
    }
    Ok(())
}

/// Checks one event: [`validate_fields`], then its encoded size (computed
/// without encoding) against `max_size`.
pub fn validate_event(event: &Event, max_size: usize) -> Result<()> {
    validate_fields(event)?;
    check_size(event, event_codec::encoded_len(event), max_size)
}

/// Checks a whole batch before any of it is stored; one bad event rejects it all.
pub fn validate_batch(events: &[Event], max_size: usize) -> Result<()> {
    for event in events {
        validate_event(event, max_size)?;
    }
    Ok(())
}
