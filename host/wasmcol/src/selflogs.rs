//! `service.telemetry.logs.processors`: the collector's own log lines exported over OTLP
//! too, by a batch (or simple) log record processor per entry.
//!
//! The logger ([`crate::logging`]) emits each line that passed sampling as a record through
//! the OpenTelemetry SDK's logger API ([`Loggers::emit`]). The SDK logger provider hands the
//! record to a [`LogProcessor`] per configured processor: [`QueueProcessor`] converts it to
//! OTLP with `opentelemetry-proto`'s transform and puts it on its bounded queue without
//! waiting. The host's processor rather than the SDK's `BatchLogProcessor` because the
//! latter runs on a thread of its own that the service's shutdown deadline does not govern,
//! keeps its drop count to itself, and would need a second async runtime to reach the
//! exporters' senders. A full queue drops the record and counts it
//! (`wasmcol_telemetry_logs_dropped`), as the SDKs' batch processor does, so logging never
//! blocks on a slow backend. A task per processor exports a batch every `schedule_delay`, or
//! as soon as `max_export_batch_size` records wait, through the `otlp` / `otlphttp`
//! exporter's sender (TLS, headers and compression as for any exporter; its queue and
//! retries off). A failed export is counted in `wasmcol_telemetry_push_failed` and dropped;
//! it is not logged, which would feed the failure back into the queue it failed to empty.
//! On shutdown what waits is exported within the export timeout and the service's deadline.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use opentelemetry::InstrumentationScope as SdkScope;
use opentelemetry::logs::LoggerProvider as _;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::logs::{LogProcessor, SdkLogRecord, SdkLogger, SdkLoggerProvider};
use tokio::sync::mpsc;
use wasmcol_config::LogPush;
use wasmcol_core::{Batch, Counter, Metrics, Sender, Signal, Tasks};
use wasmcol_pdata::proto::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use wasmcol_pdata::proto::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use wasmcol_pdata::proto::resource::v1::Resource;
use wasmcol_pdata::{ExportLogsServiceRequest, LogsBatch};

/// The logger's end of one processor's queue.
#[derive(Clone, Debug)]
pub struct LogQueue {
    tx: mpsc::Sender<LogRecord>,
    dropped: Arc<AtomicU64>,
}

impl LogQueue {
    /// Queues a record without waiting; a full or closed queue drops and counts it.
    pub fn offer(&self, record: LogRecord) {
        if self.tx.try_send(record).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// One processor's queue and settings, until its task starts.
pub struct LogExport {
    push: LogPush,
    rx: mpsc::Receiver<LogRecord>,
    dropped: Arc<AtomicU64>,
}

/// An SDK log processor feeding one processor's queue.
#[derive(Debug)]
pub struct QueueProcessor(LogQueue);

impl LogProcessor for QueueProcessor {
    fn emit(&self, record: &mut SdkLogRecord, _scope: &SdkScope) {
        self.0.offer(LogRecord::from(&*record));
    }
    /// The queue's task exports on its own schedule; there is nothing held here to flush.
    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }
    /// The queue's task flushes within the service's deadline when the service stops.
    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        Ok(())
    }
}

/// The SDK logger the log layer emits through: one provider, a [`QueueProcessor`] per
/// configured processor.
pub struct Loggers {
    logger: SdkLogger,
}

impl Loggers {
    /// Emits `record` to every processor.
    pub fn emit(&self, record: SdkLogRecord) {
        use opentelemetry::logs::Logger as _;
        self.logger.emit(record);
    }

    /// A new record to fill and [`Loggers::emit`].
    pub fn record(&self) -> SdkLogRecord {
        use opentelemetry::logs::Logger as _;
        self.logger.create_log_record()
    }
}

/// The SDK logger for `pushes` (`None` when there are none) and the exports to start.
pub fn loggers(pushes: Vec<LogPush>) -> (Option<Loggers>, Vec<LogExport>) {
    if pushes.is_empty() {
        return (None, Vec::new());
    }
    let mut builder = SdkLoggerProvider::builder();
    let mut exports = Vec::new();
    for push in pushes {
        let (tx, rx) = mpsc::channel(push.max_queue_size);
        let dropped = Arc::new(AtomicU64::new(0));
        builder = builder.with_log_processor(QueueProcessor(LogQueue {
            tx,
            dropped: dropped.clone(),
        }));
        exports.push(LogExport { push, rx, dropped });
    }
    let provider = builder.build();
    let scope = SdkScope::builder("wasmcol")
        .with_version(env!("CARGO_PKG_VERSION"))
        .build();
    let logger = provider.logger_with_scope(scope);
    (Some(Loggers { logger }), exports)
}

/// A string attribute.
fn kv(key: &str, value: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

impl LogExport {
    /// Builds the processor's exporter and starts its task on `tasks`.
    pub async fn start(
        self,
        metrics: &Metrics,
        resource: &[(String, String)],
        tasks: &Tasks,
    ) -> anyhow::Result<()> {
        let path = format!("service::telemetry::logs::{}", self.push.path);
        let sender = crate::selfpush::telemetry_sender(
            self.push.protocol,
            &self.push.exporter,
            Signal::Logs,
            "telemetry_logs",
            &format!("{path}.exporter.otlp"),
            tasks,
        )?;
        sender
            .start()
            .await
            .with_context(|| format!("cannot start the log exporter of {path}"))?;
        let exporter = Exporter {
            sender,
            resource: Resource {
                attributes: resource
                    .iter()
                    .map(|(k, v)| kv(k, any_value::Value::StringValue(v.clone())))
                    .collect(),
                ..Default::default()
            },
            timeout: self.push.export_timeout,
            failed: metrics.counter(
                "wasmcol_telemetry_push_failed",
                "Pushes of the collector's own metrics or logs that failed.",
                &[],
            ),
        };
        let dropped = metrics.counter(
            "wasmcol_telemetry_logs_dropped",
            "Log records of the collector's own logs dropped because an OTLP log processor's queue was full.",
            &[],
        );
        tasks.spawn(run(self, exporter, dropped, tasks.clone()));
        Ok(())
    }
}

struct Exporter {
    sender: Arc<dyn Sender>,
    resource: Resource,
    timeout: Duration,
    failed: Counter,
}

impl Exporter {
    async fn export(&self, records: Vec<LogRecord>, timeout: Duration) {
        if records.is_empty() {
            return;
        }
        let request = ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                resource: Some(self.resource.clone()),
                scope_logs: vec![ScopeLogs {
                    scope: Some(InstrumentationScope {
                        name: "wasmcol".into(),
                        version: env!("CARGO_PKG_VERSION").into(),
                        ..Default::default()
                    }),
                    log_records: records,
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        let batch = Batch::Logs(LogsBatch::from_message(request));
        if !matches!(
            tokio::time::timeout(timeout, self.sender.send(batch)).await,
            Ok(Ok(()))
        ) {
            self.failed.inc();
        }
    }
}

/// The processor's task: a batch every `schedule_delay` or when a full batch waits.
async fn run(mut export: LogExport, exporter: Exporter, dropped: Counter, tasks: Tasks) {
    let token = tasks.token();
    let max = export.push.max_export_batch_size;
    let delay = export.push.schedule_delay;
    let mut tick = tokio::time::interval(delay.max(Duration::from_millis(1)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut batch: Vec<LogRecord> = Vec::with_capacity(max);
    loop {
        // Never zero: a full batch is exported before the loop comes round again.
        let room = max - batch.len();
        tokio::select! {
            _ = token.cancelled() => break,
            n = export.rx.recv_many(&mut batch, room) => {
                if n == 0 {
                    break;
                }
                if batch.len() < max && !delay.is_zero() {
                    continue;
                }
            }
            _ = tick.tick() => {}
        }
        dropped.add(export.dropped.swap(0, Ordering::Relaxed));
        exporter
            .export(std::mem::take(&mut batch), exporter.timeout)
            .await;
    }
    // The final flush: what waits, within the export timeout and the service's deadline.
    let left = tasks
        .time_left()
        .map_or(exporter.timeout, |l| l.min(exporter.timeout));
    let deadline = tokio::time::Instant::now() + left;
    // At most one queue's worth: lines logged meanwhile must not keep the flush going.
    for _ in 0..export.push.max_queue_size {
        let Ok(record) = export.rx.try_recv() else {
            break;
        };
        batch.push(record);
        if batch.len() >= max {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            exporter.export(std::mem::take(&mut batch), left).await;
        }
    }
    let left = deadline.saturating_duration_since(tokio::time::Instant::now());
    exporter.export(batch, left).await;
    dropped.add(export.dropped.swap(0, Ordering::Relaxed));
    if let Err(e) = exporter.sender.shutdown().await {
        tracing::debug!(processor = %export.push.path, error = %e, "log exporter shutdown");
    }
}
