//! One request's delivery: per-attempt timeout, retries with upstream's exponential backoff,
//! delivery health on every attempt, and the sent / send-failed metrics once per request.

use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use wasmcol_config::exporterhelper::RetryConfig;
use wasmcol_core::exporter::ExporterObs;
use wasmcol_core::{Batch, ConsumeError, DeliveryHealth, Sender};

/// Upstream's `ExponentialBackOff` (cenkalti/backoff): each wait is the current interval
/// randomised by `± randomization_factor`, and the interval grows by `multiplier` up to
/// `max_interval`.
#[derive(Debug, Clone)]
pub struct Backoff {
    current: Duration,
    factor: f64,
    multiplier: f64,
    max: Duration,
}

impl Backoff {
    /// A schedule from `retry_on_failure`.
    pub fn new(cfg: &RetryConfig) -> Self {
        Backoff {
            current: cfg.initial_interval.into(),
            factor: cfg.randomization_factor.clamp(0.0, 1.0),
            multiplier: cfg.multiplier.max(0.0),
            max: cfg.max_interval.into(),
        }
    }

    /// The next wait, drawing the jitter from `rng`.
    pub fn next_with(&mut self, rng: &mut impl Rng) -> Duration {
        let interval = self.current.as_secs_f64();
        let delta = self.factor * interval;
        let low = interval - delta;
        let high = interval + delta;
        let wait = if high > low {
            rng.random_range(low..=high)
        } else {
            interval
        };
        // Go's backoff stops growing once the next step would pass the cap.
        let max = self.max.as_secs_f64();
        self.current = if interval >= max / self.multiplier.max(f64::MIN_POSITIVE) {
            self.max
        } else {
            Duration::try_from_secs_f64(interval * self.multiplier).unwrap_or(self.max)
        };
        // Jitter on a huge configured interval can leave Duration's range: wait the cap then.
        Duration::try_from_secs_f64(wait.max(0.0)).unwrap_or(self.max)
    }

    /// The next wait with thread-local randomness.
    pub fn next_delay(&mut self) -> Duration {
        self.next_with(&mut rand::rng())
    }
}

/// How a request ended.
#[derive(Debug)]
pub enum Outcome {
    /// The backend accepted it.
    Delivered,
    /// Given up: permanent error or retries exhausted. The request is dropped (and counted).
    Failed(ConsumeError),
    /// Shutdown interrupted the retries; the request was not counted and may be kept
    /// (a persistent queue leaves it on disk for the next start).
    Interrupted(ConsumeError),
}

/// Sends one request through timeout and retry; shared by every queue kind.
pub struct Delivery {
    pub(crate) name: String,
    pub(crate) sender: Arc<dyn Sender>,
    pub(crate) timeout: Option<Duration>,
    pub(crate) retry: RetryConfig,
    pub(crate) obs: ExporterObs,
    pub(crate) health: Arc<DeliveryHealth>,
}

impl Delivery {
    /// One attempt bounded by the per-attempt timeout; health is updated with the result.
    pub async fn attempt(&self, batch: Batch) -> Result<(), ConsumeError> {
        let result = match self.timeout.filter(|t| !t.is_zero()) {
            Some(t) => match tokio::time::timeout(t, self.sender.send(batch)).await {
                Ok(r) => r,
                Err(_) => Err(ConsumeError::retryable(format!(
                    "export attempt timed out after {t:?}"
                ))),
            },
            None => self.sender.send(batch).await,
        };
        match &result {
            Ok(()) => self.health.record_success(),
            Err(_) => self.health.record_failure(),
        }
        result
    }

    /// Sends `batch` until it is delivered, fails permanently or runs out of retries
    /// (upstream's retry sender). `stop` interrupts a wait between attempts; an attempt in
    /// progress is interrupted too when `abort_attempts` (persistent queues keep the item,
    /// so there is nothing to finish).
    pub async fn deliver(
        &self,
        batch: Batch,
        stop: &CancellationToken,
        abort_attempts: bool,
    ) -> Outcome {
        let items = batch.item_count();
        let outcome = self.retry_loop(batch, stop, abort_attempts).await;
        match &outcome {
            Outcome::Delivered => self.obs.record(items, true),
            Outcome::Failed(e) => {
                self.obs.record(items, false);
                tracing::error!(exporter = %self.name, error = %e, dropped_items = items, "Exporting failed. Dropping data.");
            }
            Outcome::Interrupted(_) => {}
        }
        outcome
    }

    /// The wait before the next attempt: the backoff, or the backend's hint when longer
    /// (upstream). `retry_delay` bounds the hint, and the caller adds it to the elapsed time
    /// with checked arithmetic: a `Retry-After` of 2^64 seconds used to overflow there and
    /// kill the queue worker.
    fn next_wait(&self, backoff: &mut Backoff, err: &ConsumeError) -> Duration {
        let delay = backoff.next_delay();
        match err.retry_delay() {
            Some(hint) => delay.max(hint),
            None => delay,
        }
    }

    async fn retry_loop(
        &self,
        batch: Batch,
        stop: &CancellationToken,
        abort_attempts: bool,
    ) -> Outcome {
        let started = Instant::now();
        let max_elapsed: Duration = self.retry.max_elapsed_time.into();
        let mut backoff = Backoff::new(&self.retry);
        loop {
            // A diverting sender hands the request elsewhere without the backend, so even a
            // persistent queue's attempt runs to its end at shutdown.
            let abort_attempts = abort_attempts && !self.sender.diverts();
            let result = if abort_attempts {
                tokio::select! {
                    biased;
                    _ = stop.cancelled() => return Outcome::Interrupted(ConsumeError::ShuttingDown),
                    r = self.attempt(batch.clone()) => r,
                }
            } else {
                self.attempt(batch.clone()).await
            };
            let err = match result {
                Ok(()) => return Outcome::Delivered,
                Err(e) => e,
            };
            if let ConsumeError::Permanent(m) = err {
                return Outcome::Failed(ConsumeError::Permanent(m.context("not retryable error")));
            }
            if !self.retry.enabled {
                return Outcome::Failed(err);
            }
            if stop.is_cancelled() {
                if self.sender.diverts() {
                    return match self.attempt(batch).await {
                        Ok(()) => Outcome::Delivered,
                        Err(e) => Outcome::Interrupted(e),
                    };
                }
                return Outcome::Interrupted(err);
            }
            let delay = self.next_wait(&mut backoff, &err);
            if !max_elapsed.is_zero()
                && started
                    .elapsed()
                    .checked_add(delay)
                    .is_none_or(|at| at > max_elapsed)
            {
                return Outcome::Failed(ConsumeError::Retryable {
                    message: format!("no more retries left: {err}"),
                    retry_after: err.retry_delay(),
                });
            }
            tracing::info!(exporter = %self.name, error = %err, interval = ?delay, "Exporting failed. Will retry the request after interval.");
            let interrupted = tokio::select! {
                biased;
                _ = stop.cancelled() => true,
                _ = tokio::time::sleep(delay) => false,
            };
            if interrupted {
                if abort_attempts && !self.sender.diverts() {
                    return Outcome::Interrupted(err);
                }
                // Draining at shutdown: upstream tries every remaining request once more.
                return match self.attempt(batch).await {
                    Ok(()) => Outcome::Delivered,
                    Err(e) => Outcome::Interrupted(e),
                };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;
    use wasmcol_config::GoDuration;

    /// Scenario: the default schedule over many random draws.
    /// Guarantees: waits stay within interval × (1 ± 0.5), the interval grows ×1.5 and is
    /// capped at 30 s, as upstream's backoff.
    #[test]
    fn default_schedule_bounds() {
        let cfg = RetryConfig::default();
        for seed in 0..200 {
            let mut rng = StdRng::seed_from_u64(seed);
            let mut b = Backoff::new(&cfg);
            let mut interval = 5.0f64;
            for _ in 0..12 {
                let w = b.next_with(&mut rng).as_secs_f64();
                assert!(
                    w >= interval * 0.5 - 1e-9 && w <= interval * 1.5 + 1e-9,
                    "{w} vs {interval}"
                );
                interval = if interval >= 30.0 / 1.5 {
                    30.0
                } else {
                    interval * 1.5
                };
            }
        }
    }

    #[test]
    fn no_jitter_is_exact() {
        let cfg = RetryConfig {
            randomization_factor: 0.0,
            initial_interval: GoDuration::secs(1),
            multiplier: 2.0,
            max_interval: GoDuration::secs(5),
            ..RetryConfig::default()
        };
        let mut b = Backoff::new(&cfg);
        let waits: Vec<u64> = (0..6).map(|_| b.next_delay().as_secs()).collect();
        assert_eq!(waits, vec![1, 2, 4, 5, 5, 5]);
    }
}
