//! The runtime: one per process, created by the binary and handed to the plugin factories.
//! It owns the engines, the compile cache, the epoch ticker thread and the instance budget,
//! and loads plugins: hashing and compiling run on the blocking pool, never on an async
//! worker, and each component (by content hash) is compiled once however many processors
//! use it.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::OnceCell;

use crate::bindings::{ProcessorPre, v2};
use crate::cache::{CompileCache, sha256_hex};
use crate::call::{Limits, PluginInfo, Pre};
use crate::engine::{Engines, POOL_INSTANCES};
use crate::epoch::Epoch;
use crate::error::LoadError;
use crate::plugin::Plugin;
use crate::pool::{InstanceBudget, Reservation};

/// Instances kept out of the processors' budget: the short-lived ones that describe a
/// plugin while it loads.
const LOADER_HEADROOM: usize = 16;

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

type Loaded = Arc<OnceCell<Arc<Plugin>>>;

/// Compiles, caches and instantiates plugins.
pub struct Runtime {
    engines: Engines,
    cache: CompileCache,
    loaded: Mutex<HashMap<(String, bool), Loaded>>,
    budget: Arc<InstanceBudget>,
    /// Bumped by [`Runtime::request_reload`] (SIGHUP); `wasm` processors watch it.
    reload: tokio::sync::watch::Sender<u64>,
    // Last: dropping the runtime stops and joins the ticker after everything else.
    epoch: Epoch,
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, LoadError> + Send + 'static,
) -> Result<T, LoadError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| LoadError::Runtime(format!("the plugin compile task failed: {e}")))?
}

impl Runtime {
    /// A runtime with `options`: starts the epoch thread and creates the plain engine
    /// (pooling allocator when the address space for it can be reserved, else on-demand
    /// allocation).
    pub fn new(options: RuntimeOptions) -> Result<Runtime, LoadError> {
        let epoch = Epoch::start()?;
        let engines = Engines::new(&epoch)?;
        Ok(Runtime {
            engines,
            cache: CompileCache::new(options.cache_dir),
            loaded: Mutex::new(HashMap::new()),
            budget: Arc::new(InstanceBudget::new(POOL_INSTANCES - LOADER_HEADROOM)),
            reload: tokio::sync::watch::Sender::new(0),
            epoch,
        })
    }

    /// Whether instances come from the pooling allocator.
    pub fn pooling(&self) -> bool {
        self.engines.pooling()
    }

    /// Stops and joins the epoch ticker. Calls made afterwards are refused; the collector
    /// calls it once every processor has shut down. Dropping the runtime does the same.
    pub fn shutdown(&self) {
        self.epoch.stop();
    }

    /// Asks every file-backed (`wasm`) processor to reload its component now, whether or not
    /// the file looks changed (the collector calls it on SIGHUP).
    pub fn request_reload(&self) {
        self.reload.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Reload requests, for the processors' reload tasks.
    pub(crate) fn reload_requests(&self) -> tokio::sync::watch::Receiver<u64> {
        self.reload.subscribe()
    }

    /// Reserves room for up to `want` live instances against the pooling allocator's limit:
    /// fewer when the budget is short, an error naming the limit when none is left.
    pub(crate) fn reserve(&self, want: usize) -> Result<Reservation, String> {
        InstanceBudget::reserve(&self.budget, want)
    }

    /// Compiles (or loads from the cache) a plugin and asks it to describe itself. The
    /// compile runs on the blocking pool; concurrent loads of the same component share one
    /// compile.
    pub async fn load(&self, bytes: Bytes, fuel: bool) -> Result<Arc<Plugin>, LoadError> {
        let hashed = bytes.clone();
        let sha = blocking(move || Ok(sha256_hex(&hashed))).await?;
        let cell = self
            .loaded
            .lock()
            .entry((sha.clone(), fuel))
            .or_default()
            .clone();
        cell.get_or_try_init(|| self.compile(bytes, sha, fuel))
            .await
            .cloned()
    }

    async fn compile(
        &self,
        bytes: Bytes,
        sha: String,
        fuel: bool,
    ) -> Result<Arc<Plugin>, LoadError> {
        let set = self.engines.get(fuel, &self.epoch)?;
        let (engine, cache, key) = (set.engine.clone(), self.cache.clone(), sha.clone());
        let size = bytes.len();
        let component = blocking(move || cache.compile(&engine, &bytes, &key)).await?;
        let pre = set
            .linker
            .instantiate_pre(&component)
            .map_err(|e| LoadError::Contract(format!("{e:#}")))?;
        // A component exports one world: 0.2.0's (it has `decide-trace`) or 0.1.0's.
        let pre = match v2::ProcessorPre::new(pre.clone()) {
            Ok(p) => Pre::V2(p),
            Err(_) => {
                Pre::V1(ProcessorPre::new(pre).map_err(|e| LoadError::Contract(format!("{e:#}")))?)
            }
        };
        let mut plugin = Plugin {
            pre,
            engine: set.engine.clone(),
            fuel,
            epoch: self.epoch.handle(),
            sha256: sha,
            size,
            info: PluginInfo::default(),
        };
        let mut inst = plugin.instantiate(&Limits::default(), "loader").await?;
        plugin.info = inst.info().await?;
        Ok(Arc::new(plugin))
    }
}
