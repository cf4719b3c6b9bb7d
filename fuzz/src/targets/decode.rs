//! Target `decode`: the format's byte decoders on arbitrary bytes.
//!
//! Decoding never panics; whatever decodes must re-encode to something that
//! decodes to the same value, and a record that passes its checksum must be
//! exactly the bytes the encoder would write for its fields (the format has
//! one encoding per record).

use sessionlog::format::event_codec::{
    decode, decode_keys, encode, encoded_len, parse_json_object,
};
use sessionlog::format::record::{
    RecordParse, encode_close_mark, encode_record_claiming, encode_record_into, parse_header,
    parse_record, record_checksum,
};
use sessionlog::format::segment::{
    decode_segment_header, decode_segment_version, encode_segment_header_of_version,
};

/// The target's body.
pub fn run(data: &[u8]) {
    check_body(data);
    check_json(data);
    check_records(data);
    check_wrapped(data);
    check_segment_header(data);
}

/// `data` as an event body.
fn check_body(data: &[u8]) {
    let Ok(event) = decode(data, 1) else {
        return;
    };
    let keys = decode_keys(data).expect("a body that decodes has decodable keys");
    assert_eq!(keys.id, event.id);
    assert_eq!(keys.session_id, event.session_id);
    assert_eq!(keys.run_id, event.run_id.as_deref());
    assert_eq!(keys.event_type, event.event_type);
    let again = encode(&event);
    assert_eq!(again.len(), encoded_len(&event), "encoded_len is exact");
    assert_eq!(decode(&again, 1).expect("re-encoded body decodes"), event);
}

/// `data` as the JSON text of `data`/`metadata`: our parser and serde_json
/// agree on the value, or both refuse it.
fn check_json(data: &[u8]) {
    type Map = serde_json::Map<String, serde_json::Value>;
    let ours = parse_json_object(data).ok();
    let theirs = serde_json::from_slice::<Map>(data).ok();
    assert_eq!(
        ours,
        theirs,
        "JSON parser differs from serde_json on {:?}",
        String::from_utf8_lossy(data)
    );
}

/// `data` as a run of records, read the way a segment scan reads them.
fn check_records(data: &[u8]) {
    let _ = parse_header(data);
    let mut pos = 0;
    while let RecordParse::Complete(r) = parse_record(&data[pos..]) {
        let len = r.header.record_len();
        let bytes = &data[pos..pos + len];
        assert_eq!(
            record_checksum(bytes),
            r.header.crc,
            "a complete record's checksum matches"
        );
        let mut canonical = Vec::new();
        let h = r.header;
        if h.is_close_mark() {
            encode_close_mark(&mut canonical, h.durable_before);
        } else {
            let links = (h.sequence, h.prev);
            encode_record_claiming(&mut canonical, r.body, h.flags, links, h.durable_before);
        }
        assert_eq!(canonical, bytes, "one encoding per record");
        check_body(r.body);
        pos += len;
    }
}

/// `data` as the body of a freshly encoded record: it must parse back whole.
fn check_wrapped(data: &[u8]) {
    let seq = 1 + u64::from(data.first().copied().unwrap_or(0));
    let prev = if seq == 1 { 0 } else { 32 };
    let mut out = Vec::new();
    encode_record_into(&mut out, data, 0, seq, prev);
    match parse_record(&out) {
        RecordParse::Complete(r) => {
            assert_eq!(r.body, data);
            assert_eq!((r.header.sequence, r.header.prev), (seq, prev));
        }
        other => panic!("a fresh record does not parse: {other:?}"),
    }
    for cut in [0, out.len() / 2, out.len() - 1] {
        assert!(
            matches!(parse_record(&out[..cut]), RecordParse::Incomplete),
            "cut at {cut}"
        );
    }
    check_close_mark(u32::from(data.first().copied().unwrap_or(0)) + 32);
}

/// A close mark claiming `claim`: it parses back whole, as a bodiless mark.
fn check_close_mark(claim: u32) {
    let mut out = Vec::new();
    encode_close_mark(&mut out, claim);
    match parse_record(&out) {
        RecordParse::Complete(r) => {
            assert!(r.header.is_close_mark() && r.body.is_empty());
            assert_eq!(r.header.durable_before, claim);
        }
        other => panic!("a fresh close mark does not parse: {other:?}"),
    }
}

/// `data` as the start of a segment file.
fn check_segment_header(data: &[u8]) {
    if let Ok(number) = decode_segment_header(data) {
        let version =
            decode_segment_version(data).expect("a header that decodes states its version");
        assert_eq!(
            &data[..32],
            &encode_segment_header_of_version(number, version),
            "one encoding per header"
        );
    }
}
