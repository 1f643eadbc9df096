//! Makes the host hold far more memory than the plugin itself: sets `keys` attributes
//! (`amp.0`, `amp.1`, ...), each a string of `kib` KiB, on every set of `level` (`item` or
//! `resource`). The plugin keeps one copy of the string; the host stores one per attribute
//! set and key.

use serde::Deserialize;
use wasmcol_sdk::{
    ConfigErrors, Level, Outcome, ProcessError, Processor, SetMode, Signal, Traces, Value,
};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    kib: usize,
    #[serde(default = "one")]
    keys: u32,
    #[serde(default)]
    resource: bool,
}

fn one() -> u32 {
    1
}

struct Amplify {
    value: Value,
    keys: u32,
    level: Level,
}

impl Processor for Amplify {
    const NAME: &'static str = "test_amplify";
    const VERSION: &'static str = "0.0.0";
    const SIGNALS: &'static [Signal] = &[Signal::Traces];
    type Config = Config;

    fn new(c: Config, _signal: Signal) -> Result<Self, ConfigErrors> {
        Ok(Amplify {
            value: Value::Str("x".repeat(c.kib << 10)),
            keys: c.keys,
            level: if c.resource {
                Level::Resource
            } else {
                Level::Item
            },
        })
    }

    fn process_traces(&mut self, t: Traces<'_>) -> Result<Outcome, ProcessError> {
        for k in 0..self.keys {
            t.set_all(
                self.level,
                &format!("amp.{k}"),
                &self.value,
                SetMode::Upsert,
            );
        }
        Ok(Outcome::Forward)
    }
}

wasmcol_sdk::export_processor!(Amplify);
