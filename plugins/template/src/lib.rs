//! A processor plugin: adds `key: value` to every span, data point and log record that
//! lacks `key`.
//!
//! Everything a plugin needs is here: a typed config with `deny_unknown_fields`, validation
//! with key paths, a bulk host call in a signal-agnostic `process`, and unit tests that run
//! natively. `VERSION` and `SIGNALS` are left to their defaults (the Cargo package version,
//! all three signals). This file is wasmcol's plugin template: `wasmcol plugin new` writes it
//! as a new project's `src/lib.rs`.

use serde::Deserialize;
use wasmcol_sdk::prelude::*;

/// The plugin's config, from the `config:` key of a `wasm` processor.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The attribute to add.
    pub key: String,
    /// Its value.
    #[serde(default = "default_value")]
    pub value: String,
}

fn default_value() -> String {
    "template".into()
}

/// The processor; one per plugin instance.
#[derive(Debug)]
pub struct Template {
    key: String,
    value: Value,
}

impl Processor for Template {
    // `wasmcol plugin new` drops these two lines: a new plugin is named after its package.
    const NAME: &'static str = "template";
    const CONFIG_SCHEMA: &'static str = r#"{"type":"object","required":["key"],"properties":{"key":{"type":"string"},"value":{"type":"string"}},"additionalProperties":false}"#;
    type Config = Config;

    fn new(config: Config, _signal: Signal) -> Result<Self, ConfigErrors> {
        let mut errors = ConfigErrors::new();
        if config.key.trim().is_empty() {
            errors.push("key", "must not be empty");
        }
        errors.into_result(Template {
            key: config.key,
            value: Value::Str(config.value),
        })
    }

    fn process(&mut self, batch: Batch<'_>) -> Result<Outcome, ProcessError> {
        // One host call for the whole batch, whatever its size or signal.
        batch.set_all(Level::Item, &self.key, &self.value, SetMode::Insert);
        Ok(Outcome::Forward)
    }
}

wasmcol_sdk::export_processor!(Template);

#[cfg(test)]
mod tests {
    use super::*;
    use wasmcol_sdk::testing::{self, MemLogs, MemTraces, log, span};

    #[test]
    fn adds_the_key_where_missing() {
        let mut p: Template = testing::build(r#"{"key":"team","value":"payments"}"#).unwrap();
        let batch = MemTraces::new().resource(&[], |r| {
            r.scope("lib", |s| {
                s.item(span("a")).item(span("b").attr("team", "search"));
            });
        });
        assert_eq!(testing::run_traces(&mut p, &batch), Ok(Outcome::Forward));
        let d = batch.data();
        let spans = &d.resources[0].scopes[0].items;
        assert_eq!(
            spans[0].attributes,
            vec![("team".into(), Value::from("payments"))]
        );
        assert_eq!(
            spans[1].attributes,
            vec![("team".into(), Value::from("search"))]
        );
    }

    #[test]
    fn logs_too() {
        let mut p: Template = testing::build(r#"{"key":"team"}"#).unwrap();
        let batch = MemLogs::new().resource(&[], |r| {
            r.scope("lib", |s| {
                s.item(log("hello"));
            });
        });
        testing::run_logs(&mut p, &batch).unwrap();
        assert_eq!(
            batch.data().resources[0].scopes[0].items[0].attributes,
            vec![("team".into(), Value::from("template"))]
        );
    }

    #[test]
    fn config_errors_have_key_paths() {
        let e = testing::build::<Template>(r#"{"key":" "}"#).unwrap_err();
        assert_eq!(e.to_string(), "key: must not be empty");
        let e = testing::build::<Template>(r#"{"key":"k","vlaue":"x"}"#).unwrap_err();
        assert_eq!(e.0[0].path, "vlaue");
        let e = testing::build::<Template>("{}").unwrap_err();
        assert!(e.to_string().contains("missing field `key`"), "{e}");
    }
}
