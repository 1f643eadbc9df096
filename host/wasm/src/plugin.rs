//! A loaded plugin: compiled, pre-linked and described (`info`), ready to instantiate.

use std::time::Instant;

use wasmtime::{Engine, Store, Trap};

use crate::call::{Instance, Limits, PluginInfo, Pre};
use crate::engine::MAX_MEMORY_MIB;
use crate::epoch::EpochHandle;
use crate::error::CallError;
use crate::store::StoreState;

/// A loaded plugin: compiled and pre-linked, ready to instantiate.
pub struct Plugin {
    pub(crate) pre: Pre,
    pub(crate) engine: Engine,
    /// Compiled for the fuel-metering engine: every store then needs fuel.
    pub(crate) fuel: bool,
    pub(crate) epoch: EpochHandle,
    /// SHA-256 of the component bytes.
    pub sha256: String,
    /// Size of the component in bytes.
    pub size: usize,
    /// What the plugin reported from `info`.
    pub info: PluginInfo,
}

impl Plugin {
    /// The contract version the component implements (`0.1.0` or `0.2.0`).
    pub fn contract(&self) -> &'static str {
        match self.pre {
            Pre::V1(_) => "0.1.0",
            Pre::V2(_) => "0.2.0",
        }
    }
}

impl Plugin {
    /// A fresh instance with `limits` (about 15 µs with the pooling allocator), labelled
    /// `label` in the plugin's log lines.
    pub async fn instantiate(&self, limits: &Limits, label: &str) -> Result<Instance, CallError> {
        let memory_mib = limits.memory_mib.min(MAX_MEMORY_MIB);
        let mut store = Store::new(&self.engine, StoreState::new(memory_mib, label));
        store.limiter(|s| &mut s.limiter);
        store.epoch_deadline_callback(|mut ctx| {
            if Instant::now() >= ctx.data().deadline {
                ctx.data_mut().timed_out = true;
                return Err(Trap::Interrupt.into());
            }
            Ok(wasmtime::UpdateDeadline::Yield(1))
        });
        let limits = Limits {
            memory_mib,
            // Stores of a fuel-metering engine start empty; calls without a budget get an
            // unlimited one.
            fuel: if self.fuel {
                Some(limits.fuel.unwrap_or(u64::MAX))
            } else {
                None
            },
            ..limits.clone()
        };
        Instance::new(store, self.pre.clone(), limits, self.epoch.clone()).await
    }
}
