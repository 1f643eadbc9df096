//! Uses what contract 0.2.0 adds to batches: removes `key` from every span with one
//! `remove-attribute-all` call, and writes how many values request context `context` had
//! (`context.values`) and how many spans lost the key (`removed`) on every span.

use serde::Deserialize;
use wasmcol_sdk::{
    ConfigErrors, Level, Outcome, ProcessError, Processor, SetMode, Signal, Traces, Value,
};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    key: String,
    context: String,
}

struct V020 {
    key: String,
    context: String,
}

impl Processor for V020 {
    const NAME: &'static str = "test_v020";
    const VERSION: &'static str = "0.0.0";
    const SIGNALS: &'static [Signal] = &[Signal::Traces];
    type Config = Config;

    fn new(c: Config, _signal: Signal) -> Result<Self, ConfigErrors> {
        Ok(V020 {
            key: c.key,
            context: c.context,
        })
    }

    fn process_traces(&mut self, t: Traces<'_>) -> Result<Outcome, ProcessError> {
        let removed = t.remove_all(Level::Item, &self.key);
        let values = t.context(&self.context).len();
        t.set_all(
            Level::Item,
            "removed",
            &Value::Int(i64::from(removed)),
            SetMode::Upsert,
        );
        t.set_all(
            Level::Item,
            "context.values",
            &Value::Int(values as i64),
            SetMode::Upsert,
        );
        Ok(Outcome::Forward)
    }
}

wasmcol_sdk::export_processor!(V020);
