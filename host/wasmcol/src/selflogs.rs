//! `service.telemetry.logs.processors`: the collector's own log lines exported over OTLP
//! too, by a batch (or simple) log record processor per entry.
//!
//! The logger ([`crate::logging`]) hands each line that passed sampling to every
//! processor's bounded queue without waiting; a full queue drops the record and counts it
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
use tokio::sync::mpsc;
use wasmcol_config::LogPush;
use wasmcol_core::{Batch, Counter, Metrics, Sender, Signal, Tasks};
use wasmcol_pdata::proto::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use wasmcol_pdata::proto::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use wasmcol_pdata::proto::resource::v1::Resource;
use wasmcol_pdata::{ExportLogsServiceRequest, LogsBatch};

/// The logger's end of one processor's queue.
#[derive(Clone)]
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

/// A queue for each processor: the logger's ends and the exports to start.
pub fn queues(pushes: Vec<LogPush>) -> (Vec<LogQueue>, Vec<LogExport>) {
    pushes
        .into_iter()
        .map(|push| {
            let (tx, rx) = mpsc::channel(push.max_queue_size);
            let dropped = Arc::new(AtomicU64::new(0));
            (
                LogQueue {
                    tx,
                    dropped: dropped.clone(),
                },
                LogExport { push, rx, dropped },
            )
        })
        .unzip()
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
