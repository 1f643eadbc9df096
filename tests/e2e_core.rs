//! End-to-end tests of the collector core through the real binary: OTLP in over gRPC and
//! HTTP (SDK clients and hand-built requests), `batch`, OTLP out to a test backend.
// Test code: a failed expectation is reported by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::{Duration, SystemTime};

use common::{Backend, Collector, WAIT, eventually, metric_value, run_cli, write_config};
use opentelemetry::KeyValue;
use opentelemetry::trace::{SpanKind, Status, TraceContextExt, Tracer, TracerProvider as _};
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::common::v1::{
    AnyValue, ArrayValue, InstrumentationScope, KeyValue as PKeyValue, any_value,
};
use opentelemetry_proto::tonic::resource::v1::Resource as PResource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, span};
use prost::Message;

fn forwarder_config(backend: &Backend, batch: &str) -> String {
    format!(
        r#"
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:0
      http:
        endpoint: 127.0.0.1:0
processors:
  batch:
{batch}
exporters:
  otlp:
    endpoint: {}
    tls:
      insecure: true
service:
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [otlp]
    metrics:
      receivers: [otlp]
      processors: [batch]
      exporters: [otlp]
    logs:
      receivers: [otlp]
      processors: [batch]
      exporters: [otlp]
"#,
        backend.endpoint()
    )
}

fn sv(v: &str) -> Option<AnyValue> {
    Some(AnyValue {
        value: Some(any_value::Value::StringValue(v.into())),
    })
}

fn pkv(k: &str, v: Option<AnyValue>) -> PKeyValue {
    PKeyValue {
        key: k.into(),
        value: v,
        ..Default::default()
    }
}

fn attr<'a>(attrs: &'a [PKeyValue], key: &str) -> Option<&'a any_value::Value> {
    attrs
        .iter()
        .find(|a| a.key == key)
        .and_then(|a| a.value.as_ref())
        .and_then(|v| v.value.as_ref())
}

/// A hand-built request touching most span fields, for byte-level comparisons.
fn rich_request(tag: u8, spans: usize) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(PResource {
                attributes: vec![pkv("service.name", sv("rich")), pkv("host.id", sv("h-1"))],
                dropped_attributes_count: 1,
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: "scope".into(),
                    version: "1.2.3".into(),
                    attributes: vec![pkv("s", sv("x"))],
                    dropped_attributes_count: 0,
                }),
                spans: (0..spans)
                    .map(|i| Span {
                        trace_id: [tag; 16].to_vec(),
                        span_id: [(i as u8).wrapping_add(1), tag, 3, 4, 5, 6, 7, 8].to_vec(),
                        parent_span_id: vec![9; 8],
                        trace_state: "vendor=value".into(),
                        name: format!("op-{i}"),
                        kind: span::SpanKind::Client as i32,
                        start_time_unix_nano: 1_700_000_000_000_000_000 + i as u64,
                        end_time_unix_nano: 1_700_000_000_500_000_000 + i as u64,
                        attributes: vec![
                            pkv("str", sv("v")),
                            pkv(
                                "int",
                                Some(AnyValue {
                                    value: Some(any_value::Value::IntValue(-42)),
                                }),
                            ),
                            pkv(
                                "dbl",
                                Some(AnyValue {
                                    value: Some(any_value::Value::DoubleValue(1.5)),
                                }),
                            ),
                            pkv(
                                "bool",
                                Some(AnyValue {
                                    value: Some(any_value::Value::BoolValue(true)),
                                }),
                            ),
                            pkv(
                                "bytes",
                                Some(AnyValue {
                                    value: Some(any_value::Value::BytesValue(vec![0, 255])),
                                }),
                            ),
                            pkv(
                                "arr",
                                Some(AnyValue {
                                    value: Some(any_value::Value::ArrayValue(ArrayValue {
                                        values: vec![sv("a").unwrap(), sv("b").unwrap()],
                                    })),
                                }),
                            ),
                        ],
                        dropped_attributes_count: 2,
                        events: vec![span::Event {
                            time_unix_nano: 1_700_000_000_100_000_000,
                            name: "ev".into(),
                            attributes: vec![pkv("e", sv("1"))],
                            dropped_attributes_count: 0,
                        }],
                        dropped_events_count: 0,
                        links: vec![span::Link {
                            trace_id: vec![7; 16],
                            span_id: vec![6; 8],
                            trace_state: String::new(),
                            attributes: vec![],
                            dropped_attributes_count: 0,
                            flags: 0x100,
                        }],
                        dropped_links_count: 0,
                        status: Some(opentelemetry_proto::tonic::trace::v1::Status {
                            message: "boom".into(),
                            code: 2,
                        }),
                        flags: 0x101,
                    })
                    .collect(),
                schema_url: "https://opentelemetry.io/schemas/1.21.0".into(),
            }],
            schema_url: String::new(),
        }],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_spans_over_grpc_and_http_arrive_intact() {
    let backend = Backend::start().await;
    let collector = Collector::start(&forwarder_config(&backend, "    timeout: 50ms"));
    let mut sent = Vec::new();
    for transport in ["grpc", "http"] {
        let exporter = if transport == "grpc" {
            opentelemetry_otlp::SpanExporter::builder()
                .with_tonic()
                .with_endpoint(collector.grpc_url("otlp"))
                .build()
                .unwrap()
        } else {
            opentelemetry_otlp::SpanExporter::builder()
                .with_http()
                .with_protocol(Protocol::HttpBinary)
                .with_endpoint(format!("{}/v1/traces", collector.http_url("otlp")))
                .build()
                .unwrap()
        };
        let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
            .with_simple_exporter(exporter)
            .with_resource(
                opentelemetry_sdk::Resource::builder()
                    .with_service_name(format!("e2e-{transport}"))
                    .build(),
            )
            .build();
        let tracer = provider.tracer("e2e-scope");
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        for i in 0..3 {
            let mut span = tracer
                .span_builder(format!("{transport}-span-{i}"))
                .with_kind(SpanKind::Server)
                .with_start_time(start + Duration::from_millis(i))
                .with_attributes(vec![
                    KeyValue::new("http.route", format!("/r/{i}")),
                    KeyValue::new("retries", i as i64),
                    KeyValue::new("ok", i % 2 == 0),
                    KeyValue::new("ratio", 0.25),
                ])
                .start(&tracer);
            opentelemetry::trace::Span::add_event_with_timestamp(
                &mut span,
                "cache-miss",
                start + Duration::from_millis(5),
                vec![KeyValue::new("key", "k1")],
            );
            opentelemetry::trace::Span::set_status(&mut span, Status::error("bad thing"));
            let ctx = opentelemetry::trace::Span::span_context(&span).clone();
            opentelemetry::trace::Span::end_with_timestamp(
                &mut span,
                start + Duration::from_millis(10 + i),
            );
            sent.push((transport, i, ctx));
        }
        // A child span, to check the parent id.
        let parent = tracer.start("parent");
        let pctx = opentelemetry::Context::current_with_span(parent);
        let child = tracer.start_with_context("child", &pctx);
        let child_ctx = opentelemetry::trace::Span::span_context(&child).clone();
        drop(child);
        let parent_id = pctx.span().span_context().span_id();
        drop(pctx);
        tokio::task::spawn_blocking(move || provider.shutdown())
            .await
            .unwrap()
            .unwrap();
        assert!(
            backend
                .wait_for_spans(sent.len() + 2 * if transport == "grpc" { 1 } else { 2 })
                .await
        );
        let spans = backend.spans();
        let got = spans
            .iter()
            .find(|s| s.span_id == child_ctx.span_id().to_bytes())
            .expect("child span");
        assert_eq!(got.parent_span_id, parent_id.to_bytes().to_vec());
    }

    let received = backend.with(|r| r.traces.clone());
    for (transport, i, ctx) in sent {
        let (rs, ss, span) = received
            .iter()
            .flat_map(|t| &t.resource_spans)
            .flat_map(|rs| rs.scope_spans.iter().map(move |ss| (rs, ss)))
            .flat_map(|(rs, ss)| ss.spans.iter().map(move |s| (rs, ss, s)))
            .find(|(_, _, s)| s.span_id == ctx.span_id().to_bytes())
            .unwrap_or_else(|| panic!("span {transport}-{i} missing"));
        assert_eq!(span.trace_id, ctx.trace_id().to_bytes().to_vec());
        assert_eq!(span.name, format!("{transport}-span-{i}"));
        assert_eq!(span.kind, span::SpanKind::Server as i32);
        assert_eq!(
            span.start_time_unix_nano,
            1_700_000_000_000_000_000 + i * 1_000_000
        );
        assert_eq!(
            span.end_time_unix_nano,
            1_700_000_000_000_000_000 + (10 + i) * 1_000_000
        );
        assert_eq!(
            attr(&span.attributes, "http.route"),
            Some(&any_value::Value::StringValue(format!("/r/{i}")))
        );
        assert_eq!(
            attr(&span.attributes, "retries"),
            Some(&any_value::Value::IntValue(i as i64))
        );
        assert_eq!(
            attr(&span.attributes, "ok"),
            Some(&any_value::Value::BoolValue(i % 2 == 0))
        );
        assert_eq!(
            attr(&span.attributes, "ratio"),
            Some(&any_value::Value::DoubleValue(0.25))
        );
        assert_eq!(span.events.len(), 1);
        assert_eq!(span.events[0].name, "cache-miss");
        assert_eq!(span.events[0].time_unix_nano, 1_700_000_000_005_000_000);
        assert_eq!(
            attr(&span.events[0].attributes, "key"),
            Some(&any_value::Value::StringValue("k1".into()))
        );
        let status = span.status.as_ref().unwrap();
        assert_eq!((status.code, status.message.as_str()), (2, "bad thing"));
        let res = rs.resource.as_ref().unwrap();
        assert_eq!(
            attr(&res.attributes, "service.name"),
            Some(&any_value::Value::StringValue(format!("e2e-{transport}")))
        );
        assert_eq!(ss.scope.as_ref().unwrap().name, "e2e-scope");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_metrics_and_logs_arrive_intact() {
    use opentelemetry::logs::{
        AnyValue as LAny, LogRecord as _, Logger as _, LoggerProvider as _, Severity,
    };
    use opentelemetry::metrics::MeterProvider as _;
    use opentelemetry_proto::tonic::metrics::v1::{metric, number_data_point};

    let backend = Backend::start().await;
    let collector = Collector::start(&forwarder_config(&backend, "    timeout: 50ms"));
    for transport in ["grpc", "http"] {
        let (mexp, lexp) = if transport == "grpc" {
            (
                opentelemetry_otlp::MetricExporter::builder()
                    .with_tonic()
                    .with_endpoint(collector.grpc_url("otlp"))
                    .build()
                    .unwrap(),
                opentelemetry_otlp::LogExporter::builder()
                    .with_tonic()
                    .with_endpoint(collector.grpc_url("otlp"))
                    .build()
                    .unwrap(),
            )
        } else {
            (
                opentelemetry_otlp::MetricExporter::builder()
                    .with_http()
                    .with_protocol(Protocol::HttpBinary)
                    .with_endpoint(format!("{}/v1/metrics", collector.http_url("otlp")))
                    .build()
                    .unwrap(),
                opentelemetry_otlp::LogExporter::builder()
                    .with_http()
                    .with_protocol(Protocol::HttpBinary)
                    .with_endpoint(format!("{}/v1/logs", collector.http_url("otlp")))
                    .build()
                    .unwrap(),
            )
        };
        let resource = opentelemetry_sdk::Resource::builder()
            .with_service_name(format!("m-{transport}"))
            .build();
        // The tonic exporter needs the tokio reactor, so the reader runs on the test's runtime.
        let reader = opentelemetry_sdk::metrics::periodic_reader_with_async_runtime::PeriodicReader::builder(
            mexp,
            opentelemetry_sdk::runtime::Tokio,
        )
        .build();
        let mp = opentelemetry_sdk::metrics::SdkMeterProvider::builder()
            .with_reader(reader)
            .with_resource(resource.clone())
            .build();
        let meter = mp.meter("e2e-meter");
        let counter = meter.u64_counter(format!("requests.{transport}")).build();
        counter.add(5, &[KeyValue::new("route", "/a")]);
        counter.add(7, &[KeyValue::new("route", "/b")]);
        let lp = opentelemetry_sdk::logs::SdkLoggerProvider::builder()
            .with_simple_exporter(lexp)
            .with_resource(resource)
            .build();
        let logger = lp.logger("e2e-logger");
        let mut rec = logger.create_log_record();
        rec.set_body(LAny::from(format!("hello from {transport}")));
        rec.set_severity_number(Severity::Warn);
        rec.set_severity_text("WARN");
        rec.add_attribute("user.id", 42i64);
        rec.set_timestamp(SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_123));
        logger.emit(rec);
        tokio::task::spawn_blocking(move || {
            mp.force_flush().unwrap();
            mp.shutdown().unwrap();
            lp.shutdown().unwrap();
        })
        .await
        .unwrap();
        let name = format!("requests.{transport}");
        let body = format!("hello from {transport}");
        assert!(
            backend
                .wait_until(WAIT, |r| {
                    r.metrics
                        .iter()
                        .flat_map(|m| &m.resource_metrics)
                        .flat_map(|rm| &rm.scope_metrics)
                        .flat_map(|sm| &sm.metrics)
                        .any(|m| m.name == name)
                        && r.logs
                            .iter()
                            .flat_map(|l| &l.resource_logs)
                            .flat_map(|rl| &rl.scope_logs)
                            .flat_map(|sl| &sl.log_records)
                            .any(|l| {
                                l.body.as_ref().and_then(|b| b.value.as_ref())
                                    == Some(&any_value::Value::StringValue(body.clone()))
                            })
                })
                .await,
            "{transport}: metrics and logs should arrive"
        );
        backend.with(|r| {
            let m = r
                .metrics
                .iter()
                .flat_map(|m| &m.resource_metrics)
                .flat_map(|rm| &rm.scope_metrics)
                .flat_map(|sm| &sm.metrics)
                .find(|m| m.name == name)
                .unwrap();
            let Some(metric::Data::Sum(sum)) = &m.data else {
                panic!("expected a sum")
            };
            assert!(sum.is_monotonic);
            let mut points: Vec<(String, i64)> = sum
                .data_points
                .iter()
                .map(|p| {
                    let route = match attr(&p.attributes, "route") {
                        Some(any_value::Value::StringValue(s)) => s.clone(),
                        other => panic!("route attribute: {other:?}"),
                    };
                    let Some(number_data_point::Value::AsInt(v)) = p.value else {
                        panic!("int point")
                    };
                    (route, v)
                })
                .collect();
            points.sort();
            assert_eq!(points, vec![("/a".into(), 5), ("/b".into(), 7)]);
            let (rl, l) = r
                .logs
                .iter()
                .flat_map(|l| &l.resource_logs)
                .flat_map(|rl| {
                    rl.scope_logs
                        .iter()
                        .flat_map(move |sl| sl.log_records.iter().map(move |l| (rl, l)))
                })
                .find(|(_, l)| {
                    l.body.as_ref().and_then(|b| b.value.as_ref())
                        == Some(&any_value::Value::StringValue(body.clone()))
                })
                .unwrap();
            assert_eq!(l.severity_number, 13);
            assert_eq!(l.severity_text, "WARN");
            assert_eq!(l.time_unix_nano, 1_700_000_123_000_000_000);
            assert_eq!(
                attr(&l.attributes, "user.id"),
                Some(&any_value::Value::IntValue(42))
            );
            assert_eq!(
                attr(&rl.resource.as_ref().unwrap().attributes, "service.name"),
                Some(&any_value::Value::StringValue(format!("m-{transport}")))
            );
        });
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_post_is_forwarded_identical_to_protobuf() {
    let backend = Backend::start().await;
    let collector = Collector::start(&forwarder_config(&backend, "    timeout: 10ms"));
    let req = rich_request(0x11, 3);
    let client = reqwest::Client::new();
    let url = format!("{}/v1/traces", collector.http_url("otlp"));

    let r = client
        .post(&url)
        .header("content-type", "application/x-protobuf")
        .body(req.encode_to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/x-protobuf");
    assert!(backend.wait_until(WAIT, |r| r.traces.len() == 1).await);

    let json = serde_json::to_vec(&req).unwrap();
    let r = client
        .post(&url)
        .header("content-type", "application/json")
        .body(json)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/json");
    assert_eq!(r.text().await.unwrap(), "{}");
    assert!(backend.wait_until(WAIT, |r| r.traces.len() == 2).await);

    backend.with(|r| {
        assert_eq!(r.traces[0], req, "protobuf request must arrive unchanged");
        assert_eq!(
            r.traces[1], r.traces[0],
            "JSON request must arrive identical to the protobuf one"
        );
    });

    // And over gRPC, byte for byte the same message.
    let mut grpc = TraceServiceClient::connect(collector.grpc_url("otlp"))
        .await
        .unwrap();
    grpc.export(req.clone()).await.unwrap();
    assert!(backend.wait_until(WAIT, |r| r.traces.len() == 3).await);
    backend.with(|r| assert_eq!(r.traces[2], req));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_and_the_collector_keeps_serving() {
    let backend = Backend::start().await;
    let config = forwarder_config(&backend, "    timeout: 10ms").replace(
        "      http:\n        endpoint: 127.0.0.1:0",
        "        max_recv_msg_size_mib: 1\n      http:\n        endpoint: 127.0.0.1:0\n        max_request_body_size: 100000",
    );
    let collector = Collector::start(&config);
    let client = reqwest::Client::new();
    let url = format!("{}/v1/traces", collector.http_url("otlp"));
    let proto = |body: Vec<u8>| {
        client
            .post(&url)
            .header("content-type", "application/x-protobuf")
            .body(body)
    };

    // Malformed protobuf: 400 with a google.rpc.Status body.
    let r = proto(b"\x0a\xff\xff\xff\x0f garbage".to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let st = wasmcol_otlp::RpcStatus::decode(r.bytes().await.unwrap()).unwrap();
    assert_eq!(st.code, 3);
    assert!(st.message.contains("decode"), "{}", st.message);
    // Malformed JSON: 400.
    let r = client
        .post(&url)
        .header("content-type", "application/json")
        .body("{\"resourceSpans\": [")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    // Over the body limit, raw and after decompression: 400 (upstream's code).
    let big = rich_request(1, 400).encode_to_vec();
    assert!(big.len() > 100_000);
    assert_eq!(proto(big.clone()).send().await.unwrap().status(), 400);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    std::io::Write::write_all(&mut gz, &big).unwrap();
    let gz = gz.finish().unwrap();
    assert!(gz.len() < 100_000);
    let r = proto(gz)
        .header("content-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    // Unsupported content encoding: 400; wrong content type: 415; GET: 405; unknown path: 404.
    assert_eq!(
        proto(vec![])
            .header("content-encoding", "br")
            .send()
            .await
            .unwrap()
            .status(),
        400
    );
    let r = client
        .post(&url)
        .header("content-type", "text/plain")
        .body("hi")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 415);
    assert_eq!(
        r.text().await.unwrap(),
        "415 unsupported media type, supported: [application/json, application/x-protobuf]"
    );
    let r = client.get(&url).send().await.unwrap();
    assert_eq!(r.status(), 405);
    assert_eq!(
        r.text().await.unwrap(),
        "405 method not allowed, supported: [POST]"
    );
    assert_eq!(
        client
            .post(format!("{}/v1/nope", collector.http_url("otlp")))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    // An empty request is 200 and not forwarded.
    assert_eq!(proto(vec![]).send().await.unwrap().status(), 200);

    // gRPC: malformed → INVALID_ARGUMENT, over 1 MiB → RESOURCE_EXHAUSTED (not retryable).
    let channel = tonic::transport::Channel::from_shared(collector.grpc_url("otlp"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut raw = tonic::client::Grpc::new(channel.clone());
    raw.ready().await.unwrap();
    let err = raw
        .unary::<bytes::Bytes, bytes::Bytes, _>(
            tonic::Request::new(bytes::Bytes::from_static(b"\x0a\x05\x12\x03\x12\x01\xff")),
            http::uri::PathAndQuery::from_static(
                "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
            ),
            wasmcol_otlp::BytesCodec,
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err:?}");
    let mut client_grpc = TraceServiceClient::new(channel).max_encoding_message_size(64 << 20);
    let err = client_grpc.export(rich_request(2, 6000)).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::ResourceExhausted, "{err:?}");

    // Still serving, over both transports.
    assert_eq!(
        proto(rich_request(3, 2).encode_to_vec())
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    client_grpc.export(rich_request(4, 2)).await.unwrap();
    assert!(backend.wait_for_spans(4).await);
    assert_eq!(
        backend.spans().len(),
        4,
        "only the valid requests are forwarded"
    );
}

/// Keys upstream has but wasmcol cannot honour are refused with their path (they used to be
/// accepted and ignored); the ones it now applies validate.
#[test]
fn validate_refuses_keys_it_cannot_honour() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(
        &dir,
        "refused.yaml",
        r#"
receivers:
  otlp:
    protocols:
      http:
        endpoint: 127.0.0.1:0
exporters:
  otlp_http:
    endpoint: http://127.0.0.1:1
    compression: zstd
    compression_params:
      level: 2
    max_conns_per_host: 4
    cookies:
      enabled: true
    sending_queue:
      batch:
        partition:
          metadata_keys: [tenant]
service:
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [otlp_http]
"#,
    );
    let (ok, _out, err) = run_cli(&["validate", "--config", &path]);
    assert!(!ok, "validate must fail");
    for expected in [
        "exporters::otlp_http: compression_params.level: unsupported compression level 2 for zstd",
        "exporters::otlp_http: max_conns_per_host: not supported by wasmcol",
        "exporters::otlp_http: cookies.enabled: not supported by wasmcol",
        "exporters::otlp_http: sending_queue.batch.partition: not supported by wasmcol",
    ] {
        assert!(err.contains(expected), "missing {expected:?} in {err}");
    }

    let applied = write_config(
        &dir,
        "applied.yaml",
        r#"
extensions:
  health_check:
    endpoint: 127.0.0.1:0
    read_timeout: 5s
    write_timeout: 5s
    keep_alives_enabled: false
receivers:
  otlp:
    protocols:
      http:
        endpoint: 127.0.0.1:0
        write_timeout: 10s
        keep_alives_enabled: false
exporters:
  otlp_http:
    endpoint: http://127.0.0.1:1
    compression: zstd
    compression_params:
      level: 6
    disable_keep_alives: true
    http2_read_idle_timeout: 30s
    http2_ping_timeout: 5s
service:
  extensions: [health_check]
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [otlp_http]
"#,
    );
    let (ok, out, err) = run_cli(&["validate", "--config", &applied]);
    assert!(ok, "{out}{err}");
}

#[test]
fn validate_reports_every_problem_with_component_and_key_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(
        &dir,
        "bad.yaml",
        r#"
receivers:
  otlp:
    protocols:
      grpc:
  otlpp:
processors:
  batch:
    send_batch_sizee: 10
exporters:
  otlp:
    tls:
      insecure: true
service:
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch, memory_limiter]
      exporters: [otlp]
"#,
    );
    let (ok, _out, err) = run_cli(&["validate", "--config", &path]);
    assert!(!ok, "validate must fail");
    assert!(
        err.contains("receivers::otlpp: unknown type: \"otlpp\""),
        "{err}"
    );
    assert!(
        err.contains("processors::batch: send_batch_sizee: unknown field `send_batch_sizee`"),
        "{err}"
    );
    assert!(
        err.contains("exporters::otlp: endpoint: requires a non-empty \"endpoint\""),
        "{err}"
    );
    assert!(err.contains("service::pipelines::traces: references processor \"memory_limiter\" which is not configured"), "{err}");

    let good = write_config(
        &dir,
        "good.yaml",
        "receivers:\n  otlp:\n    protocols:\n      grpc:\nexporters:\n  debug:\nservice:\n  pipelines:\n    traces:\n      receivers: [otlp]\n      exporters: [debug]\n",
    );
    let (ok, out, err) = run_cli(&["validate", "--config", &good]);
    assert!(ok, "{out}{err}");
    // Nothing is bound by validate: the default port stays free for the next run.
    let (ok, out, _) = run_cli(&["components"]);
    assert!(ok);
    for name in [
        "otlp",
        "otlp_grpc (also: otlp)",
        "otlp_http (also: otlphttp)",
        "batch",
        "debug",
    ] {
        assert!(out.contains(name), "components output lacks {name}:\n{out}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_flushes_the_batch_held_in_the_batch_processor() {
    let backend = Backend::start().await;
    let mut collector = Collector::start(&forwarder_config(
        &backend,
        "    timeout: 1h\n    send_batch_size: 100000",
    ));
    let url = collector.grpc_url("otlp");
    let export = tokio::spawn(async move {
        let mut client = TraceServiceClient::connect(url).await.unwrap();
        client.export(rich_request(5, 10)).await
    });
    let held = eventually(WAIT, || async {
        collector.metric("otelcol_processor_incoming_items_total{otel_signal=\"traces\",processor=\"batch\"}").await == Some(10.0)
    })
    .await;
    assert!(held, "the batch processor should hold 10 spans");
    assert!(
        backend.spans().is_empty(),
        "nothing is exported before the timeout or shutdown"
    );
    collector.sigterm();
    assert!(
        backend.wait_for_spans(10).await,
        "the held batch must reach the backend on SIGTERM"
    );
    let status = tokio::task::spawn_blocking(move || collector.wait_exit(WAIT))
        .await
        .unwrap();
    assert!(status.success(), "clean shutdown exits 0: {status:?}");
    // The sender learns that its data was delivered.
    assert!(export.await.unwrap().is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_received_processed_and_sent_items() {
    let backend = Backend::start().await;
    let collector = Collector::start(&forwarder_config(&backend, "    timeout: 10ms"));
    let mut client = TraceServiceClient::connect(collector.grpc_url("otlp"))
        .await
        .unwrap();
    for i in 0..3 {
        client.export(rich_request(10 + i, 7)).await.unwrap();
    }
    let r = reqwest::Client::new()
        .post(format!("{}/v1/traces", collector.http_url("otlp")))
        .header("content-type", "application/x-protobuf")
        .body(rich_request(20, 4).encode_to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(backend.wait_for_spans(25).await);
    let ok = eventually(WAIT, || async {
        let text = collector.scrape().await;
        metric_value(
            &text,
            "otelcol_exporter_sent_spans_total{exporter=\"otlp\"}",
        ) == Some(25.0)
    })
    .await;
    let text = collector.scrape().await;
    assert!(ok, "{text}");
    assert_eq!(
        metric_value(
            &text,
            "otelcol_receiver_accepted_spans_total{receiver=\"otlp\",transport=\"grpc\"}"
        ),
        Some(21.0),
        "{text}"
    );
    assert_eq!(
        metric_value(
            &text,
            "otelcol_receiver_accepted_spans_total{receiver=\"otlp\",transport=\"http\"}"
        ),
        Some(4.0),
        "{text}"
    );
    assert_eq!(
        metric_value(
            &text,
            "otelcol_receiver_refused_spans_total{receiver=\"otlp\",transport=\"grpc\"}"
        ),
        Some(0.0),
        "{text}"
    );
    assert_eq!(
        metric_value(
            &text,
            "otelcol_processor_incoming_items_total{otel_signal=\"traces\",processor=\"batch\"}"
        ),
        Some(25.0),
        "{text}"
    );
    assert_eq!(
        metric_value(
            &text,
            "otelcol_processor_outgoing_items_total{otel_signal=\"traces\",processor=\"batch\"}"
        ),
        Some(25.0),
        "{text}"
    );
    assert_eq!(
        metric_value(
            &text,
            "otelcol_exporter_send_failed_spans_total{exporter=\"otlp\"}"
        ),
        Some(0.0),
        "{text}"
    );
}

/// Two components on one address are a config error `validate` reports, naming both
/// components and key paths; hosts are compared after normalization (`0.0.0.0` takes every
/// interface, `localhost` and `127.0.0.1` are one), and port 0 never clashes.
#[test]
fn validate_reports_two_components_on_one_endpoint() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(
        &dir,
        "clash.yaml",
        r#"
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 0.0.0.0:14317
  otlp/2:
    protocols:
      grpc:
        endpoint: 127.0.0.1:0
      http:
        endpoint: localhost:14317
  otlp/3:
    protocols:
      grpc:
        endpoint: 127.0.0.1:0
extensions:
  health_check:
    endpoint: 127.0.0.1:18888
exporters:
  debug:
service:
  extensions: [health_check]
  telemetry:
    metrics:
      address: localhost:18888
  pipelines:
    traces:
      receivers: [otlp, otlp/2, otlp/3]
      exporters: [debug]
"#,
    );
    let (ok, _out, err) = run_cli(&["validate", "--config", &path]);
    assert!(!ok, "validate must fail");
    assert!(
        err.contains("receivers::otlp/2::protocols::http::endpoint: endpoint \"localhost:14317\" is already used by receivers::otlp::protocols::grpc::endpoint (\"0.0.0.0:14317\")"),
        "{err}"
    );
    assert!(
        err.contains("service::telemetry::metrics: endpoint \"localhost:18888\" is already used by extensions::health_check::endpoint (\"127.0.0.1:18888\")"),
        "{err}"
    );
    assert!(
        err.contains("(2 problems)"),
        "port 0 clashes with nothing: {err}"
    );
}
