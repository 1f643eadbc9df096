//! End-to-end tests of when a sender is answered: as soon as its data is queued, while the
//! queues behind `batch` merge requests into large exports; and, with a persistent queue
//! and queue batching, nothing acknowledged is lost to a SIGKILL.
// Test code: a failed expectation is reported by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
mod delivery_support;

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
use wasmcol_testkit::spans::request;

/// The configured batch timeout; every assertion on time keeps a wide margin below it.
const BATCH_TIMEOUT: Duration = Duration::from_secs(10);

/// `examples/quickstart.yaml` as shipped, with loopback ports chosen by the OS, the batch
/// timeout raised to 10 s, and the debug exporter replaced by an OTLP exporter (default
/// sending queue) to `backend`.
fn quickstart(backend: &Backend) -> String {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/quickstart.yaml"
    ))
    .unwrap();
    [
        ("localhost:4317", "127.0.0.1:0"),
        ("localhost:4318", "127.0.0.1:0"),
        ("localhost:13133", "127.0.0.1:0"),
        ("    timeout: 1s", "    timeout: 10s"),
        (
            "  debug:\n    verbosity: basic",
            &format!(
                "  otlp:\n    endpoint: {}\n    tls:\n      insecure: true",
                backend.endpoint()
            ),
        ),
        ("exporters: [debug]", "exporters: [otlp]"),
    ]
    .iter()
    .fold(text, |t, (from, to)| {
        assert!(
            t.contains(from),
            "quickstart.yaml no longer contains {from:?}"
        );
        t.replace(from, to)
    })
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
    let collector = Collector::start(&quickstart(&backend));
    let calls = Arc::new(Mutex::new(Vec::new()));
    let exporter = Timed {
        inner: opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(collector.grpc_url("otlp"))
            .build()
            .unwrap(),
        calls: calls.clone(),
    };
    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
        .with_span_processor(
            opentelemetry_sdk::trace::BatchSpanProcessor::builder(exporter).build(),
        )
        .build();
    let rounds = 5;
    let per_round = 40;
    let started = Instant::now();
    for round in 0..rounds {
        let tracer = provider.tracer("e2e-ack");
        for i in 0..per_round {
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
    assert!(durations.len() >= rounds, "export calls: {durations:?}");
    for d in &durations {
        assert!(
            *d < BATCH_TIMEOUT / 4,
            "an export call took {d:?} with a {BATCH_TIMEOUT:?} batch timeout: {durations:?}"
        );
    }
    assert!(
        backend.wait_for_spans(rounds * per_round).await,
        "all spans arrive"
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
        "no export carried spans of several calls: {rounds_per_export:?} (sending took {sending:?})"
    );
    eprintln!(
        "sdk e2e: {} export calls, slowest {:?}; backend exports carried rounds {rounds_per_export:?}",
        durations.len(),
        durations.iter().max()
    );
    let _ = tokio::task::spawn_blocking(move || provider.shutdown()).await;
    drop(collector);
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
