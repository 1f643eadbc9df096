//! The sending queues: in memory, or persistent on a `file_storage` extension.

pub mod memory;
pub mod persistent;

use std::sync::Arc;
use std::time::Duration;

use wasmcol_config::exporterhelper::Sizer;
use wasmcol_core::{Batch, ConsumeError, Counter, DeliveryHealth, Gauge, Metrics, Signal};

/// The retry hint a full queue gives the sender (`Retry-After` / RetryInfo): long enough for
/// a few requests to drain, short enough that a sender with its own buffer does not stall.
pub const QUEUE_FULL_RETRY_AFTER: Duration = Duration::from_secs(5);

/// A request's size in `sizer` units.
pub fn size_of(sizer: Sizer, batch: &Batch) -> u64 {
    match sizer {
        Sizer::Requests => 1,
        Sizer::Items => batch.item_count() as u64,
        Sizer::Bytes => batch.encoded_len() as u64,
    }
}

fn unit(sizer: Sizer) -> &'static str {
    match sizer {
        Sizer::Requests => "requests",
        Sizer::Items => "items",
        Sizer::Bytes => "bytes",
    }
}

/// The error for a request that can never fit: retrying it cannot help.
pub(crate) fn too_large(sizer: Sizer, size: u64, capacity: u64) -> ConsumeError {
    ConsumeError::permanent(format!(
        "sending queue: element size too large ({size} {} > capacity {capacity})",
        unit(sizer)
    ))
}

/// Queue metrics and the fill reported to the failover connector.
pub(crate) struct QueueObs {
    size: Gauge,
    capacity: u64,
    enqueue_failed: Counter,
    dropped: Counter,
    health: Arc<DeliveryHealth>,
}

impl QueueObs {
    pub(crate) fn new(
        metrics: &Metrics,
        exporter: &str,
        signal: Signal,
        capacity: u64,
        health: Arc<DeliveryHealth>,
    ) -> Self {
        let labels = [("exporter", exporter), ("data_type", signal.as_str())];
        let item = signal.item_name();
        metrics
            .gauge(
                "otelcol_exporter_queue_capacity",
                "Fixed capacity of the retry queue (in batches).",
                &labels,
            )
            .set(i64::try_from(capacity).unwrap_or(i64::MAX));
        health.set_queue(0, capacity);
        QueueObs {
            size: metrics.gauge(
                "otelcol_exporter_queue_size",
                "Current size of the retry queue (in batches).",
                &labels,
            ),
            capacity,
            enqueue_failed: metrics.counter(
                &format!("otelcol_exporter_enqueue_failed_{item}"),
                &format!("Number of {item} failed to be added to the sending queue."),
                &[("exporter", exporter)],
            ),
            dropped: metrics.counter(
                &format!("wasmcol_exporter_queue_dropped_{item}"),
                &format!("Number of {item} dropped from a full queue by `drop_oldest`."),
                &[("exporter", exporter)],
            ),
            health,
        }
    }

    pub(crate) fn set_size(&self, size: u64) {
        self.size.set(i64::try_from(size).unwrap_or(i64::MAX));
        self.health.set_queue(size, self.capacity);
    }

    pub(crate) fn enqueue_failed(&self, items: usize) {
        self.enqueue_failed.add(items as u64);
    }

    pub(crate) fn dropped(&self, items: u64) {
        self.dropped.add(items);
    }

    pub(crate) fn full_error(&self) -> ConsumeError {
        ConsumeError::retry_after("sending queue is full", QUEUE_FULL_RETRY_AFTER)
    }
}
