//! The wasmtime engines and their linkers.
//!
//! There are two engines, on purpose. The plain one serves every plugin by default: epoch
//! interruption bounds each call by wall-clock time. Fuel metering is an engine-wide setting
//! that instruments every compiled function (about 15-40 % slower), so a `wasm` processor
//! with `limits.fuel` runs on a second, fuel-metering engine, created the first time such a
//! plugin is loaded. Both use the pooling allocator when the address space for it can be
//! reserved (falling back to on-demand allocation), share the runtime's epoch ticker, and
//! count against one instance budget (see `pool`).

use std::sync::OnceLock;

use wasmtime::component::{HasSelf, Linker};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use crate::bindings::Processor as PluginBindings;
use crate::epoch::Epoch;
use crate::error::LoadError;
use crate::store::StoreState;

/// Largest linear memory a plugin may be given, whatever its `memory_mib` says.
pub const MAX_MEMORY_MIB: u64 = 1024;
/// Live component instances each engine's pool holds.
pub(crate) const POOL_INSTANCES: usize = 256;

/// An engine and the linker for it.
pub(crate) struct EngineSet {
    pub(crate) engine: Engine,
    pub(crate) linker: Linker<StoreState>,
}

/// The plain engine, and the fuel-metering one once needed.
pub(crate) struct Engines {
    plain: EngineSet,
    fuel: OnceLock<Result<EngineSet, String>>,
    pooling: bool,
}

fn engine_config(fuel: bool, pooling: bool) -> Config {
    let mut c = Config::new();
    c.epoch_interruption(true);
    c.consume_fuel(fuel);
    // A synchronous-ABI host: the component-model async machinery costs ~0.5 µs per call.
    c.concurrency_support(false);
    if pooling {
        // Each memory slot is virtual address space until used. The instance budget keeps
        // live instances within `POOL_INSTANCES`.
        let mut p = PoolingAllocationConfig::default();
        p.total_component_instances(POOL_INSTANCES as u32)
            .total_core_instances(8 * POOL_INSTANCES as u32)
            .total_memories(POOL_INSTANCES as u32)
            .total_tables(2 * POOL_INSTANCES as u32)
            .total_stacks(POOL_INSTANCES as u32)
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
    // 0.2.0 uses 0.1.0's `types` and `batch` and the same `log`: adding its world defines
    // those again with the same host functions, which shadowing allows.
    l.allow_shadowing(true);
    crate::bindings::v2::Processor::add_to_linker::<StoreState, HasSelf<StoreState>>(&mut l, |s| s)
        .map_err(|e| LoadError::Runtime(e.to_string()))?;
    l.allow_shadowing(false);
    Ok(l)
}

fn engine_set(fuel: bool, pooling: bool, epoch: &Epoch) -> Result<EngineSet, LoadError> {
    let engine = Engine::new(&engine_config(fuel, pooling))
        .map_err(|e| LoadError::Runtime(e.to_string()))?;
    epoch.register(&engine);
    let linker = linker(&engine)?;
    Ok(EngineSet { engine, linker })
}

impl Engines {
    /// The plain engine, with the pooling allocator when possible.
    pub(crate) fn new(epoch: &Epoch) -> Result<Engines, LoadError> {
        let (plain, pooling) = match engine_set(false, true, epoch) {
            Ok(e) => (e, true),
            Err(e) => {
                tracing::warn!(error = %e, "pooling allocator unavailable; using on-demand instance allocation");
                (engine_set(false, false, epoch)?, false)
            }
        };
        Ok(Engines {
            plain,
            fuel: OnceLock::new(),
            pooling,
        })
    }

    /// The engine for plugins with (`fuel`) or without fuel metering.
    pub(crate) fn get(&self, fuel: bool, epoch: &Epoch) -> Result<&EngineSet, LoadError> {
        if !fuel {
            return Ok(&self.plain);
        }
        self.fuel
            .get_or_init(|| engine_set(true, self.pooling, epoch).map_err(|e| e.to_string()))
            .as_ref()
            .map_err(|e| LoadError::Runtime(e.clone()))
    }

    /// Whether instances come from the pooling allocator.
    pub(crate) fn pooling(&self) -> bool {
        self.pooling
    }
}
