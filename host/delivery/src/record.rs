//! The on-disk form of one queued request.
//!
//! ```text
//! offset  size  field
//! 0       2     magic "WQ"
//! 2       1     format version: 1 payload as received, 2 payload zstd-compressed,
//!               3 and 4 as 1 and 2 with the request context before the payload
//! 3       1     signal (0 traces, 1 metrics, 2 logs)
//! 4       4     item count, u32 little-endian
//! 8       4     CRC-32 (IEEE) of the stored payload, u32 little-endian
//! version 1:
//! 12      n     payload: the OTLP Export*ServiceRequest protobuf, as received
//! version 2:
//! 12      4     length of the protobuf once decompressed, u32 little-endian
//! 16      n     payload: that protobuf as one zstd frame
//! versions 3 and 4: after the fields of 1 or 2 (at 12 or 16), before the payload:
//! +0      4     length L of the context, u32 little-endian
//! +4      L     the request context: entry count (u32), then per entry the key and its
//!               values, each string a u32 length and UTF-8 bytes, each value list a u32
//!               count first
//! ```
//!
//! The checksum covers everything after the fixed fields (the context and the payload).
//! A request without context is written as version 1 or 2, so records of the common case
//! stay readable by an older wasmcol; one with context (a receiver's `include_metadata`
//! behind a `batch` with `metadata_keys`) keeps it across a restart, for `headers_setter`.
//!
//! wasmcol writes version 2 (OTLP repeats keys, names and ids, so a request shrinks at zstd
//! level 1, and the disk holds that many more requests through an outage while fjall writes
//! that much less);
//! a request that does not shrink, or is larger than [`MAX_COMPRESSED_PAYLOAD`], is written as
//! version 1. Both versions are read, so a queue written by an older wasmcol replays.
//!
//! Keys are the queue's sequence numbers as big-endian u64, so key order is queue order.
//! The checksum catches a record damaged on disk before its bytes reach a backend.

use std::io::Read;

use bytes::Bytes;
use wasmcol_core::pdata::RequestContext;
use wasmcol_core::{Batch, Signal};

/// Record magic.
pub const MAGIC: [u8; 2] = *b"WQ";
/// Format version of a record whose payload is stored as received.
pub const VERSION_RAW: u8 = 1;
/// Format version of a record whose payload is zstd-compressed.
pub const VERSION_ZSTD: u8 = 2;
/// Format version 1 with the request context.
pub const VERSION_RAW_CONTEXT: u8 = 3;
/// Format version 2 with the request context.
pub const VERSION_ZSTD_CONTEXT: u8 = 4;
/// Bytes before the payload of a version 1 record.
pub const HEADER_LEN: usize = 12;
/// Bytes before the payload of a version 2 record.
pub const HEADER_LEN_ZSTD: usize = 16;
/// Largest payload written compressed; larger ones are stored as received. It also bounds
/// what decompressing a record may allocate, whatever its header claims.
pub const MAX_COMPRESSED_PAYLOAD: usize = 64 << 20;
/// zstd level: the fastest, since compression runs on every enqueue.
const ZSTD_LEVEL: i32 = 1;

/// Why a stored record cannot be used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CorruptRecord {
    /// Shorter than a header.
    #[error("record of {0} bytes is shorter than its header")]
    Short(usize),
    /// Not a wasmcol queue record.
    #[error("bad magic")]
    Magic,
    /// Written by a newer wasmcol.
    #[error("unknown record format version {0}")]
    Version(u8),
    /// Another signal's data.
    #[error("record holds {found} but the queue holds {expected}")]
    Signal {
        /// The queue's signal.
        expected: String,
        /// What the record says.
        found: String,
    },
    /// The payload changed after it was written.
    #[error("payload checksum mismatch")]
    Checksum,
    /// The compressed payload does not decompress to the length its header gives.
    #[error("payload does not decompress: {0}")]
    Compression(String),
    /// The stored request context does not parse.
    #[error("request context does not parse: {0}")]
    Context(String),
    /// The payload is not a valid export request.
    #[error("payload does not decode: {0}")]
    Payload(String),
    /// The key is not a sequence number.
    #[error("key of {0} bytes is not a sequence number")]
    Key(usize),
}

fn signal_code(s: Signal) -> u8 {
    match s {
        Signal::Traces => 0,
        Signal::Metrics => 1,
        Signal::Logs => 2,
    }
}

fn signal_from(code: u8) -> Option<Signal> {
    match code {
        0 => Some(Signal::Traces),
        1 => Some(Signal::Metrics),
        2 => Some(Signal::Logs),
        _ => None,
    }
}

/// The key for sequence number `seq`.
pub fn key(seq: u64) -> [u8; 8] {
    seq.to_be_bytes()
}

/// The sequence number in a key.
pub fn seq_of(key: &[u8]) -> Result<u64, CorruptRecord> {
    let arr: [u8; 8] = key.try_into().map_err(|_| CorruptRecord::Key(key.len()))?;
    Ok(u64::from_be_bytes(arr))
}

/// The fixed fields; the checksum covers `context` and `stored`, which follow them (after
/// `extra` more bytes).
fn header(version: u8, batch: &Batch, context: &[u8], stored: &[u8], extra: usize) -> Vec<u8> {
    let items = u32::try_from(batch.item_count()).unwrap_or(u32::MAX);
    let mut out = Vec::with_capacity(HEADER_LEN + extra + context.len() + stored.len());
    out.extend_from_slice(&MAGIC);
    out.push(if context.is_empty() {
        version
    } else {
        version + 2
    });
    out.push(signal_code(batch.signal()));
    out.extend_from_slice(&items.to_le_bytes());
    let mut crc = crc32fast::Hasher::new();
    crc.update(context);
    crc.update(stored);
    out.extend_from_slice(&crc.finalize().to_le_bytes());
    out
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u32).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// The context block of versions 3 and 4 (length first); empty for an empty context.
fn context_block(context: &RequestContext) -> Vec<u8> {
    if context.is_empty() {
        return Vec::new();
    }
    let mut body = Vec::new();
    let entries: Vec<(&str, &[String])> = context.iter().collect();
    body.extend_from_slice(&(entries.len() as u32).to_le_bytes());
    for (key, values) in entries {
        put_str(&mut body, key);
        body.extend_from_slice(&(values.len() as u32).to_le_bytes());
        for v in values {
            put_str(&mut body, v);
        }
    }
    let mut out = Vec::with_capacity(4 + body.len());
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(&body);
    out
}

/// Reads a context block's body; every length is checked against the bytes present.
fn parse_context(mut b: &[u8]) -> Result<RequestContext, CorruptRecord> {
    fn u32_at(b: &mut &[u8]) -> Result<usize, CorruptRecord> {
        let Some((head, rest)) = b.split_first_chunk::<4>() else {
            return Err(CorruptRecord::Context("truncated".into()));
        };
        *b = rest;
        Ok(u32::from_le_bytes(*head) as usize)
    }
    fn string(b: &mut &[u8]) -> Result<String, CorruptRecord> {
        let n = u32_at(b)?;
        if n > b.len() {
            return Err(CorruptRecord::Context(
                "string longer than the record".into(),
            ));
        }
        let (s, rest) = b.split_at(n);
        *b = rest;
        String::from_utf8(s.to_vec()).map_err(|e| CorruptRecord::Context(e.to_string()))
    }
    let count = u32_at(&mut b)?;
    let mut entries = Vec::new();
    for _ in 0..count {
        let key = string(&mut b)?;
        let n = u32_at(&mut b)?;
        let mut values = Vec::new();
        for _ in 0..n {
            values.push(string(&mut b)?);
        }
        entries.push((key, values));
    }
    if !b.is_empty() {
        return Err(CorruptRecord::Context(format!(
            "{} bytes left over",
            b.len()
        )));
    }
    Ok(RequestContext::new(entries))
}

/// Encodes a request as a version 1 record (3 with a request context): the payload is the
/// batch's wire bytes as they are (no re-encode when untouched).
pub fn encode_raw(batch: &Batch) -> Vec<u8> {
    let payload = batch.encoded();
    let context = context_block(batch.context());
    let mut out = header(VERSION_RAW, batch, &context, &payload, 0);
    out.extend_from_slice(&context);
    out.extend_from_slice(&payload);
    out
}

/// Encodes a request as wasmcol stores it: a version 2 record with the payload
/// zstd-compressed, or version 1 when compression does not shrink it or it is larger than
/// [`MAX_COMPRESSED_PAYLOAD`].
pub fn encode(batch: &Batch) -> Vec<u8> {
    let payload = batch.encoded();
    if payload.len() > MAX_COMPRESSED_PAYLOAD {
        return encode_raw(batch);
    }
    let Ok(compressed) = zstd::bulk::compress(&payload, ZSTD_LEVEL) else {
        return encode_raw(batch);
    };
    if compressed.len() + (HEADER_LEN_ZSTD - HEADER_LEN) >= payload.len() {
        return encode_raw(batch);
    }
    let context = context_block(batch.context());
    let mut out = header(
        VERSION_ZSTD,
        batch,
        &context,
        &compressed,
        HEADER_LEN_ZSTD - HEADER_LEN,
    );
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&context);
    out.extend_from_slice(&compressed);
    out
}

/// What the header says about a record whose checksum matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordInfo {
    /// Spans, points or log records.
    pub items: u64,
    /// Bytes of the protobuf payload (once decompressed).
    pub payload_len: u64,
}

/// Where a checked record's stored payload starts, how long it is once decompressed
/// (`None` when stored as is), and where its context block's body is.
struct Layout {
    payload_at: usize,
    decompressed_len: Option<usize>,
    context: Option<std::ops::Range<usize>>,
}

fn layout(value: &[u8], expected: Signal) -> Result<(RecordInfo, Layout), CorruptRecord> {
    if value.len() < HEADER_LEN {
        return Err(CorruptRecord::Short(value.len()));
    }
    if value[0..2] != MAGIC {
        return Err(CorruptRecord::Magic);
    }
    let mut layout = match value[2] {
        VERSION_RAW | VERSION_RAW_CONTEXT => Layout {
            payload_at: HEADER_LEN,
            decompressed_len: None,
            context: None,
        },
        VERSION_ZSTD | VERSION_ZSTD_CONTEXT => {
            if value.len() < HEADER_LEN_ZSTD {
                return Err(CorruptRecord::Short(value.len()));
            }
            let len = u32::from_le_bytes([value[12], value[13], value[14], value[15]]) as usize;
            Layout {
                payload_at: HEADER_LEN_ZSTD,
                decompressed_len: Some(len),
                context: None,
            }
        }
        v => return Err(CorruptRecord::Version(v)),
    };
    // The checksum covers what follows the fixed fields: the context block, if any, and the
    // payload.
    let covered_at = layout.payload_at;
    if matches!(value[2], VERSION_RAW_CONTEXT | VERSION_ZSTD_CONTEXT) {
        let at = layout.payload_at;
        let Some(len) = value.get(at..at + 4) else {
            return Err(CorruptRecord::Short(value.len()));
        };
        let len = u32::from_le_bytes([len[0], len[1], len[2], len[3]]) as usize;
        let end = (at + 4)
            .checked_add(len)
            .filter(|end| *end <= value.len())
            .ok_or(CorruptRecord::Short(value.len()))?;
        layout.context = Some(at + 4..end);
        layout.payload_at = end;
    }
    let signal = signal_from(value[3]);
    if signal != Some(expected) {
        return Err(CorruptRecord::Signal {
            expected: expected.to_string(),
            found: signal.map_or_else(|| format!("signal code {}", value[3]), |s| s.to_string()),
        });
    }
    let items = u32::from_le_bytes([value[4], value[5], value[6], value[7]]);
    let crc = u32::from_le_bytes([value[8], value[9], value[10], value[11]]);
    // For version 2 the length field is outside the checksum: a damaged one fails the
    // decompression, which must produce exactly that many bytes.
    if crc32fast::hash(&value[covered_at..]) != crc {
        return Err(CorruptRecord::Checksum);
    }
    let stored = &value[layout.payload_at..];
    let info = RecordInfo {
        items: u64::from(items),
        payload_len: layout.decompressed_len.unwrap_or(stored.len()) as u64,
    };
    Ok((info, layout))
}

/// Checks a record's header and checksum without decompressing or decoding the payload.
pub fn check(value: &[u8], expected: Signal) -> Result<RecordInfo, CorruptRecord> {
    layout(value, expected).map(|(info, _)| info)
}

/// Decompresses a version 2 payload into exactly `len` bytes, never allocating more than
/// [`MAX_COMPRESSED_PAYLOAD`] whatever the header claims.
fn decompress(stored: &[u8], len: usize) -> Result<Vec<u8>, CorruptRecord> {
    if len > MAX_COMPRESSED_PAYLOAD {
        return Err(CorruptRecord::Compression(format!(
            "header claims {len} bytes, more than a compressed record holds"
        )));
    }
    let decoder = zstd::stream::read::Decoder::new(stored)
        .map_err(|e| CorruptRecord::Compression(e.to_string()))?;
    let mut out = Vec::with_capacity(len);
    decoder
        .take(len as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| CorruptRecord::Compression(e.to_string()))?;
    if out.len() != len {
        return Err(CorruptRecord::Compression(format!(
            "{} bytes where the header says {len}",
            out.len()
        )));
    }
    Ok(out)
}

/// Checks and decodes a record into a batch (the payload is decompressed and validated, not
/// decoded).
pub fn decode(value: &[u8], expected: Signal) -> Result<Batch, CorruptRecord> {
    let (_, layout) = layout(value, expected)?;
    let stored = &value[layout.payload_at..];
    let payload = match layout.decompressed_len {
        None => Bytes::copy_from_slice(stored),
        Some(len) => Bytes::from(decompress(stored, len)?),
    };
    let batch = Batch::from_encoded(expected, payload)
        .map_err(|e| CorruptRecord::Payload(e.to_string()))?;
    Ok(match layout.context {
        Some(range) => batch.with_context(parse_context(&value[range])?),
        None => batch,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
    use prost::Message;

    fn batch(n: usize) -> Batch {
        let req = ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                scope_spans: vec![ScopeSpans {
                    spans: (0..n)
                        .map(|i| Span {
                            name: format!("s{i}"),
                            span_id: (i as u64).to_be_bytes().to_vec(),
                            trace_id: vec![1; 16],
                            ..Default::default()
                        })
                        .collect(),
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        Batch::from_encoded(Signal::Traces, Bytes::from(req.encode_to_vec())).unwrap()
    }

    #[test]
    fn round_trip_and_damage_detection() {
        let b = batch(3);
        for rec in [encode_raw(&b), encode(&batch(300))] {
            let info = check(&rec, Signal::Traces).unwrap();
            let back = decode(&rec, Signal::Traces).unwrap();
            assert_eq!(info.items, back.item_count() as u64);
            assert_eq!(info.payload_len, back.encoded_len() as u64);
            assert!(matches!(
                check(&rec, Signal::Logs),
                Err(CorruptRecord::Signal { .. })
            ));
            let mut bad = rec.clone();
            let last = bad.len() - 1;
            bad[last] ^= 0xff;
            assert_eq!(check(&bad, Signal::Traces), Err(CorruptRecord::Checksum));
        }
        let rec = encode_raw(&b);
        assert_eq!(rec[2], VERSION_RAW);
        let back = decode(&rec, Signal::Traces).unwrap();
        assert_eq!(back.encoded(), b.encoded());
        assert_eq!(
            check(&rec[..5], Signal::Traces),
            Err(CorruptRecord::Short(5))
        );
        assert_eq!(
            check(b"garbage-garbage", Signal::Traces),
            Err(CorruptRecord::Magic)
        );
        assert_eq!(seq_of(&key(42)).unwrap(), 42);
        assert!(key(1) < key(256), "big-endian keys sort in queue order");
    }

    #[test]
    fn requests_are_stored_compressed_when_that_shrinks_them() {
        let big = batch(300);
        let rec = encode(&big);
        assert_eq!(rec[2], VERSION_ZSTD);
        assert!(
            rec.len() * 3 < big.encoded_len(),
            "{} bytes stored for {}",
            rec.len(),
            big.encoded_len()
        );
        assert_eq!(
            decode(&rec, Signal::Traces).unwrap().encoded(),
            big.encoded()
        );
        // A payload that does not shrink (a span of random ids) is stored as received.
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut random = |n: usize| -> Vec<u8> {
            (0..n)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect()
        };
        let req = ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                scope_spans: vec![ScopeSpans {
                    spans: vec![Span {
                        trace_id: random(16),
                        span_id: random(8),
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        let tiny = Batch::from_encoded(Signal::Traces, Bytes::from(req.encode_to_vec())).unwrap();
        assert_eq!(encode(&tiny), encode_raw(&tiny));
    }

    #[test]
    fn a_wrong_decompressed_length_is_corrupt() {
        let b = batch(300);
        let rec = encode(&b);
        for len in [b.encoded_len() - 1, b.encoded_len() + 1, u32::MAX as usize] {
            let mut bad = rec.clone();
            bad[12..16].copy_from_slice(&(len as u32).to_le_bytes());
            // The length is outside the checksum: the header checks, decoding does not.
            assert_eq!(check(&bad, Signal::Traces).unwrap().payload_len, len as u64);
            assert!(matches!(
                decode(&bad, Signal::Traces),
                Err(CorruptRecord::Compression(_))
            ));
        }
        assert_eq!(
            check(&rec[..14], Signal::Traces),
            Err(CorruptRecord::Short(14))
        );
        let mut future = rec.clone();
        future[2] = 5;
        assert_eq!(
            check(&future, Signal::Traces),
            Err(CorruptRecord::Version(5))
        );
    }

    /// Scenario: requests with a request context stored in both encodings, damaged, and a
    /// request without context. Guarantees: the context comes back as it went in (versions 3
    /// and 4), the checksum covers it, and a request without context is still written as
    /// version 1 or 2, which older wasmcol versions read.
    #[test]
    fn the_request_context_is_stored_with_the_record() {
        let ctx = RequestContext::new([
            ("x-tenant", vec!["acme".to_owned()]),
            ("auth.username", vec!["ann".to_owned(), "b".to_owned()]),
        ]);
        type Encoder = fn(&Batch) -> Vec<u8>;
        let cases: [(Batch, Encoder, u8); 2] = [
            (batch(3), encode_raw, VERSION_RAW_CONTEXT),
            (batch(300), encode, VERSION_ZSTD_CONTEXT),
        ];
        for (b, enc, version) in cases {
            let plain = enc(&b);
            assert!(plain[2] == VERSION_RAW || plain[2] == VERSION_ZSTD);
            let with = b.clone().with_context(ctx.clone());
            let rec = enc(&with);
            assert_eq!(rec[2], version);
            let back = decode(&rec, Signal::Traces).unwrap();
            assert_eq!(back.context(), &ctx);
            assert_eq!(back.encoded(), b.encoded());
            assert_eq!(
                check(&rec, Signal::Traces).unwrap().payload_len,
                b.encoded_len() as u64
            );
            // A changed byte in the context (the tenant's "a") fails the checksum.
            let at = rec.windows(4).position(|w| w == b"acme").unwrap();
            let mut bad = rec.clone();
            bad[at] = b'x';
            assert_eq!(check(&bad, Signal::Traces), Err(CorruptRecord::Checksum));
            // A context length beyond the record is short, not a panic.
            let mut long = rec.clone();
            let len_at = if version == VERSION_RAW_CONTEXT {
                12
            } else {
                16
            };
            long[len_at..len_at + 4].copy_from_slice(&u32::MAX.to_le_bytes());
            assert!(check(&long, Signal::Traces).is_err());
        }
        assert!(parse_context(&[1, 0, 0, 0, 9, 0, 0, 0]).is_err());
    }
}
