//! A plugin in another language: the Python region tagger in
//! `plugins/examples/python-region`, built with componentize-py against the repository's WIT,
//! inspected, run by `wasmcol plugin run`, refused with its own config errors by `validate`,
//! and tagging spans in a running collector. Skipped with a message when componentize-py is
//! not installed, unless `WASMCOL_REQUIRE_COMPONENTIZE_PY=1` (set by `.ci/run`).
// Test code: a failed expectation is reported by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
mod plugins_support;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{Backend, Collector, run_cli, write_config};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use plugins_support::{attr, isolate_cache, spans_request, wasm_forwarder};

fn example() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../plugins/examples/python-region")
}

/// Builds the plugin into `dir`, or `None` when componentize-py is missing.
fn build(dir: &Path) -> Option<PathBuf> {
    let found = Command::new("componentize-py")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            std::env::var("WASMCOL_REQUIRE_COMPONENTIZE_PY").as_deref() != Ok("1"),
            "WASMCOL_REQUIRE_COMPONENTIZE_PY=1 but componentize-py is not installed"
        );
        eprintln!("SKIPPED: componentize-py not installed (pip install componentize-py==0.25.1)");
        return None;
    }
    let out = dir.join("py_region.wasm");
    let build = Command::new(example().join("build.sh"))
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        build.status.success(),
        "build.sh failed:\n{}{}",
        String::from_utf8_lossy(&build.stdout),
        String::from_utf8_lossy(&build.stderr)
    );
    Some(out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_plugin_builds_runs_and_tags_spans_in_the_collector() {
    isolate_cache();
    let dir = tempfile::tempdir().unwrap();
    let Some(wasm) = build(dir.path()) else {
        return;
    };
    let wasm_path = wasm.to_str().unwrap();

    let (ok, out, err) = run_cli(&["plugin", "inspect", wasm_path]);
    assert!(ok, "{err}");
    assert!(out.contains("name: py_region"), "{out}");
    assert!(out.contains("signals: traces, metrics, logs"), "{out}");

    let input = write_config(
        &dir,
        "logs.json",
        r#"{"resourceLogs":[{"resource":{},"scopeLogs":[{"logRecords":[{"body":{"stringValue":"x"}}]}]}]}"#,
    );
    let (ok, out, err) = run_cli(&[
        "plugin",
        "run",
        wasm_path,
        "--input",
        &input,
        "--plugin-config",
        "region: eu-west-1",
    ]);
    assert!(ok, "{err}");
    assert!(
        out.contains("outcome: forward: 1 resources, 1 log records"),
        "{out}"
    );
    assert!(out.contains(r#""stringValue": "eu-west-1""#), "{out}");

    // The plugin's own config errors, every one with its key path, through the collector.
    let backend = Backend::start().await;
    let processor = |config: &str| {
        wasm_forwarder(
            &backend,
            &format!("  wasm/plugin:\n    path: {wasm_path}\n    config: {config}\n"),
        )
    };
    let bad = write_config(&dir, "bad.yaml", &processor("{regoin: eu-west-1, key: 7}"));
    let (ok, _, err) = run_cli(&["validate", "--config", &bad]);
    assert!(!ok);
    for want in [
        "config.regoin: unknown field",
        "config.region: required",
        "config.key: must be a non-empty string",
    ] {
        assert!(err.contains(want), "{want:?} not in:\n{err}");
    }

    let collector = Collector::start(&processor("{region: eu-west-1}"));
    let mut client = TraceServiceClient::connect(collector.grpc_url("otlp"))
        .await
        .unwrap();
    client.export(spans_request(20, 7)).await.unwrap();
    assert!(backend.wait_for_spans(20).await);
    let regions: Vec<Option<String>> = backend.with(|r| {
        r.traces
            .iter()
            .flat_map(|t| &t.resource_spans)
            .map(|rs| {
                attr(
                    &rs.resource.as_ref().unwrap().attributes,
                    "deployment.region",
                )
            })
            .collect()
    });
    assert!(!regions.is_empty());
    assert!(
        regions.iter().all(|r| r.as_deref() == Some("eu-west-1")),
        "{regions:?}"
    );
}
