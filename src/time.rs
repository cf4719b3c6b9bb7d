//! Timestamps: `SystemTime` <-> nanoseconds since the Unix epoch (the stored
//! form) and <-> RFC 3339 text (the JSON form).
//!
//! A stored timestamp is an `i64` of nanoseconds, which covers 1677-09-21 to
//! 2262-04-11 exactly; a time outside that range is rejected at append rather
//! than rounded.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chrono::{DateTime, SecondsFormat, Utc};

/// Nanoseconds since the Unix epoch, or `None` when `t` does not fit an `i64`.
pub fn to_unix_nanos(t: SystemTime) -> Option<i64> {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_nanos()).ok(),
        Err(e) => {
            let before = i128::try_from(e.duration().as_nanos()).ok()?;
            i64::try_from(-before).ok()
        }
    }
}

/// The `SystemTime` that is `nanos` nanoseconds from the Unix epoch.
pub fn from_unix_nanos(nanos: i64) -> SystemTime {
    let magnitude = Duration::from_nanos(nanos.unsigned_abs());
    if nanos >= 0 {
        UNIX_EPOCH + magnitude
    } else {
        UNIX_EPOCH - magnitude
    }
}

/// Seconds and sub-second nanoseconds (always `0..1e9`) since the epoch, floor-divided.
fn to_secs_nanos(t: SystemTime) -> Option<(i64, u32)> {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => Some((i64::try_from(d.as_secs()).ok()?, d.subsec_nanos())),
        Err(e) => {
            let d = e.duration();
            let secs = i64::try_from(d.as_secs()).ok()?;
            match d.subsec_nanos() {
                0 => Some((-secs, 0)),
                n => Some((-secs - 1, 1_000_000_000 - n)),
            }
        }
    }
}

/// Formats `t` as RFC 3339 in UTC with nanoseconds (`2025-06-15T10:30:00.123456789Z`).
pub fn format_rfc3339(t: SystemTime) -> Option<String> {
    let (secs, nanos) = to_secs_nanos(t)?;
    let dt = DateTime::<Utc>::from_timestamp(secs, nanos)?;
    Some(dt.to_rfc3339_opts(SecondsFormat::Nanos, true))
}

/// Parses RFC 3339 text with any offset into a `SystemTime`.
pub fn parse_rfc3339(s: &str) -> Option<SystemTime> {
    let dt = DateTime::parse_from_rfc3339(s).ok()?;
    let secs = dt.timestamp();
    let nanos = Duration::from_nanos(u64::from(dt.timestamp_subsec_nanos()));
    let whole = Duration::from_secs(secs.unsigned_abs());
    let base = if secs >= 0 {
        UNIX_EPOCH.checked_add(whole)?
    } else {
        UNIX_EPOCH.checked_sub(whole)?
    };
    base.checked_add(nanos)
}

/// Serde adapter for `SystemTime` as RFC 3339 text (`#[serde(with = ...)]`).
pub mod rfc3339 {
    use std::time::SystemTime;

    use serde::{Deserialize, Deserializer, Serializer, de, ser};

    /// Serialises as RFC 3339 UTC with nanoseconds.
    pub fn serialize<S: Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
        let text = super::format_rfc3339(*t)
            .ok_or_else(|| ser::Error::custom("timestamp out of the representable range"))?;
        s.serialize_str(&text)
    }

    /// Deserialises RFC 3339 text with any offset.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SystemTime, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        super::parse_rfc3339(&text)
            .ok_or_else(|| de::Error::custom(format!("invalid RFC 3339 timestamp {text:?}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nanos_round_trip_at_the_edges() {
        for n in [i64::MIN, i64::MIN + 1, -1, 0, 1, 999_999_999, i64::MAX] {
            assert_eq!(to_unix_nanos(from_unix_nanos(n)), Some(n));
        }
        let too_late = from_unix_nanos(i64::MAX) + Duration::from_nanos(1);
        assert_eq!(to_unix_nanos(too_late), None);
        let too_early = from_unix_nanos(i64::MIN) - Duration::from_nanos(1);
        assert_eq!(to_unix_nanos(too_early), None);
    }

    #[test]
    fn rfc3339_keeps_nanoseconds_and_accepts_offsets() {
        let t = parse_rfc3339("2025-06-15T10:30:00.123456789Z").unwrap();
        assert_eq!(format_rfc3339(t).unwrap(), "2025-06-15T10:30:00.123456789Z");
        let shifted = parse_rfc3339("2025-06-15T12:30:00.123456789+02:00").unwrap();
        assert_eq!(shifted, t);
        let old = parse_rfc3339("1700-01-01T00:00:00.000000001Z").unwrap();
        assert_eq!(
            format_rfc3339(old).unwrap(),
            "1700-01-01T00:00:00.000000001Z"
        );
        assert!(parse_rfc3339("yesterday").is_none());
    }
}
