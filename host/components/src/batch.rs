//! The `batch` processor: merges the batches of concurrent senders into exports of
//! `send_batch_size` items, or of what arrived within `timeout`, split above
//! `send_batch_max_size`. Where it merges depends on what is behind it:
//!
//! - **Every consumer downstream answers on enqueue** (exporters with a sending queue,
//!   connectors whose routes all end in one): the processor hands each request on at once, so
//!   a sender is answered as soon as its data is in the queue (durably, for a persistent
//!   queue), and its settings become the merge settings of those queues (`flush_timeout` =
//!   `timeout`, `min_size` = `send_batch_size`, `max_size` = `send_batch_max_size`, items);
//!   a queue with its own `sending_queue.batch` keeps it. Holding senders here would cap a
//!   closed-loop sender (an SDK exporting one batch at a time) at one request per timeout.
//! - **Otherwise** (`sending_queue.enabled: false` somewhere behind it) it holds the senders:
//!   `consume` returns when the items it contributed have been handed downstream, with that
//!   outcome, unlike upstream, which acknowledges before the export and swallows errors
//!   (core#12443). Each caller leaves its batch and a oneshot sender in the shared pending
//!   list; the flush that takes the list merges, splits and exports it in a tracked task and
//!   answers every caller once all of its items have been sent (with an error if any part
//!   carrying them failed). A caller whose future is dropped loses nothing: its items stay in
//!   the flush.
//!
//! Memory is bounded by a semaphore over items held or in flight (four times the larger of
//! `send_batch_size` and `send_batch_max_size`, at least 4 × 8192): a sender waits for room
//! before its batch is accepted, so a slow backend slows the senders instead of growing a queue.
//!
//! When holding, a long `timeout` would hold senders past their own export deadlines (5s per
//! attempt for a collector's `otlp` exporter, 10s for SDKs), so they would time out and send
//! again although the data was accepted. wasmcol therefore never holds a sender longer than
//! `max_hold` (a wasmcol key, default 1s; 0 lifts the cap): a `timeout` above it is clamped,
//! and the start-up log says so. Queues behind the processor get the unclamped `timeout`.
//!
//! `metadata_keys` partitions the data by the request context's values of those keys (which
//! receivers fill with `include_metadata`): requests that differ in them are never merged,
//! and what leaves the processor carries only those keys (without `metadata_keys`, no request
//! context at all, as upstream's single batcher exports under a fresh context). When holding,
//! the pending requests share one size and time trigger and are merged and sent per distinct
//! value set (upstream keeps one batcher, with its own trigger, per set); when the queues
//! merge, they group by the same context. Beyond `metadata_cardinality_limit` distinct sets
//! (counted over the processor's lifetime, as upstream's batchers are never removed), a
//! request with a new set is refused as a permanent error with upstream's text.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use parking_lot::Mutex;
use serde::Deserialize;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, oneshot};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use wasmcol_config::exporterhelper::{QueueBatchConfig, Sizer};
use wasmcol_config::{GoDuration, Value};
use wasmcol_core::pdata::RequestContext;
use wasmcol_core::{
    Batch, BuildError, ComponentError, ConsumeError, Consumer, ConsumerRef, Counter, CreateContext,
    Histogram, Lifecycle, Processor, ProcessorFactory, Signal, Tasks,
};

/// `processors: batch:` with upstream's keys and defaults.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BatchConfig {
    /// Items (spans, data points, log records) that trigger a send; a trigger, not a cap (8192).
    pub send_batch_size: u32,
    /// Upper bound on a sent batch; larger ones are split. 0 means no bound.
    pub send_batch_max_size: u32,
    /// Longest time an item waits for a batch to fill (200ms); 0 sends every request at once,
    /// only splitting it.
    pub timeout: GoDuration,
    /// Request metadata keys that partition batches (see the module docs).
    pub metadata_keys: Vec<String>,
    /// Limit on distinct metadata value combinations (1000).
    pub metadata_cardinality_limit: u32,
    /// wasmcol: the longest a sender is held waiting for its batch to go out (1s); `timeout`
    /// values above it are clamped. 0 lifts the cap.
    pub max_hold: GoDuration,
}

impl BatchConfig {
    /// The timeout actually applied: `timeout`, clamped to `max_hold` when that is set.
    pub fn effective_timeout(&self) -> Duration {
        let t: Duration = self.timeout.into();
        let cap: Duration = self.max_hold.into();
        if cap.is_zero() || t.is_zero() {
            t
        } else {
            t.min(cap)
        }
    }
}

impl BatchConfig {
    /// The same limits as queue merge settings: exports of `send_batch_size` items, or what
    /// arrived within `timeout`, never more than `send_batch_max_size`.
    pub fn queue_batching(&self) -> QueueBatchConfig {
        let timeout: Duration = self.timeout.into();
        QueueBatchConfig {
            // A zero timeout sends every request as it comes: nothing to wait for.
            flush_timeout: if timeout.is_zero() {
                GoDuration::millis(1)
            } else {
                self.timeout
            },
            min_size: if timeout.is_zero() {
                0
            } else {
                u64::from(self.send_batch_size)
            },
            max_size: u64::from(self.send_batch_max_size),
            sizer: Some(Sizer::Items),
            partition: None,
        }
    }
}

impl Default for BatchConfig {
    fn default() -> Self {
        BatchConfig {
            send_batch_size: 8192,
            send_batch_max_size: 0,
            timeout: GoDuration::millis(200),
            metadata_keys: Vec::new(),
            metadata_cardinality_limit: 1000,
            max_hold: GoDuration::secs(1),
        }
    }
}

impl BatchConfig {
    /// Upstream's checks, with its messages, each prefixed with its key.
    pub fn validate(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.send_batch_max_size > 0 && self.send_batch_max_size < self.send_batch_size {
            problems.push(
                "send_batch_max_size: send_batch_max_size must be greater or equal to send_batch_size"
                    .to_owned(),
            );
        }
        let mut seen = HashSet::new();
        for k in &self.metadata_keys {
            let lower = k.to_lowercase();
            if !seen.insert(lower.clone()) {
                problems.push(format!(
                    "metadata_keys: duplicate entry in metadata_keys: {lower:?} (case-insensitive)"
                ));
            }
        }
        problems
    }
}

/// Builds `batch` processors.
pub struct BatchFactory;

impl ProcessorFactory for BatchFactory {
    fn create(
        &self,
        ctx: &CreateContext,
        config: &Value,
        signal: Signal,
        next: ConsumerRef,
    ) -> Result<Arc<dyn Processor>, BuildError> {
        let cfg: BatchConfig = wasmcol_config::decode(config).map_err(BuildError::new)?;
        crate::check(cfg.validate())?;
        Ok(Arc::new(BatchProcessor::new(ctx, &cfg, signal, next)))
    }
}

/// Room for items held or in flight, as a multiple of the batch size.
const ROOM_FACTOR: usize = 4;
/// Smallest batch size the room is computed from, so that small `send_batch_size` settings
/// do not serialise senders of ordinary request sizes.
const ROOM_FLOOR: usize = 8192;

/// Upstream's `otelcol_processor_batch_batch_send_size` buckets.
const SEND_SIZE_BOUNDS: [f64; 22] = [
    10.0, 25.0, 50.0, 75.0, 100.0, 250.0, 500.0, 750.0, 1000.0, 2000.0, 3000.0, 4000.0, 5000.0,
    6000.0, 7000.0, 8000.0, 9000.0, 10000.0, 20000.0, 30000.0, 50000.0, 100000.0,
];

/// A `batch` processor for one pipeline.
pub struct BatchProcessor {
    inner: Arc<Inner>,
}

struct Inner {
    signal: Signal,
    /// Every consumer downstream answers once the data is queued: requests are handed on at
    /// once and the queues merge them with this processor's settings.
    queued_downstream: bool,
    send_batch_size: usize,
    /// 0: no bound.
    max_size: usize,
    timeout: Duration,
    /// `metadata_keys`, lower case.
    metadata_keys: Vec<String>,
    /// Distinct value sets of `metadata_keys` seen, at most `cardinality_limit`.
    partitions: Arc<Mutex<HashSet<RequestContext>>>,
    cardinality_limit: usize,
    /// The configured `timeout` when `max_hold` clamped it, for the start-up log.
    clamped_from: Option<Duration>,
    next: ConsumerRef,
    state: Mutex<State>,
    /// Wakes the timer when a new batch starts.
    wake: Notify,
    /// Items held or in flight.
    room: Arc<Semaphore>,
    capacity: usize,
    tasks: Tasks,
    obs: Obs,
    started: AtomicBool,
}

#[derive(Default)]
struct State {
    entries: Vec<Entry>,
    items: usize,
    /// When the first held entry arrived; the timeout counts from here.
    started_at: Option<Instant>,
    closed: bool,
}

impl State {
    fn take(&mut self) -> Vec<Entry> {
        self.items = 0;
        self.started_at = None;
        std::mem::take(&mut self.entries)
    }
}

/// One sender's contribution to the pending batch.
struct Entry {
    batch: Batch,
    items: usize,
    reply: oneshot::Sender<Result<(), ConsumeError>>,
    room: OwnedSemaphorePermit,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Trigger {
    Size,
    Timeout,
}

struct Obs {
    send_size: Histogram,
    size_trigger: Counter,
    timeout_trigger: Counter,
}

impl BatchProcessor {
    /// A processor that sends to `next`; nothing runs until [`Lifecycle::start`].
    pub fn new(ctx: &CreateContext, cfg: &BatchConfig, signal: Signal, next: ConsumerRef) -> Self {
        let largest = (cfg.send_batch_size as usize).max(cfg.send_batch_max_size as usize);
        Self::with_room(
            ctx,
            cfg,
            signal,
            next,
            ROOM_FACTOR * largest.max(ROOM_FLOOR),
        )
    }

    /// As [`BatchProcessor::new`] with an explicit bound on items held or in flight.
    pub fn with_room(
        ctx: &CreateContext,
        cfg: &BatchConfig,
        signal: Signal,
        next: ConsumerRef,
        room: usize,
    ) -> Self {
        // Permits are requested as u32; a larger room could never be taken whole anyway.
        let capacity = room.clamp(1, u32::MAX as usize);
        let id = ctx.id.to_string();
        let labels = [("processor", id.as_str())];
        let m = &ctx.metrics;
        let partitions: Arc<Mutex<HashSet<RequestContext>>> = Arc::default();
        let seen = partitions.clone();
        m.gauge_fn(
            "otelcol_processor_batch_metadata_cardinality",
            "Number of distinct metadata value combinations being processed",
            &labels,
            // Without metadata_keys everything shares one combination, as upstream reports.
            move || seen.lock().len().max(1) as f64,
        );
        let obs = Obs {
            send_size: m.histogram(
                "otelcol_processor_batch_batch_send_size",
                "Number of units in the batch",
                &labels,
                &SEND_SIZE_BOUNDS,
            ),
            size_trigger: m.counter(
                "otelcol_processor_batch_batch_size_trigger_send",
                "Number of times the batch was sent due to a size trigger",
                &labels,
            ),
            timeout_trigger: m.counter(
                "otelcol_processor_batch_timeout_trigger_send",
                "Number of times the batch was sent due to a timeout trigger",
                &labels,
            ),
        };
        let queued_downstream = next.answers_on_enqueue();
        if queued_downstream {
            next.adopt_batching(&cfg.queue_batching());
        }
        BatchProcessor {
            inner: Arc::new(Inner {
                signal,
                queued_downstream,
                send_batch_size: cfg.send_batch_size as usize,
                max_size: cfg.send_batch_max_size as usize,
                timeout: cfg.effective_timeout(),
                metadata_keys: cfg
                    .metadata_keys
                    .iter()
                    .map(|k| k.to_ascii_lowercase())
                    .collect(),
                partitions,
                cardinality_limit: cfg.metadata_cardinality_limit as usize,
                clamped_from: (cfg.effective_timeout() != Duration::from(cfg.timeout))
                    .then(|| cfg.timeout.into()),
                next,
                state: Mutex::new(State::default()),
                wake: Notify::new(),
                room: Arc::new(Semaphore::new(capacity)),
                capacity,
                tasks: ctx.tasks.clone(),
                obs,
                started: AtomicBool::new(false),
            }),
        }
    }

    /// Items waiting for the next flush (not counting flushes in flight).
    pub fn held_items(&self) -> usize {
        self.inner.state.lock().items
    }
}

#[async_trait]
impl Consumer for BatchProcessor {
    async fn consume(&self, batch: Batch) -> Result<(), ConsumeError> {
        let inner = &self.inner;
        if batch.signal() != inner.signal {
            return Err(ConsumeError::permanent(format!(
                "batch processor for {} received {}",
                inner.signal,
                batch.signal()
            )));
        }
        let batch = inner.partition(batch)?;
        let items = batch.item_count();
        if items == 0 || inner.queued_downstream {
            // Nothing to merge or count, or the queues behind merge: the sender is answered
            // once its data is queued.
            return inner.next.consume(batch).await;
        }
        let want = items.min(inner.capacity) as u32;
        let room = match inner.room.clone().acquire_many_owned(want).await {
            Ok(p) => p,
            // Closed by shutdown: nothing is held any more, so send straight through.
            Err(_) => return inner.next.consume(batch).await,
        };
        let (reply, outcome) = oneshot::channel();
        let passthrough = {
            let mut st = inner.state.lock();
            if st.closed {
                Some(batch)
            } else {
                if st.entries.is_empty() {
                    st.started_at = Some(Instant::now());
                    inner.wake.notify_one();
                }
                st.entries.push(Entry {
                    batch,
                    items,
                    reply,
                    room,
                });
                st.items += items;
                if st.items >= inner.send_batch_size || inner.timeout.is_zero() {
                    let entries = st.take();
                    // Spawned under the lock so that shutdown, which takes the lock first,
                    // always finds this flush among the tasks it waits for.
                    Inner::spawn_flush(inner, entries, Trigger::Size);
                }
                None
            }
        };
        if let Some(batch) = passthrough {
            return inner.next.consume(batch).await;
        }
        outcome.await.unwrap_or_else(|_| {
            Err(ConsumeError::retryable(
                "batch processor stopped before the data was sent",
            ))
        })
    }

    fn answers_on_enqueue(&self) -> bool {
        self.inner.queued_downstream
    }

    fn adopt_batching(&self, plan: &QueueBatchConfig) {
        if self.inner.queued_downstream {
            self.inner.next.adopt_batching(plan);
        }
    }
}

impl Inner {
    /// The batch with only its `metadata_keys` context, refused when it would open a value
    /// set beyond `metadata_cardinality_limit`.
    fn partition(&self, batch: Batch) -> Result<Batch, ConsumeError> {
        if self.metadata_keys.is_empty() {
            if batch.context().is_empty() {
                return Ok(batch);
            }
            return Ok(batch.with_context(RequestContext::default()));
        }
        let context = batch.context().subset(&self.metadata_keys);
        {
            let mut seen = self.partitions.lock();
            if !seen.contains(&context) {
                // Upstream counts the batchers it holds; 0 means no limit there too.
                if self.cardinality_limit > 0 && seen.len() >= self.cardinality_limit {
                    return Err(ConsumeError::permanent(
                        "too many batcher metadata-value combinations",
                    ));
                }
                seen.insert(context.clone());
            }
        }
        Ok(batch.with_context(context))
    }

    fn spawn_flush(this: &Arc<Inner>, entries: Vec<Entry>, trigger: Trigger) {
        if entries.is_empty() {
            return;
        }
        let me = this.clone();
        this.tasks
            .spawn(async move { me.flush(entries, trigger).await });
    }

    /// Merges `entries` into one batch and lists their senders in merge order.
    fn merge(&self, entries: Vec<Entry>) -> (Option<Batch>, VecDeque<Owner>) {
        // Requests are merged by concatenating their wire bytes: an export request is a
        // single repeated field, and protobuf defines concatenated messages as merged ones.
        // Received batches were validated on arrival and a batch a processor changed is
        // encoded once here (it would be encoded for the export anyway), so nothing is
        // decoded, re-encoded or scanned again on this path; a lone batch keeps its form.
        if entries.len() <= 1 {
            return match entries.into_iter().next() {
                Some(e) => {
                    let (batch, owner) = e.split();
                    (Some(batch), VecDeque::from([owner]))
                }
                None => (None, VecDeque::new()),
            };
        }
        let batches: Vec<Batch> = entries
            .iter()
            .map(|e| e.batch.clone().into_encoded())
            .collect();
        let merged = Batch::concat(self.signal, &batches);
        drop(batches);
        let owners = entries.into_iter().map(Owner::from).collect();
        (Some(merged), owners)
    }

    /// Sends `entries` per request context (distinct `metadata_keys` values are never
    /// merged), in the order each context first arrived.
    async fn flush(&self, entries: Vec<Entry>, trigger: Trigger) {
        let mut groups: Vec<(RequestContext, Vec<Entry>)> = Vec::new();
        for e in entries {
            match groups.iter_mut().find(|(c, _)| c == e.batch.context()) {
                Some((_, g)) => g.push(e),
                None => groups.push((e.batch.context().clone(), vec![e])),
            }
        }
        for (_, group) in groups {
            self.flush_one(group, trigger).await;
        }
    }

    /// Merges `entries` (of one request context), sends the result in parts of at most
    /// `max_size` items and answers every sender once all of its items have been sent.
    async fn flush_one(&self, entries: Vec<Entry>, trigger: Trigger) {
        let (merged, mut owners) = self.merge(entries);
        let Some(mut rest) = merged else {
            return;
        };
        loop {
            let split = if self.max_size > 0 {
                rest.split_front(self.max_size)
            } else {
                Ok(None)
            };
            let (part, last) = match split {
                Ok(Some(part)) => (part, false),
                Ok(None) => (
                    std::mem::replace(&mut rest, Batch::empty(self.signal)),
                    true,
                ),
                Err(e) => {
                    let e = ConsumeError::permanent(e.to_string());
                    for o in owners.drain(..) {
                        o.refuse(e.clone());
                    }
                    return;
                }
            };
            let n = part.item_count();
            self.obs.send_size.observe(n as f64);
            match trigger {
                Trigger::Size => self.obs.size_trigger.inc(),
                Trigger::Timeout => self.obs.timeout_trigger.inc(),
            }
            let result = self.next.consume(part).await;
            settle(&mut owners, n, &result);
            if last {
                break;
            }
        }
        // Only reached if item counts disagreed; every part has been sent, so these senders
        // get whatever was recorded for them.
        for o in owners {
            o.finish();
        }
    }

    /// Sends the pending batch when its oldest entry has waited `timeout`.
    async fn run_timer(self: Arc<Self>, stop: CancellationToken) {
        loop {
            let started_at = self.state.lock().started_at;
            match started_at {
                None => {
                    tokio::select! {
                        _ = self.wake.notified() => {}
                        _ = stop.cancelled() => break,
                    }
                }
                Some(t) => {
                    tokio::select! {
                        _ = tokio::time::sleep_until(t + self.timeout) => {
                            let mut st = self.state.lock();
                            // The batch timed may have been sent by size meanwhile, and a newer
                            // one started; then its own deadline applies on the next turn.
                            if st.started_at.is_some_and(|s| s + self.timeout <= Instant::now()) {
                                let entries = st.take();
                                Inner::spawn_flush(&self, entries, Trigger::Timeout);
                            }
                        }
                        _ = stop.cancelled() => break,
                    }
                }
            }
        }
        // Stopped without a shutdown (the service's tasks were cancelled): send what is held
        // rather than leave its senders waiting.
        let entries = self.state.lock().take();
        self.flush(entries, Trigger::Timeout).await;
    }
}

/// A sender waiting for the parts that carry its items.
struct Owner {
    reply: oneshot::Sender<Result<(), ConsumeError>>,
    /// Its items not yet sent.
    left: usize,
    error: Option<ConsumeError>,
    /// Released once the sender has its answer.
    _room: OwnedSemaphorePermit,
}

impl From<Entry> for Owner {
    fn from(e: Entry) -> Self {
        e.split().1
    }
}

impl Entry {
    fn split(self) -> (Batch, Owner) {
        let owner = Owner {
            reply: self.reply,
            left: self.items,
            error: None,
            _room: self.room,
        };
        (self.batch, owner)
    }
}

impl Owner {
    fn refuse(mut self, e: ConsumeError) {
        self.fail(e);
        self.finish();
    }

    fn fail(&mut self, e: ConsumeError) {
        self.error = match self.error.take() {
            None => Some(e),
            Some(prev) => ConsumeError::join(vec![prev, e]),
        };
    }

    fn finish(self) {
        // The sender may have gone away (its request was cancelled); its items were sent anyway.
        let _ = self.reply.send(match self.error {
            None => Ok(()),
            Some(e) => Err(e),
        });
    }
}

/// Attributes a sent part of `n` items to the senders at the front, in merge order.
fn settle(owners: &mut VecDeque<Owner>, mut n: usize, result: &Result<(), ConsumeError>) {
    while n > 0 {
        let Some(o) = owners.front_mut() else {
            break;
        };
        let take = n.min(o.left);
        o.left -= take;
        n -= take;
        if let Err(e) = result {
            o.fail(e.clone());
        }
        if o.left == 0
            && let Some(done) = owners.pop_front()
        {
            done.finish();
        }
    }
}

#[async_trait]
impl Lifecycle for BatchProcessor {
    async fn start(&self) -> Result<(), ComponentError> {
        let inner = &self.inner;
        if inner.started.swap(true, Ordering::SeqCst) {
            return Ok(());
        }
        if inner.queued_downstream {
            tracing::debug!(
                "batch: every exporter behind this processor has a sending queue; requests are handed on at once and the queues merge them"
            );
            return Ok(());
        }
        if let Some(configured) = inner.clamped_from {
            tracing::info!(
                timeout = ?configured,
                applied = ?inner.timeout,
                "batch: senders wait for their batch to be sent, so timeout is clamped to max_hold; set max_hold to change the cap"
            );
        }
        if !inner.timeout.is_zero() {
            let me = inner.clone();
            let stop = inner.tasks.token();
            inner.tasks.spawn(me.run_timer(stop));
        }
        Ok(())
    }

    /// Sends everything held and waits for every export in flight, so nothing accepted is
    /// left behind; the service bounds the wait with `service.shutdown_timeout`.
    async fn shutdown(&self) -> Result<(), ComponentError> {
        let inner = &self.inner;
        {
            let mut st = inner.state.lock();
            st.closed = true;
            let entries = st.take();
            Inner::spawn_flush(inner, entries, Trigger::Timeout);
        }
        // Senders still waiting for room now go straight downstream.
        inner.room.close();
        if inner.tasks.stop_by_deadline().await {
            Ok(())
        } else {
            Err(ComponentError::new(
                "batch: exports in flight did not finish",
            ))
        }
    }
}

impl Processor for BatchProcessor {}

#[cfg(test)]
mod tests;
