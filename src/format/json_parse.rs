//! Reading the JSON objects of event bodies (`data`, `metadata`) into
//! `serde_json` values, accepting exactly what `serde_json::from_slice`
//! accepts and building exactly the same value (tests compare the two).
//!
//! Why not just serde_json: reading a page of events spent about a third of
//! its time in serde_json, mostly on strings: it checks every byte of a
//! string against a table, validates each string's UTF-8 on its own and
//! goes through serde's visitor machinery for every value. Here the whole
//! text is validated as UTF-8 once, strings are scanned sixteen bytes at a
//! time for the bytes that end a plain run (`"`, `\` and controls, the same
//! test the writer in [`super::json`] makes) and copied whole, and values
//! are built directly. Numbers are rare and subtle (exact f64 round trip), so
//! they are still parsed by serde_json itself.

use serde_json::{Map, Value};

/// Why a text is not a JSON object, with the byte offset where it went wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// What was wrong.
    pub what: &'static str,
    /// Byte offset in the text.
    pub at: usize,
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} at byte {}", self.what, self.at)
    }
}

/// serde_json's nesting limit: it refuses the 128th nested array or object
/// (counting the outer object), so this parser does too (and cannot
/// overflow its stack on hostile input).
const MAX_DEPTH: u32 = 128;

/// Parses `bytes` as one JSON object, optionally surrounded by whitespace.
pub fn parse_object(bytes: &[u8]) -> Result<Map<String, Value>, ParseError> {
    let text = std::str::from_utf8(bytes).map_err(|e| ParseError {
        what: "invalid UTF-8",
        at: e.valid_up_to(),
    })?;
    let mut p = Parser {
        text,
        bytes,
        pos: 0,
        remaining_depth: MAX_DEPTH,
    };
    p.skip_whitespace();
    if p.peek() != Some(b'{') {
        return Err(p.error("expected a JSON object"));
    }
    let map = p.object()?;
    p.skip_whitespace();
    if p.pos != bytes.len() {
        return Err(p.error("trailing characters"));
    }
    Ok(map)
}

/// Whether `byte` ends a plain run of a string: a quote, a backslash, or a
/// control character (which JSON does not allow raw in a string).
fn ends_plain_run(byte: u8) -> bool {
    byte < 0x20 || byte == b'"' || byte == b'\\'
}

/// The index of the first byte at or after `from` that ends a plain run, or
/// `bytes.len()`. Whole blocks are tested without branching on each byte,
/// which the compiler turns into a few vector instructions per block.
fn plain_run_end(bytes: &[u8], from: usize) -> usize {
    const BLOCK: usize = 16;
    let rest = &bytes[from..];
    let mut clean = 0;
    for block in rest.chunks_exact(BLOCK) {
        if block.iter().fold(false, |hit, &b| hit | ends_plain_run(b)) {
            break;
        }
        clean += BLOCK;
    }
    rest[clean..]
        .iter()
        .position(|&b| ends_plain_run(b))
        .map_or(bytes.len(), |i| from + clean + i)
}

/// A cursor over the text. Every index it slices `text` at is the end of
/// the text or the position of an ASCII byte, so always a char boundary.
struct Parser<'a> {
    text: &'a str,
    bytes: &'a [u8],
    pos: usize,
    remaining_depth: u32,
}

impl Parser<'_> {
    fn error(&self, what: &'static str) -> ParseError {
        ParseError { what, at: self.pos }
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    /// Consumes `byte` if it is next.
    fn eat(&mut self, byte: u8) -> bool {
        let next = self.peek() == Some(byte);
        self.pos += usize::from(next);
        next
    }

    fn skip_whitespace(&mut self) {
        while let Some(b' ' | b'\n' | b'\t' | b'\r') = self.peek() {
            self.pos += 1;
        }
    }

    fn value(&mut self) -> Result<Value, ParseError> {
        self.skip_whitespace();
        match self.peek() {
            Some(b'"') => {
                self.pos += 1;
                self.string().map(Value::String)
            }
            Some(b'{') => self.object().map(Value::Object),
            Some(b'[') => self.array().map(Value::Array),
            Some(b't') => self.literal("true", Value::Bool(true)),
            Some(b'f') => self.literal("false", Value::Bool(false)),
            Some(b'n') => self.literal("null", Value::Null),
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(_) => Err(self.error("expected a value")),
            None => Err(self.error("unexpected end of the text")),
        }
    }

    fn literal(&mut self, word: &str, value: Value) -> Result<Value, ParseError> {
        if self.bytes[self.pos..].starts_with(word.as_bytes()) {
            self.pos += word.len();
            Ok(value)
        } else {
            Err(self.error("expected a value"))
        }
    }

    /// One more level of nesting (at the opening bracket, which it consumes).
    fn enter(&mut self) -> Result<(), ParseError> {
        self.remaining_depth -= 1;
        if self.remaining_depth == 0 {
            return Err(self.error("nested too deeply"));
        }
        self.pos += 1;
        Ok(())
    }

    fn leave(&mut self) {
        self.remaining_depth += 1;
    }

    fn object(&mut self) -> Result<Map<String, Value>, ParseError> {
        self.enter()?;
        let mut map = Map::new();
        self.skip_whitespace();
        if !self.eat(b'}') {
            loop {
                self.skip_whitespace();
                if !self.eat(b'"') {
                    return Err(self.error("expected a string key"));
                }
                let key = self.string()?;
                self.skip_whitespace();
                if !self.eat(b':') {
                    return Err(self.error("expected `:`"));
                }
                let value = self.value()?;
                // A repeated key keeps the last value, as with serde_json.
                map.insert(key, value);
                self.skip_whitespace();
                if self.eat(b'}') {
                    break;
                }
                if !self.eat(b',') {
                    return Err(self.error("expected `,` or `}`"));
                }
            }
        }
        self.leave();
        Ok(map)
    }

    fn array(&mut self) -> Result<Vec<Value>, ParseError> {
        self.enter()?;
        let mut items = Vec::new();
        self.skip_whitespace();
        if !self.eat(b']') {
            loop {
                items.push(self.value()?);
                self.skip_whitespace();
                if self.eat(b']') {
                    break;
                }
                if !self.eat(b',') {
                    return Err(self.error("expected `,` or `]`"));
                }
            }
        }
        self.leave();
        Ok(items)
    }

    /// The number starting here, parsed by serde_json. Its text is the run
    /// of number characters: in valid JSON a number is followed by `,`, `]`,
    /// `}` or whitespace, none of which is one; in invalid JSON serde_json
    /// refuses the run just as it refuses the whole text.
    fn number(&mut self) -> Result<Value, ParseError> {
        let start = self.pos;
        let len = self.bytes[start..]
            .iter()
            .position(|b| !matches!(b, b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E'))
            .unwrap_or(self.bytes.len() - start);
        let value = serde_json::from_slice(&self.bytes[start..start + len])
            .map_err(|_| self.error("invalid number"))?;
        self.pos = start + len;
        Ok(value)
    }

    /// The slice `from..to` of the text (never fails for this parser's indices).
    fn slice(&self, from: usize, to: usize) -> Result<&str, ParseError> {
        self.text.get(from..to).ok_or(ParseError {
            what: "not at a char boundary",
            at: from,
        })
    }

    /// The string whose opening quote was just consumed.
    fn string(&mut self) -> Result<String, ParseError> {
        let start = self.pos;
        let at = plain_run_end(self.bytes, start);
        if self.bytes.get(at) == Some(&b'"') {
            // The usual case: no escapes, one copy.
            let s = self.slice(start, at)?.to_owned();
            self.pos = at + 1;
            return Ok(s);
        }
        let mut out = String::with_capacity(at - start + 16);
        let (mut from, mut at) = (start, at);
        loop {
            out.push_str(self.slice(from, at)?);
            self.pos = at;
            match self.peek() {
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(out);
                }
                Some(b'\\') => {
                    self.pos += 1;
                    out.push(self.escape()?);
                }
                Some(_) => return Err(self.error("control character in a string")),
                None => return Err(self.error("unterminated string")),
            }
            from = self.pos;
            at = plain_run_end(self.bytes, from);
        }
    }

    /// The character of the escape whose backslash was just consumed.
    fn escape(&mut self) -> Result<char, ParseError> {
        let Some(byte) = self.peek() else {
            return Err(self.error("unterminated string"));
        };
        self.pos += 1;
        Ok(match byte {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\x08',
            b'f' => '\x0c',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => return self.unicode_escape(),
            _ => return Err(self.error("invalid escape")),
        })
    }

    /// A `\u` escape (just consumed): a BMP character, or a surrogate pair.
    /// Lone surrogates are refused, as serde_json refuses them in strings.
    fn unicode_escape(&mut self) -> Result<char, ParseError> {
        let n = self.hex4()?;
        let code = match n {
            0xDC00..=0xDFFF => return Err(self.error("lone trailing surrogate")),
            0xD800..=0xDBFF => {
                if !(self.eat(b'\\') && self.eat(b'u')) {
                    return Err(self.error("lone leading surrogate"));
                }
                let low = self.hex4()?;
                if !(0xDC00..=0xDFFF).contains(&low) {
                    return Err(self.error("lone leading surrogate"));
                }
                0x1_0000 + ((n - 0xD800) << 10) + (low - 0xDC00)
            }
            _ => n,
        };
        char::from_u32(code).ok_or(self.error("invalid code point"))
    }

    fn hex4(&mut self) -> Result<u32, ParseError> {
        let mut n = 0;
        for _ in 0..4 {
            let digit = self.peek().and_then(|b| char::from(b).to_digit(16));
            let digit = digit.ok_or(self.error("invalid \\u escape"))?;
            n = n * 16 + digit;
            self.pos += 1;
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    use crate::format::arbitrary_json::value;

    /// Both parsers agree on `text`: the same map, or both refuse it.
    fn agrees(text: &[u8]) -> Result<(), TestCaseError> {
        let ours = parse_object(text);
        let theirs = serde_json::from_slice::<Map<String, Value>>(text);
        match (&ours, &theirs) {
            (Ok(a), Ok(b)) => prop_assert_eq!(a, b, "text {:?}", String::from_utf8_lossy(text)),
            (Err(_), Err(_)) => {}
            _ => prop_assert!(
                false,
                "text {:?}: ours {:?}, serde_json {:?}",
                String::from_utf8_lossy(text),
                ours,
                theirs
            ),
        }
        Ok(())
    }

    fn check(text: &str) {
        agrees(text.as_bytes()).unwrap();
    }

    #[test]
    fn valid_texts() {
        for text in [
            "{}",
            " \t\r\n{ \"a\" : [ 1 , -2.5e3 , true , false , null , { } , [ ] ] } \n",
            r#"{"a":1,"a":2}"#,
            r#"{"s":"\"\\\/\b\f\n\r\t\u0000\u00e9\u20AC\ud83d\ude80é🚀"}"#,
            r#"{"n":[0,-0,1e0,1E+2,1e-2,-0.0,0.1,5e-324,1.7976931348623157e308]}"#,
            r#"{"n":[18446744073709551615,18446744073709551616,-9223372036854775808,-9223372036854775809]}"#,
            r#"{"n":[9007199254740993,123456789012345678901234567890,2.2250738585072011e-308]}"#,
            "{\"\u{7f}\":\"\u{2028}\"}",
        ] {
            check(text);
            assert!(parse_object(text.as_bytes()).is_ok(), "{text}");
        }
    }

    #[test]
    fn invalid_texts() {
        for text in [
            "",
            " ",
            "[]",
            "1",
            "\"s\"",
            "null",
            "{",
            "}",
            "{\"a\"}",
            "{\"a\":}",
            "{\"a\":1,}",
            "{,}",
            "{\"a\":1 \"b\":2}",
            "{\"a\":[1,]}",
            "{\"a\":[1 2]}",
            "{\"a\":01}",
            "{\"a\":1.}",
            "{\"a\":.1}",
            "{\"a\":1e}",
            "{\"a\":-}",
            "{\"a\":+1}",
            "{\"a\":1e400}",
            "{\"a\":1}x",
            "{\"a\":1}{}",
            "{\"a\":tru}",
            "{\"a\":nul}",
            "{\"a\":True}",
            "{\"a\":\"\u{1}\"}",
            "{\"a\":\"\\x\"}",
            "{\"a\":\"\\u12\"}",
            "{\"a\":\"\\u12g4\"}",
            "{\"a\":\"\\ud800\"}",
            "{\"a\":\"\\udc00\"}",
            "{\"a\":\"\\ud800\\u0041\"}",
            "{\"a\":\"\\ud800\\n\"}",
            "{\"a\":\"\\ud800\\ud800\"}",
            "{\"a\":\"abc",
            "{\"a\":\"abc\\",
            "{1:2}",
            "{'a':1}",
            "{\"a\":NaN}",
            "{\"a\":Infinity}",
            "{\"a\":1.5-}",
        ] {
            check(text);
            assert!(parse_object(text.as_bytes()).is_err(), "{text}");
        }
        agrees(b"{\"a\":\"\xff\"}").unwrap();
        agrees(b"{\"a\":\"\xc3\"}").unwrap();
        agrees(b"{\"a\":1}\xff").unwrap();
    }

    #[test]
    fn plain_runs_end_at_the_first_quote_backslash_or_control() {
        for len in 0..70 {
            for special in [b'"', b'\\', 0x00, 0x1f] {
                for at in 0..=len {
                    let mut bytes = vec![b'x'; len];
                    if at < len {
                        bytes[at] = special;
                    }
                    bytes.extend_from_slice(&[0x7f, 0xc3, 0xa9, 0x20]);
                    for from in 0..=at.min(len) {
                        let want = if at < len { at } else { bytes.len() };
                        assert_eq!(
                            plain_run_end(&bytes, from),
                            want,
                            "{len} {special} {at} {from}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn nesting_limit_is_serde_jsons() {
        for depth in [1, 126, 127, 128, 129, 1000] {
            for (open, close) in [("[", "]"), ("{\"k\":", "}")] {
                let text = format!("{{\"a\":{}1{}}}", open.repeat(depth), close.repeat(depth));
                check(&text);
            }
        }
        let deepest_ok = format!("{{\"a\":{}{}}}", "[".repeat(126), "]".repeat(126));
        assert!(parse_object(deepest_ok.as_bytes()).is_ok());
    }

    fn object() -> impl Strategy<Value = Map<String, Value>> {
        prop::collection::btree_map("[a-z\"\\\\é]{0,6}", value(), 0..6)
            .prop_map(|m| m.into_iter().collect())
    }

    /// JSON text pieces that exercise escapes, numbers and structure.
    fn fragment() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("\\u".to_string()),
            Just("\\ud83d".to_string()),
            Just("\\ude80".to_string()),
            Just("\\".to_string()),
            Just("\"".to_string()),
            "[0-9eE.+-]{1,6}",
            "[\\[\\]{}:, \n]{1,3}",
            "[a-fA-F0-9]{1,4}",
            any::<char>().prop_map(String::from),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 3000, ..ProptestConfig::default() })]

        /// Whatever serde_json writes (compact or pretty) reads back the same.
        #[test]
        fn reads_what_serde_json_writes(map in object()) {
            let compact = serde_json::to_vec(&map).unwrap();
            prop_assert_eq!(&parse_object(&compact).unwrap(), &map);
            agrees(&compact)?;
            agrees(&serde_json::to_vec_pretty(&map).unwrap())?;
        }

        /// Strings with escapes, as another writer might escape them.
        #[test]
        fn reads_every_escape(s in any::<String>(), ascii_only in any::<bool>()) {
            let mut text = String::from("{\"k\":\"");
            for c in s.chars() {
                if ascii_only && !c.is_ascii() {
                    let mut units = [0u16; 2];
                    for u in c.encode_utf16(&mut units) {
                        text.push_str(&format!("\\u{u:04X}"));
                    }
                } else {
                    match c {
                        '"' => text.push_str("\\\""),
                        '\\' => text.push_str("\\\\"),
                        '/' => text.push_str("\\/"),
                        c if (c as u32) < 0x20 => text.push_str(&format!("\\u{:04x}", c as u32)),
                        c => text.push(c),
                    }
                }
            }
            text.push_str("\"}");
            let map = parse_object(text.as_bytes()).unwrap();
            prop_assert_eq!(map["k"].as_str(), Some(s.as_str()));
            agrees(text.as_bytes())?;
        }

        /// Valid texts with bytes changed, cut or inserted: both accept the
        /// same value or both refuse.
        #[test]
        fn agrees_on_mangled_texts(
            map in object(),
            edits in prop::collection::vec((any::<prop::sample::Index>(), 0u8..3, fragment(), any::<u8>()), 1..4),
        ) {
            let mut text = serde_json::to_vec(&map).unwrap();
            for (at, kind, piece, byte) in edits {
                let i = at.index(text.len() + 1);
                match kind {
                    0 => { text.splice(i..i, piece.bytes()); }
                    1 => { if i < text.len() { text[i] = byte; } }
                    _ => { text.truncate(i); }
                }
            }
            agrees(&text)?;
        }

        /// Arbitrary sequences of JSON-ish fragments.
        #[test]
        fn agrees_on_fragment_soup(pieces in prop::collection::vec(fragment(), 0..12)) {
            let text = format!("{{\"a\":{}", pieces.concat());
            agrees(text.as_bytes())?;
            agrees(format!("{text}}}").as_bytes())?;
            agrees(format!("{{\"a\":\"{}\"}}", pieces.concat()).as_bytes())?;
        }
    }
}
