//! Shared pieces of the load generator, the counting sink and the throughput benchmark.

#![forbid(unsafe_code)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, span};
use prost::Message;

fn kv(k: &str, v: any_value::Value) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: Some(AnyValue { value: Some(v) }),
        ..Default::default()
    }
}

fn s(v: impl Into<String>) -> any_value::Value {
    any_value::Value::StringValue(v.into())
}

/// A realistic request: `spans` spans with 10 attributes and 2 events each (the shape the
/// plugin-boundary spike measured), trace ids derived from `seed` so requests differ.
pub fn traces_request(seed: u64, spans: usize) -> ExportTraceServiceRequest {
    let base = 1_700_000_000_000_000_000u64 + seed * 1_000_000;
    let spans = (0..spans)
        .map(|i| {
            let id = seed.wrapping_mul(1_000_003).wrapping_add(i as u64);
            let mut trace_id = id.to_be_bytes().to_vec();
            trace_id.extend_from_slice(&(id / 8).to_le_bytes());
            Span {
                trace_id,
                span_id: (id ^ 0x5bd1_e995).to_be_bytes().to_vec(),
                parent_span_id: if i % 4 == 0 {
                    Vec::new()
                } else {
                    (id - 1).to_be_bytes().to_vec()
                },
                name: format!("GET /api/v1/items/{}", i % 17),
                kind: span::SpanKind::Server as i32,
                start_time_unix_nano: base + i as u64 * 1000,
                end_time_unix_nano: base + i as u64 * 1000 + 250_000,
                attributes: vec![
                    kv("http.request.method", s("GET")),
                    kv("http.route", s("/api/v1/items/{id}")),
                    kv("http.response.status_code", any_value::Value::IntValue(200)),
                    kv(
                        "url.full",
                        s(format!("https://shop.example.com/api/v1/items/{}", i % 17)),
                    ),
                    kv("server.address", s("shop.example.com")),
                    kv("server.port", any_value::Value::IntValue(443)),
                    kv(
                        "user_agent.original",
                        s("Mozilla/5.0 (X11; Linux x86_64) loadgen/1.0"),
                    ),
                    kv("network.protocol.version", s("1.1")),
                    kv("app.cache_hit", any_value::Value::BoolValue(i % 3 == 0)),
                    kv(
                        "app.items_returned",
                        any_value::Value::IntValue((i % 50) as i64),
                    ),
                ],
                events: vec![
                    span::Event {
                        time_unix_nano: base + 1000,
                        name: "cache.lookup".into(),
                        attributes: vec![kv("cache.key", s(format!("item:{i}")))],
                        dropped_attributes_count: 0,
                    },
                    span::Event {
                        time_unix_nano: base + 2000,
                        name: "db.query".into(),
                        attributes: vec![kv("db.statement", s("SELECT * FROM items WHERE id = ?"))],
                        dropped_attributes_count: 0,
                    },
                ],
                status: Some(opentelemetry_proto::tonic::trace::v1::Status {
                    message: String::new(),
                    code: 1,
                }),
                ..Default::default()
            }
        })
        .collect();
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![
                    kv("service.name", s("checkout")),
                    kv("service.version", s("1.4.2")),
                    kv("host.name", s("node-7")),
                    kv("k8s.pod.name", s("checkout-7d9f8-abcde")),
                ],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: "io.opentelemetry.http".into(),
                    version: "2.1.0".into(),
                    ..Default::default()
                }),
                spans,
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    }
}

/// `count` different encoded requests of `spans` spans each.
pub fn encoded_requests(count: usize, spans: usize) -> Vec<Bytes> {
    (0..count)
        .map(|i| Bytes::from(traces_request(i as u64, spans).encode_to_vec()))
        .collect()
}

/// The request bodies a load sends, one per request.
pub enum Bodies {
    /// Pre-encoded requests sent in turn (trace IDs repeat every `len()` requests).
    Cycle(Vec<Bytes>),
    /// One pre-encoded request whose trace IDs are rewritten for every request, so each
    /// request carries traces never seen before (what a tail-sampling buffer must hold).
    FreshTraces(FreshTraces),
}

impl Bodies {
    /// The body of the `i`-th request.
    pub fn body(&self, i: usize) -> Bytes {
        match self {
            Bodies::Cycle(requests) => requests[i % requests.len()].clone(),
            Bodies::FreshTraces(fresh) => fresh.next(),
        }
    }
}

/// A request template of `spans_per_trace`-span traces and where its trace IDs sit.
///
/// Each trace ID is `[8-byte request number][4-byte marker][4-byte trace index]`; a new
/// request is the template copied with the request number patched in at every recorded
/// offset, so no encoding happens per request and the generator stays cheap.
pub struct FreshTraces {
    template: Bytes,
    offsets: Vec<usize>,
    next: AtomicU64,
}

/// Marks the trace IDs of a `FreshTraces` template so they can be found in its encoding.
const TRACE_MARKER: [u8; 4] = [0xf7, 0x1d, 0x5e, 0xa1];

impl FreshTraces {
    /// A template of `spans` spans in traces of `spans_per_trace` spans (the first span of
    /// each trace is its root; every 20th trace has an error span). Request numbers start
    /// at `first`, so several runs against one collector need different values.
    pub fn new(spans: usize, spans_per_trace: usize, first: u64) -> anyhow::Result<Self> {
        anyhow::ensure!(spans_per_trace > 0, "spans per trace must be positive");
        let mut req = traces_request(0, spans);
        let mut ids = Vec::new();
        let mut root = Vec::new();
        for rs in &mut req.resource_spans {
            for ss in &mut rs.scope_spans {
                for (i, span) in ss.spans.iter_mut().enumerate() {
                    let trace = (i / spans_per_trace) as u32;
                    let mut id = vec![0u8; 8];
                    id.extend_from_slice(&TRACE_MARKER);
                    id.extend_from_slice(&trace.to_be_bytes());
                    if i % spans_per_trace == 0 {
                        span.parent_span_id.clear();
                        root = span.span_id.clone();
                        ids.push(id.clone());
                    } else {
                        span.parent_span_id = root.clone();
                    }
                    if trace.is_multiple_of(20)
                        && i % spans_per_trace == spans_per_trace - 1
                        && let Some(status) = span.status.as_mut()
                    {
                        status.code = 2;
                    }
                    span.trace_id = id;
                }
            }
        }
        let template = req.encode_to_vec();
        let mut offsets = Vec::new();
        for id in &ids {
            let mut from = 0;
            while let Some(at) = template[from..]
                .windows(16)
                .position(|w| w == id.as_slice())
            {
                offsets.push(from + at);
                from += at + 16;
            }
        }
        anyhow::ensure!(
            offsets.len() == spans,
            "found {} trace IDs in the template, expected {spans}",
            offsets.len()
        );
        Ok(FreshTraces {
            template: Bytes::from(template),
            offsets,
            next: AtomicU64::new(first),
        })
    }

    /// The next request: the template with a request number no earlier request had.
    pub fn next(&self) -> Bytes {
        let n = self.next.fetch_add(1, Ordering::Relaxed).to_be_bytes();
        let mut body = self.template.to_vec();
        for &at in &self.offsets {
            body[at..at + 8].copy_from_slice(&n);
        }
        Bytes::from(body)
    }
}

/// User + system CPU seconds of process `pid`.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = f.get(11)?.parse().ok()?;
    let stime: f64 = f.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

/// Resident set size of process `pid`, bytes.
pub fn rss_bytes(pid: u32) -> Option<u64> {
    let statm = std::fs::read_to_string(format!("/proc/{pid}/statm")).ok()?;
    Some(statm.split_whitespace().nth(1)?.parse::<u64>().ok()? * 4096)
}

/// Result of a load run.
#[derive(Debug, Clone, Default)]
pub struct LoadResult {
    /// Requests answered OK in the measured window.
    pub requests: u64,
    /// Requests that failed.
    pub errors: u64,
    /// Spans acknowledged in the measured window.
    pub spans: u64,
    /// Length of the measured window.
    pub elapsed: Duration,
    /// Latency percentiles (p50, p99).
    pub p50: Duration,
    /// 99th percentile latency.
    pub p99: Duration,
}

/// Closed-loop gRPC load: `concurrency` workers each send a request and wait for the answer,
/// for `warmup` (not counted) then `duration` (counted). Requests are sent as raw bytes.
pub async fn grpc_load(
    endpoint: &str,
    requests: Arc<Bodies>,
    spans_per_request: usize,
    concurrency: usize,
    warmup: Duration,
    duration: Duration,
    gzip: bool,
) -> anyhow::Result<LoadResult> {
    let channel = tonic::transport::Channel::from_shared(endpoint.to_owned())?
        .initial_stream_window_size(4 << 20)
        .initial_connection_window_size(16 << 20)
        .connect()
        .await?;
    let start = Instant::now();
    let measure_from = start + warmup;
    let end = measure_from + duration;
    let ok = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let mut workers = Vec::new();
    for w in 0..concurrency {
        let channel = channel.clone();
        let requests = requests.clone();
        let (ok, errors) = (ok.clone(), errors.clone());
        workers.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut client = tonic::client::Grpc::new(channel);
            if gzip {
                client = client.send_compressed(tonic::codec::CompressionEncoding::Gzip);
            }
            let mut i = w;
            loop {
                let now = Instant::now();
                if now >= end {
                    break;
                }
                if client.ready().await.is_err() {
                    errors.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                let body = requests.body(i);
                i += concurrency;
                let path = http::uri::PathAndQuery::from_static(
                    "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
                );
                let r = client
                    .unary::<Bytes, Bytes, _>(
                        tonic::Request::new(body),
                        path,
                        wasmcol_otlp::BytesCodec,
                    )
                    .await;
                let done = Instant::now();
                if now >= measure_from && done <= end {
                    match r {
                        Ok(_) => {
                            ok.fetch_add(1, Ordering::Relaxed);
                            lat.push(done - now);
                        }
                        Err(_) => {
                            errors.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            }
            lat
        }));
    }
    let mut lat = Vec::new();
    for w in workers {
        lat.extend(w.await?);
    }
    lat.sort();
    let pct = |p: f64| {
        lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    let requests = ok.load(Ordering::Relaxed);
    Ok(LoadResult {
        requests,
        errors: errors.load(Ordering::Relaxed),
        spans: requests * spans_per_request as u64,
        elapsed: duration,
        p50: pct(0.5),
        p99: pct(0.99),
    })
}

#[cfg(test)]
mod tests {
    use std::collections::{HashMap, HashSet};

    use super::*;

    fn traces(body: &Bytes) -> HashMap<Vec<u8>, usize> {
        let req = ExportTraceServiceRequest::decode(body.clone()).unwrap();
        let mut by_id = HashMap::new();
        for span in &req.resource_spans[0].scope_spans[0].spans {
            *by_id.entry(span.trace_id.clone()).or_default() += 1;
        }
        by_id
    }

    #[test]
    fn fresh_traces_are_new_in_every_request() {
        let fresh = FreshTraces::new(200, 10, 7).unwrap();
        let (a, b) = (traces(&fresh.next()), traces(&fresh.next()));
        assert_eq!(a.len(), 20);
        assert!(a.values().chain(b.values()).all(|&n| n == 10));
        let a: HashSet<_> = a.into_keys().collect();
        assert!(b.keys().all(|id| !a.contains(id)));
    }
}
