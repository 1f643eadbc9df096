//! Traps (panics, which aborts into a wasm trap) on every `every`-th batch.

use serde::Deserialize;
use wasmcol_sdk::{ConfigErrors, Outcome, ProcessError, Processor, Signal, Traces};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    #[serde(default = "one")]
    every: u64,
}

fn one() -> u64 {
    1
}

struct Trap {
    every: u64,
    calls: u64,
}

impl Processor for Trap {
    const NAME: &'static str = "test_trap";
    const VERSION: &'static str = "0.0.0";
    const SIGNALS: &'static [Signal] = &[Signal::Traces];
    type Config = Config;

    fn new(c: Config, _signal: Signal) -> Result<Self, ConfigErrors> {
        Ok(Trap {
            every: c.every.max(1),
            calls: 0,
        })
    }

    fn process_traces(&mut self, _t: Traces<'_>) -> Result<Outcome, ProcessError> {
        self.calls += 1;
        if self.calls.is_multiple_of(self.every) {
            // Trapping is this test plugin's whole purpose.
            #[allow(clippy::panic)]
            {
                panic!("test_trap: trapping on call {}", self.calls);
            }
        }
        Ok(Outcome::Forward)
    }
}

wasmcol_sdk::export_processor!(Trap);
