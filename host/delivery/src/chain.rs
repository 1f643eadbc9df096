//! The exporter chain of upstream's exporterhelper:
//! `sending_queue` → `retry_on_failure` → per-attempt `timeout` → send.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use parking_lot::Mutex;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;
use wasmcol_config::ComponentId;
use wasmcol_config::exporterhelper::{QueueBatchConfig, Sizer};
use wasmcol_core::exporter::ExporterObs;
use wasmcol_core::{
    Batch, BuildError, ChainBuilder, ComponentError, ConsumeError, Consumer, CreateContext,
    DeliveryHealth, Exporter, ExporterParts, Extension, Lifecycle, Signal, Tasks,
};

use crate::queue::memory::MemoryQueue;
use crate::queue::persistent::PersistentQueue;
use crate::queue::{BatchPlan, QueueObs};
use crate::retry::{Delivery, Outcome};
use crate::storage::{FileStorage, queue_name};

/// Bound on the encoded bytes a memory queue holds (queued or in flight) when its `sizer`
/// counts requests or items: 32 MiB, several full merged exports of 8192 spans. A larger
/// bound buys nothing while the backend keeps up (the queue only fills when the collector
/// accepts faster than it exports) and costs its size in resident memory when it does not.
pub const MEMORY_QUEUE_MAX_BYTES: u64 = 32 << 20;

/// The byte bound of a memory queue: `queue_size` itself for the bytes sizer, else
/// [`MEMORY_QUEUE_MAX_BYTES`].
fn memory_queue_bytes(q: &wasmcol_config::exporterhelper::QueueConfig) -> u64 {
    match q.sizer {
        Sizer::Bytes => q.queue_size,
        Sizer::Items | Sizer::Requests => MEMORY_QUEUE_MAX_BYTES,
    }
}

/// The full delivery chain, registered with [`wasmcol_core::Registry::set_chain`].
pub struct DeliveryChain;

enum Mode {
    /// `sending_queue.enabled: false`: the caller waits for the whole retry sequence.
    Sync,
    Memory {
        queue: Arc<MemoryQueue>,
        wait_for_result: bool,
    },
    Persistent {
        queue: Arc<PersistentQueue>,
        storage: Arc<dyn Extension>,
        storage_id: ComponentId,
    },
}

/// An exporter wrapped in the chain.
pub struct ChainExporter {
    delivery: Arc<Delivery>,
    mode: Mode,
    signal: Signal,
    /// How queue consumers merge requests: `sending_queue.batch`, or settings adopted from
    /// `batch` processors in front (fixed once the exporter starts).
    plan: Mutex<Option<BatchPlan>>,
    /// `sending_queue.batch` is configured, so adopted settings are ignored.
    own_plan: bool,
    queue_sizer: Sizer,
    consumers: usize,
    tasks: Tasks,
    /// Cancelled at shutdown: retry waits end (upstream stops the retry sender first).
    stop_retry: CancellationToken,
    started: Mutex<bool>,
}

impl ChainBuilder for DeliveryChain {
    fn build(
        &self,
        ctx: &CreateContext,
        signal: Signal,
        parts: ExporterParts,
    ) -> Result<Arc<dyn Exporter>, BuildError> {
        let helper = parts.helper;
        let mut errors = helper.validate();
        let name = ctx.id.to_string();
        let health = Arc::new(DeliveryHealth::new(name.clone()));
        let delivery = Arc::new(Delivery {
            name: name.clone(),
            sender: parts.sender,
            timeout: helper.timeout.map(Duration::from),
            retry: helper.retry.clone(),
            obs: ExporterObs::new(&ctx.metrics, &name, signal),
            health: health.clone(),
        });
        // A child set: shutdown waits for this chain's workers only, not for tasks the
        // protocol sender may have spawned in the component's set.
        let tasks = ctx.tasks.child();
        let q = &helper.queue;
        let mode = if !q.enabled {
            Mode::Sync
        } else {
            let obs = Arc::new(QueueObs::new(
                &ctx.metrics,
                &name,
                signal,
                q.queue_size,
                q.storage.is_none().then(|| memory_queue_bytes(q)),
                health,
            ));
            match &q.storage {
                None => Mode::Memory {
                    queue: Arc::new(MemoryQueue::new(
                        q.queue_size,
                        memory_queue_bytes(q),
                        q.sizer,
                        q.block_on_overflow,
                        q.drop_oldest,
                        obs,
                    )),
                    wait_for_result: q.wait_for_result,
                },
                Some(sid) => {
                    let storage = match ctx.extensions.get(sid) {
                        Some(ext) if ext.as_any().downcast_ref::<FileStorage>().is_some() => {
                            Some(ext.clone())
                        }
                        Some(_) => {
                            errors.push(format!(
                                "sending_queue.storage: extension {:?} is not a storage extension",
                                sid.to_string()
                            ));
                            None
                        }
                        None => {
                            errors.push(format!(
                                "sending_queue.storage: extension {:?} is not available (it must be defined under `extensions`, listed in `service.extensions` and valid)",
                                sid.to_string()
                            ));
                            None
                        }
                    };
                    let quarantined = ctx.metrics.counter(
                        "wasmcol_exporter_queue_quarantined_records",
                        "Persistent queue records that failed their checks and were moved to quarantine.",
                        &[("exporter", &name), ("data_type", signal.as_str())],
                    );
                    let queue = Arc::new(PersistentQueue::new(
                        queue_name(
                            "exporter",
                            ctx.id.ty(),
                            ctx.id.name().unwrap_or(""),
                            signal.as_str(),
                        ),
                        signal,
                        q.queue_size,
                        q.sizer,
                        q.block_on_overflow,
                        q.drop_oldest,
                        obs,
                        quarantined,
                        tasks.clone(),
                    ));
                    match storage {
                        Some(storage) => Mode::Persistent {
                            queue,
                            storage,
                            storage_id: sid.clone(),
                        },
                        None => Mode::Sync,
                    }
                }
            }
        };
        if !errors.is_empty() {
            return Err(BuildError::from(errors));
        }
        let plan = q
            .batch
            .as_ref()
            .filter(|_| q.enabled)
            .map(|b| BatchPlan::new(b, q.sizer));
        Ok(Arc::new(ChainExporter {
            delivery,
            mode,
            signal,
            own_plan: plan.is_some(),
            plan: Mutex::new(plan),
            queue_sizer: q.sizer,
            consumers: q.num_consumers.max(1),
            tasks,
            stop_retry: CancellationToken::new(),
            started: Mutex::new(false),
        }))
    }
}

impl ChainExporter {
    fn spawn_memory_workers(&self, queue: &Arc<MemoryQueue>) {
        if let Some(plan) = *self.plan.lock() {
            return self.spawn_merging_memory_workers(queue, plan);
        }
        for _ in 0..self.consumers {
            let queue = queue.clone();
            let delivery = self.delivery.clone();
            let stop_retry = self.stop_retry.clone();
            let hard = self.tasks.token();
            self.tasks.spawn(async move {
                while let Some(entry) = queue.pop(&hard).await {
                    let items = entry.batch.item_count();
                    let result = match delivery.deliver(entry.batch, &stop_retry, false).await {
                        Outcome::Delivered => Ok(()),
                        Outcome::Failed(e) => Err(e),
                        Outcome::Interrupted(e) => {
                            // A memory queue cannot keep the request past shutdown.
                            delivery.obs.record(items, false);
                            tracing::error!(exporter = %delivery.name, error = %e, dropped_items = items, "Exporting failed. Dropping data.");
                            Err(e)
                        }
                    };
                    if let Some(tx) = entry.result {
                        let _ = tx.send(result);
                    }
                    queue.done(entry.size, entry.bytes);
                }
            });
        }
    }

    /// Workers that merge queued requests: one at a time gathers a group (the turn), then
    /// exports it while the next gathers, so up to `num_consumers` merged exports are in flight.
    fn spawn_merging_memory_workers(&self, queue: &Arc<MemoryQueue>, plan: BatchPlan) {
        let turn = Arc::new(tokio::sync::Mutex::new(()));
        for _ in 0..self.consumers {
            let (queue, turn) = (queue.clone(), turn.clone());
            let delivery = self.delivery.clone();
            let stop_retry = self.stop_retry.clone();
            let hard = self.tasks.token();
            let signal = self.signal;
            self.tasks.spawn(async move {
                loop {
                    let group = {
                        let _turn = turn.lock().await;
                        queue.pop_group(&hard, &plan).await
                    };
                    let Some(entries) = group else { break };
                    let batches: Vec<Batch> = entries.iter().map(|e| e.batch.clone()).collect();
                    let sent = send_merged(&delivery, signal, &batches, &plan, &stop_retry, false);
                    let result = match sent.await {
                        (Outcome::Delivered, _) => Ok(()),
                        (Outcome::Failed(e), _) => Err(e),
                        (Outcome::Interrupted(e), unsent) => {
                            delivery.obs.record(unsent, false);
                            tracing::error!(exporter = %delivery.name, error = %e, dropped_items = unsent, "Exporting failed. Dropping data.");
                            Err(e)
                        }
                    };
                    for e in entries {
                        if let Some(tx) = e.result {
                            let _ = tx.send(result.clone());
                        }
                        queue.done(e.size, e.bytes);
                    }
                }
            });
        }
    }

    /// As [`ChainExporter::spawn_merging_memory_workers`] for the persistent queue: the
    /// records of a merged export are deleted only once the backend accepted it (or it was
    /// given up and counted); an interrupted export leaves them all on disk.
    fn spawn_merging_persistent_workers(&self, queue: &Arc<PersistentQueue>, plan: BatchPlan) {
        let turn = Arc::new(tokio::sync::Mutex::new(()));
        for _ in 0..self.consumers {
            let (queue, turn) = (queue.clone(), turn.clone());
            let delivery = self.delivery.clone();
            let stop = self.stop_retry.clone();
            let signal = self.signal;
            self.tasks.spawn(async move {
                loop {
                    let group = {
                        let _turn = turn.lock().await;
                        queue.pop_group(&stop, &plan).await
                    };
                    let Some(group) = group else { break };
                    // Records that fail their checks are quarantined and finished by
                    // `read_group`; the rest come back with their data.
                    let (taken, batches): (Vec<_>, Vec<_>) =
                        queue.read_group(group).await.into_iter().unzip();
                    if batches.is_empty() {
                        continue;
                    }
                    match send_merged(&delivery, signal, &batches, &plan, &stop, true).await {
                        (Outcome::Delivered | Outcome::Failed(_), _) => {
                            for t in &taken {
                                queue.finish(t, true).await;
                            }
                        }
                        (Outcome::Interrupted(_), _) => {
                            for t in &taken {
                                queue.release(t);
                            }
                        }
                    }
                }
            });
        }
    }

    fn spawn_persistent_workers(&self, queue: &Arc<PersistentQueue>) {
        if let Some(plan) = *self.plan.lock() {
            return self.spawn_merging_persistent_workers(queue, plan);
        }
        for _ in 0..self.consumers {
            let queue = queue.clone();
            let delivery = self.delivery.clone();
            let stop = self.stop_retry.clone();
            self.tasks.spawn(async move {
                while let Some(mut taken) = queue.pop(&stop).await {
                    let Some(batch) = queue.read(&mut taken).await else {
                        continue;
                    };
                    match delivery.deliver(batch, &stop, true).await {
                        Outcome::Delivered | Outcome::Failed(_) => queue.finish(&taken, true).await,
                        // Shutdown: the record stays on disk and is sent after the restart.
                        Outcome::Interrupted(_) => queue.release(&taken),
                    }
                }
            });
        }
    }
}

#[async_trait]
impl Consumer for ChainExporter {
    async fn consume(&self, batch: Batch) -> Result<(), ConsumeError> {
        match &self.mode {
            Mode::Sync => {
                if self.stop_retry.is_cancelled() {
                    return Err(ConsumeError::ShuttingDown);
                }
                if batch.item_count() == 0 {
                    return Ok(());
                }
                let items = batch.item_count();
                // Retries send the same bytes: encode a changed batch once, not per attempt.
                let batch = if self.delivery.retry.enabled {
                    batch.into_encoded()
                } else {
                    batch
                };
                match self.delivery.deliver(batch, &self.stop_retry, false).await {
                    Outcome::Delivered => Ok(()),
                    Outcome::Failed(e) => Err(e),
                    Outcome::Interrupted(e) => {
                        self.delivery.obs.record(items, false);
                        Err(e)
                    }
                }
            }
            Mode::Memory {
                queue,
                wait_for_result,
            } => {
                if !*wait_for_result {
                    return queue.offer(batch, None).await;
                }
                let (tx, rx) = oneshot::channel();
                queue.offer(batch, Some(tx)).await?;
                rx.await.unwrap_or(Err(ConsumeError::ShuttingDown))
            }
            Mode::Persistent { queue, .. } => queue.offer(batch).await,
        }
    }

    fn answers_on_enqueue(&self) -> bool {
        match &self.mode {
            Mode::Sync => false,
            Mode::Memory {
                wait_for_result, ..
            } => !*wait_for_result,
            Mode::Persistent { .. } => true,
        }
    }

    fn adopt_batching(&self, batch: &QueueBatchConfig) {
        if self.own_plan || matches!(self.mode, Mode::Sync) {
            return;
        }
        let offered = BatchPlan::new(batch, self.queue_sizer);
        let mut plan = self.plan.lock();
        *plan = Some(match *plan {
            None => offered,
            Some(p) => p.combine(offered),
        });
    }
}

/// Merges `batches` per request context (requests that came with different metadata, e.g.
/// two tenants' `x-tenant`, are never merged: an exporter's `headers_setter` sends each
/// export with its context's values) and sends each merge (wire bytes concatenated, nothing
/// decoded), split into parts of at most `plan.max_size` when a single request was larger.
/// Returns how the exports ended (errors joined) and, when interrupted, how many items were
/// not sent and not yet counted.
async fn send_merged(
    delivery: &Delivery,
    signal: Signal,
    batches: &[Batch],
    plan: &BatchPlan,
    stop: &CancellationToken,
    abort_attempts: bool,
) -> (Outcome, usize) {
    let mut groups: Vec<Vec<Batch>> = Vec::new();
    for b in batches {
        match groups.iter_mut().find(|g| g[0].context() == b.context()) {
            Some(g) => g.push(b.clone()),
            None => groups.push(vec![b.clone()]),
        }
    }
    let mut failed: Vec<ConsumeError> = Vec::new();
    let mut left: usize = batches.iter().map(Batch::item_count).sum();
    for group in groups {
        let merged = Batch::concat(signal, &group);
        let parts = match split_to_plan(merged, plan) {
            Ok(parts) => parts,
            Err((whole, e)) => {
                // Cannot split (the bytes do not decode): send it whole rather than drop it.
                tracing::warn!(exporter = %delivery.name, error = %e, "sending queue: cannot split an oversized request; sending it whole");
                vec![whole]
            }
        };
        for part in parts {
            let n = part.item_count();
            match delivery.deliver(part, stop, abort_attempts).await {
                Outcome::Delivered => {}
                Outcome::Failed(e) => failed.push(e),
                Outcome::Interrupted(e) => return (Outcome::Interrupted(e), left),
            }
            left = left.saturating_sub(n);
        }
    }
    match ConsumeError::join(failed) {
        None => (Outcome::Delivered, 0),
        Some(e) => (Outcome::Failed(e), 0),
    }
}

/// Splits a merged request larger than `plan.max_size` into parts that fit (by items; for
/// the bytes sizer, by the items that many bytes hold on average).
fn split_to_plan(
    mut batch: Batch,
    plan: &BatchPlan,
) -> Result<Vec<Batch>, (Batch, wasmcol_core::pdata::DecodeError)> {
    let items = batch.item_count() as u64;
    let size = plan.measure(items, batch.encoded_len() as u64);
    if plan.max_size == 0 || size <= plan.max_size || items <= 1 {
        return Ok(vec![batch]);
    }
    let per_part = match plan.sizer {
        Sizer::Bytes => (items * plan.max_size / size.max(1)).max(1),
        Sizer::Items | Sizer::Requests => plan.max_size,
    };
    let per_part = usize::try_from(per_part).unwrap_or(usize::MAX);
    let original = batch.clone();
    let mut parts = Vec::new();
    loop {
        match batch.split_front(per_part) {
            Ok(Some(part)) => parts.push(part.into_encoded()),
            Ok(None) => {
                parts.push(batch.into_encoded());
                return Ok(parts);
            }
            Err(e) => return Err((original, e)),
        }
    }
}

#[async_trait]
impl Lifecycle for ChainExporter {
    async fn start(&self) -> Result<(), ComponentError> {
        {
            let mut started = self.started.lock();
            if *started {
                return Ok(());
            }
            *started = true;
        }
        self.delivery.sender.start().await?;
        match &self.mode {
            Mode::Sync => {}
            Mode::Memory { queue, .. } => self.spawn_memory_workers(queue),
            Mode::Persistent {
                queue,
                storage,
                storage_id,
            } => {
                let store = storage
                    .as_any()
                    .downcast_ref::<FileStorage>()
                    .and_then(FileStorage::store)
                    .ok_or_else(|| {
                        ComponentError::new(format!(
                            "sending_queue.storage: extension {:?} is not started",
                            storage_id.to_string()
                        ))
                    })?;
                let loaded = queue
                    .load(store)
                    .await
                    .map_err(|e| ComponentError::new(format!("persistent queue: {e}")))?;
                if loaded.quarantined > 0 {
                    tracing::error!(exporter = %self.delivery.name, quarantined = loaded.quarantined,
                        "persistent queue: corrupt records moved to quarantine");
                }
                self.spawn_persistent_workers(queue);
            }
        }
        Ok(())
    }

    async fn shutdown(&self) -> Result<(), ComponentError> {
        self.stop_retry.cancel();
        let drained = match &self.mode {
            Mode::Sync => self.tasks.wait_by_deadline().await,
            Mode::Memory { queue, .. } => {
                queue.close();
                let drained = self.tasks.wait_by_deadline().await;
                if !drained {
                    let lost = queue.take_all();
                    let items: usize = lost.iter().map(|e| e.batch.item_count()).sum();
                    self.delivery.obs.record(items, false);
                    tracing::error!(exporter = %self.delivery.name, dropped_items = items,
                        "Exporting failed. Dropping data. (sending queue not drained before the shutdown deadline)");
                }
                drained
            }
            Mode::Persistent { queue, .. } => {
                queue.close();
                self.tasks.wait_by_deadline().await
            }
        };
        let sender = self.delivery.sender.shutdown().await;
        if !drained {
            return Err(ComponentError::new(
                "sending queue workers did not stop in time",
            ));
        }
        sender
    }
}

impl Exporter for ChainExporter {
    fn health(&self) -> Option<Arc<DeliveryHealth>> {
        Some(self.delivery.health.clone())
    }

    fn pending(&self) -> Option<u64> {
        match &self.mode {
            Mode::Sync => None,
            Mode::Memory { queue, .. } => Some(queue.size()),
            Mode::Persistent { queue, .. } => Some(queue.size()),
        }
    }
}
