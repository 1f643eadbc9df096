//! These components inside a real pipeline graph built from YAML: a feeding receiver →
//! `memory_limiter` → `batch` → `forward` (and `nop`) → a second pipeline → a capturing
//! exporter and `debug`.
// Test code: a failed expectation is reported by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use parking_lot::Mutex;
use wasmcol_config::{Value, load_str};
use wasmcol_core::registry::Factory;
use wasmcol_core::{
    Batch, BuildError, ConsumeError, ConsumerRef, CreateContext, ExporterFactory, ExporterParts,
    Lifecycle, Metrics, Receiver, ReceiverConsumers, ReceiverFactory, Registry, Sender, Signal,
};
use wasmcol_pdata::TracesBatch;
use wasmcol_pdata::proto::trace::v1::{ResourceSpans, ScopeSpans, Span};

/// Hands the pipeline's entry consumer to the test.
#[derive(Default)]
struct Feed {
    entry: Mutex<Option<ConsumerRef>>,
}

struct FeedReceiver;

#[async_trait]
impl Lifecycle for FeedReceiver {}
impl Receiver for FeedReceiver {}

struct FeedFactory(Arc<Feed>);

impl ReceiverFactory for FeedFactory {
    fn create(
        &self,
        _ctx: &CreateContext,
        _config: &Value,
        consumers: ReceiverConsumers,
    ) -> Result<Arc<dyn Receiver>, BuildError> {
        *self.0.entry.lock() = consumers.get(Signal::Traces).cloned();
        Ok(Arc::new(FeedReceiver))
    }
}

/// Records what reaches the end of the graph; fails while `fail` is set.
#[derive(Default)]
struct Capture {
    batches: Mutex<Vec<Batch>>,
    fail: Mutex<Option<ConsumeError>>,
}

struct CaptureSender(Arc<Capture>);

#[async_trait]
impl Lifecycle for CaptureSender {}

#[async_trait]
impl Sender for CaptureSender {
    async fn send(&self, batch: Batch) -> Result<(), ConsumeError> {
        if let Some(e) = self.0.fail.lock().clone() {
            return Err(e);
        }
        self.0.batches.lock().push(batch);
        Ok(())
    }
}

struct CaptureFactory(Arc<Capture>);

impl ExporterFactory for CaptureFactory {
    fn create(
        &self,
        _ctx: &CreateContext,
        _config: &Value,
        _signal: Signal,
    ) -> Result<ExporterParts, BuildError> {
        Ok(ExporterParts {
            sender: Arc::new(CaptureSender(self.0.clone())),
            helper: wasmcol_config::exporterhelper::HelperConfig::disabled(),
        })
    }
}

const CONFIG: &str = r#"
receivers:
  feed:
processors:
  memory_limiter:
    check_interval: 1s
    limit_mib: 1000000
  batch:
    timeout: 1h
    send_batch_size: 100
exporters:
  capture:
  debug:
    verbosity: normal
  nop:
connectors:
  forward:
service:
  pipelines:
    traces/in:
      receivers: [feed]
      processors: [memory_limiter, batch]
      exporters: [forward, nop]
    traces/out:
      receivers: [forward]
      exporters: [capture, debug]
"#;

fn spans(n: usize) -> Batch {
    Batch::Traces(TracesBatch::from_message(
        wasmcol_pdata::ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                scope_spans: vec![ScopeSpans {
                    spans: (0..n)
                        .map(|i| Span {
                            trace_id: vec![1; 16],
                            span_id: vec![i as u8; 8],
                            name: format!("s{i}"),
                            ..Default::default()
                        })
                        .collect(),
                    ..Default::default()
                }],
                ..Default::default()
            }],
        },
    ))
}

struct Harness {
    service: wasmcol_core::Service,
    feed: Arc<Feed>,
    capture: Arc<Capture>,
    metrics: Metrics,
}

fn build() -> Harness {
    let feed = Arc::new(Feed::default());
    let capture = Arc::new(Capture::default());
    let mut r = Registry::new();
    wasmcol_components::register(&mut r);
    r.register(
        "feed",
        &[],
        "test receiver",
        Factory::Receiver(Arc::new(FeedFactory(feed.clone()))),
    );
    r.register(
        "capture",
        &[],
        "test exporter",
        Factory::Exporter(Arc::new(CaptureFactory(capture.clone()))),
    );
    let cfg = load_str(CONFIG, &|_| None).unwrap();
    let metrics = Metrics::new();
    let service = wasmcol_core::build(&cfg, &r, &metrics).unwrap();
    Harness {
        service,
        feed,
        capture,
        metrics,
    }
}

fn counter(m: &Metrics, name: &str, labels: &[(&str, &str)]) -> u64 {
    m.counter_value(name, labels).unwrap_or(0)
}

/// Scenario: data is held in `batch` (long timeout, size not reached) when the service stops.
/// Guarantees: the shutdown sends it through `forward` to the exporters of the other pipeline
/// before the exporters stop, and the sender's call returns `Ok` only then.
#[tokio::test]
async fn shutdown_drains_the_batch_through_forward() {
    let h = build();
    h.service.start().await.unwrap();
    assert!(h.service.status().is_ready());
    let entry = h.feed.entry.lock().clone().unwrap();
    let sender = tokio::spawn(async move { entry.consume(spans(7)).await });

    let labels = [("processor", "batch"), ("otel_signal", "traces")];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while counter(&h.metrics, "otelcol_processor_incoming_items", &labels) < 7 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "batch never got the data"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(h.capture.batches.lock().is_empty(), "held, not yet sent");
    assert!(!sender.is_finished(), "the sender waits for the export");

    assert!(h.service.shutdown().await, "clean shutdown");
    assert!(!h.service.status().is_ready());
    let got: usize = h.capture.batches.lock().iter().map(Batch::item_count).sum();
    assert_eq!(got, 7);
    assert_eq!(sender.await.unwrap(), Ok(()));

    let ml = [("processor", "memory_limiter")];
    let m = &h.metrics;
    assert_eq!(
        counter(m, "otelcol_processor_memory_limiter_accepted_spans", &ml),
        7
    );
    assert_eq!(
        counter(
            m,
            "otelcol_processor_batch_timeout_trigger_send",
            &[("processor", "batch")]
        ),
        1
    );
    assert_eq!(
        counter(m, "otelcol_exporter_sent_spans", &[("exporter", "capture")]),
        7
    );
    assert_eq!(
        counter(m, "otelcol_exporter_sent_spans", &[("exporter", "nop")]),
        7
    );
}

/// Scenario: the exporter behind `forward` refuses; a full batch is sent at once by size.
/// Guarantees: the refusal travels back through `forward` and `batch` to the sender.
#[tokio::test]
async fn exporter_errors_reach_the_sender_through_batch_and_forward() {
    let h = build();
    h.service.start().await.unwrap();
    *h.capture.fail.lock() = Some(ConsumeError::retry_after(
        "backend down",
        Duration::from_secs(2),
    ));
    let entry = h.feed.entry.lock().clone().unwrap();
    let r = tokio::time::timeout(Duration::from_secs(10), entry.consume(spans(100)))
        .await
        .unwrap();
    let e = r.unwrap_err();
    assert!(e.is_retryable());
    assert_eq!(e.retry_delay(), Some(Duration::from_secs(2)));
    assert!(e.to_string().contains("backend down"), "{e}");

    *h.capture.fail.lock() = None;
    let r = tokio::time::timeout(Duration::from_secs(10), entry.consume(spans(100)))
        .await
        .unwrap();
    assert_eq!(r, Ok(()));
    assert!(h.service.shutdown().await);
}
