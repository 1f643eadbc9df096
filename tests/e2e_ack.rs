//! End-to-end tests of when a sender is answered: as soon as its data is queued, while the
//! queues behind `batch` merge requests into large exports; and, with a persistent queue
//! and queue batching, nothing acknowledged is lost to a SIGKILL.
// Test code: a failed expectation is reported by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
mod delivery_support;
mod seed_configs;
mod tls_support;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::{Backend, Collector, WAIT, eventually};
use delivery_support::{arrivals, client, wait_all};
use opentelemetry::trace::{Tracer, TracerProvider as _};
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SpanData, SpanExporter};
use parking_lot::Mutex;
use seed_configs::{Launch, seed_000_gateway, seed_000_region};
use tls_support::Pki;
use wasmcol_testkit::spans::request;

/// The configured batch timeout; every assertion on time keeps a wide margin below it.
const BATCH_TIMEOUT: Duration = Duration::from_secs(10);

/// `examples/quickstart.yaml` as shipped, with loopback ports chosen by the OS, the batch
/// timeout raised to 10 s, and the traces pipeline exporting through an OTLP exporter
/// (default sending queue) to `backend` instead of the debug exporter.
fn quickstart(backend: &Backend) -> Collector {
    Launch::example("quickstart.yaml")
        .set("receivers.otlp.protocols.grpc.endpoint=127.0.0.1:0")
        .set("receivers.otlp.protocols.http.endpoint=127.0.0.1:0")
        .set("extensions.health_check.endpoint=127.0.0.1:0")
        .set(format!(
            "processors.batch.timeout={}s",
            BATCH_TIMEOUT.as_secs()
        ))
        .set(format!("exporters.otlp.endpoint={}", backend.endpoint()))
        .set("exporters.otlp.tls.insecure=true")
        .set("service.pipelines.traces.exporters=[otlp]")
        .start()
}

/// The SDK's OTLP exporter, timing every export call.
#[derive(Debug)]
struct Timed {
    inner: opentelemetry_otlp::SpanExporter,
    calls: Arc<Mutex<Vec<Duration>>>,
}

impl SpanExporter for Timed {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let started = Instant::now();
        let result = self.inner.export(batch).await;
        self.calls.lock().push(started.elapsed());
        result
    }
}

/// Scenario: an application with the opentelemetry-otlp SDK (one exporter, batch span
/// processor) sends five rounds of 40 spans, flushing after each, through the quickstart
/// config with a 10 s batch timeout.
/// Guarantees: every export call returns well before the batch timeout (the sender is
/// answered once its spans are queued, not when the batch is exported), and the backend
/// receives merged exports: at least one carries spans of several export calls. Every span
/// arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_exports_return_before_the_batch_timeout_and_are_merged() {
    let backend = Backend::start().await;
    let collector = quickstart(&backend);
    sdk_rounds_are_answered_and_merged(&collector.grpc_url("otlp"), &backend, "quickstart").await;
    drop(collector);
}

/// Scenario: the same application sends through seed 000's US-East region collector from
/// `examples/` (memory limiter, region tag plugin, batch, two exporters with persistent
/// queues: plaintext to the local backend, mTLS + zstd to the EU-West gateway, itself seed
/// 000's gateway config), with the region's batch timeout set to 10 s.
/// Guarantees: every export call returns well before the batch timeout (answered once the
/// spans are durably in both persistent queues), the local backend receives merged exports
/// carrying spans of several calls, and every span reaches both backends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_exports_through_seed_000_region_return_before_the_batch_timeout_and_are_merged() {
    let pki = Pki::generate();
    let local = Backend::start().await;
    let remote = Backend::start().await;
    let gateway = seed_000_gateway(pki.dir.path(), &remote).start();
    let queues = tempfile::tempdir().unwrap();
    let region = seed_000_region(
        pki.dir.path(),
        &local,
        &gateway.grpc["otlp"].to_string(),
        queues.path(),
    )
    .set(format!(
        "processors.batch.timeout={}s",
        BATCH_TIMEOUT.as_secs()
    ))
    .start();
    sdk_rounds_are_answered_and_merged(&region.grpc_url("otlp"), &local, "seed 000 region").await;
    assert!(
        remote.wait_for_spans(ROUNDS * PER_ROUND).await,
        "every span reaches the other region's gateway backend too"
    );
    drop(region);
    drop(gateway);
}

/// Rounds of spans the SDK application sends, flushing after each.
const ROUNDS: usize = 5;
/// Spans per round.
const PER_ROUND: usize = 40;

/// Sends [`ROUNDS`] rounds of [`PER_ROUND`] spans with the opentelemetry-otlp SDK (one
/// exporter, batch span processor) to `endpoint`, flushing after each round; asserts that
/// every export call returned well before [`BATCH_TIMEOUT`], that `backend` got every span,
/// and that at least one export to it carried spans of several calls.
async fn sdk_rounds_are_answered_and_merged(endpoint: &str, backend: &Backend, what: &str) {
    let calls = Arc::new(Mutex::new(Vec::new()));
    let exporter = Timed {
        inner: opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(endpoint)
            .build()
            .unwrap(),
        calls: calls.clone(),
    };
    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
        .with_span_processor(
            opentelemetry_sdk::trace::BatchSpanProcessor::builder(exporter).build(),
        )
        .build();
    let started = Instant::now();
    for round in 0..ROUNDS {
        let tracer = provider.tracer("e2e-ack");
        for i in 0..PER_ROUND {
            tracer.in_span(format!("call-{round}-{i}"), |_| {});
        }
        let p = provider.clone();
        tokio::task::spawn_blocking(move || p.force_flush())
            .await
            .unwrap()
            .unwrap();
    }
    let sending = started.elapsed();
    let durations = calls.lock().clone();
    assert!(
        durations.len() >= ROUNDS,
        "{what}: export calls: {durations:?}"
    );
    for d in &durations {
        assert!(
            *d < BATCH_TIMEOUT / 4,
            "{what}: an export call took {d:?} with a {BATCH_TIMEOUT:?} batch timeout: {durations:?}"
        );
    }
    assert!(
        backend.wait_for_spans(ROUNDS * PER_ROUND).await,
        "{what}: all spans arrive"
    );
    let rounds_per_export: Vec<usize> = backend.with(|r| {
        r.traces
            .iter()
            .map(|req| {
                req.resource_spans
                    .iter()
                    .flat_map(|rs| &rs.scope_spans)
                    .flat_map(|ss| &ss.spans)
                    .filter_map(|s| s.name.split('-').nth(1).map(str::to_owned))
                    .collect::<BTreeSet<_>>()
                    .len()
            })
            .collect()
    });
    assert!(
        rounds_per_export.iter().any(|n| *n >= 2),
        "{what}: no export carried spans of several calls: {rounds_per_export:?} (sending took {sending:?})"
    );
    eprintln!(
        "sdk e2e through {what}: {} export calls, slowest {:?}; backend exports carried rounds {rounds_per_export:?}",
        durations.len(),
        durations.iter().max()
    );
    let _ = tokio::task::spawn_blocking(move || provider.shutdown()).await;
}

fn persistent_batching_config(backend: &Backend, storage: &std::path::Path) -> String {
    format!(
        r#"
extensions:
  file_storage:
    directory: {dir}
    create_directory: true
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:0
      http:
        endpoint: 127.0.0.1:0
processors:
  batch:
    send_batch_size: 400
    timeout: 200ms
exporters:
  otlp/disk:
    endpoint: {ep}
    tls:
      insecure: true
    retry_on_failure:
      initial_interval: 100ms
      max_interval: 500ms
      max_elapsed_time: 0
    sending_queue:
      storage: file_storage
      num_consumers: 4
service:
  extensions: [file_storage]
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [otlp/disk]
"#,
        dir = storage.display(),
        ep = backend.endpoint(),
    )
}

/// Scenario: a persistent queue whose consumers merge requests (settings from `batch`); a
/// sender keeps sending while the backend accepts, and the collector is SIGKILLed mid-stream
/// (so merged exports are in flight, some accepted but not yet deleted); it restarts with
/// the same config.
/// Guarantees: every span whose request was acknowledged arrives (at-least-once), exports
/// were merged before the kill, and duplicates are counted and reported.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_with_queue_batching_loses_no_acknowledged_span() {
    let backend = Backend::start().await;
    let storage = tempfile::tempdir().unwrap();
    let c = Collector::start(&persistent_batching_config(&backend, storage.path()));
    let acked = Arc::new(Mutex::new(Vec::<u64>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let mut senders = Vec::new();
    for lane in 0..4u64 {
        let (acked, stop) = (acked.clone(), stop.clone());
        let mut cl = client(c.grpc_url("otlp")).await;
        senders.push(tokio::spawn(async move {
            let mut next = lane * 10_000_000;
            let end = next + 1_000_000;
            while !stop.load(Ordering::Relaxed) && next < end {
                if cl.export(request(next, 20)).await.is_ok() {
                    acked.lock().extend(next..next + 20);
                }
                next += 20;
            }
        }));
    }
    assert!(eventually(WAIT, || async { acked.lock().len() >= 20_000 }).await);
    let (dir, config) = c.sigkill();
    stop.store(true, Ordering::Relaxed);
    for s in senders {
        s.await.unwrap();
    }
    let acked = acked.lock().clone();
    let before = backend.with(|r| r.traces.len());
    let merged = backend.with(|r| {
        r.traces
            .iter()
            .map(|req| {
                req.resource_spans
                    .iter()
                    .flat_map(|rs| &rs.scope_spans)
                    .map(|ss| ss.spans.len())
                    .sum::<usize>()
            })
            .max()
            .unwrap_or(0)
    });
    assert!(
        merged > 20,
        "exports were merged before the kill (largest {merged} spans)"
    );

    let c = Collector::start_in(dir, config, false, &[]);
    let missing = wait_all(&backend, &acked, Duration::from_secs(60)).await;
    assert!(
        missing.is_empty(),
        "{} acknowledged spans lost after SIGKILL, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(10)]
    );
    let dups: u64 = arrivals(&backend).values().map(|n| u64::from(n - 1)).sum();
    eprintln!(
        "crash e2e with queue batching: {} acknowledged spans, all arrived, {dups} duplicates, {before} exports before the kill (largest {merged} spans)",
        acked.len()
    );
    drop(c);
}
