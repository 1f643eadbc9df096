//! Numbered spans: the span id is the number (big-endian), so a backend's arrivals can be
//! counted per span to find losses and duplicates.

use std::collections::BTreeMap;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};

/// A request carrying spans `first..first+n`, each in its own trace (trace id = eight zero
/// bytes then the number), span id = the number.
pub fn request(first: u64, n: u64) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans: (first..first + n)
                    .map(|i| Span {
                        name: format!("span-{i}"),
                        trace_id: [[0u8; 8], i.to_be_bytes()].concat(),
                        span_id: i.to_be_bytes().to_vec(),
                        start_time_unix_nano: 1,
                        end_time_unix_nano: 2,
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

/// The numbers of the spans in `requests`, in order; spans whose id is not eight bytes are
/// skipped.
pub fn ids<'a>(requests: impl IntoIterator<Item = &'a ExportTraceServiceRequest>) -> Vec<u64> {
    requests
        .into_iter()
        .flat_map(|r| &r.resource_spans)
        .flat_map(|rs| &rs.scope_spans)
        .flat_map(|ss| &ss.spans)
        .filter_map(|s| <[u8; 8]>::try_from(s.span_id.as_slice()).ok())
        .map(u64::from_be_bytes)
        .collect()
}

/// Span number → how many times it arrived.
pub fn arrivals<'a>(
    requests: impl IntoIterator<Item = &'a ExportTraceServiceRequest>,
) -> BTreeMap<u64, u32> {
    let mut out = BTreeMap::new();
    for id in ids(requests) {
        *out.entry(id).or_default() += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_duplicates_are_counted() {
        let a = request(5, 3);
        let b = request(6, 1);
        assert_eq!(ids([&a]), vec![5, 6, 7]);
        let n = arrivals([&a, &b]);
        assert_eq!(n.get(&6), Some(&2));
        assert_eq!(n.get(&5), Some(&1));
        assert_eq!(n.len(), 3);
    }
}
