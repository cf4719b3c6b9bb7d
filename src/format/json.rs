//! JSON text for event bodies, byte-identical to `serde_json::to_writer`.
//!
//! Why not just serde_json: its string escaper looks at every byte through a
//! table, which made escaping the largest cost of a buffered append (about
//! seven instructions a byte, most of a 256-byte event's encoding). Event
//! payloads are mostly plain text, so this writer checks 32-byte blocks at a
//! time (vectorized by the compiler) for the only bytes JSON must escape
//! (`"`, `\` and controls below 0x20) and copies clean runs whole. Numbers
//! are still written by serde_json. The output is exactly serde_json's, so the format does not
//! change and `serde_json` reads it back (tests compare the two byte for byte).

use serde_json::{Map, Value};

/// Writes `map` as a JSON object into `out`.
pub fn write_object(map: &Map<String, Value>, out: &mut Vec<u8>) {
    // Empty objects are common (most events' metadata); skip the map iterator.
    if map.is_empty() {
        return out.extend_from_slice(b"{}");
    }
    out.push(b'{');
    for (i, (key, value)) in map.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_str(key, out);
        out.push(b':');
        write_value(value, out);
    }
    out.push(b'}');
}

/// The length of what [`write_object`] writes for `map`, without writing it.
pub fn object_len(map: &Map<String, Value>) -> usize {
    let commas = map.len().saturating_sub(1);
    let entries: usize = map.iter().map(|(k, v)| str_len(k) + 1 + value_len(v)).sum();
    2 + commas + entries
}

fn write_value(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        // Writing a Number into a Vec cannot fail.
        Value::Number(n) => drop(serde_json::to_writer(&mut *out, n)),
        Value::String(s) => write_str(s, out),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_value(item, out);
            }
            out.push(b']');
        }
        Value::Object(map) => write_object(map, out),
    }
}

fn value_len(value: &Value) -> usize {
    match value {
        Value::Null | Value::Bool(true) => 4,
        Value::Bool(false) => 5,
        Value::Number(n) => n.to_string().len(),
        Value::String(s) => str_len(s),
        Value::Array(items) => {
            2 + items.len().saturating_sub(1) + items.iter().map(value_len).sum::<usize>()
        }
        Value::Object(map) => object_len(map),
    }
}

/// How `byte` is escaped: 0 = as itself, `u` = `\u00XX`, else `\` + that byte.
fn escape_of(byte: u8) -> u8 {
    match byte {
        b'"' => b'"',
        b'\\' => b'\\',
        0x08 => b'b',
        0x09 => b't',
        0x0A => b'n',
        0x0C => b'f',
        0x0D => b'r',
        0x00..=0x1F => b'u',
        _ => 0,
    }
}

/// Bytes the fast scan checks at once. The check of a whole block is written
/// without an early exit, so the compiler turns it into a few SIMD compares
/// (two SSE2 registers on plain x86-64) instead of a branch per byte.
const BLOCK: usize = 32;

/// Whether one byte needs escaping: a control byte below 0x20, `"` or `\\`.
///
/// Flipping bit 1 maps `"` (0x22) to 0x20 and keeps the controls below
/// 0x20 (and space, 0x20, goes to 0x22), so one unsigned compare covers
/// both; with bitwise `|`, not `||`, a block of these vectorizes to three
/// compares per register.
fn byte_needs_escape(b: u8) -> bool {
    ((b ^ 0x02) <= 0x20) | (b == b'\\')
}

/// Whether any byte of `block` needs escaping.
#[inline(always)]
fn block_needs_escape(block: &[u8; BLOCK]) -> bool {
    block
        .iter()
        .fold(false, |dirty, &b| dirty | byte_needs_escape(b))
}

/// The index of the first byte of `bytes[from..]` that needs escaping, or `bytes.len()`.
fn next_escape(bytes: &[u8], from: usize) -> usize {
    let rest = &bytes[from..];
    let (blocks, tail) = rest.as_chunks::<BLOCK>();
    let clean_blocks = blocks.iter().take_while(|b| !block_needs_escape(b)).count();
    // All blocks clean and the tail too: the common case of plain text. The
    // tail is checked as the last whole block of `rest` (overlapping bytes
    // already known clean), so it costs one block check, not one per byte.
    let tail_is_clean = || match rest.last_chunk::<BLOCK>() {
        Some(last) => !block_needs_escape(last),
        None => !tail.iter().any(|&b| byte_needs_escape(b)),
    };
    if clean_blocks == blocks.len() && (tail.is_empty() || tail_is_clean()) {
        return bytes.len();
    }
    let clean = clean_blocks * BLOCK;
    rest[clean..]
        .iter()
        .position(|&b| byte_needs_escape(b))
        .map_or(bytes.len(), |i| from + clean + i)
}

fn write_str(s: &str, out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let bytes = s.as_bytes();
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    let mut start = 0;
    loop {
        let at = next_escape(bytes, start);
        out.extend_from_slice(&bytes[start..at]);
        let Some(&byte) = bytes.get(at) else { break };
        match escape_of(byte) {
            b'u' => out.extend_from_slice(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[usize::from(byte >> 4)],
                HEX[usize::from(byte & 0xF)],
            ]),
            esc => out.extend_from_slice(&[b'\\', esc]),
        }
        start = at + 1;
    }
    out.push(b'"');
}

fn str_len(s: &str) -> usize {
    let bytes = s.as_bytes();
    let mut len = bytes.len() + 2;
    let mut at = next_escape(bytes, 0);
    while at < bytes.len() {
        len += if escape_of(bytes[at]) == b'u' { 5 } else { 1 };
        at = next_escape(bytes, at + 1);
    }
    len
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    use crate::format::arbitrary_json::value;
    use serde_json::json;

    fn same_as_serde_json(map: &Map<String, Value>) {
        let mut ours = Vec::new();
        write_object(map, &mut ours);
        let theirs = serde_json::to_vec(map).unwrap();
        assert_eq!(
            String::from_utf8_lossy(&ours),
            String::from_utf8_lossy(&theirs)
        );
        assert_eq!(object_len(map), ours.len());
    }

    #[test]
    fn every_byte_escapes_as_serde_json_does() {
        let all: String = (0u8..=0x7F).map(char::from).collect();
        for s in [
            all.clone(),
            all.repeat(3),
            "é\"\\/\u{7f}\u{2028}🚀".into(),
            String::new(),
        ] {
            let map = json!({ "k": s.clone(), s.clone(): [s] });
            same_as_serde_json(map.as_object().unwrap());
        }
    }

    #[test]
    fn an_escape_is_found_at_every_offset_of_blocks_and_tails() {
        // Every position of plain text of every length up to three blocks, so
        // each block, the overlapping last block and short tails see one.
        for len in 0..3 * BLOCK + 2 {
            for at in 0..len {
                for special in ['"', '\\', '\n', '\u{1f}'] {
                    let mut s: Vec<char> = vec!['a'; len];
                    s[at] = special;
                    let map = json!({ "k": s.into_iter().collect::<String>() });
                    same_as_serde_json(map.as_object().unwrap());
                }
            }
        }
    }

    #[test]
    fn values_of_every_kind() {
        let map = json!({
            "n": null, "t": true, "f": false, "i": -17, "u": u64::MAX, "min": i64::MIN,
            "x": 0.1, "big": 1e300, "tiny": 5e-324, "one": 1.0, "arr": [], "obj": {},
            "nested": {"a": [1, [2, {"b": "c\n"}]]},
        });
        same_as_serde_json(map.as_object().unwrap());
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]
        #[test]
        fn identical_to_serde_json(entries in prop::collection::btree_map(any::<String>(), value(), 0..6)) {
            let map: Map<String, Value> = entries.into_iter().collect();
            let mut ours = Vec::new();
            write_object(&map, &mut ours);
            prop_assert_eq!(&ours, &serde_json::to_vec(&map).unwrap());
            prop_assert_eq!(object_len(&map), ours.len());
        }
    }
}
