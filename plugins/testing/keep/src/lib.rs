//! Keeps every batch inside the plugin and drops it from the pipeline: the least a plugin
//! that buffers spans itself must do (copy them in through `to-otlp`; no parsing, no
//! emitting). Used to measure what plugin-side buffering costs against the host's
//! per-trace buffer (`plugins/tail_sampling/README.md`).

use serde::Deserialize;
use wasmcol_sdk::{ConfigErrors, Outcome, ProcessError, Processor, Signal, Traces};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {}

struct Keep {
    kept: Vec<Vec<u8>>,
}

impl Processor for Keep {
    const NAME: &'static str = "test_keep";
    const VERSION: &'static str = "0.0.0";
    const SIGNALS: &'static [Signal] = &[Signal::Traces];
    type Config = Config;

    fn new(_c: Config, _signal: Signal) -> Result<Self, ConfigErrors> {
        Ok(Keep { kept: Vec::new() })
    }

    fn process_traces(&mut self, t: Traces<'_>) -> Result<Outcome, ProcessError> {
        self.kept.push(t.trace_ops().to_otlp());
        Ok(Outcome::Drop)
    }
}

wasmcol_sdk::export_processor!(Keep);
