//! Helpers for the delivery end-to-end tests: numbered spans sent over real OTLP/gRPC,
//! delivery accounting at the backend, metric lookups that accept `_total` or not.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};

use crate::common::Backend;

/// A request carrying spans `first..first+n`; the span id is the number, big-endian.
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

/// A gRPC client to the collector's receiver.
pub async fn client(url: String) -> TraceServiceClient<tonic::transport::Channel> {
    TraceServiceClient::connect(url)
        .await
        .expect("connect to the collector")
}

/// Span id → times received at the backend.
pub fn arrivals(backend: &Backend) -> BTreeMap<u64, u32> {
    let mut out = BTreeMap::new();
    for s in backend.spans() {
        if let Ok(id) = <[u8; 8]>::try_from(s.span_id.as_slice()) {
            *out.entry(u64::from_be_bytes(id)).or_default() += 1;
        }
    }
    out
}

/// Waits (bounded) until every id in `ids` arrived; returns the ids still missing.
pub async fn wait_all(backend: &Backend, ids: &[u64], timeout: Duration) -> Vec<u64> {
    let want: Vec<u64> = ids.to_vec();
    backend
        .wait_until(timeout, |r| {
            let got: std::collections::HashSet<u64> = r
                .traces
                .iter()
                .flat_map(|t| &t.resource_spans)
                .flat_map(|rs| &rs.scope_spans)
                .flat_map(|ss| &ss.spans)
                .filter_map(|s| <[u8; 8]>::try_from(s.span_id.as_slice()).ok())
                .map(u64::from_be_bytes)
                .collect();
            want.iter().all(|i| got.contains(i))
        })
        .await;
    let got = arrivals(backend);
    ids.iter()
        .copied()
        .filter(|i| !got.contains_key(i))
        .collect()
}

/// The value of the series `name` whose labels include every `k="v"` pair of `labels`
/// (comma-separated, any order), with or without the `_total` suffix.
pub fn series(text: &str, name: &str, labels: &str) -> Option<f64> {
    let want: Vec<&str> = labels.split(',').filter(|l| !l.is_empty()).collect();
    text.lines().find_map(|l| {
        let (head, value) = l.rsplit_once(' ')?;
        let (n, rest) = match head.split_once('{') {
            Some((n, rest)) => (n, rest.trim_end_matches('}')),
            None => (head, ""),
        };
        if n != name && n != format!("{name}_total") {
            return None;
        }
        let have: Vec<&str> = rest.split(',').collect();
        if !want.iter().all(|w| have.contains(w)) {
            return None;
        }
        value.trim().parse().ok()
    })
}
