//! Returns a process error of the configured kind on every batch.

use serde::Deserialize;
use wasmcol_sdk::{ConfigErrors, Outcome, ProcessError, Processor, Signal, Traces};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    #[serde(default)]
    permanent: bool,
}

struct Fail {
    permanent: bool,
}

impl Processor for Fail {
    const NAME: &'static str = "test_error";
    const VERSION: &'static str = "0.0.0";
    const SIGNALS: &'static [Signal] = &[Signal::Traces];
    type Config = Config;

    fn new(c: Config, _signal: Signal) -> Result<Self, ConfigErrors> {
        Ok(Fail {
            permanent: c.permanent,
        })
    }

    fn process_traces(&mut self, _t: Traces<'_>) -> Result<Outcome, ProcessError> {
        if self.permanent {
            Err(ProcessError::Permanent(
                "test_error: refusing permanently".into(),
            ))
        } else {
            Err(ProcessError::Retryable(
                "test_error: try again later".into(),
            ))
        }
    }
}

wasmcol_sdk::export_processor!(Fail);
