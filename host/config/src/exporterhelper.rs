//! Upstream exporterhelper settings shared by every exporter: `timeout`, `retry_on_failure`,
//! `sending_queue`. Exporter configs list these fields explicitly (serde cannot combine
//! `flatten` with `deny_unknown_fields`) and hand them to the delivery chain as [`HelperConfig`].

use serde::Deserialize;

use crate::{ComponentId, GoDuration};

/// `retry_on_failure`, with upstream's defaults.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetryConfig {
    /// Retry at all.
    pub enabled: bool,
    /// First wait (5s).
    pub initial_interval: GoDuration,
    /// Jitter: each wait is `interval × (1 ± factor)` (0.5).
    pub randomization_factor: f64,
    /// Growth per attempt (1.5).
    pub multiplier: f64,
    /// Cap on one wait (30s).
    pub max_interval: GoDuration,
    /// Give up after this long; 0 retries forever (5m).
    pub max_elapsed_time: GoDuration,
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            enabled: true,
            initial_interval: GoDuration::secs(5),
            randomization_factor: 0.5,
            multiplier: 1.5,
            max_interval: GoDuration::secs(30),
            max_elapsed_time: GoDuration::secs(300),
        }
    }
}

impl RetryConfig {
    /// Upstream's validation, with its messages.
    pub fn validate(&self) -> Vec<String> {
        let mut e = Vec::new();
        if !(0.0..=1.0).contains(&self.randomization_factor) {
            e.push("retry_on_failure.randomization_factor: 'randomization_factor' must be within [0, 1]".into());
        }
        if self.multiplier < 0.0 {
            e.push("retry_on_failure.multiplier: 'multiplier' must be positive".into());
        }
        if !self.max_elapsed_time.is_zero() {
            if self.max_elapsed_time < self.initial_interval {
                e.push("retry_on_failure.max_elapsed_time: 'max_elapsed_time' must not be less than 'initial_interval'".into());
            }
            if self.max_elapsed_time < self.max_interval {
                e.push("retry_on_failure.max_elapsed_time: 'max_elapsed_time' must not be less than 'max_interval'".into());
            }
        }
        e
    }
}

/// `sending_queue.sizer`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Sizer {
    /// Count requests.
    #[default]
    Requests,
    /// Count spans, data points or log records.
    Items,
    /// Count encoded bytes.
    Bytes,
}

/// `sending_queue.batch`: queue consumers merge queued requests into exports of at least
/// `min_size` (waiting at most `flush_timeout` for it) and at most `max_size`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QueueBatchConfig {
    /// Flush after this long (200ms).
    pub flush_timeout: GoDuration,
    /// Flush at this size (8192).
    pub min_size: u64,
    /// Split above this size (0 = no limit).
    pub max_size: u64,
    /// Unit of the sizes.
    pub sizer: Option<Sizer>,
    /// Partitioning by request metadata: refused when set (queued requests are merged
    /// regardless of their metadata).
    pub partition: Option<serde_yaml::Value>,
}

impl QueueBatchConfig {
    /// The unit of `min_size` and `max_size`: `batch.sizer`, else the queue's `sizer` when it
    /// counts items or bytes, else items (upstream's inheritance; requests are not allowed).
    pub fn effective_sizer(&self, queue: Sizer) -> Sizer {
        match (self.sizer, queue) {
            (Some(s), _) => s,
            (None, Sizer::Requests) => Sizer::Items,
            (None, q) => q,
        }
    }
}

impl Default for QueueBatchConfig {
    fn default() -> Self {
        QueueBatchConfig {
            flush_timeout: GoDuration::millis(200),
            min_size: 8192,
            max_size: 0,
            sizer: None,
            partition: None,
        }
    }
}

/// `sending_queue`, with upstream's defaults.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QueueConfig {
    /// Queue at all; `false` makes the export synchronous.
    pub enabled: bool,
    /// Concurrent senders (10).
    pub num_consumers: usize,
    /// Capacity in `sizer` units (1000).
    pub queue_size: u64,
    /// Unit of `queue_size`.
    pub sizer: Sizer,
    /// Wait for room instead of refusing when full.
    pub block_on_overflow: bool,
    /// Return the export's result to the caller instead of acknowledging on enqueue.
    pub wait_for_result: bool,
    /// A storage extension id: the queue is persistent.
    pub storage: Option<ComponentId>,
    /// Queue-side batching.
    pub batch: Option<QueueBatchConfig>,
    /// When full, drop the oldest item instead of refusing (a wasmcol addition; counted).
    pub drop_oldest: bool,
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig {
            enabled: true,
            num_consumers: 10,
            queue_size: 1000,
            sizer: Sizer::Requests,
            block_on_overflow: false,
            wait_for_result: false,
            storage: None,
            batch: None,
            drop_oldest: false,
        }
    }
}

impl QueueConfig {
    /// Upstream's validation, with its messages.
    pub fn validate(&self) -> Vec<String> {
        let mut e = Vec::new();
        if !self.enabled {
            return e;
        }
        if self.num_consumers == 0 {
            e.push("sending_queue.num_consumers: `num_consumers` must be positive".into());
        }
        if self.queue_size == 0 {
            e.push("sending_queue.queue_size: `queue_size` must be positive".into());
        }
        if self.wait_for_result && self.storage.is_some() {
            e.push("sending_queue: `wait_for_result` is not supported with a persistent queue configured with `storage`".into());
        }
        if let Some(b) = &self.batch {
            if b.flush_timeout.is_zero() {
                e.push(
                    "sending_queue.batch.flush_timeout: `flush_timeout` must be positive".into(),
                );
            }
            if b.max_size > 0 && b.max_size < b.min_size {
                e.push("sending_queue.batch.max_size: `max_size` must be greater or equal to `min_size`".into());
            }
            if b.partition.as_ref().is_some_and(|p| !p.is_null()) {
                e.push("sending_queue.batch.partition: not supported by wasmcol (queued requests are merged regardless of their metadata)".into());
            }
            if b.sizer == Some(Sizer::Requests) {
                e.push("sending_queue.batch.sizer: `sizer` must be `items` or `bytes`".into());
            }
            if b.effective_sizer(self.sizer) == self.sizer && b.min_size > self.queue_size {
                e.push("sending_queue.batch.min_size: `min_size` must be less than or equal to `queue_size`".into());
            }
        }
        e
    }
}

/// Everything the delivery chain needs from an exporter's config.
#[derive(Debug, Clone, PartialEq)]
pub struct HelperConfig {
    /// Per-attempt timeout; `None` or zero disables it.
    pub timeout: Option<GoDuration>,
    /// `retry_on_failure`.
    pub retry: RetryConfig,
    /// `sending_queue`.
    pub queue: QueueConfig,
}

impl HelperConfig {
    /// No queue, no retry, no timeout: a synchronous pass-through (debug, nop).
    pub fn disabled() -> Self {
        HelperConfig {
            timeout: None,
            retry: RetryConfig {
                enabled: false,
                ..RetryConfig::default()
            },
            queue: QueueConfig {
                enabled: false,
                ..QueueConfig::default()
            },
        }
    }

    /// Validation of all three parts.
    pub fn validate(&self) -> Vec<String> {
        let mut e = self.retry.validate();
        e.extend(self.queue.validate());
        e
    }
}
