//! Helpers for the delivery end-to-end tests: numbered spans sent over real OTLP/gRPC,
//! delivery accounting at the backend, metric lookups that accept `_total` or not (the
//! shared parts come from `wasmcol-testkit`).
#![allow(dead_code)]
// Test code: a failed expectation is reported by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;

use crate::common::Backend;

/// A gRPC client to the collector's receiver.
pub async fn client(url: String) -> TraceServiceClient<tonic::transport::Channel> {
    TraceServiceClient::connect(url)
        .await
        .expect("connect to the collector")
}

/// Span id → times received at the backend.
pub fn arrivals(backend: &Backend) -> BTreeMap<u64, u32> {
    backend.with(|r| wasmcol_testkit::spans::arrivals(&r.traces))
}

/// Waits (bounded) until every id in `ids` arrived; returns the ids still missing.
pub async fn wait_all(backend: &Backend, ids: &[u64], timeout: Duration) -> Vec<u64> {
    let want: Vec<u64> = ids.to_vec();
    backend
        .wait_until(timeout, |r| {
            let got: std::collections::HashSet<u64> =
                wasmcol_testkit::spans::ids(&r.traces).into_iter().collect();
            want.iter().all(|i| got.contains(i))
        })
        .await;
    let got = arrivals(backend);
    ids.iter()
        .copied()
        .filter(|i| !got.contains_key(i))
        .collect()
}
