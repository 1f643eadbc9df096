//! Never returns from `process-traces` (unless the span count is zero).

use wasmcol_sdk::{ConfigErrors, Outcome, ProcessError, Processor, Signal, Traces};

struct Spin;

impl Processor for Spin {
    const NAME: &'static str = "test_loop";
    const VERSION: &'static str = "0.0.0";
    const SIGNALS: &'static [Signal] = &[Signal::Traces];
    type Config = serde::de::IgnoredAny;

    fn new(_c: serde::de::IgnoredAny, _signal: Signal) -> Result<Self, ConfigErrors> {
        Ok(Spin)
    }

    fn process_traces(&mut self, t: Traces<'_>) -> Result<Outcome, ProcessError> {
        let mut n: u64 = t.len() as u64;
        while n != 0 {
            n = std::hint::black_box(n.wrapping_add(1) | 1);
        }
        Ok(Outcome::Forward)
    }
}

wasmcol_sdk::export_processor!(Spin);
