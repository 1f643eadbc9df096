//! The on-disk form of one queued request.
//!
//! ```text
//! offset  size  field
//! 0       2     magic "WQ"
//! 2       1     format version (1)
//! 3       1     signal (0 traces, 1 metrics, 2 logs)
//! 4       4     item count, u32 little-endian
//! 8       4     CRC-32 (IEEE) of the payload, u32 little-endian
//! 12      n     payload: the OTLP Export*ServiceRequest protobuf, as received
//! ```
//!
//! Keys are the queue's sequence numbers as big-endian u64, so key order is queue order.
//! The checksum catches a record damaged on disk before its bytes reach a backend.

use bytes::Bytes;
use wasmcol_core::{Batch, Signal};

/// Record magic.
pub const MAGIC: [u8; 2] = *b"WQ";
/// Current format version.
pub const VERSION: u8 = 1;
/// Bytes before the payload.
pub const HEADER_LEN: usize = 12;

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

/// Encodes a request; the payload is the batch's wire bytes (no re-encode when untouched).
pub fn encode(batch: &Batch) -> Vec<u8> {
    let payload = batch.encoded();
    let items = u32::try_from(batch.item_count()).unwrap_or(u32::MAX);
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
    out.extend_from_slice(&MAGIC);
    out.push(VERSION);
    out.push(signal_code(batch.signal()));
    out.extend_from_slice(&items.to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
    out.extend_from_slice(&payload);
    out
}

/// What the header says about a record whose checksum matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordInfo {
    /// Spans, points or log records.
    pub items: u64,
    /// Payload bytes.
    pub payload_len: u64,
}

/// Checks a record's header and checksum without decoding the payload.
pub fn check(value: &[u8], expected: Signal) -> Result<RecordInfo, CorruptRecord> {
    if value.len() < HEADER_LEN {
        return Err(CorruptRecord::Short(value.len()));
    }
    if value[0..2] != MAGIC {
        return Err(CorruptRecord::Magic);
    }
    if value[2] != VERSION {
        return Err(CorruptRecord::Version(value[2]));
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
    let payload = &value[HEADER_LEN..];
    if crc32fast::hash(payload) != crc {
        return Err(CorruptRecord::Checksum);
    }
    Ok(RecordInfo {
        items: u64::from(items),
        payload_len: payload.len() as u64,
    })
}

/// Checks and decodes a record into a batch (the payload is validated, not decoded).
pub fn decode(value: &[u8], expected: Signal) -> Result<Batch, CorruptRecord> {
    check(value, expected)?;
    let payload = Bytes::copy_from_slice(&value[HEADER_LEN..]);
    Batch::from_encoded(expected, payload).map_err(|e| CorruptRecord::Payload(e.to_string()))
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
        let rec = encode(&b);
        let info = check(&rec, Signal::Traces).unwrap();
        assert_eq!(info.items, 3);
        let back = decode(&rec, Signal::Traces).unwrap();
        assert_eq!(back.encoded(), b.encoded());
        assert!(matches!(
            check(&rec, Signal::Logs),
            Err(CorruptRecord::Signal { .. })
        ));
        let mut bad = rec.clone();
        let last = bad.len() - 1;
        bad[last] ^= 0xff;
        assert_eq!(check(&bad, Signal::Traces), Err(CorruptRecord::Checksum));
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
}
