//! Hot reload of a `wasm` processor's component through the real binary, under load: the file
//! is replaced by a new version (v1 → v2), which is compiled, configured and swapped in with
//! no request refused; a broken v3 (a component whose `configure` refuses the config, then
//! bytes that are not a component) is not swapped in and v2 keeps serving; SIGHUP reloads
//! when file watching is off. Counted in `wasmcol_plugin_reloads_total`.
// Test code: a failed expectation is reported by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
mod plugins_support;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use common::{Backend, Collector, WAIT, eventually};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use plugins_support::{attr, isolate_cache, wasm_forwarder};
use wasmcol_testkit::prom::series;
use wasmcol_testkit::spans::request;
use wasmcol_wasm::bundled::test_paths;

/// The attribute both versions write: v1 (`test_v010`) sets `contract: 0.1.0` whatever its
/// config; v2 (the template plugin) sets `contract: v2` from the config below.
const KEY: &str = "contract";

fn config(backend: &Backend, plugin: &Path, watch: &str) -> String {
    wasm_forwarder(
        backend,
        &format!(
            "  wasm/plugin:\n    path: {}\n    config: {{ key: {KEY}, value: v2 }}\n    \
             watch_interval: {watch}\n",
            plugin.display()
        ),
    )
}

/// Replaces `path` with `bytes` at once (write beside it, then rename), as a deployment
/// would, so the collector never reads half a file.
fn install(path: &Path, bytes: &[u8]) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

fn install_file(path: &Path, from: &str) {
    install(path, &std::fs::read(from).unwrap());
}

/// Requests of 5 numbered spans sent back to back until stopped.
struct Load {
    stop: Arc<AtomicBool>,
    acked: Arc<AtomicU64>,
    refused: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Load {
    fn start(url: String) -> Load {
        let (stop, acked, refused) = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicU64::new(0)),
            Arc::new(AtomicU64::new(0)),
        );
        let (s, a, r) = (stop.clone(), acked.clone(), refused.clone());
        let task = tokio::spawn(async move {
            let mut client = TraceServiceClient::connect(url).await.unwrap();
            let mut next = 1_000_000;
            while !s.load(Ordering::Relaxed) {
                match client.export(request(next, 5)).await {
                    Ok(_) => a.fetch_add(5, Ordering::Relaxed),
                    Err(e) => {
                        eprintln!("refused: {e}");
                        r.fetch_add(5, Ordering::Relaxed)
                    }
                };
                next += 5;
            }
        });
        Load {
            stop,
            acked,
            refused,
            task,
        }
    }

    /// Stops; (spans acknowledged, spans refused).
    async fn finish(self) -> (u64, u64) {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.unwrap();
        (
            self.acked.load(Ordering::Relaxed),
            self.refused.load(Ordering::Relaxed),
        )
    }
}

/// The `contract` tag the backend saw on the spans numbered `first..first+n`.
fn tags(backend: &Backend, first: u64, n: u64) -> Vec<Option<String>> {
    let spans = backend.spans();
    (first..first + n)
        .map(|i| {
            spans
                .iter()
                .find(|s| s.span_id == i.to_be_bytes())
                .and_then(|s| attr(&s.attributes, KEY))
        })
        .collect()
}

/// Sends spans `first..first+5` and returns their tags once the backend has them.
async fn probe(collector: &Collector, backend: &Backend, first: u64) -> Vec<Option<String>> {
    let mut client = TraceServiceClient::connect(collector.grpc_url("otlp"))
        .await
        .unwrap();
    client.export(request(first, 5)).await.unwrap();
    assert!(
        eventually(WAIT, || async {
            tags(backend, first, 5).iter().all(Option::is_some)
        })
        .await,
        "probe {first} not delivered"
    );
    tags(backend, first, 5)
}

async fn reloads(collector: &Collector, outcome: &str) -> f64 {
    series(
        &collector.scrape().await,
        "wasmcol_plugin_reloads",
        &format!("outcome=\"{outcome}\",processor=\"wasm/plugin\""),
    )
    .unwrap_or(0.0)
}

async fn wait_reloads(collector: &Collector, outcome: &str, n: f64) {
    assert!(
        eventually(WAIT, || async { reloads(collector, outcome).await >= n }).await,
        "no {outcome} reload #{n}; log:\n{}",
        collector.log().join("\n")
    );
}

fn all(tags: &[Option<String>], want: &str) -> bool {
    tags.iter().all(|t| t.as_deref() == Some(want))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_version_is_swapped_in_under_load_and_a_broken_one_is_not() {
    isolate_cache();
    let backend = Backend::start().await;
    let dir = tempfile::tempdir().unwrap();
    let plugin = dir.path().join("plugin.wasm");
    install_file(&plugin, test_paths::V010);
    let collector = Collector::start(&config(&backend, &plugin, "100ms"));
    assert!(
        all(&probe(&collector, &backend, 1).await, "0.1.0"),
        "v1 serves"
    );

    let load = Load::start(collector.grpc_url("otlp"));
    assert!(backend.wait_for_spans(100).await, "load flows");
    install_file(&plugin, test_paths::TEMPLATE);
    wait_reloads(&collector, "success", 1.0).await;
    assert!(
        all(&probe(&collector, &backend, 100).await, "v2"),
        "v2 serves after the swap"
    );

    // v3, broken twice: a component that refuses the config (test_v020 wants `key` and
    // `context`), then bytes that are not a component. Each failure is counted and v2 keeps
    // serving.
    install_file(&plugin, test_paths::V020);
    wait_reloads(&collector, "failure", 1.0).await;
    install(&plugin, b"\0asm not a component");
    wait_reloads(&collector, "failure", 2.0).await;
    assert!(
        all(&probe(&collector, &backend, 200).await, "v2"),
        "v2 keeps serving"
    );
    assert_eq!(reloads(&collector, "success").await, 1.0);

    let (acked, refused) = load.finish().await;
    assert_eq!(refused, 0, "no request refused during the swaps");
    assert!(
        backend.wait_for_spans(acked as usize + 15).await,
        "every acknowledged span arrives"
    );
    let load_tags = tags(&backend, 1_000_000, acked);
    let v1 = load_tags
        .iter()
        .filter(|t| t.as_deref() == Some("0.1.0"))
        .count();
    let v2 = load_tags
        .iter()
        .filter(|t| t.as_deref() == Some("v2"))
        .count();
    assert_eq!(v1 + v2, acked as usize, "every span tagged by v1 or v2");
    // Requests go one after another: once a span is tagged v2, no later one is tagged v1.
    let first_v2 = load_tags.iter().position(|t| t.as_deref() == Some("v2"));
    assert!(
        first_v2.is_some_and(|at| all(&load_tags[at..], "v2")),
        "v1 then v2, never back"
    );
    let log = collector.log().join("\n");
    assert!(log.contains("plugin reload failed"), "{log}");
    eprintln!("under load: {acked} spans acknowledged ({v1} by v1, {v2} by v2), {refused} refused");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_when_watching_is_off() {
    isolate_cache();
    let backend = Backend::start().await;
    let dir = tempfile::tempdir().unwrap();
    let plugin = dir.path().join("plugin.wasm");
    install_file(&plugin, test_paths::V010);
    let collector = Collector::start(&config(&backend, &plugin, "0s"));
    install_file(&plugin, test_paths::TEMPLATE);
    assert!(
        all(&probe(&collector, &backend, 1).await, "0.1.0"),
        "with watch_interval: 0s a changed file is not picked up by itself"
    );
    let kill = std::process::Command::new("kill")
        .args(["-HUP", &collector.pid().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    wait_reloads(&collector, "success", 1.0).await;
    assert!(
        all(&probe(&collector, &backend, 10).await, "v2"),
        "v2 after SIGHUP"
    );
}
