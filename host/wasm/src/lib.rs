//! Everything wasmtime: the plugin runtime, the bundled WebAssembly processors
//! (`attributes`, `resource`, `probabilistic_sampler`) and the `wasm` processor for an
//! operator's own component.
//!
//! A plugin implements `wit/plugin.wit` (`wasmcol:plugin/processor@0.1.0`) or
//! `wit/v0.2.0/plugin.wit` (`@0.2.0`: request context, `remove-attribute-all`, its own
//! metrics, and held traces decided one by one, which `hold` buffers natively). The binary
//! creates one [`Runtime`] and hands it to [`register`]. Building a plugin processor only
//! parses its config; its `prepare` step reads the file and compiles the component on the
//! blocking pool (cached on disk by content hash and engine settings), instantiates it from
//! an `InstancePre` with the pooling allocator and runs the guest's `configure`. The host
//! keeps each batch and lends the plugin a handle; only what the plugin touches is decoded.
//! Every call runs under a deadline (guest code and WASI waits alike) and one memory budget
//! per instance (all its memories and tables, and what the host holds for it). Each
//! processor keeps a pool of instances, throws trapped ones away, and applies `on_error`
//! (`refuse` by default: the sender gets a retryable error, or a permanent one when the
//! plugin fails on the same batch again on a fresh instance; nothing acknowledged is lost).
//!
//! Modules, each one job; each imports only modules listed before it: `store` (store
//! state), `batch` (the lent batch), `bindings` (generated from the WIT), `splice` (attribute
//! insertion into encoded items), `host` (the imports a plugin calls), [`error`], `epoch`
//! (ticker thread), `engine` (engines and linkers), `cache` (compile cache), [`call`] (calls
//! into an instance), [`plugin`] (a loaded plugin), `pool` (instance pools and budget),
//! [`runtime`] (loading), [`config`], [`processor`], [`cli`].

pub mod call;
pub mod cli;
pub mod config;
pub mod error;
pub mod plugin;
pub mod processor;
pub mod runtime;

mod batch;
mod bindings;
mod cache;
mod engine;
mod epoch;
mod hold;
mod host;
mod host_v2;
mod pool;
mod splice;
mod store;

use std::sync::Arc;

use wasmcol_core::registry::Factory;
use wasmcol_core::{
    BuildError, ConsumerRef, CreateContext, Processor, ProcessorFactory, Registry, Signal,
};

pub use cache::sha256_hex;
pub use call::{Instance, Limits, PluginConfigError, PluginInfo, Processed, Settings, TraceHold};
pub use config::{OnError, WasmConfig};
pub use engine::MAX_MEMORY_MIB;
pub use error::{CallError, LoadError};
pub use plugin::Plugin;
pub use processor::{PluginProcessor, Source, Spec};
pub use runtime::{Runtime, RuntimeOptions};

/// The bundled plugins' components, and paths of the plugins built for tests.
pub mod bundled {
    include!(concat!(env!("OUT_DIR"), "/plugins.rs"));

    /// A bundled plugin by type name.
    pub fn by_name(name: &str) -> Option<&'static [u8]> {
        match name {
            "attributes" => Some(ATTRIBUTES),
            "resource" => Some(RESOURCE),
            "probabilistic_sampler" => Some(PROBABILISTIC_SAMPLER),
            "tail_sampling" => Some(TAIL_SAMPLING),
            _ => None,
        }
    }
}

/// A factory for a plugin embedded in the binary; its YAML body is the plugin's config.
struct BundledFactory {
    runtime: Arc<Runtime>,
    bytes: &'static [u8],
    signals: &'static [Signal],
}

impl ProcessorFactory for BundledFactory {
    fn signals(&self) -> &[Signal] {
        self.signals
    }

    fn create(
        &self,
        ctx: &CreateContext,
        config: &wasmcol_config::Value,
        signal: Signal,
        next: ConsumerRef,
    ) -> Result<Arc<dyn Processor>, BuildError> {
        let config_json = config::to_json(config).map_err(BuildError::new)?;
        let spec = Spec {
            runtime: self.runtime.clone(),
            source: Source::Bundled(self.bytes),
            config_json,
            limits: Limits::default(),
            on_error: OnError::Refuse,
            config_prefix: "",
        };
        Ok(PluginProcessor::build(ctx, spec, signal, next)?)
    }
}

/// The `wasm` processor: an operator's component from a file.
struct WasmFactory {
    runtime: Arc<Runtime>,
}

impl ProcessorFactory for WasmFactory {
    fn create(
        &self,
        ctx: &CreateContext,
        config: &wasmcol_config::Value,
        signal: Signal,
        next: ConsumerRef,
    ) -> Result<Arc<dyn Processor>, BuildError> {
        let cfg: WasmConfig = wasmcol_config::decode(config).map_err(BuildError::new)?;
        let limits = cfg.limits.resolve("limits.").map_err(BuildError::from)?;
        let config_json =
            config::to_json(&cfg.config).map_err(|e| BuildError::new(format!("config: {e}")))?;
        let spec = Spec {
            runtime: self.runtime.clone(),
            source: Source::File {
                watch: cfg.watch(),
                path: cfg.path,
                sha256: cfg.sha256,
            },
            config_json,
            limits,
            on_error: cfg.on_error,
            config_prefix: "config.",
        };
        Ok(PluginProcessor::build(ctx, spec, signal, next)?)
    }
}

/// Registers the bundled plugins and the `wasm` processor, all running on `runtime`.
pub fn register(r: &mut Registry, runtime: Arc<Runtime>) {
    let bundled = |bytes, signals| {
        Factory::Processor(Arc::new(BundledFactory {
            runtime: runtime.clone(),
            bytes,
            signals,
        }))
    };
    r.register(
        "attributes",
        &[],
        "Edits span, data point and log record attributes (bundled WebAssembly plugin).",
        bundled(bundled::ATTRIBUTES, &Signal::ALL),
    );
    r.register(
        "resource",
        &[],
        "Edits resource attributes (bundled WebAssembly plugin).",
        bundled(bundled::RESOURCE, &Signal::ALL),
    );
    r.register(
        "probabilistic_sampler",
        &[],
        "Keeps a percentage of traces or logs, hash_seed mode (bundled WebAssembly plugin).",
        bundled(
            bundled::PROBABILISTIC_SAMPLER,
            &[Signal::Traces, Signal::Logs],
        ),
    );
    r.register(
        "tail_sampling",
        &[],
        "Keeps or drops whole traces by policy after decision_wait; spans wait in a native \
         per-trace buffer (bundled WebAssembly plugin, WIT 0.2.0).",
        bundled(bundled::TAIL_SAMPLING, &[Signal::Traces]),
    );
    r.register(
        "wasm",
        &[],
        "Runs an operator's WebAssembly processor component (path, sha256, config, limits, on_error).",
        Factory::Processor(Arc::new(WasmFactory { runtime })),
    );
}
