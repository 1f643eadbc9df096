//! Delivery health of an exporter, reported by its chain and read by the failover connector.
//!
//! Upstream's failover connector only sees errors returned by `Consume`, which an exporter
//! with a queue never returns while its queue has room (contrib#34582). Exporters here record
//! every delivery outcome and their queue fill, so a level is judged by what actually happens
//! at the backend.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Outcome counters of one exporter (for one signal).
#[derive(Debug)]
pub struct DeliveryHealth {
    name: String,
    epoch: Instant,
    consecutive_failures: AtomicU64,
    last_success_ms: AtomicU64,
    last_failure_ms: AtomicU64,
    queue_size: AtomicU64,
    queue_capacity: AtomicU64,
}

impl DeliveryHealth {
    /// Health for the exporter called `name`.
    pub fn new(name: impl Into<String>) -> Self {
        DeliveryHealth {
            name: name.into(),
            epoch: Instant::now(),
            consecutive_failures: AtomicU64::new(0),
            last_success_ms: AtomicU64::new(0),
            last_failure_ms: AtomicU64::new(0),
            queue_size: AtomicU64::new(0),
            queue_capacity: AtomicU64::new(0),
        }
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64 + 1
    }

    /// The exporter's id.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A send attempt reached the backend and was accepted.
    pub fn record_success(&self) {
        self.consecutive_failures.store(0, Ordering::Relaxed);
        self.last_success_ms.store(self.now_ms(), Ordering::Relaxed);
    }

    /// A send attempt failed (the request may still be retried).
    pub fn record_failure(&self) {
        self.consecutive_failures.fetch_add(1, Ordering::Relaxed);
        self.last_failure_ms.store(self.now_ms(), Ordering::Relaxed);
    }

    /// The exporter's queue fill, in its sizer's units.
    pub fn set_queue(&self, size: u64, capacity: u64) {
        self.queue_size.store(size, Ordering::Relaxed);
        self.queue_capacity.store(capacity, Ordering::Relaxed);
    }

    /// Failed attempts since the last success.
    pub fn consecutive_failures(&self) -> u64 {
        self.consecutive_failures.load(Ordering::Relaxed)
    }

    /// Queue fill as a fraction of capacity (0 when there is no queue).
    pub fn queue_fill(&self) -> f64 {
        let cap = self.queue_capacity.load(Ordering::Relaxed);
        if cap == 0 {
            0.0
        } else {
            self.queue_size.load(Ordering::Relaxed) as f64 / cap as f64
        }
    }

    /// Time since the last failed attempt, if any.
    pub fn since_last_failure(&self) -> Option<Duration> {
        let f = self.last_failure_ms.load(Ordering::Relaxed);
        (f != 0).then(|| Duration::from_millis(self.now_ms().saturating_sub(f)))
    }

    /// Whether the exporter is failing: `threshold` consecutive failed attempts with no
    /// success since, or a queue past `high_water` of its capacity.
    pub fn is_unhealthy(&self, threshold: u64, high_water: f64) -> bool {
        self.consecutive_failures() >= threshold.max(1) || self.queue_fill() >= high_water
    }
}
