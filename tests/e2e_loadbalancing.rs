//! The `load_balancing` exporter end to end: the real binary in front of real OTLP/gRPC
//! backends, spans sent over OTLP/gRPC, the ring checked against the backends' arrivals.
// Test code: a failed expectation is reported by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
mod delivery_support;

use std::collections::BTreeMap;

use common::{Backend, Collector, WAIT};
use delivery_support::{arrivals, client};
use wasmcol_loadbalancing::Ring;
use wasmcol_testkit::spans::request;

fn config(resolver: &str) -> String {
    format!(
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
{resolver}
service:
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [loadbalancing]
"#
    )
}

/// Scenario: three backends behind a static resolver (the seed's alias `loadbalancing`,
/// `routing_key` defaulting to `traceID`); 200 spans, each its own trace, in four requests.
/// Guarantees: every span arrives exactly once, at the backend upstream's ring assigns to
/// its trace id; every backend gets a share; the metrics count one successful resolution
/// and three backends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn static_backends_receive_the_traces_the_ring_assigns() {
    let backends = [
        Backend::start().await,
        Backend::start().await,
        Backend::start().await,
    ];
    let names: Vec<String> = backends.iter().map(Backend::endpoint).collect();
    let c = Collector::start(&config(&format!(
        "      static:\n        hostnames: [{}]",
        names.join(", ")
    )));
    let mut cl = client(c.grpc_url("otlp")).await;
    for first in [0u64, 50, 100, 150] {
        cl.export(request(first, 50)).await.unwrap();
    }
    let ring = Ring::new(names.clone());
    let mut expected: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for id in 0u64..200 {
        let trace: Vec<u8> = [[0u8; 8], id.to_be_bytes()].concat();
        let at = ring.endpoint_for(&trace).unwrap().to_owned();
        expected.entry(at).or_default().push(id);
    }
    assert_eq!(
        expected.len(),
        3,
        "the ring gave a backend nothing: {expected:?}"
    );
    for b in &backends {
        let want = &expected[&b.endpoint()];
        assert!(
            b.wait_for_spans(want.len()).await,
            "backend {} short",
            b.endpoint()
        );
    }
    for b in &backends {
        let got = arrivals(b);
        let want: BTreeMap<u64, u32> = expected[&b.endpoint()].iter().map(|&i| (i, 1)).collect();
        assert_eq!(got, want, "backend {}", b.endpoint());
    }
    let metric = |s: &'static str| {
        let c = &c;
        async move { c.metric(s).await }
    };
    assert_eq!(
        metric(r#"otelcol_loadbalancer_num_backends{resolver="static"}"#).await,
        Some(3.0)
    );
    assert!(
        metric(r#"otelcol_loadbalancer_num_resolutions_total{resolver="static",success="true"}"#)
            .await
            .is_some_and(|v| v >= 1.0)
    );
    assert!(
        metric(r#"otelcol_loadbalancer_backend_outcome_total{success="true"}"#)
            .await
            .is_some_and(|v| v >= 3.0)
    );
}

/// Scenario: the DNS resolver on `localhost` (answered from /etc/hosts, no network) with
/// `port` set to a backend's port.
/// Guarantees: the name resolves before the first request, every span arrives at that
/// backend, and the resolution is counted as a success.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns_backends_come_from_the_resolved_name() {
    let backend = Backend::start().await;
    let port = backend.addr.port();
    let c = Collector::start(&config(&format!(
        "      dns:\n        hostname: localhost\n        port: {port}\n        interval: 1s"
    )));
    let mut cl = client(c.grpc_url("otlp")).await;
    cl.export(request(0, 20)).await.unwrap();
    assert!(
        backend.wait_for_spans(20).await,
        "spans did not arrive in {WAIT:?}"
    );
    assert_eq!(arrivals(&backend).len(), 20);
    assert!(
        c.metric(r#"otelcol_loadbalancer_num_resolutions_total{resolver="dns",success="true"}"#)
            .await
            .is_some_and(|v| v >= 1.0)
    );
}

/// Scenario: a load_balancing config with a routing key missing its attributes, the k8s
/// resolver, a bad value in the `protocol.otlp` template, and a logs pipeline.
/// Guarantees: `validate` reports each with the component and key path, upstream's text
/// where upstream has one.
#[test]
fn validate_names_load_balancing_problems() {
    let dir = tempfile::tempdir().unwrap();
    let path = common::write_config(
        &dir,
        "lb.yaml",
        r#"
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:0
exporters:
  load_balancing:
    routing_key: attributes
    protocol:
      otlp:
        tls:
          insecure: maybe
    resolver:
      k8s:
        service: lb.ns
service:
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [load_balancing]
"#,
    );
    let (ok, _out, err) = common::run_cli(&["validate", "--config", &path]);
    assert!(!ok, "validate must fail");
    for expected in [
        "exporters::load_balancing: routing_attributes: routing_attributes must be specified when routing_key is \"attributes\"",
        "exporters::load_balancing: resolver.k8s: not supported by wasmcol",
        "exporters::load_balancing: protocol.otlp.tls.insecure: invalid type",
    ] {
        assert!(err.contains(expected), "missing {expected:?} in {err}");
    }
}
