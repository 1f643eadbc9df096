//! The exporter chain of upstream's exporterhelper:
//! `sending_queue` → `retry_on_failure` → per-attempt `timeout` → send.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use parking_lot::Mutex;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;
use wasmcol_config::ComponentId;
use wasmcol_core::exporter::ExporterObs;
use wasmcol_core::{
    Batch, BuildError, ChainBuilder, ComponentError, ConsumeError, Consumer, CreateContext,
    DeliveryHealth, Exporter, ExporterParts, Extension, Lifecycle, Signal, Tasks,
};

use crate::queue::QueueObs;
use crate::queue::memory::MemoryQueue;
use crate::queue::persistent::PersistentQueue;
use crate::retry::{Delivery, Outcome};
use crate::storage::{FileStorage, queue_name};

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
                health,
            ));
            match &q.storage {
                None => Mode::Memory {
                    queue: Arc::new(MemoryQueue::new(
                        q.queue_size,
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
        Ok(Arc::new(ChainExporter {
            delivery,
            mode,
            consumers: q.num_consumers.max(1),
            tasks,
            stop_retry: CancellationToken::new(),
            started: Mutex::new(false),
        }))
    }
}

impl ChainExporter {
    fn spawn_memory_workers(&self, queue: &Arc<MemoryQueue>) {
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
                    queue.done(entry.size);
                }
            });
        }
    }

    fn spawn_persistent_workers(&self, queue: &Arc<PersistentQueue>) {
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
}
