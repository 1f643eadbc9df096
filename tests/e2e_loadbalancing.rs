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

/// A traces pipeline from OTLP/gRPC into `loadbalancing` with `resolver` (YAML lines).
fn config(resolver: &str) -> String {
    config_with("", "", resolver)
}

/// [`config`] with `top` and `otlp`: extra YAML lines for the exporter and its
/// `protocol.otlp` template.
fn config_with(top: &str, otlp: &str, resolver: &str) -> String {
    config_for("traces", top, otlp, resolver)
}

/// [`config_with`] for a `signal` pipeline (`traces`, `metrics` or `logs`).
fn config_for(signal: &str, top: &str, otlp: &str, resolver: &str) -> String {
    format!(
        r#"
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:0
exporters:
  loadbalancing:
{top}    protocol:
      otlp:
        tls:
          insecure: true
{otlp}    resolver:
{resolver}
service:
  pipelines:
    {signal}:
      receivers: [otlp]
      exporters: [loadbalancing]
"#
    )
}

/// `hostnames` of a static resolver, as [`config_with`] takes it.
fn static_hostnames(names: &[String]) -> String {
    format!("      static:\n        hostnames: [{}]", names.join(", "))
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

/// Scenario: three backends, `routing_key: attributes` on `[tenant, span.kind]`; 120 spans,
/// each its own trace, `tenant` a span attribute with six values, kind server.
/// Guarantees: every span arrives exactly once, at the backend upstream's ring assigns to
/// the key `tenant=<t>|span.kind=Server|`, and more than one backend is used.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attribute_routing_sends_each_key_to_its_backend() {
    use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
    let backends = [
        Backend::start().await,
        Backend::start().await,
        Backend::start().await,
    ];
    let names: Vec<String> = backends.iter().map(Backend::endpoint).collect();
    let c = Collector::start(&config_with(
        "    routing_key: attributes\n    routing_attributes: [tenant, span.kind]\n",
        "",
        &format!("      static:\n        hostnames: [{}]", names.join(", ")),
    ));
    let tenant = |id: u64| format!("t{}", id % 6);
    let mut req = request(0, 120);
    for span in &mut req.resource_spans[0].scope_spans[0].spans {
        let id = u64::from_be_bytes(span.span_id.as_slice().try_into().unwrap());
        span.kind = 2;
        span.attributes.push(KeyValue {
            key: "tenant".into(),
            value: Some(AnyValue {
                value: Some(any_value::Value::StringValue(tenant(id))),
            }),
            ..Default::default()
        });
    }
    client(c.grpc_url("otlp")).await.export(req).await.unwrap();
    let ring = Ring::new(names.clone());
    let mut expected: BTreeMap<String, BTreeMap<u64, u32>> = BTreeMap::new();
    for id in 0u64..120 {
        let key = format!("tenant={}|span.kind=Server|", tenant(id));
        let at = ring.endpoint_for(key.as_bytes()).unwrap().to_owned();
        expected.entry(at).or_default().insert(id, 1);
    }
    assert!(expected.len() > 1, "six keys on one backend: {expected:?}");
    for b in &backends {
        let want = expected.remove(&b.endpoint()).unwrap_or_default();
        assert!(b.wait_for_spans(want.len()).await, "{} short", b.endpoint());
        assert_eq!(arrivals(b), want, "backend {}", b.endpoint());
    }
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

/// A DNS server for one test: answers every A query with the current address list (and
/// AAAA queries with none), so the collector's system resolver sees backends come and go.
struct Dns {
    answers: std::sync::Arc<parking_lot::Mutex<Vec<std::net::Ipv4Addr>>>,
}

impl Dns {
    /// Serves on `addr` (port 53: resolv.conf cannot name another); `None` when it cannot bind.
    async fn start(addr: &str, answers: &[std::net::Ipv4Addr]) -> Option<Dns> {
        let sock = tokio::net::UdpSocket::bind(addr).await.ok()?;
        let list = std::sync::Arc::new(parking_lot::Mutex::new(answers.to_vec()));
        let shared = list.clone();
        tokio::spawn(async move {
            let mut buf = [0u8; 512];
            while let Ok((n, from)) = sock.recv_from(&mut buf).await {
                let ips = shared.lock().clone();
                if let Some(reply) = dns_reply(&buf[..n], &ips) {
                    let _ = sock.send_to(&reply, from).await;
                }
            }
        });
        Some(Dns { answers: list })
    }

    fn set(&self, answers: &[std::net::Ipv4Addr]) {
        *self.answers.lock() = answers.to_vec();
    }
}

/// The reply to one DNS query: the question echoed, one A record per address (TTL 0).
fn dns_reply(q: &[u8], ips: &[std::net::Ipv4Addr]) -> Option<Vec<u8>> {
    if q.len() < 12 {
        return None;
    }
    let mut i = 12;
    while *q.get(i)? != 0 {
        i += 1 + usize::from(q[i]);
    }
    let end = i + 5;
    let qtype = u16::from_be_bytes([*q.get(i + 1)?, *q.get(i + 2)?]);
    let ips = if qtype == 1 { ips } else { &[] };
    let mut r = Vec::with_capacity(end + 16 * ips.len());
    r.extend_from_slice(&q[..2]);
    r.extend_from_slice(&[0x81, 0x80, 0, 1]);
    r.extend_from_slice(&u16::try_from(ips.len()).ok()?.to_be_bytes());
    r.extend_from_slice(&[0, 0, 0, 0]);
    r.extend_from_slice(q.get(12..end)?);
    for ip in ips {
        r.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 0, 0, 4]);
        r.extend_from_slice(&ip.octets());
    }
    Some(r)
}

/// Scenario: the real binary's DNS resolver asks a DNS server of the test (a private
/// `/etc/resolv.conf` in a mount namespace), which first answers nothing, then two gateways,
/// then three;
/// then one gateway refuses everything while spans keep coming (its queue holds them), and
/// the DNS answer drops it.
/// Guarantees: with nothing resolved the collector runs, counts the failures and answers
/// `UNAVAILABLE`; every acknowledged span arrives, the refused ones through the gateways that
/// remain (upstream tries them once and drops them); the removed gateway gets nothing after it
/// began refusing; `num_backend_updates` counts the three rings.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns_backend_changes_lose_nothing() {
    use std::net::Ipv4Addr;
    let ip = |n: u8| Ipv4Addr::new(127, 0, 0, n);
    let first = Backend::start_on("127.0.0.2:0".parse().unwrap()).await;
    let port = first.addr.port();
    let second = Backend::start_on(format!("127.0.0.3:{port}").parse().unwrap()).await;
    let third = Backend::start_on(format!("127.0.0.4:{port}").parse().unwrap()).await;
    let otlp = "        retry_on_failure:\n          initial_interval: 100ms\n          max_interval: 200ms\n";
    let Some((dns, c, _dir)) = dns_collector("127.0.0.77", &dns_config("", otlp, port)).await
    else {
        return;
    };
    let backends_are = |n: f64| {
        let c = &c;
        async move {
            common::eventually(WAIT, || async {
                c.metric(r#"otelcol_loadbalancer_num_backends{resolver="dns"}"#)
                    .await
                    == Some(n)
            })
            .await
        }
    };
    // Nothing resolves yet: the collector runs, counts failed resolutions, and refuses data
    // as retryable until a backend exists.
    let mut cl = client(c.grpc_url("otlp")).await;
    let refused = cl.export(request(1_000_000, 5)).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unavailable, "{refused:?}");
    assert!(
        c.metric(r#"otelcol_loadbalancer_num_resolutions_total{resolver="dns",success="false"}"#)
            .await
            .is_some_and(|v| v >= 1.0)
    );
    dns.set(&[ip(2), ip(3)]);
    assert!(backends_are(2.0).await, "two gateways not resolved");
    let mut sent = 0u64;
    for _ in 0..10 {
        cl.export(request(sent, 50)).await.unwrap();
        sent += 50;
    }

    dns.set(&[ip(2), ip(3), ip(4)]);
    assert!(backends_are(3.0).await, "third gateway not added");
    for _ in 0..10 {
        cl.export(request(sent, 50)).await.unwrap();
        sent += 50;
    }
    let all = [&first, &second, &third];
    let delivered = |all: &[&Backend]| {
        all.iter()
            .flat_map(|b| arrivals(b).into_keys())
            .collect::<std::collections::BTreeSet<u64>>()
    };
    assert!(
        common::eventually(WAIT, || async { delivered(&all).len() as u64 == sent }).await,
        "spans sent before the gateway failed did not all arrive"
    );
    assert!(
        !arrivals(&third).is_empty(),
        "the added gateway got nothing"
    );

    // The second gateway now refuses: its share waits in its queue, acknowledged.
    second.refuse(Some(tonic::Code::Unavailable));
    let before_refusal = arrivals(&second);
    for _ in 0..10 {
        cl.export(request(sent, 50)).await.unwrap();
        sent += 50;
    }
    assert!(
        common::eventually(WAIT, || async { second.refused() > 0 }).await,
        "the refusing gateway was never tried"
    );
    dns.set(&[ip(2), ip(4)]);
    assert!(backends_are(2.0).await, "refusing gateway not removed");
    assert!(
        common::eventually(WAIT, || async { delivered(&all).len() as u64 == sent }).await,
        "lost {} acknowledged spans after the gateway was removed",
        sent - delivered(&all).len() as u64
    );
    assert_eq!(
        arrivals(&second),
        before_refusal,
        "the removed gateway accepted spans while refusing"
    );
    assert_eq!(
        c.metric(r#"otelcol_loadbalancer_num_backend_updates_total{resolver="dns"}"#)
            .await,
        Some(3.0)
    );
}

/// [`config_with`] and the DNS resolver on `gateways.wasmcol.test`, polled every 100ms.
fn dns_config(top: &str, otlp: &str, port: u16) -> String {
    config_with(
        top,
        otlp,
        &format!(
            "      dns:\n        hostname: gateways.wasmcol.test\n        port: {port}\n        interval: 100ms"
        ),
    )
}

/// A DNS server of the test on `nameserver`:53, answering nothing yet, and the collector on
/// `yaml` with a private `resolv.conf` naming only that server (one quick attempt per
/// query). `None`, with the reason printed, when this needs root the test lacks.
async fn dns_collector(
    nameserver: &str,
    yaml: &str,
) -> Option<(Dns, Collector, tempfile::TempDir)> {
    let Some(dns) = Dns::start(&format!("{nameserver}:53"), &[]).await else {
        eprintln!("SKIPPED: cannot bind a DNS server on {nameserver}:53 (needs root)");
        return None;
    };
    let dir = tempfile::tempdir().unwrap();
    let resolv = dir.path().join("resolv.conf");
    std::fs::write(
        &resolv,
        format!("nameserver {nameserver}\noptions timeout:1 attempts:1\n"),
    )
    .unwrap();
    let Some(c) = Collector::start_with_resolv_conf(yaml, &resolv) else {
        eprintln!(
            "SKIPPED: cannot give the collector its own resolv.conf (needs root and unshare)"
        );
        return None;
    };
    Some((dns, c, dir))
}

/// Scenario: a top-level `sending_queue` and a DNS resolver whose name answers nothing at
/// first; spans are sent (and acknowledged by the queue) while the ring is empty, then the
/// name starts answering one backend.
/// Guarantees: the spans accepted before any backend existed all arrive, each once, once the
/// backend appears (before commit 3e65c06 the queue dropped them: the empty ring was a final
/// error, not a retryable part).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_top_level_queue_keeps_data_until_a_backend_exists() {
    let backend = Backend::start_on("127.0.0.5:0".parse().unwrap()).await;
    let port = backend.addr.port();
    let top = "    sending_queue:\n      enabled: true\n    retry_on_failure:\n      initial_interval: 100ms\n      max_interval: 200ms\n";
    let Some((dns, c, _dir)) = dns_collector("127.0.0.78", &dns_config(top, "", port)).await else {
        return;
    };
    let mut cl = client(c.grpc_url("otlp")).await;
    for first in [0u64, 30, 60] {
        cl.export(request(first, 30)).await.unwrap();
    }
    assert!(
        common::eventually(WAIT, || async {
            c.metric(
                r#"otelcol_loadbalancer_num_resolutions_total{resolver="dns",success="false"}"#,
            )
            .await
            .is_some_and(|v| v >= 1.0)
        })
        .await,
        "no failed resolution counted while the name answered nothing"
    );
    assert!(
        arrivals(&backend).is_empty(),
        "a span arrived with no backend"
    );
    dns.set(&[std::net::Ipv4Addr::new(127, 0, 0, 5)]);
    assert!(
        backend.wait_for_spans(90).await,
        "spans queued before the backend existed did not arrive in {WAIT:?}"
    );
    let want: BTreeMap<u64, u32> = (0u64..90).map(|i| (i, 1)).collect();
    assert_eq!(arrivals(&backend), want);
}

/// Scenario: two backends, no queue anywhere, exporter-level `retry_on_failure` on; one
/// backend refuses (`UNAVAILABLE`) the first attempts of a request whose traces span both.
/// Guarantees: the sender is answered once both parts are delivered, and the healthy
/// backend receives its part exactly once: the retry re-sends only the failed part
/// (upstream retries the whole request, so the healthy backend gets duplicates).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_resends_only_the_failed_part() {
    let healthy = Backend::start().await;
    let flaky = Backend::start().await;
    let names = [healthy.endpoint(), flaky.endpoint()];
    let c = Collector::start(&format!(
        r#"
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:0
exporters:
  loadbalancing:
    retry_on_failure:
      initial_interval: 50ms
      max_interval: 100ms
    protocol:
      otlp:
        tls:
          insecure: true
        sending_queue:
          enabled: false
        retry_on_failure:
          enabled: false
    resolver:
      static:
        hostnames: [{}]
service:
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [loadbalancing]
"#,
        names.join(", ")
    ));
    flaky.refuse(Some(tonic::Code::Unavailable));
    let mut cl = client(c.grpc_url("otlp")).await;
    let export = tokio::spawn(async move { cl.export(request(0, 100)).await });
    assert!(
        common::eventually(WAIT, || async { flaky.refused() >= 3 }).await,
        "the refusing backend was not retried"
    );
    flaky.refuse(None);
    export.await.unwrap().unwrap();
    let ring = Ring::new(names.clone());
    let mine = |b: &Backend| -> BTreeMap<u64, u32> {
        (0u64..100)
            .filter(|&i| {
                let trace: Vec<u8> = [[0u8; 8], i.to_be_bytes()].concat();
                ring.endpoint_for(&trace) == Some(b.endpoint().as_str())
            })
            .map(|i| (i, 1))
            .collect()
    };
    assert!(!mine(&healthy).is_empty() && !mine(&flaky).is_empty());
    assert_eq!(arrivals(&healthy), mine(&healthy), "healthy backend");
    assert_eq!(arrivals(&flaky), mine(&flaky), "recovered backend");
}

/// Scenario: a metrics pipeline through `load_balancing` with `routing_key: metric` over
/// three backends; one request with 12 metrics of one data point each.
/// Guarantees: each metric arrives once, whole, at the backend upstream's ring gives its name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_route_by_metric_name() {
    use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
    use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_client::MetricsServiceClient;
    use opentelemetry_proto::tonic::metrics::v1::{
        Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, metric::Data,
    };
    let backends = [
        Backend::start().await,
        Backend::start().await,
        Backend::start().await,
    ];
    let names: Vec<String> = backends.iter().map(Backend::endpoint).collect();
    let c = Collector::start(&format!(
        r#"
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:0
exporters:
  loadbalancing:
    routing_key: metric
    protocol:
      otlp:
        tls:
          insecure: true
    resolver:
      static:
        hostnames: [{}]
service:
  pipelines:
    metrics:
      receivers: [otlp]
      exporters: [loadbalancing]
"#,
        names.join(", ")
    ));
    let metric_names: Vec<String> = (0..12).map(|i| format!("http.server.m{i}")).collect();
    let req = ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            scope_metrics: vec![ScopeMetrics {
                metrics: metric_names
                    .iter()
                    .map(|n| Metric {
                        name: n.clone(),
                        data: Some(Data::Gauge(Gauge {
                            data_points: vec![NumberDataPoint {
                                time_unix_nano: 1,
                                ..Default::default()
                            }],
                        })),
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    let mut cl = MetricsServiceClient::connect(c.grpc_url("otlp"))
        .await
        .unwrap();
    cl.export(req).await.unwrap();
    let ring = Ring::new(names.clone());
    let arrived = |b: &Backend| -> Vec<String> {
        let mut got: Vec<String> = b.with(|r| {
            r.metrics
                .iter()
                .flat_map(|m| &m.resource_metrics)
                .flat_map(|rm| &rm.scope_metrics)
                .flat_map(|sm| &sm.metrics)
                .map(|m| m.name.clone())
                .collect()
        });
        got.sort();
        got
    };
    for b in &backends {
        let mut want: Vec<String> = metric_names
            .iter()
            .filter(|n| ring.endpoint_for(n.as_bytes()) == Some(b.endpoint().as_str()))
            .cloned()
            .collect();
        want.sort();
        assert!(
            b.wait_until(WAIT, |r| r.metrics.len() >= usize::from(!want.is_empty()))
                .await
        );
        assert_eq!(arrived(b), want, "backend {}", b.endpoint());
    }
}

/// Scenario: a logs pipeline through `load_balancing` with `routing_key: attributes` on
/// `[tenant, log.severity]` over three backends; 120 log records in one resource and scope,
/// `tenant` a record attribute with six values, severities INFO and WARN.
/// Guarantees: every record arrives exactly once, at the backend upstream's ring assigns to
/// the key `tenant=<t>|log.severity=<severity>|`, under its resource and scope; more than one
/// backend is used.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_attribute_routing_sends_each_key_to_its_backend() {
    use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
    use opentelemetry_proto::tonic::collector::logs::v1::logs_service_client::LogsServiceClient;
    use opentelemetry_proto::tonic::common::v1::{
        AnyValue, InstrumentationScope, KeyValue, any_value,
    };
    use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
    let backends = [
        Backend::start().await,
        Backend::start().await,
        Backend::start().await,
    ];
    let names: Vec<String> = backends.iter().map(Backend::endpoint).collect();
    let c = Collector::start(&config_for(
        "logs",
        "    routing_key: attributes\n    routing_attributes: [tenant, log.severity]\n",
        "",
        &static_hostnames(&names),
    ));
    let tenant = |id: u64| format!("t{}", id % 6);
    let severity = |id: u64| if id.is_multiple_of(4) { "WARN" } else { "INFO" };
    let scope = InstrumentationScope {
        name: "lb-test".into(),
        ..Default::default()
    };
    let req = ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            scope_logs: vec![ScopeLogs {
                scope: Some(scope.clone()),
                log_records: (0u64..120)
                    .map(|id| LogRecord {
                        time_unix_nano: id,
                        severity_text: severity(id).into(),
                        attributes: vec![KeyValue {
                            key: "tenant".into(),
                            value: Some(AnyValue {
                                value: Some(any_value::Value::StringValue(tenant(id))),
                            }),
                            ..Default::default()
                        }],
                        ..Default::default()
                    })
                    .collect(),
                schema_url: "scope-schema".into(),
            }],
            ..Default::default()
        }],
    };
    let mut cl = LogsServiceClient::connect(c.grpc_url("otlp"))
        .await
        .unwrap();
    cl.export(req).await.unwrap();
    let ring = Ring::new(names.clone());
    let mut expected: BTreeMap<String, BTreeMap<u64, u32>> = BTreeMap::new();
    for id in 0u64..120 {
        let key = format!("tenant={}|log.severity={}|", tenant(id), severity(id));
        let at = ring.endpoint_for(key.as_bytes()).unwrap().to_owned();
        expected.entry(at).or_default().insert(id, 1);
    }
    assert!(
        expected.len() > 1,
        "twelve keys on one backend: {expected:?}"
    );
    let arrived = |b: &Backend| -> BTreeMap<u64, u32> {
        let mut got = BTreeMap::new();
        b.with(|r| {
            for sl in r
                .logs
                .iter()
                .flat_map(|l| &l.resource_logs)
                .flat_map(|rl| &rl.scope_logs)
            {
                assert_eq!(sl.scope.as_ref(), Some(&scope));
                assert_eq!(sl.schema_url, "scope-schema");
                for record in &sl.log_records {
                    *got.entry(record.time_unix_nano).or_insert(0) += 1;
                }
            }
        });
        got
    };
    for b in &backends {
        let want = expected.remove(&b.endpoint()).unwrap_or_default();
        assert!(
            b.wait_until(WAIT, |r| {
                r.logs
                    .iter()
                    .flat_map(|l| &l.resource_logs)
                    .flat_map(|rl| &rl.scope_logs)
                    .map(|sl| sl.log_records.len())
                    .sum::<usize>()
                    >= want.len()
            })
            .await,
            "{} short",
            b.endpoint()
        );
        assert_eq!(arrived(b), want, "backend {}", b.endpoint());
    }
}

/// Scenario: backends A and B (B refusing with `UNAVAILABLE`) behind a static resolver, each
/// backend's queue persistent on `file_storage`; 200 spans (each its own trace) are
/// acknowledged, so B's share waits on disk in B's own keyspace; the collector is SIGKILLed
/// and restarted on the same storage with the list [A, C].
/// Guarantees: every span that was queued for B arrives exactly once (in this run; across
/// crashes the guarantee is at-least-once), at the backend the new ring assigns to its
/// trace; B receives nothing; the replay is logged with B's name and counted in B's
/// `otelcol_exporter_sent_spans`; B's keyspaces are gone from the storage afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_backends_persistent_queue_is_rerouted_after_a_restart() {
    let a = Backend::start().await;
    let b = Backend::start().await;
    let c_backend = Backend::start().await;
    b.refuse(Some(tonic::Code::Unavailable));
    let storage = tempfile::tempdir().unwrap();
    let yaml = |names: &[String]| {
        let otlp = "        sending_queue:\n          storage: file_storage\n        retry_on_failure:\n          initial_interval: 50ms\n          max_interval: 100ms\n          max_elapsed_time: 0\n";
        format!(
            "extensions:\n  file_storage:\n    directory: {}\n{}  extensions: [file_storage]\n",
            storage.path().display(),
            config_with("", otlp, &static_hostnames(names)),
        )
    };
    let first = [a.endpoint(), b.endpoint()];
    let c = Collector::start(&yaml(&first));
    let mut cl = client(c.grpc_url("otlp")).await;
    for start in [0u64, 50, 100, 150] {
        cl.export(request(start, 50)).await.unwrap();
    }
    let trace = |id: u64| -> Vec<u8> { [[0u8; 8], id.to_be_bytes()].concat() };
    let old_ring = Ring::new(first.clone());
    let (for_b, for_a): (Vec<u64>, Vec<u64>) = (0u64..200)
        .partition(|&id| old_ring.endpoint_for(&trace(id)) == Some(b.endpoint().as_str()));
    assert!(!for_a.is_empty() && !for_b.is_empty());
    assert!(
        delivery_support::wait_all(&a, &for_a, WAIT)
            .await
            .is_empty(),
        "A's share did not arrive"
    );
    assert!(
        common::eventually(WAIT, || async { b.refused() > 0 }).await,
        "B was never tried"
    );
    let (dir, config) = c.sigkill();
    let second = [a.endpoint(), c_backend.endpoint()];
    std::fs::write(&config, yaml(&second)).unwrap();
    let before_a = arrivals(&a);
    let mut c = Collector::start_in(dir, config, false, &[]);
    let new_ring = Ring::new(second.clone());
    let replayed = |bk: &Backend| -> BTreeMap<u64, u32> {
        let before = if bk.endpoint() == a.endpoint() {
            before_a.clone()
        } else {
            BTreeMap::new()
        };
        arrivals(bk)
            .into_iter()
            .filter(|(id, _)| for_b.contains(id))
            .map(|(id, n)| (id, n - before.get(&id).copied().unwrap_or(0)))
            .filter(|(_, n)| *n > 0)
            .collect()
    };
    assert!(
        common::eventually(WAIT, || async {
            replayed(&a).len() + replayed(&c_backend).len() >= for_b.len()
        })
        .await,
        "B's queued spans did not all arrive: {} of {}",
        replayed(&a).len() + replayed(&c_backend).len(),
        for_b.len()
    );
    for bk in [&a, &c_backend] {
        let want: BTreeMap<u64, u32> = for_b
            .iter()
            .filter(|&&id| new_ring.endpoint_for(&trace(id)) == Some(bk.endpoint().as_str()))
            .map(|&id| (id, 1))
            .collect();
        assert_eq!(replayed(bk), want, "backend {}", bk.endpoint());
    }
    assert!(b.spans().is_empty(), "B accepted spans while refusing");
    let b_name = b.endpoint();
    assert!(
        common::eventually(WAIT, || async {
            c.log()
                .iter()
                .any(|l| l.contains("its keyspace is deleted") && l.contains(&b_name))
        })
        .await,
        "no log line for B's replay"
    );
    let sent = c
        .metric(&format!(
            r#"otelcol_exporter_sent_spans_total{{exporter="otlp/loadbalancing/{b_name}"}}"#
        ))
        .await;
    assert_eq!(sent, Some(for_b.len() as f64), "B's replay not counted");
    c.sigterm();
    assert!(
        c.wait_exit(WAIT).success(),
        "collector did not stop cleanly"
    );
    let db = fjall::Database::builder(storage.path().join("fjall"))
        .open()
        .unwrap();
    let escaped_b = b_name.replace(':', "$003A");
    let left: Vec<String> = db
        .list_keyspace_names()
        .iter()
        .map(|n| n.to_string())
        .filter(|n| n.contains(&escaped_b))
        .collect();
    assert!(left.is_empty(), "B's keyspaces left behind: {left:?}");
}
