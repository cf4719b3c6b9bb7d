//! The event body: how one [`Event`] is laid out as bytes (format v1 to v3: the same layout).
//!
//! This is the payload of a log record and also the "encoded size" both
//! stores compare with `max_event_size`. The byte layout is specified in
//! `format/README.md` ("Event body"); in short, little-endian:
//!
//! | field        | type                  |
//! |--------------|-----------------------|
//! | event_type   | u8 (index in `EventType::ALL`) |
//! | flags        | u8 (bit 0: run_id present; others 0) |
//! | timestamp    | i64 nanoseconds since the Unix epoch |
//! | id           | u32 length + UTF-8    |
//! | session_id   | u32 length + UTF-8    |
//! | run_id       | u32 length + UTF-8, only when flag bit 0 |
//! | data         | u32 length + JSON object text |
//! | metadata     | u32 length + JSON object text |
//!
//! The sequence number is not in the body: it lives in the record header.
//! Decoding never panics on any input; it checks every length, the UTF-8, the
//! type code, the flags, the JSON and that nothing trails the last field.

use serde_json::{Map, Value};

use super::{json, json_parse};
use crate::event::{Event, EventType};
use crate::time;

/// Flag bit: a run id follows the session id.
const FLAG_RUN_ID: u8 = 0b0000_0001;
/// Bytes of the fixed part: type, flags, timestamp.
const FIXED_LEN: usize = 1 + 1 + 8;

/// Why a body could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError(pub String);

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The encoded body size of `event`, without building it.
pub fn encoded_len(event: &Event) -> usize {
    let run = event.run_id.as_ref().map_or(0, |r| 4 + r.len());
    FIXED_LEN
        + (4 + event.id.len())
        + (4 + event.session_id.len())
        + run
        + (4 + json::object_len(&event.data))
        + (4 + json::object_len(&event.metadata))
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    // Callers validated sizes against max_event_size, which is below u32::MAX.
    let len = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(bytes);
}

fn put_json(out: &mut Vec<u8>, map: &Map<String, Value>) {
    let at = out.len();
    out.extend_from_slice(&[0; 4]);
    json::write_object(map, out);
    let len = u32::try_from(out.len() - at - 4).unwrap_or(u32::MAX);
    out[at..at + 4].copy_from_slice(&len.to_le_bytes());
}

/// Appends the body of `event` to `out`. The timestamp must be storable
/// (validated before); an unstorable one is written as 0 rather than panicking.
pub fn encode_into(event: &Event, out: &mut Vec<u8>) {
    let nanos = time::to_unix_nanos(event.timestamp).unwrap_or(0);
    encode_with_timestamp(event, nanos, out);
}

/// [`encode_into`] with the timestamp already converted to `nanos` (the
/// append path has it from validation; converting a `SystemTime` is not free).
pub(crate) fn encode_with_timestamp(event: &Event, nanos: i64, out: &mut Vec<u8>) {
    out.push(event.event_type.code());
    out.push(if event.run_id.is_some() {
        FLAG_RUN_ID
    } else {
        0
    });
    out.extend_from_slice(&nanos.to_le_bytes());
    put_bytes(out, event.id.as_bytes());
    put_bytes(out, event.session_id.as_bytes());
    if let Some(run) = &event.run_id {
        put_bytes(out, run.as_bytes());
    }
    put_json(out, &event.data);
    put_json(out, &event.metadata);
}

/// The body of `event` as a new buffer.
pub fn encode(event: &Event) -> Vec<u8> {
    let mut out = Vec::with_capacity(encoded_len(event));
    encode_into(event, &mut out);
    out
}

/// A cursor over a body that checks every read.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], DecodeError> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.buf.len());
        let end = end.ok_or_else(|| {
            DecodeError(format!(
                "{what} runs past the end of the body (at byte {})",
                self.pos
            ))
        })?;
        let bytes = &self.buf[self.pos..end];
        self.pos = end;
        Ok(bytes)
    }

    fn u32(&mut self, what: &str) -> Result<usize, DecodeError> {
        let b = self.take(4, what)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
    }

    fn str(&mut self, what: &str) -> Result<&'a str, DecodeError> {
        let len = self.u32(what)?;
        let bytes = self.take(len, what)?;
        std::str::from_utf8(bytes).map_err(|_| DecodeError(format!("{what} is not valid UTF-8")))
    }

    fn json(&mut self, what: &str) -> Result<Map<String, Value>, DecodeError> {
        let len = self.u32(what)?;
        let bytes = self.take(len, what)?;
        json_parse::parse_object(bytes)
            .map_err(|e| DecodeError(format!("{what} is not a JSON object: {e}")))
    }
}

/// Parses a body's `data` or `metadata` text (a JSON object) exactly as
/// decoding does: the same map `serde_json::from_slice` gives, or an error
/// where it gives one (checked against serde_json by a fuzz target).
///
/// ```
/// use sessionlog::format::event_codec::parse_json_object;
/// let map = parse_json_object(br#"{"n":1,"s":"x"}"#)?;
/// assert_eq!(map["n"], 1);
/// assert!(parse_json_object(b"[1]").is_err());
/// # Ok::<(), sessionlog::format::event_codec::DecodeError>(())
/// ```
pub fn parse_json_object(bytes: &[u8]) -> Result<Map<String, Value>, DecodeError> {
    json_parse::parse_object(bytes).map_err(|e| DecodeError(format!("not a JSON object: {e}")))
}

/// The fields a reader needs to index a record without parsing its JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyKeys<'a> {
    /// The event's type.
    pub event_type: EventType,
    /// The event's timestamp in nanoseconds since the epoch.
    pub timestamp_nanos: i64,
    /// The event id.
    pub id: &'a str,
    /// The session id.
    pub session_id: &'a str,
    /// The run id, if any.
    pub run_id: Option<&'a str>,
}

fn decode_keys_at<'a>(r: &mut Reader<'a>) -> Result<BodyKeys<'a>, DecodeError> {
    let fixed = r.take(FIXED_LEN, "fixed header")?;
    let event_type = EventType::from_code(fixed[0])
        .ok_or_else(|| DecodeError(format!("unknown event type code {}", fixed[0])))?;
    let flags = fixed[1];
    if flags & !FLAG_RUN_ID != 0 {
        return Err(DecodeError(format!("unknown flag bits {flags:#04x}")));
    }
    let mut ts = [0u8; 8];
    ts.copy_from_slice(&fixed[2..10]);
    let id = r.str("id")?;
    let session_id = r.str("session_id")?;
    let run_id = if flags & FLAG_RUN_ID != 0 {
        Some(r.str("run_id")?)
    } else {
        None
    };
    Ok(BodyKeys {
        event_type,
        timestamp_nanos: i64::from_le_bytes(ts),
        id,
        session_id,
        run_id,
    })
}

/// A body whose keys are decoded and whose JSON is not yet: a reader checks
/// the keys first (and skips records they rule out) without decoding them twice.
#[derive(Debug, Clone, Copy)]
pub struct KeyedBody<'a> {
    /// The decoded keys.
    pub keys: BodyKeys<'a>,
    body: &'a [u8],
    /// Where the JSON fields start in `body`.
    json_at: usize,
}

impl KeyedBody<'_> {
    /// Decodes the rest of the body into an [`Event`] with `sequence_number`
    /// set to `sequence`.
    pub fn into_event(self, sequence: u64) -> Result<Event, DecodeError> {
        let mut r = Reader {
            buf: self.body,
            pos: self.json_at,
        };
        let data = r.json("data")?;
        let metadata = r.json("metadata")?;
        if r.pos != self.body.len() {
            return Err(DecodeError(format!(
                "{} unexpected bytes after the last field",
                self.body.len() - r.pos
            )));
        }
        let keys = self.keys;
        Ok(Event {
            id: keys.id.to_string(),
            session_id: keys.session_id.to_string(),
            run_id: keys.run_id.map(str::to_string),
            event_type: keys.event_type,
            timestamp: time::from_unix_nanos(keys.timestamp_nanos),
            sequence_number: Some(sequence),
            data,
            metadata,
        })
    }
}

/// Decodes the keys of a body, keeping the rest for [`KeyedBody::into_event`].
pub fn decode_keyed(body: &[u8]) -> Result<KeyedBody<'_>, DecodeError> {
    let mut r = Reader { buf: body, pos: 0 };
    let keys = decode_keys_at(&mut r)?;
    Ok(KeyedBody {
        keys,
        body,
        json_at: r.pos,
    })
}

/// Reads the keys (type, timestamp, ids) of a body without touching its JSON.
pub fn decode_keys(body: &[u8]) -> Result<BodyKeys<'_>, DecodeError> {
    decode_keyed(body).map(|b| b.keys)
}

/// Decodes a whole body into an [`Event`] with `sequence_number` set to `sequence`.
pub fn decode(body: &[u8], sequence: u64) -> Result<Event, DecodeError> {
    decode_keyed(body)?.into_event(sequence)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Event {
        let mut e = Event::new("séssion", EventType::ToolCallCompleted).with_run("r-1");
        e.data.insert(
            "nested".into(),
            serde_json::json!({"a": [1, 2.5, null, "ü"]}),
        );
        e.metadata.insert("provider".into(), "mock".into());
        e
    }

    #[test]
    fn body_round_trips_and_len_is_exact() {
        let e = sample();
        let body = encode(&e);
        assert_eq!(body.len(), encoded_len(&e));
        let back = decode(&body, 7).unwrap();
        assert_eq!(
            back,
            Event {
                sequence_number: Some(7),
                ..e
            }
        );
    }

    #[test]
    fn every_truncation_and_trailing_byte_is_an_error() {
        let body = encode(&sample());
        for cut in 0..body.len() {
            assert!(decode(&body[..cut], 1).is_err(), "cut at {cut}");
        }
        let mut longer = body.clone();
        longer.push(0);
        assert!(decode(&longer, 1).is_err());
    }

    #[test]
    fn keys_are_read_without_json() {
        let e = sample();
        let body = encode(&e);
        let keys = decode_keys(&body).unwrap();
        assert_eq!(keys.id, e.id);
        assert_eq!(keys.session_id, "séssion");
        assert_eq!(keys.run_id, Some("r-1"));
        assert_eq!(keys.event_type, EventType::ToolCallCompleted);
    }
}
