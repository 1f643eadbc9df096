//! `wasmcol plugin new` from a plugin author's seat, in a temp dir outside the repository:
//! the project's unit tests pass, it builds for wasm32-wasip2, `plugin run` applies it to the
//! sample batch, and its `collector.yaml` processor runs it in a collector that forwards the
//! edited spans to a recording backend.
//!
//! The generated project builds into `<workspace target>/e2e-plugin-new` so reruns are
//! incremental.
// Test code: a failed expectation is reported by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
mod plugins_support;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{Backend, Collector, run_cli};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use plugins_support::{attr, isolate_cache, spans_request};

/// The workspace's target dir: this test binary is `<target>/<profile>/deps/<name>`.
fn shared_target() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.ancestors().nth(3).unwrap().join("e2e-plugin-new")
}

/// Runs cargo in the generated project; panics with its output when it fails.
fn cargo(project: &Path, args: &[&str]) {
    let out = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(args)
        .current_dir(project)
        .env("CARGO_TARGET_DIR", shared_target())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "cargo {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The generated `collector.yaml`, with its processor as written and the parts around it
/// pointed at this test: free ports, the component's real path, OTLP out to `backend`.
fn test_config(project: &Path, wasm: &Path, backend: &Backend) -> String {
    let text = std::fs::read_to_string(project.join("collector.yaml")).unwrap();
    let mut cfg: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    let processor = &mut cfg["processors"]["wasm/region_tag"];
    assert!(processor.is_mapping(), "{text}");
    assert_eq!(
        processor["path"].as_str(),
        Some("target/wasm32-wasip2/release/region_tag.wasm")
    );
    processor["path"] = wasm.to_str().unwrap().into();
    cfg["receivers"]["otlp"]["protocols"] =
        serde_yaml::from_str("{grpc: {endpoint: 127.0.0.1:0}}").unwrap();
    cfg["exporters"] = serde_yaml::from_str(&format!(
        "{{otlp: {{endpoint: '{}', tls: {{insecure: true}}}}}}",
        backend.endpoint()
    ))
    .unwrap();
    cfg["service"]["telemetry"]["metrics"]["address"] = "127.0.0.1:0".into();
    for signal in ["traces", "metrics", "logs"] {
        cfg["service"]["pipelines"][signal]["exporters"] = serde_yaml::from_str("[otlp]").unwrap();
    }
    serde_yaml::to_string(&cfg).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_plugin_tests_builds_runs_and_edits_spans_in_a_collector() {
    isolate_cache();
    let tmp = tempfile::tempdir().unwrap();
    let project = tmp.path().join("region-tag");
    let dir = project.to_str().unwrap();

    let (ok, out, err) = run_cli(&["plugin", "new", "region-tag", "--dir", dir]);
    assert!(ok, "{err}");
    assert!(
        out.contains("cargo build --target wasm32-wasip2 --release"),
        "{out}"
    );
    // Refusals: an existing non-empty dir (nothing overwritten), a name cargo refuses.
    let (ok, _, err) = run_cli(&["plugin", "new", "region-tag", "--dir", dir]);
    assert!(!ok && err.contains("not empty"), "{err}");
    let other = tmp.path().join("x");
    let (ok, _, err) = run_cli(&["plugin", "new", "2x", "--dir", other.to_str().unwrap()]);
    assert!(!ok && err.contains("invalid plugin name"), "{err}");
    assert!(!other.exists());

    cargo(&project, &["test", "--quiet"]);
    cargo(
        &project,
        &["build", "--quiet", "--target", "wasm32-wasip2", "--release"],
    );
    let wasm = shared_target().join("wasm32-wasip2/release/region_tag.wasm");
    assert!(wasm.is_file(), "{} missing", wasm.display());
    let wasm_path = wasm.to_str().unwrap();

    let (ok, out, err) = run_cli(&["plugin", "inspect", wasm_path]);
    assert!(ok, "{err}");
    assert!(out.contains("name: region-tag"), "{out}");

    let batch = project.join("batch.json");
    let (ok, out, err) = run_cli(&[
        "plugin",
        "run",
        wasm_path,
        "--input",
        batch.to_str().unwrap(),
        "--plugin-config",
        r#"{"key":"team","value":"payments"}"#,
        "--output",
        "json",
    ]);
    assert!(ok, "{err}");
    let ran: serde_json::Value = serde_json::from_str(&out).unwrap();
    let teams: Vec<&str> = ran["resourceSpans"][0]["scopeSpans"][0]["spans"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            s["attributes"]
                .as_array()
                .and_then(|a| a.iter().find(|kv| kv["key"] == "team"))
                .and_then(|kv| kv["value"]["stringValue"].as_str())
                .unwrap_or("")
        })
        .collect();
    assert_eq!(teams, ["payments", "storage"], "{out}");

    let backend = Backend::start().await;
    let collector = Collector::start(&test_config(&project, &wasm, &backend));
    let mut client = TraceServiceClient::connect(collector.grpc_url("otlp"))
        .await
        .unwrap();
    client.export(spans_request(5, 3)).await.unwrap();
    assert!(backend.wait_for_spans(5).await);
    let teams: Vec<Option<String>> = backend
        .spans()
        .iter()
        .map(|s| attr(&s.attributes, "team"))
        .collect();
    assert_eq!(teams, vec![Some("payments".to_owned()); 5]);
}
