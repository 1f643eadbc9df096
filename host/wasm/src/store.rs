//! What every plugin store carries: a WASI context without network or wall clock, the
//! resource table that holds the batch lent for a call, the memory cap and the call deadline.

use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmtime::component::ResourceTable;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

/// What a store carries.
pub struct StoreState {
    wasi: WasiCtx,
    pub(crate) table: ResourceTable,
    pub(crate) limiter: MemoryCap,
    pub(crate) deadline: Instant,
    pub(crate) timed_out: bool,
    pub(crate) label: Arc<str>,
    /// What the plugin wrote to stderr (a panic message, typically), for trap reports.
    pub(crate) stderr: MemoryOutputPipe,
}

impl StoreState {
    /// A fresh state for an instance labelled `label` (the processor id) whose linear
    /// memory may grow to `memory_mib`.
    pub(crate) fn new(memory_mib: u64, label: &str) -> StoreState {
        let stderr = MemoryOutputPipe::new(64 << 10);
        let mut wasi = WasiCtx::builder();
        wasi.wall_clock(FrozenClock)
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .stderr(stderr.clone());
        StoreState {
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
        }
    }
}

impl WasiView for StoreState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// Refuses memory growth past the cap and remembers that it did, so the failure is reported
/// as a memory error rather than a generic trap.
pub(crate) struct MemoryCap {
    max: usize,
    pub(crate) exceeded: bool,
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

/// The wall clock plugins see: always the epoch. Plugins get no clock beyond monotonic
/// time, so their output depends only on their input; time-based logic goes through
/// `tick(now)`.
struct FrozenClock;

impl wasmtime_wasi::HostWallClock for FrozenClock {
    fn resolution(&self) -> Duration {
        Duration::from_secs(1)
    }
    fn now(&self) -> Duration {
        Duration::ZERO
    }
}
