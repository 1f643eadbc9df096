//! The processor that runs a plugin: an instance pool, per-call limits, the `on_error`
//! policy and the plugin metrics.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use parking_lot::Mutex;
use tokio::sync::Semaphore;
use wasmcol_core::{
    Batch, BuildError, ComponentError, ConsumeError, Consumer, ConsumerRef, Counter, CreateContext,
    Histogram, Lifecycle, Processor, Signal, Tasks,
};

use crate::config::OnError;
use crate::runtime::{CallError, Instance, Limits, Plugin, Processed, block_on};

const DURATION_BOUNDS: &[f64] = &[
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5,
];

/// How often stateful plugins get `tick`.
const TICK_EVERY: Duration = Duration::from_secs(1);

struct PluginMetrics {
    calls: Counter,
    duration: Histogram,
    trap: Counter,
    timeout: Counter,
    memory: Counter,
    error: Counter,
    dropped: Counter,
}

impl PluginMetrics {
    fn new(ctx: &CreateContext, id: &str) -> Self {
        let m = &ctx.metrics;
        let errors = |reason| {
            m.counter(
                "wasmcol_plugin_errors",
                "Plugin calls that failed, by reason (trap, timeout, memory, error).",
                &[("processor", id), ("reason", reason)],
            )
        };
        PluginMetrics {
            calls: m.counter(
                "wasmcol_plugin_calls",
                "Calls into WebAssembly processor plugins.",
                &[("processor", id)],
            ),
            duration: m.histogram(
                "wasmcol_plugin_duration_seconds",
                "Time spent in one plugin call.",
                &[("processor", id)],
                DURATION_BOUNDS,
            ),
            trap: errors("trap"),
            timeout: errors("timeout"),
            memory: errors("memory"),
            error: errors("error"),
            dropped: m.counter(
                "wasmcol_plugin_dropped_items",
                "Items discarded because a plugin call failed under on_error: drop.",
                &[("processor", id)],
            ),
        }
    }

    fn failed(&self, e: &CallError) {
        match e {
            CallError::Trap(_) => self.trap.inc(),
            CallError::Timeout(_) => self.timeout.inc(),
            CallError::Memory(_) => self.memory.inc(),
            CallError::Plugin { .. } => self.error.inc(),
        }
    }
}

/// Everything needed to build a plugin processor.
pub struct Spec {
    /// The loaded plugin.
    pub plugin: Arc<Plugin>,
    /// Its config as JSON.
    pub config_json: String,
    /// Per-call limits.
    pub limits: Limits,
    /// Failure policy.
    pub on_error: OnError,
    /// Prefix for the key paths of the plugin's config errors (`config.` for `wasm`).
    pub config_prefix: &'static str,
}

/// A processor backed by a plugin.
pub struct PluginProcessor {
    id: String,
    signal: Signal,
    next: ConsumerRef,
    plugin: Arc<Plugin>,
    config_json: String,
    limits: Limits,
    on_error: OnError,
    pool: Arc<Pool>,
    permits: Semaphore,
    stopped: AtomicBool,
    tasks: Tasks,
    metrics: PluginMetrics,
}

/// Instances per processor: one per core, so every pipeline worker can run the plugin at
/// once.
fn pool_size() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
        .clamp(1, 16)
}

impl PluginProcessor {
    /// Builds the processor: instantiates the plugin once and configures it, so config
    /// errors surface now (`wasmcol validate`). Nothing is started.
    pub fn build(
        ctx: &CreateContext,
        spec: Spec,
        signal: Signal,
        next: ConsumerRef,
    ) -> Result<Arc<PluginProcessor>, BuildError> {
        let info = &spec.plugin.info;
        if !info.signals.contains(&signal) {
            return Err(BuildError::new(format!(
                "plugin {:?} does not handle {signal} (it handles: {})",
                info.name,
                info.signals
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        let id = ctx.id.to_string();
        let plugin = spec.plugin.clone();
        let json = spec.config_json.clone();
        let limits = spec.limits.clone();
        let label = id.clone();
        let first = block_on(async move {
            let mut inst = plugin.instantiate(&limits, &label).await?;
            let configured = inst.configure(&json, signal).await?;
            Ok::<_, CallError>((inst, configured))
        })
        .map_err(|e| BuildError::new(e.to_string()))?
        .map_err(|e| BuildError::new(format!("cannot start the plugin: {e}")))?;
        let (inst, configured) = first;
        if let Err(errors) = configured {
            return Err(BuildError::from(
                errors
                    .into_iter()
                    .map(|e| {
                        if e.path.is_empty() {
                            let p = spec.config_prefix.trim_end_matches('.');
                            if p.is_empty() {
                                e.message
                            } else {
                                format!("{p}: {}", e.message)
                            }
                        } else {
                            format!("{}{}: {}", spec.config_prefix, e.path, e.message)
                        }
                    })
                    .collect::<Vec<String>>(),
            ));
        }
        Ok(Arc::new(PluginProcessor {
            metrics: PluginMetrics::new(ctx, &id),
            id,
            signal,
            next,
            plugin: spec.plugin,
            config_json: spec.config_json,
            limits: spec.limits,
            on_error: spec.on_error,
            pool: Arc::new(Pool {
                idle: Mutex::new(vec![inst]),
                size: pool_size(),
            }),
            permits: Semaphore::new(pool_size()),
            stopped: AtomicBool::new(false),
            tasks: ctx.tasks.child(),
        }))
    }

    async fn new_instance(&self) -> Result<Instance, CallError> {
        let mut inst = self.plugin.instantiate(&self.limits, &self.id).await?;
        match inst.configure(&self.config_json, self.signal).await? {
            Ok(()) => Ok(inst),
            // The same config was accepted when the processor was built.
            Err(errors) => Err(CallError::Plugin {
                permanent: true,
                message: format!(
                    "the plugin refused its config on a new instance: {}",
                    errors
                        .iter()
                        .map(|e| format!("{}: {}", e.path, e.message))
                        .collect::<Vec<_>>()
                        .join("; ")
                ),
            }),
        }
    }

    async fn call(&self, batch: Batch) -> Result<Processed, CallError> {
        let Ok(_permit) = self.permits.acquire().await else {
            return Err(CallError::Plugin {
                permanent: false,
                message: "the processor is shutting down".into(),
            });
        };
        let idle = self.pool.take();
        let mut inst = match idle {
            Some(i) => i,
            None => self.new_instance().await?,
        };
        let start = Instant::now();
        self.metrics.calls.inc();
        let result = inst.process(batch).await;
        self.metrics.duration.observe(start.elapsed().as_secs_f64());
        match &result {
            // A trapped instance is thrown away; the next call builds a fresh one.
            Err(e) if e.poisons() => drop(inst),
            _ => self.pool.put(inst),
        }
        result
    }

    async fn failed(
        &self,
        e: CallError,
        items: usize,
        original: Option<Batch>,
    ) -> Result<(), ConsumeError> {
        self.metrics.failed(&e);
        tracing::warn!(processor = %self.id, reason = e.reason(), error = %e, on_error = ?self.on_error, "plugin call failed");
        match self.on_error {
            OnError::Refuse => Err(match e {
                CallError::Plugin {
                    permanent: true,
                    message,
                } => ConsumeError::permanent(format!("processor {}: {message}", self.id)),
                other => ConsumeError::retryable(format!("processor {}: {other}", self.id)),
            }),
            OnError::Drop => {
                self.metrics.dropped.add(items as u64);
                Ok(())
            }
            OnError::Pass => match original {
                Some(b) => self.next.consume(b).await,
                None => Err(ConsumeError::retryable(format!(
                    "processor {}: {e}",
                    self.id
                ))),
            },
        }
    }
}

#[async_trait]
impl Consumer for PluginProcessor {
    async fn consume(&self, batch: Batch) -> Result<(), ConsumeError> {
        if self.stopped.load(Ordering::Acquire) {
            return Err(ConsumeError::ShuttingDown);
        }
        if batch.signal() != self.signal {
            return Err(ConsumeError::permanent(format!(
                "processor {} got {} in a {} pipeline",
                self.id,
                batch.signal(),
                self.signal
            )));
        }
        let items = batch.item_count();
        // Batches are copy-on-write: keeping the original costs a reference count.
        let original = (self.on_error == OnError::Pass).then(|| batch.clone());
        match self.call(batch).await {
            Ok(Processed::Forward(b)) if b.item_count() > 0 => self.next.consume(b).await,
            Ok(_) => Ok(()),
            Err(e) => self.failed(e, items, original).await,
        }
    }

    fn mutates_data(&self) -> bool {
        true
    }
}

#[async_trait]
impl Lifecycle for PluginProcessor {
    async fn start(&self) -> Result<(), ComponentError> {
        // Stateful plugins keep state per instance and get `tick(now)` on every idle one.
        let pool = self.pool.clone();
        let token = self.tasks.token();
        self.tasks.spawn(async move {
            let mut every = tokio::time::interval(TICK_EVERY);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            every.tick().await;
            loop {
                tokio::select! {
                    _ = token.cancelled() => break,
                    _ = every.tick() => pool.tick().await,
                }
            }
        });
        Ok(())
    }

    async fn shutdown(&self) -> Result<(), ComponentError> {
        self.stopped.store(true, Ordering::Release);
        self.tasks.stop(Duration::from_secs(5)).await;
        self.pool.idle.lock().clear();
        Ok(())
    }
}

impl Processor for PluginProcessor {}

/// Idle instances, shared with the tick task.
struct Pool {
    idle: Mutex<Vec<Instance>>,
    size: usize,
}

impl Pool {
    fn take(&self) -> Option<Instance> {
        self.idle.lock().pop()
    }

    fn put(&self, inst: Instance) {
        let mut idle = self.idle.lock();
        // Instances made while the tick task held others are surplus: let them go.
        if idle.len() < self.size {
            idle.push(inst);
        }
    }

    async fn tick(&self) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or_default();
        let taken: Vec<Instance> = std::mem::take(&mut *self.idle.lock());
        for mut inst in taken {
            match inst.tick(now).await {
                Ok(()) => self.put(inst),
                Err(e) => tracing::warn!(error = %e, "plugin tick failed; instance discarded"),
            }
        }
    }
}
