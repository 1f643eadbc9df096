//! OTLP/JSON straight to protobuf bytes, one token at a time.
//!
//! Decoding JSON into the generated structs costs far more memory than the text: an empty
//! object `{}` (2 bytes) becomes a whole `Span` of a few hundred bytes, and a `Vec` doubling
//! on top of that, so a body made of `{}` grows ~100x. Here serde_json's tokenizer drives a
//! schema of the OTLP messages and each value is written as protobuf as soon as it is read, so
//! nothing larger than the output is ever built: every JSON value becomes at most as many
//! protobuf bytes as it has characters, except packed 64-bit numbers (`0,` becomes 8 bytes),
//! so the output is at most 4x the input and the buffer at most twice that.

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use crate::IdKind;

/// How a field's JSON value is written.
#[derive(Clone, Copy)]
pub(crate) enum Kind {
    /// A nested message.
    Msg(&'static Schema),
    /// A UTF-8 string.
    Str,
    /// A trace (16) or span (8) id, hex in JSON.
    Id(usize),
    /// Bytes, base64 in JSON.
    Base64,
    /// A bool.
    Bool,
    /// uint32 as a varint.
    U32,
    /// int32 (and enums) as a varint.
    I32,
    /// sint32, zigzag varint.
    S32,
    /// int64 as a varint.
    I64,
    /// uint64 as a varint.
    U64,
    /// fixed32.
    Fixed32,
    /// fixed64.
    Fixed64,
    /// sfixed64.
    SFixed64,
    /// double.
    Double,
}

/// The fields of one message.
pub(crate) struct Schema(&'static [Field]);

/// One field of a message: its JSON name (lowerCamelCase; snake_case matches too), number,
/// how its value is written, and whether the JSON holds an array of them.
#[derive(Clone, Copy)]
pub(crate) struct Field {
    name: &'static str,
    num: u32,
    kind: Kind,
    repeated: bool,
}

const fn f(name: &'static str, num: u32, kind: Kind) -> Field {
    Field {
        name,
        num,
        kind,
        repeated: false,
    }
}

const fn r(name: &'static str, num: u32, kind: Kind) -> Field {
    Field {
        name,
        num,
        kind,
        repeated: true,
    }
}

use Kind::*;

static ANY_VALUE: Schema = Schema(&[
    f("stringValue", 1, Str),
    f("boolValue", 2, Bool),
    f("intValue", 3, I64),
    f("doubleValue", 4, Double),
    f("arrayValue", 5, Msg(&ARRAY_VALUE)),
    f("kvlistValue", 6, Msg(&KV_LIST)),
    f("bytesValue", 7, Base64),
    f("stringValueStrindex", 8, I32),
]);
static ARRAY_VALUE: Schema = Schema(&[r("values", 1, Msg(&ANY_VALUE))]);
static KV_LIST: Schema = Schema(&[r("values", 1, Msg(&KEY_VALUE))]);
static KEY_VALUE: Schema = Schema(&[
    f("key", 1, Str),
    f("value", 2, Msg(&ANY_VALUE)),
    f("keyStrindex", 3, I32),
]);
static SCOPE: Schema = Schema(&[
    f("name", 1, Str),
    f("version", 2, Str),
    r("attributes", 3, Msg(&KEY_VALUE)),
    f("droppedAttributesCount", 4, U32),
]);
static ENTITY_REF: Schema = Schema(&[
    f("schemaUrl", 1, Str),
    f("type", 2, Str),
    r("idKeys", 3, Str),
    r("descriptionKeys", 4, Str),
]);
static RESOURCE: Schema = Schema(&[
    r("attributes", 1, Msg(&KEY_VALUE)),
    f("droppedAttributesCount", 2, U32),
    r("entityRefs", 3, Msg(&ENTITY_REF)),
]);

/// ExportTraceServiceRequest.
pub(crate) static TRACES: Schema = Schema(&[r("resourceSpans", 1, Msg(&RESOURCE_SPANS))]);
static RESOURCE_SPANS: Schema = Schema(&[
    f("resource", 1, Msg(&RESOURCE)),
    r("scopeSpans", 2, Msg(&SCOPE_SPANS)),
    f("schemaUrl", 3, Str),
]);
static SCOPE_SPANS: Schema = Schema(&[
    f("scope", 1, Msg(&SCOPE)),
    r("spans", 2, Msg(&SPAN)),
    f("schemaUrl", 3, Str),
]);
static SPAN: Schema = Schema(&[
    f("traceId", 1, Id(16)),
    f("spanId", 2, Id(8)),
    f("traceState", 3, Str),
    f("parentSpanId", 4, Id(8)),
    f("flags", 16, Fixed32),
    f("name", 5, Str),
    f("kind", 6, I32),
    f("startTimeUnixNano", 7, Fixed64),
    f("endTimeUnixNano", 8, Fixed64),
    r("attributes", 9, Msg(&KEY_VALUE)),
    f("droppedAttributesCount", 10, U32),
    r("events", 11, Msg(&EVENT)),
    f("droppedEventsCount", 12, U32),
    r("links", 13, Msg(&LINK)),
    f("droppedLinksCount", 14, U32),
    f("status", 15, Msg(&STATUS)),
]);
static EVENT: Schema = Schema(&[
    f("timeUnixNano", 1, Fixed64),
    f("name", 2, Str),
    r("attributes", 3, Msg(&KEY_VALUE)),
    f("droppedAttributesCount", 4, U32),
]);
static LINK: Schema = Schema(&[
    f("traceId", 1, Id(16)),
    f("spanId", 2, Id(8)),
    f("traceState", 3, Str),
    r("attributes", 4, Msg(&KEY_VALUE)),
    f("droppedAttributesCount", 5, U32),
    f("flags", 6, Fixed32),
]);
static STATUS: Schema = Schema(&[f("message", 2, Str), f("code", 3, I32)]);

/// ExportLogsServiceRequest.
pub(crate) static LOGS: Schema = Schema(&[r("resourceLogs", 1, Msg(&RESOURCE_LOGS))]);
static RESOURCE_LOGS: Schema = Schema(&[
    f("resource", 1, Msg(&RESOURCE)),
    r("scopeLogs", 2, Msg(&SCOPE_LOGS)),
    f("schemaUrl", 3, Str),
]);
static SCOPE_LOGS: Schema = Schema(&[
    f("scope", 1, Msg(&SCOPE)),
    r("logRecords", 2, Msg(&LOG_RECORD)),
    f("schemaUrl", 3, Str),
]);
static LOG_RECORD: Schema = Schema(&[
    f("timeUnixNano", 1, Fixed64),
    f("observedTimeUnixNano", 11, Fixed64),
    f("severityNumber", 2, I32),
    f("severityText", 3, Str),
    f("body", 5, Msg(&ANY_VALUE)),
    r("attributes", 6, Msg(&KEY_VALUE)),
    f("droppedAttributesCount", 7, U32),
    f("flags", 8, Fixed32),
    f("traceId", 9, Id(16)),
    f("spanId", 10, Id(8)),
    f("eventName", 12, Str),
]);

/// ExportMetricsServiceRequest.
pub(crate) static METRICS: Schema = Schema(&[r("resourceMetrics", 1, Msg(&RESOURCE_METRICS))]);
static RESOURCE_METRICS: Schema = Schema(&[
    f("resource", 1, Msg(&RESOURCE)),
    r("scopeMetrics", 2, Msg(&SCOPE_METRICS)),
    f("schemaUrl", 3, Str),
]);
static SCOPE_METRICS: Schema = Schema(&[
    f("scope", 1, Msg(&SCOPE)),
    r("metrics", 2, Msg(&METRIC)),
    f("schemaUrl", 3, Str),
]);
static METRIC: Schema = Schema(&[
    f("name", 1, Str),
    f("description", 2, Str),
    f("unit", 3, Str),
    f("gauge", 5, Msg(&GAUGE)),
    f("sum", 7, Msg(&SUM)),
    f("histogram", 9, Msg(&HISTOGRAM)),
    f("exponentialHistogram", 10, Msg(&EXP_HISTOGRAM)),
    f("summary", 11, Msg(&SUMMARY)),
    r("metadata", 12, Msg(&KEY_VALUE)),
]);
static GAUGE: Schema = Schema(&[r("dataPoints", 1, Msg(&NUMBER_POINT))]);
static SUM: Schema = Schema(&[
    r("dataPoints", 1, Msg(&NUMBER_POINT)),
    f("aggregationTemporality", 2, I32),
    f("isMonotonic", 3, Bool),
]);
static HISTOGRAM: Schema = Schema(&[
    r("dataPoints", 1, Msg(&HISTOGRAM_POINT)),
    f("aggregationTemporality", 2, I32),
]);
static EXP_HISTOGRAM: Schema = Schema(&[
    r("dataPoints", 1, Msg(&EXP_HISTOGRAM_POINT)),
    f("aggregationTemporality", 2, I32),
]);
static SUMMARY: Schema = Schema(&[r("dataPoints", 1, Msg(&SUMMARY_POINT))]);
static NUMBER_POINT: Schema = Schema(&[
    r("attributes", 7, Msg(&KEY_VALUE)),
    f("startTimeUnixNano", 2, Fixed64),
    f("timeUnixNano", 3, Fixed64),
    f("asDouble", 4, Double),
    f("asInt", 6, SFixed64),
    r("exemplars", 5, Msg(&EXEMPLAR)),
    f("flags", 8, U32),
]);
static HISTOGRAM_POINT: Schema = Schema(&[
    r("attributes", 9, Msg(&KEY_VALUE)),
    f("startTimeUnixNano", 2, Fixed64),
    f("timeUnixNano", 3, Fixed64),
    f("count", 4, Fixed64),
    f("sum", 5, Double),
    r("bucketCounts", 6, Fixed64),
    r("explicitBounds", 7, Double),
    r("exemplars", 8, Msg(&EXEMPLAR)),
    f("flags", 10, U32),
    f("min", 11, Double),
    f("max", 12, Double),
]);
static EXP_HISTOGRAM_POINT: Schema = Schema(&[
    r("attributes", 1, Msg(&KEY_VALUE)),
    f("startTimeUnixNano", 2, Fixed64),
    f("timeUnixNano", 3, Fixed64),
    f("count", 4, Fixed64),
    f("sum", 5, Double),
    f("scale", 6, S32),
    f("zeroCount", 7, Fixed64),
    f("positive", 8, Msg(&BUCKETS)),
    f("negative", 9, Msg(&BUCKETS)),
    f("flags", 10, U32),
    r("exemplars", 11, Msg(&EXEMPLAR)),
    f("min", 12, Double),
    f("max", 13, Double),
    f("zeroThreshold", 14, Double),
]);
static BUCKETS: Schema = Schema(&[f("offset", 1, S32), r("bucketCounts", 2, U64)]);
static SUMMARY_POINT: Schema = Schema(&[
    r("attributes", 7, Msg(&KEY_VALUE)),
    f("startTimeUnixNano", 2, Fixed64),
    f("timeUnixNano", 3, Fixed64),
    f("count", 4, Fixed64),
    f("sum", 5, Double),
    r("quantileValues", 6, Msg(&QUANTILE)),
    f("flags", 8, U32),
]);
static QUANTILE: Schema = Schema(&[f("quantile", 1, Double), f("value", 2, Double)]);
static EXEMPLAR: Schema = Schema(&[
    r("filteredAttributes", 7, Msg(&KEY_VALUE)),
    f("timeUnixNano", 2, Fixed64),
    f("asDouble", 3, Double),
    f("asInt", 6, SFixed64),
    f("spanId", 4, Id(8)),
    f("traceId", 5, Id(16)),
]);

/// The protobuf being written, and the id fault that stopped it, if one did (reported with
/// upstream's own text rather than serde's).
pub(crate) struct Out {
    pub(crate) buf: Vec<u8>,
    pub(crate) bad_id: Option<(IdKind, usize)>,
}

/// The text of a wrong-length id, as upstream's OTLP/JSON decoder words it.
pub(crate) const ID_LENGTH: &str = "invalid length for ID";

/// Writes the JSON object the deserializer holds as the message `schema`.
pub(crate) fn transcode<'de, D: Deserializer<'de>>(
    schema: &'static Schema,
    out: &mut Out,
    de: D,
) -> Result<(), D::Error> {
    de.deserialize_map(MsgVisitor { schema, out })
}

fn varint(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push((v as u8) | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

fn tag(buf: &mut Vec<u8>, num: u32, wire: u8) {
    varint(buf, (u64::from(num) << 3) | u64::from(wire));
}

/// Wire type of a kind's scalar value.
fn wire_type(kind: Kind) -> u8 {
    match kind {
        Msg(&_) | Str | Id(_) | Base64 => 2,
        Fixed64 | SFixed64 | Double => 1,
        Fixed32 => 5,
        Bool | U32 | I32 | S32 | I64 | U64 => 0,
    }
}

/// Starts a length-delimited value: one byte is reserved for its length, which almost every
/// small message fits; [`close`] widens it when needed.
fn open(buf: &mut Vec<u8>, num: u32) -> usize {
    tag(buf, num, 2);
    buf.push(0);
    buf.len()
}

fn close(buf: &mut Vec<u8>, start: usize) {
    let len = (buf.len() - start) as u64;
    if len < 0x80 {
        buf[start - 1] = len as u8;
        return;
    }
    let mut prefix = Vec::with_capacity(10);
    varint(&mut prefix, len);
    buf[start - 1] = prefix[0];
    buf.splice(start..start, prefix[1..].iter().copied());
}

/// Whether a JSON key names `field`: its lowerCamelCase name, or that name in snake_case.
fn matches(key: &str, name: &str) -> bool {
    if key.len() == name.len() {
        return key == name;
    }
    let mut expect = name.chars();
    let mut upper = false;
    for c in key.chars() {
        let want = if c == '_' {
            upper = true;
            continue;
        } else if upper {
            upper = false;
            c.to_ascii_uppercase()
        } else {
            c
        };
        if c.is_ascii_uppercase() || expect.next() != Some(want) {
            return false;
        }
    }
    !upper && expect.next().is_none()
}

struct MsgVisitor<'a> {
    schema: &'static Schema,
    out: &'a mut Out,
}

impl<'de> Visitor<'de> for MsgVisitor<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(field) = map.next_key_seed(KeySeed(self.schema))? {
            match field {
                Some(field) => map.next_value_seed(FieldSeed {
                    field,
                    out: &mut *self.out,
                })?,
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }
}

/// Looks a key up in the schema without allocating; unknown keys are skipped, as OTLP/JSON
/// requires.
struct KeySeed(&'static Schema);

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Option<Field>;

    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<Self::Value, D::Error> {
        de.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed {
    type Value = Option<Field>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a field name")
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<Self::Value, E> {
        Ok(self.0.0.iter().find(|f| matches(key, f.name)).copied())
    }
}

/// A field's value: `null` is the field left out; a repeated field is an array.
struct FieldSeed<'a> {
    field: Field,
    out: &'a mut Out,
}

impl<'de> DeserializeSeed<'de> for FieldSeed<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<(), D::Error> {
        de.deserialize_option(self)
    }
}

impl<'de> Visitor<'de> for FieldSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a field value")
    }

    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_some<D: Deserializer<'de>>(self, de: D) -> Result<(), D::Error> {
        let Field {
            num,
            kind,
            repeated,
            ..
        } = self.field;
        if !repeated {
            return value(kind, num, true, self.out, de);
        }
        de.deserialize_seq(SeqVisitor {
            num,
            kind,
            out: self.out,
        })
    }
}

struct SeqVisitor<'a> {
    num: u32,
    kind: Kind,
    out: &'a mut Out,
}

impl<'de> Visitor<'de> for SeqVisitor<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON array")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        // Repeated numbers are packed, as prost writes them; everything else is one field
        // per element.
        let packed = wire_type(self.kind) != 2;
        let start = packed.then(|| open(&mut self.out.buf, self.num));
        while seq
            .next_element_seed(Element {
                num: self.num,
                kind: self.kind,
                tagged: !packed,
                out: &mut *self.out,
            })?
            .is_some()
        {}
        if let Some(start) = start {
            close(&mut self.out.buf, start);
        }
        Ok(())
    }
}

struct Element<'a> {
    num: u32,
    kind: Kind,
    tagged: bool,
    out: &'a mut Out,
}

impl<'de> DeserializeSeed<'de> for Element<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<(), D::Error> {
        value(self.kind, self.num, self.tagged, self.out, de)
    }
}

fn value<'de, D: Deserializer<'de>>(
    kind: Kind,
    num: u32,
    tagged: bool,
    out: &mut Out,
    de: D,
) -> Result<(), D::Error> {
    match kind {
        Msg(schema) => {
            let start = open(&mut out.buf, num);
            de.deserialize_map(MsgVisitor {
                schema,
                out: &mut *out,
            })?;
            close(&mut out.buf, start);
            Ok(())
        }
        _ => de.deserialize_any(Scalar {
            kind,
            num,
            tagged,
            out,
        }),
    }
}

/// A scalar value written as `kind`: 64-bit integers may be strings, doubles may be "NaN",
/// "Infinity" or "-Infinity", ids are hex and bytes base64.
struct Scalar<'a> {
    kind: Kind,
    num: u32,
    tagged: bool,
    out: &'a mut Out,
}

impl Scalar<'_> {
    fn tag(&mut self) {
        if self.tagged {
            tag(&mut self.out.buf, self.num, wire_type(self.kind));
        }
    }

    fn bytes(&mut self, b: &[u8]) {
        tag(&mut self.out.buf, self.num, 2);
        varint(&mut self.out.buf, b.len() as u64);
        self.out.buf.extend_from_slice(b);
    }

    fn int<E: de::Error>(
        mut self,
        v: i128,
        text: &dyn Fn() -> de::Unexpected<'static>,
    ) -> Result<(), E> {
        let range = |lo: i128, hi: i128| {
            if (lo..=hi).contains(&v) {
                Ok(())
            } else {
                Err(E::invalid_value(text(), &self))
            }
        };
        match self.kind {
            U32 | Fixed32 => range(0, i128::from(u32::MAX))?,
            I32 | S32 => range(i128::from(i32::MIN), i128::from(i32::MAX))?,
            I64 | SFixed64 => range(i128::from(i64::MIN), i128::from(i64::MAX))?,
            U64 | Fixed64 => range(0, i128::from(u64::MAX))?,
            Double => return self.double(v as f64),
            _ => return Err(E::invalid_type(text(), &self)),
        }
        self.tag();
        let buf = &mut self.out.buf;
        match self.kind {
            U32 | U64 => varint(buf, v as u64),
            // Negative int32 and int64 are 10-byte varints of their two's complement.
            I32 | I64 => varint(buf, v as i64 as u64),
            S32 => {
                let v = v as i32;
                varint(buf, u64::from(((v << 1) ^ (v >> 31)) as u32));
            }
            Fixed32 => buf.extend_from_slice(&(v as u32).to_le_bytes()),
            Fixed64 => buf.extend_from_slice(&(v as u64).to_le_bytes()),
            SFixed64 => buf.extend_from_slice(&(v as i64).to_le_bytes()),
            _ => {}
        }
        Ok(())
    }

    fn double<E: de::Error>(mut self, v: f64) -> Result<(), E> {
        self.tag();
        self.out.buf.extend_from_slice(&v.to_le_bytes());
        Ok(())
    }
}

impl<'de> Visitor<'de> for Scalar<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(match self.kind {
            Msg(&_) => "a JSON object",
            Str => "a string",
            Id(_) => "a string representing hex-encoded bytes",
            Base64 => "a base64 string",
            Bool => "a boolean",
            Double => "a number or a string representing NaN, Infinity, or -Infinity",
            U32 | I32 | S32 | Fixed32 => "a 32-bit integer",
            I64 | U64 | Fixed64 | SFixed64 => "a 64-bit integer or a string containing one",
        })
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        // An array element of `null`; a field of `null` never gets here.
        Ok(())
    }

    fn visit_bool<E: de::Error>(mut self, v: bool) -> Result<(), E> {
        if !matches!(self.kind, Bool) {
            return Err(E::invalid_type(de::Unexpected::Bool(v), &self));
        }
        self.tag();
        self.out.buf.push(u8::from(v));
        Ok(())
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
        self.int(i128::from(v), &move || de::Unexpected::Unsigned(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<(), E> {
        self.int(i128::from(v), &move || de::Unexpected::Signed(v))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
        if !matches!(self.kind, Double) {
            return Err(E::invalid_type(de::Unexpected::Float(v), &self));
        }
        self.double(v)
    }

    fn visit_str<E: de::Error>(mut self, s: &str) -> Result<(), E> {
        match self.kind {
            Str => {
                self.bytes(s.as_bytes());
                Ok(())
            }
            Id(len) => {
                if s.is_empty() {
                    return Ok(());
                }
                if s.len() != 2 * len {
                    self.out.bad_id = Some((
                        if len == 16 {
                            IdKind::Trace
                        } else {
                            IdKind::Span
                        },
                        s.len() / 2,
                    ));
                    return Err(E::custom(ID_LENGTH));
                }
                let mut id = [0u8; 16];
                for (i, pair) in s.as_bytes().chunks(2).enumerate() {
                    let hi = hex(pair[0]);
                    let lo = hex(pair[1]);
                    match (hi, lo, id.get_mut(i)) {
                        (Some(hi), Some(lo), Some(b)) => *b = (hi << 4) | lo,
                        _ => return Err(E::custom("invalid hex character in ID")),
                    }
                }
                self.bytes(&id[..len]);
                Ok(())
            }
            Base64 => {
                let decoded = base64(s).ok_or_else(|| E::custom("invalid base64 in bytesValue"))?;
                self.bytes(&decoded);
                Ok(())
            }
            Double => match s {
                "NaN" => self.double(f64::NAN),
                "Infinity" => self.double(f64::INFINITY),
                "-Infinity" => self.double(f64::NEG_INFINITY),
                _ => match s.parse::<f64>() {
                    Ok(v) => self.double(v),
                    Err(_) => Err(E::invalid_value(de::Unexpected::Str(s), &self)),
                },
            },
            U32 | I32 | S32 | I64 | U64 | Fixed32 | Fixed64 | SFixed64 => match s.parse::<i128>() {
                Ok(v) => self.int(v, &|| de::Unexpected::Other("string")),
                Err(_) => Err(E::invalid_value(de::Unexpected::Str(s), &self)),
            },
            Bool | Msg(&_) => Err(E::invalid_type(de::Unexpected::Str(s), &self)),
        }
    }
}

fn hex(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Standard base64 with optional padding.
fn base64(s: &str) -> Option<Vec<u8>> {
    let body = s.trim_end_matches('=');
    if s.len() - body.len() > 2 || body.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(body.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in body.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}
