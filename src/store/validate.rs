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
    time::to_unix_nanos(event.timestamp).ok_or_else(|| Error::InvalidTimestamp {
        id: event.id.clone(),
    })
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
