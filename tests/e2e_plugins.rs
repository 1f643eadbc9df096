//! End-to-end tests of the WebAssembly processors through the real binary (the seed's region
//! and gateway configs with the bundled `resource` and `attributes` plugins run over mTLS in
//! `e2e_tls.rs`): a trapping plugin under `on_error: refuse` (no acknowledged span lost; a
//! trap that repeats on a fresh instance is 400 / `INVALID_ARGUMENT` with its details only in
//! the log), a
//! looping plugin (the collector stays up), `validate` with plugin config errors, and the
//! `plugin inspect` / `plugin run` commands.
// Test code: a failed expectation is reported by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
mod plugins_support;

use common::{Backend, Collector, WAIT, eventually, metric_value, run_cli, write_config};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use plugins_support::{isolate_cache, spans_request, wasm_forwarder};
use prost::Message;
use wasmcol_wasm::bundled::test_paths;

/// Acceptance 4 through the binary: a plugin that traps on every second call of an
/// instance, with `on_error: refuse`. The trap does not repeat on a fresh instance, so the
/// batch is run again there and goes on: nothing is refused, every span arrives once.
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
    for i in 0..10u8 {
        client.export(spans_request(5, i)).await.unwrap();
    }
    assert!(backend.wait_for_spans(50).await);
    assert_eq!(
        backend.spans().len(),
        50,
        "acknowledged spans lost or duplicated"
    );
    let metrics = collector.scrape().await;
    let traps = metric_value(
        &metrics,
        r#"wasmcol_plugin_errors_total{processor="wasm/plugin",reason="trap"}"#,
    );
    assert!(traps.unwrap_or(0.0) >= 1.0, "{metrics}");
    let rejected = metric_value(
        &metrics,
        r#"wasmcol_plugin_rejected_items_total{processor="wasm/plugin"}"#,
    );
    assert_eq!(rejected.unwrap_or(0.0), 0.0, "{metrics}");
}

/// A plugin that traps on every batch, over the real receivers: the trap repeats on a fresh
/// instance, so the data is refused as invalid (400 / INVALID_ARGUMENT, not a retryable 503
/// the client would resend forever) and counted. The client reads the processor's name and
/// the kind of failure only; the panic message the plugin wrote to stderr and the wasm
/// backtrace are in the collector's log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_trap_is_invalid_data_and_its_details_stay_in_the_log() {
    isolate_cache();
    let backend = Backend::start().await;
    let config = wasm_forwarder(
        &backend,
        &format!(
            "  wasm/plugin:\n    path: {}\n    config: {{ every: 1 }}\n",
            test_paths::TRAP
        ),
    )
    .replace(
        "        endpoint: 127.0.0.1:0\n",
        "        endpoint: 127.0.0.1:0\n      http:\n        endpoint: 127.0.0.1:0\n",
    );
    let collector = Collector::start(&config);
    let internals = ["test_trap", "panicked", "backtrace", "stderr", "0x"];

    let r = reqwest::Client::new()
        .post(format!("{}/v1/traces", collector.http_url("otlp")))
        .header("content-type", "application/x-protobuf")
        .body(spans_request(4, 1).encode_to_vec())
        .send()
        .await
        .unwrap();
    let code = r.status();
    let st = wasmcol_otlp::RpcStatus::decode(r.bytes().await.unwrap()).unwrap();
    for word in internals {
        assert!(!st.message.contains(word), "{word:?} in {:?}", st.message);
    }
    assert!(st.message.contains("wasm/plugin"), "{}", st.message);
    assert_eq!(code, 400);
    assert_eq!(st.code, tonic::Code::InvalidArgument as i32);

    let mut client = TraceServiceClient::connect(collector.grpc_url("otlp"))
        .await
        .unwrap();
    let status = client.export(spans_request(6, 2)).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    for word in internals {
        assert!(!status.message().contains(word), "{word:?} in {status:?}");
    }

    // The details are logged.
    assert!(
        eventually(WAIT, || async {
            let log = collector.log().join("\n");
            log.contains("test_trap: trapping on call") && log.contains("backtrace")
        })
        .await,
        "{}",
        collector.log().join("\n")
    );
    assert_eq!(
        collector
            .metric(r#"wasmcol_plugin_rejected_items_total{processor="wasm/plugin"}"#)
            .await,
        Some(10.0)
    );
    assert!(backend.spans().is_empty());
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
  # In no pipeline: its plugin config is still checked, as upstream validates every
  # configured component.
  attributes/unused:
    actions:
      - key: b
        action: insert
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
        err.contains(r#"processors::attributes/unused: actions[0]: error creating AttrProc."#),
        "{err}"
    );
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
        "--plugin-config",
        r#"{"key":"team","value":"payments"}"#,
        "--input",
        &input,
        "--output",
        "json",
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
        "--plugin-config",
        "{}",
        "--input",
        &input,
    ]);
    assert!(!ok);
    assert!(err.contains("missing field `key`"), "{err}");
}

/// `plugin run` as an author uses it: the config as the YAML body from a collector config
/// (inline or `@file`), the outcome with counts for forward, drop and error, protobuf input,
/// and a clear refusal of a signal the plugin does not handle or of the collector's flags.
#[test]
fn plugin_run_reports_the_outcome_with_counts() {
    use prost::Message;
    isolate_cache();
    let dir = tempfile::tempdir().unwrap();
    let spans = r#"{"resourceSpans":[
        {"resource":{"attributes":[]},"scopeSpans":[{"spans":[
            {"traceId":"4bf92f3577b34da6a3ce929d0e0e4736","spanId":"00f067aa0ba902b7","name":"a"},
            {"traceId":"4bf92f3577b34da6a3ce929d0e0e4736","spanId":"00f067aa0ba902b8","name":"b"}]}]},
        {"resource":{"attributes":[]},"scopeSpans":[{"spans":[
            {"traceId":"5bf92f3577b34da6a3ce929d0e0e4736","spanId":"00f067aa0ba902b9","name":"c"}]}]}]}"#;
    let json = write_config(&dir, "spans.json", spans);
    let config = write_config(&dir, "plugin.yaml", "key: team\nvalue: payments\n");
    let config_arg = format!("@{config}");
    let run = |plugin: &str, config: &str, input: &str, extra: &[&str]| {
        let mut args = vec!["plugin", "run", plugin, "--input", input];
        if !config.is_empty() {
            args.extend(["--plugin-config", config]);
        }
        args.extend(extra);
        run_cli(&args)
    };

    // Forward, YAML config from a file: counts in and out, then the tagged spans.
    let (ok, out, err) = run(test_paths::TEMPLATE, &config_arg, &json, &[]);
    assert!(ok, "{err}");
    assert!(out.contains("plugin:  template "), "{out}");
    assert!(
        out.contains("input:   traces: 2 resources, 3 spans"),
        "{out}"
    );
    assert!(
        out.contains("outcome: forward: 2 resources, 3 spans"),
        "{out}"
    );
    assert_eq!(
        out.matches(r#""stringValue": "payments""#).count(),
        3,
        "{out}"
    );

    // The same batch as OTLP protobuf, with inline YAML: the same result.
    let request: wasmcol_pdata::ExportTraceServiceRequest =
        wasmcol_pdata::from_json(spans.as_bytes()).unwrap();
    let pb = dir.path().join("spans.pb");
    std::fs::write(&pb, request.encode_to_vec()).unwrap();
    let pb = pb.to_str().unwrap();
    let (ok, out, err) = run(
        test_paths::TEMPLATE,
        "{key: team, value: payments}",
        pb,
        &["--signal", "traces"],
    );
    assert!(ok, "{err}");
    assert!(
        out.contains("outcome: forward: 2 resources, 3 spans"),
        "{out}"
    );
    let (ok, _, err) = run(test_paths::TEMPLATE, "{key: a, value: b}", pb, &[]);
    assert!(!ok);
    assert!(err.contains("name its signal with --signal"), "{err}");

    // Drop.
    let (ok, out, err) = run(test_paths::KEEP, "", &json, &[]);
    assert!(ok, "{err}");
    assert!(out.contains("outcome: drop"), "{out}");

    // A plugin error: the outcome says which kind, and the exit code is non-zero.
    let (ok, out, err) = run(test_paths::ERROR, "{permanent: true}", &json, &[]);
    assert!(!ok, "{out}");
    assert!(out.contains("outcome: error (permanent"), "{out}");
    assert!(err.contains("the plugin failed on the batch"), "{err}");

    // A signal the plugin does not handle is refused, as `validate` refuses it.
    let logs = write_config(
        &dir,
        "logs.json",
        r#"{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"body":{"stringValue":"x"}}]}]}]}"#,
    );
    let (ok, _, err) = run(test_paths::ERROR, "", &logs, &[]);
    assert!(!ok);
    assert!(
        err.contains(r#"plugin "test_error" does not handle logs (it handles: traces)"#),
        "{err}"
    );

    // The collector's flags are not the plugin's.
    let (ok, _, err) = run_cli(&[
        "--config",
        &config,
        "plugin",
        "run",
        test_paths::KEEP,
        "--input",
        &json,
    ]);
    assert!(!ok);
    assert!(err.contains("--plugin-config"), "{err}");

    // A plugin that holds traces decides each trace of the input.
    let tail = dir.path().join("tail_sampling.wasm");
    std::fs::write(&tail, wasmcol_wasm::bundled::TAIL_SAMPLING).unwrap();
    let (ok, out, err) = run(
        tail.to_str().unwrap(),
        "{policies: [{name: all, type: always_sample}]}",
        &json,
        &[],
    );
    assert!(ok, "{err}");
    assert!(
        out.contains("decided 2 traces (as if each decision_wait had passed): 2 sampled"),
        "{out}"
    );
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

/// Scenario: three plugin processors, a cold compile cache, the health_check extension, and
/// the `wasm` processor's file is a FIFO nobody has written yet, so loading that plugin
/// cannot finish. The metrics endpoint answers meanwhile (the async workers are free:
/// reading and compiling run on the blocking pool), and the collector is not ready. Once
/// the component arrives the collector becomes ready, health_check answers 200, and SIGTERM
/// stops it cleanly (the plugin epoch thread is joined).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collector_serves_metrics_while_plugins_load() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};

    let dir = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("template.wasm");
    let made = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success(), "mkfifo failed");
    let config = write_config(
        &dir,
        "three.yaml",
        &format!(
            r#"
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:0
processors:
  attributes/a:
    actions:
      - key: source
        value: e2e
        action: insert
  resource/r:
    attributes:
      - key: deployment.region
        value: eu-west-1
        action: upsert
  wasm/fifo:
    path: {}
    config: {{ key: team, value: payments }}
exporters:
  nop:
extensions:
  health_check:
    endpoint: 127.0.0.1:0
service:
  extensions: [health_check]
  pipelines:
    traces:
      receivers: [otlp]
      processors: [attributes/a, resource/r, wasm/fifo]
      exporters: [nop]
"#,
            fifo.display()
        ),
    );
    let mut child = Command::new(env!("CARGO_BIN_EXE_wasmcol"))
        .args(["--config", &config])
        .args(["--set", "service.telemetry.metrics.address=127.0.0.1:0"])
        .env("WASMCOL_CACHE_DIR", cache.path())
        .env("WASMCOL_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let log = std::sync::Arc::new(parking_lot::Mutex::new(Vec::<String>::new()));
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let log2 = log.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            log2.lock().push(line.clone());
            let _ = tx.send(line);
        }
    });
    // Waits (bounded) for a log line containing `what`; returns it.
    let wait_for = |what: &str, within: Duration| -> String {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) if line.contains(what) => return line,
                Ok(_) => {}
                Err(_) => panic!(
                    "no {what:?} within {within:?}; log:\n{}",
                    log.lock().join("\n")
                ),
            }
        }
    };
    let field = |line: &str, key: &str| -> String {
        let start = line.find(&format!("{key}=")).unwrap() + key.len() + 1;
        let rest = &line[start..];
        rest[..rest.find(' ').unwrap_or(rest.len())]
            .trim_matches('"')
            .to_owned()
    };

    let line = wait_for("Serving Prometheus metrics", WAIT);
    let metrics = field(&line, "endpoint");
    wait_for("Preparing components", WAIT);
    let scrape = reqwest::get(format!("http://{metrics}/metrics"))
        .await
        .unwrap();
    assert_eq!(scrape.status(), 200);
    assert!(!scrape.text().await.unwrap().is_empty());
    // The wasm processor's component has not been written: preparation cannot have ended.
    let so_far = log.lock().clone();
    assert!(
        !so_far.iter().any(|l| l.contains("Everything is ready")),
        "{so_far:?}"
    );

    let bytes = std::fs::read(test_paths::TEMPLATE).unwrap();
    // Opening a FIFO for writing waits for the reader: a thread of its own.
    let writer = std::thread::spawn(move || std::fs::write(&fifo, bytes));
    // Three cold compiles on a slow machine: a generous bound.
    let health = field(
        &wait_for("health_check listening", Duration::from_secs(180)),
        "endpoint",
    );
    wait_for("Everything is ready", WAIT);
    writer.join().unwrap().unwrap();
    let status = reqwest::get(format!("http://{health}/"))
        .await
        .unwrap()
        .status();
    assert_eq!(status, 200);

    let term = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let deadline = Instant::now() + WAIT;
    let exit = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "collector did not exit");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(exit.success(), "{}", log.lock().join("\n"));
    assert!(
        log.lock().iter().any(|l| l.contains("Shutdown complete")),
        "{:?}",
        log.lock()
    );
}

/// The bundled sampler publishes upstream's `count_traces_sampled` counter, labelled with the
/// processor: sampled and not sampled spans add up to what was sent, and the sampled ones are
/// exactly what the backend got.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probabilistic_sampler_publishes_upstreams_counter() {
    isolate_cache();
    let backend = Backend::start().await;
    let config = wasm_forwarder(
        &backend,
        "  probabilistic_sampler:\n    sampling_percentage: 50\n",
    )
    .replace("[wasm/plugin]", "[probabilistic_sampler]");
    let collector = Collector::start(&config);
    let mut client = TraceServiceClient::connect(collector.grpc_url("otlp"))
        .await
        .unwrap();
    client
        .export(wasmcol_testkit::spans::request(1, 200))
        .await
        .unwrap();
    let count = |text: &str, sampled: &str| {
        wasmcol_testkit::prom::series(
            text,
            "otelcol_processor_probabilistic_sampler_count_traces_sampled",
            &format!(
                "policy=\"trace_id_hash\",processor=\"probabilistic_sampler\",sampled=\"{sampled}\""
            ),
        )
        .unwrap_or(0.0)
    };
    let last = parking_lot::Mutex::new(String::new());
    let counted = eventually(WAIT, || async {
        let t = collector.scrape().await;
        let done = count(&t, "true") + count(&t, "false") == 200.0;
        *last.lock() = t;
        done
    })
    .await;
    let text = last.into_inner();
    assert!(counted, "{text}");
    let sampled = count(&text, "true");
    assert!(sampled > 0.0 && sampled < 200.0, "{text}");
    assert!(backend.wait_for_spans(sampled as usize).await);
    assert_eq!(backend.spans().len(), sampled as usize);
}
