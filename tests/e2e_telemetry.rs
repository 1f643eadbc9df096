//! End-to-end tests of `service.telemetry` through the real binary: the collector's own logs
//! (encodings, fields, outputs), its metrics endpoint switched off, and the keys it refuses.
// Test code: a failed expectation is reported by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Instant;

use common::{Backend, Collector, Received, WAIT, run_cli, write_config};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::common::v1::{KeyValue, any_value};
use opentelemetry_proto::tonic::logs::v1::LogRecord;
use opentelemetry_proto::tonic::metrics::v1::{Metric, metric::Data, number_data_point};

const PIPELINE: &str = r#"
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:0
exporters:
  debug:
service:
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [debug]
"#;

/// With `encoding: json` every line on stderr and in the file output is one JSON object with
/// zap's keys, the initial fields and the event's fields; the lines up to "Everything is ready"
/// are read as they come (the readiness wait) and the rest after SIGTERM.
#[test]
fn json_logs_parse_line_by_line_on_every_output() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("collector.log");
    let yaml = format!(
        "{PIPELINE}  telemetry:
    logs:
      level: debug
      encoding: json
      output_paths: [stderr, {file}]
      initial_fields:
        region: eu-west
    metrics:
      address: 127.0.0.1:0
",
        file = file.display()
    );
    let path = write_config(&dir, "json.yaml", &yaml);
    let mut child = Command::new(env!("CARGO_BIN_EXE_wasmcol"))
        .args(["--config", &path])
        .env_remove("WASMCOL_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            let _ = tx.send(line);
        }
    });
    let mut lines = Vec::new();
    let deadline = Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = rx
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("not ready within {WAIT:?}: {lines:#?}"));
        let ready = line.contains("Everything is ready");
        lines.push(line);
        if ready {
            break;
        }
    }
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    assert!(child.wait().unwrap().success());
    reader.join().unwrap();
    lines.extend(rx.try_iter());

    let parse = |line: &str| -> serde_json::Map<String, serde_json::Value> {
        match serde_json::from_str(line) {
            Ok(serde_json::Value::Object(o)) => o,
            other => panic!("not a JSON object: {line:?} ({other:?})"),
        }
    };
    let objects: Vec<_> = lines.iter().map(|l| parse(l)).collect();
    assert!(objects.len() >= 3, "{lines:#?}");
    for o in &objects {
        for key in ["level", "ts", "caller", "msg"] {
            assert!(o.contains_key(key), "{key} missing in {o:?}");
        }
        assert_eq!(o["region"], "eu-west", "initial field in {o:?}");
        assert!(
            ["debug", "info", "warn", "error"].contains(&o["level"].as_str().unwrap()),
            "{o:?}"
        );
    }
    let grpc = objects
        .iter()
        .find(|o| o["msg"] == "Starting GRPC server")
        .expect("the receiver's start line");
    assert_eq!(grpc["receiver"], "otlp", "{grpc:?}");
    assert!(
        objects.iter().any(|o| o["msg"] == "Shutdown complete."),
        "{lines:#?}"
    );
    // The file gets the same lines.
    let written = std::fs::read_to_string(&file).unwrap();
    let in_file: Vec<_> = written.lines().map(parse).collect();
    assert_eq!(in_file.len(), objects.len(), "{written}");
}

/// `disable_caller` drops the caller; the console encoding keeps `key=value` fields.
#[test]
fn console_logs_without_caller() {
    let yaml = format!(
        "{PIPELINE}  telemetry:
    logs:
      disable_caller: true
    metrics:
      address: 127.0.0.1:0
"
    );
    let c = Collector::start(&yaml);
    let log = c.log();
    let line = log
        .iter()
        .find(|l| l.contains("Starting GRPC server"))
        .unwrap();
    let cols: Vec<&str> = line.split('\t').collect();
    assert_eq!(cols.len(), 4, "time, level, message, fields: {line:?}");
    assert_eq!(cols[1], "info");
    assert_eq!(cols[2], "Starting GRPC server");
    assert!(cols[3].contains("receiver=otlp"), "{line}");
    assert!(!line.contains(".rs:"), "no caller: {line}");
}

/// `metrics.level: none` serves no metrics endpoint at all.
#[test]
fn metrics_level_none_serves_nothing() {
    let yaml = format!(
        "{PIPELINE}  telemetry:
    metrics:
      level: none
      readers:
        - pull:
            exporter:
              prometheus:
                host: 127.0.0.1
                port: 0
"
    );
    let c = Collector::start(&yaml);
    assert!(c.metrics.is_none(), "{:#?}", c.log());
    assert!(
        !c.log().iter().any(|l| l.contains("Serving Prometheus")),
        "{:#?}",
        c.log()
    );
}

/// Two Prometheus readers serve the same SDK provider, each named as its flags say: the
/// first with wasmcol's defaults, the second without `_total`, with scope labels and with the
/// chosen resource attributes as labels on every series.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_readers_each_name_series_their_own_way() {
    let yaml = format!(
        "{PIPELINE}  telemetry:
    resource:
      deployment.environment: e2e
    metrics:
      readers:
        - pull:
            exporter:
              prometheus: {{host: 127.0.0.1, port: 0}}
        - pull:
            exporter:
              prometheus:
                host: 127.0.0.1
                port: 0
                without_type_suffix: true
                without_scope_info: false
                with_resource_constant_labels:
                  included: ['deployment.*', service.name]
"
    );
    let c = Collector::start(&yaml);
    let endpoints: Vec<String> = c
        .log()
        .iter()
        .filter(|l| l.contains("Serving Prometheus metrics"))
        .filter_map(|l| l.split("endpoint=").nth(1))
        .map(|e| e.split_whitespace().next().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(endpoints.len(), 2, "{:#?}", c.log());
    let scrape = |e: &str| {
        let url = format!("http://{e}/metrics");
        async move { reqwest::get(url).await.unwrap().text().await.unwrap() }
    };
    let plain = scrape(&endpoints[0]).await;
    let labelled = scrape(&endpoints[1]).await;
    let series = "otelcol_receiver_accepted_spans";
    assert!(
        plain.contains(&format!(
            "{series}_total{{receiver=\"otlp\",transport=\"grpc\"}} 0"
        )),
        "{plain}"
    );
    assert!(!plain.contains("otel_scope_name"), "{plain}");
    let line = labelled
        .lines()
        .find(|l| l.starts_with(&format!("{series}{{")))
        .unwrap_or_else(|| panic!("{labelled}"));
    for label in [
        "deployment_environment=\"e2e\"",
        "service_name=\"wasmcol\"",
        "otel_scope_name=\"wasmcol\"",
        "receiver=\"otlp\"",
    ] {
        assert!(line.contains(label), "{label} in {line}");
    }
    // `service.version` and `service.instance.id` are not in `included`.
    assert!(!line.contains("service_version"), "{line}");
    assert!(!labelled.contains("_total"), "{labelled}");
    // Both show the resource as `target_info`.
    for text in [&plain, &labelled] {
        assert!(text.contains("target_info{"), "{text}");
    }
}

/// A pipeline with a batch processor, so `otelcol_processor_batch_batch_send_size` (a `normal`
/// series) exists or not by level, with a periodic OTLP reader of `protocol` to `endpoint`.
fn pushing_config(level: &str, protocol: &str, endpoint: &str) -> String {
    format!(
        r#"
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:0
processors:
  batch:
    timeout: 10ms
exporters:
  debug:
service:
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [debug]
  telemetry:
    resource:
      deployment.environment: e2e
      service.version: null
    metrics:
      level: {level}
      readers:
        - periodic:
            interval: 100
            timeout: 5000
            exporter:
              otlp:
                protocol: {protocol}
                endpoint: {endpoint}
                headers:
                  - name: x-tenant
                    value: self
"#
    )
}

fn string_attr(attrs: &[KeyValue], key: &str) -> Option<String> {
    attrs
        .iter()
        .find(|a| a.key == key)
        .and_then(|a| match a.value.as_ref()?.value.as_ref()? {
            any_value::Value::StringValue(s) => Some(s.clone()),
            _ => None,
        })
}

/// Every metric of every push so far, in arrival order.
fn pushed(r: &Received) -> Vec<Metric> {
    r.metrics
        .iter()
        .flat_map(|m| &m.resource_metrics)
        .flat_map(|rm| &rm.scope_metrics)
        .flat_map(|sm| sm.metrics.iter().cloned())
        .collect()
}

/// The spans accepted by the `otlp` receiver over gRPC, as the last push carrying the
/// series reports them.
fn accepted_spans(r: &Received) -> i64 {
    pushed(r)
        .iter()
        .filter(|m| m.name == "otelcol_receiver_accepted_spans")
        .filter_map(|m| match &m.data {
            Some(Data::Sum(s)) => s.data_points.iter().find(|p| {
                string_attr(&p.attributes, "receiver").as_deref() == Some("otlp")
                    && string_attr(&p.attributes, "transport").as_deref() == Some("grpc")
            }),
            _ => None,
        })
        .filter_map(|p| match p.value {
            Some(number_data_point::Value::AsInt(v)) => Some(v),
            _ => None,
        })
        .next_back()
        .unwrap_or(0)
}

/// Starts the collector pushing to `backend`, sends 10 spans and waits for a push that counts
/// them; returns the collector (still running).
async fn push_after_traffic(backend: &Backend, yaml: &str) -> Collector {
    let c = Collector::start(yaml);
    let mut client = TraceServiceClient::connect(c.grpc_url("otlp"))
        .await
        .unwrap();
    client
        .export(wasmcol_testkit::spans::request(0, 10))
        .await
        .unwrap();
    assert!(
        backend.wait_until(WAIT, |r| accepted_spans(r) == 10).await,
        "no push counted the spans; log:\n{}",
        c.log().join("\n")
    );
    c
}

/// A periodic reader over gRPC pushes the collector's own metrics with upstream's names,
/// units and types and the resource (defaults, an added attribute, a removed default);
/// `detailed` includes the batch processor's `normal` send-size histogram.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn periodic_reader_pushes_own_metrics_over_grpc() {
    let backend = Backend::start().await;
    let yaml = pushing_config(
        "detailed",
        "grpc",
        &format!("http://{}", backend.endpoint()),
    );
    let mut c = push_after_traffic(&backend, &yaml).await;
    backend.with(|r| {
        let metrics = pushed(r);
        let accepted = metrics
            .iter()
            .find(|m| m.name == "otelcol_receiver_accepted_spans")
            .unwrap();
        assert_eq!(accepted.unit, "{spans}");
        match &accepted.data {
            Some(Data::Sum(s)) => {
                assert!(s.is_monotonic, "{accepted:?}");
                assert_eq!(s.aggregation_temporality, 2, "cumulative: {accepted:?}");
            }
            other => panic!("a sum: {other:?}"),
        }
        let uptime = metrics
            .iter()
            .find(|m| m.name == "otelcol_process_uptime")
            .unwrap();
        assert_eq!(uptime.unit, "s");
        assert!(
            metrics
                .iter()
                .all(|m| m.name.starts_with("otelcol_") || m.name.starts_with("wasmcol_")),
            "{:?}",
            metrics.iter().map(|m| &m.name).collect::<Vec<_>>()
        );
        let size = metrics
            .iter()
            .find(|m| m.name == "otelcol_processor_batch_batch_send_size")
            .expect("detailed has the batch send size");
        assert!(matches!(size.data, Some(Data::Histogram(_))), "{size:?}");
        let resource = r.metrics[0].resource_metrics[0].resource.clone().unwrap();
        let attrs = &resource.attributes;
        assert_eq!(
            string_attr(attrs, "service.name").as_deref(),
            Some("wasmcol")
        );
        assert_eq!(
            string_attr(attrs, "deployment.environment").as_deref(),
            Some("e2e")
        );
        assert_eq!(
            string_attr(attrs, "service.version"),
            None,
            "removed by null"
        );
        let id = string_attr(attrs, "service.instance.id").unwrap();
        assert_eq!(id.len(), 36, "a UUID: {id}");
    });
    c.sigterm();
    assert!(c.wait_exit(WAIT).success());
}

/// Over HTTP at `basic`, the pushes carry the receiver's counts but not the `normal` batch
/// send-size histogram.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn periodic_reader_over_http_at_basic_level() {
    let backend = Backend::start_http().await;
    let yaml = pushing_config(
        "basic",
        "http/protobuf",
        &format!("http://{}/v1/metrics", backend.endpoint()),
    );
    let mut c = push_after_traffic(&backend, &yaml).await;
    backend.with(|r| {
        let names: Vec<String> = pushed(r).into_iter().map(|m| m.name).collect();
        assert!(
            names
                .iter()
                .any(|n| n == "otelcol_processor_batch_timeout_trigger_send"),
            "{names:?}"
        );
        assert!(
            !names
                .iter()
                .any(|n| n == "otelcol_processor_batch_batch_send_size"),
            "{names:?}"
        );
    });
    c.sigterm();
    assert!(c.wait_exit(WAIT).success());
}

/// Every line the collector logs since its first processor started, as OTLP log records.
fn log_bodies(r: &Received) -> Vec<(String, LogRecord, Vec<KeyValue>)> {
    r.logs
        .iter()
        .flat_map(|l| &l.resource_logs)
        .flat_map(|rl| {
            let resource = rl.resource.clone().unwrap_or_default().attributes;
            rl.scope_logs
                .iter()
                .flat_map(|sl| sl.log_records.iter().cloned())
                .map(move |lr| {
                    let body = match lr.body.as_ref().and_then(|b| b.value.as_ref()) {
                        Some(any_value::Value::StringValue(s)) => s.clone(),
                        _ => String::new(),
                    };
                    (body, lr, resource.clone())
                })
        })
        .collect()
}

/// `logs.processors`: a batch processor over gRPC and a simple one over HTTP each get the
/// collector's own lines as OTLP log records (message as body, zap's level as severity, the
/// fields and the caller as attributes, the telemetry resource, the declarative resource form
/// applied), and the batch processor's last export at shutdown carries the shutdown line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_processors_export_the_collectors_own_lines() {
    let grpc = Backend::start().await;
    let http = Backend::start_http().await;
    let yaml = format!(
        r#"{PIPELINE}  telemetry:
    resource:
      attributes:
        - name: deployment.environment
          value: e2e
    logs:
      initial_fields:
        tier: edge
      processors:
        - batch:
            schedule_delay: 100
            exporter:
              otlp:
                protocol: grpc
                endpoint: http://{grpc}
        - simple:
            exporter:
              otlp:
                protocol: http/protobuf
                endpoint: http://{http}/v1/logs
"#,
        grpc = grpc.endpoint(),
        http = http.endpoint(),
    );
    let mut c = Collector::start(&yaml);
    let ready = "Everything is ready. Begin running and processing data.";
    for backend in [&grpc, &http] {
        assert!(
            backend
                .wait_until(WAIT, |r| log_bodies(r).iter().any(|(b, _, _)| b == ready))
                .await,
            "no ready line exported; log:\n{}",
            c.log().join("\n")
        );
        backend.with(|r| {
            let logs = log_bodies(r);
            let (_, record, resource) = logs.iter().find(|(b, _, _)| b == ready).unwrap();
            assert_eq!(record.severity_number, 9, "{record:?}");
            assert_eq!(record.severity_text, "info");
            assert!(record.time_unix_nano > 0);
            assert_eq!(
                string_attr(&record.attributes, "tier").as_deref(),
                Some("edge")
            );
            assert!(
                string_attr(&record.attributes, "code.filepath").is_some(),
                "{record:?}"
            );
            assert_eq!(
                string_attr(resource, "service.name").as_deref(),
                Some("wasmcol")
            );
            assert_eq!(
                string_attr(resource, "deployment.environment").as_deref(),
                Some("e2e")
            );
        });
    }
    c.sigterm();
    assert!(c.wait_exit(WAIT).success());
    grpc.with(|r| {
        let bodies: Vec<String> = log_bodies(r).into_iter().map(|(b, _, _)| b).collect();
        assert!(
            bodies
                .iter()
                .any(|b| b.starts_with("Received signal, shutting down")),
            "the final export carries the shutdown line: {bodies:?}"
        );
    });
}

/// `level: none` turns the periodic readers off too: not even the final push at shutdown
/// reaches the backend, while the pipeline still works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn level_none_pushes_nothing() {
    let backend = Backend::start().await;
    let yaml = pushing_config("none", "grpc", &format!("http://{}", backend.endpoint()));
    let mut c = Collector::start(&yaml);
    let mut client = TraceServiceClient::connect(c.grpc_url("otlp"))
        .await
        .unwrap();
    client
        .export(wasmcol_testkit::spans::request(0, 10))
        .await
        .unwrap();
    c.sigterm();
    assert!(c.wait_exit(WAIT).success());
    assert_eq!(backend.with(|r| r.metrics.len()), 0);
    assert!(
        !c.log()
            .iter()
            .any(|l| l.contains("Pushing the collector's own metrics")),
        "{:#?}",
        c.log()
    );
}

/// A push that fails is logged and counted and the collector keeps serving: the final push
/// at shutdown reaches a backend that answers again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_push_is_logged_and_the_next_one_goes_through() {
    let backend = Backend::start().await;
    backend.refuse(Some(tonic::Code::Unavailable));
    let yaml = pushing_config("normal", "grpc", &format!("http://{}", backend.endpoint()));
    let mut c = Collector::start(&yaml);
    assert!(
        common::eventually(WAIT, || async { backend.refused() >= 2 }).await,
        "{:#?}",
        c.log()
    );
    assert!(
        c.log()
            .iter()
            .any(|l| l.contains("Pushing the collector's own metrics failed")),
        "{:#?}",
        c.log()
    );
    backend.refuse(None);
    c.sigterm();
    assert!(c.wait_exit(WAIT).success());
    let failed = backend.with(|r| {
        pushed(r)
            .into_iter()
            .filter(|m| m.name == "wasmcol_telemetry_push_failed")
            .filter_map(|m| match m.data {
                Some(Data::Sum(s)) => s.data_points.first().and_then(|p| p.value),
                _ => None,
            })
            .next_back()
    });
    assert!(
        matches!(failed, Some(number_data_point::Value::AsInt(n)) if n >= 2),
        "{failed:?}"
    );
}

/// What upstream accepts under `service.telemetry` but wasmcol cannot honour is refused with
/// its key path, one config per key (the first problem in `service` is reported).
#[test]
fn validate_refuses_telemetry_keys_it_cannot_honour() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "metrics:\n      readers:\n        - periodic:\n            exporter:\n              otlp:\n                protocol: http/json\n                endpoint: http://127.0.0.1:4318/v1/metrics\n",
            "telemetry.metrics.readers[0].periodic.exporter.otlp.protocol: not implemented",
        ),
        (
            "metrics:\n      readers:\n        - pull:\n            exporter:\n              prometheus:\n                without_units: false\n",
            "telemetry.metrics.readers[0].pull.exporter.prometheus.without_units: not implemented",
        ),
        (
            "metrics:\n      views:\n        - selector:\n            instrument_name: x\n",
            "telemetry.metrics.views: not implemented",
        ),
        (
            "logs:\n      processors:\n        - batch:\n            exporter:\n              console: {}\n",
            "telemetry.logs.processors[0].batch.exporter.console: not implemented",
        ),
        (
            "logs:\n      processors:\n        - simple:\n            exporter:\n              otlp:\n                protocol: http/json\n                endpoint: http://127.0.0.1:4318/v1/logs\n",
            "telemetry.logs.processors[0].simple.exporter.otlp.protocol: not implemented",
        ),
        (
            "resource:\n      attributes:\n        - name: team\n          value: [a]\n          type: string_array\n",
            "telemetry.resource.attributes[0].type: not implemented",
        ),
        (
            "logs:\n      development: true\n",
            "telemetry.logs.development: not implemented",
        ),
        (
            "logs:\n      disable_stacktrace: false\n",
            "telemetry.logs.disable_stacktrace: not implemented",
        ),
        (
            "logs:\n      encoding: logfmt\n",
            "telemetry.logs.encoding: unknown encoding",
        ),
        (
            "logs:\n      output_paths: [\"http://127.0.0.1:1/logs\"]\n",
            "telemetry.logs.output_paths: not implemented",
        ),
        (
            "logs:\n      sampling:\n        every: 3\n",
            "telemetry.logs.sampling.every: unknown field `every`",
        ),
        (
            "traces:\n      processors:\n        - batch: {}\n",
            "telemetry.traces: not implemented",
        ),
        (
            "resource:\n      service.name: [mine]\n",
            "telemetry.resource.service.name: a resource attribute is a string",
        ),
    ];
    for (i, (telemetry, expected)) in cases.iter().enumerate() {
        let yaml = format!("{PIPELINE}  telemetry:\n    {telemetry}");
        let path = write_config(&dir, &format!("refused-{i}.yaml"), &yaml);
        let (ok, _out, err) = run_cli(&["validate", "--config", &path]);
        assert!(!ok, "validate must fail for {telemetry}");
        assert!(err.contains(expected), "missing {expected:?} in {err}");
    }
    let accepted = format!(
        "{PIPELINE}  telemetry:
    logs:
      level: warn
      encoding: json
      disable_caller: true
      disable_stacktrace: true
      sampling:
        enabled: true
        tick: 5s
        initial: 5
        thereafter: 50
      output_paths: [stdout]
      error_output_paths: [stderr]
      initial_fields:
        service: collector
      processors: []
    metrics:
      level: detailed
      readers:
        - pull:
            exporter:
              prometheus:
                host: 127.0.0.1
                port: 0
                without_units: true
                without_scope_info: true
                without_type_suffix: true
    traces:
      level: none
"
    );
    let path = write_config(&dir, "accepted.yaml", &accepted);
    let (ok, out, err) = run_cli(&["validate", "--config", &path]);
    assert!(ok, "{out}{err}");
}
