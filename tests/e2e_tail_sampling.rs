//! End-to-end tests of the bundled `tail_sampling` processor through the real binary: the
//! spans of each trace arrive in several requests over time, traces are kept or dropped
//! whole by the policies (every ERROR trace, every trace above a latency threshold, about
//! 10 % of the rest by upstream's hash), and `num_traces` evictions are counted.
// Test code: a failed expectation is reported by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
mod plugins_support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use common::{Backend, Collector, WAIT, eventually, metric_value};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
use plugins_support::isolate_cache;

const SPANS_PER_TRACE: usize = 4;
const BASE_NS: u64 = 1_700_000_000_000_000_000;

fn gateway(backend: &Backend, num_traces: u32) -> String {
    format!(
        r#"
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:0
processors:
  tail_sampling:
    decision_wait: 1s
    num_traces: {num_traces}
    policies:
      - name: errors
        type: status_code
        status_code: {{status_codes: [ERROR]}}
      - name: slow
        type: latency
        latency: {{threshold_ms: 500}}
      - name: ten-percent
        type: probabilistic
        probabilistic: {{sampling_percentage: 10}}
exporters:
  otlp:
    endpoint: {}
    tls:
      insecure: true
service:
  pipelines:
    traces:
      receivers: [otlp]
      processors: [tail_sampling]
      exporters: [otlp]
"#,
        backend.endpoint()
    )
}

/// A well-spread trace ID for trace `i` (splitmix64).
fn trace_id(i: u64) -> [u8; 16] {
    let mix = |mut z: u64| {
        z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    let mut id = [0u8; 16];
    id[..8].copy_from_slice(&mix(2 * i).to_be_bytes());
    id[8..].copy_from_slice(&mix(2 * i + 1).to_be_bytes());
    id
}

/// Upstream's probabilistic policy at 10 % with the default salt.
fn probabilistic_keeps(id: &[u8; 16]) -> bool {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in b"default-hash-seed".iter().chain(id) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h <= (u64::MAX as f64 * 0.1) as u64
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Error,
    Slow,
    Plain,
}

fn kind(i: u64) -> Kind {
    match i % 10 {
        0 => Kind::Error,
        1 => Kind::Slow,
        _ => Kind::Plain,
    }
}

/// Span `s` of trace `i`: the error status and the long duration sit on the last span, which
/// arrives in the second request.
fn span(i: u64, s: usize) -> Span {
    let last = s == SPANS_PER_TRACE - 1;
    let start = BASE_NS + i * 1_000_000;
    let end = start
        + if last && kind(i) == Kind::Slow {
            800_000_000
        } else {
            10_000_000
        };
    Span {
        trace_id: trace_id(i).to_vec(),
        span_id: ((i << 8) | (s as u64 + 1)).to_be_bytes().to_vec(),
        name: format!("span {s}"),
        start_time_unix_nano: start,
        end_time_unix_nano: end,
        status: (last && kind(i) == Kind::Error).then(|| Status {
            code: 2,
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn request(
    traces: std::ops::Range<u64>,
    spans: std::ops::Range<usize>,
) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans: traces
                    .flat_map(|i| spans.clone().map(move |s| span(i, s)))
                    .collect(),
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

/// Acceptance: 300 traces of 4 spans, each trace's first two spans in one request and the
/// last two (with the error status or the long span) in another 300 ms later. Every ERROR
/// trace and every slow trace arrives complete, about 10 % of the others (exactly those
/// upstream's hash keeps) arrive complete, and nothing else arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traces_are_kept_or_dropped_whole_by_policy() {
    isolate_cache();
    let backend = Backend::start().await;
    let collector = Collector::start(&gateway(&backend, 10_000));
    let mut client = TraceServiceClient::connect(collector.grpc_url("otlp"))
        .await
        .unwrap();
    const TRACES: u64 = 300;
    for chunk in (0..TRACES).step_by(100) {
        client
            .export(request(chunk..chunk + 100, 0..2))
            .await
            .unwrap();
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    for chunk in (0..TRACES).step_by(100) {
        client
            .export(request(chunk..chunk + 100, 2..SPANS_PER_TRACE))
            .await
            .unwrap();
    }
    let kept: BTreeSet<[u8; 16]> = (0..TRACES)
        .filter(|&i| kind(i) != Kind::Plain || probabilistic_keeps(&trace_id(i)))
        .map(trace_id)
        .collect();
    let plain_kept = (0..TRACES)
        .filter(|&i| kind(i) == Kind::Plain && probabilistic_keeps(&trace_id(i)))
        .count();
    assert!(
        (8..=40).contains(&plain_kept),
        "about 10 % of 240 plain traces: {plain_kept}"
    );
    let want = kept.len() * SPANS_PER_TRACE;
    assert!(
        backend.wait_for_spans(want).await,
        "{} of {want} spans arrived",
        backend.spans().len()
    );
    // Nothing more comes: the other traces were dropped whole.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mut got: BTreeMap<[u8; 16], usize> = BTreeMap::new();
    for s in backend.spans() {
        *got.entry(s.trace_id.as_slice().try_into().unwrap())
            .or_default() += 1;
    }
    assert_eq!(
        got.keys().copied().collect::<BTreeSet<_>>(),
        kept,
        "kept traces differ from the policies' choice"
    );
    assert!(
        got.values().all(|&n| n == SPANS_PER_TRACE),
        "a kept trace arrived incomplete or twice: {got:?}"
    );
    let metrics = collector.scrape().await;
    let sampled = metric_value(
        &metrics,
        r#"otelcol_processor_tail_sampling_global_count_traces_sampled_total{processor="tail_sampling",sampled="true"}"#,
    );
    assert_eq!(sampled, Some(kept.len() as f64), "{metrics}");
    let early = metric_value(
        &metrics,
        r#"otelcol_processor_tail_sampling_sampling_trace_dropped_too_early_total{processor="tail_sampling"}"#,
    );
    assert_eq!(early, Some(0.0), "{metrics}");
}

/// `num_traces` bounds the buffer: with room for 20 traces, 100 new traces evict 80
/// undecided ones, counted; what stays is decided as usual.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn num_traces_evictions_are_counted() {
    isolate_cache();
    let backend = Backend::start().await;
    let collector = Collector::start(&gateway(&backend, 20));
    let mut client = TraceServiceClient::connect(collector.grpc_url("otlp"))
        .await
        .unwrap();
    client
        .export(request(0..100, 0..SPANS_PER_TRACE))
        .await
        .unwrap();
    let series = r#"otelcol_processor_tail_sampling_sampling_trace_dropped_too_early_total{processor="tail_sampling"}"#;
    assert!(
        eventually(WAIT, || async {
            collector.metric(series).await == Some(80.0)
        })
        .await,
        "{}",
        collector.scrape().await
    );
    // The 20 that stayed (80..100) are decided after decision_wait.
    let decided = r#"otelcol_processor_tail_sampling_global_count_traces_sampled_total{processor="tail_sampling",sampled="false"}"#;
    assert!(
        eventually(WAIT, || async {
            let s = collector.metric(decided).await.unwrap_or(0.0);
            let k = collector
                .metric(&decided.replace("\"false\"", "\"true\""))
                .await
                .unwrap_or(0.0);
            s + k == 20.0
        })
        .await,
        "{}",
        collector.scrape().await
    );
}

/// Seed 002's two tiers: two `load_balancing` collectors (traceID over a static list) in
/// front of three tail-sampling gateways, each gateway with its own backend. Each trace's
/// first two spans go to one load balancer and its last two, 300 ms later, to the other.
/// Guarantees: the kept traces (as the policies choose) arrive complete, each trace's spans
/// all at one gateway, every gateway gets a share, and the dropped traces arrive nowhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_tiers_keep_each_trace_whole_at_one_gateway() {
    isolate_cache();
    let backends = [
        Backend::start().await,
        Backend::start().await,
        Backend::start().await,
    ];
    let gateways: Vec<Collector> = backends
        .iter()
        .map(|b| Collector::start(&gateway(b, 10_000)))
        .collect();
    let hostnames: Vec<String> = gateways
        .iter()
        .map(|g| g.grpc_url("otlp").trim_start_matches("http://").to_owned())
        .collect();
    let lb_config = format!(
        r#"
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:0
exporters:
  loadbalancing:
    protocol:
      otlp:
        tls:
          insecure: true
    resolver:
      static:
        hostnames: [{}]
service:
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [loadbalancing]
"#,
        hostnames.join(", ")
    );
    let lbs = [Collector::start(&lb_config), Collector::start(&lb_config)];
    let mut first = TraceServiceClient::connect(lbs[0].grpc_url("otlp"))
        .await
        .unwrap();
    let mut second = TraceServiceClient::connect(lbs[1].grpc_url("otlp"))
        .await
        .unwrap();
    const TRACES: u64 = 300;
    for chunk in (0..TRACES).step_by(100) {
        first
            .export(request(chunk..chunk + 100, 0..2))
            .await
            .unwrap();
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    for chunk in (0..TRACES).step_by(100) {
        second
            .export(request(chunk..chunk + 100, 2..SPANS_PER_TRACE))
            .await
            .unwrap();
    }
    let kept: BTreeSet<[u8; 16]> = (0..TRACES)
        .filter(|&i| kind(i) != Kind::Plain || probabilistic_keeps(&trace_id(i)))
        .map(trace_id)
        .collect();
    let want = kept.len() * SPANS_PER_TRACE;
    let total = || backends.iter().map(|b| b.spans().len()).sum::<usize>();
    assert!(
        eventually(WAIT, || async { total() >= want }).await,
        "{} of {want} spans arrived",
        total()
    );
    // Nothing more comes: the other traces were dropped whole.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mut at: BTreeMap<[u8; 16], BTreeMap<usize, usize>> = BTreeMap::new();
    for (g, b) in backends.iter().enumerate() {
        for s in b.spans() {
            *at.entry(s.trace_id.as_slice().try_into().unwrap())
                .or_default()
                .entry(g)
                .or_default() += 1;
        }
    }
    assert_eq!(
        at.keys().copied().collect::<BTreeSet<_>>(),
        kept,
        "kept traces differ from the policies' choice"
    );
    for (trace, per_gateway) in &at {
        assert_eq!(
            per_gateway.len(),
            1,
            "trace {trace:02x?} reached several gateways: {per_gateway:?}"
        );
        assert_eq!(
            per_gateway.values().sum::<usize>(),
            SPANS_PER_TRACE,
            "trace {trace:02x?} incomplete or doubled"
        );
    }
    for (g, b) in backends.iter().enumerate() {
        assert!(!b.spans().is_empty(), "gateway {g} got no trace");
    }
}
