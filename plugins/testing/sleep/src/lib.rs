//! Sleeps `ms` milliseconds in `process-traces` through WASI (`std::thread::sleep`, a
//! monotonic-clock pollable the host waits on), so no wasm code runs while it waits.

use serde::Deserialize;
use wasmcol_sdk::{ConfigErrors, Outcome, ProcessError, Processor, Signal, Traces};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    ms: u64,
}

struct Sleeper {
    ms: u64,
}

impl Processor for Sleeper {
    const NAME: &'static str = "test_sleep";
    const VERSION: &'static str = "0.0.0";
    const SIGNALS: &'static [Signal] = &[Signal::Traces];
    type Config = Config;

    fn new(c: Config, _signal: Signal) -> Result<Self, ConfigErrors> {
        Ok(Sleeper { ms: c.ms })
    }

    fn process_traces(&mut self, _t: Traces<'_>) -> Result<Outcome, ProcessError> {
        std::thread::sleep(std::time::Duration::from_millis(self.ms));
        Ok(Outcome::Forward)
    }
}

wasmcol_sdk::export_processor!(Sleeper);
