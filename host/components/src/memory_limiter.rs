//! The `memory_limiter` processor: measures the process's memory every `check_interval` and,
//! while it is above the soft limit (`limit − spike`), refuses data with a retryable error so
//! the sender backs off instead of the collector running out of memory.
//!
//! Upstream measures the Go heap and forces garbage collections; there is no collector to
//! force here, so the measure is the resident set size and the `*_gc_interval_*` keys are
//! accepted for compatibility and have no effect. The refusal carries a retry hint of one
//! check interval (at least a second), which upstream does not send (see `docs/design.md#differences`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use parking_lot::Mutex;
use serde::Deserialize;
use tokio_util::sync::CancellationToken;
use wasmcol_config::{GoDuration, Value};
use wasmcol_core::{
    Batch, BuildError, ComponentError, ConsumeError, Consumer, ConsumerRef, Counter, CreateContext,
    Lifecycle, Processor, ProcessorFactory, Signal, Tasks,
};

/// The error message upstream's memory limiter refuses with (`ErrDataRefused`).
pub const REFUSED_MESSAGE: &str = "data refused due to high memory usage";

const MIB: u64 = 1024 * 1024;

/// `processors: memory_limiter:` with upstream's keys and defaults.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MemoryLimiterConfig {
    /// Time between measurements; must be set (upstream recommends 1s).
    pub check_interval: GoDuration,
    /// Hard limit in MiB; wins over `limit_percentage`.
    pub limit_mib: u32,
    /// Headroom below the hard limit in MiB; 0 means 20% of `limit_mib`.
    pub spike_limit_mib: u32,
    /// Hard limit as a percentage of total memory (the cgroup limit when there is one).
    pub limit_percentage: u32,
    /// Headroom as a percentage of total memory; 0 means 20% of the limit.
    pub spike_limit_percentage: u32,
    /// Accepted for compatibility (Go GC pacing); no effect (10s).
    pub min_gc_interval_when_soft_limited: GoDuration,
    /// Accepted for compatibility (Go GC pacing); no effect (0).
    pub min_gc_interval_when_hard_limited: GoDuration,
    /// Accepted for compatibility (Go GC pacing); no effect (30s).
    pub max_gc_interval_when_soft_limited: GoDuration,
    /// Accepted for compatibility (Go GC pacing); no effect (30s).
    pub max_gc_interval_when_hard_limited: GoDuration,
}

impl Default for MemoryLimiterConfig {
    fn default() -> Self {
        MemoryLimiterConfig {
            check_interval: GoDuration::default(),
            limit_mib: 0,
            spike_limit_mib: 0,
            limit_percentage: 0,
            spike_limit_percentage: 0,
            min_gc_interval_when_soft_limited: GoDuration::secs(10),
            min_gc_interval_when_hard_limited: GoDuration::default(),
            max_gc_interval_when_soft_limited: GoDuration::secs(30),
            max_gc_interval_when_hard_limited: GoDuration::secs(30),
        }
    }
}

impl MemoryLimiterConfig {
    /// Upstream's checks, with its messages, each prefixed with its key.
    pub fn validate(&self) -> Vec<String> {
        let mut p = Vec::new();
        if self.check_interval.is_zero() {
            p.push("check_interval: 'check_interval' must be greater than zero".to_owned());
        }
        if self.min_gc_interval_when_soft_limited < self.min_gc_interval_when_hard_limited {
            p.push("min_gc_interval_when_soft_limited: 'min_gc_interval_when_soft_limited' should be larger than 'min_gc_interval_when_hard_limited'".to_owned());
        }
        if self.limit_mib == 0 && self.limit_percentage == 0 {
            p.push(
                "limit_mib: 'limit_mib' or 'limit_percentage' must be greater than zero".to_owned(),
            );
        }
        if self.limit_percentage > 100 || self.spike_limit_percentage > 100 {
            p.push("limit_percentage: 'limit_percentage' and 'spike_limit_percentage' must be greater than zero and less than or equal to hundred".to_owned());
        }
        if self.limit_mib > 0 && self.limit_mib <= self.spike_limit_mib {
            p.push(
                "spike_limit_mib: 'spike_limit_mib' must be smaller than 'limit_mib'".to_owned(),
            );
        }
        if self.limit_percentage > 0 && self.limit_percentage <= self.spike_limit_percentage {
            p.push("spike_limit_percentage: 'spike_limit_percentage' must be smaller than 'limit_percentage'".to_owned());
        }
        p
    }

    /// The hard and soft limits in bytes. `total` is needed only for the percentage form.
    pub fn limits(&self, total: Option<u64>) -> Result<Limits, String> {
        let (hard, spike) = if self.limit_mib > 0 {
            (
                u64::from(self.limit_mib) * MIB,
                u64::from(self.spike_limit_mib) * MIB,
            )
        } else {
            let total = total.ok_or_else(|| {
                "limit_percentage: cannot determine the total memory of this host or container"
                    .to_owned()
            })?;
            (
                u64::from(self.limit_percentage) * total / 100,
                u64::from(self.spike_limit_percentage) * total / 100,
            )
        };
        // Upstream: an unset spike limit is 20% of the limit.
        let spike = if spike == 0 { hard / 5 } else { spike };
        Ok(Limits {
            hard,
            soft: hard.saturating_sub(spike),
        })
    }
}

/// Memory thresholds in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Upstream's `limit`: usage at or above it is logged as a hard-limit breach.
    pub hard: u64,
    /// `limit − spike`: at or above it data is refused.
    pub soft: u64,
}

/// Where the limiter reads memory figures; a test supplies its own.
#[async_trait]
pub trait MemoryProbe: Send + Sync {
    /// Bytes the process uses now, if known.
    async fn used_bytes(&self) -> Option<u64>;
    /// Bytes available to the process in total (host memory or the cgroup limit), if known.
    async fn total_bytes(&self) -> Option<u64>;
}

/// Reads the resident set size from `/proc/self/statm` and the total from `/proc/meminfo`
/// and the cgroup (v2 or v1) memory limit, on the blocking pool.
pub struct ProcessMemory {
    tasks: Tasks,
}

impl ProcessMemory {
    /// A probe whose reads run as tasks of `tasks`.
    pub fn new(tasks: Tasks) -> Self {
        ProcessMemory { tasks }
    }
}

#[async_trait]
impl MemoryProbe for ProcessMemory {
    async fn used_bytes(&self) -> Option<u64> {
        self.tasks
            .spawn_blocking(wasmcol_core::telemetry::process_rss_bytes)
            .await
            .ok()
            .flatten()
    }

    async fn total_bytes(&self) -> Option<u64> {
        self.tasks.spawn_blocking(total_memory).await.ok().flatten()
    }
}

/// The smaller of the host's memory and the cgroup limit.
fn total_memory() -> Option<u64> {
    let host = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| parse_meminfo_total(&s));
    let cgroup = std::fs::read_to_string("/sys/fs/cgroup/memory.max")
        .or_else(|_| std::fs::read_to_string("/sys/fs/cgroup/memory/memory.limit_in_bytes"))
        .ok()
        .and_then(|s| parse_cgroup_limit(&s));
    match (host, cgroup) {
        (Some(h), Some(c)) => Some(h.min(c)),
        (h, c) => h.or(c),
    }
}

/// `MemTotal:       16318412 kB` → bytes.
fn parse_meminfo_total(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// `max` (v2, no limit) → `None`; a number → bytes. cgroup v1 reports "no limit" as a huge
/// number, which the `min` with the host's memory takes care of.
fn parse_cgroup_limit(s: &str) -> Option<u64> {
    s.trim().parse().ok()
}

/// Builds `memory_limiter` processors.
pub struct MemoryLimiterFactory;

impl ProcessorFactory for MemoryLimiterFactory {
    fn create(
        &self,
        ctx: &CreateContext,
        config: &Value,
        signal: Signal,
        next: ConsumerRef,
    ) -> Result<Arc<dyn Processor>, BuildError> {
        let cfg: MemoryLimiterConfig = wasmcol_config::decode(config).map_err(BuildError::new)?;
        crate::check(cfg.validate())?;
        let probe = Arc::new(ProcessMemory::new(ctx.tasks.clone()));
        Ok(Arc::new(MemoryLimiter::new(ctx, cfg, signal, next, probe)))
    }
}

/// A `memory_limiter` processor for one pipeline.
pub struct MemoryLimiter {
    shared: Arc<Shared>,
    next: ConsumerRef,
    tasks: Tasks,
    accepted: Counter,
    refused: Counter,
    started: AtomicBool,
}

struct Shared {
    cfg: MemoryLimiterConfig,
    probe: Arc<dyn MemoryProbe>,
    refusing: AtomicBool,
    limits: Mutex<Option<Limits>>,
}

impl MemoryLimiter {
    /// A limiter reading memory from `probe`; nothing is measured until [`Lifecycle::start`].
    pub fn new(
        ctx: &CreateContext,
        cfg: MemoryLimiterConfig,
        signal: Signal,
        next: ConsumerRef,
        probe: Arc<dyn MemoryProbe>,
    ) -> Self {
        let id = ctx.id.to_string();
        let labels = [("processor", id.as_str())];
        let item = signal.item_name();
        MemoryLimiter {
            accepted: ctx.metrics.counter(
                &format!("otelcol_processor_memory_limiter_accepted_{item}"),
                &format!(
                    "Number of {item} successfully pushed into the next component in the pipeline."
                ),
                &labels,
            ),
            refused: ctx.metrics.counter(
                &format!("otelcol_processor_memory_limiter_refused_{item}"),
                &format!(
                    "Number of {item} that were rejected by the next component in the pipeline."
                ),
                &labels,
            ),
            shared: Arc::new(Shared {
                cfg,
                probe,
                refusing: AtomicBool::new(false),
                limits: Mutex::new(None),
            }),
            next,
            tasks: ctx.tasks.clone(),
            started: AtomicBool::new(false),
        }
    }

    /// Whether data is being refused now.
    pub fn is_refusing(&self) -> bool {
        self.shared.refusing.load(Ordering::SeqCst)
    }

    /// The limits in force (known once started).
    pub fn limits(&self) -> Option<Limits> {
        *self.shared.limits.lock()
    }

    fn retry_after(&self) -> Duration {
        Duration::from(self.shared.cfg.check_interval).max(Duration::from_secs(1))
    }
}

impl Shared {
    /// One measurement: sets or clears the refusal flag, logging transitions as upstream does.
    async fn check(&self, limits: Limits) {
        let Some(used) = self.probe.used_bytes().await else {
            // Without a figure the previous decision stands; refusing blindly would stop all
            // traffic on a host where /proc cannot be read.
            tracing::debug!("memory_limiter: memory usage unknown; keeping the previous state");
            return;
        };
        let above_soft = used >= limits.soft;
        if used >= limits.hard {
            tracing::warn!(
                cur_mem_mib = used / MIB,
                hard_limit_mib = limits.hard / MIB,
                "Memory usage is above hard limit."
            );
        }
        let was = self.refusing.swap(above_soft, Ordering::SeqCst);
        if above_soft && !was {
            tracing::warn!(
                cur_mem_mib = used / MIB,
                soft_limit_mib = limits.soft / MIB,
                "Memory usage is above soft limit. Refusing data."
            );
        } else if !above_soft && was {
            tracing::info!(
                cur_mem_mib = used / MIB,
                "Memory usage back within limits. Resuming normal operation."
            );
        }
    }

    async fn run(self: Arc<Self>, limits: Limits, stop: CancellationToken) {
        let mut tick = tokio::time::interval(self.cfg.check_interval.into());
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // The first tick completes at once; start measured already.
        tick.tick().await;
        loop {
            tokio::select! {
                _ = tick.tick() => self.check(limits).await,
                _ = stop.cancelled() => break,
            }
        }
    }
}

#[async_trait]
impl Consumer for MemoryLimiter {
    async fn consume(&self, batch: Batch) -> Result<(), ConsumeError> {
        let items = batch.item_count() as u64;
        if self.is_refusing() {
            self.refused.add(items);
            return Err(ConsumeError::retry_after(
                REFUSED_MESSAGE,
                self.retry_after(),
            ));
        }
        self.accepted.add(items);
        self.next.consume(batch).await
    }

    fn answers_on_enqueue(&self) -> bool {
        self.next.answers_on_enqueue()
    }

    fn adopt_batching(&self, plan: &wasmcol_config::exporterhelper::QueueBatchConfig) {
        self.next.adopt_batching(plan)
    }
}

#[async_trait]
impl Lifecycle for MemoryLimiter {
    async fn start(&self) -> Result<(), ComponentError> {
        if self.started.swap(true, Ordering::SeqCst) {
            return Ok(());
        }
        let s = &self.shared;
        let total = if s.cfg.limit_mib == 0 {
            s.probe.total_bytes().await
        } else {
            None
        };
        let limits = s.cfg.limits(total).map_err(ComponentError::new)?;
        *s.limits.lock() = Some(limits);
        tracing::info!(
            hard_limit_mib = limits.hard / MIB,
            soft_limit_mib = limits.soft / MIB,
            check_interval = %s.cfg.check_interval,
            "memory_limiter: limits set"
        );
        // Measured once before any data flows, as upstream does.
        s.check(limits).await;
        let stop = self.tasks.token();
        self.tasks.spawn(s.clone().run(limits, stop));
        Ok(())
    }

    async fn shutdown(&self) -> Result<(), ComponentError> {
        if self.tasks.stop_by_deadline().await {
            Ok(())
        } else {
            Err(ComponentError::new(
                "memory_limiter: the memory check did not stop",
            ))
        }
    }
}

impl Processor for MemoryLimiter {}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicU64;

    use wasmcol_config::Kind;

    use super::*;
    use crate::testutil::{Sink, ctx, spans, yaml};

    /// Memory figures set by the test.
    struct FakeMemory {
        used: AtomicU64,
        total: Option<u64>,
    }

    #[async_trait]
    impl MemoryProbe for FakeMemory {
        async fn used_bytes(&self) -> Option<u64> {
            Some(self.used.load(Ordering::SeqCst))
        }
        async fn total_bytes(&self) -> Option<u64> {
            self.total
        }
    }

    fn build_errors(body: &str) -> Vec<String> {
        let ctx = ctx(Kind::Processor, "memory_limiter");
        MemoryLimiterFactory
            .create(&ctx, &yaml(body), Signal::Traces, Sink::new())
            .err()
            .map(|e| e.0.iter().map(ToString::to_string).collect::<Vec<String>>())
            .unwrap_or_default()
    }

    #[test]
    fn validation_messages_match_upstream() {
        assert_eq!(
            build_errors("limit_mib: 100"),
            ["check_interval: 'check_interval' must be greater than zero"]
        );
        assert_eq!(
            build_errors("check_interval: 1s"),
            ["limit_mib: 'limit_mib' or 'limit_percentage' must be greater than zero"]
        );
        assert_eq!(
            build_errors("check_interval: 1s\nlimit_mib: 100\nspike_limit_mib: 100"),
            ["spike_limit_mib: 'spike_limit_mib' must be smaller than 'limit_mib'"]
        );
        assert_eq!(
            build_errors("check_interval: 1s\nlimit_percentage: 101"),
            [
                "limit_percentage: 'limit_percentage' and 'spike_limit_percentage' must be greater than zero and less than or equal to hundred"
            ]
        );
        assert_eq!(
            build_errors("check_interval: 1s\nlimit_percentage: 50\nspike_limit_percentage: 60"),
            [
                "spike_limit_percentage: 'spike_limit_percentage' must be smaller than 'limit_percentage'"
            ]
        );
        assert_eq!(
            build_errors(
                "check_interval: 1s\nlimit_mib: 100\nmin_gc_interval_when_soft_limited: 1s\nmin_gc_interval_when_hard_limited: 2s"
            ),
            [
                "min_gc_interval_when_soft_limited: 'min_gc_interval_when_soft_limited' should be larger than 'min_gc_interval_when_hard_limited'"
            ]
        );
        let unknown = build_errors("check_interval: 1s\nlimit_mib: 100\nlimit_gib: 1");
        assert!(
            unknown[0].contains("unknown field `limit_gib`"),
            "{unknown:?}"
        );
        // Every problem at once.
        assert_eq!(build_errors("spike_limit_percentage: 150").len(), 3);
        assert!(
            build_errors(
                "check_interval: 1s\nlimit_mib: 4000\nspike_limit_mib: 800\nmax_gc_interval_when_soft_limited: 1m"
            )
            .is_empty()
        );
    }

    #[test]
    fn limits_follow_upstream_arithmetic() {
        let cfg = |b: &str| -> MemoryLimiterConfig { wasmcol_config::decode(&yaml(b)).unwrap() };
        let l = cfg("limit_mib: 1000").limits(None).unwrap();
        assert_eq!((l.hard, l.soft), (1000 * MIB, 800 * MIB));
        let l = cfg("limit_mib: 1000\nspike_limit_mib: 100\nlimit_percentage: 10")
            .limits(Some(1 << 40))
            .unwrap();
        assert_eq!((l.hard, l.soft), (1000 * MIB, 900 * MIB), "limit_mib wins");
        let l = cfg("limit_percentage: 50\nspike_limit_percentage: 10")
            .limits(Some(1000 * MIB))
            .unwrap();
        assert_eq!((l.hard, l.soft), (500 * MIB, 400 * MIB));
        assert!(cfg("limit_percentage: 50").limits(None).is_err());
    }

    #[test]
    fn parses_proc_and_cgroup_figures() {
        assert_eq!(
            parse_meminfo_total("MemTotal:       16318412 kB\nMemFree: 1 kB\n"),
            Some(16_318_412 * 1024)
        );
        assert_eq!(parse_cgroup_limit("max\n"), None);
        assert_eq!(parse_cgroup_limit("536870912\n"), Some(536_870_912));
    }

    #[tokio::test]
    async fn process_probe_reads_this_process() {
        let probe = ProcessMemory::new(Tasks::new());
        let used = probe.used_bytes().await.unwrap_or(0);
        assert!(used > MIB, "rss {used}");
        let total = probe.total_bytes().await.unwrap_or(0);
        assert!(total >= used, "total {total} < rss {used}");
    }

    /// Scenario: memory climbs over the soft limit, then falls back.
    /// Guarantees: data is refused with the upstream message and a retry hint while above,
    /// counted as refused; accepted again (and forwarded) once below.
    #[tokio::test(start_paused = true)]
    async fn refuses_above_soft_limit_and_resumes() {
        let c = ctx(Kind::Processor, "memory_limiter");
        let mem = Arc::new(FakeMemory {
            used: AtomicU64::new(10 * MIB),
            total: None,
        });
        let cfg: MemoryLimiterConfig = wasmcol_config::decode(&yaml(
            "check_interval: 1s\nlimit_mib: 100\nspike_limit_mib: 20",
        ))
        .unwrap();
        let sink = Sink::new();
        let ml = MemoryLimiter::new(&c, cfg, Signal::Traces, sink.clone(), mem.clone());
        ml.start().await.unwrap();
        assert_eq!(
            ml.limits(),
            Some(Limits {
                hard: 100 * MIB,
                soft: 80 * MIB
            })
        );
        ml.consume(spans("a", 3)).await.unwrap();

        mem.used.store(85 * MIB, Ordering::SeqCst);
        // Virtual time: the check at t=1s runs before this sleep ends.
        tokio::time::sleep(Duration::from_millis(1100)).await;
        assert!(ml.is_refusing());
        let err = ml.consume(spans("b", 4)).await.unwrap_err();
        assert_eq!(
            err,
            ConsumeError::Retryable {
                message: REFUSED_MESSAGE.to_owned(),
                retry_after: Some(Duration::from_secs(1)),
            }
        );

        mem.used.store(50 * MIB, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(!ml.is_refusing());
        ml.consume(spans("c", 5)).await.unwrap();

        assert_eq!(sink.sizes(), [3, 5]);
        let labels = [("processor", "memory_limiter")];
        let m = &c.metrics;
        assert_eq!(
            m.counter_value("otelcol_processor_memory_limiter_accepted_spans", &labels),
            Some(8)
        );
        assert_eq!(
            m.counter_value("otelcol_processor_memory_limiter_refused_spans", &labels),
            Some(4)
        );
        ml.shutdown().await.unwrap();
    }

    /// Scenario: usage is already over the limit when the collector starts.
    /// Guarantees: the first request is refused (start measures before data flows); the
    /// percentage form uses the probe's total.
    #[tokio::test(start_paused = true)]
    async fn measures_at_start_with_percentage_limits() {
        let c = ctx(Kind::Processor, "memory_limiter/pct");
        let mem = Arc::new(FakeMemory {
            used: AtomicU64::new(900 * MIB),
            total: Some(1000 * MIB),
        });
        let cfg: MemoryLimiterConfig = wasmcol_config::decode(&yaml(
            "check_interval: 250ms\nlimit_percentage: 80\nspike_limit_percentage: 20",
        ))
        .unwrap();
        let ml = MemoryLimiter::new(&c, cfg, Signal::Logs, Sink::new(), mem);
        ml.start().await.unwrap();
        assert_eq!(ml.limits().map(|l| l.soft), Some(600 * MIB));
        let err = ml.consume(Batch::empty(Signal::Logs)).await.unwrap_err();
        assert!(err.is_retryable());
        assert_eq!(err.retry_delay(), Some(Duration::from_secs(1)));
        ml.shutdown().await.unwrap();
    }

    #[tokio::test]
    async fn percentage_without_total_fails_to_start() {
        let c = ctx(Kind::Processor, "memory_limiter");
        let mem = Arc::new(FakeMemory {
            used: AtomicU64::new(0),
            total: None,
        });
        let cfg: MemoryLimiterConfig =
            wasmcol_config::decode(&yaml("check_interval: 1s\nlimit_percentage: 80")).unwrap();
        let ml = MemoryLimiter::new(&c, cfg, Signal::Traces, Sink::new(), mem);
        let e = ml.start().await.unwrap_err();
        assert!(e.to_string().contains("total memory"), "{e}");
    }
}
