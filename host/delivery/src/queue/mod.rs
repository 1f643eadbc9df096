//! The sending queues: in memory, or persistent on a `file_storage` extension.

pub mod memory;
pub mod persistent;

use std::sync::Arc;
use std::time::Duration;

use wasmcol_config::exporterhelper::{QueueBatchConfig, Sizer};
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

/// How queue consumers merge queued requests (`sending_queue.batch`, or a `batch`
/// processor's settings adopted by the queue).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchPlan {
    /// Longest a consumer waits for `min_size` after taking the first request.
    pub flush_timeout: Duration,
    /// Size at which a merged export goes out at once.
    pub min_size: u64,
    /// Largest merged export; 0 for no bound. A single larger request is split.
    pub max_size: u64,
    /// Unit of the sizes: items or bytes.
    pub sizer: Sizer,
}

impl BatchPlan {
    /// The plan for `batch` on a queue sized by `queue_sizer`.
    pub fn new(batch: &QueueBatchConfig, queue_sizer: Sizer) -> Self {
        BatchPlan {
            flush_timeout: batch.flush_timeout.into(),
            min_size: batch.min_size,
            max_size: batch.max_size,
            sizer: batch.effective_sizer(queue_sizer),
        }
    }

    /// A request of `items` items and `bytes` payload bytes, in the plan's unit.
    pub fn measure(&self, items: u64, bytes: u64) -> u64 {
        match self.sizer {
            Sizer::Bytes => bytes,
            Sizer::Items | Sizer::Requests => items,
        }
    }

    /// A plan meeting both `self`'s and `other`'s limits, for a queue fed by several
    /// pipelines: the earlier trigger and the smaller bound win. Plans in different units
    /// are not combined; `self` stays.
    pub fn combine(self, other: BatchPlan) -> BatchPlan {
        if self.sizer != other.sizer {
            return self;
        }
        let max_size = match (self.max_size, other.max_size) {
            (0, m) | (m, 0) => m,
            (a, b) => a.min(b),
        };
        BatchPlan {
            flush_timeout: self.flush_timeout.min(other.flush_timeout),
            min_size: self.min_size.min(other.min_size),
            max_size,
            sizer: self.sizer,
        }
    }
}

/// Requests a consumer has taken for one merged export.
pub(crate) struct Group<T> {
    pub(crate) entries: Vec<T>,
    size: u64,
    full: bool,
    /// When the group goes out however small: `flush_timeout` after its first request.
    deadline: Option<tokio::time::Instant>,
}

impl<T> Group<T> {
    pub(crate) fn new() -> Self {
        Group {
            entries: Vec::new(),
            size: 0,
            full: false,
            deadline: None,
        }
    }

    /// Waits until the queue may hold more (`more` fires), the group's flush deadline
    /// passes, or `stop` is cancelled; `true` when the group must go out now. Both queues'
    /// consumers gather with it, so the merge rules are one piece of code.
    pub(crate) async fn wait(
        &mut self,
        plan: &BatchPlan,
        more: std::pin::Pin<&mut tokio::sync::futures::Notified<'_>>,
        stop: &tokio_util::sync::CancellationToken,
    ) -> bool {
        if self.deadline.is_none() && !self.is_empty() {
            self.deadline = Some(tokio::time::Instant::now() + plan.flush_timeout);
        }
        let deadline = self.deadline;
        let flush = async move {
            match deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = more => false,
            _ = flush => true,
            _ = stop.cancelled() => true,
        }
    }

    /// Whether a request of `size` may join: the first always does (it is split later if it
    /// is too large), later ones only within `max_size`. A refused one closes the group.
    pub(crate) fn admits(&mut self, plan: &BatchPlan, size: u64) -> bool {
        let ok = self.entries.is_empty() || plan.max_size == 0 || self.size + size <= plan.max_size;
        if !ok {
            self.full = true;
        }
        ok
    }

    pub(crate) fn push(&mut self, plan: &BatchPlan, entry: T, size: u64) {
        self.entries.push(entry);
        self.size += size;
        if plan.max_size > 0 && self.size >= plan.max_size {
            self.full = true;
        }
    }

    /// Whether the group goes out now rather than waiting for more.
    pub(crate) fn ready(&self, plan: &BatchPlan) -> bool {
        !self.entries.is_empty() && (self.full || self.size >= plan.min_size)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The entries, or `None` for an empty group.
    pub(crate) fn into_entries(self) -> Option<Vec<T>> {
        (!self.entries.is_empty()).then_some(self.entries)
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
        max_bytes: Option<u64>,
        health: Arc<DeliveryHealth>,
    ) -> Self {
        let labels = [("exporter", exporter), ("data_type", signal.as_str())];
        let item = signal.item_name();
        metrics
            .gauge(
                "otelcol_exporter_queue_capacity",
                &format!("Fixed capacity of the retry queue (in batches, or the sizer's unit). A memory queue is also bounded in bytes: wasmcol_exporter_queue_capacity_bytes ({} MiB unless the sizer is bytes).", crate::chain::MEMORY_QUEUE_MAX_BYTES >> 20),
                &labels,
            )
            .set(i64::try_from(capacity).unwrap_or(i64::MAX));
        if let Some(b) = max_bytes {
            metrics
                .gauge(
                    "wasmcol_exporter_queue_capacity_bytes",
                    "Bound on the encoded bytes a memory sending queue holds, queued or in flight.",
                    &labels,
                )
                .set(i64::try_from(b).unwrap_or(i64::MAX));
        }
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
