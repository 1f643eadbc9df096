//! The processor that runs a plugin: loading and configuring it in `prepare`, calls through
//! its instance pool, the `on_error` policy and the plugin metrics.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use wasmcol_core::{
    Batch, BuildError, ComponentError, ConsumeError, Consumer, ConsumerRef, Counter, CreateContext,
    Histogram, Lifecycle, PermanentError, Processor, Signal, Tasks,
};

use crate::cache::sha256_hex;
use crate::call::{Instance, Limits, PluginConfigError, Processed};
use crate::config::OnError;
use crate::error::CallError;
use crate::plugin::Plugin;
use crate::pool::{Pool, Pooled, TICK_EVERY};
use crate::runtime::Runtime;

mod held;
mod reload;

use held::{Held, Maker};
use reload::{Live, ReloadMetrics};

const DURATION_BOUNDS: &[f64] = &[
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5,
];

#[derive(Clone)]
struct PluginMetrics {
    calls: Counter,
    duration: Histogram,
    trap: Counter,
    timeout: Counter,
    memory: Counter,
    error: Counter,
    dropped: Counter,
    rejected: Counter,
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
            rejected: m.counter(
                "wasmcol_plugin_rejected_items",
                "Items refused as invalid data (INVALID_ARGUMENT / 400) because the plugin trapped \
                 or ran out of memory on them twice, the second time on a fresh instance.",
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

/// How a call into the plugin failed.
struct Failure {
    error: CallError,
    /// A fresh instance failed on the same batch too: the data is at fault.
    repeated: bool,
}

impl From<CallError> for Failure {
    fn from(error: CallError) -> Self {
        Failure {
            error,
            repeated: false,
        }
    }
}

/// Where a plugin's component comes from.
pub enum Source {
    /// Embedded in the binary.
    Bundled(&'static [u8]),
    /// A file (the `wasm` processor's `path`), with the SHA-256 it must have.
    File {
        /// The `.wasm` file.
        path: String,
        /// Expected SHA-256 (hex).
        sha256: Option<String>,
        /// How often the file is checked for a new version; `None`: only on SIGHUP.
        watch: Option<Duration>,
    },
}

/// Everything needed to build a plugin processor.
pub struct Spec {
    /// The runtime that loads and runs the plugin.
    pub runtime: Arc<Runtime>,
    /// The component.
    pub source: Source,
    /// Its config as JSON.
    pub config_json: String,
    /// Per-call limits.
    pub limits: Limits,
    /// Failure policy.
    pub on_error: OnError,
    /// Prefix for the key paths of the plugin's config errors (`config.` for `wasm`).
    pub config_prefix: &'static str,
}

/// What `prepare` (or a reload) made: the loaded plugin and the pool of its configured
/// instances. Calls hold an `Arc` of the one that was live when they began, so a reload never
/// pulls instances from under a call.
struct Prepared {
    plugin: Arc<Plugin>,
    pool: Arc<Pool>,
    /// The per-trace buffer, for a plugin that holds traces (WIT 0.2.0 `hold-traces`).
    held: Option<Arc<Held>>,
}

/// A processor backed by a plugin.
pub struct PluginProcessor {
    /// Itself, for the reload task (which must not keep the processor alive).
    me: Weak<PluginProcessor>,
    reloads: ReloadMetrics,
    id: String,
    signal: Signal,
    next: ConsumerRef,
    spec: Spec,
    /// Set once by `prepare`.
    prepared: tokio::sync::OnceCell<()>,
    /// The live plugin, swapped by a reload.
    live: Live,
    stopped: AtomicBool,
    tasks: Tasks,
    metrics: PluginMetrics,
    /// Where the plugin's own metrics go.
    registry: wasmcol_core::Metrics,
}

/// Instances per processor: one per core, so every pipeline worker can run the plugin at
/// once.
fn pool_size() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
        .clamp(1, 16)
}

/// Reads a plugin file on the blocking pool and checks its SHA-256.
async fn read_file(path: &str, sha256: Option<&str>) -> Result<Bytes, String> {
    let p = path.to_owned();
    let bytes = tokio::task::spawn_blocking(move || std::fs::read(p))
        .await
        .map_err(|e| format!("path: cannot read {path:?}: {e}"))?
        .map_err(|e| format!("path: cannot read {path:?}: {e}"))?;
    if let Some(want) = sha256 {
        let got = sha256_hex(&bytes);
        if !want.trim().eq_ignore_ascii_case(&got) {
            return Err(format!(
                "sha256: {want:?} does not match the file's SHA-256 {got}"
            ));
        }
    }
    Ok(Bytes::from(bytes))
}

/// The plugin's config errors, one per line, each with its key path.
fn config_errors(prefix: &str, errors: Vec<PluginConfigError>) -> String {
    errors
        .into_iter()
        .map(|e| {
            if e.path.is_empty() {
                let p = prefix.trim_end_matches('.');
                if p.is_empty() {
                    e.message
                } else {
                    format!("{p}: {}", e.message)
                }
            } else {
                format!("{prefix}{}: {}", e.path, e.message)
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

impl PluginProcessor {
    /// Builds the processor from its parsed config. Nothing is read, compiled or
    /// instantiated here: [`Lifecycle::prepare`] loads the plugin and configures it, off the
    /// async workers, so that config errors still surface before start (and in
    /// `wasmcol validate`).
    pub fn build(
        ctx: &CreateContext,
        spec: Spec,
        signal: Signal,
        next: ConsumerRef,
    ) -> Result<Arc<PluginProcessor>, BuildError> {
        let id = ctx.id.to_string();
        Ok(Arc::new_cyclic(|me| PluginProcessor {
            me: me.clone(),
            reloads: ReloadMetrics::new(ctx, &id),
            metrics: PluginMetrics::new(ctx, &id),
            registry: ctx.metrics.clone(),
            id,
            signal,
            next,
            spec,
            prepared: tokio::sync::OnceCell::new(),
            live: Live::default(),
            stopped: AtomicBool::new(false),
            tasks: ctx.tasks.child(),
        }))
    }

    /// Loads the plugin (file read and compile on the blocking pool).
    async fn load(&self) -> Result<Arc<Plugin>, String> {
        let spec = &self.spec;
        let fuel = spec.limits.fuel.is_some();
        match &spec.source {
            Source::Bundled(bytes) => spec
                .runtime
                .load(Bytes::from_static(bytes), fuel)
                .await
                .map_err(|e| format!("cannot load the bundled plugin: {e}")),
            Source::File { path, sha256, .. } => {
                let bytes = read_file(path, sha256.as_deref()).await?;
                spec.runtime
                    .load(bytes, fuel)
                    .await
                    .map_err(|e| format!("path: cannot load {path:?}: {e}"))
            }
        }
    }

    /// Loads the plugin, checks it handles the pipeline's signal, reserves its instances
    /// and configures the first one.
    async fn prepare_once(&self) -> Result<Prepared, String> {
        let plugin = self.load().await?;
        self.assemble(plugin).await
    }

    /// Checks that `plugin` handles the pipeline's signal, reserves its instances and
    /// configures the first one.
    async fn assemble(&self, plugin: Arc<Plugin>) -> Result<Prepared, String> {
        let info = &plugin.info;
        if !info.signals.contains(&self.signal) {
            return Err(format!(
                "plugin {:?} does not handle {} (it handles: {})",
                info.name,
                self.signal,
                info.signals
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        let want = pool_size();
        let reservation = self.spec.runtime.reserve(want)?;
        if reservation.granted() < want {
            tracing::warn!(processor = %self.id, granted = reservation.granted(), want, "the plugin instance budget is short; this processor runs fewer instances than cores");
        }
        let mut inst = plugin
            .instantiate(&self.spec.limits, &self.id)
            .await
            .map_err(|e| format!("cannot start the plugin: {e}"))?;
        inst.set_telemetry(self.registry.clone(), &self.id, &plugin.info.name);
        let settings = match inst.configure(&self.spec.config_json, self.signal).await {
            Err(e) => return Err(format!("cannot start the plugin: {e}")),
            Ok(Err(errors)) => return Err(config_errors(self.spec.config_prefix, errors)),
            Ok(Ok(settings)) => settings,
        };
        let Some(hold) = settings.hold else {
            return Ok(Prepared {
                plugin,
                pool: Arc::new(Pool::new(reservation, inst)),
                held: None,
            });
        };
        if self.signal != Signal::Traces {
            return Err(format!(
                "plugin {:?} holds traces and cannot serve a {} pipeline",
                plugin.info.name, self.signal
            ));
        }
        // One instance decides every trace, so the plugin's state (rate limits) is one.
        drop(reservation);
        let reservation = self.spec.runtime.reserve(1)?;
        let pool = Arc::new(Pool::new(reservation, inst));
        let held = Held::new(
            hold,
            pool.clone(),
            self.maker(&plugin),
            self.next.clone(),
            self.spec.on_error,
            self.metrics.clone(),
        );
        Ok(Prepared {
            plugin,
            pool,
            held: Some(Arc::new(held)),
        })
    }

    fn maker(&self, plugin: &Arc<Plugin>) -> Maker {
        Maker {
            plugin: plugin.clone(),
            limits: self.spec.limits.clone(),
            config_json: self.spec.config_json.clone(),
            id: self.id.clone(),
            registry: self.registry.clone(),
            signal: self.signal,
        }
    }

    async fn new_instance(&self, plugin: &Arc<Plugin>) -> Result<Instance, CallError> {
        self.maker(plugin).instance().await
    }

    /// Runs the batch through an instance of the pool. Under `on_error: refuse`, a trap or
    /// memory failure is tried once more on a fresh instance: the sender's answer depends on
    /// whether the data alone makes the plugin fail (permanent) or not (the fresh instance's
    /// result is used).
    async fn call(&self, batch: Batch) -> Result<Processed, Failure> {
        let Some(live) = self.live.get() else {
            return Err(CallError::Plugin {
                permanent: false,
                message: "the processor was not prepared".into(),
            }
            .into());
        };
        let (plugin, pool) = (&live.plugin, &live.pool);
        let Some(_permit) = pool.permit().await else {
            return Err(CallError::Plugin {
                permanent: false,
                message: "the processor is shutting down".into(),
            }
            .into());
        };
        let mut p = match pool.take() {
            Some(p) => p,
            None => Pooled::new(self.new_instance(plugin).await?),
        };
        // A tick that fails here leaves the instance poisoned like a failed batch would.
        p.catch_up().await?;
        // An encoded batch is kept for a reference count; a decoded one is copied, since the
        // plugin's view takes the message out of the batch.
        let replay = (self.spec.on_error == OnError::Refuse).then(|| batch.clone());
        let first = match self.attempt(pool, p, batch).await {
            Err(e) if e.may_be_the_data() => e,
            other => return other.map_err(Failure::from),
        };
        let Some(batch) = replay else {
            return Err(first.into());
        };
        self.metrics.failed(&first);
        tracing::warn!(processor = %self.id, reason = first.reason(), error = %first, "plugin call failed; trying the batch on a fresh instance");
        let fresh = Pooled::new(self.new_instance(plugin).await?);
        match self.attempt(pool, fresh, batch).await {
            Err(error) if error.may_be_the_data() => Err(Failure {
                error,
                repeated: true,
            }),
            other => other.map_err(Failure::from),
        }
    }

    /// One call on instance `p`, which goes back to the pool unless the call poisoned it.
    async fn attempt(
        &self,
        pool: &Pool,
        mut p: Pooled,
        batch: Batch,
    ) -> Result<Processed, CallError> {
        let start = Instant::now();
        self.metrics.calls.inc();
        let result = p.inst.process(batch).await;
        self.metrics.duration.observe(start.elapsed().as_secs_f64());
        match &result {
            // A trapped instance is thrown away; the next call builds a fresh one.
            Err(e) if e.poisons() => drop(p),
            _ => {
                p.used();
                pool.put(p)
            }
        }
        result
    }

    /// What the sender is told: the processor and the kind of failure; the details (trap
    /// backtrace, the plugin's stderr) are only logged.
    fn refusal(&self, f: Failure, items: usize) -> ConsumeError {
        match f.error {
            CallError::Plugin {
                permanent: true,
                message,
            } => PermanentError::Plugin {
                processor: self.id.clone(),
                message,
            }
            .into(),
            CallError::Plugin { message, .. } => {
                ConsumeError::retryable(format!("processor {}: {message}", self.id))
            }
            e if f.repeated => {
                self.metrics.rejected.add(items as u64);
                PermanentError::InvalidData {
                    processor: self.id.clone(),
                    reason: e.public_reason().into(),
                }
                .into()
            }
            e => ConsumeError::retryable(format!(
                "processor {}: plugin call failed ({}); details are in the collector log",
                self.id,
                e.public_reason()
            )),
        }
    }

    async fn failed(
        &self,
        f: Failure,
        items: usize,
        original: Option<Batch>,
    ) -> Result<(), ConsumeError> {
        self.metrics.failed(&f.error);
        tracing::warn!(processor = %self.id, reason = f.error.reason(), repeated = f.repeated, error = %f.error, on_error = ?self.spec.on_error, "plugin call failed");
        match self.spec.on_error {
            OnError::Refuse => Err(self.refusal(f, items)),
            OnError::Drop => {
                self.metrics.dropped.add(items as u64);
                Ok(())
            }
            OnError::Pass => match original {
                Some(b) => self.next.consume(b).await,
                None => Err(self.refusal(f, items)),
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
        if let Some(held) = self.live.get().and_then(|p| p.held.clone()) {
            return self.hold(&held, batch).await;
        }
        let items = batch.item_count();
        // Batches are copy-on-write: keeping the original costs a reference count.
        let original = (self.spec.on_error == OnError::Pass).then(|| batch.clone());
        match self.call(batch).await {
            Ok(Processed::Forward(b)) if b.item_count() > 0 => self.next.consume(b).await,
            Ok(_) => Ok(()),
            Err(e) => self.failed(e, items, original).await,
        }
    }

    fn mutates_data(&self) -> bool {
        true
    }

    // A plugin call finishes before the data moves on, so whether the sender is answered on
    // enqueue is decided by what follows it.
    fn answers_on_enqueue(&self) -> bool {
        // Held spans are answered once held, as upstream's tail sampling does.
        self.live.get().is_some_and(|p| p.held.is_some()) || self.next.answers_on_enqueue()
    }

    fn adopt_batching(&self, plan: &wasmcol_config::exporterhelper::QueueBatchConfig) {
        self.next.adopt_batching(plan);
    }
}

#[async_trait]
impl Lifecycle for PluginProcessor {
    async fn prepare(&self) -> Result<(), ComponentError> {
        self.prepared
            .get_or_try_init(|| async {
                let prepared = self.prepare_once().await?;
                self.live.set(Arc::new(prepared));
                Ok::<_, String>(())
            })
            .await
            .map(|_| ())
            .map_err(ComponentError::new)
    }

    async fn start(&self) -> Result<(), ComponentError> {
        let Some(prepared) = self.live.get() else {
            return Err(ComponentError::new("started before it was prepared"));
        };
        if let Some(held) = &prepared.held {
            self.start_deciding(held.clone());
        }
        let live = self.live.clone();
        let token = self.tasks.token();
        self.tasks.spawn(async move {
            let mut every = tokio::time::interval(TICK_EVERY);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            every.tick().await;
            loop {
                tokio::select! {
                    _ = token.cancelled() => break,
                    _ = every.tick() => {
                        // The pool live now: a reload's new instances get their ticks too.
                        if let Some(p) = live.get() {
                            p.pool.tick_used().await;
                        }
                    }
                }
            }
        });
        if prepared.held.is_none() {
            self.start_reloading();
        }
        Ok(())
    }

    async fn shutdown(&self) -> Result<(), ComponentError> {
        self.stopped.store(true, Ordering::Release);
        self.tasks.stop_by_deadline().await;
        if let Some(p) = self.live.get() {
            if let Some(held) = &p.held {
                // What is still held is decided on what arrived (or dropped, counted).
                self.decide(held, true).await;
            }
            p.pool.close();
        }
        Ok(())
    }
}

impl Processor for PluginProcessor {}
