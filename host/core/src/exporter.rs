//! The exporter seam: a protocol exporter provides a [`Sender`] (one attempt); a
//! [`ChainBuilder`] wraps it in upstream's exporterhelper chain (queue → retry → timeout).
//!
//! The core ships [`SimpleChain`] (timeout and metrics, no queue or retry); `wasmcol-delivery`
//! registers the full chain. Protocol crates never depend on the delivery crate.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use wasmcol_config::exporterhelper::HelperConfig;

use crate::health::DeliveryHealth;
use crate::{
    Batch, BuildError, ConsumeError, Consumer, CreateContext, Exporter, Lifecycle, Metrics, Signal,
};

/// One attempt to deliver a batch to a backend.
#[async_trait]
pub trait Sender: Lifecycle {
    /// Sends once; the error says whether a retry may help.
    async fn send(&self, batch: Batch) -> Result<(), ConsumeError>;

    /// True when an attempt no longer needs this sender's backend: the load balancer hands a
    /// removed backend's requests to the backends that remain. Shutdown then gives queued
    /// and waiting requests one more attempt instead of keeping them on disk or dropping
    /// them, so nothing is stranded in a queue that will never be read again.
    fn diverts(&self) -> bool {
        false
    }
}

/// What an exporter factory builds: the sender and the exporterhelper settings from its config.
pub struct ExporterParts {
    /// The protocol sender.
    pub sender: Arc<dyn Sender>,
    /// `sending_queue`, `retry_on_failure`, `timeout`.
    pub helper: HelperConfig,
}

/// Wraps a sender in the delivery chain.
pub trait ChainBuilder: Send + Sync {
    /// Builds the exporter for `signal` from `parts`.
    fn build(
        &self,
        ctx: &CreateContext,
        signal: Signal,
        parts: ExporterParts,
    ) -> Result<Arc<dyn Exporter>, BuildError>;
}

/// The exporter metrics upstream's obsReportSender records, once per request.
#[derive(Clone)]
pub struct ExporterObs {
    sent: crate::Counter,
    failed: crate::Counter,
}

impl ExporterObs {
    /// Registers `otelcol_exporter_sent_<items>` and `..._send_failed_<items>` for `exporter`.
    pub fn new(metrics: &Metrics, exporter: &str, signal: Signal) -> Self {
        let item = signal.item_name();
        ExporterObs {
            sent: metrics.counter(
                &format!("otelcol_exporter_sent_{item}"),
                &format!("Number of {item} successfully sent to destination."),
                &[("exporter", exporter)],
            ),
            failed: metrics.counter(
                &format!("otelcol_exporter_send_failed_{item}"),
                &format!("Number of {item} in failed attempts to send to destination."),
                &[("exporter", exporter)],
            ),
        }
    }

    /// Counts a finished request.
    pub fn record(&self, items: usize, ok: bool) {
        if ok {
            self.sent.add(items as u64)
        } else {
            self.failed.add(items as u64)
        }
    }
}

/// The chain without queue or retry: per-attempt timeout, metrics, health. Used when no
/// delivery crate is registered, and by exporters with `sending_queue` and retry disabled.
pub struct SimpleChain;

impl ChainBuilder for SimpleChain {
    fn build(
        &self,
        ctx: &CreateContext,
        signal: Signal,
        parts: ExporterParts,
    ) -> Result<Arc<dyn Exporter>, BuildError> {
        let name = ctx.id.to_string();
        Ok(Arc::new(SyncExporter {
            obs: ExporterObs::new(&ctx.metrics, &name, signal),
            health: Arc::new(DeliveryHealth::new(name)),
            timeout: parts.helper.timeout.map(Duration::from),
            sender: parts.sender,
        }))
    }
}

struct SyncExporter {
    sender: Arc<dyn Sender>,
    timeout: Option<Duration>,
    obs: ExporterObs,
    health: Arc<DeliveryHealth>,
}

#[async_trait]
impl Consumer for SyncExporter {
    async fn consume(&self, batch: Batch) -> Result<(), ConsumeError> {
        let items = batch.item_count();
        let started = Instant::now();
        let result = match self.timeout.filter(|t| !t.is_zero()) {
            Some(t) => match tokio::time::timeout(t, self.sender.send(batch)).await {
                Ok(r) => r,
                Err(_) => Err(ConsumeError::retryable(format!(
                    "export timed out after {:?}",
                    started.elapsed()
                ))),
            },
            None => self.sender.send(batch).await,
        };
        if result.is_ok() {
            self.health.record_success()
        } else {
            self.health.record_failure()
        }
        self.obs.record(items, result.is_ok());
        result
    }
}

#[async_trait]
impl Lifecycle for SyncExporter {
    async fn start(&self) -> Result<(), crate::ComponentError> {
        self.sender.start().await
    }
    async fn shutdown(&self) -> Result<(), crate::ComponentError> {
        self.sender.shutdown().await
    }
}

impl Exporter for SyncExporter {
    fn health(&self) -> Option<Arc<DeliveryHealth>> {
        Some(self.health.clone())
    }
}
