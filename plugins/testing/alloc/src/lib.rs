//! Allocates without bound in `process-traces`.

use wasmcol_sdk::{ConfigErrors, Outcome, ProcessError, Processor, Signal, Traces};

struct Hog {
    kept: Vec<Vec<u8>>,
}

impl Processor for Hog {
    const NAME: &'static str = "test_alloc";
    const VERSION: &'static str = "0.0.0";
    const SIGNALS: &'static [Signal] = &[Signal::Traces];
    type Config = serde::de::IgnoredAny;

    fn new(_c: serde::de::IgnoredAny, _signal: Signal) -> Result<Self, ConfigErrors> {
        Ok(Hog { kept: Vec::new() })
    }

    fn process_traces(&mut self, t: Traces<'_>) -> Result<Outcome, ProcessError> {
        if t.is_empty() {
            return Ok(Outcome::Forward);
        }
        loop {
            let mut block = vec![0u8; 1 << 20];
            // Touch the block so the allocation cannot be optimised away.
            block[self.kept.len() % (1 << 20)] = 1;
            self.kept.push(std::hint::black_box(block));
        }
    }
}

wasmcol_sdk::export_processor!(Hog);
