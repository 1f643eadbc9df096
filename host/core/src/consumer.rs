//! The consumer contract.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use wasmcol_config::exporterhelper::QueueBatchConfig;

use crate::Batch;

/// Why a stage did not take a batch. It travels back to the receiver, which maps it to a
/// status code: `Retryable` → gRPC UNAVAILABLE / HTTP 503 (with RetryInfo / Retry-After when
/// `retry_after` is set), `Permanent` → INTERNAL / 500, `ShuttingDown` → UNAVAILABLE / 503.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConsumeError {
    /// The data can never be accepted; the sender must not retry it.
    #[error("{0}")]
    Permanent(String),
    /// The data may be accepted later.
    #[error("{message}")]
    Retryable {
        /// What went wrong.
        message: String,
        /// How long the sender should wait, when the stage knows.
        retry_after: Option<Duration>,
    },
    /// The collector is stopping; the sender should retry elsewhere or later.
    #[error("the collector is shutting down")]
    ShuttingDown,
}

impl ConsumeError {
    /// A permanent error.
    pub fn permanent(message: impl Into<String>) -> Self {
        ConsumeError::Permanent(message.into())
    }

    /// A retryable error without a delay hint.
    pub fn retryable(message: impl Into<String>) -> Self {
        ConsumeError::Retryable {
            message: message.into(),
            retry_after: None,
        }
    }

    /// A retryable error with a delay hint.
    pub fn retry_after(message: impl Into<String>, after: Duration) -> Self {
        ConsumeError::Retryable {
            message: message.into(),
            retry_after: Some(after),
        }
    }

    /// Whether the sender may retry.
    pub fn is_retryable(&self) -> bool {
        !matches!(self, ConsumeError::Permanent(_))
    }

    /// The delay hint, if any.
    pub fn retry_delay(&self) -> Option<Duration> {
        match self {
            ConsumeError::Retryable { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// Joins the errors of a fan-out: permanent if any is permanent (upstream's
    /// `consumererror.IsPermanent` over a joined error), else retryable with the longest hint.
    pub fn join(errors: Vec<ConsumeError>) -> Option<ConsumeError> {
        if errors.len() <= 1 {
            return errors.into_iter().next();
        }
        let message = errors
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ");
        if errors
            .iter()
            .any(|e| matches!(e, ConsumeError::Permanent(_)))
        {
            return Some(ConsumeError::Permanent(message));
        }
        let retry_after = errors.iter().filter_map(ConsumeError::retry_delay).max();
        Some(ConsumeError::Retryable {
            message,
            retry_after,
        })
    }
}

/// A stage that takes batches: a processor, an exporter, a connector or a fan-out.
///
/// `consume` returns once the stage has taken responsibility for the batch (or failed to).
/// Implementations must be cancel-safe only in the sense that a dropped future loses nothing
/// that was acknowledged: a batch is acknowledged by returning `Ok`.
#[async_trait]
pub trait Consumer: Send + Sync {
    /// Takes a batch.
    async fn consume(&self, batch: Batch) -> Result<(), ConsumeError>;

    /// Whether this consumer edits batches in place. Batches are copy-on-write, so this is
    /// informational: a fan-out never deep-copies for a consumer that only reads.
    fn mutates_data(&self) -> bool {
        false
    }

    /// Whether `consume` answers as soon as the batch is safe in a sending queue (memory, or
    /// durably on disk) rather than once it has been exported: true for exporters with a
    /// sending queue and for fan-outs and connectors whose every consumer does. A `batch`
    /// processor in front of such consumers hands each request on at once and lets the queues
    /// merge them, so senders are not held for the batch timeout.
    fn answers_on_enqueue(&self) -> bool {
        false
    }

    /// Offers merge settings (a `batch` processor's) to the sending queues behind this
    /// consumer; a queue with its own `sending_queue.batch` keeps it. Called while the graph
    /// is built, before anything starts.
    fn adopt_batching(&self, _plan: &QueueBatchConfig) {}
}

/// A shared consumer.
pub type ConsumerRef = Arc<dyn Consumer>;

/// Hands each batch to several consumers in order and joins their errors, like upstream's
/// fanoutconsumer: one failing consumer fails the call even if the others took the data.
pub struct FanOut {
    consumers: Vec<ConsumerRef>,
}

impl FanOut {
    /// A fan-out over `consumers`; a single consumer is returned as is by [`FanOut::wrap`].
    pub fn new(consumers: Vec<ConsumerRef>) -> Self {
        FanOut { consumers }
    }

    /// One consumer stays itself; several become a fan-out.
    pub fn wrap(mut consumers: Vec<ConsumerRef>) -> ConsumerRef {
        if consumers.len() == 1
            && let Some(c) = consumers.pop()
        {
            return c;
        }
        Arc::new(FanOut::new(consumers))
    }
}

#[async_trait]
impl Consumer for FanOut {
    async fn consume(&self, batch: Batch) -> Result<(), ConsumeError> {
        let mut errors = Vec::new();
        let last = self.consumers.len().saturating_sub(1);
        let mut batch = Some(batch);
        for (i, c) in self.consumers.iter().enumerate() {
            // The last consumer gets the original; the others share it copy-on-write.
            let b = if i == last {
                batch.take()
            } else {
                batch.clone()
            };
            if let Some(b) = b
                && let Err(e) = c.consume(b).await
            {
                errors.push(e);
            }
        }
        match ConsumeError::join(errors) {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    fn mutates_data(&self) -> bool {
        self.consumers.iter().any(|c| c.mutates_data())
    }

    fn answers_on_enqueue(&self) -> bool {
        self.consumers.iter().all(|c| c.answers_on_enqueue())
    }

    fn adopt_batching(&self, plan: &QueueBatchConfig) {
        for c in &self.consumers {
            c.adopt_batching(plan);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn join_prefers_permanent_and_longest_hint() {
        let e = ConsumeError::join(vec![
            ConsumeError::retry_after("a", Duration::from_secs(1)),
            ConsumeError::retry_after("b", Duration::from_secs(3)),
        ])
        .unwrap();
        assert_eq!(e.retry_delay(), Some(Duration::from_secs(3)));
        let e = ConsumeError::join(vec![
            ConsumeError::retryable("a"),
            ConsumeError::permanent("b"),
        ])
        .unwrap();
        assert!(!e.is_retryable());
        assert!(ConsumeError::join(vec![]).is_none());
    }
}
