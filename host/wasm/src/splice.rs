//! Inserting one attribute into every item of a still-encoded scope without decoding it.
//!
//! `insert` on every span (the gateway's `telemetry.source` marker) only needs to know
//! whether each span already has the key and, where not, to append one `KeyValue` to the
//! span's bytes: protobuf appends repeated fields in order, so the result decodes exactly as
//! if the attribute had been pushed onto the decoded span. Spans stay bytes, and an exporter
//! later sends them without an encode. Anything unexpected in the bytes makes the caller fall
//! back to decoding.

use bytes::{BufMut, Bytes, BytesMut};

const LEN: u8 = 2;

fn varint(buf: &[u8], pos: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    for i in 0..10 {
        let b = *buf.get(*pos)?;
        *pos += 1;
        v |= u64::from(b & 0x7f) << (7 * i);
        if b < 0x80 {
            return Some(v);
        }
    }
    None
}

/// One field: number, wire type, the whole field's range and, for length-delimited
/// fields, the payload's range.
struct Field {
    number: u64,
    wire: u8,
    whole: std::ops::Range<usize>,
    payload: std::ops::Range<usize>,
}

fn next_field(buf: &[u8], pos: &mut usize) -> Option<Field> {
    let start = *pos;
    let key = varint(buf, pos)?;
    let (number, wire) = (key >> 3, (key & 7) as u8);
    let payload_start;
    match wire {
        0 => {
            payload_start = *pos;
            varint(buf, pos)?;
        }
        1 => {
            payload_start = *pos;
            *pos = pos.checked_add(8)?;
        }
        5 => {
            payload_start = *pos;
            *pos = pos.checked_add(4)?;
        }
        LEN => {
            let len = usize::try_from(varint(buf, pos)?).ok()?;
            payload_start = *pos;
            *pos = pos.checked_add(len)?;
        }
        _ => return None,
    }
    if *pos > buf.len() {
        return None;
    }
    Some(Field {
        number,
        wire,
        whole: start..*pos,
        payload: payload_start..*pos,
    })
}

fn put_len_field(out: &mut BytesMut, number: u64, payload: &[u8]) {
    prost::encoding::encode_key(
        number as u32,
        prost::encoding::WireType::LengthDelimited,
        out,
    );
    prost::encoding::encode_varint(payload.len() as u64, out);
    out.put_slice(payload);
}

/// Whether the item (a span or log record) has an attribute `key` in field `attr_field`.
fn has_key(item: &[u8], attr_field: u64, key: &[u8]) -> Option<bool> {
    let mut pos = 0;
    while pos < item.len() {
        let f = next_field(item, &mut pos)?;
        if f.number != attr_field || f.wire != LEN {
            continue;
        }
        // The key is what prost would decode: the last field 1, or "" when none is written
        // (an empty string is a default, so an encoder leaves it out).
        let kv = &item[f.payload];
        let mut p = 0;
        let mut found: &[u8] = &[];
        while p < kv.len() {
            let g = next_field(kv, &mut p)?;
            if g.number == 1 && g.wire == LEN {
                found = &kv[g.payload];
            }
        }
        if found == key {
            return Some(true);
        }
    }
    Some(false)
}

/// Appends the encoded `KeyValue` (`kv`) as attribute field `attr_field` to every item (field
/// `item_field`) of the encoded scope that lacks `key`. Returns the new scope bytes and how
/// many items changed, or `None` when the bytes are not as expected.
pub fn insert_everywhere(
    scope: &[u8],
    item_field: u64,
    attr_field: u64,
    key: &str,
    kv: &[u8],
) -> Option<(Bytes, u32)> {
    let mut out = BytesMut::with_capacity(scope.len() + scope.len() / 8);
    let mut changed = 0u32;
    let mut pos = 0;
    let mut item = BytesMut::new();
    while pos < scope.len() {
        let f = next_field(scope, &mut pos)?;
        if f.number != item_field || f.wire != LEN {
            out.put_slice(&scope[f.whole]);
            continue;
        }
        let body = &scope[f.payload];
        if has_key(body, attr_field, key.as_bytes())? {
            out.put_slice(&scope[f.whole]);
            continue;
        }
        item.clear();
        item.put_slice(body);
        put_len_field(&mut item, attr_field, kv);
        put_len_field(&mut out, item_field, &item);
        changed += 1;
    }
    Some((out.freeze(), changed))
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;
    use wasmcol_pdata::proto::common::v1::{AnyValue, KeyValue, any_value};
    use wasmcol_pdata::proto::trace::v1::{ScopeSpans, Span, span};

    fn kv(k: &str, v: &str) -> KeyValue {
        KeyValue {
            key: k.into(),
            value: Some(AnyValue {
                value: Some(any_value::Value::StringValue(v.into())),
            }),
            ..Default::default()
        }
    }

    #[test]
    fn splice_equals_decoded_insert() {
        let scope = ScopeSpans {
            spans: (0..5)
                .map(|i| Span {
                    name: format!("s{i}"),
                    trace_id: vec![i; 16],
                    attributes: if i == 2 {
                        vec![kv("a", "1"), kv("telemetry.source", "local")]
                    } else {
                        vec![kv("a", "1")]
                    },
                    events: vec![span::Event {
                        name: "e".into(),
                        attributes: vec![kv("telemetry.source", "in-event")],
                        ..Default::default()
                    }],
                    ..Default::default()
                })
                .collect(),
            schema_url: "u".into(),
            ..Default::default()
        };
        let new = kv("telemetry.source", "cross-region-forward");
        let (bytes, changed) = insert_everywhere(
            &scope.encode_to_vec(),
            2,
            9,
            "telemetry.source",
            &new.encode_to_vec(),
        )
        .unwrap();
        assert_eq!(changed, 4);
        let mut want = scope.clone();
        for s in &mut want.spans {
            if !s.attributes.iter().any(|a| a.key == "telemetry.source") {
                s.attributes.push(new.clone());
            }
        }
        assert_eq!(ScopeSpans::decode(bytes).unwrap(), want);
    }

    /// Found by the `plugin_host` fuzz target (`fuzz/regressions/plugin_host/splice-empty-key`):
    /// an attribute with the empty key has no key field on the wire, and a key written twice
    /// counts only by its last occurrence. Both must be judged as prost decodes them.
    #[test]
    fn keys_are_read_as_prost_decodes_them() {
        let empty = KeyValue {
            key: String::new(),
            value: Some(AnyValue { value: None }),
            ..Default::default()
        };
        let scope = ScopeSpans {
            spans: vec![Span {
                attributes: vec![empty.clone()],
                ..Default::default()
            }],
            ..Default::default()
        };
        let (bytes, changed) =
            insert_everywhere(&scope.encode_to_vec(), 2, 9, "", &empty.encode_to_vec()).unwrap();
        assert_eq!(changed, 0);
        assert_eq!(ScopeSpans::decode(bytes).unwrap(), scope);

        // A KeyValue whose key is written twice, "a" then "b": prost keeps "b".
        let twice: Vec<u8> = [&[0x0a, 0x01, b'a'][..], &[0x0a, 0x01, b'b'][..]].concat();
        let span_bytes: Vec<u8> = [&[0x4a, twice.len() as u8][..], &twice[..]].concat();
        let scope_bytes: Vec<u8> = [&[0x12, span_bytes.len() as u8][..], &span_bytes[..]].concat();
        let decoded = ScopeSpans::decode(&scope_bytes[..]).unwrap();
        assert_eq!(decoded.spans[0].attributes[0].key, "b");
        let new = kv("a", "x");
        let (_, changed) =
            insert_everywhere(&scope_bytes, 2, 9, "a", &new.encode_to_vec()).unwrap();
        assert_eq!(
            changed, 1,
            "the span has no attribute \"a\" as prost reads it"
        );
        let (_, changed) =
            insert_everywhere(&scope_bytes, 2, 9, "b", &new.encode_to_vec()).unwrap();
        assert_eq!(changed, 0);
    }

    #[test]
    fn garbage_is_refused() {
        assert!(insert_everywhere(&[0x12, 0x05, 0x01], 2, 9, "k", &[]).is_none());
    }
}
