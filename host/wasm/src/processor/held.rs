//! The processor side of held traces (WIT 0.2.0 `hold-traces`): spans go into the native
//! buffer (`hold`) and the sender is answered once they are held; a task decides each trace
//! on the plugin's single instance when its `decision_wait` has elapsed and forwards the
//! sampled ones in batches.
//!
//! A failed decision loses nothing silently. The trace comes back from the call whatever
//! happened; under `refuse` the decision is tried once more on a fresh instance, and if that
//! fails too (or under `pass`) the trace is forwarded: the sender was answered long ago, so
//! forwarding is the only way not to lose it. Under `drop` it is dropped and counted in
//! `wasmcol_plugin_dropped_items`.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
use wasmcol_core::{Batch, ConsumeError, ConsumerRef, Counter, Gauge, Histogram, Metrics};
use wasmcol_pdata::Payload;

use super::{PluginMetrics, PluginProcessor};
use crate::batch::HostBatch;
use crate::call::{Instance, Limits, TraceHold};
use crate::config::OnError;
use crate::error::CallError;
use crate::hold::{Buffer, Due, Part, join};
use crate::plugin::Plugin;
use crate::pool::{Pool, Pooled};

/// Spans forwarded per downstream batch at most.
const FORWARD_SPANS: usize = 8192;

fn unix_nano() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or_default()
}

/// The buffer's own metrics, named like upstream's (`otelcol_processor_<plugin>_...`).
struct HoldMetrics {
    dropped_too_early: Counter,
    on_memory: Gauge,
    new_traces: Counter,
    cache_sampled: Counter,
    cache_not_sampled: Counter,
    /// Each `decide-trace` call, µs. Upstream times each policy; here the plugin evaluates
    /// every policy of one trace in one call, so the call is what is timed.
    decision_latency: Histogram,
    /// Each run of the decision tick, ms.
    timer_latency: Histogram,
    /// From a trace's first span to its decision, when its spans leave memory, s.
    removal_age: Histogram,
    /// From a trace's decision to the arrival of a late span of it, s.
    late_span_age: Histogram,
}

/// The OpenTelemetry SDKs' default explicit bucket bounds, which upstream's histograms use.
const DEFAULT_BOUNDS: &[f64] = &[
    0.0, 5.0, 10.0, 25.0, 50.0, 75.0, 100.0, 250.0, 500.0, 750.0, 1000.0, 2500.0, 5000.0, 7500.0,
    10000.0,
];

impl HoldMetrics {
    fn new(m: &Metrics, plugin: &str, id: &str) -> Self {
        let name = |n: &str| format!("otelcol_processor_{plugin}_{n}");
        let l = [("processor", id)];
        let early = |sampled| {
            m.counter(
                &name("early_releases_from_cache_decision"),
                "Spans released or dropped at once because a decision cache had their trace.",
                &[("processor", id), ("sampled", sampled)],
            )
        };
        HoldMetrics {
            dropped_too_early: m.counter(
                &name("sampling_trace_dropped_too_early"),
                "Traces evicted (num_traces reached) before their decision, with their spans.",
                &l,
            ),
            on_memory: m.gauge(
                &name("sampling_traces_on_memory"),
                "Traces held: undecided, or decided and still in the buffer.",
                &l,
            ),
            new_traces: m.counter(
                &name("new_trace_id_received"),
                "Trace IDs that started a decision cycle.",
                &l,
            ),
            cache_sampled: early("true"),
            cache_not_sampled: early("false"),
            decision_latency: m.histogram(
                &name("sampling_decision_latency"),
                "Latency (in microseconds) of the decision on one trace (every policy).",
                &l,
                DEFAULT_BOUNDS,
            ),
            timer_latency: m.histogram(
                &name("sampling_decision_timer_latency"),
                "Latency (in milliseconds) of each run of the sampling decision timer.",
                &l,
                DEFAULT_BOUNDS,
            ),
            removal_age: m.histogram(
                &name("sampling_trace_removal_age"),
                "Time (in seconds) from the arrival of a new trace until its spans leave memory.",
                &l,
                DEFAULT_BOUNDS,
            ),
            late_span_age: m.histogram(
                &name("sampling_late_span_age"),
                "Time (in seconds) from the sampling decision to the arrival of a late span.",
                &l,
                DEFAULT_BOUNDS,
            ),
        }
    }
}

/// How to make a configured instance of the plugin.
pub(super) struct Maker {
    pub(super) plugin: Arc<Plugin>,
    pub(super) limits: Limits,
    pub(super) config_json: String,
    pub(super) id: String,
    pub(super) registry: Metrics,
    pub(super) signal: wasmcol_core::Signal,
}

impl Maker {
    /// A fresh instance, configured (the config was accepted when the processor was
    /// prepared, so a refusal now is a permanent plugin error).
    pub(super) async fn instance(&self) -> Result<Instance, CallError> {
        let mut inst = self.plugin.instantiate(&self.limits, &self.id).await?;
        inst.set_telemetry(self.registry.clone(), &self.id, &self.plugin.info.name);
        match inst.configure(&self.config_json, self.signal).await? {
            Ok(_) => Ok(inst),
            Err(errors) => Err(CallError::Plugin {
                permanent: true,
                message: format!(
                    "the plugin refused its config on a new instance: {}",
                    errors
                        .iter()
                        .map(|e| format!("{}: {}", e.path, e.message))
                        .collect::<Vec<_>>()
                        .join("; ")
                ),
            }),
        }
    }
}

/// The buffer of a plugin that holds traces, and what deciding needs.
pub(super) struct Held {
    buffer: Mutex<Buffer>,
    hold: TraceHold,
    pool: Arc<Pool>,
    maker: Maker,
    next: ConsumerRef,
    on_error: OnError,
    metrics: PluginMetrics,
    hm: HoldMetrics,
}

impl Held {
    pub(super) fn new(
        hold: TraceHold,
        pool: Arc<Pool>,
        maker: Maker,
        next: ConsumerRef,
        on_error: OnError,
        metrics: PluginMetrics,
    ) -> Self {
        let hm = HoldMetrics::new(&maker.registry, &maker.plugin.info.name, &maker.id);
        Held {
            buffer: Mutex::new(Buffer::new(hold.clone())),
            hold,
            pool,
            maker,
            next,
            on_error,
            metrics,
            hm,
        }
    }

    /// How often due traces are looked for: upstream's 1 s tick, or `decision_wait` when
    /// shorter.
    pub(super) fn tick_every(&self) -> Duration {
        self.hold
            .decision_wait
            .clamp(Duration::from_millis(10), Duration::from_secs(1))
    }

    /// Holds a batch's spans; late spans of sampled traces go on at once.
    async fn ingest(&self, batch: Batch) -> Result<(), ConsumeError> {
        let Batch::Traces(p) = batch else {
            return Err(ConsumeError::permanent("a trace buffer got no spans"));
        };
        let message = p
            .into_message()
            .map_err(|e| ConsumeError::Permanent(e.into()))?;
        let got = {
            let mut b = self.buffer.lock();
            let got = b.ingest(message.resource_spans, Instant::now(), unix_nano());
            self.hm.on_memory.set(b.len() as i64);
            got
        };
        self.hm.new_traces.add(got.new_traces);
        self.hm.dropped_too_early.add(got.evicted_traces);
        self.hm.cache_sampled.add(got.cache_sampled);
        self.hm.cache_not_sampled.add(got.cache_not_sampled);
        for age in &got.late_span_ages {
            // Whole seconds, as upstream records them.
            self.hm.late_span_age.observe(age.as_secs() as f64);
        }
        if got.evicted_traces > 0 {
            tracing::warn!(processor = %self.maker.id, traces = got.evicted_traces, spans = got.evicted_spans, "num_traces reached: undecided traces evicted");
        }
        if got.forward.is_empty() {
            return Ok(());
        }
        self.next.consume(traces(&got.forward)).await
    }

    /// Decides the due traces (every held one when `shutdown`) and forwards the sampled.
    pub(super) async fn decide(&self, shutdown: bool) {
        let started = Instant::now();
        let due = self.buffer.lock().take_due(started, shutdown);
        let mut out = Vec::new();
        let mut spans = 0usize;
        for d in due {
            let (id, d_first) = (d.id, d.first_unix_nano);
            let (sampled, parts) = if shutdown && self.hold.drop_pending_on_shutdown {
                self.hm.dropped_too_early.inc();
                (false, Vec::new())
            } else {
                self.decide_one(d).await
            };
            let now = unix_nano();
            self.hm
                .removal_age
                .observe((now.saturating_sub(d_first) / 1_000_000_000) as f64);
            let late = self.buffer.lock().decided(id, sampled, Instant::now());
            if sampled {
                spans += parts.iter().chain(&late).map(|p| p.spans).sum::<usize>();
                out.extend(parts);
                out.extend(late);
            }
            if spans >= FORWARD_SPANS {
                self.forward(&std::mem::take(&mut out)).await;
                spans = 0;
            }
        }
        self.hm.on_memory.set(self.buffer.lock().len() as i64);
        if !out.is_empty() {
            self.forward(&out).await;
        }
        self.hm
            .timer_latency
            .observe(started.elapsed().as_secs_f64() * 1000.0);
    }

    async fn forward(&self, parts: &[Part]) {
        if let Err(e) = self.next.consume(traces(parts)).await {
            tracing::warn!(processor = %self.maker.id, error = %e, "sampled traces refused downstream");
        }
    }

    /// One decision, with `on_error` applied: whether to forward, and the trace's spans
    /// (as the plugin left them).
    async fn decide_one(&self, d: Due) -> (bool, Vec<Part>) {
        let (bytes, spans) = join(&d.parts);
        let mut view = match HostBatch::new(Payload::from_validated(bytes, spans)) {
            Ok(v) => v,
            Err(e) => {
                // Bytes the buffer encoded itself; forwarding them is all that is left.
                tracing::warn!(processor = %self.maker.id, error = %e, "a held trace could not be lent to the plugin");
                return (true, d.parts);
            }
        };
        let mut tries = if self.on_error == OnError::Refuse {
            2
        } else {
            1
        };
        let error = loop {
            tries -= 1;
            let (result, back) = self.call(view, d.first_unix_nano).await;
            let Some(back) = back else {
                // The instance lost the view; the held bytes are still here.
                break CallError::Trap("the trace view was lost in the call".into());
            };
            match result {
                Ok(sampled) => return (sampled, after(back, d.parts)),
                Err(e) if tries > 0 && e.may_be_the_data() => {
                    self.metrics.failed(&e);
                    view = back;
                }
                Err(e) => break e,
            }
        };
        self.metrics.failed(&error);
        tracing::warn!(processor = %self.maker.id, error = %error, on_error = ?self.on_error, "trace decision failed");
        if self.on_error == OnError::Drop {
            self.metrics.dropped.add(spans as u64);
            return (false, Vec::new());
        }
        (true, d.parts)
    }

    /// One `decide-trace` call on the processor's instance (a fresh one after a trap).
    async fn call(
        &self,
        view: HostBatch<wasmcol_pdata::lazy::TracesKind>,
        first: u64,
    ) -> (
        Result<bool, CallError>,
        Option<HostBatch<wasmcol_pdata::lazy::TracesKind>>,
    ) {
        let Some(_permit) = self.pool.permit().await else {
            let e = CallError::Plugin {
                permanent: false,
                message: "the processor is shutting down".into(),
            };
            return (Err(e), Some(view));
        };
        let mut p = match self.pool.take() {
            Some(p) => p,
            None => match self.maker.instance().await {
                Ok(i) => Pooled::new(i),
                Err(e) => return (Err(e), Some(view)),
            },
        };
        if let Err(e) = p.catch_up().await {
            return (Err(e), Some(view));
        }
        let start = Instant::now();
        self.metrics.calls.inc();
        let (result, back) = p.inst.decide_trace(view, first, unix_nano()).await;
        let took = start.elapsed();
        self.metrics.duration.observe(took.as_secs_f64());
        self.hm.decision_latency.observe(took.as_secs_f64() * 1e6);
        match &result {
            Err(e) if e.poisons() => drop(p),
            _ => {
                p.used();
                self.pool.put(p)
            }
        }
        (result, back)
    }
}

fn traces(parts: &[Part]) -> Batch {
    let (bytes, spans) = join(parts);
    Batch::Traces(Payload::from_validated(bytes, spans))
}

/// The trace's spans after the decision: as held when the plugin changed nothing, else as
/// the plugin left them.
fn after(view: HostBatch<wasmcol_pdata::lazy::TracesKind>, held: Vec<Part>) -> Vec<Part> {
    if !view.modified() {
        return held;
    }
    match view.into_payload() {
        Ok(p) => vec![Part {
            spans: p.item_count(),
            bytes: p.encoded(),
        }],
        Err(e) => {
            tracing::warn!(error = %e, "a trace the plugin edited could not be re-encoded; forwarding it as held");
            held
        }
    }
}

impl PluginProcessor {
    /// Holds `batch` for the plugin's decisions.
    pub(super) async fn hold(&self, held: &Held, batch: Batch) -> Result<(), ConsumeError> {
        held.ingest(batch).await
    }

    /// Starts the task that decides due traces.
    pub(super) fn start_deciding(&self, held: Arc<Held>) {
        let token = self.tasks.token();
        self.tasks.spawn(async move {
            let mut every = tokio::time::interval(held.tick_every());
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = token.cancelled() => break,
                    _ = every.tick() => held.decide(false).await,
                }
            }
        });
    }

    /// Decides what is held (on shutdown: everything).
    pub(super) async fn decide(&self, held: &Held, shutdown: bool) {
        held.decide(shutdown).await
    }
}
