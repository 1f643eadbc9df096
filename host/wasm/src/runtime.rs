//! The plugin runtime: one engine per process (epoch interruption, pooling allocator,
//! per-store memory caps), compiled components cached on disk and in memory, `InstancePre`
//! for cheap instantiation, and calls with a deadline.
//!
//! Calls are asynchronous (`call_async`) and yield to the executor at every epoch tick (1 ms),
//! so a slow plugin never pins a tokio worker and a deadline is checked at each tick. The
//! sync alternative needs a thread hop per batch (`spawn_blocking`) to stay off the async
//! workers; the async path adds about a microsecond per call instead (wit-spike).

use std::collections::HashMap;
use std::future::Future;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use sha2::{Digest, Sha256};
use wasmcol_pdata::{Batch, Signal};
use wasmtime::component::{Component, HasSelf, Linker, Resource, ResourceTable};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store, Trap};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::bindings::wasmcol::plugin::types as wt;
use crate::bindings::{self, Processor as PluginBindings, ProcessorPre};
use crate::host::{HostBatch, LogRes, MetricRes, TraceRes};

/// Largest linear memory a plugin may be given, whatever its `memory_mib` says.
pub const MAX_MEMORY_MIB: u64 = 1024;
/// Epoch tick: the granularity of deadlines and of yields to the executor.
const TICK: Duration = Duration::from_millis(1);

/// Why a plugin could not be loaded or configured.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The bytes are not a component this host can run.
    #[error("not a valid plugin component: {0}")]
    Invalid(String),
    /// The component does not export the `wasmcol:plugin/processor` world.
    #[error("the component does not implement wasmcol:plugin/processor@0.1.0: {0}")]
    Contract(String),
    /// The plugin failed while describing itself or being configured.
    #[error("{0}")]
    Call(#[from] CallError),
    /// Engine or cache trouble.
    #[error("{0}")]
    Runtime(String),
}

/// Why a call into a plugin failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CallError {
    /// The plugin trapped (panic, bad memory access, host-call misuse).
    #[error("plugin trapped: {0}")]
    Trap(String),
    /// The call ran past its deadline (or out of fuel).
    #[error("plugin call exceeded its time limit of {0:?}")]
    Timeout(Duration),
    /// The plugin tried to grow its memory past the cap.
    #[error("plugin exceeded its memory limit of {0} MiB")]
    Memory(u64),
    /// The plugin returned an error.
    #[error("plugin returned an error: {message}")]
    Plugin {
        /// Whether the plugin said retrying cannot help.
        permanent: bool,
        /// The plugin's message.
        message: String,
    },
}

impl CallError {
    /// The `reason` label of `wasmcol_plugin_errors`.
    pub fn reason(&self) -> &'static str {
        match self {
            CallError::Trap(_) => "trap",
            CallError::Timeout(_) => "timeout",
            CallError::Memory(_) => "memory",
            CallError::Plugin { .. } => "error",
        }
    }

    /// Whether the instance must be thrown away (any trap leaves it unusable).
    pub fn poisons(&self) -> bool {
        !matches!(self, CallError::Plugin { .. })
    }
}

/// Per-call limits.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Wall-clock deadline per call.
    pub timeout: Duration,
    /// Linear memory cap, MiB.
    pub memory_mib: u64,
    /// Fuel per call, when the plugin runs on the fuel-metering engine.
    pub fuel: Option<u64>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            timeout: Duration::from_secs(1),
            memory_mib: 128,
            fuel: None,
        }
    }
}

/// What a store carries.
pub struct StoreState {
    wasi: WasiCtx,
    pub(crate) table: ResourceTable,
    limiter: MemoryCap,
    deadline: Instant,
    timed_out: bool,
    label: Arc<str>,
    /// What the plugin wrote to stderr (a panic message, typically), for trap reports.
    stderr: wasmtime_wasi::p2::pipe::MemoryOutputPipe,
}

impl WasiView for StoreState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl bindings::ProcessorImports for StoreState {
    fn log(&mut self, level: wt::LogLevel, message: String) -> wasmtime::Result<()> {
        let plugin = &*self.label;
        match level {
            wt::LogLevel::Trace => tracing::trace!(plugin, "{message}"),
            wt::LogLevel::Debug => tracing::debug!(plugin, "{message}"),
            wt::LogLevel::Info => tracing::info!(plugin, "{message}"),
            wt::LogLevel::Warn => tracing::warn!(plugin, "{message}"),
            wt::LogLevel::Error => tracing::error!(plugin, "{message}"),
        }
        Ok(())
    }
}

struct MemoryCap {
    max: usize,
    exceeded: bool,
}

impl wasmtime::ResourceLimiter for MemoryCap {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.max {
            self.exceeded = true;
            // An error traps at once: a plugin that cannot grow would only abort later with
            // a less useful message.
            return Err(wasmtime::Error::msg("memory limit exceeded"));
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 1 << 20)
    }
}

/// The wall clock plugins see: always the epoch. DESIGN §3.1 grants no clock beyond monotonic
/// time, so time-based logic in a plugin goes through `tick(now)`.
struct FrozenClock;

impl wasmtime_wasi::HostWallClock for FrozenClock {
    fn resolution(&self) -> Duration {
        Duration::from_secs(1)
    }
    fn now(&self) -> Duration {
        Duration::ZERO
    }
}

/// Advances every engine's epoch while at least one call is in flight; parks otherwise.
struct Ticker {
    engines: Mutex<Vec<Engine>>,
    active: AtomicUsize,
    thread: OnceLock<std::thread::Thread>,
}

static TICKER: OnceLock<Arc<Ticker>> = OnceLock::new();

impl Ticker {
    fn get() -> &'static Arc<Ticker> {
        TICKER.get_or_init(|| {
            let t = Arc::new(Ticker {
                engines: Mutex::new(Vec::new()),
                active: AtomicUsize::new(0),
                thread: OnceLock::new(),
            });
            let ticker = t.clone();
            let spawned = std::thread::Builder::new()
                .name("wasmcol-epoch".into())
                .spawn(move || {
                    loop {
                        if ticker.active.load(Ordering::Acquire) == 0 {
                            std::thread::park_timeout(Duration::from_secs(1));
                            continue;
                        }
                        std::thread::sleep(TICK);
                        for e in ticker.engines.lock().iter() {
                            e.increment_epoch();
                        }
                    }
                });
            match spawned {
                Ok(handle) => {
                    let _ = t.thread.set(handle.thread().clone());
                }
                Err(e) => tracing::error!(error = %e, "cannot start the plugin epoch thread; plugin deadlines will not be enforced"),
            }
            t
        })
    }

    fn register(engine: &Engine) {
        Ticker::get().engines.lock().push(engine.clone());
    }

    fn enter() -> TickGuard {
        let t = Ticker::get();
        if t.active.fetch_add(1, Ordering::AcqRel) == 0
            && let Some(th) = t.thread.get()
        {
            th.unpark();
        }
        TickGuard
    }
}

struct TickGuard;

impl Drop for TickGuard {
    fn drop(&mut self) {
        Ticker::get().active.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Options of a runtime.
#[derive(Clone, Debug, Default)]
pub struct RuntimeOptions {
    /// Where compiled components are cached; `None` disables the disk cache.
    pub cache_dir: Option<PathBuf>,
}

impl RuntimeOptions {
    /// `$WASMCOL_CACHE_DIR` (`off` disables), else `$XDG_CACHE_HOME/wasmcol`, else
    /// `$HOME/.cache/wasmcol`.
    pub fn from_env() -> Self {
        let dir = match std::env::var_os("WASMCOL_CACHE_DIR") {
            Some(v) if v == "off" || v.is_empty() => None,
            Some(v) => Some(PathBuf::from(v)),
            None => std::env::var_os("XDG_CACHE_HOME")
                .map(|d| PathBuf::from(d).join("wasmcol"))
                .or_else(|| {
                    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/wasmcol"))
                }),
        };
        RuntimeOptions { cache_dir: dir }
    }
}

/// Compiles and caches plugins. One per process is enough ([`Runtime::global`]).
pub struct Runtime {
    engine: Engine,
    fuel_engine: OnceLock<Result<Engine, String>>,
    linker: Linker<StoreState>,
    fuel_linker: OnceLock<Linker<StoreState>>,
    cache_dir: Option<PathBuf>,
    loaded: Mutex<HashMap<(String, bool), Arc<Plugin>>>,
    pooling: bool,
}

fn engine_config(fuel: bool, pooling: bool) -> Config {
    let mut c = Config::new();
    c.epoch_interruption(true);
    c.consume_fuel(fuel);
    // A synchronous-ABI host: the component-model async machinery costs ~0.5 µs per call.
    c.concurrency_support(false);
    if pooling {
        // Room for 256 live instances (a pipeline needs one per core per plugin); each
        // memory slot is virtual address space until used.
        let mut p = PoolingAllocationConfig::default();
        p.total_component_instances(256)
            .total_core_instances(2048)
            .total_memories(256)
            .total_tables(512)
            .total_stacks(256)
            .max_memory_size((MAX_MEMORY_MIB as usize) << 20);
        c.allocation_strategy(InstanceAllocationStrategy::Pooling(p));
    }
    c
}

fn linker(engine: &Engine) -> Result<Linker<StoreState>, LoadError> {
    let mut l = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut l)
        .map_err(|e| LoadError::Runtime(e.to_string()))?;
    PluginBindings::add_to_linker::<StoreState, HasSelf<StoreState>>(&mut l, |s| s)
        .map_err(|e| LoadError::Runtime(e.to_string()))?;
    Ok(l)
}

/// Feeds `Hash` output into SHA-256 so engine settings give a stable cache key.
struct ShaHasher(Sha256);

impl Hasher for ShaHasher {
    fn finish(&self) -> u64 {
        0
    }
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The SHA-256 of `bytes`, lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

static GLOBAL: OnceLock<Result<Runtime, String>> = OnceLock::new();

impl Runtime {
    /// A runtime with `options`. Tries the pooling allocator and falls back to on-demand
    /// allocation where the address space for the pool cannot be reserved.
    pub fn new(options: RuntimeOptions) -> Result<Runtime, LoadError> {
        let (engine, pooling) = match Engine::new(&engine_config(false, true)) {
            Ok(e) => (e, true),
            Err(e) => {
                tracing::warn!(error = %e, "pooling allocator unavailable; using on-demand instance allocation");
                (
                    Engine::new(&engine_config(false, false))
                        .map_err(|e| LoadError::Runtime(e.to_string()))?,
                    false,
                )
            }
        };
        Ticker::register(&engine);
        let linker = linker(&engine)?;
        Ok(Runtime {
            engine,
            fuel_engine: OnceLock::new(),
            linker,
            fuel_linker: OnceLock::new(),
            cache_dir: options.cache_dir,
            loaded: Mutex::new(HashMap::new()),
            pooling,
        })
    }

    /// Sets the process-wide runtime's options; does nothing when it already exists (the
    /// first caller wins). Tests use it to keep their compile cache in a temp dir.
    pub fn init_global(options: RuntimeOptions) -> Result<&'static Runtime, LoadError> {
        GLOBAL
            .get_or_init(|| Runtime::new(options).map_err(|e| e.to_string()))
            .as_ref()
            .map_err(|e| LoadError::Runtime(e.clone()))
    }

    /// The process-wide runtime (options from the environment unless
    /// [`Runtime::init_global`] came first).
    pub fn global() -> Result<&'static Runtime, LoadError> {
        GLOBAL
            .get_or_init(|| Runtime::new(RuntimeOptions::from_env()).map_err(|e| e.to_string()))
            .as_ref()
            .map_err(|e| LoadError::Runtime(e.clone()))
    }

    /// Whether instances come from the pooling allocator.
    pub fn pooling(&self) -> bool {
        self.pooling
    }

    fn engine_for(&self, fuel: bool) -> Result<(&Engine, &Linker<StoreState>), LoadError> {
        if !fuel {
            return Ok((&self.engine, &self.linker));
        }
        let engine = self
            .fuel_engine
            .get_or_init(|| {
                let e =
                    Engine::new(&engine_config(true, self.pooling)).map_err(|e| e.to_string())?;
                Ticker::register(&e);
                Ok(e)
            })
            .as_ref()
            .map_err(|e| LoadError::Runtime(e.clone()))?;
        let linker = match self.fuel_linker.get() {
            Some(l) => l,
            None => {
                let l = linker(engine)?;
                self.fuel_linker.get_or_init(|| l)
            }
        };
        Ok((engine, linker))
    }

    /// The cache file for `sha` under this engine's settings and wasmtime version.
    fn cache_path(&self, engine: &Engine, sha: &str) -> Option<PathBuf> {
        let dir = self.cache_dir.as_ref()?;
        let mut h = ShaHasher(Sha256::new());
        engine.precompile_compatibility_hash().hash(&mut h);
        let settings = hex(&h.0.finalize());
        Some(dir.join(format!("{sha}-{}.cwasm", &settings[..16])))
    }

    fn compile(&self, engine: &Engine, bytes: &[u8], sha: &str) -> Result<Component, LoadError> {
        let path = self.cache_path(engine, sha);
        if let Some(p) = &path
            && p.exists()
        {
            // SAFETY: the file was written by `Component::serialize` of this host (the name
            // carries the content hash and the engine's compatibility hash, and the cache
            // directory belongs to the collector); wasmtime also checks the header and the
            // engine settings before using it.
            #[allow(unsafe_code)]
            let loaded = unsafe { Component::deserialize_file(engine, p) };
            match loaded {
                Ok(c) => return Ok(c),
                Err(e) => {
                    tracing::warn!(path = %p.display(), error = %e, "ignoring unusable cached plugin artifact")
                }
            }
        }
        let component =
            Component::new(engine, bytes).map_err(|e| LoadError::Invalid(format!("{e:#}")))?;
        if let Some(p) = &path
            && let Err(e) = write_atomically(p, &component)
        {
            tracing::warn!(path = %p.display(), error = %e, "cannot cache compiled plugin");
        }
        Ok(component)
    }

    /// Compiles (or loads from cache) a plugin and asks it to describe itself. Blocking:
    /// call it from a blocking context (factories, `spawn_blocking`, the CLI).
    pub fn load(&self, bytes: &[u8], fuel: bool) -> Result<Arc<Plugin>, LoadError> {
        let sha = sha256_hex(bytes);
        if let Some(p) = self.loaded.lock().get(&(sha.clone(), fuel)) {
            return Ok(p.clone());
        }
        let (engine, linker) = self.engine_for(fuel)?;
        let component = self.compile(engine, bytes, &sha)?;
        let pre = linker
            .instantiate_pre(&component)
            .map_err(|e| LoadError::Contract(format!("{e:#}")))?;
        let pre = ProcessorPre::new(pre).map_err(|e| LoadError::Contract(format!("{e:#}")))?;
        let mut plugin = Plugin {
            pre,
            engine: engine.clone(),
            fuel,
            sha256: sha.clone(),
            size: bytes.len(),
            info: PluginInfo::default(),
        };
        plugin.info = block_on(async {
            let mut inst = plugin.instantiate(&Limits::default(), "loader").await?;
            inst.info().await
        })??;
        let plugin = Arc::new(plugin);
        self.loaded.lock().insert((sha, fuel), plugin.clone());
        Ok(plugin)
    }
}

fn write_atomically(path: &Path, component: &Component) -> Result<(), String> {
    let bytes = component.serialize().map_err(|e| e.to_string())?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    }
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, bytes).map_err(|e| e.to_string())?;
    std::fs::rename(&tmp, path).map_err(|e| e.to_string())
}

/// Runs a future to completion from synchronous code (component builders, the CLI). Inside
/// a multi-threaded tokio runtime the worker is handed over with `block_in_place`; elsewhere
/// the future runs on a scoped thread with its own small runtime, so this works from any
/// context.
pub fn block_on<F>(fut: F) -> Result<F::Output, LoadError>
where
    F: Future + Send,
    F::Output: Send,
{
    if let Ok(h) = tokio::runtime::Handle::try_current()
        && h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread
    {
        return Ok(tokio::task::block_in_place(|| h.block_on(fut)));
    }
    std::thread::scope(|s| {
        let worker = s.spawn(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map(|rt| rt.block_on(fut))
        });
        match worker.join() {
            Ok(r) => r.map_err(|e| {
                LoadError::Runtime(format!("cannot start a runtime for a plugin call: {e}"))
            }),
            Err(panic) => std::panic::resume_unwind(panic),
        }
    })
}

/// What a plugin says about itself.
#[derive(Clone, Debug, Default)]
pub struct PluginInfo {
    /// Type name.
    pub name: String,
    /// Version.
    pub version: String,
    /// Signals handled.
    pub signals: Vec<Signal>,
    /// Config description.
    pub config_schema: String,
}

/// A loaded plugin: compiled and pre-linked, ready to instantiate.
pub struct Plugin {
    pre: ProcessorPre<StoreState>,
    engine: Engine,
    /// Compiled for the fuel-metering engine: every store then needs fuel.
    fuel: bool,
    /// SHA-256 of the component bytes.
    pub sha256: String,
    /// Size of the component in bytes.
    pub size: usize,
    /// What the plugin reported from `info`.
    pub info: PluginInfo,
}

/// A config problem reported by a plugin.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PluginConfigError {
    /// Key path inside the plugin's config.
    pub path: String,
    /// Message.
    pub message: String,
}

/// What a successful `process` call produced.
pub enum Processed {
    /// Forward this batch.
    Forward(Batch),
    /// The plugin dropped the whole batch.
    Drop,
}

fn wit_signal(s: Signal) -> wt::Signal {
    match s {
        Signal::Traces => wt::Signal::Traces,
        Signal::Metrics => wt::Signal::Metrics,
        Signal::Logs => wt::Signal::Logs,
    }
}

impl Plugin {
    /// A fresh instance with `limits` (about 15 µs with the pooling allocator).
    pub async fn instantiate(&self, limits: &Limits, label: &str) -> Result<Instance, CallError> {
        let memory_mib = limits.memory_mib.min(MAX_MEMORY_MIB);
        let stderr = wasmtime_wasi::p2::pipe::MemoryOutputPipe::new(64 << 10);
        let mut wasi = WasiCtx::builder();
        wasi.wall_clock(FrozenClock)
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .stderr(stderr.clone());
        let state = StoreState {
            wasi: wasi.build(),
            table: ResourceTable::new(),
            limiter: MemoryCap {
                max: (memory_mib as usize) << 20,
                exceeded: false,
            },
            deadline: Instant::now(),
            timed_out: false,
            label: Arc::from(label),
            stderr,
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limiter);
        store.epoch_deadline_callback(|mut ctx| {
            if Instant::now() >= ctx.data().deadline {
                ctx.data_mut().timed_out = true;
                return Err(Trap::Interrupt.into());
            }
            Ok(wasmtime::UpdateDeadline::Yield(1))
        });
        let mut inst = Instance {
            store,
            bindings: None,
            limits: Limits {
                memory_mib,
                // Stores of a fuel-metering engine start empty; calls without a budget get
                // an unlimited one.
                fuel: if self.fuel {
                    Some(limits.fuel.unwrap_or(u64::MAX))
                } else {
                    None
                },
                ..limits.clone()
            },
        };
        let pre = self.pre.clone();
        let bindings = inst
            .guarded(|store| Box::pin(async move { pre.instantiate_async(store).await }))
            .await?;
        inst.bindings = Some(Arc::new(bindings));
        Ok(inst)
    }
}

/// One plugin instance with its store. Not shared: a processor keeps a pool of them.
pub struct Instance {
    store: Store<StoreState>,
    bindings: Option<Arc<PluginBindings>>,
    limits: Limits,
}

type CallFuture<'a, T> = std::pin::Pin<Box<dyn Future<Output = wasmtime::Result<T>> + Send + 'a>>;

impl Instance {
    /// Runs `f` under the deadline (and fuel) and classifies failures.
    async fn guarded<T>(
        &mut self,
        f: impl for<'a> FnOnce(&'a mut Store<StoreState>) -> CallFuture<'a, T>,
    ) -> Result<T, CallError> {
        let _tick = Ticker::enter();
        let data = self.store.data_mut();
        data.deadline = Instant::now() + self.limits.timeout;
        data.timed_out = false;
        self.store.set_epoch_deadline(1);
        if let Some(fuel) = self.limits.fuel {
            let _ = self.store.set_fuel(fuel);
        }
        let result = f(&mut self.store).await;
        result.map_err(|e| self.classify(e))
    }

    fn classify(&self, e: wasmtime::Error) -> CallError {
        let data = self.store.data();
        if data.timed_out {
            return CallError::Timeout(self.limits.timeout);
        }
        if data.limiter.exceeded {
            return CallError::Memory(self.limits.memory_mib);
        }
        if let Some(Trap::OutOfFuel) = e.downcast_ref::<Trap>() {
            return CallError::Timeout(self.limits.timeout);
        }
        let out = data.stderr.contents();
        let tail = String::from_utf8_lossy(&out[out.len().saturating_sub(400)..]);
        let tail = tail.trim();
        if tail.is_empty() {
            CallError::Trap(format!("{e:#}"))
        } else {
            CallError::Trap(format!("{e:#} (plugin stderr: {tail})"))
        }
    }

    fn bindings(&self) -> Result<Arc<PluginBindings>, CallError> {
        self.bindings
            .clone()
            .ok_or_else(|| CallError::Trap("instance is not initialised".into()))
    }

    /// Calls `info`.
    pub async fn info(&mut self) -> Result<PluginInfo, CallError> {
        let b = self.bindings()?;
        let info = self
            .guarded(|s| Box::pin(async move { b.call_info(s).await }))
            .await?;
        Ok(PluginInfo {
            name: info.name,
            version: info.version,
            signals: info
                .signals
                .into_iter()
                .map(|s| match s {
                    wt::Signal::Traces => Signal::Traces,
                    wt::Signal::Metrics => Signal::Metrics,
                    wt::Signal::Logs => Signal::Logs,
                })
                .collect(),
            config_schema: info.config_schema,
        })
    }

    /// Calls `configure`.
    pub async fn configure(
        &mut self,
        config_json: &str,
        signal: Signal,
    ) -> Result<Result<(), Vec<PluginConfigError>>, CallError> {
        let b = self.bindings()?;
        let json = config_json.to_owned();
        let r = self
            .guarded(|s| {
                Box::pin(async move { b.call_configure(s, &json, wit_signal(signal)).await })
            })
            .await?;
        Ok(r.map_err(|errors| {
            errors
                .into_iter()
                .map(|e| PluginConfigError {
                    path: e.path,
                    message: e.message,
                })
                .collect()
        }))
    }

    /// Calls `tick`.
    pub async fn tick(&mut self, now_unix_nano: u64) -> Result<(), CallError> {
        let b = self.bindings()?;
        self.guarded(|s| Box::pin(async move { b.call_tick(s, now_unix_nano).await }))
            .await
    }

    /// Processes one batch. A batch the plugin did not change is forwarded as it came (an
    /// encoded batch keeps its bytes; nothing is re-encoded).
    pub async fn process(&mut self, batch: Batch) -> Result<Processed, CallError> {
        match batch {
            Batch::Traces(p) => {
                let original = p.is_encoded().then(|| p.clone());
                let hb = HostBatch::new(p).map_err(|e| CallError::Trap(e.to_string()))?;
                let (outcome, hb) = self
                    .run(hb, |b, s, r| {
                        Box::pin(async move { b.call_process_traces(s, r).await })
                    })
                    .await?;
                finish(outcome, hb, original, Batch::Traces)
            }
            Batch::Metrics(p) => {
                let original = p.is_encoded().then(|| p.clone());
                let hb = HostBatch::new(p).map_err(|e| CallError::Trap(e.to_string()))?;
                let (outcome, hb) = self
                    .run(hb, |b, s, r| {
                        Box::pin(async move { b.call_process_metrics(s, r).await })
                    })
                    .await?;
                finish(outcome, hb, original, Batch::Metrics)
            }
            Batch::Logs(p) => {
                let original = p.is_encoded().then(|| p.clone());
                let hb = HostBatch::new(p).map_err(|e| CallError::Trap(e.to_string()))?;
                let (outcome, hb) = self
                    .run(hb, |b, s, r| {
                        Box::pin(async move { b.call_process_logs(s, r).await })
                    })
                    .await?;
                finish(outcome, hb, original, Batch::Logs)
            }
        }
    }

    /// Lends `hb` for one call of `call` and takes it back.
    async fn run<K>(
        &mut self,
        hb: HostBatch<K>,
        call: impl for<'a> FnOnce(
            Arc<PluginBindings>,
            &'a mut Store<StoreState>,
            Resource<HostBatch<K>>,
        )
            -> CallFuture<'a, Result<bindings::Outcome, bindings::ProcessError>>,
    ) -> Result<(bindings::Outcome, HostBatch<K>), CallError>
    where
        K: crate::host::ScopeAccess + Send + 'static,
        HostBatch<K>: Send,
    {
        let b = self.bindings()?;
        let res = self
            .store
            .data_mut()
            .table
            .push(hb)
            .map_err(|e| CallError::Trap(e.to_string()))?;
        let rep = res.rep();
        let result = self
            .guarded(|s| call(b, s, Resource::new_borrow(rep)))
            .await;
        let hb = self
            .store
            .data_mut()
            .table
            .delete(res)
            .map_err(|e| CallError::Trap(e.to_string()))?;
        match result? {
            Ok(outcome) => Ok((outcome, hb)),
            Err(bindings::ProcessError::Permanent(message)) => Err(CallError::Plugin {
                permanent: true,
                message,
            }),
            Err(bindings::ProcessError::Retryable(message)) => Err(CallError::Plugin {
                permanent: false,
                message,
            }),
        }
    }
}

fn finish<K: crate::host::ScopeAccess>(
    outcome: bindings::Outcome,
    hb: HostBatch<K>,
    original: Option<wasmcol_pdata::Payload<K::Request>>,
    wrap: fn(wasmcol_pdata::Payload<K::Request>) -> Batch,
) -> Result<Processed, CallError> {
    if outcome == bindings::Outcome::Drop {
        return Ok(Processed::Drop);
    }
    if !hb.modified()
        && let Some(o) = original
    {
        return Ok(Processed::Forward(wrap(o)));
    }
    let p = hb
        .into_payload()
        .map_err(|e| CallError::Trap(e.to_string()))?;
    Ok(Processed::Forward(wrap(p)))
}

// Keep the generated resource types referenced so the `with` mapping stays checked.
#[allow(dead_code)]
fn _resource_types(_: TraceRes, _: MetricRes, _: LogRes) {}
