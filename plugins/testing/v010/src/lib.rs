//! A `wasmcol:plugin@0.1.0` component built straight from `wit/plugin.wit` (the SDK now
//! targets 0.2.0): sets `contract: "0.1.0"` on every span that lacks it, and on a `tick`
//! counts nothing. The host must keep loading and running components like this one.

#![allow(unsafe_code)]

#[cfg(target_arch = "wasm32")]
mod component {
    wit_bindgen::generate!({
        path: "../../../wit",
        world: "processor",
    });

    // The world's `use` already brought the batch handles and `Signal` into scope.
    use wasmcol::plugin::types::{AnyValue, Level, SetMode};

    struct V010;

    impl Guest for V010 {
        fn info() -> PluginInfo {
            PluginInfo {
                name: "test_v010".into(),
                version: "0.1.0".into(),
                signals: vec![Signal::Traces],
                config_schema: String::new(),
            }
        }
        fn configure(_config_json: String, _signal: Signal) -> Result<(), Vec<ConfigError>> {
            Ok(())
        }
        fn process_traces(batch: &TraceBatch) -> Result<Outcome, ProcessError> {
            batch.set_attribute_all(
                Level::Item,
                "contract",
                &AnyValue::Str("0.1.0".into()),
                SetMode::Insert,
            );
            Ok(Outcome::Forward)
        }
        fn process_metrics(_batch: &MetricBatch) -> Result<Outcome, ProcessError> {
            Ok(Outcome::Forward)
        }
        fn process_logs(_batch: &LogBatch) -> Result<Outcome, ProcessError> {
            Ok(Outcome::Forward)
        }
        fn tick(_now_unix_nano: u64) {}
    }

    export!(V010);
}
