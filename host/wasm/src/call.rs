//! Calls into a plugin instance: every export (`info`, `configure`, `process-*`, `tick`) runs
//! under the call's deadline, memory budget and fuel, and a failure is classified (trap,
//! timeout, memory, plugin error).
//!
//! Calls are asynchronous (`call_async`) and yield to the executor at every epoch tick (1 ms),
//! so a slow plugin never pins a tokio worker and a deadline is checked at each tick. A timer
//! on the whole call also ends it while the plugin waits in a WASI host call, where no tick
//! is checked. The
//! sync alternative needs a thread hop per batch (`spawn_blocking`) to stay off the async
//! workers; the async path adds about a microsecond per call instead.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmcol_pdata::{Batch, Signal};
use wasmtime::component::Resource;
use wasmtime::{Store, Trap};

use crate::batch::{HostBatch, ScopeAccess};
use crate::bindings::wasmcol::plugin::types as wt;
use crate::bindings::{self, Processor as PluginBindings, ProcessorPre, v2};
use crate::epoch::EpochHandle;
use crate::error::CallError;
use crate::store::{PluginTelemetry, StoreState};

/// Per-call limits.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Wall-clock deadline per call.
    pub timeout: Duration,
    /// Memory budget of an instance, MiB: all its linear memories and tables, plus what the
    /// host holds on its behalf during a call.
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

/// A config problem reported by a plugin.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PluginConfigError {
    /// Key path inside the plugin's config.
    pub path: String,
    /// Message.
    pub message: String,
}

/// How the host drives a configured plugin (what a 0.2.0 `configure` returns; a 0.1.0
/// plugin gets the default).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Settings {
    /// Hold spans by trace and call `decide-trace` (tail sampling).
    pub hold: Option<TraceHold>,
}

/// How spans are held by trace for a deciding plugin.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceHold {
    /// From a trace's first span to its decision.
    pub decision_wait: Duration,
    /// Traces held at most.
    pub num_traces: usize,
    /// Trace IDs decided sampled remembered after they leave the buffer.
    pub sampled_cache: usize,
    /// Trace IDs decided not sampled remembered likewise.
    pub non_sampled_cache: usize,
    /// Drop undecided traces on shutdown instead of deciding them.
    pub drop_pending_on_shutdown: bool,
}

/// The compiled and linked component, for either version of the contract.
#[derive(Clone)]
pub(crate) enum Pre {
    /// `wasmcol:plugin@0.1.0`.
    V1(ProcessorPre<StoreState>),
    /// `wasmcol:plugin@0.2.0`.
    V2(v2::ProcessorPre<StoreState>),
}

/// An instance's exports, for either version.
#[derive(Clone)]
enum Bindings {
    V1(Arc<PluginBindings>),
    V2(Arc<v2::Processor>),
}

fn outcome_v2(
    r: Result<v2::Outcome, v2::ProcessError>,
) -> Result<bindings::Outcome, bindings::ProcessError> {
    match r {
        Ok(v2::Outcome::Forward) => Ok(bindings::Outcome::Forward),
        Ok(v2::Outcome::Drop) => Ok(bindings::Outcome::Drop),
        Err(v2::ProcessError::Permanent(m)) => Err(bindings::ProcessError::Permanent(m)),
        Err(v2::ProcessError::Retryable(m)) => Err(bindings::ProcessError::Retryable(m)),
    }
}

fn plugin_error(e: v2::ProcessError) -> CallError {
    match e {
        v2::ProcessError::Permanent(message) => CallError::Plugin {
            permanent: true,
            message,
        },
        v2::ProcessError::Retryable(message) => CallError::Plugin {
            permanent: false,
            message,
        },
    }
}

/// One trace lent to `decide-trace`.
pub(crate) type TraceView = HostBatch<wasmcol_pdata::lazy::TracesKind>;

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

/// One plugin instance with its store. Not shared: a processor keeps a pool of them.
pub struct Instance {
    store: Store<StoreState>,
    bindings: Option<Bindings>,
    limits: Limits,
    epoch: EpochHandle,
}

type CallFuture<'a, T> = std::pin::Pin<Box<dyn Future<Output = wasmtime::Result<T>> + Send + 'a>>;

impl Instance {
    /// Instantiates `pre` in `store` (whose limits are `limits`) under the call deadline.
    pub(crate) async fn new(
        store: Store<StoreState>,
        pre: Pre,
        limits: Limits,
        epoch: EpochHandle,
    ) -> Result<Instance, CallError> {
        let mut inst = Instance {
            store,
            bindings: None,
            limits,
            epoch,
        };
        let bindings = match pre {
            Pre::V1(pre) => Bindings::V1(Arc::new(
                inst.guarded(|store| Box::pin(async move { pre.instantiate_async(store).await }))
                    .await?,
            )),
            Pre::V2(pre) => Bindings::V2(Arc::new(
                inst.guarded(|store| Box::pin(async move { pre.instantiate_async(store).await }))
                    .await?,
            )),
        };
        inst.bindings = Some(bindings);
        Ok(inst)
    }

    /// Sends the plugin's own metrics (WIT 0.2.0) to `metrics`, labelled with `processor`,
    /// under names starting with [`metric_prefix`]`(plugin)`.
    pub(crate) fn set_telemetry(
        &mut self,
        metrics: wasmcol_core::Metrics,
        processor: &str,
        plugin: &str,
    ) {
        self.store.data_mut().telemetry = Some(PluginTelemetry {
            metrics,
            processor: Arc::from(processor),
            prefix: metric_prefix(plugin),
            warned: false,
        });
    }

    /// Whether the component implements `wasmcol:plugin@0.2.0`.
    pub fn is_v2(&self) -> bool {
        matches!(self.bindings, Some(Bindings::V2(_)))
    }

    /// Runs `f` under the deadline (and fuel) and classifies failures.
    async fn guarded<T>(
        &mut self,
        f: impl for<'a> FnOnce(&'a mut Store<StoreState>) -> CallFuture<'a, T>,
    ) -> Result<T, CallError> {
        // Without the ticker nothing would interrupt a looping plugin: refuse the call.
        let Some(_tick) = self.epoch.enter() else {
            return Err(CallError::Trap("the plugin runtime has shut down".into()));
        };
        let data = self.store.data_mut();
        data.deadline = Instant::now() + self.limits.timeout;
        data.timed_out = false;
        data.limiter.begin_call();
        self.store.set_epoch_deadline(1);
        if let Some(fuel) = self.limits.fuel {
            let _ = self.store.set_fuel(fuel);
        }
        // The epoch callback only runs while wasm code runs; a plugin waiting in a WASI host
        // call (a monotonic-clock pollable, `std::thread::sleep`) runs none. The timer on
        // the whole call covers those waits: dropping the call's future cancels the guest,
        // and the instance, now unusable, is thrown away like after any timeout.
        let timeout = self.limits.timeout;
        let outcome = tokio::time::timeout(timeout, f(&mut self.store)).await;
        match outcome {
            Ok(result) => result.map_err(|e| self.classify(e)),
            Err(_) => {
                self.store.data_mut().timed_out = true;
                Err(CallError::Timeout(timeout))
            }
        }
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

    fn bindings(&self) -> Result<Bindings, CallError> {
        self.bindings
            .clone()
            .ok_or_else(|| CallError::Trap("instance is not initialised".into()))
    }

    /// Calls `info`.
    pub async fn info(&mut self) -> Result<PluginInfo, CallError> {
        let info = match self.bindings()? {
            Bindings::V1(b) => {
                self.guarded(|s| Box::pin(async move { b.call_info(s).await }))
                    .await?
            }
            Bindings::V2(b) => {
                let i = self
                    .guarded(|s| Box::pin(async move { b.call_info(s).await }))
                    .await?;
                bindings::PluginInfo {
                    name: i.name,
                    version: i.version,
                    signals: i.signals,
                    config_schema: i.config_schema,
                }
            }
        };
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
    ) -> Result<Result<Settings, Vec<PluginConfigError>>, CallError> {
        let json = config_json.to_owned();
        let sig = wit_signal(signal);
        let errors = |errors: Vec<(String, String)>| {
            errors
                .into_iter()
                .map(|(path, message)| PluginConfigError { path, message })
                .collect()
        };
        Ok(match self.bindings()? {
            Bindings::V1(b) => self
                .guarded(|s| Box::pin(async move { b.call_configure(s, &json, sig).await }))
                .await?
                .map(|()| Settings::default())
                .map_err(|e| errors(e.into_iter().map(|e| (e.path, e.message)).collect())),
            Bindings::V2(b) => self
                .guarded(|s| Box::pin(async move { b.call_configure(s, &json, sig).await }))
                .await?
                .map(|s| Settings {
                    hold: s.hold_traces.map(|h| TraceHold {
                        decision_wait: Duration::from_millis(h.decision_wait_ms),
                        num_traces: h.num_traces as usize,
                        sampled_cache: h.sampled_cache_size as usize,
                        non_sampled_cache: h.non_sampled_cache_size as usize,
                        drop_pending_on_shutdown: h.drop_pending_on_shutdown,
                    }),
                })
                .map_err(|e| errors(e.into_iter().map(|e| (e.path, e.message)).collect())),
        })
    }

    /// Calls `tick`.
    pub async fn tick(&mut self, now_unix_nano: u64) -> Result<(), CallError> {
        match self.bindings()? {
            Bindings::V1(b) => {
                self.guarded(|s| Box::pin(async move { b.call_tick(s, now_unix_nano).await }))
                    .await
            }
            Bindings::V2(b) => {
                self.guarded(|s| Box::pin(async move { b.call_tick(s, now_unix_nano).await }))
                    .await
            }
        }
    }

    /// Asks a 0.2.0 plugin that holds traces to decide one: `trace` holds its spans. True
    /// when sampled. The view comes back whatever happened (the host keeps it even when the
    /// plugin traps), with any edits the plugin made.
    pub(crate) async fn decide_trace(
        &mut self,
        trace: TraceView,
        first_arrival_unix_nano: u64,
        now_unix_nano: u64,
    ) -> (Result<bool, CallError>, Option<TraceView>) {
        let b = match self.bindings() {
            Ok(Bindings::V2(b)) => b,
            Ok(Bindings::V1(_)) => {
                let e = CallError::Trap(
                    "a wasmcol:plugin@0.1.0 component cannot decide held traces".into(),
                );
                return (Err(e), Some(trace));
            }
            Err(e) => return (Err(e), Some(trace)),
        };
        let res = match self.store.data_mut().table.push(trace) {
            Ok(res) => res,
            Err(e) => return (Err(CallError::Trap(e.to_string())), None),
        };
        let rep = res.rep();
        let result = self
            .guarded(|s| {
                Box::pin(async move {
                    b.call_decide_trace(
                        s,
                        Resource::new_borrow(rep),
                        first_arrival_unix_nano,
                        now_unix_nano,
                    )
                    .await
                })
            })
            .await;
        let trace = self.store.data_mut().table.delete(res).ok();
        let decision = match result {
            Ok(Ok(d)) => Ok(d == v2::Decision::Sampled),
            Ok(Err(e)) => Err(plugin_error(e)),
            Err(e) => Err(e),
        };
        (decision, trace)
    }

    /// [`decide_trace`](Self::decide_trace) over one trace given as a request (every span in
    /// it belongs to the trace): its spans, with the plugin's edits, when sampled, `None` when
    /// not. For `plugin run` and tests; the processor decides on views it holds.
    pub async fn decide_request(
        &mut self,
        trace: wasmcol_pdata::ExportTraceServiceRequest,
        first_arrival_unix_nano: u64,
        now_unix_nano: u64,
    ) -> Result<Option<wasmcol_pdata::ExportTraceServiceRequest>, CallError> {
        let view = HostBatch::from_message(trace);
        let (decision, back) = self
            .decide_trace(view, first_arrival_unix_nano, now_unix_nano)
            .await;
        if !decision? {
            return Ok(None);
        }
        let back = back.ok_or_else(|| CallError::Trap("the trace view was lost".into()))?;
        back.into_payload()
            .and_then(|p| p.into_message())
            .map(Some)
            .map_err(|e| CallError::Trap(e.to_string()))
    }

    /// Processes one batch. A batch the plugin did not change is forwarded as it came (an
    /// encoded batch keeps its bytes; nothing is re-encoded).
    pub async fn process(&mut self, batch: Batch) -> Result<Processed, CallError> {
        let context = crate::batch::request_context(&batch);
        match batch {
            Batch::Traces(p) => {
                let original = p.is_encoded().then(|| p.clone());
                let mut hb = HostBatch::new(p).map_err(|e| CallError::Trap(e.to_string()))?;
                hb.context = context;
                let (outcome, hb) = self
                    .run(hb, |b, s, r| {
                        Box::pin(async move {
                            match b {
                                Bindings::V1(b) => b.call_process_traces(s, r).await,
                                Bindings::V2(b) => {
                                    b.call_process_traces(s, r).await.map(outcome_v2)
                                }
                            }
                        })
                    })
                    .await?;
                finish(outcome, hb, original, Batch::Traces)
            }
            Batch::Metrics(p) => {
                let original = p.is_encoded().then(|| p.clone());
                let mut hb = HostBatch::new(p).map_err(|e| CallError::Trap(e.to_string()))?;
                hb.context = context;
                let (outcome, hb) = self
                    .run(hb, |b, s, r| {
                        Box::pin(async move {
                            match b {
                                Bindings::V1(b) => b.call_process_metrics(s, r).await,
                                Bindings::V2(b) => {
                                    b.call_process_metrics(s, r).await.map(outcome_v2)
                                }
                            }
                        })
                    })
                    .await?;
                finish(outcome, hb, original, Batch::Metrics)
            }
            Batch::Logs(p) => {
                let original = p.is_encoded().then(|| p.clone());
                let mut hb = HostBatch::new(p).map_err(|e| CallError::Trap(e.to_string()))?;
                hb.context = context;
                let (outcome, hb) = self
                    .run(hb, |b, s, r| {
                        Box::pin(async move {
                            match b {
                                Bindings::V1(b) => b.call_process_logs(s, r).await,
                                Bindings::V2(b) => b.call_process_logs(s, r).await.map(outcome_v2),
                            }
                        })
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
            Bindings,
            &'a mut Store<StoreState>,
            Resource<HostBatch<K>>,
        )
            -> CallFuture<'a, Result<bindings::Outcome, bindings::ProcessError>>,
    ) -> Result<(bindings::Outcome, HostBatch<K>), CallError>
    where
        K: ScopeAccess + Send + 'static,
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
        let hb = self.store.data_mut().table.delete(res);
        // A failed call's error says more than a batch the instance can no longer return.
        let outcome = result?;
        let hb = hb.map_err(|e| CallError::Trap(e.to_string()))?;
        match outcome {
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

fn finish<K: ScopeAccess>(
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
    // The lazy view rebuilds the payload; the request context goes with it.
    let context = hb.context.clone();
    let p = hb
        .into_payload()
        .map_err(|e| CallError::Trap(e.to_string()))?;
    Ok(Processed::Forward(wrap(p.with_context(context))))
}

/// The prefix a plugin's own metric names must start with: `otelcol_processor_<plugin>_`,
/// with every character a Prometheus name cannot hold (the `-` of a Cargo package name, the
/// default plugin name) written as `_`.
pub(crate) fn metric_prefix(plugin: &str) -> String {
    let name: String = plugin
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    format!("otelcol_processor_{name}_")
}

#[cfg(test)]
mod prefix_tests {
    use super::metric_prefix;

    #[test]
    fn a_cargo_package_name_makes_a_valid_prefix() {
        assert_eq!(
            metric_prefix("probabilistic_sampler"),
            "otelcol_processor_probabilistic_sampler_"
        );
        assert_eq!(metric_prefix("region-tag"), "otelcol_processor_region_tag_");
        assert_eq!(metric_prefix("a.b c"), "otelcol_processor_a_b_c_");
    }
}
