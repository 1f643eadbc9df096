//! End-to-end tests of the WebAssembly processors through the real binary (the seed's region
//! and gateway configs with the bundled `resource` and `attributes` plugins run over mTLS in
//! `e2e_tls.rs`): a trapping plugin under `on_error: refuse` (no acknowledged span lost), a
//! looping plugin (the collector stays up), `validate` with plugin config errors, and the
//! `plugin inspect` / `plugin run` commands.

mod common;
mod plugins_support;

use common::{Backend, Collector, WAIT, eventually, metric_value, run_cli, write_config};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use plugins_support::{isolate_cache, spans_request};
use wasmcol_wasm::bundled::test_paths;

fn wasm_forwarder(backend: &Backend, processor: &str) -> String {
    format!(
        r#"
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:0
processors:
{processor}
exporters:
  otlp:
    endpoint: {}
    tls:
      insecure: true
service:
  pipelines:
    traces:
      receivers: [otlp]
      processors: [wasm/plugin]
      exporters: [otlp]
"#,
        backend.endpoint()
    )
}

/// Acceptance 4 through the binary: a plugin that traps on every second batch, with
/// `on_error: refuse`. Refused requests get UNAVAILABLE; every acknowledged span arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trapping_plugin_refuses_and_loses_nothing_acknowledged() {
    isolate_cache();
    let backend = Backend::start().await;
    let collector = Collector::start(&wasm_forwarder(
        &backend,
        &format!(
            "  wasm/plugin:\n    path: {}\n    config: {{ every: 2 }}\n    on_error: refuse\n",
            test_paths::TRAP
        ),
    ));
    let mut client = TraceServiceClient::connect(collector.grpc_url("otlp"))
        .await
        .unwrap();
    let mut acked = 0usize;
    let mut refused = 0usize;
    for i in 0..10u8 {
        match client.export(spans_request(5, i)).await {
            Ok(_) => acked += 5,
            Err(status) => {
                assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
                refused += 1;
            }
        }
    }
    assert!(refused > 0, "the trap plugin never trapped");
    assert!(backend.wait_for_spans(acked).await);
    assert_eq!(
        backend.spans().len(),
        acked,
        "acknowledged spans lost or duplicated"
    );
    let metrics = collector.scrape().await;
    let traps = metric_value(
        &metrics,
        r#"wasmcol_plugin_errors_total{processor="wasm/plugin",reason="trap"}"#,
    );
    assert_eq!(traps, Some(refused as f64), "{metrics}");
}

/// A plugin that never returns: the deadline ends each call, the collector keeps serving
/// and `on_error: pass` forwards the data unchanged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn looping_plugin_times_out_and_the_collector_stays_up() {
    isolate_cache();
    let backend = Backend::start().await;
    let collector = Collector::start(&wasm_forwarder(
        &backend,
        &format!(
            "  wasm/plugin:\n    path: {}\n    limits:\n      timeout: 20ms\n    on_error: pass\n",
            test_paths::LOOP
        ),
    ));
    let mut client = TraceServiceClient::connect(collector.grpc_url("otlp"))
        .await
        .unwrap();
    for i in 0..3u8 {
        client.export(spans_request(2, i)).await.unwrap();
    }
    assert!(backend.wait_for_spans(6).await);
    assert!(
        eventually(WAIT, || async {
            collector
                .metric(r#"wasmcol_plugin_errors_total{processor="wasm/plugin",reason="timeout"}"#)
                .await
                == Some(3.0)
        })
        .await
    );
}

#[test]
fn validate_reports_plugin_config_errors_with_key_paths() {
    isolate_cache();
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(
        &dir,
        "bad.yaml",
        &format!(
            r#"
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:0
processors:
  attributes/x:
    actions:
      - key: a
        action: upsert
  resource/y:
    attributes: []
  wasm/z:
    path: {}
    config: {{ key: k, colour: red }}
exporters:
  nop:
service:
  pipelines:
    traces:
      receivers: [otlp]
      processors: [attributes/x, resource/y, wasm/z]
      exporters: [nop]
"#,
            test_paths::TEMPLATE
        ),
    );
    let (ok, _out, err) = run_cli(&["validate", "--config", &path]);
    assert!(!ok);
    assert!(
        err.contains(r#"processors::attributes/x: actions[0]: error creating AttrProc. Either field "value", "from_attribute" or "from_context" setting must be specified for 0-th action"#),
        "{err}"
    );
    assert!(
        err.contains(r#"processors::resource/y: attributes: missing required field "attributes""#),
        "{err}"
    );
    assert!(
        err.contains("processors::wasm/z: config.colour: unknown field `colour`"),
        "{err}"
    );
}

#[test]
fn plugin_inspect_and_run() {
    isolate_cache();
    let (ok, out, err) = run_cli(&["plugin", "inspect", test_paths::TEMPLATE]);
    assert!(ok, "{err}");
    assert!(out.contains("name: template"), "{out}");
    assert!(out.contains("signals: traces, metrics, logs"), "{out}");
    assert!(out.contains("\"required\":[\"key\"]"), "{out}");

    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("batch.json");
    std::fs::write(
        &input,
        r#"{"resourceSpans":[{"resource":{"attributes":[]},"scopeSpans":[{"spans":[
            {"traceId":"4bf92f3577b34da6a3ce929d0e0e4736","spanId":"00f067aa0ba902b7","name":"GET /"}]}]}]}"#,
    )
    .unwrap();
    let input = input.to_string_lossy().into_owned();
    let (ok, out, err) = run_cli(&[
        "plugin",
        "run",
        test_paths::TEMPLATE,
        "--config",
        r#"{"key":"team","value":"payments"}"#,
        "--input",
        &input,
    ]);
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let attrs = &v["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["attributes"];
    assert_eq!(attrs[0]["key"], "team", "{out}");
    assert_eq!(attrs[0]["value"]["stringValue"], "payments", "{out}");

    let (ok, _out, err) = run_cli(&[
        "plugin",
        "run",
        test_paths::TEMPLATE,
        "--config",
        "{}",
        "--input",
        &input,
    ]);
    assert!(!ok);
    assert!(err.contains("missing field `key`"), "{err}");
}

#[test]
fn components_lists_the_bundled_plugins() {
    isolate_cache();
    let (ok, out, _) = run_cli(&["components"]);
    assert!(ok);
    for name in ["attributes", "resource", "probabilistic_sampler", "wasm"] {
        assert!(
            out.contains(&format!("  {name} - ")),
            "{name} missing:\n{out}"
        );
    }
}
