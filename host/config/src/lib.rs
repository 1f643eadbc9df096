//! The collector's YAML, read the way otelcol-contrib reads it.
//!
//! Loading is in two steps. [`load`] merges the `--config` files and `--set` overrides,
//! expands `${env:...}` references, checks component and pipeline ids and the `service`
//! section, and keeps each component's body as YAML. Each factory later decodes its own body
//! into a typed struct with [`decode`], so the error for a bad key names the component and
//! the key path (`processors::attributes/x: actions[2].value: ...`).

#![forbid(unsafe_code)]

mod duration;
mod error;
mod expand;
pub mod exporterhelper;
mod id;
mod load;
mod service;

pub use duration::{GoDuration, parse_duration};
pub use error::{ConfigError, ConfigErrors};
pub use id::{ComponentId, Kind, PipelineId};
pub use load::{RawConfig, load, load_str};
pub use service::{
    MetricsTelemetry, PipelineConfig, PrometheusReader, ServiceConfig, TelemetryConfig,
};
pub use wasmcol_pdata::Signal;

/// A YAML value as read from the config, after expansion.
pub type Value = serde_yaml::Value;

/// Decodes a component body into its typed config; an empty body (`otlp:`) means defaults.
///
/// The error message carries the key path inside the body; the caller prefixes the
/// component (`receivers::otlp`).
pub fn decode<T: serde::de::DeserializeOwned>(value: &Value) -> Result<T, String> {
    let value = match value {
        Value::Null => Value::Mapping(Default::default()),
        v => v.clone(),
    };
    serde_path_to_error::deserialize::<_, T>(value).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner().to_string();
        if path == "." || path.is_empty() {
            inner
        } else {
            format!("{path}: {inner}")
        }
    })
}
