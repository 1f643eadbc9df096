//! What every plugin store carries: a WASI context without network or wall clock, the
//! resource table that holds the batch lent for a call, the instance's memory budget and the
//! call deadline.

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
    /// Where the plugin's own metrics go (WIT 0.2.0 `telemetry`); none for the loader.
    pub(crate) telemetry: Option<PluginTelemetry>,
}

/// The registry a plugin's metrics go to, and the names it may use.
pub(crate) struct PluginTelemetry {
    pub(crate) metrics: wasmcol_core::Metrics,
    /// The processor id, added to every series as the `processor` label.
    pub(crate) processor: Arc<str>,
    /// Names must start with this: `otelcol_processor_<plugin name>_`, `-` written `_`.
    pub(crate) prefix: String,
    /// A refused name was logged already (once per instance is enough).
    pub(crate) warned: bool,
}

impl StoreState {
    /// A fresh state for an instance labelled `label` (the processor id) whose memories,
    /// tables and host-held data together may take `memory_mib`.
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
            limiter: MemoryCap::new((memory_mib as usize) << 20),
            deadline: Instant::now(),
            timed_out: false,
            label: Arc::from(label),
            stderr,
            telemetry: None,
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

/// Bytes counted for one table element (a pointer-sized reference).
const TABLE_ELEMENT_BYTES: usize = std::mem::size_of::<usize>();

/// One memory budget per plugin instance: every linear memory and table of the instance,
/// plus what the host holds on the plugin's behalf during a call (attributes it set,
/// buffers it asked for), count against the same cap. A component may declare several
/// memories and tables; counting each against its own cap would multiply the limit.
///
/// Going over traps the call at once and is remembered, so the failure is reported as a
/// memory error rather than a generic trap.
pub(crate) struct MemoryCap {
    max: usize,
    /// Bytes of every linear memory.
    memories: usize,
    /// Bytes of every table.
    tables: usize,
    /// Bytes the host holds for the plugin in the current call; released with the batch.
    host: usize,
    /// The last growth allowed, taken back if the engine then fails to grow.
    pending_memory: usize,
    pending_table: usize,
    pub(crate) exceeded: bool,
}

impl MemoryCap {
    pub(crate) fn new(max: usize) -> Self {
        MemoryCap {
            max,
            memories: 0,
            tables: 0,
            host: 0,
            pending_memory: 0,
            pending_table: 0,
            exceeded: false,
        }
    }

    fn used(&self) -> usize {
        self.memories
            .saturating_add(self.tables)
            .saturating_add(self.host)
    }

    fn refuse(&mut self, what: &str) -> wasmtime::Error {
        self.exceeded = true;
        wasmtime::Error::msg(format!(
            "memory limit exceeded ({what}; limit {} bytes)",
            self.max
        ))
    }

    /// Starts a call: the host holds nothing for the plugin yet.
    pub(crate) fn begin_call(&mut self) {
        self.host = 0;
        self.exceeded = false;
    }

    /// Counts `bytes` the host now holds for the plugin until the call ends.
    pub(crate) fn charge(&mut self, bytes: usize) -> wasmtime::Result<()> {
        self.host = self.host.saturating_add(bytes);
        if self.used() > self.max {
            return Err(self.refuse("data the plugin made the host hold"));
        }
        Ok(())
    }

    /// Checks that `bytes` more would fit, without counting them: for a buffer the host
    /// builds and hands over (it lands in the plugin's memory, which the budget counts).
    pub(crate) fn fits(&mut self, bytes: usize) -> wasmtime::Result<()> {
        if self.used().saturating_add(bytes) > self.max {
            return Err(self.refuse("a buffer the plugin asked the host for"));
        }
        Ok(())
    }
}

impl wasmtime::ResourceLimiter for MemoryCap {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        // Called with `current` 0 when a memory is created, so every memory is counted.
        let growth = desired.saturating_sub(current);
        if self.used().saturating_add(growth) > self.max {
            // An error traps at once: a plugin that cannot grow would only abort later with
            // a less useful message.
            return Err(self.refuse("linear memory"));
        }
        self.memories += growth;
        self.pending_memory = growth;
        Ok(true)
    }

    fn memory_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        self.memories -= std::mem::take(&mut self.pending_memory).min(self.memories);
        tracing::debug!(error = %error, "plugin memory growth failed");
        Ok(())
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let growth = desired
            .saturating_sub(current)
            .saturating_mul(TABLE_ELEMENT_BYTES);
        if self.used().saturating_add(growth) > self.max {
            return Err(self.refuse("table"));
        }
        self.tables += growth;
        self.pending_table = growth;
        Ok(true)
    }

    fn table_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        self.tables -= std::mem::take(&mut self.pending_table).min(self.tables);
        tracing::debug!(error = %error, "plugin table growth failed");
        Ok(())
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

#[cfg(test)]
mod tests {
    use wasmtime::ResourceLimiter;

    use super::*;

    /// Two memories of 6 MiB each do not fit a 10 MiB budget, though each would fit alone;
    /// host-held data counts against the same budget and is released per call.
    #[test]
    fn one_budget_covers_every_memory_table_and_host_copy() {
        let mib = 1usize << 20;
        let mut cap = MemoryCap::new(10 * mib);
        assert!(cap.memory_growing(0, 6 * mib, None).unwrap());
        assert!(cap.memory_growing(0, 6 * mib, None).is_err());
        assert!(cap.exceeded);
        cap.exceeded = false;
        assert!(cap.table_growing(0, 1000, None).unwrap());
        // A failed growth gives its share back.
        assert!(cap.memory_growing(6 * mib, 7 * mib, None).unwrap());
        cap.memory_grow_failed(wasmtime::Error::msg("no")).unwrap();
        assert!(cap.memory_growing(6 * mib, 9 * mib, None).unwrap());
        assert!(cap.charge(mib / 2).is_ok());
        assert!(cap.charge(mib).is_err());
        assert!(cap.exceeded);
        cap.begin_call();
        assert!(!cap.exceeded);
        assert!(cap.fits(mib / 2).is_ok());
        assert!(cap.fits(2 * mib).is_err());
    }
}
