//! The consumer contract.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use wasmcol_config::exporterhelper::QueueBatchConfig;

use wasmcol_pdata::{DecodeError, JsonError};

use crate::{Batch, Signal};

/// The longest delay hint [`ConsumeError::retry_delay`] reports; longer hints (a backend's
/// `Retry-After: 18446744073709551615`) are cut to it. Five minutes is upstream's default
/// `retry_on_failure.max_elapsed_time`: a backend asking for more than a whole default retry
/// budget is not throttling, it is broken or hostile, and must not park a queue worker.
pub const MAX_RETRY_HINT: Duration = Duration::from_secs(300);

/// Why a stage did not take a batch. It travels back to the receiver, which maps it to a
/// status code: `Retryable` → gRPC UNAVAILABLE / HTTP 503 (with RetryInfo / Retry-After when
/// `retry_after` is set), `Permanent` → INTERNAL / 500, `ShuttingDown` → UNAVAILABLE / 503.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConsumeError {
    /// The data can never be accepted; the sender must not retry it.
    #[error(transparent)]
    Permanent(PermanentError),
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

/// Why data can never be accepted. The text is what the receiver answers its client.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PermanentError {
    /// The batch's bytes are not valid OTLP, or it could not be merged or split.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// The batch could not be printed as OTLP/JSON.
    #[error(transparent)]
    Json(#[from] JsonError),
    /// The backend answered that it will never take this data.
    #[error("{message}")]
    Rejected {
        /// The backend's answer.
        status: BackendStatus,
        /// What the exporter reports, the backend's message included.
        message: String,
    },
    /// The backend took the data but its answer could not be read; re-sending would
    /// duplicate data it already has.
    #[error("{message}")]
    Response {
        /// What could not be read.
        message: String,
    },
    /// A plugin refused the batch.
    #[error("processor {processor}: {message}")]
    Plugin {
        /// The processor running the plugin.
        processor: String,
        /// The plugin's reason.
        message: String,
    },
    /// A processor fails on this data every time (a plugin trapped or ran out of memory on
    /// it, and again on a fresh instance): the data is the problem, so resending it cannot
    /// help. Receivers answer `INVALID_ARGUMENT` / 400. The reason is a short word; the
    /// details stay in the collector's log.
    #[error(
        "processor {processor} cannot process this data ({reason}); details are in the collector log"
    )]
    InvalidData {
        /// The processor that failed.
        processor: String,
        /// What happened, in a word or two (`trap`, `memory limit`).
        reason: String,
    },
    /// No pipeline takes this signal from the receiver.
    #[error("no pipeline for {signal}")]
    NoPipeline {
        /// The signal sent.
        signal: Signal,
    },
    /// A stage got a batch of a signal it was not built for.
    #[error("{stage} for {expected} received {got}")]
    WrongSignal {
        /// The stage, as named in the message (`batch processor`).
        stage: String,
        /// The signal it was built for.
        expected: Signal,
        /// The signal it got.
        got: Signal,
    },
    /// A permanent error seen through a stage that adds what it was doing (retries gave up,
    /// every failover level failed).
    #[error("{context}: {source}")]
    Context {
        /// What the outer stage was doing.
        context: String,
        /// What went wrong inside.
        source: Box<PermanentError>,
    },
    /// Several consumers of a fan-out failed, at least one of them permanently.
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Joined(Vec<ConsumeError>),
    /// Anything else, as a message.
    #[error("{0}")]
    Other(String),
}

/// A backend's refusal, as its protocol said it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendStatus {
    /// An HTTP status code.
    Http(u16),
    /// A gRPC status code (`google.rpc.Code`).
    Grpc(i32),
}

impl PermanentError {
    /// This error as the cause of what `context` was doing.
    pub fn context(self, context: impl Into<String>) -> Self {
        PermanentError::Context {
            context: context.into(),
            source: Box::new(self),
        }
    }

    /// Whether the data itself is at fault ([`PermanentError::InvalidData`], under any
    /// context layers), as opposed to a failure on the collector's or backend's side.
    pub fn is_invalid_data(&self) -> bool {
        matches!(self.root(), PermanentError::InvalidData { .. })
    }

    /// The innermost error, under any [`PermanentError::Context`] layers.
    pub fn root(&self) -> &PermanentError {
        match self {
            PermanentError::Context { source, .. } => source.root(),
            e => e,
        }
    }
}

impl From<DecodeError> for ConsumeError {
    fn from(e: DecodeError) -> Self {
        ConsumeError::Permanent(e.into())
    }
}

impl From<PermanentError> for ConsumeError {
    fn from(e: PermanentError) -> Self {
        ConsumeError::Permanent(e)
    }
}

impl ConsumeError {
    /// A permanent error known only by its message ([`PermanentError::Other`]).
    pub fn permanent(message: impl Into<String>) -> Self {
        ConsumeError::Permanent(PermanentError::Other(message.into()))
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

    /// The delay hint, if any, at most [`MAX_RETRY_HINT`].
    pub fn retry_delay(&self) -> Option<Duration> {
        match self {
            ConsumeError::Retryable { retry_after, .. } => {
                retry_after.map(|d| d.min(MAX_RETRY_HINT))
            }
            _ => None,
        }
    }

    /// Joins the errors of a fan-out: permanent if any is permanent (upstream's
    /// `consumererror.IsPermanent` over a joined error), else retryable with the longest hint.
    pub fn join(errors: Vec<ConsumeError>) -> Option<ConsumeError> {
        if errors.len() <= 1 {
            return errors.into_iter().next();
        }
        if errors
            .iter()
            .any(|e| matches!(e, ConsumeError::Permanent(_)))
        {
            return Some(ConsumeError::Permanent(PermanentError::Joined(errors)));
        }
        let message = errors
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ");
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
        assert_eq!(
            e,
            ConsumeError::Permanent(PermanentError::Joined(vec![
                ConsumeError::retryable("a"),
                ConsumeError::permanent("b"),
            ]))
        );
        assert_eq!(e.to_string(), "a; b");
        assert!(ConsumeError::join(vec![]).is_none());
    }

    #[test]
    fn permanent_errors_keep_their_cause_under_context() {
        let decode = DecodeError::Truncated { offset: 7 };
        let e = PermanentError::from(decode.clone()).context("not retryable error");
        assert_eq!(e.root(), &PermanentError::Decode(decode));
        assert_eq!(
            e.to_string(),
            "not retryable error: failed to decode OTLP protobuf: buffer underflow"
        );
        let e = ConsumeError::from(PermanentError::NoPipeline {
            signal: Signal::Logs,
        });
        assert!(!e.is_retryable());
        assert_eq!(e.to_string(), "no pipeline for logs");
    }
}
