//! `service.telemetry.metrics.readers[*].periodic`: pushes the collector's own metrics over
//! OTLP every `interval`.
//!
//! What is pushed is collected from the SDK meter provider's cumulative reader
//! ([`Metrics::to_otlp`], the SDK's own conversion to OTLP) and carries the provider's
//! resource.
//!
//! The push goes through the `otlp` / `otlphttp` exporters' senders, so TLS, headers and
//! compression behave as for any exporter; their queue and retries are off. A failed push is
//! logged and counted (`wasmcol_telemetry_push_failed`) and never touches the pipelines: the
//! next push carries the cumulative values again. On shutdown one last push is made within
//! the reader's timeout and the service's deadline.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use wasmcol_config::{ComponentId, Kind, PeriodicPush, PushProtocol};
use wasmcol_core::component::{CreateContext, Extensions, ServiceStatus};
use wasmcol_core::registry::ExporterFactory;
use wasmcol_core::{Batch, Counter, Metrics, Sender, Signal, Tasks};
use wasmcol_pdata::MetricsBatch;

/// The sender of an `otlp` / `otlphttp` exporter built from `exporter` (a telemetry push's
/// config) for `signal`, as exporter `<type>/<name>`; an invalid setting is reported under
/// `path`. Its sends count in no exporter series: they are not pipeline traffic.
pub fn telemetry_sender(
    protocol: PushProtocol,
    exporter: &wasmcol_config::Value,
    signal: Signal,
    name: &str,
    path: &str,
    tasks: &Tasks,
) -> anyhow::Result<Arc<dyn Sender>> {
    let (ty, factory): (&str, &dyn ExporterFactory) = match protocol {
        PushProtocol::Grpc => (
            "otlp",
            &wasmcol_otlp::exporter::grpc::OtlpGrpcExporterFactory,
        ),
        PushProtocol::HttpProtobuf => (
            "otlphttp",
            &wasmcol_otlp::exporter::http::OtlpHttpExporterFactory,
        ),
    };
    let ctx = CreateContext {
        id: ComponentId::new(ty, Some(name)),
        kind: Kind::Exporter,
        metrics: Metrics::with_level(wasmcol_core::telemetry::Level::None),
        tasks: tasks.clone(),
        extensions: Extensions::default(),
        status: Arc::new(ServiceStatus::default()),
    };
    let parts = factory.create(&ctx, exporter, signal).map_err(|e| {
        let msgs: Vec<String> = e.0.iter().map(|k| k.to_string()).collect();
        anyhow::anyhow!("{path}: {}", msgs.join("; "))
    })?;
    Ok(parts.sender)
}

/// One periodic reader, built and ready to start.
pub struct PeriodicReader {
    sender: Arc<dyn Sender>,
    interval: Duration,
    timeout: Duration,
    path: String,
}

impl PeriodicReader {
    /// Builds the reader's exporter; an invalid exporter setting names the reader's key.
    pub fn build(push: &PeriodicPush, tasks: &Tasks) -> anyhow::Result<Self> {
        let sender = telemetry_sender(
            push.protocol,
            &push.exporter,
            Signal::Metrics,
            "telemetry",
            &format!("service::telemetry::metrics::{}.exporter.otlp", push.path),
            tasks,
        )?;
        Ok(PeriodicReader {
            sender,
            interval: push.interval,
            timeout: push.timeout,
            path: push.path.clone(),
        })
    }

    /// Starts the sender and the push loop as a task of `tasks`.
    pub async fn start(self, metrics: Metrics, tasks: &Tasks) -> anyhow::Result<()> {
        self.sender
            .start()
            .await
            .with_context(|| format!("cannot start the telemetry reader {}", self.path))?;
        let failed = metrics.counter(
            "wasmcol_telemetry_push_failed",
            "Pushes of the collector's own metrics or logs that failed.",
            &[],
        );
        let token = tasks.token();
        let tasks_for_deadline = tasks.clone();
        tasks.spawn(async move {
            let mut tick = tokio::time::interval_at(
                tokio::time::Instant::now() + self.interval,
                self.interval,
            );
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = token.cancelled() => break,
                    _ = tick.tick() => self.push(&metrics, self.timeout, &failed).await,
                }
            }
            // The final flush: within the reader's timeout and what is left of the deadline.
            let left = tasks_for_deadline
                .time_left()
                .map_or(self.timeout, |l| l.min(self.timeout));
            self.push(&metrics, left, &failed).await;
            if let Err(e) = self.sender.shutdown().await {
                tracing::debug!(reader = %self.path, error = %e, "telemetry reader shutdown");
            }
        });
        Ok(())
    }

    async fn push(&self, metrics: &Metrics, timeout: Duration, failed: &Counter) {
        // Collecting runs the observable callbacks (a few /proc reads): off the async workers.
        let collect = metrics.clone();
        let request = match tokio::task::spawn_blocking(move || collect.to_otlp()).await {
            Ok(request) => request,
            Err(e) => {
                failed.inc();
                tracing::warn!(reader = %self.path, error = %e, "Collecting the collector's own metrics failed");
                return;
            }
        };
        let batch = Batch::Metrics(MetricsBatch::from_message(request));
        let error = match tokio::time::timeout(timeout, self.sender.send(batch)).await {
            Ok(Ok(())) => return,
            Ok(Err(e)) => e.to_string(),
            Err(_) => format!("no answer within {timeout:?}"),
        };
        failed.inc();
        tracing::warn!(reader = %self.path, error = %error, "Pushing the collector's own metrics failed");
    }
}
