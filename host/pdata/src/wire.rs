//! A validating walk over OTLP protobuf bytes that counts items without decoding them.
//!
//! The receiver must refuse malformed input (400 / INVALID_ARGUMENT) and report item counts
//! for its metrics, but a forwarder should not pay for a full decode it never uses. This walk
//! checks the wire structure, the field wire types prost would check and the UTF-8 of string
//! fields, allocating nothing; a buffer it accepts decodes with prost.

use crate::DecodeError;

/// How one known field of a message is encoded.
#[derive(Clone, Copy)]
enum Kind {
    /// varint scalar (int, enum, bool); repeated ones may be packed
    Varint,
    /// 64-bit fixed scalar (fixed64, sfixed64, double); repeated ones may be packed
    Fixed64,
    /// 32-bit fixed scalar (fixed32)
    Fixed32,
    /// bytes: any content
    Bytes,
    /// a trace id: empty or 16 bytes (upstream pdata refuses any other length)
    TraceId,
    /// a span id: empty or 8 bytes
    SpanId,
    /// string: must be UTF-8
    Str,
    /// embedded message
    Msg(&'static Schema),
    /// repeated varint: packed (one length-delimited run) or one varint per element
    RepVarint,
    /// repeated 64-bit fixed: packed or one fixed64 per element
    RepFixed64,
    /// a field this walk does not know: skipped like prost skips it
    Unknown,
}

/// One past the highest field number of any OTLP message walked here (Span's `flags` is 16).
const FIELDS: usize = 17;

/// The known fields of one message type, indexed by field number so the walk does one array
/// load per field; unknown fields are skipped like prost does.
pub(crate) struct Schema {
    table: [Kind; FIELDS],
    /// Each occurrence of this message is one item (span, data point, log record).
    counts: bool,
}

use Kind::*;

const fn build(fields: &[(u32, Kind)], counts: bool) -> Schema {
    let mut table = [Unknown; FIELDS];
    let mut i = 0;
    while i < fields.len() {
        table[fields[i].0 as usize] = fields[i].1;
        i += 1;
    }
    Schema { table, counts }
}
const fn s(fields: &[(u32, Kind)]) -> Schema {
    build(fields, false)
}
const fn item(fields: &[(u32, Kind)]) -> Schema {
    build(fields, true)
}

static ANY_VALUE: Schema = s(&[
    (1, Str),
    (2, Varint),
    (3, Varint),
    (4, Fixed64),
    (5, Msg(&ARRAY_VALUE)),
    (6, Msg(&KV_LIST)),
    (7, Bytes),
    (8, Varint),
]);
static ARRAY_VALUE: Schema = s(&[(1, Msg(&ANY_VALUE))]);
static KV_LIST: Schema = s(&[(1, Msg(&KEY_VALUE))]);
static KEY_VALUE: Schema = s(&[(1, Str), (2, Msg(&ANY_VALUE)), (3, Varint)]);
static SCOPE: Schema = s(&[(1, Str), (2, Str), (3, Msg(&KEY_VALUE)), (4, Varint)]);
static ENTITY_REF: Schema = s(&[(1, Str), (2, Str), (3, Str), (4, Str)]);
static RESOURCE: Schema = s(&[(1, Msg(&KEY_VALUE)), (2, Varint), (3, Msg(&ENTITY_REF))]);

// traces
static STATUS: Schema = s(&[(2, Str), (3, Varint)]);
static EVENT: Schema = s(&[(1, Fixed64), (2, Str), (3, Msg(&KEY_VALUE)), (4, Varint)]);
static LINK: Schema = s(&[
    (1, TraceId),
    (2, SpanId),
    (3, Str),
    (4, Msg(&KEY_VALUE)),
    (5, Varint),
    (6, Fixed32),
]);
static SPAN: Schema = item(&[
    (1, TraceId),
    (2, SpanId),
    (3, Str),
    (4, SpanId),
    (5, Str),
    (6, Varint),
    (7, Fixed64),
    (8, Fixed64),
    (9, Msg(&KEY_VALUE)),
    (10, Varint),
    (11, Msg(&EVENT)),
    (12, Varint),
    (13, Msg(&LINK)),
    (14, Varint),
    (15, Msg(&STATUS)),
    (16, Fixed32),
]);
static SCOPE_SPANS: Schema = s(&[(1, Msg(&SCOPE)), (2, Msg(&SPAN)), (3, Str)]);
static RESOURCE_SPANS: Schema = s(&[(1, Msg(&RESOURCE)), (2, Msg(&SCOPE_SPANS)), (3, Str)]);
pub(crate) static TRACES_REQUEST: Schema = s(&[(1, Msg(&RESOURCE_SPANS))]);

// logs
static LOG_RECORD: Schema = item(&[
    (1, Fixed64),
    (2, Varint),
    (3, Str),
    (5, Msg(&ANY_VALUE)),
    (6, Msg(&KEY_VALUE)),
    (7, Varint),
    (8, Fixed32),
    (9, TraceId),
    (10, SpanId),
    (11, Fixed64),
    (12, Str),
]);
static SCOPE_LOGS: Schema = s(&[(1, Msg(&SCOPE)), (2, Msg(&LOG_RECORD)), (3, Str)]);
static RESOURCE_LOGS: Schema = s(&[(1, Msg(&RESOURCE)), (2, Msg(&SCOPE_LOGS)), (3, Str)]);
pub(crate) static LOGS_REQUEST: Schema = s(&[(1, Msg(&RESOURCE_LOGS))]);

// metrics
static EXEMPLAR: Schema = s(&[
    (7, Msg(&KEY_VALUE)),
    (2, Fixed64),
    (3, Fixed64),
    (6, Fixed64),
    (4, SpanId),
    (5, TraceId),
]);
static NUMBER_POINT: Schema = item(&[
    (7, Msg(&KEY_VALUE)),
    (2, Fixed64),
    (3, Fixed64),
    (4, Fixed64),
    (6, Fixed64),
    (5, Msg(&EXEMPLAR)),
    (8, Varint),
]);
static HISTOGRAM_POINT: Schema = item(&[
    (9, Msg(&KEY_VALUE)),
    (2, Fixed64),
    (3, Fixed64),
    (4, Fixed64),
    (5, Fixed64),
    (6, RepFixed64),
    (7, RepFixed64),
    (8, Msg(&EXEMPLAR)),
    (10, Varint),
    (11, Fixed64),
    (12, Fixed64),
]);
static BUCKETS: Schema = s(&[(1, Varint), (2, RepVarint)]);
static EXP_HISTOGRAM_POINT: Schema = item(&[
    (1, Msg(&KEY_VALUE)),
    (2, Fixed64),
    (3, Fixed64),
    (4, Fixed64),
    (5, Fixed64),
    (6, Varint),
    (7, Fixed64),
    (8, Msg(&BUCKETS)),
    (9, Msg(&BUCKETS)),
    (10, Varint),
    (11, Msg(&EXEMPLAR)),
    (12, Fixed64),
    (13, Fixed64),
    (14, Fixed64),
]);
static QUANTILE: Schema = s(&[(1, Fixed64), (2, Fixed64)]);
static SUMMARY_POINT: Schema = item(&[
    (7, Msg(&KEY_VALUE)),
    (2, Fixed64),
    (3, Fixed64),
    (4, Fixed64),
    (5, Fixed64),
    (6, Msg(&QUANTILE)),
    (8, Varint),
]);
static GAUGE: Schema = s(&[(1, Msg(&NUMBER_POINT))]);
static SUM: Schema = s(&[(1, Msg(&NUMBER_POINT)), (2, Varint), (3, Varint)]);
static HISTOGRAM: Schema = s(&[(1, Msg(&HISTOGRAM_POINT)), (2, Varint)]);
static EXP_HISTOGRAM: Schema = s(&[(1, Msg(&EXP_HISTOGRAM_POINT)), (2, Varint)]);
static SUMMARY: Schema = s(&[(1, Msg(&SUMMARY_POINT))]);
static METRIC: Schema = s(&[
    (1, Str),
    (2, Str),
    (3, Str),
    (5, Msg(&GAUGE)),
    (7, Msg(&SUM)),
    (9, Msg(&HISTOGRAM)),
    (10, Msg(&EXP_HISTOGRAM)),
    (11, Msg(&SUMMARY)),
    (12, Msg(&KEY_VALUE)),
]);
static SCOPE_METRICS: Schema = s(&[(1, Msg(&SCOPE)), (2, Msg(&METRIC)), (3, Str)]);
static RESOURCE_METRICS: Schema = s(&[(1, Msg(&RESOURCE)), (2, Msg(&SCOPE_METRICS)), (3, Str)]);
pub(crate) static METRICS_REQUEST: Schema = s(&[(1, Msg(&RESOURCE_METRICS))]);

/// prost's own recursion limit; deeper nesting (AnyValue in AnyValue…) is refused.
const MAX_DEPTH: u32 = 100;

/// Validates `buf` as the message described by `schema` and returns the number of items in it.
pub(crate) fn validate_and_count(buf: &[u8], schema: &Schema) -> Result<usize, DecodeError> {
    let mut count = 0usize;
    walk(buf, schema, 0, 0, &mut count)?;
    Ok(count)
}

/// A fault found by a low-level read, placed in the request by the caller that knows where
/// the read started (keeping offsets out of the per-byte loops).
#[derive(Clone, Copy)]
enum Fault {
    Truncated,
    Varint,
}

impl Fault {
    fn at(self, offset: usize) -> DecodeError {
        match self {
            Fault::Truncated => DecodeError::Truncated { offset },
            Fault::Varint => DecodeError::Varint { offset },
        }
    }
}

/// Walks one message occupying `buf`, which starts at byte `base` of the request.
fn walk(
    mut buf: &[u8],
    schema: &Schema,
    depth: u32,
    base: usize,
    count: &mut usize,
) -> Result<(), DecodeError> {
    if depth > MAX_DEPTH {
        return Err(DecodeError::TooDeep { offset: base });
    }
    if schema.counts {
        *count += 1;
    }
    let end = base + buf.len();
    while !buf.is_empty() {
        // Where this field's key starts; every fault below is reported there or at a later
        // element of the same field.
        let at = end - buf.len();
        let key = read_varint(&mut buf).map_err(|f| f.at(at))?;
        let wire = (key & 7) as u8;
        let field = key >> 3;
        if field == 0 || field > u64::from(u32::MAX >> 3) {
            return Err(DecodeError::FieldNumber { offset: at });
        }
        // Fits: checked against u32::MAX >> 3 just above.
        let number = field as u32;
        let kind = if field < FIELDS as u64 {
            schema.table[field as usize]
        } else {
            Unknown
        };
        let here = |buf: &[u8]| end - buf.len();
        match (kind, wire) {
            (_, 0) if matches!(kind, Unknown | Varint | RepVarint) => {
                let value_at = here(buf);
                read_varint(&mut buf).map_err(|f| f.at(value_at))?;
            }
            (_, 1) if matches!(kind, Unknown | Fixed64 | RepFixed64) => skip(&mut buf, 8, end)?,
            (_, 5) if matches!(kind, Unknown | Fixed32) => skip(&mut buf, 4, end)?,
            (Unknown | Bytes | TraceId | SpanId | Str | Msg(_) | RepVarint | RepFixed64, 2) => {
                let len_at = here(buf);
                let len = read_varint(&mut buf).map_err(|f| f.at(len_at))?;
                let len = usize::try_from(len)
                    .map_err(|_| DecodeError::LengthOverflow { offset: len_at })?;
                if len > buf.len() {
                    return Err(DecodeError::Truncated { offset: len_at });
                }
                let body_at = here(buf);
                let (body, rest) = buf.split_at(len);
                buf = rest;
                match kind {
                    Msg(inner) => walk(body, inner, depth + 1, body_at, count)?,
                    // Most OTLP strings are short ASCII, where a word-at-a-time check beats
                    // any UTF-8 validator's setup cost.
                    Str if !body.is_ascii() && simdutf8::basic::from_utf8(body).is_err() => {
                        return Err(DecodeError::Utf8 {
                            field: number,
                            offset: at,
                        });
                    }
                    // A wrong-length id makes a strict backend refuse the whole batch it
                    // is merged into, so it is refused here, with upstream pdata's text.
                    TraceId if !body.is_empty() && body.len() != 16 => {
                        return Err(DecodeError::IdLength {
                            id: crate::IdKind::Trace,
                            len: body.len(),
                            offset: at,
                        });
                    }
                    SpanId if !body.is_empty() && body.len() != 8 => {
                        return Err(DecodeError::IdLength {
                            id: crate::IdKind::Span,
                            len: body.len(),
                            offset: at,
                        });
                    }
                    RepFixed64 if body.len() % 8 != 0 => {
                        return Err(DecodeError::PackedLength {
                            field: number,
                            offset: at,
                        });
                    }
                    RepVarint => {
                        let mut packed = body;
                        while !packed.is_empty() {
                            let v_at = body_at + (body.len() - packed.len());
                            read_varint(&mut packed).map_err(|f| f.at(v_at))?;
                        }
                    }
                    _ => {}
                }
            }
            // Like prost: a wire type that cannot exist, or any wrong one on an unknown field,
            // is reported without the field number.
            (Unknown, _) | (_, 6 | 7) => {
                return Err(DecodeError::WireType {
                    field: None,
                    wire,
                    offset: at,
                });
            }
            (_, _) => {
                return Err(DecodeError::WireType {
                    field: Some(number),
                    wire,
                    offset: at,
                });
            }
        }
    }
    Ok(())
}

/// Skips `n` bytes of a fixed-width value; `end` is the request offset where `buf` ends.
fn skip(buf: &mut &[u8], n: usize, end: usize) -> Result<(), DecodeError> {
    if buf.len() < n {
        return Err(DecodeError::Truncated {
            offset: end - buf.len(),
        });
    }
    *buf = &buf[n..];
    Ok(())
}

#[inline(always)]
fn read_varint(buf: &mut &[u8]) -> Result<u64, Fault> {
    // Most keys and lengths in OTLP fit one byte.
    if let Some((&b, rest)) = buf.split_first()
        && b < 0x80
    {
        *buf = rest;
        return Ok(u64::from(b));
    }
    let mut value = 0u64;
    for i in 0..10 {
        let Some((&b, rest)) = buf.split_first() else {
            return Err(Fault::Truncated);
        };
        *buf = rest;
        value |= u64::from(b & 0x7f) << (7 * i);
        if b < 0x80 {
            if i == 9 && b > 1 {
                return Err(Fault::Varint);
            }
            return Ok(value);
        }
    }
    Err(Fault::Varint)
}
