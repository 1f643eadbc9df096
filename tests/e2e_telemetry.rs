//! End-to-end tests of `service.telemetry` through the real binary: the collector's own logs
//! (encodings, fields, outputs), its metrics endpoint switched off, and the keys it refuses.
// Test code: a failed expectation is reported by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Instant;

use common::{Collector, WAIT, run_cli, write_config};

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

/// What upstream accepts under `service.telemetry` but wasmcol cannot honour is refused with
/// its key path, one config per key (the first problem in `service` is reported).
#[test]
fn validate_refuses_telemetry_keys_it_cannot_honour() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "metrics:\n      readers:\n        - periodic:\n            exporter:\n              otlp:\n                protocol: grpc\n                endpoint: http://127.0.0.1:4317\n",
            "telemetry.metrics.readers[0].periodic: not implemented",
        ),
        (
            "metrics:\n      readers:\n        - pull:\n            exporter:\n              prometheus:\n                without_units: false\n",
            "telemetry.metrics.readers[0].pull.exporter.prometheus.without_units: not implemented",
        ),
        (
            "metrics:\n      readers:\n        - pull:\n            exporter:\n              prometheus:\n                with_resource_constant_labels:\n                  included: [service.name]\n",
            "telemetry.metrics.readers[0].pull.exporter.prometheus.with_resource_constant_labels: not implemented",
        ),
        (
            "metrics:\n      views:\n        - selector:\n            instrument_name: x\n",
            "telemetry.metrics.views: not implemented",
        ),
        (
            "logs:\n      processors:\n        - batch:\n            exporter:\n              otlp:\n                endpoint: http://127.0.0.1:4317\n",
            "telemetry.logs.processors: not implemented",
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
            "resource:\n      service.name: mine\n",
            "telemetry.resource: not implemented",
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
