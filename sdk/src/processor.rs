//! The trait a plugin implements.

use serde::de::DeserializeOwned;

use crate::config::ConfigErrors;
use crate::ops::Signal;
use crate::view::{Batch, Logs, Metrics, Traces};

/// What the host does with a batch after a successful call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Pass the (possibly edited) batch on.
    Forward,
    /// Drop the whole batch and report success.
    Drop,
}

/// How the host should hold spans by trace for [`Processor::decide_trace`] (tail sampling).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceHold {
    /// From a trace's first span to its decision, milliseconds.
    pub decision_wait_ms: u64,
    /// Traces held at most; the oldest is evicted (and counted) when a new one arrives.
    pub num_traces: u32,
    /// Trace IDs decided sampled remembered after they leave the buffer (0: off).
    pub sampled_cache_size: u32,
    /// Trace IDs decided not sampled remembered likewise (0: off).
    pub non_sampled_cache_size: u32,
    /// Drop undecided traces on shutdown instead of deciding them.
    pub drop_pending_on_shutdown: bool,
}

/// A decision on a held trace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Forward the trace.
    Sampled,
    /// Drop it.
    NotSampled,
}

/// Why a batch could not be processed. The host applies the processor's `on_error` policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProcessError {
    /// Retrying the same data cannot succeed.
    Permanent(String),
    /// The same data may succeed later.
    Retryable(String),
}

impl std::fmt::Display for ProcessError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProcessError::Permanent(m) => write!(f, "permanent: {m}"),
            ProcessError::Retryable(m) => write!(f, "retryable: {m}"),
        }
    }
}

impl std::error::Error for ProcessError {}

/// A processor plugin.
///
/// The host creates one instance of the component per pipeline worker, calls
/// [`Processor::new`] once per instance with the decoded config, then the `process_*` method
/// of the pipeline's signal for every batch. State kept in `self` lives as long as the
/// instance; the host may throw an instance away (after a trap) and build a new one.
///
/// Most plugins implement only [`Processor::new`] and [`Processor::process`], which sees a
/// batch of any signal; override `process_traces`, `process_metrics` or `process_logs` for
/// what differs by signal (their default calls `process`). Methods for signals not listed in
/// [`Processor::SIGNALS`] are never called.
///
/// [`Processor::NAME`] and [`Processor::VERSION`] default to empty, which
/// [`crate::export_processor!`] replaces with the plugin crate's Cargo package name and
/// version.
pub trait Processor: Sized + 'static {
    /// The plugin's type name, shown by `wasmcol plugin inspect` and used in its metric
    /// names (`otelcol_processor_<NAME>_...`, a `-` written `_`); empty: the Cargo package
    /// name.
    const NAME: &'static str = "";
    /// The plugin's version; empty: the Cargo package version.
    const VERSION: &'static str = "";
    /// The signals the plugin handles; all three by default.
    const SIGNALS: &'static [Signal] = &[Signal::Traces, Signal::Metrics, Signal::Logs];
    /// A description of the config for `wasmcol plugin inspect` (JSON schema or prose).
    const CONFIG_SCHEMA: &'static str = "";

    /// The config, decoded from the processor's YAML body with serde. Put
    /// `#[serde(deny_unknown_fields)]` on it so typos are errors. It may be the processor
    /// itself (`type Config = Self;`), and then [`Processor::new`] need not be written.
    type Config: DeserializeOwned + 'static;

    /// Builds the processor from its config for a pipeline of `signal`; checks beyond what
    /// serde checks go here. Report every problem with its key path.
    ///
    /// The default accepts the config as the processor when `Config` is `Self`, and reports
    /// a config error otherwise (implement it then).
    fn new(config: Self::Config, signal: Signal) -> Result<Self, ConfigErrors> {
        let _ = signal;
        let config: Box<dyn std::any::Any> = Box::new(config);
        config.downcast::<Self>().map(|p| *p).map_err(|_| {
            let mut errors = ConfigErrors::new();
            errors.push(
                "",
                "the plugin does not implement Processor::new and its Config is not Self",
            );
            errors
        })
    }

    /// Processes a batch of any signal in place; the per-signal methods call it unless
    /// overridden. The default forwards the batch unchanged.
    fn process(&mut self, batch: Batch<'_>) -> Result<Outcome, ProcessError> {
        let _ = batch;
        Ok(Outcome::Forward)
    }

    /// Processes a batch of spans in place; by default [`Processor::process`].
    fn process_traces(&mut self, traces: Traces<'_>) -> Result<Outcome, ProcessError> {
        self.process(traces.into())
    }

    /// Processes a batch of metric data points in place; by default [`Processor::process`].
    fn process_metrics(&mut self, metrics: Metrics<'_>) -> Result<Outcome, ProcessError> {
        self.process(metrics.into())
    }

    /// Processes a batch of log records in place; by default [`Processor::process`].
    fn process_logs(&mut self, logs: Logs<'_>) -> Result<Outcome, ProcessError> {
        self.process(logs.into())
    }

    /// Called periodically with the wall-clock time, for processors that keep state.
    fn tick(&mut self, now_unix_nano: u64) {
        let _ = now_unix_nano;
    }

    /// Asks the host to hold spans by trace and call [`Processor::decide_trace`] once per
    /// trace instead of `process_traces` (asked once, after [`Processor::new`]). The host
    /// then runs a single instance, so state in `self` is shared by every decision.
    fn hold_traces(&self) -> Option<TraceHold> {
        None
    }

    /// Decides one held trace: `trace` holds every span held for it.
    /// `first_arrival_unix_nano` is when its first span arrived; `now_unix_nano` the time of
    /// the decision.
    fn decide_trace(
        &mut self,
        trace: Traces<'_>,
        first_arrival_unix_nano: u64,
        now_unix_nano: u64,
    ) -> Result<Decision, ProcessError> {
        let _ = (trace, first_arrival_unix_nano, now_unix_nano);
        Ok(Decision::Sampled)
    }
}

/// Decodes `json` and builds the processor for `signal`: what the host's `configure` call
/// does.
pub fn configure<P: Processor>(json: &str, signal: Signal) -> Result<P, ConfigErrors> {
    let config: P::Config = crate::config::parse(json)?;
    P::new(config, signal)
}
