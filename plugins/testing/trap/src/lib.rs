//! Traps (panics, which aborts into a wasm trap) on every `every`-th batch; with `hold: true`
//! it asks the host to hold traces (contract 0.2.0) and traps on every `every`-th decision
//! instead, deciding "sampled" otherwise.

use serde::Deserialize;
use wasmcol_sdk::{
    ConfigErrors, Decision, Outcome, ProcessError, Processor, Signal, TraceHold, Traces,
};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    #[serde(default = "one")]
    every: u64,
    #[serde(default)]
    hold: bool,
}

fn one() -> u64 {
    1
}

struct Trap {
    every: u64,
    calls: u64,
    hold: bool,
}

impl Trap {
    fn call(&mut self) {
        self.calls += 1;
        if self.calls.is_multiple_of(self.every) {
            // Trapping is this test plugin's whole purpose.
            #[allow(clippy::panic)]
            {
                panic!("test_trap: trapping on call {}", self.calls);
            }
        }
    }
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
            hold: c.hold,
        })
    }

    fn process_traces(&mut self, _t: Traces<'_>) -> Result<Outcome, ProcessError> {
        self.call();
        Ok(Outcome::Forward)
    }

    fn hold_traces(&self) -> Option<TraceHold> {
        self.hold.then_some(TraceHold {
            decision_wait_ms: 20,
            num_traces: 1000,
            sampled_cache_size: 0,
            non_sampled_cache_size: 0,
            drop_pending_on_shutdown: false,
        })
    }

    fn decide_trace(
        &mut self,
        _t: Traces<'_>,
        _first: u64,
        _now: u64,
    ) -> Result<Decision, ProcessError> {
        self.call();
        Ok(Decision::Sampled)
    }
}

wasmcol_sdk::export_processor!(Trap);
