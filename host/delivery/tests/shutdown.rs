//! One shutdown deadline: a service whose exporter hangs stops at `service.shutdown_timeout`,
//! in paused (virtual) time, not at some component's own limit.
// Test code: a failed expectation is reported by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use parking_lot::Mutex;
use support::*;
use tokio::time::Instant;
use wasmcol_config::{Value, load_str};
use wasmcol_core::registry::Factory;
use wasmcol_core::{
    BuildError, ConsumerRef, CreateContext, ExporterFactory, ExporterParts, Lifecycle, Metrics,
    Receiver, ReceiverConsumers, ReceiverFactory, Registry, Signal,
};

struct FeedReceiver;

#[async_trait]
impl Lifecycle for FeedReceiver {}
impl Receiver for FeedReceiver {}

/// Hands the pipeline's entry to the test.
struct FeedFactory(Arc<Mutex<Option<ConsumerRef>>>);

impl ReceiverFactory for FeedFactory {
    fn create(
        &self,
        _ctx: &CreateContext,
        _config: &Value,
        consumers: ReceiverConsumers,
    ) -> Result<Arc<dyn Receiver>, BuildError> {
        *self.0.lock() = consumers.get(Signal::Traces).cloned();
        Ok(Arc::new(FeedReceiver))
    }
}

/// An exporter whose send never returns, behind the delivery chain's default memory queue.
struct HangFactory(Arc<FakeSender>);

impl ExporterFactory for HangFactory {
    fn create(
        &self,
        _ctx: &CreateContext,
        _config: &Value,
        _signal: Signal,
    ) -> Result<ExporterParts, BuildError> {
        // No per-attempt timeout: the send really never returns.
        let mut helper = helper();
        helper.timeout = None;
        Ok(ExporterParts {
            sender: self.0.clone(),
            helper,
        })
    }
}

/// Scenario: the only exporter's backend never answers and has no per-attempt timeout; two
/// requests hang in the memory queue's workers; `shutdown_timeout: 7s`.
/// Guarantees: shutdown returns "not clean" at 7 s of virtual time (within 50 ms), not
/// earlier and not at some component's own limit.
#[tokio::test(start_paused = true)]
async fn a_hung_exporter_holds_shutdown_until_the_service_deadline_and_no_longer() {
    let sender = FakeSender::new(Mode::Hang);
    let entry = Arc::new(Mutex::new(None));
    let mut registry = Registry::new();
    wasmcol_delivery::register(&mut registry);
    registry.register(
        "feed",
        &[],
        "test receiver",
        Factory::Receiver(Arc::new(FeedFactory(entry.clone()))),
    );
    registry.register(
        "hang",
        &[],
        "an exporter that never answers",
        Factory::Exporter(Arc::new(HangFactory(sender.clone()))),
    );
    let config = load_str(
        "receivers:\n  feed:\nexporters:\n  hang:\nservice:\n  shutdown_timeout: 7s\n  pipelines:\n    traces:\n      receivers: [feed]\n      exporters: [hang]\n",
        &|_| None,
    )
    .unwrap();
    let metrics = Metrics::new();
    let service = wasmcol_core::build(&config, &registry, &metrics).unwrap();
    service.start().await.unwrap();
    let entry = entry.lock().clone().unwrap();
    entry.consume(traces(0, 3)).await.unwrap();
    assert!(
        sender
            .wait_until(Duration::from_secs(5), |s| s.attempts() == 1)
            .await,
        "the first request reaches the hung send"
    );
    entry.consume(traces(3, 2)).await.unwrap();
    assert!(
        sender
            .wait_until(Duration::from_secs(5), |s| s.attempts() == 2)
            .await,
        "the second request hangs in a second queue worker"
    );

    let started = Instant::now();
    let clean = service.shutdown().await;
    let took = started.elapsed();
    assert!(!clean, "a hung exporter is not a clean shutdown");
    assert!(
        took >= Duration::from_secs(7) && took < Duration::from_secs(7) + Duration::from_millis(50),
        "shutdown took {took:?}, the deadline is 7s"
    );
}
