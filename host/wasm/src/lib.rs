//! Everything wasmtime: the plugin runtime, the bundled WebAssembly processors
//! (`attributes`, `resource`, `probabilistic_sampler`) and the `wasm` processor for an
//! operator's own component.
//!
//! A plugin implements `wit/plugin.wit` (`wasmcol:plugin/processor@0.1.0`). The host keeps
//! each batch and lends the plugin a handle ([`host`]); only what the plugin touches is
//! decoded. The [`runtime`] compiles each component once per content hash (cached on disk,
//! keyed by SHA-256, wasmtime version and engine settings), instantiates from an
//! `InstancePre` with the pooling allocator, and runs every call under a deadline and a
//! memory cap. The [`processor`] keeps a pool of instances per pipeline, throws trapped ones
//! away, and applies `on_error` (`refuse` by default: the sender gets a retryable error and
//! nothing acknowledged is lost).

pub mod cli;
pub mod config;
pub mod host;
pub mod processor;
pub mod runtime;

mod bindings;
mod splice;

use std::sync::Arc;

use wasmcol_core::registry::Factory;
use wasmcol_core::{
    BuildError, ConsumerRef, CreateContext, Processor, ProcessorFactory, Registry, Signal,
};

pub use config::{OnError, WasmConfig};
pub use processor::{PluginProcessor, Spec};
pub use runtime::{
    CallError, Instance, Limits, LoadError, Plugin, PluginInfo, Processed, Runtime, RuntimeOptions,
};

/// The bundled plugins' components, and paths of the plugins built for tests.
pub mod bundled {
    include!(concat!(env!("OUT_DIR"), "/plugins.rs"));

    /// A bundled plugin by type name.
    pub fn by_name(name: &str) -> Option<&'static [u8]> {
        match name {
            "attributes" => Some(ATTRIBUTES),
            "resource" => Some(RESOURCE),
            "probabilistic_sampler" => Some(PROBABILISTIC_SAMPLER),
            _ => None,
        }
    }
}

/// A factory for a plugin embedded in the binary; its YAML body is the plugin's config.
struct BundledFactory {
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
        let runtime = Runtime::global().map_err(|e| BuildError::new(e.to_string()))?;
        let plugin = runtime
            .load(self.bytes, false)
            .map_err(|e| BuildError::new(format!("cannot load the bundled plugin: {e}")))?;
        let config_json = config::to_json(config).map_err(BuildError::new)?;
        let spec = Spec {
            plugin,
            config_json,
            limits: Limits::default(),
            on_error: OnError::Refuse,
            config_prefix: "",
        };
        Ok(PluginProcessor::build(ctx, spec, signal, next)?)
    }
}

/// The `wasm` processor: an operator's component from a file.
struct WasmFactory;

/// Reads, checks and loads the component a `wasm` processor names.
pub fn load_wasm(cfg: &WasmConfig, fuel: bool) -> Result<Arc<Plugin>, Vec<String>> {
    let bytes = std::fs::read(&cfg.path)
        .map_err(|e| vec![format!("path: cannot read {:?}: {e}", cfg.path)])?;
    if let Some(want) = &cfg.sha256 {
        let got = runtime::sha256_hex(&bytes);
        if !want.trim().eq_ignore_ascii_case(&got) {
            return Err(vec![format!(
                "sha256: {:?} does not match the file's SHA-256 {got}",
                want
            )]);
        }
    }
    let runtime = Runtime::global().map_err(|e| vec![e.to_string()])?;
    runtime
        .load(&bytes, fuel)
        .map_err(|e| vec![format!("path: cannot load {:?}: {e}", cfg.path)])
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
        let plugin = load_wasm(&cfg, limits.fuel.is_some()).map_err(BuildError::from)?;
        let spec = Spec {
            plugin,
            config_json,
            limits,
            on_error: cfg.on_error,
            config_prefix: "config.",
        };
        Ok(PluginProcessor::build(ctx, spec, signal, next)?)
    }
}

/// Registers the bundled plugins and the `wasm` processor.
pub fn register(r: &mut Registry) {
    r.register(
        "attributes",
        &[],
        "Edits span, data point and log record attributes (bundled WebAssembly plugin).",
        Factory::Processor(Arc::new(BundledFactory {
            bytes: bundled::ATTRIBUTES,
            signals: &Signal::ALL,
        })),
    );
    r.register(
        "resource",
        &[],
        "Edits resource attributes (bundled WebAssembly plugin).",
        Factory::Processor(Arc::new(BundledFactory {
            bytes: bundled::RESOURCE,
            signals: &Signal::ALL,
        })),
    );
    r.register(
        "probabilistic_sampler",
        &[],
        "Keeps a percentage of traces or logs, hash_seed mode (bundled WebAssembly plugin).",
        Factory::Processor(Arc::new(BundledFactory {
            bytes: bundled::PROBABILISTIC_SAMPLER,
            signals: &[Signal::Traces, Signal::Logs],
        })),
    );
    r.register(
        "wasm",
        &[],
        "Runs an operator's WebAssembly processor component (path, sha256, config, limits, on_error).",
        Factory::Processor(Arc::new(WasmFactory)),
    );
}
